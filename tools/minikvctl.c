/* minikvctl: the minikv admin tool.
 *
 * Talks to the metadata service (and the chunk server for `status`) over
 * the wire protocol through the client library, like every other front.
 * Exit codes: 0 success, 1 the cluster refused or failed the request,
 * 2 bad usage, 3 cannot reach the cluster. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "minikv/client.h"
#include "minikv/config.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/names.h"
#include "minikv/vshard.h"

enum { EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct ctl
{
    uv_loop_t loop;
    struct mkv_client *client;
    const char *meta;
    const char *chunk; /* NULL: the one the cluster reports */
    int json;
    struct mkv_cred cred;
    int have_cred;
    uint64_t timeout_ms; /* one attempt of a call (0: 5 s) */
};

static int open_client(struct ctl *c, const char *chunk, struct mkv_client **out, char *err,
                       size_t errlen)
{
    struct mkv_client_opts co = {0};
    co.meta = c->meta;
    co.chunk = chunk;
    co.retry_ms = 5000;
    co.timeout_ms = c->timeout_ms ? c->timeout_ms : 5000;
    co.cred = c->have_cred ? &c->cred : NULL;
    return mkv_client_new(&c->loop, &co, out, err, errlen);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: minikvctl [--meta H:P,...] [--chunk H:P] [--json] COMMAND [ARGS]\n\n"
            "Commands:\n"
            "  status                    metadata group (role, term, indexes, leader,\n"
            "                            members), namespace counters and chunk server state\n"
            "  buckets                   list buckets with their replication factors\n"
            "  bucket create NAME [--replicas N]\n"
            "                            create a bucket; N copies of its data (1 up to\n"
            "                            the cluster's factor, which is the default)\n"
            "  bucket delete NAME        delete an empty bucket\n"
            "  ls BUCKET [PREFIX]        list keys (directories end in '/')\n"
            "  stat BUCKET KEY           show an object's metadata and extents\n"
            "  uploads BUCKET            list multipart uploads in progress\n"
            "  keys                      list access keys (secrets are never shown)\n"
            "  nodes                     chunk servers as the metadata leader knows them:\n"
            "                            id, address, zone, state (up, down after three\n"
            "                            missed heartbeats, dead after --chunk-dead-after,\n"
            "                            unknown before the leader has heard), capacity,\n"
            "                            vshards held (and still filling)\n"
            "  vshards                   the vshard map: each vshard's chunk servers in\n"
            "                            order ('+': still filling, reads go elsewhere)\n"
            "  drain ID [--undo]         move every vshard off chunk server ID: they get\n"
            "                            replicas elsewhere and leave it once those have\n"
            "                            filled; remove it when nodes shows 0 vshards\n"
            "  meta add H:P [--id N] [--standby]\n"
            "                            add the metadata server at H:P (started with\n"
            "                            --join) to the group: a voter once it has caught\n"
            "                            up (a standby replicates but does not vote); its\n"
            "                            id is asked from it unless given\n"
            "  meta remove ID            remove member ID from the group (hand leadership\n"
            "                            over first to remove the leader)\n"
            "  meta transfer [ID]        hand leadership to member ID (default: the most\n"
            "                            up-to-date voter)\n\n"
            "Options:\n"
            "  --meta H:P[,H:P]   metadata service (default: $MINIKV_META or 127.0.0.1:7000)\n"
            "  --chunk H:P        chunk server, for status (default: $MINIKV_CHUNK, else the\n"
            "                     one the cluster has registered)\n"
            "  --credentials FILE an access key in AWS credentials format (default:\n"
            "                     $MINIKV_ACCESS_KEY/$MINIKV_SECRET_KEY, else\n"
            "                     $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY)\n"
            "  --cluster-key FILE act as the cluster itself (the key file of the servers,\n"
            "                     e.g. DATA/cluster.key of minikv server)\n"
            "  --json             machine-readable output\n"
            "  -h, --help         show this help\n"
            "  --version          show the version\n\n"
            "Exit status: 0 success, 1 the request failed, 2 usage error, 3 cluster unreachable.\n"
            "A cluster with a cluster key requires credentials (access denied otherwise).\n");
}

static int exit_for(int status)
{
    switch (status) {
    case 0: return 0;
    case -ECONNREFUSED:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ECONNRESET:
    case MKV_EUNAVAILABLE:
    case MKV_ENOTLEADER: return EXIT_UNREACHABLE;
    default: return EXIT_FAILED;
    }
}

static int call(struct ctl *c, uint16_t type, const struct mkv_msgdesc *d, const void *msg,
                struct mkv_frame **reply)
{
    char err[512];
    int rv = mkv_meta_call_sync(c->client, type, d, msg, reply, err, sizeof err);
    if (rv == -EACCES)
        fprintf(stderr, "minikvctl: access denied: give --credentials FILE, MINIKV_ACCESS_KEY and "
                        "MINIKV_SECRET_KEY, or --cluster-key FILE\n");
    else if (rv)
        fprintf(stderr, "minikvctl: %s: %s\n", mkv_msg_name(type), err[0] ? err : mkv_strerror(rv));
    return rv;
}

static void json_str(const char *s, size_t n)
{
    struct mkv_buf b = MKV_BUF_INIT;
    mkv_buf_put_json(&b, s, n);
    printf("\"%s\"", b.p ? (char *)b.p : "");
    mkv_buf_free(&b);
}

