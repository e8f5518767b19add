/* minikv chunk server: wire protocol handlers and collectors (chunk.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk.h"
#include "fill.h"
#include "minikv/auth.h"
#include "minikv/client.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/net.h"
#include "minikv/trust.h"
#include "minikv/vshard.h"

#define GC_BATCH 1000

/* What a connection authenticated as (mkv_conn_data). */
static int conn_client = 1, conn_cluster = 2;

struct mkv_chunk_server
{
    uv_loop_t *loop;
    struct mkv_store *store;
    struct mkv_server *srv;
    struct mkv_client *meta;
    uint8_t cluster_key[32];
    int auth; /* clients must show a token */
    uv_timer_t gc_timer;
    uv_timer_t orphan_timer;
    uv_timer_t scrub_timer;
    struct mkv_store_req scrub_req;
    uint64_t scrub_bad;
    int scrubbing;
    /* Registration and heartbeats (NODE_REGISTER, NODE_HEARTBEAT). */
    uv_timer_t hb_timer;
    struct mkv_meta_req hb_req;
    int hb_busy;
    uint64_t node_id; /* 0: not registered yet */
    int registered;   /* this run's registration went through */
    char id_path[PATH_MAX];
    /* Fences (CHUNK_LIST): per vshard, the oldest map epoch a write may
     * have been routed with; kept in DIR/fences (256 LE64). */
    uint64_t fence[MKV_VSHARDS];
    char fence_path[PATH_MAX];
    struct mkv_fill *fill;
    int fill_running; /* until the fill has stopped */
    uint64_t bad_gen; /* of the store's bad versions, when last reported */
    struct mkv_store_bad bad[MKV_STORE_BAD_MAX]; /* scratch for report_bad */
    /* Writes accepted and not yet answered, per vshard; listings of a
     * vshard wait for them (its fence just went up: they are the last
     * made with an older map). */
    unsigned wr_inflight[MKV_VSHARDS];
    struct deferred_list *deferred;
    char advertise[288];
    char zone[65];
    uint64_t gc_interval_ms, orphan_age_ms, orphan_interval_ms;
    int gc_running, orphan_running;
    int stopping;
    int pending_ops; /* store requests in flight */
    int handles;
    void (*stop_cb)(void *);
    void *stop_data;
    /* collector state */
    struct mkv_meta_req gc_req;
    struct mkv_meta_req orphan_req;
    struct mkv_buf gc_ids;
    struct mkv_buf orphan_ids;
    unsigned gc_left;
    int gc_full;
    unsigned orphan_left;
};

/* One wire request being served by the store. */
struct op
{
    struct mkv_store_req req;
    struct mkv_chunk_server *cs;
    struct mkv_conn *conn;
    struct mkv_frame *frame;
    struct mkv_outframe *out;
    uint32_t length;
    int vshard;    /* a write's (counted in wr_inflight), else -1 */
    unsigned left; /* sub-requests (commit/delete lists) */
    unsigned done;
    int status;
    struct mkv_store_req *subs;
};

static void maybe_stopped(struct mkv_chunk_server *cs);
static void handle_list(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f);
static void write_done(struct mkv_chunk_server *cs, unsigned v);

/* A CHUNK_LIST waiting for the writes of its vshard. */
struct deferred_list
{
    struct mkv_conn *conn;
    struct mkv_frame *frame;
    unsigned vshard;
    struct deferred_list *next;
};

static struct op *op_new(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f)
{
    struct op *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->cs = cs;
    o->conn = c;
    o->frame = f;
    o->req.data = o;
    o->vshard = -1;
    mkv_conn_ref(c);
    cs->pending_ops++;
    return o;
}

static void op_free(struct op *o)
{
    struct mkv_chunk_server *cs = o->cs;
    if (o->vshard >= 0) write_done(cs, (unsigned)o->vshard);
    if (o->frame) mkv_frame_unref(o->frame);
    if (o->out) mkv_outframe_free(o->out);
    mkv_conn_unref(o->conn);
    free(o->subs);
    free(o);
    cs->pending_ops--;
    maybe_stopped(cs);
}

static void reply_status(struct op *o, int status)
{
    if (mkv_conn_is_open(o->conn))
        mkv_conn_reply_error(o->conn, &o->frame->hdr, status, mkv_strerror(status), NULL);
}

/* ---- CHUNK_WRITE ---- */

static void on_written(struct mkv_store_req *req, int status)
{
    struct op *o = req->data;
    if (status) {
        reply_status(o, status);
    } else if (mkv_conn_is_open(o->conn)) {
        struct mkv_chunk_write_rep rep = {0};
        struct mkv_store_stats st;
        mkv_store_get_stats(o->cs->store, &st);
        rep.lsn = st.lsn;
        rep.length = o->length;
        mkv_conn_reply(o->conn, &o->frame->hdr, &mkv_desc_chunk_write_rep, &rep);
    }
    op_free(o);
}

