/* minikv gateway: /health/live, /health/ready, /metrics (Prometheus text
 * format 0.0.4) and /admin/status (JSON).
 *
 * Readiness and the cluster figures come from the services themselves
 * (META_STATUS from the meta leader, CHUNK_STAT from the chunk server),
 * asked in parallel for each request: nothing is cached, so a scrape shows
 * the state at that moment. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gw.h"
#include "minikv/err.h"
#include "minikv/log.h"

enum { MODE_LIVE, MODE_READY, MODE_METRICS, MODE_ADMIN };

struct probe
{
    struct s3req *r;
    int mode;
    int pending;
    /* meta */
    int meta_status;
    struct mkv_meta_status_rep ms;
    char leader[257];
    char address[257];
    /* chunk */
    struct mkv_call chunk_call;
    int chunk_status;
    struct mkv_chunk_stat_rep cs;
    char backend[33];
    struct mkv_hist fsync;
};

static void probe_finish(struct probe *p);

static void on_meta_status(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct probe *p = r->opstate;
    p->meta_status = status;
    if (status == 0) {
        p->meta_status = mkv_frame_decode(reply, &mkv_desc_meta_status_rep, &p->ms);
        if (p->meta_status == 0) {
            snprintf(p->leader, sizeof p->leader, "%.*s", (int)p->ms.leader.len,
                     (const char *)p->ms.leader.p);
            snprintf(p->address, sizeof p->address, "%.*s", (int)p->ms.address.len,
                     (const char *)p->ms.address.p);
            p->ms.chunk_servers.len = 0; /* points into the frame: do not keep */
            p->ms.leader.len = p->ms.address.len = 0;
        }
    }
    if (--p->pending == 0) probe_finish(p);
}

static void on_chunk_stat(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct probe *p = MKV_CONTAINER_OF(call, struct probe, chunk_call);
    struct s3req *r = p->r;
    if (!r->aborted) {
        p->chunk_status = status;
        if (status == 0)
            p->chunk_status = mkv_frame_decode(reply, &mkv_desc_chunk_stat_rep, &p->cs);
        if (p->chunk_status == 0) {
            snprintf(p->backend, sizeof p->backend, "%.*s", (int)p->cs.io_backend.len,
                     (const char *)p->cs.io_backend.p);
            if (p->cs.fsync_hist.len == 8u * (MKV_HIST_BUCKETS + 2)) {
                const uint8_t *h = p->cs.fsync_hist.p;
                for (int i = 0; i < MKV_HIST_BUCKETS; i++)
                    p->fsync.bucket[i] = mkv_get_le64(h + 8 * i);
                p->fsync.count = mkv_get_le64(h + 8 * MKV_HIST_BUCKETS);
                p->fsync.sum_ns = mkv_get_le64(h + 8 * (MKV_HIST_BUCKETS + 1));
            }
            p->cs.io_backend.len = 0;
            p->cs.fsync_hist.len = 0;
        }
        if (--p->pending == 0) probe_finish(p);
    }
    s3req_unref(r); /* the reference taken when the call was made */
}

static void probe_start(struct s3req *r, int mode)
{
    struct probe *p = calloc(1, sizeof *p);
    struct mkv_meta_status_req mq = {0};
    struct mkv_chunk_stat_req cq = {0};
    struct mkv_peer *peer;
    if (!p) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    p->r = r;
    p->mode = mode;
    p->meta_status = p->chunk_status = MKV_EUNAVAILABLE;
    r->opstate = p;
    r->opstate_free = free;
    p->pending = 2;
    if (s3_meta(r, 0, MKV_MSG_META_STATUS, &mkv_desc_meta_status_req, &mq, on_meta_status))
        p->pending--;
    peer = mkv_client_chunk_peer(r->wk->client, 0);
    r->refs++;
    if (!peer || mkv_peer_call(peer, &p->chunk_call, MKV_MSG_CHUNK_STAT, &mkv_desc_chunk_stat_req,
                               &cq, 3000, on_chunk_stat)) {
        r->refs--;
        p->pending--;
    }
    if (p->pending == 0) probe_finish(p);
}

void gw_health(struct s3req *r, int ready_check)
{
    static const struct mkv_http_header h[] = {{"Content-Type", "text/plain; charset=utf-8"}};
    if (!ready_check) {
        r->status_code = 200;
        r->responded = 1;
        mkv_http_respond(r->http, 200, h, 1, "ok\n", 3);
        s3req_done(r);
        return;
    }
    probe_start(r, MODE_READY);
}

