/* minikv chunk server: filling the vshards this server was given (fill.h).
 *
 * One vshard at a time: pick one whose replica on this server is filling
 * and which has a filled replica elsewhere; note its epoch E; ask every
 * filled replica for what it holds of the vshard (CHUNK_LIST, which first
 * raises that server's fence to E: from then on it refuses writes routed
 * with an older map, and their writers reload it and reach this server
 * too; the listing waits for the writes of the vshard it had accepted
 * before); copy each version this server lacks (CHUNK_READ in 1 MiB
 * pieces, written to the local store, committed when the source has it
 * committed); list again, and when a pass copies nothing, report
 * VSHARD_FILLED(vshard, this server, E). The metadata
 * service refuses the report if the vshard changed since E (a mark, a
 * move): the fill starts over at the next tick. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fill.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/net.h"
#include "minikv/vshard.h"

#define LIST_MAX 4096
#define PIECE (1u << 20)
#define PASSES_MAX 4

struct held
{
    uint64_t chunk_id;
    uint32_t version;
    uint32_t committed;
    uint64_t size;
    unsigned src; /* index into view.peer */
};

struct mkv_fill
{
    uv_loop_t *loop;
    struct mkv_store *store;
    struct mkv_client *meta;
    const uint64_t *node_id;
    uv_timer_t timer;
    int busy, stopping, closed;
    void (*stop_cb)(void *);
    void *stop_data;
    /* the fill in progress */
    unsigned next_v; /* where the next search starts */
    unsigned v;
    struct mkv_vshard_view view;
    unsigned pass;
    unsigned src, nsrc, srcs[MKV_REPLICAS_MAX];
    uint64_t after;
    struct held *local;
    size_t nlocal, caplocal;
    struct held *todo;
    size_t ntodo, captodo, next_todo;
    unsigned copied;
    unsigned waiting; /* this pass: chunks of fewer copies being written (todo_unique) */
    uint64_t off;
    struct mkv_call call;
    struct mkv_frame *piece;
    struct mkv_store_req sreq;
    struct mkv_meta_req mreq;
    uint64_t total_copied, total_bytes;
    /* bad copies this pass counted as missing (collect_local) */
    struct mkv_store_bad skipped[64];
    unsigned nskipped;
    /* pacing: the next piece may be read from pace_ns on (mkv_mono_ns) */
    uint64_t rate;
    int64_t pace_ns;
    int pacing; /* the timer waits for pace_ns */
    /* handing back chunks of fewer copies than the factor (release) */
    struct held *hb;
    size_t nhb, caphb, hb_i;
    struct mkv_vshard_view hb_view;
    unsigned hb_copies, hb_r, hb_holders, hb_nlack, hb_lack[MKV_REPLICAS_MAX];
    uint8_t *hb_buf;
    uint64_t total_handed;
    /* releasing what this server no longer holds replicas of */
    uint64_t release_after_ns;
    int64_t last_release_ns;
    uint64_t total_released;
};

static void fill_next_list(struct mkv_fill *f);
static void fill_copy_next(struct mkv_fill *f);
static void fill_pass(struct mkv_fill *f);

static void on_next(uv_timer_t *t);

/* The fill is over (done, given up or stopping). After a fill that went
 * through, the next starts at once (from the loop, not from here). */
static void fill_end(struct mkv_fill *f)
{
    int ok = f->busy == 2;
    f->busy = 0;
    if (ok && !f->stopping) uv_timer_start(&f->timer, on_next, 0, 0);
    if (f->piece) {
        mkv_frame_unref(f->piece);
        f->piece = NULL;
    }
    if (f->stopping && f->stop_cb && f->closed) {
        void (*cb)(void *) = f->stop_cb;
        f->stop_cb = NULL;
        cb(f->stop_data);
    }
}

static int held_push(struct held **v, size_t *n, size_t *cap, const struct held *h)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        struct held *p = realloc(*v, c * sizeof *p);
        if (!p) return -ENOMEM;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = *h;
    return 0;
}

static int held_cmp(const void *a, const void *b)
{
    const struct held *x = a, *y = b;
    if (x->chunk_id != y->chunk_id) return x->chunk_id < y->chunk_id ? -1 : 1;
    return x->version < y->version ? -1 : x->version > y->version;
}

/* v sorted by (chunk, version), as the store lists them. */
static int held_has(const struct held *v, size_t n, uint64_t chunk, uint32_t version)
{
    struct held key = {chunk, version, 0, 0, 0};
    return n && bsearch(&key, v, n, sizeof *v, held_cmp) != NULL;
}