static void handle_write(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_chunk_write_req q;
    struct op *o;
    int rv = mkv_frame_decode(f, &mkv_desc_chunk_write_req, &q);
    if (rv == 0 && (q.chunk_id == 0 || q.version == 0 || q.offset % MKV_BLOCK_SIZE ||
                    q.offset > MKV_CHUNK_SIZE || q.data.len > MKV_CHUNK_SIZE - q.offset))
        rv = -EINVAL;
    if (rv) {
        mkv_conn_reply_error(c, &f->hdr, rv, "invalid CHUNK_WRITE", NULL);
        mkv_frame_unref(f);
        return;
    }
    if (q.vepoch < cs->fence[mkv_vshard_of(q.chunk_id)]) {
        /* Routed with a map older than the fill going on for this vshard:
         * the writer reloads it and sends the filling replica a copy too. */
        mkv_conn_reply_error(c, &f->hdr, MKV_ESTALE, "the vshard map changed: reload it", NULL);
        mkv_frame_unref(f);
        return;
    }
    o = op_new(cs, c, f);
    if (!o) {
        mkv_conn_reply_error(c, &f->hdr, -ENOMEM, NULL, NULL);
        mkv_frame_unref(f);
        return;
    }
    o->length = q.data.len;
    o->vshard = (int)mkv_vshard_of(q.chunk_id);
    cs->wr_inflight[o->vshard]++;
    /* The data stays in the frame, which the op holds until the callback. */
    rv = mkv_store_write(cs->store, &o->req, q.chunk_id, q.version, q.base_version, q.offset,
                         q.data.p, q.data.len, on_written);
    if (rv) on_written(&o->req, rv);
}

/* ---- CHUNK_READ ---- */

static void on_read(struct mkv_store_req *req, int status)
{
    struct op *o = req->data;
    if (status) {
        reply_status(o, status);
    } else if (mkv_conn_is_open(o->conn)) {
        struct mkv_outframe *of = o->out;
        mkv_put_le32(mkv_outframe_payload(of), o->length);
        o->out = NULL;
        mkv_conn_send(o->conn, of, o->frame->hdr.type, MKV_FRAME_REPLY, 0, o->frame->hdr.req_id,
                      4 + (size_t)o->length);
    }
    op_free(o);
}

static void handle_read(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_chunk_read_req q;
    struct op *o;
    int rv = mkv_frame_decode(f, &mkv_desc_chunk_read_req, &q);
    if (rv == 0 && (q.chunk_id == 0 || q.length > MKV_DATA_MAX || q.offset > MKV_CHUNK_SIZE ||
                    q.length > MKV_CHUNK_SIZE - q.offset))
        rv = -EINVAL;
    if (rv) {
        mkv_conn_reply_error(c, &f->hdr, rv, "invalid CHUNK_READ", NULL);
        mkv_frame_unref(f);
        return;
    }
    o = op_new(cs, c, f);
    if (o) o->out = mkv_outframe_new(4 + (size_t)q.length);
    if (!o || !o->out) {
        if (o) op_free(o);
        mkv_conn_reply_error(c, &f->hdr, -ENOMEM, NULL, NULL);
        if (!o) mkv_frame_unref(f);
        return;
    }
    o->length = q.length;
    /* Read straight into the reply frame: no copy on the way out. */
    rv = mkv_store_read(cs->store, &o->req, q.chunk_id, q.version, q.offset,
                        mkv_outframe_payload(o->out) + 4, q.length, on_read);
    if (rv) on_read(&o->req, rv);
}

/* ---- CHUNK_COMMIT / CHUNK_DELETE ---- */

static void on_sub_done(struct mkv_store_req *req, int status)
{
    struct op *o = req->data;
    if (status && status != -ENOENT && !o->status) o->status = status;
    if (status == 0) o->done++;
    if (--o->left > 0) return;
    if (o->status) {
        reply_status(o, o->status);
    } else if (mkv_conn_is_open(o->conn)) {
        struct mkv_chunk_commit_rep rep = {o->done};
        mkv_conn_reply(o->conn, &o->frame->hdr, &mkv_desc_chunk_commit_rep, &rep);
    }
    op_free(o);
}

static void handle_refs(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_chunk_commit_req q; /* same layout as chunk_delete_req */
    struct mkv_chunk_ref ref;
    struct mkv_slice cur;
    struct op *o;
    unsigned n = 0, i = 0;
    int rv = mkv_frame_decode(f, &mkv_desc_chunk_commit_req, &q);
    if (rv == 0) {
        cur = q.ids;
        while ((rv = mkv_msg_next(&mkv_desc_chunk_ref, &cur, &ref)) == 1) n++;
    }
    if (rv < 0) {
        mkv_conn_reply_error(c, &f->hdr, rv, "invalid chunk list", NULL);
        mkv_frame_unref(f);
        return;
    }
    o = op_new(cs, c, f);
    if (o && n) o->subs = calloc(n, sizeof *o->subs);
    if (!o || (n && !o->subs)) {
        if (o) op_free(o);
        else mkv_frame_unref(f);
        mkv_conn_reply_error(c, &f->hdr, -ENOMEM, NULL, NULL);
        return;
    }
    if (n == 0) {
        struct mkv_chunk_commit_rep rep = {0};
        mkv_conn_reply(c, &f->hdr, &mkv_desc_chunk_commit_rep, &rep);
        op_free(o);
        return;
    }
    o->left = n;
    cur = q.ids;
    while (mkv_msg_next(&mkv_desc_chunk_ref, &cur, &ref) == 1) {
        struct mkv_store_req *sub = &o->subs[i++];
        sub->data = o;
        rv = f->hdr.type == MKV_MSG_CHUNK_COMMIT
                 ? mkv_store_commit(cs->store, sub, ref.chunk_id, ref.version, on_sub_done)
                 : mkv_store_delete(cs->store, sub, ref.chunk_id, ref.version, on_sub_done);
        if (rv) on_sub_done(sub, rv);
    }
}

/* ---- CHUNK_STAT ---- */

