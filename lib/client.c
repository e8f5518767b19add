/* minikv: the client library — meta calls with leader following and retry
 * sessions, chunk id pool, fire-and-forget chunk commits (see client.h).
 * Streaming writers and readers are in lib/stream.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "client_priv.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define DEFAULT_TIMEOUT_MS 4000
#define DEFAULT_RETRY_MS 15000
#define ID_BATCH 1024
#define BACKOFF_MIN_MS 20
#define BACKOFF_MAX_MS 1000

static void meta_send(struct mkv_meta_req *req);
static void slot_release(struct mkv_client *c, int slot);

static int is_retryable(int status)
{
    switch (status) {
    case MKV_ENOTLEADER:
    case MKV_EUNAVAILABLE:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EPIPE:
    case -ENOTCONN:
    case -ECONNABORTED: return 1;
    default: return 0;
    }
}

static int add_meta_node(struct mkv_client *c, const char *addr)
{
    struct meta_node *n;
    int rv;
    if (c->nmeta >= MKV_ARRAY_SIZE(c->meta)) return -ENOSPC;
    n = &c->meta[c->nmeta];
    if (strlen(addr) >= sizeof n->addr) return -EINVAL;
    rv = mkv_peer_new(c->loop, addr, &n->peer);
    if (rv) return rv;
    if ((rv = mkv_client_hello(c, n->peer, 0))) {
        mkv_peer_close(n->peer);
        return rv;
    }
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    return (int)c->nmeta++;
}

static void handle_closed(uv_handle_t *h)
{
    struct mkv_client *c = h->data;
    if (--c->handles > 0) return;
    mkv_buf_free(&c->local_buf);
    mkv_client_hellos_free(c);
    mkv_client_route_free(c);
    free(c->chunk_addr);
    free(c);
}

int mkv_client_new(uv_loop_t *loop, const struct mkv_client_opts *o, struct mkv_client **out,
                   char *err, size_t errlen)
{
    struct mkv_client *c;
    char *list, *tok, *save = NULL;
    int rv = 0;
    if (!o->meta || !*o->meta) return mkv_errf(err, errlen, -EINVAL, "no meta address given");
    c = calloc(1, sizeof *c);
    if (!c) return mkv_errf(err, errlen, -ENOMEM, "client");
    c->loop = loop;
    c->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->retry_ms = o->retry_ms ? o->retry_ms : DEFAULT_RETRY_MS;
    c->write_window = o->write_window ? o->write_window : 8;
    c->min_replicas = o->min_replicas;
    c->frame_bytes = o->frame_bytes ? o->frame_bytes : (1u << 20);
    c->read_window = o->read_window ? o->read_window : 8;
    if (c->frame_bytes % MKV_BLOCK_SIZE || c->frame_bytes > MKV_DATA_MAX ||
        MKV_CHUNK_SIZE % c->frame_bytes) {
        free(c);
        return mkv_errf(err, errlen, -EINVAL, "frame size %u must divide the chunk size in blocks",
                        o->frame_bytes);
    }
    if (getrandom(&c->client_base, sizeof c->client_base, 0) != sizeof c->client_base)
        c->client_base = mkv_mono_ns() ^ (uint64_t)(uintptr_t)c;
    c->client_base &= ~(uint64_t)(MKV_CLIENT_SLOTS - 1);
    if (c->client_base == 0) c->client_base = MKV_CLIENT_SLOTS;
    for (int i = 0; i < MKV_CLIENT_SLOTS; i++) c->slot_seq[i] = 1;
    if (o->cred) {
        c->cred = *o->cred;
        c->have_cred = 1;
    }
    list = strdup(o->meta);
    if (!list) {
        free(c);
        return mkv_errf(err, errlen, -ENOMEM, "client");
    }
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        rv = add_meta_node(c, tok);
        if (rv < 0) {
            mkv_errf(err, errlen, rv, "meta address '%s'", tok);
            break;
        }
        rv = 0;
    }
    free(list);
    if (rv == 0 && c->nmeta == 0) rv = mkv_errf(err, errlen, -EINVAL, "no meta address given");
    if (rv == 0 && o->chunk && *o->chunk) {
        c->chunk_addr = strdup(o->chunk);
        rv = c->chunk_addr ? mkv_peer_new(loop, o->chunk, &c->chunk) : -ENOMEM;
        if (!rv) rv = mkv_client_hello(c, c->chunk, 1);
        if (rv) mkv_errf(err, errlen, rv, "chunk address '%s'", o->chunk);
    }
    if (rv) goto err_after_peers;
    uv_timer_init(loop, &c->retry_timer);
    uv_timer_init(loop, &c->vmap_timer);
    uv_idle_init(loop, &c->local_idle);
    c->retry_timer.data = c->local_idle.data = c->vmap_timer.data = c;
    c->handles = 3;
    c->early = o->early_replies;
    c->local_meta_read = o->local_meta_read;
    c->local_meta_ctx = o->local_meta_ctx;
    c->local_chunk_read = o->local_chunk_read;
    c->local_chunk_ctx = o->local_chunk_ctx;
    *out = c;
    return 0;
err_after_peers:
    for (unsigned i = 0; i < c->nmeta; i++) mkv_peer_close(c->meta[i].peer);
    if (c->chunk) mkv_peer_close(c->chunk);
    mkv_client_hellos_free(c);
    free(c->chunk_addr);
    free(c);
    return rv;
}

uv_loop_t *mkv_client_loop(const struct mkv_client *c)
{
    return c->loop;
}

const char *mkv_client_leader(const struct mkv_client *c)
{
    return c->meta[c->leader].addr;
}

/* ---- meta calls ---- */