static int skipped_has(const struct mkv_fill *f, const struct held *h)
{
    for (unsigned i = 0; i < f->nskipped; i++)
        if (f->skipped[i].chunk_id == h->chunk_id && f->skipped[i].version == h->version) return 1;
    return 0;
}

/* Sorts the copies to make and keeps one of each version (a committed one
 * when a source has it committed). A chunk of fewer copies than the
 * cluster's factor (mkv_chunk_reduced) is copied only when fewer filled
 * replicas than it asks for hold it, and not while it is being written
 * (not yet committed: its writer sends it where it goes); except during a
 * move (more replicas than the factor), when this server may replace one
 * that holds it and so copies everything; and except a bad copy here,
 * which is always replaced. One with too few copies that is not committed
 * yet (its commit may still come, or the orphan collector's verdict)
 * keeps the vshard filling: the fill tries again later (f->waiting). */
static void todo_unique(struct mkv_fill *f)
{
    size_t k = 0, count = 1;
    int move = f->view.n > f->view.replicas;
    if (f->ntodo == 0) return;
    qsort(f->todo, f->ntodo, sizeof *f->todo, held_cmp);
    for (size_t i = 1; i <= f->ntodo; i++) {
        unsigned copies;
        if (i < f->ntodo && held_cmp(&f->todo[k], &f->todo[i]) == 0) {
            if (f->todo[i].committed && !f->todo[k].committed) f->todo[k] = f->todo[i];
            count++;
            continue;
        }
        copies = mkv_chunk_reduced(f->todo[k].chunk_id, f->view.replicas);
        if (!copies || move || skipped_has(f, &f->todo[k]) ||
            (f->todo[k].committed && count < copies))
            k++; /* keep it */
        else if (count < copies)
            f->waiting++; /* too few copies, not committed yet: see again later */
        if (i < f->ntodo) f->todo[k] = f->todo[i];
        count = 1;
    }
    f->ntodo = k;
}

/* What this server holds of the vshard; a version with a bad block counts
 * as missing, so that it is copied again (fill_read_next drops it first). */
static int collect_local(void *arg, const struct mkv_store_version_info *vi)
{
    struct mkv_fill *f = arg;
    struct held h = {vi->chunk_id, vi->version, vi->state == MKV_VER_COMMITTED, vi->size, 0};
    if (mkv_vshard_of(vi->chunk_id) != f->v || vi->state == MKV_VER_FOLDED) return 0;
    if (mkv_store_bad(f->store, vi->chunk_id, vi->version)) {
        if (f->nskipped < MKV_ARRAY_SIZE(f->skipped)) {
            f->skipped[f->nskipped].chunk_id = vi->chunk_id;
            f->skipped[f->nskipped++].version = vi->version;
        }
        return 0;
    }
    return held_push(&f->local, &f->nlocal, &f->caplocal, &h);
}

/* ---- listing the sources ---- */

static void on_list(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_fill *f = MKV_CONTAINER_OF(call, struct mkv_fill, call);
    struct mkv_chunk_list_rep rep;
    struct mkv_chunk_held ch;
    struct mkv_slice cur;
    if (f->stopping) {
        fill_end(f);
        return;
    }
    if (status || mkv_frame_decode(reply, &mkv_desc_chunk_list_rep, &rep)) {
        MKV_WARN("chunk", "fill: listing a source failed vshard=%u status=%d", f->v,
                 status ? status : -EPROTO);
        fill_end(f);
        return;
    }
    cur = rep.held;
    while (mkv_msg_next(&mkv_desc_chunk_held, &cur, &ch) == 1) {
        struct held h = {ch.chunk_id, ch.version, ch.committed, ch.size, f->srcs[f->src]};
        f->after = ch.chunk_id;
        if (mkv_vshard_of(ch.chunk_id) != f->v ||
            held_has(f->local, f->nlocal, h.chunk_id, h.version))
            continue;
        if (held_push(&f->todo, &f->ntodo, &f->captodo, &h)) {
            fill_end(f);
            return;
        }
    }
    if (!rep.more) {
        f->src++;
        f->after = 0;
    }
    fill_next_list(f);
}

/* Bad copies of the vshard that no source has: nothing to repair them
 * from. They are forgotten (a read that fails on them again reports them
 * again) rather than making the vshard refill forever. */