static void handle_stat(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_store_stats st;
    struct mkv_chunk_stat_rep rep = {0};
    uint8_t hist[8 * (MKV_HIST_BUCKETS + 2)];
    mkv_store_get_stats(cs->store, &st);
    rep.capacity = st.capacity;
    rep.free = st.free;
    rep.used = st.used;
    rep.live = st.live;
    rep.chunks = st.chunks;
    rep.lsn = st.lsn;
    rep.state = 0;
    rep.io_backend = mkv_slice_str(st.io_backend ? st.io_backend : "");
    rep.fsyncs = st.fsyncs;
    rep.fsync_ns_total = st.fsync_latency.sum_ns;
    rep.corrupt_blocks = st.corrupt_blocks;
    rep.segments = st.segments;
    for (int i = 0; i < MKV_HIST_BUCKETS; i++)
        mkv_put_le64(hist + 8 * i, st.fsync_latency.bucket[i]);
    mkv_put_le64(hist + 8 * MKV_HIST_BUCKETS, st.fsync_latency.count);
    mkv_put_le64(hist + 8 * (MKV_HIST_BUCKETS + 1), st.fsync_latency.sum_ns);
    rep.fsync_hist = mkv_slice_mem(hist, sizeof hist);
    if (cs->fill) mkv_fill_totals(cs->fill, &rep.fill_copied, &rep.fill_bytes);
    mkv_conn_reply(c, &f->hdr, &mkv_desc_chunk_stat_rep, &rep);
    mkv_frame_unref(f);
}

/* AUTH_TOKEN: a token of the metadata service, for the key that shows it,
 * not expired. The connection is in from then on. */
static void handle_auth_token(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_auth_token_req q;
    struct mkv_auth_token_rep rep = {0};
    char ak[MKV_ACCESS_KEY_MAX + 1];
    uint8_t want[MKV_AUTH_MAC];
    if (mkv_frame_decode(f, &mkv_desc_auth_token_req, &q) || q.token.len != MKV_AUTH_MAC ||
        !q.access_key.len) {
        mkv_conn_reply_error(c, &f->hdr, -EPROTO, "malformed AUTH_TOKEN", NULL);
        return;
    }
    snprintf(ak, sizeof ak, "%.*s", (int)q.access_key.len, (const char *)q.access_key.p);
    if (cs->auth) {
        mkv_auth_token(cs->cluster_key, ak, q.expiry_ns, want);
        if (!mkv_auth_mac_equal(want, q.token.p, MKV_AUTH_MAC) ||
            (int64_t)q.expiry_ns < mkv_now_ns()) {
            MKV_WARN("chunk", "token refused peer=%s key=%s", mkv_conn_peer_name(c), ak);
            mkv_conn_reply_error(c, &f->hdr, -EACCES, "invalid or expired token", NULL);
            return;
        }
    }
    mkv_conn_set_data(c, strcmp(ak, MKV_CLUSTER_PRINCIPAL) ? &conn_client : &conn_cluster, NULL);
    mkv_conn_reply(c, &f->hdr, &mkv_desc_auth_token_rep, &rep);
}

static void on_frame(struct mkv_conn *c, struct mkv_frame *f, void *ctx)
{
    struct mkv_chunk_server *cs = ctx;
    if (cs->stopping) {
        mkv_conn_reply_error(c, &f->hdr, MKV_EUNAVAILABLE, "chunk server is stopping", NULL);
        mkv_frame_unref(f);
        return;
    }
    if (f->hdr.type == MKV_MSG_AUTH_TOKEN) {
        handle_auth_token(cs, c, f);
        mkv_frame_unref(f);
        return;
    }
    if (cs->auth && !mkv_conn_data(c) && f->hdr.type != MKV_MSG_PING) {
        mkv_conn_reply_error(c, &f->hdr, -EACCES,
                             "authenticate first: this chunk server requires a token", NULL);
        mkv_frame_unref(f);
        return;
    }
    switch (f->hdr.type) {
    case MKV_MSG_CHUNK_WRITE: handle_write(cs, c, f); return;
    case MKV_MSG_CHUNK_READ: handle_read(cs, c, f); return;
    case MKV_MSG_CHUNK_COMMIT:
    case MKV_MSG_CHUNK_DELETE: handle_refs(cs, c, f); return;
    case MKV_MSG_CHUNK_STAT: handle_stat(cs, c, f); return;
    case MKV_MSG_CHUNK_LIST: handle_list(cs, c, f); break;
    case MKV_MSG_PING: {
        struct mkv_ping_req q;
        struct mkv_ping_rep rep = {0};
        if (mkv_frame_decode(f, &mkv_desc_ping_req, &q) == 0) {
            rep.sent_ns = q.sent_ns;
            rep.now_ns = mkv_now_ns();
            rep.node = mkv_slice_str("chunk");
            mkv_conn_reply(c, &f->hdr, &mkv_desc_ping_rep, &rep);
        } else {
            mkv_conn_reply_error(c, &f->hdr, -EPROTO, "invalid PING", NULL);
        }
        break;
    }
    default: mkv_conn_reply_error(c, &f->hdr, -ENOSYS, "not a chunk service request", NULL);
    }
    mkv_frame_unref(f);
}

static const struct mkv_server_ops server_ops = {on_frame, NULL};

/* ---- garbage collector: GC_LIST -> delete -> GC_DONE ---- */

static void gc_run(struct mkv_chunk_server *cs);

static void on_gc_done(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_chunk_server *cs = req->data;
    (void)reply;
    cs->gc_running = 0;
    if (status) MKV_WARN("chunk", "gc confirmation failed err=\"%s\"", req->errmsg);
    else if (cs->gc_full && !cs->stopping) gc_run(cs); /* more waiting */
    maybe_stopped(cs);
}