void gw_metrics_render(struct s3req *r)
{
    probe_start(r, MODE_METRICS);
}

void gw_admin_status_authed(struct s3req *r, enum mkv_s3_error e, const char *message)
{
    if (e != MKV_S3_OK) {
        s3_error(r, e, message);
        return;
    }
    probe_start(r, MODE_ADMIN);
}

static const char *role_name(int role)
{
    switch (role) {
    case 1: return "follower";
    case 2: return "candidate";
    case 3: return "leader";
    default: return "unavailable";
    }
}

static int node_ready(const struct probe *p, char *why, size_t len)
{
    if (!__atomic_load_n(&p->r->wk->gw->keys_ready, __ATOMIC_ACQUIRE)) {
        snprintf(why, len, "gateway is still registering access keys");
        return 0;
    }
    if (p->meta_status) {
        snprintf(why, len, "metadata service: %s", mkv_strerror(p->meta_status));
        return 0;
    }
    /* The member the gateway is connected to answers status itself: the
     * ready leader, or a member that follows a known leader (requests
     * then go to that one). */
    if (!p->ms.ready && (p->ms.leader_id == 0 || p->ms.leader_id == p->ms.id)) {
        snprintf(why, len, "metadata service has no ready leader (member %llu is %s)",
                 (unsigned long long)p->ms.id, role_name(p->ms.role));
        return 0;
    }
    if (p->chunk_status) {
        snprintf(why, len, "chunk server: %s", mkv_strerror(p->chunk_status));
        return 0;
    }
    if (p->cs.free == 0) {
        snprintf(why, len, "chunk server has no free space");
        return 0;
    }
    snprintf(why, len, "ready");
    return 1;
}

static void render_ready(struct probe *p)
{
    static const struct mkv_http_header h[] = {{"Content-Type", "text/plain; charset=utf-8"}};
    struct s3req *r = p->r;
    char why[300];
    int ok = node_ready(p, why, sizeof why - 2);
    strcat(why, "\n");
    r->status_code = ok ? 200 : 503;
    r->responded = 1;
    mkv_http_respond(r->http, r->status_code, h, 1, why, strlen(why));
    s3req_done(r);
}

static void metric_header(struct mkv_buf *b, const char *name, const char *type, const char *help)
{
    mkv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric with one value and no labels. */
struct metric
{
    const char *name, *type, *help;
    uint64_t value;
};

static void render_table(struct mkv_buf *b, const struct metric *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        metric_header(b, m[i].name, m[i].type, m[i].help);
        mkv_buf_printf(b, "%s %" PRIu64 "\n", m[i].name, m[i].value);
    }
}