static void meta_finish(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_client *c = req->client;
    if (req->slot >= 0) {
        int slot = req->slot;
        req->slot = -1;
        slot_release(c, slot);
    }
    mkv_buf_free(&req->payload);
    req->client = NULL;
    if (status < 0 && !req->errmsg[0])
        snprintf(req->errmsg, sizeof req->errmsg, "%s", mkv_strerror(status));
    c->inflight--;
    req->cb(req, status, reply);
}

static void retry_tick(uv_timer_t *t);

static void schedule_retry(struct mkv_meta_req *req)
{
    struct mkv_client *c = req->client;
    uint64_t backoff = BACKOFF_MIN_MS << MKV_MIN(req->attempts, 6u);
    if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
    req->due_ns = mkv_mono_ns() + backoff * 1000000ull;
    req->next = c->retry_head;
    c->retry_head = req;
    if (!c->retry_active) {
        uv_timer_start(&c->retry_timer, retry_tick, BACKOFF_MIN_MS, BACKOFF_MIN_MS);
        c->retry_active = 1;
    }
}

static void retry_tick(uv_timer_t *t)
{
    struct mkv_client *c = t->data;
    uint64_t now = mkv_mono_ns();
    struct mkv_meta_req *due = NULL, *req, **pp = &c->retry_head;
    while ((req = *pp)) {
        if (req->due_ns <= now) {
            *pp = req->next;
            req->next = due;
            due = req;
        } else {
            pp = &req->next;
        }
    }
    if (!c->retry_head) {
        uv_timer_stop(&c->retry_timer);
        c->retry_active = 0;
    }
    while ((req = due)) {
        due = req->next;
        meta_send(req);
    }
}

static int find_or_add_meta(struct mkv_client *c, const char *addr)
{
    for (unsigned i = 0; i < c->nmeta; i++)
        if (strcmp(c->meta[i].addr, addr) == 0) return (int)i;
    return add_meta_node(c, addr);
}

/* A command answered (maybe early) over the current connection to
 * meta[req->peer]: remember the connection of the oldest one no sync has
 * covered yet; one over a different connection makes the next sync unable
 * to vouch for them all. */
static void early_seen(struct mkv_client *c, const struct mkv_meta_req *req)
{
    uint64_t conn = mkv_peer_connects(c->meta[req->peer].peer);
    if (c->early_seen == c->early_synced) {
        c->early_peer = req->peer;
        c->early_connects = conn;
    } else if (req->peer != c->early_peer || conn != c->early_connects) {
        c->early_broken = 1;
    }
    c->early_seen++;
}

/* META_SYNC answered on meta[req->peer]: the early replies it covers are
 * durable if they all came over the connection it was answered on (a
 * reconnect in between may hide a restart that lost them). */
static int early_synced(struct mkv_client *c, struct mkv_meta_req *req)
{
    int lost;
    if (c->early_synced >= req->sync_upto) return 0;
    lost = c->early_broken || req->peer != c->early_peer ||
           mkv_peer_connects(c->meta[req->peer].peer) != c->early_connects;
    c->early_synced = req->sync_upto;
    if (c->early_seen == c->early_synced) c->early_broken = 0;
    if (!lost) return 0;
    snprintf(req->errmsg, sizeof req->errmsg,
             "the metadata service was reconnected before changes it had answered were "
             "durable: they may be lost");
    return -EIO;
}