static void fmt_time(int64_t ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *role_name(int role)
{
    static const char *const names[] = {"unavailable", "follower", "candidate", "leader"};
    return role >= 0 && role <= 3 ? names[role] : "unknown";
}

/* ---- status ---- */

struct chunk_probe
{
    struct mkv_call call;
    int done;
    int status;
    struct mkv_chunk_stat_rep rep;
    char backend[33];
};

static void on_chunk_stat(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct chunk_probe *p = MKV_CONTAINER_OF(call, struct chunk_probe, call);
    p->done = 1;
    p->status = status;
    if (status == 0 &&
        (p->status = mkv_frame_decode(reply, &mkv_desc_chunk_stat_rep, &p->rep)) == 0)
        snprintf(p->backend, sizeof p->backend, "%.*s", (int)p->rep.io_backend.len,
                 (const char *)p->rep.io_backend.p);
}

static const char *member_role(int role)
{
    static const char *const names[] = {"standby", "voter", "spare"};
    return role >= 0 && role <= 2 ? names[role] : "unknown";
}

/* The group's configuration as this member knows it; match indexes only
 * from the leader. */
static void print_members(struct ctl *c, const struct mkv_meta_status_rep *s)
{
    struct mkv_member_info mi;
    struct mkv_slice cur = s->members;
    int first = 1;
    if (c->json) printf("[");
    while (mkv_msg_next(&mkv_desc_member_info, &cur, &mi) == 1) {
        if (c->json) {
            printf("%s{\"id\":%" PRIu64 ",\"address\":", first ? "" : ",", mi.id);
            json_str((const char *)mi.address.p, mi.address.len);
            printf(",\"role\":\"%s\",\"leader\":%s", member_role(mi.role),
                   mi.id == s->leader_id ? "true" : "false");
            if (s->role == 3) printf(",\"match_index\":%" PRIu64, mi.match_index);
            printf("}");
        } else {
            printf("  member          %" PRIu64 " at %.*s, %s%s", mi.id, (int)mi.address.len,
                   (const char *)mi.address.p, member_role(mi.role),
                   mi.id == s->leader_id ? ", leader" : "");
            if (s->role == 3) printf(", log at %" PRIu64, mi.match_index);
            printf("\n");
        }
        first = 0;
    }
    if (c->json) printf("]");
}

static int cmd_status(struct ctl *c)
{
    struct mkv_meta_status_req q = {0};
    struct mkv_meta_status_rep s;
    struct mkv_frame *reply = NULL;
    struct mkv_peer *peer = NULL;
    struct chunk_probe cp;
    struct mkv_chunk_stat_req cq = {0};
    struct mkv_client *cc = NULL;
    char chunk[256] = "", err[256];
    int issued = 0;
    int rv = call(c, MKV_MSG_META_STATUS, &mkv_desc_meta_status_req, &q, &reply);
    if (rv) return exit_for(rv);
    if (mkv_frame_decode(reply, &mkv_desc_meta_status_rep, &s)) {
        mkv_frame_unref(reply);
        fprintf(stderr, "minikvctl: malformed status reply\n");
        return EXIT_FAILED;
    }
    /* The chunk server: --chunk / MINIKV_CHUNK, else the one the cluster
     * has registered. */
    if (c->chunk) snprintf(chunk, sizeof chunk, "%s", c->chunk);
    else mkv_chunk_server_pick(s.chunk_servers, chunk, sizeof chunk);
    memset(&cp, 0, sizeof cp);
    cp.status = -ENOENT; /* none registered */
    if (chunk[0]) {
        cp.status = -ECONNREFUSED;
        if (open_client(c, chunk, &cc, err, sizeof err) == 0 &&
            (peer = mkv_client_chunk_peer(cc, 0)) &&
            mkv_peer_call(peer, &cp.call, MKV_MSG_CHUNK_STAT, &mkv_desc_chunk_stat_req, &cq, 3000,
                          on_chunk_stat) == 0) {
            issued = 1;
            mkv_run_until(&c->loop, &cp.done, 5000);
        }
        if (cc) mkv_client_close(cc); /* a call still out is cancelled: wait for it */
        if (issued && !cp.done) mkv_run_until(&c->loop, &cp.done, 5000);
    } else {
        snprintf(chunk, sizeof chunk, "(none registered)");
    }
    if (c->json) {
        printf("{\"meta\":{\"id\":%" PRIu64 ",\"role\":\"%s\",\"ready\":%s,\"term\":%" PRIu64
               ",\"commit_index\":%" PRIu64 ",\"applied_index\":%" PRIu64 ",\"last_index\":%" PRIu64
               ",\"snapshot_index\":%" PRIu64 ",\"leader_id\":%" PRIu64 ",\"leader\":",
               s.id, role_name(s.role), s.ready ? "true" : "false", s.term, s.commit_index,
               s.applied_index, s.last_index, s.snapshot_index, s.leader_id);
        json_str((const char *)s.leader.p, s.leader.len);
        printf(",\"address\":");
        json_str((const char *)s.address.p, s.address.len);
        printf(",\"voters\":%u,\"members\":", s.voters);
        print_members(c, &s);
        printf("},\"namespace\":{\"buckets\":%" PRIu64 ",\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"uploads\":%" PRIu64 ",\"gc_pending\":%" PRIu64
               "},\"vshards\":{\"epoch\":%" PRIu64 ",\"replicas\":%u,\"degraded\":%u},\"chunk\":",
               s.buckets, s.objects, s.bytes, s.uploads, s.garbage, s.vshard_epoch, s.replicas,
               s.vshards_degraded);
        if (cp.status) {
            printf("{\"address\":");
            json_str(chunk, strlen(chunk));
            printf(",\"error\":");
            json_str(mkv_strerror(cp.status), strlen(mkv_strerror(cp.status)));
            printf("}}\n");
        } else {
            printf("{\"address\":");
            json_str(chunk, strlen(chunk));
            printf(",\"state\":\"up\",\"io_backend\":\"%s\",\"capacity\":%" PRIu64
                   ",\"free\":%" PRIu64 ",\"used\":%" PRIu64 ",\"live\":%" PRIu64
                   ",\"chunks\":%" PRIu64 ",\"segments\":%" PRIu64 ",\"fsyncs\":%" PRIu64
                   ",\"corrupt_blocks\":%" PRIu64 ",\"fill_copied\":%" PRIu64
                   ",\"fill_bytes\":%" PRIu64 "}}\n",
                   cp.backend, cp.rep.capacity, cp.rep.free, cp.rep.used, cp.rep.live,
                   cp.rep.chunks, cp.rep.segments, cp.rep.fsyncs, cp.rep.corrupt_blocks,
                   cp.rep.fill_copied, cp.rep.fill_bytes);
        }
    } else {
        printf("metadata group\n");
        printf("  node            %" PRIu64 " at %.*s (%s%s)\n", s.id, (int)s.address.len,
               (const char *)s.address.p, role_name(s.role), s.ready ? ", ready" : ", not ready");
        printf("  leader          %" PRIu64 " at %.*s\n", s.leader_id, (int)s.leader.len,
               (const char *)s.leader.p);
        printf("  voters          %u\n", s.voters);
        print_members(c, &s);
        printf("  term            %" PRIu64 "\n", s.term);
        printf("  commit index    %" PRIu64 "\n", s.commit_index);
        printf("  applied index   %" PRIu64 "\n", s.applied_index);
        printf("  last index      %" PRIu64 "\n", s.last_index);
        printf("  snapshot index  %" PRIu64 "\n", s.snapshot_index);
        printf("namespace\n");
        printf("  buckets         %" PRIu64 "\n  objects         %" PRIu64
               "\n  bytes           %" PRIu64 "\n  uploads         %" PRIu64
               "\n  gc pending      %" PRIu64 "\n",
               s.buckets, s.objects, s.bytes, s.uploads, s.garbage);
        if (s.vshard_epoch)
            printf("vshard map\n  epoch           %" PRIu64 "\n  replicas        %u\n"
                   "  degraded        %u of %d (short of copies or filling)\n",
                   s.vshard_epoch, s.replicas, s.vshards_degraded, MKV_VSHARDS);
        else printf("vshard map       none (no chunk server registered and up)\n");
        printf("chunk server %s\n", chunk);
        if (cp.status) {
            printf("  state           down (%s)\n", mkv_strerror(cp.status));
        } else {
            printf("  state           up, io %s\n", cp.backend);
            printf("  capacity        %" PRIu64 " bytes (%" PRIu64 " free)\n", cp.rep.capacity,
                   cp.rep.free);
            printf("  used            %" PRIu64 " bytes in %" PRIu64 " segments, %" PRIu64
                   " live\n",
                   cp.rep.used, cp.rep.segments, cp.rep.live);
            printf("  chunks          %" PRIu64 "\n  wal fsyncs      %" PRIu64
                   "\n  corrupt blocks  %" PRIu64 "\n  filled          %" PRIu64
                   " versions, %" PRIu64 " bytes copied from other replicas\n",
                   cp.rep.chunks, cp.rep.fsyncs, cp.rep.corrupt_blocks, cp.rep.fill_copied,
                   cp.rep.fill_bytes);
        }
    }
    mkv_frame_unref(reply);
    return s.ready && cp.status == 0 ? 0 : EXIT_FAILED;
}

/* ---- nodes ---- */

static const char *node_state(uint32_t state)
{
    static const char *const names[] = {"unknown", "up", "down", "dead"};
    return state < 4 ? names[state] : "invalid";
}

static void fmt_bytes(uint64_t v, char *buf, size_t len)
{
    static const char units[] = "BKMGTP";
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 5) d /= 1024, u++;
    if (u == 0) snprintf(buf, len, "%llu B", (unsigned long long)v);
    else snprintf(buf, len, "%.1f %ciB", d, units[u]);
}