static void forget_unrepairable(struct mkv_fill *f)
{
    for (unsigned i = 0; i < f->nskipped; i++) {
        const struct mkv_store_bad *b = &f->skipped[i];
        if (held_has(f->todo, f->ntodo, b->chunk_id, b->version)) continue;
        MKV_ERROR("chunk", "a bad copy has no good copy on another replica chunk=%llx version=%u",
                  (unsigned long long)b->chunk_id, b->version);
        mkv_store_bad_clear(f->store, b->chunk_id, b->version);
    }
}

static void fill_next_list(struct mkv_fill *f)
{
    struct mkv_chunk_list_req q = {0};
    if (f->src >= f->nsrc) {
        todo_unique(f);
        forget_unrepairable(f);
        fill_copy_next(f);
        return;
    }
    q.vshard = f->v;
    q.fence = f->view.epoch;
    q.after = f->after;
    q.max = LIST_MAX;
    if (mkv_peer_call(f->view.peer[f->srcs[f->src]], &f->call, MKV_MSG_CHUNK_LIST,
                      &mkv_desc_chunk_list_req, &q, 30000, on_list))
        fill_end(f);
}

/* ---- copying ---- */

static void fill_read_next(struct mkv_fill *f);

static void on_committed(struct mkv_store_req *r, int status)
{
    struct mkv_fill *f = r->data;
    if (status && status != -ENOENT)
        MKV_WARN("chunk", "fill: commit failed chunk=%llx status=%d",
                 (unsigned long long)f->todo[f->next_todo - 1].chunk_id, status);
    fill_copy_next(f);
}

static void on_piece_written(struct mkv_store_req *r, int status)
{
    struct mkv_fill *f = r->data;
    const struct held *h = &f->todo[f->next_todo - 1];
    size_t len = (size_t)MKV_MIN((uint64_t)PIECE, h->size - f->off);
    mkv_frame_unref(f->piece);
    f->piece = NULL;
    if (status == -EEXIST) { /* committed here meanwhile (a write reached us) */
        fill_copy_next(f);
        return;
    }
    if (status) {
        MKV_WARN("chunk", "fill: local write failed chunk=%llx status=%d",
                 (unsigned long long)h->chunk_id, status);
        fill_end(f);
        return;
    }
    f->off += len;
    f->total_bytes += len;
    fill_read_next(f);
}

static void on_piece(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_fill *f = MKV_CONTAINER_OF(call, struct mkv_fill, call);
    const struct held *h = &f->todo[f->next_todo - 1];
    struct mkv_chunk_read_rep rep;
    size_t len = (size_t)MKV_MIN((uint64_t)PIECE, h->size - f->off);
    int rv;
    if (f->stopping) {
        fill_end(f);
        return;
    }
    if (status == -ENOENT || status == MKV_ESTALE) {
        /* Deleted (collected) at the source since it was listed. */
        fill_copy_next(f);
        return;
    }
    if (status || mkv_frame_decode(reply, &mkv_desc_chunk_read_rep, &rep) || rep.data.len != len) {
        MKV_WARN("chunk", "fill: reading chunk=%llx failed status=%d",
                 (unsigned long long)h->chunk_id, status ? status : -EPROTO);
        fill_end(f);
        return;
    }
    mkv_frame_ref(reply);
    f->piece = reply;
    f->sreq.data = f;
    rv = mkv_store_write(f->store, &f->sreq, h->chunk_id, h->version, 0, f->off, rep.data.p, len,
                         on_piece_written);
    if (rv) on_piece_written(&f->sreq, rv);
}

static void on_paced(uv_timer_t *t)
{
    struct mkv_fill *f = t->data;
    f->pacing = 0;
    fill_read_next(f);
}

/* With a rate, each piece read pushes pace_ns on by its share of a second;
 * a piece asked before pace_ns waits on the timer (idle during a fill). */
static int fill_paced(struct mkv_fill *f, uint64_t len)
{
    int64_t now;
    if (!f->rate) return 0;
    now = (int64_t)mkv_mono_ns();
    if (f->pace_ns > now) {
        f->pacing = 1;
        if (uv_timer_start(&f->timer, on_paced, (uint64_t)(f->pace_ns - now) / 1000000u + 1, 0)) {
            f->pacing = 0; /* the timer is closing: the server stops */
            fill_end(f);
        }
        return 1;
    }
    /* Idle time earns at most one second of credit. */
    if (f->pace_ns < now - 1000000000ll) f->pace_ns = now - 1000000000ll;
    f->pace_ns += (int64_t)(len * 1000000000ull / f->rate);
    return 0;
}