/* One delete (or the guard held while deletes are issued) finished; after
 * the last, the batch is confirmed to the meta service. */
static void gc_step_done(struct mkv_chunk_server *cs)
{
    struct mkv_gc_done_req q;
    if (--cs->gc_left > 0) return;
    if (cs->stopping) {
        cs->gc_running = 0;
        maybe_stopped(cs);
        return;
    }
    q.ids = mkv_slice_mem(cs->gc_ids.p, cs->gc_ids.len);
    q.node = cs->node_id;
    cs->gc_req.data = cs;
    if (mkv_meta_call(cs->meta, &cs->gc_req, MKV_MSG_GC_DONE, &mkv_desc_gc_done_req, &q,
                      on_gc_done)) {
        cs->gc_running = 0;
        maybe_stopped(cs);
    }
}

static void on_gc_deleted(struct mkv_store_req *r, int status)
{
    struct mkv_chunk_server *cs = r->data;
    if (status && status != -ENOENT)
        MKV_WARN("chunk", "gc delete failed err=\"%s\"", mkv_strerror(status));
    free(r);
    cs->pending_ops--;
    gc_step_done(cs);
}

static void on_gc_list(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_chunk_server *cs = req->data;
    struct mkv_gc_list_rep rep;
    struct mkv_chunk_ref ref;
    struct mkv_slice cur;
    unsigned n = 0;
    if (status || cs->stopping || mkv_frame_decode(reply, &mkv_desc_gc_list_rep, &rep)) {
        if (status && status != -ECANCELED)
            MKV_DEBUG("chunk", "gc list failed err=\"%s\"", req->errmsg);
        cs->gc_running = 0;
        maybe_stopped(cs);
        return;
    }
    mkv_buf_reset(&cs->gc_ids);
    mkv_buf_append(&cs->gc_ids, rep.ids.p, rep.ids.len);
    cur = rep.ids;
    while (mkv_msg_next(&mkv_desc_chunk_ref, &cur, &ref) == 1) n++;
    if (n == 0) {
        cs->gc_running = 0;
        maybe_stopped(cs);
        return;
    }
    cs->gc_full = n >= GC_BATCH;
    cs->gc_left = 1; /* guard: confirm only after every delete was issued */
    cur = mkv_slice_mem(cs->gc_ids.p, cs->gc_ids.len);
    while (mkv_msg_next(&mkv_desc_chunk_ref, &cur, &ref) == 1) {
        struct mkv_store_req *r = calloc(1, sizeof *r);
        int rv;
        if (!r) continue; /* stays garbage in meta: retried next round */
        r->data = cs;
        cs->pending_ops++;
        cs->gc_left++;
        rv = mkv_store_delete(cs->store, r, ref.chunk_id, ref.version, on_gc_deleted);
        if (rv) on_gc_deleted(r, rv);
    }
    gc_step_done(cs);
}

static void gc_run(struct mkv_chunk_server *cs)
{
    struct mkv_gc_list_req q = {GC_BATCH, 0};
    if (cs->gc_running || cs->stopping || !cs->meta) return;
    q.node = cs->node_id;
    cs->gc_running = 1;
    cs->gc_req.data = cs;
    if (mkv_meta_call(cs->meta, &cs->gc_req, MKV_MSG_GC_LIST, &mkv_desc_gc_list_req, &q,
                      on_gc_list))
        cs->gc_running = 0;
}

static void on_gc_timer(uv_timer_t *t)
{
    gc_run(t->data);
}

/* ---- orphan collector: prepared data nobody committed ---- */

struct orphan_ctx
{
    struct mkv_buf *ids;
    unsigned n;
};

static int collect_prepared(void *arg, uint64_t chunk_id, uint32_t version)
{
    struct orphan_ctx *oc = arg;
    struct mkv_chunk_ref ref = {chunk_id, version, 0};
    if (mkv_msg_append(oc->ids, &mkv_desc_chunk_ref, &ref)) return 1;
    return ++oc->n >= GC_BATCH;
}

static void on_orphan_done(struct mkv_store_req *r, int status)
{
    struct mkv_chunk_server *cs = r->data;
    if (status && status != -ENOENT)
        MKV_WARN("chunk", "orphan resolution failed err=\"%s\"", mkv_strerror(status));
    free(r);
    cs->pending_ops--;
    if (--cs->orphan_left == 0) {
        cs->orphan_running = 0;
        maybe_stopped(cs);
    }
}

static void on_refcheck(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_chunk_server *cs = req->data;
    struct mkv_refcheck_rep rep;
    struct mkv_chunk_ref ref;
    struct mkv_slice cur;
    unsigned i = 0, kept = 0, dropped = 0;
    if (status || cs->stopping || mkv_frame_decode(reply, &mkv_desc_refcheck_rep, &rep)) {
        if (status && status != -ECANCELED)
            MKV_DEBUG("chunk", "orphan check failed err=\"%s\"", req->errmsg);
        cs->orphan_running = 0;
        maybe_stopped(cs);
        return;
    }
    cs->orphan_left = 1;
    cur = mkv_slice_mem(cs->orphan_ids.p, cs->orphan_ids.len);
    while (mkv_msg_next(&mkv_desc_chunk_ref, &cur, &ref) == 1 && i < rep.referenced.len) {
        struct mkv_store_req *r = calloc(1, sizeof *r);
        int referenced = rep.referenced.p[i++] != 0, rv;
        if (!r) continue;
        r->data = cs;
        cs->pending_ops++;
        cs->orphan_left++;
        if (referenced) {
            kept++;
            rv = mkv_store_commit(cs->store, r, ref.chunk_id, ref.version, on_orphan_done);
        } else {
            dropped++;
            rv = mkv_store_delete(cs->store, r, ref.chunk_id, ref.version, on_orphan_done);
        }
        if (rv) on_orphan_done(r, rv);
    }
    if (kept || dropped)
        MKV_INFO("chunk", "resolved prepared data committed=%u deleted=%u", kept, dropped);
    if (--cs->orphan_left == 0) {
        cs->orphan_running = 0;
        maybe_stopped(cs);
    }
}