/* The chunk servers as the leader knows them: registered (Raft state) and
 * heard from (its heartbeats). */
static int cmd_nodes(struct ctl *c)
{
    struct mkv_node_list_req lq = {0};
    struct mkv_meta_status_req q = {0};
    struct mkv_meta_status_rep s;
    struct mkv_chunk_server_info ci;
    struct mkv_frame *reply = NULL;
    struct mkv_slice cur;
    int first = 1, rv;
    /* A read first: it goes to the leader (and the client stays there),
     * whose status is the one that has heard the heartbeats. */
    if ((rv = call(c, MKV_MSG_NODE_LIST, &mkv_desc_node_list_req, &lq, &reply)))
        return exit_for(rv);
    mkv_frame_unref(reply);
    if ((rv = call(c, MKV_MSG_META_STATUS, &mkv_desc_meta_status_req, &q, &reply)))
        return exit_for(rv);
    if (mkv_frame_decode(reply, &mkv_desc_meta_status_rep, &s)) {
        mkv_frame_unref(reply);
        fprintf(stderr, "minikvctl: malformed status reply\n");
        return EXIT_FAILED;
    }
    if (c->json) printf("[");
    else
        printf("%-4s %-22s %-10s %-14s %10s %10s %10s %-9s %s\n", "ID", "ADDRESS", "ZONE", "STATE",
               "CAPACITY", "FREE", "CHUNKS", "VSHARDS", "HEARD");
    cur = s.chunk_servers;
    while (mkv_msg_next(&mkv_desc_chunk_server_info, &cur, &ci) == 1) {
        if (c->json) {
            printf("%s{\"id\":%" PRIu64 ",\"address\":", first ? "" : ",", ci.id);
            json_str((const char *)ci.address.p, ci.address.len);
            printf(",\"zone\":");
            json_str((const char *)ci.zone.p, ci.zone.len);
            printf(",\"state\":\"%s\",\"draining\":%s,\"capacity\":%" PRIu64 ",\"free\":%" PRIu64
                   ",\"used\":%" PRIu64 ",\"chunks\":%" PRIu64 ",\"vshards\":%u,\"filling\":%u",
                   node_state(ci.state), (ci.flags & MKV_NODEF_DRAIN) ? "true" : "false",
                   ci.capacity, ci.free, ci.used, ci.chunks, ci.vshards, ci.filling);
            if (ci.heard_ms != UINT64_MAX) printf(",\"heard_ms_ago\":%" PRIu64, ci.heard_ms);
            printf("}");
        } else {
            char cap[16], fr[16], id[24], heard[24], st[32], vs[24];
            snprintf(st, sizeof st, "%s%s", node_state(ci.state),
                     (ci.flags & MKV_NODEF_DRAIN) ? ",draining" : "");
            if (ci.filling) snprintf(vs, sizeof vs, "%u(%u+)", ci.vshards, ci.filling);
            else snprintf(vs, sizeof vs, "%u", ci.vshards);
            fmt_bytes(ci.capacity, cap, sizeof cap);
            fmt_bytes(ci.free, fr, sizeof fr);
            snprintf(id, sizeof id, ci.id ? "%" PRIu64 : "-", ci.id);
            if (ci.heard_ms == UINT64_MAX) snprintf(heard, sizeof heard, "-");
            else snprintf(heard, sizeof heard, "%.1fs ago", (double)ci.heard_ms / 1000);
            printf("%-4s %-22.*s %-10.*s %-14s %10s %10s %10" PRIu64 " %-9s %s\n", id,
                   (int)ci.address.len, (const char *)ci.address.p, (int)ci.zone.len,
                   (const char *)ci.zone.p, st, cap, fr, ci.chunks, vs, heard);
        }
        first = 0;
    }
    if (c->json) printf("]\n");
    mkv_frame_unref(reply);
    return 0;
}