static void on_bad_dropped(struct mkv_store_req *r, int status)
{
    struct mkv_fill *f = r->data;
    const struct held *h = &f->todo[f->next_todo - 1];
    if (status) {
        MKV_WARN("chunk", "fill: cannot drop a bad copy chunk=%llx version=%u status=%d",
                 (unsigned long long)h->chunk_id, h->version, status);
        mkv_store_bad_note(f->store, h->chunk_id, h->version); /* still bad: next time */
        fill_end(f);
        return;
    }
    /* (mkv_store_delete forgot it as bad) */
    MKV_INFO("chunk", "repairing a bad copy from another replica chunk=%llx version=%u",
             (unsigned long long)h->chunk_id, h->version);
    fill_read_next(f);
}

static void fill_read_next(struct mkv_fill *f)
{
    const struct held *h = &f->todo[f->next_todo - 1];
    struct mkv_chunk_read_req q = {0};
    if (f->stopping) {
        fill_end(f);
        return;
    }
    /* Our copy failed its checksum: it goes before the good one comes. */
    if (f->off == 0 && mkv_store_bad(f->store, h->chunk_id, h->version)) {
        f->sreq.data = f;
        if (mkv_store_delete(f->store, &f->sreq, h->chunk_id, h->version, on_bad_dropped))
            fill_end(f);
        return;
    }
    if (f->off >= h->size) {
        f->copied++;
        f->total_copied++;
        if (!h->committed) {
            fill_copy_next(f);
            return;
        }
        f->sreq.data = f;
        if (mkv_store_commit(f->store, &f->sreq, h->chunk_id, h->version, on_committed))
            fill_copy_next(f);
        return;
    }
    q.chunk_id = h->chunk_id;
    q.version = h->version;
    q.offset = f->off;
    q.length = (uint32_t)MKV_MIN((uint64_t)PIECE, h->size - f->off);
    if (fill_paced(f, q.length)) return;
    if (mkv_peer_call(f->view.peer[h->src], &f->call, MKV_MSG_CHUNK_READ, &mkv_desc_chunk_read_req,
                      &q, 30000, on_piece))
        fill_end(f);
}

static void on_filled(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_fill *f = MKV_CONTAINER_OF(req, struct mkv_fill, mreq);
    (void)reply;
    if (status == 0) {
        MKV_DEBUG("chunk", "vshard filled vshard=%u", f->v);
        f->busy = 2; /* went through: the next at once */
    } else if (status != -ECANCELED)
        MKV_INFO("chunk", "fill report refused, starting over vshard=%u status=%d", f->v, status);
    mkv_client_map_refresh(f->meta);
    fill_end(f);
}

static void on_next(uv_timer_t *t)
{
    mkv_fill_tick(t->data);
}

static void fill_copy_next(struct mkv_fill *f)
{
    if (f->stopping) {
        fill_end(f);
        return;
    }
    if (f->next_todo < f->ntodo) {
        f->next_todo++;
        f->off = 0;
        fill_read_next(f);
        return;
    }
    /* The pass is over: another while one still copies something. */
    if (f->copied > 0 && f->pass < PASSES_MAX) {
        fill_pass(f);
        return;
    }
    if (f->copied > 0) { /* writes keep coming with old maps: try later */
        fill_end(f);
        return;
    }
    if (f->waiting) {
        MKV_DEBUG("chunk", "fill: vshard=%u waits for %u chunks being written", f->v, f->waiting);
        fill_end(f);
        return;
    }
    {
        struct mkv_vshard_filled_req q = {f->v, *f->node_id, f->view.epoch};
        if (mkv_meta_call(f->meta, &f->mreq, MKV_MSG_VSHARD_FILLED, &mkv_desc_vshard_filled_req, &q,
                          on_filled))
            fill_end(f);
    }
}

/* One pass: what this server holds of the vshard, then every source. */
static void fill_pass(struct mkv_fill *f)
{
    f->pass++;
    f->copied = f->waiting = 0;
    f->nlocal = f->ntodo = f->next_todo = f->nskipped = 0;
    if (mkv_store_list_versions(f->store, collect_local, f)) {
        fill_end(f);
        return;
    }
    f->src = 0;
    f->after = 0;
    fill_next_list(f);
}

/* ---- releasing ---- */

#define RELEASE_EVERY_NS (10ll * 1000000000ll) /* between scans of the index */

struct release_scan
{
    struct mkv_fill *f;
    int64_t now;
    struct mkv_vshard_view views[MKV_VSHARDS];
    uint8_t known[MKV_VSHARDS], keep[MKV_VSHARDS];
};