uint64_t mkv_client_meta_epoch(const struct mkv_client *c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < c->nmeta; i++) n += mkv_peer_connects(c->meta[i].peer);
    return n;
}

/* How long a member that timed out is passed over: a stopped or cut-off
 * leader is still named by the others until they elect another. */
#define SUSPECT_NS(c) ((c)->timeout_ms * 2 * 1000000ull)

static int suspect(const struct mkv_client *c, unsigned idx)
{
    return c->meta[idx].suspect_until_ns > mkv_mono_ns();
}

/* The next member to ask: the next one not suspect, if any. */
static void next_member(struct mkv_client *c)
{
    for (unsigned k = 1; k <= c->nmeta; k++) {
        unsigned idx = (c->leader + k) % c->nmeta;
        if (!suspect(c, idx) || k == c->nmeta) {
            c->leader = idx;
            return;
        }
    }
}

static void on_meta_reply(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_meta_req *req = MKV_CONTAINER_OF(call, struct mkv_meta_req, call);
    struct mkv_client *c = req->client;
    char leader[256] = "";
    if (status < 0 && reply)
        mkv_reply_error(reply, req->errmsg, sizeof req->errmsg, leader, sizeof leader);
    /* Only replies the service flags as early may be lost with it: in a
     * group of several voters every reply comes after the commit, and a
     * reconnection (a leader change) then loses nothing. */
    if (status == 0 && c->early && req->slot >= 0 && req->type != MKV_MSG_META_ALLOC && reply &&
        (reply->hdr.flags & MKV_FRAME_EARLY))
        early_seen(c, req);
    if (status == 0 && req->type == MKV_MSG_META_SYNC && (status = early_synced(c, req))) {
        meta_finish(req, status, NULL);
        return;
    }
    if (status == 0 || c->closing || !is_retryable(status) || status == -ECANCELED) {
        meta_finish(req, status, reply);
        return;
    }
    if (mkv_mono_ns() >= req->deadline_ns) {
        MKV_DEBUG("client", "giving up type=%s status=%d", mkv_msg_name(req->type), status);
        meta_finish(req, status == MKV_ENOTLEADER ? MKV_EUNAVAILABLE : status, reply);
        return;
    }
    req->attempts++;
    if (status == -ETIMEDOUT) c->meta[req->peer].suspect_until_ns = mkv_mono_ns() + SUSPECT_NS(c);
    if (status == MKV_ENOTLEADER && leader[0]) {
        int idx = find_or_add_meta(c, leader);
        if (idx >= 0 && (unsigned)idx != c->leader && !suspect(c, (unsigned)idx)) {
            c->leader = (unsigned)idx;
            meta_send(req); /* a fresh hint: go at once */
            return;
        }
    }
    if (status != MKV_EUNAVAILABLE && c->nmeta > 1) next_member(c);
    schedule_retry(req);
}

/* Runs the callbacks of requests answered in this process, one loop turn
 * after their call (callers do not expect a callback inside the call). */
static void on_local_idle(uv_idle_t *h)
{
    struct mkv_client *c = h->data;
    struct mkv_meta_req *req = c->local_head, *next;
    c->local_head = c->local_tail = NULL;
    for (; req; req = next) {
        struct mkv_frame *f = req->local_reply;
        next = req->next;
        req->local_reply = NULL;
        meta_finish(req, req->local_status, f);
        if (f) mkv_frame_unref(f);
    }
    if (!c->local_head) uv_idle_stop(&c->local_idle);
}

/* A read-only request answered by the meta service of this process, when
 * it can (see mkv_client_opts). Returns 1 when req was taken. */
static int meta_try_local(struct mkv_meta_req *req)
{
    struct mkv_client *c = req->client;
    struct mkv_frame *f = NULL;
    int status = 0;
    if (!c->local_meta_read || req->slot >= 0) return 0;
    if (c->local_meta_read(c->local_meta_ctx, req->type, req->payload.p, req->payload.len, &status,
                           &c->local_buf) ||
        is_retryable(status))
        return 0;
    if (status == 0) {
        size_t len = c->local_buf.len;
        f = mkv_frame_new(req->type, MKV_FRAME_REPLY, 0, len ? mkv_buf_steal(&c->local_buf) : NULL,
                          len);
        if (!f) return 0;
    }
    mkv_buf_reset(&c->local_buf);
    req->local_reply = f;
    req->local_status = status;
    req->next = NULL;
    if (c->local_tail) c->local_tail->next = req;
    else c->local_head = req;
    c->local_tail = req;
    uv_idle_start(&c->local_idle, on_local_idle);
    return 1;
}