/* ---- vshards, drain ---- */

static const char *node_addr(struct mkv_slice nodes, uint64_t id, int *len)
{
    struct mkv_node_rec r;
    while (mkv_msg_next(&mkv_desc_node_rec, &nodes, &r) == 1)
        if (r.id == id) {
            *len = (int)r.address.len;
            return (const char *)r.address.p;
        }
    *len = 1;
    return "?";
}

/* The vshard map: each vshard's replicas in order (a '+' marks one still
 * filling: it takes new writes but may lack older data). */
static int cmd_vshards(struct ctl *c)
{
    struct mkv_vshard_list_req q = {0};
    struct mkv_vshard_list_rep rep;
    struct mkv_vshard_rec r;
    struct mkv_vshard v;
    struct mkv_frame *reply = NULL;
    struct mkv_slice cur;
    unsigned degraded = 0;
    int first = 1, rv;
    if ((rv = call(c, MKV_MSG_VSHARD_LIST, &mkv_desc_vshard_list_req, &q, &reply)))
        return exit_for(rv);
    if (mkv_frame_decode(reply, &mkv_desc_vshard_list_rep, &rep)) {
        mkv_frame_unref(reply);
        fprintf(stderr, "minikvctl: malformed vshard list\n");
        return EXIT_FAILED;
    }
    if (c->json)
        printf("{\"epoch\":%" PRIu64 ",\"replicas\":%u,\"vshards\":[", rep.epoch, rep.replicas);
    else if (rep.epoch == 0)
        printf("no vshard map yet: it is made once chunk servers have registered and are up\n");
    else
        printf("map epoch %" PRIu64 ", %u replicas\n%-7s %-6s %s\n", rep.epoch, rep.replicas,
               "VSHARD", "EPOCH", "REPLICAS (+ filling)");
    cur = rep.vshards;
    while (mkv_msg_next(&mkv_desc_vshard_rec, &cur, &r) == 1) {
        if (mkv_vshard_from_rec(&r, &v)) continue;
        if (v.filling || v.n < rep.replicas) degraded++;
        if (c->json) {
            printf("%s{\"vshard\":%u,\"epoch\":%" PRIu64 ",\"replicas\":[", first ? "" : ",",
                   r.vshard, v.epoch);
            for (unsigned i = 0; i < v.n; i++) {
                int alen;
                const char *a = node_addr(rep.nodes, v.rep[i], &alen);
                printf("%s{\"id\":%" PRIu64 ",\"address\":", i ? "," : "", v.rep[i]);
                json_str(a, (size_t)alen);
                printf(",\"filling\":%s}", (v.filling >> i) & 1 ? "true" : "false");
            }
            printf("]}");
        } else {
            printf("%-7u %-6" PRIu64 " ", r.vshard, v.epoch);
            for (unsigned i = 0; i < v.n; i++)
                printf("%s%" PRIu64 "%s", i ? " " : "", v.rep[i], (v.filling >> i) & 1 ? "+" : "");
            printf("\n");
        }
        first = 0;
    }
    if (c->json) printf("],\"degraded\":%u}\n", degraded);
    else if (rep.epoch)
        printf("%u of %d vshards under-replicated or filling\n", degraded, MKV_VSHARDS);
    mkv_frame_unref(reply);
    return 0;
}

static int cmd_drain(struct ctl *c, int argc, char **argv)
{
    struct mkv_node_drain_req q = {0};
    struct mkv_frame *reply = NULL;
    char *end;
    int rv;
    if (argc < 1 || argc > 2 || (argc == 2 && strcmp(argv[1], "--undo"))) {
        fprintf(stderr, "minikvctl: usage: drain ID [--undo]\n");
        return EXIT_USAGE;
    }
    q.id = strtoull(argv[0], &end, 10);
    if (*end || q.id == 0) {
        fprintf(stderr, "minikvctl: drain: '%s' is not a chunk server id (see minikvctl nodes)\n",
                argv[0]);
        return EXIT_USAGE;
    }
    q.undo = argc == 2;
    rv = call(c, MKV_MSG_NODE_DRAIN, &mkv_desc_node_drain_req, &q, &reply);
    if (rv == -ENOENT) fprintf(stderr, "minikvctl: no chunk server %" PRIu64 "\n", q.id);
    if (rv) return exit_for(rv);
    mkv_frame_unref(reply);
    if (!c->json)
        printf(q.undo ? "chunk server %" PRIu64 " is no longer draining\n"
                      : "chunk server %" PRIu64 " is draining: its vshards get replicas on the "
                        "others (minikvctl nodes shows how many it still holds)\n",
               q.id);
    return 0;
}

/* ---- buckets ---- */