static void render_metrics(struct probe *p)
{
    static const struct mkv_http_header h[] = {
        {"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
    struct s3req *r = p->r;
    struct mkv_gw *gw = r->wk->gw;
    struct mkv_buf b = MKV_BUF_INIT;
    static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    uint64_t in = 0, out = 0, authf = 0, conns = 0;
    char why[200];

    metric_header(&b, "minikv_s3_requests_total", "counter",
                  "S3 and HTTP requests handled, by operation and status class.");
    for (int op = 0; op < S3_OP_COUNT; op++) {
        for (int c = 0; c < 6; c++) {
            uint64_t v = 0;
            for (int w = 0; w < gw->nworkers; w++)
                v += mkv_counter_get(&gw->workers[w].stats.requests[op][c]);
            if (v)
                mkv_buf_printf(&b, "minikv_s3_requests_total{op=\"%s\",code=\"%s\"} %" PRIu64 "\n",
                               s3_op_names[op], cls[c], v);
        }
    }
    metric_header(&b, "minikv_s3_request_duration_seconds", "histogram",
                  "Time from request line to the end of the response, by operation.");
    for (int op = 0; op < S3_OP_COUNT; op++) {
        struct mkv_hist sum = {0};
        char labels[64];
        for (int w = 0; w < gw->nworkers; w++)
            mkv_hist_merge(&sum, &gw->workers[w].stats.latency[op]);
        if (!sum.count) continue;
        snprintf(labels, sizeof labels, "op=\"%s\"", s3_op_names[op]);
        mkv_hist_render(&b, "minikv_s3_request_duration_seconds", labels, &sum);
    }
    for (int w = 0; w < gw->nworkers; w++) {
        in += mkv_counter_get(&gw->workers[w].stats.bytes_in);
        out += mkv_counter_get(&gw->workers[w].stats.bytes_out);
        authf += mkv_counter_get(&gw->workers[w].stats.auth_failures);
        if (gw->workers[w].http) conns += mkv_http_server_connections(gw->workers[w].http);
    }
    {
        const struct metric gw_metrics[] = {
            {"minikv_s3_received_bytes_total", "counter", "Request body bytes received.", in},
            {"minikv_s3_sent_bytes_total", "counter", "Response body bytes sent.", out},
            {"minikv_s3_auth_failures_total", "counter", "Requests refused for their credentials.",
             authf},
            {"minikv_http_open_connections", "gauge", "Open HTTP connections.", conns},
            {"minikv_ready", "gauge", "1 when the node can serve writes.",
             (uint64_t)node_ready(p, why, sizeof why)},
            {"minikv_meta_up", "gauge", "1 when the metadata service answered this scrape.",
             p->meta_status == 0},
        };
        const struct metric meta_metrics[] = {
            {"minikv_raft_term", "gauge", "Current Raft term of the answering metadata server.",
             p->ms.term},
            {"minikv_raft_commit_index", "gauge", "Raft commit index.", p->ms.commit_index},
            {"minikv_raft_applied_index", "gauge", "Last Raft index applied to the namespace.",
             p->ms.applied_index},
            {"minikv_raft_snapshot_index", "gauge", "Index of the last Raft snapshot.",
             p->ms.snapshot_index},
            {"minikv_raft_leader", "gauge", "1 when the answering metadata server is the leader.",
             p->ms.role == 3},
            {"minikv_buckets", "gauge", "Buckets.", p->ms.buckets},
            {"minikv_objects", "gauge", "Objects (files and explicit directories).", p->ms.objects},
            {"minikv_object_bytes", "gauge", "Sum of object sizes.", p->ms.bytes},
            {"minikv_multipart_uploads", "gauge", "Multipart uploads in progress.", p->ms.uploads},
            {"minikv_gc_pending_chunks", "gauge", "Chunk versions waiting to be deleted.",
             p->ms.garbage},
        };
        const struct metric chunk_up[] = {
            {"minikv_chunk_up", "gauge", "1 when the chunk server answered this scrape.",
             p->chunk_status == 0},
        };
        const struct metric chunk_metrics[] = {
            {"minikv_chunk_capacity_bytes", "gauge", "Size of the chunk server's file system.",
             p->cs.capacity},
            {"minikv_chunk_free_bytes", "gauge", "Space the chunk server can still write.",
             p->cs.free},
            {"minikv_chunk_used_bytes", "gauge", "Bytes in segment files.", p->cs.used},
            {"minikv_chunk_live_bytes", "gauge", "Bytes of live block data.", p->cs.live},
            {"minikv_chunk_corrupt_blocks_total", "counter", "Blocks that failed their checksum.",
             p->cs.corrupt_blocks},
            {"minikv_chunk_wal_fsyncs_total", "counter", "WAL flushes made durable.", p->cs.fsyncs},
        };
        render_table(&b, gw_metrics, MKV_ARRAY_SIZE(gw_metrics));
        if (p->meta_status == 0) render_table(&b, meta_metrics, MKV_ARRAY_SIZE(meta_metrics));
        render_table(&b, chunk_up, MKV_ARRAY_SIZE(chunk_up));
        if (p->chunk_status == 0) render_table(&b, chunk_metrics, MKV_ARRAY_SIZE(chunk_metrics));
    }
    if (p->chunk_status == 0) {
        metric_header(&b, "minikv_chunk_wal_fsync_duration_seconds", "histogram",
                      "Latency of WAL fdatasync calls.");
        mkv_hist_render(&b, "minikv_chunk_wal_fsync_duration_seconds", "", &p->fsync);
    }
    r->status_code = 200;
    r->responded = 1;
    r->bytes_out += b.len;
    mkv_http_respond(r->http, 200, h, 1, b.p, b.len);
    mkv_buf_free(&b);
    s3req_done(r);
}

static void json_kv_str(struct mkv_buf *b, const char *k, const char *v, int comma)
{
    mkv_buf_printf(b, "\"%s\":\"", k);
    mkv_buf_put_json(b, v, strlen(v));
    mkv_buf_printf(b, "\"%s", comma ? "," : "");
}

static void render_admin(struct probe *p)
{
    static const struct mkv_http_header h[] = {{"Content-Type", "application/json"}};
    struct s3req *r = p->r;
    struct mkv_gw *gw = r->wk->gw;
    struct mkv_buf b = MKV_BUF_INIT;
    uint64_t conns = 0, reqs = 0;
    char why[300];
    int ready = node_ready(p, why, sizeof why);
    for (int w = 0; w < gw->nworkers; w++) {
        if (gw->workers[w].http) conns += mkv_http_server_connections(gw->workers[w].http);
        for (int op = 0; op < S3_OP_COUNT; op++)
            for (int c = 0; c < 6; c++)
                reqs += mkv_counter_get(&gw->workers[w].stats.requests[op][c]);
    }
    mkv_buf_printf(&b, "{\"version\":\"%s\",\"uptime_seconds\":%" PRId64 ",\"ready\":%s,",
                   PACKAGE_VERSION, (int64_t)((mkv_now_ns() - gw->start_time) / 1000000000LL),
                   ready ? "true" : "false");
    json_kv_str(&b, "ready_reason", why, 1);
    mkv_buf_printf(&b,
                   "\"gateway\":{\"port\":%d,\"workers\":%d,\"open_connections\":%" PRIu64
                   ",\"requests\":%" PRIu64 ",",
                   gw->port, gw->nworkers, conns, reqs);
    json_kv_str(&b, "region", gw->o.region, 0);
    mkv_buf_puts(&b, "},\"meta\":");
    if (p->meta_status) {
        mkv_buf_puts(&b, "{");
        json_kv_str(&b, "error", mkv_strerror(p->meta_status), 0);
        mkv_buf_puts(&b, "}");
    } else {
        mkv_buf_printf(&b,
                       "{\"id\":%" PRIu64 ",\"role\":\"%s\",\"ready\":%s,\"term\":%" PRIu64
                       ",\"commit_index\":%" PRIu64 ",\"applied_index\":%" PRIu64
                       ",\"last_index\":%" PRIu64 ",\"snapshot_index\":%" PRIu64
                       ",\"leader_id\":%" PRIu64 ",\"voters\":%u,",
                       p->ms.id, role_name(p->ms.role), p->ms.ready ? "true" : "false", p->ms.term,
                       p->ms.commit_index, p->ms.applied_index, p->ms.last_index,
                       p->ms.snapshot_index, p->ms.leader_id, p->ms.voters);
        json_kv_str(&b, "leader", p->leader, 1);
        json_kv_str(&b, "address", p->address, 1);
        mkv_buf_printf(&b,
                       "\"buckets\":%" PRIu64 ",\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64
                       ",\"uploads\":%" PRIu64 ",\"gc_pending\":%" PRIu64 "}",
                       p->ms.buckets, p->ms.objects, p->ms.bytes, p->ms.uploads, p->ms.garbage);
    }
    mkv_buf_puts(&b, ",\"chunk\":");
    if (p->chunk_status) {
        mkv_buf_puts(&b, "{");
        json_kv_str(&b, "error", mkv_strerror(p->chunk_status), 0);
        mkv_buf_puts(&b, "}");
    } else {
        mkv_buf_puts(&b, "{");
        json_kv_str(&b, "address", gw->o.chunk ? gw->o.chunk : "", 1);
        json_kv_str(&b, "io_backend", p->backend, 1);
        mkv_buf_printf(&b,
                       "\"capacity\":%" PRIu64 ",\"free\":%" PRIu64 ",\"used\":%" PRIu64
                       ",\"live\":%" PRIu64 ",\"chunks\":%" PRIu64 ",\"segments\":%" PRIu64
                       ",\"fsyncs\":%" PRIu64 ",\"corrupt_blocks\":%" PRIu64 "}",
                       p->cs.capacity, p->cs.free, p->cs.used, p->cs.live, p->cs.chunks,
                       p->cs.segments, p->cs.fsyncs, p->cs.corrupt_blocks);
    }
    mkv_buf_puts(&b, "}\n");
    r->status_code = 200;
    r->responded = 1;
    r->bytes_out += b.len;
    mkv_http_respond(r->http, 200, h, 1, b.p, b.len);
    mkv_buf_free(&b);
    s3req_done(r);
}

static void probe_finish(struct probe *p)
{
    switch (p->mode) {
    case MODE_READY: render_ready(p); break;
    case MODE_METRICS: render_metrics(p); break;
    default: render_admin(p); break;
    }
}