/* Whether this server should keep what it holds of vshard v: it is one of
 * its replicas, or no filled replica is left elsewhere (nothing is given
 * up that exists nowhere else), or the map is not at hand. */
static int keep_vshard(struct release_scan *rs, unsigned v)
{
    struct mkv_fill *f = rs->f;
    if (!rs->known[v]) {
        struct mkv_vshard_view *vw = &rs->views[v];
        int keep = 1;
        if (mkv_client_vshard(f->meta, v, vw) == 0) {
            unsigned elsewhere = 0;
            keep = 0;
            for (unsigned i = 0; i < vw->n; i++) {
                if (vw->node[i] == *f->node_id) keep = 1;
                else if (!(vw->filling & (1u << i))) elsewhere++;
            }
            if (!elsewhere) keep = 1;
        }
        rs->known[v] = 1;
        rs->keep[v] = (uint8_t)keep;
    }
    return rs->keep[v];
}

static int collect_release(void *arg, const struct mkv_store_version_info *vi)
{
    struct release_scan *rs = arg;
    struct mkv_fill *f = rs->f;
    struct held h = {vi->chunk_id, vi->version, vi->state == MKV_VER_COMMITTED, vi->size, 0};
    unsigned v = mkv_vshard_of(vi->chunk_id);
    if (vi->state == MKV_VER_FOLDED || rs->now - vi->ctime_ns < (int64_t)f->release_after_ns ||
        keep_vshard(rs, v))
        return 0;
    /* A chunk of fewer copies than the factor may exist nowhere else (this
     * server was declared dead, and its vshards went elsewhere without
     * it): handed back first (hand_next). One not committed is left to the
     * orphan collector, which commits or deletes it. */
    if (mkv_chunk_copies(vi->chunk_id))
        return h.committed ? held_push(&f->hb, &f->nhb, &f->caphb, &h) : 0;
    return held_push(&f->todo, &f->ntodo, &f->captodo, &h);
}

/* ---- handing back ----
 *
 * For each chunk of c copies (c below the factor) that this server holds
 * of a vshard it is no longer a replica of: if no object names it any
 * more (REFCHECK), delete it; else ask the vshard's filled replicas what
 * they hold of it (CHUNK_LIST: only a committed copy of the same size
 * counts); while fewer than c hold it, copy it to one that does not
 * (CHUNK_WRITE in 1 MiB pieces, then CHUNK_COMMIT); then delete it here.
 * A replica that cannot be asked, or a copy that fails, leaves the chunk
 * here for the next scan. */

static void hand_next(struct mkv_fill *f);
static void hand_decide(struct mkv_fill *f);

static int view_has(const struct mkv_vshard_view *v, uint64_t node)
{
    for (unsigned i = 0; i < v->n; i++)
        if (v->node[i] == node) return 1;
    return 0;
}
static void hand_piece(struct mkv_fill *f);

static void hand_skip(struct mkv_fill *f, const char *why, int status)
{
    const struct held *h = &f->hb[f->hb_i];
    MKV_WARN("chunk", "hand back: kept chunk=%llx version=%u for the next scan (%s) status=%d",
             (unsigned long long)h->chunk_id, h->version, why, status);
    f->hb_i++;
    hand_next(f);
}

/* h as a list of one chunk_ref record, in buf. */
static int held_ref(const struct held *h, uint8_t *buf, size_t cap, struct mkv_slice *out)
{
    struct mkv_chunk_ref ref = {h->chunk_id, h->version, 0};
    size_t len;
    if (mkv_msg_encode(&mkv_desc_chunk_ref, &ref, buf, cap, &len)) return -EPROTO;
    *out = mkv_slice_mem(buf, len);
    return 0;
}

/* A call that could not even be made (the client or server is closing):
 * the hand-back stops here, the next scan starts it again. */
static void hand_stop(struct mkv_fill *f, const char *why, int status)
{
    MKV_WARN("chunk", "hand back: stopped (%s) status=%d", why, status);
    fill_end(f);
}

static void on_hand_deleted(struct mkv_store_req *r, int status)
{
    struct mkv_fill *f = r->data;
    if (status && status != -ENOENT)
        MKV_WARN("chunk", "release: delete failed chunk=%llx status=%d",
                 (unsigned long long)f->hb[f->hb_i].chunk_id, status);
    else f->total_released++;
    f->hb_i++;
    hand_next(f);
}

static void hand_probe(struct mkv_fill *f);