static void orphan_run(struct mkv_chunk_server *cs)
{
    struct orphan_ctx oc;
    struct mkv_refcheck_req q;
    if (cs->orphan_running || cs->stopping || !cs->meta) return;
    mkv_buf_reset(&cs->orphan_ids);
    oc.ids = &cs->orphan_ids;
    oc.n = 0;
    if (mkv_store_list_prepared(cs->store, cs->orphan_age_ms, collect_prepared, &oc) < 0 ||
        oc.n == 0)
        return;
    cs->orphan_running = 1;
    q.ids = mkv_slice_mem(cs->orphan_ids.p, cs->orphan_ids.len);
    cs->orphan_req.data = cs;
    if (mkv_meta_call(cs->meta, &cs->orphan_req, MKV_MSG_REFCHECK, &mkv_desc_refcheck_req, &q,
                      on_refcheck))
        cs->orphan_running = 0;
}

static void on_orphan_timer(uv_timer_t *t)
{
    orphan_run(t->data);
}

void mkv_chunk_server_collect(struct mkv_chunk_server *cs)
{
    gc_run(cs);
    orphan_run(cs);
}

/* ---- registration and heartbeats ---- */

static void hb_send(struct mkv_chunk_server *cs);

/* node.id: written once, when the group first gives this server an id. */
static int save_id(struct mkv_chunk_server *cs)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%llu\n", (unsigned long long)cs->node_id);
    return mkv_file_replace(cs->id_path, text, (size_t)n, 0644);
}

/* ---- fences ---- */

static int load_fences(struct mkv_chunk_server *cs, char *err, size_t errlen)
{
    uint8_t buf[8 * MKV_VSHARDS];
    FILE *f = fopen(cs->fence_path, "re");
    size_t n;
    if (!f) return errno == ENOENT ? 0 : mkv_errf(err, errlen, -errno, "%s", cs->fence_path);
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n != sizeof buf)
        return mkv_errf(err, errlen, -EINVAL,
                        "%s: %zu bytes, not %zu (remove it: the next "
                        "fills raise it again)",
                        cs->fence_path, n, sizeof buf);
    for (unsigned v = 0; v < MKV_VSHARDS; v++) cs->fence[v] = mkv_get_le64(buf + 8 * v);
    return 0;
}

/* Raises vshard v's fence to epoch, on disk first. */
static int raise_fence(struct mkv_chunk_server *cs, unsigned v, uint64_t epoch)
{
    uint8_t buf[8 * MKV_VSHARDS];
    int rv;
    if (epoch <= cs->fence[v]) return 0;
    for (unsigned i = 0; i < MKV_VSHARDS; i++)
        mkv_put_le64(buf + 8 * i, i == v ? epoch : cs->fence[i]);
    if ((rv = mkv_file_replace(cs->fence_path, buf, sizeof buf, 0644))) return rv;
    cs->fence[v] = epoch;
    MKV_DEBUG("chunk", "fence raised vshard=%u epoch=%llu", v, (unsigned long long)epoch);
    return 0;
}

/* ---- CHUNK_LIST (other chunk servers, filling) ---- */

struct lister
{
    struct mkv_buf out;
    unsigned vshard, n, max;
    uint64_t after, last;
    int more;
};

static int list_one(void *arg, const struct mkv_store_version_info *vi)
{
    struct lister *l = arg;
    struct mkv_chunk_held h;
    if (vi->chunk_id <= l->after || mkv_vshard_of(vi->chunk_id) != l->vshard ||
        vi->state == MKV_VER_FOLDED)
        return 0;
    /* Stop at a chunk boundary once full: versions of a chunk together. */
    if (l->n >= l->max && vi->chunk_id != l->last) {
        l->more = 1;
        return 1;
    }
    h.chunk_id = vi->chunk_id;
    h.version = vi->version;
    h.size = vi->size;
    h.committed = vi->state == MKV_VER_COMMITTED;
    l->last = vi->chunk_id;
    l->n++;
    return mkv_msg_append(&l->out, &mkv_desc_chunk_held, &h);
}

static void list_answer(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f);

static void handle_list(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_chunk_list_req q;
    struct deferred_list *d;
    int rv;
    if (mkv_frame_decode(f, &mkv_desc_chunk_list_req, &q) || q.vshard >= MKV_VSHARDS) {
        mkv_conn_reply_error(c, &f->hdr, -EPROTO, "invalid CHUNK_LIST", NULL);
        return;
    }
    if (cs->auth && mkv_conn_data(c) != &conn_cluster) {
        mkv_conn_reply_error(c, &f->hdr, -EACCES, "only the cluster's own services list chunks",
                             NULL);
        return;
    }
    if ((rv = raise_fence(cs, q.vshard, q.fence))) {
        MKV_ERROR("chunk", "cannot keep a fence path=%s err=\"%s\"", cs->fence_path,
                  mkv_strerror(rv));
        mkv_conn_reply_error(c, &f->hdr, rv, "cannot keep the fence", NULL);
        return;
    }
    if (cs->wr_inflight[q.vshard] == 0) {
        list_answer(cs, c, f);
        return;
    }
    /* Writes accepted before the fence went up: answer once they are. */
    if (!(d = calloc(1, sizeof *d))) {
        mkv_conn_reply_error(c, &f->hdr, -ENOMEM, NULL, NULL);
        return;
    }
    d->conn = c;
    d->frame = f;
    d->vshard = q.vshard;
    mkv_conn_ref(c);
    mkv_frame_ref(f);
    d->next = cs->deferred;
    cs->deferred = d;
}