static int cmd_buckets(struct ctl *c)
{
    struct mkv_bucket_list_req q = {0};
    struct mkv_bucket_list_rep rep;
    struct mkv_bucket_entry e;
    struct mkv_frame *reply = NULL;
    struct mkv_slice cur;
    int first = 1, rv = call(c, MKV_MSG_BUCKET_LIST, &mkv_desc_bucket_list_req, &q, &reply);
    char date[32];
    if (rv) return exit_for(rv);
    if (mkv_frame_decode(reply, &mkv_desc_bucket_list_rep, &rep)) {
        mkv_frame_unref(reply);
        return EXIT_FAILED;
    }
    if (c->json) printf("[");
    cur = rep.buckets;
    while (mkv_msg_next(&mkv_desc_bucket_entry, &cur, &e) == 1) {
        /* Its factor: its own, or (0) the cluster's. */
        struct mkv_bucket_head_req hq = {e.name};
        struct mkv_bucket_head_rep hr = {0};
        struct mkv_frame *hreply = NULL;
        char copies[16] = "?";
        if (call(c, MKV_MSG_BUCKET_HEAD, &mkv_desc_bucket_head_req, &hq, &hreply) == 0 &&
            mkv_frame_decode(hreply, &mkv_desc_bucket_head_rep, &hr) == 0)
            snprintf(copies, sizeof copies, "%u", hr.replicas);
        if (hreply) mkv_frame_unref(hreply);
        fmt_time(e.ctime, date, sizeof date);
        if (c->json) {
            printf("%s{\"name\":", first ? "" : ",");
            json_str((const char *)e.name.p, e.name.len);
            printf(",\"created\":\"%s\",\"replicas\":%s}", date,
                   copies[0] == '?' ? "null" : copies);
        } else {
            printf("%s  %-8s %.*s\n", date, copies[0] == '0' ? "default" : copies, (int)e.name.len,
                   (const char *)e.name.p);
        }
        first = 0;
    }
    if (c->json) printf("]\n");
    mkv_frame_unref(reply);
    return 0;
}

static int cmd_bucket(struct ctl *c, int argc, char **argv)
{
    struct mkv_frame *reply = NULL;
    int rv;
    uint32_t replicas = 0;
    if (argc == 4 && !strcmp(argv[0], "create") && !strcmp(argv[2], "--replicas")) {
        /* At most the cluster's factor: a bucket's chunks go to some of
         * their vshard's replicas. Checked here for a clear message; the
         * metadata service refuses it too (ERANGE). */
        struct mkv_vshard_list_req lq = {0};
        struct mkv_vshard_list_rep lr;
        char *end;
        unsigned long want = strtoul(argv[3], &end, 10);
        unsigned factor;
        if (*end || want == 0 || want > 255) {
            fprintf(stderr, "minikvctl: --replicas needs a positive number\n");
            return EXIT_USAGE;
        }
        if ((rv = call(c, MKV_MSG_VSHARD_LIST, &mkv_desc_vshard_list_req, &lq, &reply)))
            return exit_for(rv);
        rv = mkv_frame_decode(reply, &mkv_desc_vshard_list_rep, &lr) ? -EPROTO : 0;
        factor = lr.epoch ? lr.replicas : 1;
        if (rv == 0 && want > factor) {
            fprintf(stderr,
                    "minikvctl: --replicas %lu: a bucket can have at most the cluster's factor "
                    "(%u: minikv-meta --replicas)%s\n",
                    want, factor,
                    lr.epoch ? ""
                             : "; the cluster has no vshard map yet (no chunk server registered)");
            rv = -ERANGE;
        }
        mkv_frame_unref(reply);
        reply = NULL;
        if (rv) return EXIT_FAILED;
        replicas = (uint32_t)want;
        argc = 2;
    }
    if (argc != 2 || (strcmp(argv[0], "create") && strcmp(argv[0], "delete"))) {
        fprintf(stderr,
                "minikvctl: usage: bucket create NAME [--replicas N] | bucket delete NAME\n");
        return EXIT_USAGE;
    }
    if (mkv_check_bucket(argv[1], strlen(argv[1]))) {
        fprintf(stderr,
                "minikvctl: '%s' is not a valid bucket name (3-63 lowercase letters, digits, '.', "
                "'-')\n",
                argv[1]);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[0], "create")) {
        struct mkv_bucket_create_req q = {0};
        q.name = mkv_slice_str(argv[1]);
        q.replicas = replicas;
        rv = call(c, MKV_MSG_BUCKET_CREATE, &mkv_desc_bucket_create_req, &q, &reply);
    } else {
        struct mkv_bucket_delete_req q = {0};
        q.name = mkv_slice_str(argv[1]);
        rv = call(c, MKV_MSG_BUCKET_DELETE, &mkv_desc_bucket_delete_req, &q, &reply);
    }
    if (reply) mkv_frame_unref(reply);
    if (rv == 0 && !c->json) printf("bucket %s %sd\n", argv[1], argv[0]);
    if (rv == 0 && c->json) printf("{\"bucket\":\"%s\",\"result\":\"%sd\"}\n", argv[1], argv[0]);
    return exit_for(rv);
}

/* ---- ls, stat, uploads ---- */

static int cmd_ls(struct ctl *c, int argc, char **argv)
{
    struct mkv_obj_list_req q = {0};
    char *next = NULL;
    int first = 1, rv = 0;
    if (argc < 1 || argc > 2) {
        fprintf(stderr, "minikvctl: usage: ls BUCKET [PREFIX]\n");
        return EXIT_USAGE;
    }
    if (c->json) printf("[");
    q.bucket = mkv_slice_str(argv[0]);
    q.prefix = mkv_slice_str(argc > 1 ? argv[1] : "");
    q.max_keys = MKV_LIST_MAX;
    for (;;) {
        struct mkv_frame *reply = NULL;
        struct mkv_obj_list_rep rep;
        struct mkv_list_entry e;
        struct mkv_slice cur;
        char date[32];
        q.start_after = mkv_slice_str(next ? next : "");
        rv = call(c, MKV_MSG_OBJ_LIST, &mkv_desc_obj_list_req, &q, &reply);
        if (rv) break;
        if (mkv_frame_decode(reply, &mkv_desc_obj_list_rep, &rep)) {
            mkv_frame_unref(reply);
            rv = -EPROTO;
            break;
        }
        cur = rep.entries;
        while (mkv_msg_next(&mkv_desc_list_entry, &cur, &e) == 1) {
            fmt_time(e.mtime, date, sizeof date);
            if (c->json) {
                printf("%s{\"key\":", first ? "" : ",");
                json_str((const char *)e.key.p, e.key.len);
                printf(",\"size\":%" PRIu64 ",\"modified\":\"%s\",\"etag\":", e.size, date);
                json_str((const char *)e.etag.p, e.etag.len);
                printf(",\"type\":\"%s\"}", e.type == MKV_T_DIR ? "dir" : "file");
            } else {
                printf("%s %12" PRIu64 "  %.*s\n", date, e.size, (int)e.key.len,
                       (const char *)e.key.p);
            }
            first = 0;
        }
        free(next);
        next = NULL;
        if (rep.truncated && rep.next.len) {
            next = strndup((const char *)rep.next.p, rep.next.len);
            mkv_frame_unref(reply);
            if (!next) {
                rv = -ENOMEM;
                break;
            }
            continue;
        }
        mkv_frame_unref(reply);
        break;
    }
    free(next);
    if (c->json && rv == 0) printf("]\n");
    return exit_for(rv);
}