static void on_hand_probe(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_fill *f = MKV_CONTAINER_OF(call, struct mkv_fill, call);
    const struct held *h = &f->hb[f->hb_i];
    struct mkv_chunk_list_rep rep;
    struct mkv_chunk_held ch;
    struct mkv_slice cur;
    int state = 0; /* 0: lacks it, 1: holds it committed, 2: committed, another size, 3: prepared */
    if (f->stopping) {
        fill_end(f);
        return;
    }
    if (status || mkv_frame_decode(reply, &mkv_desc_chunk_list_rep, &rep)) {
        hand_skip(f, "a replica did not answer", status ? status : -EPROTO);
        return;
    }
    cur = rep.held;
    while (mkv_msg_next(&mkv_desc_chunk_held, &cur, &ch) == 1)
        if (ch.chunk_id == h->chunk_id && ch.version == h->version)
            state = !ch.committed ? 3 : ch.size == h->size ? 1 : 2;
    /* Only a whole committed copy counts. A prepared one (a hand-back cut
     * short) is written again; a committed one of another size cannot be
     * (committed versions are immutable): neither. */
    if (state == 1) f->hb_holders++;
    else if (state != 2) f->hb_lack[f->hb_nlack++] = f->hb_r;
    f->hb_r++;
    hand_probe(f);
}

/* Asks the next filled replica (from hb_r on) what it holds of the chunk
 * (CHUNK_LIST from just before it, without raising its fence). */
static void hand_probe(struct mkv_fill *f)
{
    const struct held *h = &f->hb[f->hb_i];
    struct mkv_chunk_list_req q = {0};
    while (f->hb_r < f->hb_view.n && (f->hb_view.filling & (1u << f->hb_r))) f->hb_r++;
    if (f->hb_r >= f->hb_view.n) {
        hand_decide(f);
        return;
    }
    q.vshard = mkv_vshard_of(h->chunk_id);
    q.fence = 0;
    q.after = h->chunk_id - 1;
    q.max = 16;
    if (mkv_peer_call(f->hb_view.peer[f->hb_r], &f->call, MKV_MSG_CHUNK_LIST,
                      &mkv_desc_chunk_list_req, &q, 30000, on_hand_probe))
        hand_stop(f, "cannot ask a replica", -ENOTCONN);
}

static void on_hand_committed(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_fill *f = MKV_CONTAINER_OF(call, struct mkv_fill, call);
    const struct held *h = &f->hb[f->hb_i];
    if (f->stopping) {
        fill_end(f);
        return;
    }
    {
        struct mkv_chunk_commit_rep rep;
        if (status == 0 &&
            (mkv_frame_decode(reply, &mkv_desc_chunk_commit_rep, &rep) || rep.count != 1))
            status = -ENOENT; /* the replica did not have it to commit */
    }
    if (status) {
        hand_skip(f, "commit on a replica failed", status);
        return;
    }
    MKV_INFO("chunk", "handed back chunk=%llx version=%u to node=%llu (its copies: %u of %u)",
             (unsigned long long)h->chunk_id, h->version,
             (unsigned long long)f->hb_view.node[f->hb_lack[0]], f->hb_holders + 1, f->hb_copies);
    f->total_handed++;
    f->hb_holders++;
    memmove(f->hb_lack, f->hb_lack + 1, --f->hb_nlack * sizeof *f->hb_lack);
    hand_decide(f);
}

static void on_hand_written(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_fill *f = MKV_CONTAINER_OF(call, struct mkv_fill, call);
    const struct held *h = &f->hb[f->hb_i];
    (void)reply;
    if (f->stopping) {
        fill_end(f);
        return;
    }
    if (status) {
        if (status == MKV_ESTALE) mkv_client_map_refresh(f->meta); /* its map is newer */
        hand_skip(f, "writing to a replica failed", status);
        return;
    }
    f->off += MKV_MIN((uint64_t)PIECE, h->size - f->off);
    hand_piece(f);
}

static void on_hand_read(struct mkv_store_req *r, int status)
{
    struct mkv_fill *f = r->data;
    const struct held *h = &f->hb[f->hb_i];
    struct mkv_chunk_write_req q = {0};
    if (f->stopping) {
        fill_end(f);
        return;
    }
    if (status) {
        hand_skip(f, "reading the local copy failed", status);
        return;
    }
    q.chunk_id = h->chunk_id;
    q.version = h->version;
    q.offset = f->off;
    q.flags = MKV_CHUNK_SYNC;
    q.vepoch = f->hb_view.epoch;
    q.data = mkv_slice_mem(f->hb_buf, (size_t)MKV_MIN((uint64_t)PIECE, h->size - f->off));
    if (mkv_peer_call(f->hb_view.peer[f->hb_lack[0]], &f->call, MKV_MSG_CHUNK_WRITE,
                      &mkv_desc_chunk_write_req, &q, 30000, on_hand_written))
        hand_stop(f, "cannot write to a replica", -ENOTCONN);
}