static void write_done(struct mkv_chunk_server *cs, unsigned v)
{
    struct deferred_list **pp = &cs->deferred, *d;
    if (--cs->wr_inflight[v] > 0) return;
    while ((d = *pp)) {
        if (d->vshard != v) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        if (mkv_conn_is_open(d->conn)) list_answer(cs, d->conn, d->frame);
        mkv_frame_unref(d->frame);
        mkv_conn_unref(d->conn);
        free(d);
    }
}

static void list_answer(struct mkv_chunk_server *cs, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_chunk_list_req q;
    struct mkv_chunk_list_rep rep = {0};
    struct lister l;
    int rv;
    if (mkv_frame_decode(f, &mkv_desc_chunk_list_req, &q)) return; /* checked before */
    memset(&l, 0, sizeof l);
    l.vshard = q.vshard;
    l.after = q.after;
    l.max = q.max && q.max < 4096 ? q.max : 4096;
    rv = mkv_store_list_versions(cs->store, list_one, &l);
    if (rv < 0) {
        mkv_buf_free(&l.out);
        mkv_conn_reply_error(c, &f->hdr, rv, NULL, NULL);
        return;
    }
    rep.held = mkv_slice_mem(l.out.p ? l.out.p : (const uint8_t *)"", l.out.len);
    rep.more = (uint32_t)l.more;
    mkv_conn_reply(c, &f->hdr, &mkv_desc_chunk_list_rep, &rep);
    mkv_buf_free(&l.out);
}

static int load_id(struct mkv_chunk_server *cs, char *err, size_t errlen)
{
    char text[32] = "", *end;
    FILE *f = fopen(cs->id_path, "re");
    unsigned long long v;
    if (!f) return errno == ENOENT ? 0 : mkv_errf(err, errlen, -errno, "%s", cs->id_path);
    if (!fgets(text, sizeof text, f)) text[0] = 0;
    fclose(f);
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || v == 0 || (*end && *end != '\n'))
        return mkv_errf(err, errlen, -EINVAL, "%s: not a node id", cs->id_path);
    cs->node_id = v;
    return 0;
}

static void on_hb_timer(uv_timer_t *t)
{
    hb_send(t->data);
}

/* Versions a read or the scrubber found corrupt here: while the map says
 * this server's copy of their vshard is filled, it asks (each heartbeat)
 * for it to go back to filling, so that reads avoid it and the fill copies
 * them again from another replica (fill.c). The group keeps the last
 * filled replica filled. */
static void report_bad(struct mkv_chunk_server *cs)
{
    uint8_t seen[MKV_VSHARDS] = {0};
    unsigned n;
    uint64_t gen;
    int fresh;
    if (!cs->meta || !cs->node_id) return;
    gen = mkv_store_bad_list(cs->store, cs->bad, MKV_ARRAY_SIZE(cs->bad), &n);
    fresh = gen != cs->bad_gen;
    cs->bad_gen = gen;
    for (unsigned i = 0; i < n; i++) {
        unsigned v = mkv_vshard_of(cs->bad[i].chunk_id);
        struct mkv_vshard_view view;
        int me = -1;
        if (seen[v]++ || mkv_client_vshard(cs->meta, v, &view)) continue;
        for (unsigned k = 0; k < view.n; k++)
            if (view.node[k] == cs->node_id) me = (int)k;
        if (me < 0 || (view.filling & (1u << me))) continue;
        if (mkv_vshard_nfilled(view.filling, view.n) <= 1) {
            /* The only filled copy: no source to repair it from. */
            if (fresh)
                MKV_ERROR("chunk",
                          "a copy here failed its checksum and no other replica is "
                          "filled: not repairable now vshard=%u",
                          v);
            continue;
        }
        if (fresh)
            MKV_WARN("chunk", "a copy here failed its checksum: asking to refill vshard=%u", v);
        mkv_client_mark_missed(cs->meta, v, cs->node_id);
    }
}

static void on_heartbeat(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_chunk_server *cs = MKV_CONTAINER_OF(req, struct mkv_chunk_server, hb_req);
    struct mkv_node_heartbeat_rep rep = {0};
    uint64_t next = 2000;
    cs->hb_busy = 0;
    if (status == 0 && mkv_frame_decode(reply, &mkv_desc_node_heartbeat_rep, &rep) == 0 &&
        rep.interval_ms >= 100)
        next = rep.interval_ms;
    else if (status && status != -ECANCELED)
        MKV_DEBUG("chunk", "heartbeat failed err=\"%s\"", mkv_strerror(status));
    if (!cs->stopping) {
        uv_timer_start(&cs->hb_timer, on_hb_timer, next, 0);
        /* A new map (vshards to fill, or moved away) is loaded now rather
         * than at the client's next periodic refresh. */
        if (rep.vshard_epoch > mkv_client_map_epoch(cs->meta)) mkv_client_map_refresh(cs->meta);
        if (status == 0) report_bad(cs);
        if (cs->fill) mkv_fill_tick(cs->fill);
    }
}