static int cmd_stat(struct ctl *c, int argc, char **argv)
{
    struct mkv_obj_lookup_req q = {0};
    struct mkv_obj_info info;
    struct mkv_frame *reply = NULL;
    struct mkv_extent e;
    struct mkv_slice cur;
    char date[32];
    int rv, first = 1;
    if (argc != 2) {
        fprintf(stderr, "minikvctl: usage: stat BUCKET KEY\n");
        return EXIT_USAGE;
    }
    q.bucket = mkv_slice_str(argv[0]);
    q.key = mkv_slice_str(argv[1]);
    rv = call(c, MKV_MSG_OBJ_LOOKUP, &mkv_desc_obj_lookup_req, &q, &reply);
    if (rv) return exit_for(rv);
    if (mkv_frame_decode(reply, &mkv_desc_obj_info, &info)) {
        mkv_frame_unref(reply);
        return EXIT_FAILED;
    }
    fmt_time(info.mtime, date, sizeof date);
    if (c->json) {
        printf("{\"ino\":%" PRIu64 ",\"type\":\"%s\",\"size\":%" PRIu64
               ",\"mode\":\"%04o\",\"modified\":\"%s\",\"etag\":",
               info.ino, info.type == MKV_T_DIR ? "dir" : "file", info.size, info.mode & 07777,
               date);
        json_str((const char *)info.etag.p, info.etag.len);
        printf(",\"content_type\":");
        json_str((const char *)info.content_type.p, info.content_type.len);
        printf(",\"inline_bytes\":%u,\"extents\":[", (unsigned)info.data.len);
    } else {
        printf("inode         %" PRIu64 "\ntype          %s\nsize          %" PRIu64
               "\nmodified      %s\n"
               "etag          %.*s\ncontent-type  %.*s\n",
               info.ino, info.type == MKV_T_DIR ? "directory" : "file", info.size, date,
               (int)info.etag.len, (const char *)info.etag.p, (int)info.content_type.len,
               (const char *)info.content_type.p);
        if (info.data.len)
            printf("data          inline, %u bytes in the metadata record\n",
                   (unsigned)info.data.len);
        else printf("extents\n");
    }
    cur = info.extents;
    while (mkv_msg_next(&mkv_desc_extent, &cur, &e) == 1) {
        if (c->json)
            printf("%s{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 ",\"chunk\":%" PRIu64
                   ",\"version\":%u,\"vshard\":%u}",
                   first ? "" : ",", e.file_off, e.len, e.chunk_id, e.version,
                   (unsigned)(e.chunk_id % MKV_VSHARDS));
        else
            printf("  [%" PRIu64 ", +%" PRIu64 ")  chunk %016" PRIx64 " v%u (vshard %u)\n",
                   e.file_off, e.len, e.chunk_id, e.version, (unsigned)(e.chunk_id % MKV_VSHARDS));
        first = 0;
    }
    if (c->json) printf("]}\n");
    mkv_frame_unref(reply);
    return 0;
}

static int cmd_uploads(struct ctl *c, int argc, char **argv)
{
    struct mkv_mpu_list_uploads_req q = {0};
    struct mkv_mpu_list_uploads_rep rep;
    struct mkv_upload_entry u;
    struct mkv_frame *reply = NULL;
    struct mkv_slice cur;
    char date[32];
    int rv, first = 1;
    if (argc != 1) {
        fprintf(stderr, "minikvctl: usage: uploads BUCKET\n");
        return EXIT_USAGE;
    }
    q.bucket = mkv_slice_str(argv[0]);
    q.max_uploads = MKV_LIST_MAX;
    rv = call(c, MKV_MSG_MPU_LIST_UPLOADS, &mkv_desc_mpu_list_uploads_req, &q, &reply);
    if (rv) return exit_for(rv);
    if (mkv_frame_decode(reply, &mkv_desc_mpu_list_uploads_rep, &rep)) {
        mkv_frame_unref(reply);
        return EXIT_FAILED;
    }
    if (c->json) printf("[");
    cur = rep.uploads;
    while (mkv_msg_next(&mkv_desc_upload_entry, &cur, &u) == 1) {
        fmt_time(u.initiated, date, sizeof date);
        if (c->json) {
            printf("%s{\"key\":", first ? "" : ",");
            json_str((const char *)u.key.p, u.key.len);
            printf(",\"upload_id\":");
            json_str((const char *)u.upload_id.p, u.upload_id.len);
            printf(",\"initiated\":\"%s\"}", date);
        } else {
            printf("%s  %.*s  %.*s\n", date, (int)u.upload_id.len, (const char *)u.upload_id.p,
                   (int)u.key.len, (const char *)u.key.p);
        }
        first = 0;
    }
    if (c->json) printf("]\n");
    mkv_frame_unref(reply);
    return 0;
}