/* The next piece of the chunk to the replica hb_lack[0], then its commit. */
static void hand_piece(struct mkv_fill *f)
{
    const struct held *h = &f->hb[f->hb_i];
    int rv;
    if (f->off >= h->size) {
        struct mkv_chunk_commit_req q;
        uint8_t buf[32];
        if (held_ref(h, buf, sizeof buf, &q.ids)) {
            hand_stop(f, "encoding", -EPROTO);
            return;
        }
        if (mkv_peer_call(f->hb_view.peer[f->hb_lack[0]], &f->call, MKV_MSG_CHUNK_COMMIT,
                          &mkv_desc_chunk_commit_req, &q, 30000, on_hand_committed))
            hand_stop(f, "cannot commit on a replica", -ENOTCONN);
        return;
    }
    if (!f->hb_buf && !(f->hb_buf = malloc(PIECE))) {
        hand_stop(f, "memory", -ENOMEM);
        return;
    }
    f->sreq.data = f;
    rv = mkv_store_read(f->store, &f->sreq, h->chunk_id, h->version, f->off, f->hb_buf,
                        (size_t)MKV_MIN((uint64_t)PIECE, h->size - f->off), on_hand_read);
    if (rv) hand_stop(f, "reading the local copy", rv);
}

/* Enough copies elsewhere: delete this one; else copy it to a replica
 * that lacks it; none left to copy to: keep it. */
static void hand_decide(struct mkv_fill *f)
{
    const struct held *h = &f->hb[f->hb_i];
    if (f->hb_holders >= f->hb_copies) {
        f->sreq.data = f;
        if (mkv_store_delete(f->store, &f->sreq, h->chunk_id, h->version, on_hand_deleted))
            hand_stop(f, "delete", -EIO);
        return;
    }
    if (f->hb_nlack == 0) {
        hand_skip(f, "no filled replica to copy it to", 0);
        return;
    }
    f->off = 0;
    hand_piece(f);
}

static void on_hand_refcheck(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_fill *f = req->data;
    struct mkv_refcheck_rep rep;
    if (f->stopping) {
        fill_end(f);
        return;
    }
    if (status || mkv_frame_decode(reply, &mkv_desc_refcheck_rep, &rep) ||
        rep.referenced.len != 1) {
        hand_skip(f, "cannot ask the metadata service", status ? status : -EPROTO);
        return;
    }
    if (rep.referenced.p[0]) {
        hand_probe(f);
        return;
    }
    /* Deleted while this server was away: nothing to hand back. */
    f->hb_holders = f->hb_copies;
    hand_decide(f);
}

/* Whether an object still names the chunk (deleted ones were collected
 * from the replicas while this server was away: not to be revived). */
static void hand_refcheck(struct mkv_fill *f)
{
    struct mkv_refcheck_req q;
    uint8_t buf[32];
    if (held_ref(&f->hb[f->hb_i], buf, sizeof buf, &q.ids)) {
        hand_stop(f, "encoding", -EPROTO);
        return;
    }
    f->mreq.data = f;
    if (mkv_meta_call(f->meta, &f->mreq, MKV_MSG_REFCHECK, &mkv_desc_refcheck_req, &q,
                      on_hand_refcheck))
        hand_stop(f, "cannot ask the metadata service", -ENOTCONN);
}

static void hand_next(struct mkv_fill *f)
{
    /* Chunks that need no call are passed over here, in a loop. */
    for (; !f->stopping && f->hb_i < f->nhb; f->hb_i++) {
        const struct held *h = &f->hb[f->hb_i];
        unsigned v = mkv_vshard_of(h->chunk_id), c = mkv_chunk_copies(h->chunk_id);
        if (mkv_client_vshard(f->meta, v, &f->hb_view) || view_has(&f->hb_view, *f->node_id))
            continue; /* no map at hand, or a replica here again: kept */
        /* At most the factor (it may have been lowered since). */
        f->hb_copies = MKV_MIN(c, f->hb_view.replicas ? f->hb_view.replicas : 1);
        f->hb_r = f->hb_holders = f->hb_nlack = 0;
        hand_refcheck(f);
        return;
    }
    fill_end(f);
}

static void release_next(struct mkv_fill *f);