static void on_registered(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_chunk_server *cs = MKV_CONTAINER_OF(req, struct mkv_chunk_server, hb_req);
    struct mkv_node_register_rep rep = {0};
    int rv;
    cs->hb_busy = 0;
    if (cs->stopping || status == -ECANCELED) return;
    if (status == -ENOENT) {
        /* Retried slowly: an operator has to act. */
        MKV_ERROR("chunk",
                  "id unknown to the metadata group (a node.id from another cluster? remove the "
                  "file to register as a new server) id=%llu path=%s",
                  (unsigned long long)cs->node_id, cs->id_path);
        uv_timer_start(&cs->hb_timer, on_hb_timer, 30000, 0);
        return;
    }
    if (status || mkv_frame_decode(reply, &mkv_desc_node_register_rep, &rep) || rep.id == 0) {
        MKV_WARN("chunk", "registration failed err=\"%s\" (retrying)",
                 mkv_strerror(status ? status : -EPROTO));
        uv_timer_start(&cs->hb_timer, on_hb_timer, 2000, 0);
        return;
    }
    if (cs->node_id == 0) {
        cs->node_id = rep.id;
        if ((rv = save_id(cs))) /* registered again under a new id next start */
            MKV_ERROR("chunk", "cannot save the node id path=%s err=\"%s\"", cs->id_path,
                      mkv_strerror(rv));
    }
    cs->registered = 1;
    MKV_INFO("chunk", "registered id=%llu address=%s zone=%s", (unsigned long long)cs->node_id,
             cs->advertise, cs->zone);
    hb_send(cs);
}

static void hb_send(struct mkv_chunk_server *cs)
{
    int rv;
    if (cs->stopping || cs->hb_busy || !cs->meta) return;
    if (!cs->registered) {
        struct mkv_node_register_req q = {0};
        q.id = cs->node_id;
        q.address = mkv_slice_str(cs->advertise);
        q.zone = mkv_slice_str(cs->zone);
        rv = mkv_meta_call(cs->meta, &cs->hb_req, MKV_MSG_NODE_REGISTER,
                           &mkv_desc_node_register_req, &q, on_registered);
    } else {
        struct mkv_store_stats st;
        struct mkv_node_heartbeat_req q = {0};
        mkv_store_get_stats(cs->store, &st);
        q.id = cs->node_id;
        q.capacity = st.capacity;
        q.free = st.free;
        q.used = st.used;
        q.chunks = st.chunks;
        rv = mkv_meta_call(cs->meta, &cs->hb_req, MKV_MSG_NODE_HEARTBEAT,
                           &mkv_desc_node_heartbeat_req, &q, on_heartbeat);
    }
    if (rv == 0) cs->hb_busy = 1;
    else uv_timer_start(&cs->hb_timer, on_hb_timer, 2000, 0);
}

/* ---- scrubbing ---- */

static void on_scrubbed(struct mkv_store_req *req, int status)
{
    struct mkv_chunk_server *cs = req->data;
    cs->scrubbing = 0;
    if (cs->stopping) return; /* cut short by the store's close */
    if (status && status != -ECANCELED)
        MKV_WARN("chunk", "scrub failed err=\"%s\"", mkv_strerror(status));
    else if (cs->scrub_bad)
        MKV_WARN("chunk", "scrub found bad blocks bad=%llu", (unsigned long long)cs->scrub_bad);
    else if (!status)
        MKV_INFO("chunk", "scrub done: every block checked");
}

/* Every --scrub-every: every block read and checked in the background;
 * versions with a bad block go to the store's list, which report_bad and
 * the fill act on. */
static void on_scrub_timer(uv_timer_t *t)
{
    struct mkv_chunk_server *cs = t->data;
    if (cs->scrubbing || cs->stopping) return;
    cs->scrub_bad = 0;
    cs->scrub_req.data = cs;
    cs->scrubbing = 1;
    if (mkv_store_scrub(cs->store, &cs->scrub_req, &cs->scrub_bad, on_scrubbed)) cs->scrubbing = 0;
}

/* ---- start / stop ---- */