static void meta_send(struct mkv_meta_req *req)
{
    struct mkv_client *c = req->client;
    struct mkv_outframe *of;
    uint8_t flags = 0;
    int rv;
    if (c->closing) {
        meta_finish(req, -ECANCELED, NULL);
        return;
    }
    if (meta_try_local(req)) return;
    if (req->slot >= 0) {
        mkv_put_le64(req->payload.p, c->client_base | (uint64_t)req->slot);
        mkv_put_le64(req->payload.p + 8, req->seq);
        flags = MKV_FRAME_SESSION;
        /* Never chunk ids: ids answered early and lost in a crash would be
         * given out again. */
        if (c->early && req->type != MKV_MSG_META_ALLOC) flags |= MKV_FRAME_EARLY;
    }
    req->peer = c->leader;
    of = mkv_outframe_new(req->payload.len);
    if (!of) {
        meta_finish(req, -ENOMEM, NULL);
        return;
    }
    memcpy(mkv_outframe_payload(of), req->payload.p, req->payload.len);
    rv = mkv_peer_call_frame(c->meta[c->leader].peer, &req->call, req->type, of, req->payload.len,
                             flags, c->timeout_ms, on_meta_reply);
    /* Refused at once (that member's connection is down): as if it had
     * answered so, which retries elsewhere when that is worth it. */
    if (rv) on_meta_reply(&req->call, rv, NULL);
}

static int slot_acquire(struct mkv_client *c)
{
    for (int i = 0; i < MKV_CLIENT_SLOTS; i++) {
        int s = (int)((c->slot_hint + (unsigned)i) % MKV_CLIENT_SLOTS);
        if (!c->slot_busy[s]) {
            c->slot_busy[s] = 1;
            c->slot_hint = (unsigned)s + 1;
            return s;
        }
    }
    return -1;
}

static void slot_release(struct mkv_client *c, int slot)
{
    struct mkv_meta_req *req;
    c->slot_busy[slot] = 0;
    if ((req = c->slot_wait_head)) {
        c->slot_wait_head = req->next;
        if (!c->slot_wait_head) c->slot_wait_tail = NULL;
        req->slot = slot_acquire(c);
        req->seq = c->slot_seq[req->slot]++;
        meta_send(req);
    }
}

int mkv_client_sync(struct mkv_client *c, struct mkv_meta_req *req, mkv_meta_cb cb)
{
    struct mkv_meta_sync_req q = {0};
    req->sync_upto = c->early_seen;
    return mkv_meta_call(c, req, MKV_MSG_META_SYNC, &mkv_desc_meta_sync_req, &q, cb);
}

int mkv_meta_call(struct mkv_client *c, struct mkv_meta_req *req, uint16_t type,
                  const struct mkv_msgdesc *d, const void *msg, mkv_meta_cb cb)
{
    size_t need = d ? mkv_msg_size(d, msg) : 0, len = 0;
    int raft = mkv_msg_is_raft(type), rv;
    if (c->closing) return -ECANCELED;
    memset(&req->payload, 0, sizeof req->payload);
    rv = mkv_buf_reserve(&req->payload, need + MKV_SESSION_PREFIX);
    if (rv) return rv;
    if (raft) {
        memset(req->payload.p, 0, MKV_SESSION_PREFIX);
        req->payload.len = MKV_SESSION_PREFIX;
    }
    if (d) {
        rv = mkv_msg_encode(d, msg, req->payload.p + req->payload.len,
                            req->payload.cap - req->payload.len, &len);
        if (rv) {
            mkv_buf_free(&req->payload);
            return rv;
        }
        req->payload.len += len;
    }
    req->client = c;
    req->cb = cb;
    req->type = type;
    req->attempts = 0;
    req->errmsg[0] = '\0';
    req->deadline_ns = mkv_mono_ns() + c->retry_ms * 1000000ull;
    req->slot = -1;
    req->next = NULL;
    c->inflight++;
    if (raft) {
        req->slot = slot_acquire(c);
        if (req->slot < 0) {
            if (c->slot_wait_tail) c->slot_wait_tail->next = req;
            else c->slot_wait_head = req;
            c->slot_wait_tail = req;
            return 0;
        }
        req->seq = c->slot_seq[req->slot]++;
    }
    meta_send(req);
    return 0;
}

/* ---- chunk ids ---- */

static void id_serve(struct mkv_client *c, int status);