static int cmd_keys(struct ctl *c)
{
    struct mkv_key_list_req q = {0};
    struct mkv_key_list_rep rep;
    struct mkv_key_info k;
    struct mkv_frame *reply = NULL;
    struct mkv_slice cur;
    char date[32];
    int rv = call(c, MKV_MSG_KEY_LIST, &mkv_desc_key_list_req, &q, &reply), first = 1;
    if (rv) return exit_for(rv);
    if (mkv_frame_decode(reply, &mkv_desc_key_list_rep, &rep)) {
        mkv_frame_unref(reply);
        return EXIT_FAILED;
    }
    if (c->json) printf("[");
    cur = rep.keys;
    while (mkv_msg_next(&mkv_desc_key_info, &cur, &k) == 1) {
        fmt_time(k.created, date, sizeof date);
        if (c->json) {
            printf("%s{\"access_key\":", first ? "" : ",");
            json_str((const char *)k.access_key.p, k.access_key.len);
            printf(",\"admin\":%s,\"disabled\":%s,\"created\":\"%s\"}",
                   k.flags & MKV_KEYF_ADMIN ? "true" : "false",
                   k.flags & MKV_KEYF_DISABLED ? "true" : "false", date);
        } else {
            printf("%s  %.*s%s%s\n", date, (int)k.access_key.len, (const char *)k.access_key.p,
                   k.flags & MKV_KEYF_ADMIN ? "  admin" : "",
                   k.flags & MKV_KEYF_DISABLED ? "  disabled" : "");
        }
        first = 0;
    }
    if (c->json) printf("]\n");
    mkv_frame_unref(reply);
    return 0;
}

/* ---- meta add, remove, transfer ---- */

/* Asks the metadata server at addr (not the group) for its status. */
static int probe_member(struct ctl *c, const char *addr, struct mkv_frame **reply,
                        struct mkv_meta_status_rep *st, char *err, size_t errlen)
{
    struct mkv_client_opts co = {0};
    struct mkv_meta_status_req q = {0};
    struct mkv_client *pc = NULL;
    int rv;
    co.meta = addr;
    co.retry_ms = 2000;
    co.timeout_ms = 3000;
    co.cred = c->have_cred ? &c->cred : NULL;
    if ((rv = mkv_client_new(&c->loop, &co, &pc, err, errlen))) return rv;
    rv = mkv_meta_call_sync(pc, MKV_MSG_META_STATUS, &mkv_desc_meta_status_req, &q, reply, err,
                            errlen);
    mkv_client_close(pc);
    if (rv == 0 && mkv_frame_decode(*reply, &mkv_desc_meta_status_rep, st)) {
        mkv_frame_unref(*reply);
        *reply = NULL;
        rv = mkv_errf(err, errlen, -EPROTO, "malformed status reply");
    }
    return rv;
}

/* Whether the group's configuration has member id at addr. */
static int in_group(struct ctl *c, uint64_t id, const char *addr)
{
    struct mkv_meta_status_req q = {0};
    struct mkv_meta_status_rep st;
    struct mkv_member_info mi;
    struct mkv_frame *reply = NULL;
    struct mkv_slice cur;
    int found = 0;
    if (call(c, MKV_MSG_META_STATUS, &mkv_desc_meta_status_req, &q, &reply)) return 0;
    if (mkv_frame_decode(reply, &mkv_desc_meta_status_rep, &st) == 0) {
        cur = st.members;
        while (!found && mkv_msg_next(&mkv_desc_member_info, &cur, &mi) == 1)
            found = mi.id == id && mi.address.len == strlen(addr) &&
                    !memcmp(mi.address.p, addr, mi.address.len);
    }
    mkv_frame_unref(reply);
    return found;
}

static int parse_id(const char *s, uint64_t *id)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0 || s[0] == '-') return -1;
    *id = v;
    return 0;
}

static int cmd_meta(struct ctl *c, int argc, char **argv)
{
    struct mkv_meta_member_req q = {0};
    struct mkv_meta_member_rep rep = {0};
    struct mkv_frame *reply = NULL;
    const char *what;
    int rv;
    if (argc >= 2 && !strcmp(argv[0], "add")) {
        struct mkv_frame *pr = NULL;
        struct mkv_meta_status_rep st;
        char err[512] = "";
        int standby = 0, have_id = 0;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--standby")) standby = 1;
            else if (!strcmp(argv[i], "--id") && i + 1 < argc && parse_id(argv[i + 1], &q.id) == 0)
                have_id = 1, i++;
            else goto usage;
        }
        /* The new member must be empty: one that bootstrapped a group of
         * its own (started without --join) has an entry 1 of the same term
         * as the group's, and Raft could not tell their logs apart. */
        rv = probe_member(c, argv[1], &pr, &st, err, sizeof err);
        if (rv == 0) {
            if (have_id && q.id != st.id) {
                fprintf(stderr, "minikvctl: %s is member %" PRIu64 ", not %" PRIu64 "\n", argv[1],
                        st.id, q.id);
                mkv_frame_unref(pr);
                return EXIT_FAILED;
            }
            q.id = st.id;
            mkv_frame_unref(pr);
            if (st.last_index > 0 && !in_group(c, q.id, argv[1])) {
                fprintf(stderr,
                        "minikvctl: %s already has a Raft log (%" PRIu64
                        " entries) but is not in this group: it was not started with --join; "
                        "empty its data directory and start it with --join\n",
                        argv[1], st.last_index);
                return EXIT_FAILED;
            }
        } else if (!have_id) {
            fprintf(stderr, "minikvctl: cannot ask %s for its id (%s); give --id N\n", argv[1],
                    err[0] ? err : mkv_strerror(rv));
            return exit_for(rv);
        }
        q.op = MKV_MEMBER_ADD;
        q.address = mkv_slice_str(argv[1]);
        q.flags = standby ? MKV_MEMBER_F_STANDBY : 0;
        what = standby ? "standby" : "voter";
    } else if (argc == 2 && !strcmp(argv[0], "remove")) {
        if (parse_id(argv[1], &q.id)) goto usage;
        q.op = MKV_MEMBER_REMOVE;
        what = "removed";
    } else if ((argc == 1 || argc == 2) && !strcmp(argv[0], "transfer")) {
        if (argc == 2 && parse_id(argv[1], &q.id)) goto usage;
        q.op = MKV_MEMBER_TRANSFER;
        what = "leader";
    } else {
        goto usage;
    }
    rv = call(c, MKV_MSG_META_MEMBER, &mkv_desc_meta_member_req, &q, &reply);
    if (rv == -EHOSTUNREACH && q.op == MKV_MEMBER_ADD) {
        /* The group answered: the new member did not catch up. */
        fprintf(stderr,
                "minikvctl: member %" PRIu64 " at %s did not catch up, and was left out: is it "
                "running with --join, and is its Raft port (PORT+1) reachable from the leader?\n",
                q.id, argv[1]);
        return EXIT_FAILED;
    }
    if (rv) return exit_for(rv);
    if (mkv_frame_decode(reply, &mkv_desc_meta_member_rep, &rep)) {
        mkv_frame_unref(reply);
        fprintf(stderr, "minikvctl: malformed reply\n");
        return EXIT_FAILED;
    }
    mkv_frame_unref(reply);
    if (c->json)
        printf("{\"op\":\"%s\",\"id\":%" PRIu64 ",\"leader_id\":%" PRIu64 ",\"voters\":%u}\n",
               argv[0], q.id, rep.leader_id, rep.voters);
    else if (q.op == MKV_MEMBER_ADD)
        printf("member %" PRIu64 " at %s added as a %s (%u voters)\n", q.id, argv[1], what,
               rep.voters);
    else if (q.op == MKV_MEMBER_REMOVE)
        printf("member %" PRIu64 " removed (%u voters)\n", q.id, rep.voters);
    else printf("leader is now member %" PRIu64 "\n", rep.leader_id);
    return 0;