int mkv_chunk_server_start(uv_loop_t *loop, const struct mkv_chunk_server_opts *o,
                           struct mkv_chunk_server **out, char *err, size_t errlen)
{
    struct mkv_chunk_server *cs = calloc(1, sizeof *cs);
    int rv;
    if (!cs) return mkv_errf(err, errlen, -ENOMEM, "chunk server");
    cs->loop = loop;
    cs->gc_interval_ms = o->gc_interval_ms ? o->gc_interval_ms : 2000;
    cs->orphan_age_ms = o->orphan_age_ms ? o->orphan_age_ms : 10 * 60 * 1000;
    cs->orphan_interval_ms = o->orphan_interval_ms ? o->orphan_interval_ms : 60 * 1000;
    rv = mkv_store_open(loop, &o->store, &cs->store, err, errlen);
    if (rv) goto err_after_alloc;
    rv = mkv_server_listen(loop, o->listen, &server_ops, cs, &cs->srv, err, errlen);
    if (rv) goto err_after_store;
    if (o->cluster_key) {
        memcpy(cs->cluster_key, o->cluster_key, 32);
        cs->auth = 1;
    }
    snprintf(cs->id_path, sizeof cs->id_path, "%s/node.id", o->store.dir);
    snprintf(cs->fence_path, sizeof cs->fence_path, "%s/fences", o->store.dir);
    if ((rv = load_fences(cs, err, errlen))) goto err_after_listen;
    snprintf(cs->zone, sizeof cs->zone, "%s", o->zone ? o->zone : "");
    if (o->advertise && *o->advertise) {
        snprintf(cs->advertise, sizeof cs->advertise, "%s", o->advertise);
    } else {
        /* The listen address with the port it got (--listen H:0). */
        const char *colon = strrchr(o->listen, ':');
        snprintf(cs->advertise, sizeof cs->advertise, "%.*s:%d",
                 colon ? (int)(colon - o->listen) : (int)strlen(o->listen), o->listen,
                 mkv_server_port(cs->srv));
    }
    if (o->meta && *o->meta && (rv = load_id(cs, err, errlen))) goto err_after_listen;
    if (o->meta && *o->meta) {
        struct mkv_client_opts co = {0};
        struct mkv_cred cred;
        co.meta = o->meta;
        if (cs->auth) {
            mkv_cred_cluster(&cred, cs->cluster_key);
            co.cred = &cred;
        }
        rv = mkv_client_new(loop, &co, &cs->meta, err, errlen);
        memset(&cred, 0, sizeof cred);
        if (rv) goto err_after_listen;
        if (!(cs->fill = mkv_fill_new(loop, cs->store, cs->meta, &cs->node_id, o->release_after_ms,
                                      o->fill_rate))) {
            mkv_client_close(cs->meta);
            rv = mkv_errf(err, errlen, -ENOMEM, "chunk server");
            goto err_after_listen;
        }
        cs->fill_running = 1;
    }
    uv_timer_init(loop, &cs->gc_timer);
    uv_timer_init(loop, &cs->orphan_timer);
    uv_timer_init(loop, &cs->hb_timer);
    uv_timer_init(loop, &cs->scrub_timer);
    cs->gc_timer.data = cs->orphan_timer.data = cs->hb_timer.data = cs->scrub_timer.data = cs;
    cs->handles = 4;
    if (o->scrub_every_ms)
        uv_timer_start(&cs->scrub_timer, on_scrub_timer, o->scrub_every_ms, o->scrub_every_ms);
    if (cs->meta) {
        uv_timer_start(&cs->hb_timer, on_hb_timer, 0, 0); /* register now */
        uv_timer_start(&cs->gc_timer, on_gc_timer, cs->gc_interval_ms, cs->gc_interval_ms);
        uv_timer_start(&cs->orphan_timer, on_orphan_timer, cs->orphan_interval_ms,
                       cs->orphan_interval_ms);
    }
    MKV_INFO("chunk", "serving listen=%s port=%d dir=%s", o->listen, mkv_server_port(cs->srv),
             o->store.dir);
    *out = cs;
    return 0;
err_after_listen:
    mkv_server_close(cs->srv, NULL, NULL);
err_after_store:
    mkv_store_close(cs->store, NULL, NULL);
err_after_alloc:
    free(cs);
    return rv;
}

int mkv_chunk_read_local(void *server, uint64_t chunk_id, uint32_t version, uint64_t off, void *buf,
                         size_t len)
{
    struct mkv_chunk_server *cs = server;
    return mkv_store_read_cached(cs->store, chunk_id, version, off, buf, len);
}

int mkv_chunk_server_port(const struct mkv_chunk_server *s)
{
    return mkv_server_port(s->srv);
}

static void on_store_closed(void *data)
{
    struct mkv_chunk_server *cs = data;
    void (*cb)(void *) = cs->stop_cb;
    void *d = cs->stop_data;
    mkv_buf_free(&cs->gc_ids);
    mkv_buf_free(&cs->orphan_ids);
    mkv_fill_free(cs->fill);
    while (cs->deferred) {
        struct deferred_list *dl = cs->deferred;
        cs->deferred = dl->next;
        mkv_frame_unref(dl->frame);
        mkv_conn_unref(dl->conn);
        free(dl);
    }
    free(cs);
    if (cb) cb(d);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct mkv_chunk_server *cs = h->data;
    cs->handles--;
    maybe_stopped(cs);
}

static void maybe_stopped(struct mkv_chunk_server *cs)
{
    if (!cs->stopping || cs->pending_ops || cs->handles || cs->gc_running || cs->orphan_running ||
        cs->fill_running || cs->srv)
        return;
    if (cs->store) {
        struct mkv_store *st = cs->store;
        cs->store = NULL;
        mkv_store_close(st, on_store_closed, cs);
    }
}

static void on_server_closed(void *data)
{
    struct mkv_chunk_server *cs = data;
    cs->srv = NULL;
    maybe_stopped(cs);
}

static void on_fill_stopped(void *data)
{
    struct mkv_chunk_server *cs = data;
    cs->fill_running = 0;
    maybe_stopped(cs);
}

void mkv_chunk_server_stop(struct mkv_chunk_server *cs, void (*cb)(void *data), void *data)
{
    cs->stopping = 1;
    cs->stop_cb = cb;
    cs->stop_data = data;
    if (cs->fill) mkv_fill_stop(cs->fill, on_fill_stopped, cs);
    if (cs->meta) {
        mkv_client_close(cs->meta); /* fails collector calls with -ECANCELED */
        cs->meta = NULL;
    }
    uv_close((uv_handle_t *)&cs->gc_timer, on_timer_closed);
    uv_close((uv_handle_t *)&cs->orphan_timer, on_timer_closed);
    uv_close((uv_handle_t *)&cs->hb_timer, on_timer_closed);
    uv_close((uv_handle_t *)&cs->scrub_timer, on_timer_closed);
    mkv_server_close(cs->srv, on_server_closed, cs);
}