static void on_released(struct mkv_store_req *r, int status)
{
    struct mkv_fill *f = r->data;
    if (status && status != -ENOENT)
        MKV_WARN("chunk", "release: delete failed chunk=%llx status=%d",
                 (unsigned long long)f->todo[f->next_todo - 1].chunk_id, status);
    else f->total_released++;
    release_next(f);
}

static void release_next(struct mkv_fill *f)
{
    if (f->stopping || f->next_todo >= f->ntodo) {
        if (f->ntodo)
            MKV_INFO("chunk", "released data of vshards held elsewhere versions=%zu", f->ntodo);
        f->hb_i = 0;
        hand_next(f);
        return;
    }
    f->sreq.data = f;
    f->next_todo++;
    if (mkv_store_delete(f->store, &f->sreq, f->todo[f->next_todo - 1].chunk_id,
                         f->todo[f->next_todo - 1].version, on_released))
        fill_end(f);
}

/* Deletes what this server holds of vshards it is no longer a replica of
 * (moved, drained), once older than release_after: their filled replicas
 * are elsewhere. */
static void release_scan(struct mkv_fill *f)
{
    struct release_scan *rs;
    int64_t now = mkv_now_ns();
    if (now - f->last_release_ns < RELEASE_EVERY_NS) return;
    f->last_release_ns = now;
    if (!(rs = calloc(1, sizeof *rs))) return;
    rs->f = f;
    rs->now = now;
    f->ntodo = f->next_todo = f->nhb = 0;
    if (mkv_store_list_versions(f->store, collect_release, rs) || (f->ntodo == 0 && f->nhb == 0)) {
        free(rs);
        return;
    }
    free(rs);
    f->busy = 1;
    release_next(f);
}

void mkv_fill_tick(struct mkv_fill *f)
{
    if (f->busy || f->stopping || !*f->node_id) return;
    for (unsigned k = 0; k < MKV_VSHARDS; k++) {
        unsigned v = (f->next_v + k) % MKV_VSHARDS;
        struct mkv_vshard_view view;
        int me = -1;
        unsigned nsrc = 0, srcs[MKV_REPLICAS_MAX];
        int rv = mkv_client_vshard(f->meta, v, &view);
        if (rv) return; /* no map (yet): nothing to fill */
        for (unsigned i = 0; i < view.n; i++) {
            if (view.node[i] == *f->node_id) me = (int)i;
            else if (!(view.filling & (1u << i))) srcs[nsrc++] = i;
        }
        if (me < 0 || !(view.filling & (1u << me)) || nsrc == 0) continue;
        f->next_v = (v + 1) % MKV_VSHARDS;
        f->v = v;
        f->view = view;
        f->nsrc = nsrc;
        memcpy(f->srcs, srcs, sizeof srcs);
        f->pass = 0;
        f->busy = 1;
        MKV_DEBUG("chunk", "fill starts vshard=%u epoch=%llu sources=%u", v,
                  (unsigned long long)view.epoch, nsrc);
        fill_pass(f);
        return;
    }
    release_scan(f);
}

struct mkv_fill *mkv_fill_new(uv_loop_t *loop, struct mkv_store *store, struct mkv_client *meta,
                              const uint64_t *node_id, uint64_t release_after_ms, uint64_t rate)
{
    struct mkv_fill *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->rate = rate;
    f->release_after_ns = (release_after_ms ? release_after_ms : 60000) * 1000000ull;
    f->loop = loop;
    f->store = store;
    f->meta = meta;
    f->node_id = node_id;
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    return f;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct mkv_fill *f = h->data;
    f->closed = 1;
    if (f->pacing) { /* the wait ended with the timer: so does the fill */
        f->pacing = 0;
        fill_end(f);
        return;
    }
    if (!f->busy) {
        f->busy = 1; /* fill_end calls the callback */
        fill_end(f);
    }
}

void mkv_fill_stop(struct mkv_fill *f, void (*cb)(void *data), void *data)
{
    f->stopping = 1;
    f->stop_cb = cb;
    f->stop_data = data;
    /* A fill waiting for a call or the store ends when that answers (the
     * meta client and the peers are closed by the server: calls answer
     * -ECANCELED). */
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

void mkv_fill_free(struct mkv_fill *f)
{
    if (!f) return;
    if (f->piece) mkv_frame_unref(f->piece);
    free(f->local);
    free(f->todo);
    free(f->hb);
    free(f->hb_buf);
    free(f);
}

void mkv_fill_totals(const struct mkv_fill *f, uint64_t *versions, uint64_t *bytes)
{
    *versions = f->total_copied;
    *bytes = f->total_bytes;
}