static void on_ids(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_client *c = req->data;
    struct mkv_meta_alloc_rep rep;
    c->id_inflight = 0;
    if (status == 0 && (status = mkv_frame_decode(reply, &mkv_desc_meta_alloc_rep, &rep)) == 0) {
        if (rep.first == 0 || rep.count == 0) {
            status = -EPROTO;
        } else {
            c->id_next = rep.first;
            c->id_end = rep.first + rep.count;
        }
    }
    if (status) MKV_WARN("client", "chunk id allocation failed err=\"%s\"", req->errmsg);
    id_serve(c, status);
}

static void id_serve(struct mkv_client *c, int status)
{
    struct mkv_id_req *r;
    while ((r = c->id_wait_head) && (status || c->id_next < c->id_end)) {
        c->id_wait_head = r->next;
        if (!c->id_wait_head) c->id_wait_tail = NULL;
        if (status) r->cb(r, status, 0);
        else r->cb(r, 0, c->id_next++);
    }
    if (c->id_wait_head && !c->id_inflight && !c->closing) {
        struct mkv_meta_alloc_req q = {.count = ID_BATCH, .flags = 0};
        int rv;
        c->id_inflight = 1;
        c->id_req.data = c;
        rv = mkv_meta_call(c, &c->id_req, MKV_MSG_META_ALLOC, &mkv_desc_meta_alloc_req, &q, on_ids);
        if (rv) {
            c->id_inflight = 0;
            id_serve(c, rv);
        }
    }
}

int mkv_client_alloc_chunk(struct mkv_client *c, struct mkv_id_req *r, mkv_id_cb cb)
{
    if (c->closing) return -ECANCELED;
    r->cb = cb;
    r->next = NULL;
    if (c->id_wait_tail) c->id_wait_tail->next = r;
    else c->id_wait_head = r;
    c->id_wait_tail = r;
    id_serve(c, 0);
    return 0;
}

/* ---- fire-and-forget chunk commits and deletes ---- */

struct bg_call
{
    struct mkv_call call;
    struct mkv_client *c;
};

static void on_bg_reply(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct bg_call *b = MKV_CONTAINER_OF(call, struct bg_call, call);
    (void)reply;
    if (status) MKV_DEBUG("client", "background chunk call failed status=%d", status);
    b->c->inflight--;
    free(b);
}

static void send_refs(struct mkv_client *c, struct mkv_peer *peer, uint16_t type,
                      struct mkv_buf *refs)
{
    struct mkv_chunk_commit_req q; /* same layout as chunk_delete_req */
    struct bg_call *b;
    if (!refs->len || !peer) return;
    b = calloc(1, sizeof *b);
    if (!b) return;
    b->c = c;
    q.ids = mkv_slice_mem(refs->p, refs->len);
    c->inflight++;
    if (mkv_peer_call(peer, &b->call, type, &mkv_desc_chunk_commit_req, &q, 0, on_bg_reply)) {
        c->inflight--;
        free(b);
    }
}

/* One batch of refs per chunk server holding any of them. */
struct ref_batch
{
    struct mkv_peer *peer;
    struct mkv_buf refs;
    unsigned n;
};

static void extents_to_chunks(struct mkv_client *c, struct mkv_slice extents, uint16_t type)
{
    struct ref_batch bt[32];
    struct mkv_extent e;
    struct mkv_slice cur = extents;
    uint64_t last = 0;
    unsigned nb = 0;
    memset(bt, 0, sizeof bt);
    while (mkv_msg_next(&mkv_desc_extent, &cur, &e) == 1) {
        struct mkv_chunk_ref r = {e.chunk_id, e.version, 0};
        struct mkv_route rt;
        if (e.chunk_id == 0 || e.chunk_id == last) continue; /* one ref per chunk run */
        last = e.chunk_id;
        /* Without a route (no map yet) the chunk servers' collectors
         * resolve it. */
        if (mkv_client_route(c, e.chunk_id, &rt, NULL)) continue;
        for (unsigned i = 0; i < rt.n; i++) {
            unsigned k;
            for (k = 0; k < nb && bt[k].peer != rt.peer[i]; k++) {
            }
            if (k == nb) {
                if (nb == MKV_ARRAY_SIZE(bt)) continue;
                bt[nb++].peer = rt.peer[i];
            }
            if (mkv_msg_append(&bt[k].refs, &mkv_desc_chunk_ref, &r)) continue;
            if (++bt[k].n == MKV_MULTI_MAX) {
                send_refs(c, bt[k].peer, type, &bt[k].refs);
                mkv_buf_reset(&bt[k].refs);
                bt[k].n = 0;
            }
        }
    }
    for (unsigned k = 0; k < nb; k++) {
        send_refs(c, bt[k].peer, type, &bt[k].refs);
        mkv_buf_free(&bt[k].refs);
    }
}