usage:
    fprintf(stderr, "minikvctl: usage: meta add H:P [--id N] [--standby] | meta remove ID | "
                    "meta transfer [ID]\n");
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct ctl c;
    const char *cred_file = NULL, *key_file = NULL;
    char err[512];
    int i, rv;
    memset(&c, 0, sizeof c);
    mkv_log_init();
    if (mkv_log_threshold == MKV_LOG_INFO) mkv_log_threshold = MKV_LOG_ERROR; /* tools are quiet */
    c.meta = getenv("MINIKV_META") ? getenv("MINIKV_META") : "127.0.0.1:7000";
    c.chunk = getenv("MINIKV_CHUNK");
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("minikvctl %s\n", PACKAGE_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            c.json = 1;
        } else if (!strcmp(argv[i], "--meta") && i + 1 < argc) {
            c.meta = argv[++i];
        } else if (!strncmp(argv[i], "--meta=", 7)) {
            c.meta = argv[i] + 7;
        } else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) {
            c.chunk = argv[++i];
        } else if (!strncmp(argv[i], "--chunk=", 8)) {
            c.chunk = argv[i] + 8;
        } else if (!strcmp(argv[i], "--credentials") && i + 1 < argc) {
            cred_file = argv[++i];
        } else if (!strcmp(argv[i], "--cluster-key") && i + 1 < argc) {
            key_file = argv[++i];
        } else {
            fprintf(stderr, "minikvctl: unknown option '%s' (see --help)\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (key_file) {
        uint8_t key[32];
        if (mkv_cluster_key_read(key_file, key, err, sizeof err)) {
            fprintf(stderr, "minikvctl: %s\n", err[0] ? err : "cannot read the cluster key");
            return EXIT_USAGE;
        }
        mkv_cred_cluster(&c.cred, key);
        memset(key, 0, sizeof key);
        c.have_cred = 1;
    } else if (cred_file) {
        if (mkv_cred_from_file(&c.cred, cred_file, NULL, err, sizeof err)) {
            fprintf(stderr, "minikvctl: %s\n", err);
            return EXIT_USAGE;
        }
        c.have_cred = 1;
    } else if (mkv_cred_from_env(&c.cred)) {
        c.have_cred = 1;
    } else if (getenv("AWS_ACCESS_KEY_ID") && getenv("AWS_SECRET_ACCESS_KEY")) {
        c.have_cred = mkv_cred_key(&c.cred, getenv("AWS_ACCESS_KEY_ID"),
                                   getenv("AWS_SECRET_ACCESS_KEY")) == 0;
    }
    /* Adding a member waits for it to catch up from a snapshot. */
    if (!strcmp(argv[i], "meta")) c.timeout_ms = 300000;
    uv_loop_init(&c.loop);
    rv = open_client(&c, c.chunk, &c.client, err, sizeof err);
    if (rv) {
        memset(&c.cred, 0, sizeof c.cred);
        fprintf(stderr, "minikvctl: %s\n", err);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[i], "status") && i + 1 == argc) rv = cmd_status(&c);
    else if (!strcmp(argv[i], "buckets") && i + 1 == argc) rv = cmd_buckets(&c);
    else if (!strcmp(argv[i], "bucket")) rv = cmd_bucket(&c, argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "ls")) rv = cmd_ls(&c, argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "stat")) rv = cmd_stat(&c, argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "uploads")) rv = cmd_uploads(&c, argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "keys") && i + 1 == argc) rv = cmd_keys(&c);
    else if (!strcmp(argv[i], "meta")) rv = cmd_meta(&c, argc - i - 1, argv + i + 1);
    else if (!strcmp(argv[i], "nodes") && i + 1 == argc) rv = cmd_nodes(&c);
    else if (!strcmp(argv[i], "vshards") && i + 1 == argc) rv = cmd_vshards(&c);
    else if (!strcmp(argv[i], "drain")) rv = cmd_drain(&c, argc - i - 1, argv + i + 1);
    else {
        fprintf(stderr, "minikvctl: unknown command '%s' (see --help)\n", argv[i]);
        rv = EXIT_USAGE;
    }
    mkv_client_close(c.client);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    uv_loop_close(&c.loop);
    memset(&c.cred, 0, sizeof c.cred);
    return rv;
}