void mkv_client_commit_extents(struct mkv_client *c, struct mkv_slice extents)
{
    extents_to_chunks(c, extents, MKV_MSG_CHUNK_COMMIT);
}

void mkv_client_discard_extents(struct mkv_client *c, struct mkv_slice extents)
{
    extents_to_chunks(c, extents, MKV_MSG_CHUNK_DELETE);
}

/* ---- closing ---- */

void mkv_client_close(struct mkv_client *c)
{
    struct mkv_meta_req *req;
    struct mkv_id_req *r;
    c->closing = 1;
    while ((req = c->slot_wait_head)) {
        c->slot_wait_head = req->next;
        meta_finish(req, -ECANCELED, NULL);
    }
    c->slot_wait_tail = NULL;
    while ((req = c->retry_head)) {
        c->retry_head = req->next;
        meta_finish(req, -ECANCELED, NULL);
    }
    while ((r = c->id_wait_head)) {
        c->id_wait_head = r->next;
        r->cb(r, -ECANCELED, 0);
    }
    c->id_wait_tail = NULL;
    while ((req = c->local_head)) {
        c->local_head = req->next;
        if (req->local_reply) mkv_frame_unref(req->local_reply);
        req->local_reply = NULL;
        meta_finish(req, -ECANCELED, NULL);
    }
    c->local_tail = NULL;
    mkv_client_route_close(c);
    for (unsigned i = 0; i < c->nmeta; i++) mkv_peer_close(c->meta[i].peer);
    if (c->chunk) mkv_peer_close(c->chunk);
    uv_timer_stop(&c->retry_timer);
    uv_close((uv_handle_t *)&c->retry_timer, handle_closed);
    uv_close((uv_handle_t *)&c->vmap_timer, handle_closed);
    uv_close((uv_handle_t *)&c->local_idle, handle_closed);
}

/* ---- tools ---- */

static void on_run_timeout(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

int mkv_run_until(uv_loop_t *loop, const int *done, uint64_t timeout_ms)
{
    uv_timer_t t;
    int expired = 0;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_run_timeout, timeout_ms, 0);
    while (!*done && !expired) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *done ? 0 : -ETIMEDOUT;
}

struct sync_call
{
    struct mkv_meta_req req;
    int done;
    int status;
    struct mkv_frame *reply;
};

static void on_sync_reply(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct sync_call *s = MKV_CONTAINER_OF(req, struct sync_call, req);
    s->done = 1;
    s->status = status;
    if (reply && status == 0) {
        mkv_frame_ref(reply);
        s->reply = reply;
    }
}

int mkv_meta_call_sync(struct mkv_client *c, uint16_t type, const struct mkv_msgdesc *d,
                       const void *msg, struct mkv_frame **reply, char *err, size_t errlen)
{
    struct sync_call s;
    int rv;
    memset(&s, 0, sizeof s);
    *reply = NULL;
    rv = mkv_meta_call(c, &s.req, type, d, msg, on_sync_reply);
    if (rv) return mkv_errf(err, errlen, rv, "%s", mkv_msg_name(type));
    rv = mkv_run_until(c->loop, &s.done, c->retry_ms + c->timeout_ms + 1000);
    if (rv) return mkv_errf(err, errlen, rv, "%s", mkv_msg_name(type));
    if (s.status) {
        if (err && errlen) snprintf(err, errlen, "%s", s.req.errmsg);
        return s.status;
    }
    *reply = s.reply;
    return 0;
}

int mkv_chunk_server_pick(struct mkv_slice list, char *out, size_t outlen)
{
    static const uint32_t order[] = {MKV_NODE_UP, MKV_NODE_UNKNOWN, MKV_NODE_DOWN, MKV_NODE_DEAD};
    struct mkv_chunk_server_info ci;
    for (size_t i = 0; i < MKV_ARRAY_SIZE(order); i++) {
        struct mkv_slice cur = list;
        while (mkv_msg_next(&mkv_desc_chunk_server_info, &cur, &ci) == 1) {
            if (ci.state != order[i]) continue;
            snprintf(out, outlen, "%.*s", (int)ci.address.len, (const char *)ci.address.p);
            return 1;
        }
    }
    return 0;
}
