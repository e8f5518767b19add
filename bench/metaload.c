/* metaload: a load tool for the metadata service (not a test).
 *
 *   metaload --meta H:P[,H:P] (--cluster-key FILE | --credentials FILE)
 *            --bucket NAME --op create|stat|rename|delete|txn [--count N]
 *            [--concurrency C] [--prefix P] [--batch B] [--json]
 *
 * Drives the namespace operations a file system front makes, through the
 * client library (the same wire protocol, sessions and leader following as
 * mount.minikv), with C requests in flight on one thread:
 *   create   INO_MAKE of N empty files PREFIX-0 .. PREFIX-(N-1) in the
 *            bucket's top directory;
 *   stat     INO_LOOKUP of each (a linearizable read);
 *   rename   INO_RENAME of each to PREFIX-r-I in the same directory;
 *   delete   INO_UNLINK of PREFIX-r-I (or PREFIX-I when --no-renamed);
 *   txn      OBJ_TXN (a REST transaction) of B empty-object puts
 *            PREFIX-t-I-J each: N / B requests, counted as N operations
 *            (batching in the client: B writes in one Raft entry).
 * Writes are durable when acknowledged (no early replies: each waits for
 * its Raft commit). Prints operations per second and latency percentiles.
 * Run the ops in that order on the same prefix. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "minikv/auth.h"
#include "minikv/client.h"
#include "minikv/common.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/wire.h"

enum op { OP_CREATE, OP_STAT, OP_RENAME, OP_DELETE, OP_TXN };

struct slot
{
    struct mkv_meta_req req;
    struct load *l;
    uint64_t i;
    uint64_t t0;
};

struct load
{
    struct mkv_client *client;
    enum op op;
    const char *prefix, *bucket;
    unsigned batch; /* puts per OBJ_TXN */
    int renamed;
    uint64_t dir;
    uint64_t count, next, done, errors;
    uint64_t *lat; /* ns per operation */
    int finished;
    int first_error;
    char errmsg[256];
};

static void issue(struct slot *s);

static void done_cb(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct slot *s = MKV_CONTAINER_OF(req, struct slot, req);
    struct load *l = s->l;
    l->lat[s->i] = mkv_mono_ns() - s->t0;
    if (status == 0 && l->op == OP_TXN) {
        struct mkv_obj_txn_rep rep;
        if (mkv_frame_decode(reply, &mkv_desc_obj_txn_rep, &rep)) status = -EPROTO;
        else if (rep.failed) status = (int)rep.status;
    }
    if (status) {
        if (!l->errors++) {
            l->first_error = status;
            snprintf(l->errmsg, sizeof l->errmsg, "%s",
                     req->errmsg[0] ? req->errmsg : mkv_strerror(status));
        }
    }
    if (++l->done == l->count) l->finished = 1;
    if (l->next < l->count) issue(s);
}

static void issue(struct slot *s)
{
    struct load *l = s->l;
    char name[128], newname[128];
    int rv;
    s->i = l->next++;
    snprintf(name, sizeof name, "%s-%" PRIu64, l->prefix, s->i);
    snprintf(newname, sizeof newname, "%s-r-%" PRIu64, l->prefix, s->i);
    memset(&s->req, 0, sizeof s->req);
    s->t0 = mkv_mono_ns();
    switch (l->op) {
    case OP_CREATE: {
        struct mkv_ino_make_req q = {0};
        q.parent = l->dir;
        q.name = mkv_slice_str(name);
        q.type = MKV_T_FILE;
        q.mode = 0644;
        rv = mkv_meta_call(l->client, &s->req, MKV_MSG_INO_MAKE, &mkv_desc_ino_make_req, &q,
                           done_cb);
        break;
    }
    case OP_STAT: {
        struct mkv_ino_lookup_req q = {0};
        q.parent = l->dir;
        q.name = mkv_slice_str(name);
        rv = mkv_meta_call(l->client, &s->req, MKV_MSG_INO_LOOKUP, &mkv_desc_ino_lookup_req, &q,
                           done_cb);
        break;
    }
    case OP_TXN: {
        struct mkv_obj_txn_req q = {0};
        struct mkv_buf ops = MKV_BUF_INIT;
        rv = 0;
        for (unsigned j = 0; j < l->batch && rv == 0; j++) {
            struct mkv_txn_op t = {0};
            snprintf(name, sizeof name, "%s-t-%" PRIu64 "-%u", l->prefix, s->i, j);
            t.kind = MKV_TXN_PUT;
            t.bucket = mkv_slice_str(l->bucket);
            t.key = mkv_slice_str(name);
            t.etag = mkv_slice_str("\"d41d8cd98f00b204e9800998ecf8427e\""); /* MD5 of nothing */
            rv = mkv_msg_append(&ops, &mkv_desc_txn_op, &t);
        }
        q.ops = mkv_slice_mem(ops.p, ops.len);
        if (rv == 0)
            rv = mkv_meta_call(l->client, &s->req, MKV_MSG_OBJ_TXN, &mkv_desc_obj_txn_req, &q,
                               done_cb);
        mkv_buf_free(&ops);
        break;
    }
    case OP_RENAME: {
        struct mkv_ino_rename_req q = {0};
        q.parent = q.newparent = l->dir;
        q.name = mkv_slice_str(name);
        q.newname = mkv_slice_str(newname);
        rv = mkv_meta_call(l->client, &s->req, MKV_MSG_INO_RENAME, &mkv_desc_ino_rename_req, &q,
                           done_cb);
        break;
    }
    default: {
        struct mkv_ino_unlink_req q = {0};
        q.parent = l->dir;
        q.name = mkv_slice_str(l->renamed ? newname : name);
        rv = mkv_meta_call(l->client, &s->req, MKV_MSG_INO_UNLINK, &mkv_desc_ino_unlink_req, &q,
                           done_cb);
        break;
    }
    }
    if (rv) done_cb(&s->req, rv, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: metaload --meta H:P[,H:P] (--cluster-key FILE | --credentials FILE)\n"
            "                --bucket NAME --op create|stat|rename|delete|txn [--count N]\n"
            "                [--concurrency C] [--prefix P] [--batch B] [--no-renamed] [--json]\n"
            "Namespace operations through the client library, C in flight (default\n"
            "64), N of them (default 10000); see the top of bench/metaload.c.\n");
}

int main(int argc, char **argv)
{
    const char *meta = NULL, *key_file = NULL, *cred_file = NULL, *bucket = NULL, *opname = NULL;
    struct mkv_client_opts co = {0};
    struct mkv_cred cred;
    struct load l = {0};
    struct slot *slots;
    uv_loop_t loop;
    char err[512] = "";
    unsigned conc = 64;
    int json = 0, rv;
    uint64_t t0, t1;
    l.count = 10000;
    l.prefix = "m";
    l.renamed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--no-renamed")) l.renamed = 0;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!v) {
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--meta")) meta = v, i++;
        else if (!strcmp(a, "--cluster-key")) key_file = v, i++;
        else if (!strcmp(a, "--credentials")) cred_file = v, i++;
        else if (!strcmp(a, "--bucket")) bucket = v, i++;
        else if (!strcmp(a, "--op")) opname = v, i++;
        else if (!strcmp(a, "--count")) l.count = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--concurrency")) conc = (unsigned)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--prefix")) l.prefix = v, i++;
        else if (!strcmp(a, "--batch")) l.batch = (unsigned)strtoul(v, NULL, 10), i++;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!meta || !bucket || !opname || !l.count || !conc || conc > MKV_CLIENT_SLOTS ||
        (!key_file && !cred_file)) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(opname, "create")) l.op = OP_CREATE;
    else if (!strcmp(opname, "stat")) l.op = OP_STAT;
    else if (!strcmp(opname, "rename")) l.op = OP_RENAME;
    else if (!strcmp(opname, "delete")) l.op = OP_DELETE;
    else if (!strcmp(opname, "txn")) l.op = OP_TXN;
    else {
        usage(stderr);
        return 2;
    }
    if (l.op == OP_TXN) { /* --count counts puts; requests carry --batch each */
        if (!l.batch) l.batch = 16;
        if (l.batch > MKV_MULTI_MAX) {
            fprintf(stderr, "metaload: --batch is at most %u\n", MKV_MULTI_MAX);
            return 2;
        }
        l.count = (l.count + l.batch - 1) / l.batch;
    } else {
        l.batch = 1;
    }
    l.bucket = bucket;
    mkv_log_init();
    if (key_file) {
        uint8_t key[32];
        if (mkv_cluster_key_read(key_file, key, err, sizeof err)) {
            fprintf(stderr, "metaload: %s\n", err);
            return 2;
        }
        mkv_cred_cluster(&cred, key);
    } else if (mkv_cred_from_file(&cred, cred_file, NULL, err, sizeof err)) {
        fprintf(stderr, "metaload: %s\n", err);
        return 2;
    }
    uv_loop_init(&loop);
    co.meta = meta;
    co.cred = &cred;
    if ((rv = mkv_client_new(&loop, &co, &l.client, err, sizeof err))) {
        fprintf(stderr, "metaload: %s\n", err);
        return 1;
    }
    {
        struct mkv_bucket_head_req q = {0};
        struct mkv_bucket_head_rep rep;
        struct mkv_frame *reply = NULL;
        q.name = mkv_slice_str(bucket);
        rv = mkv_meta_call_sync(l.client, MKV_MSG_BUCKET_HEAD, &mkv_desc_bucket_head_req, &q,
                                &reply, err, sizeof err);
        if (rv || mkv_frame_decode(reply, &mkv_desc_bucket_head_rep, &rep)) {
            fprintf(stderr, "metaload: bucket %s: %s\n", bucket, err[0] ? err : mkv_strerror(rv));
            return 1;
        }
        l.dir = rep.ino;
        mkv_frame_unref(reply);
    }
    l.lat = calloc(l.count, sizeof *l.lat);
    slots = calloc(conc, sizeof *slots);
    if (!l.lat || !slots) return 1;
    t0 = mkv_mono_ns();
    for (unsigned i = 0; i < conc && l.next < l.count; i++) {
        slots[i].l = &l;
        issue(&slots[i]);
    }
    while (!l.finished) uv_run(&loop, UV_RUN_ONCE);
    t1 = mkv_mono_ns();
    qsort(l.lat, l.count, sizeof *l.lat, cmp_u64);
    {
        /* Operations (a transaction's puts each count); latencies per request. */
        uint64_t ops = l.count * l.batch;
        double secs = (double)(t1 - t0) / 1e9, rate = (double)ops / secs;
        double p50 = (double)l.lat[l.count / 2] / 1e6,
               p99 = (double)l.lat[l.count * 99 / 100] / 1e6;
        if (json)
            printf("{\"op\":\"%s\",\"count\":%" PRIu64 ",\"batch\":%u,\"concurrency\":%u,"
                   "\"seconds\":%.3f,\"ops_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
                   "\"errors\":%" PRIu64 "}\n",
                   opname, ops, l.batch, conc, secs, rate, p50, p99, l.errors);
        else
            printf("%s: %" PRIu64 " ops (%u per request) in %.2f s, %.0f ops/s, p50 %.2f ms, "
                   "p99 %.2f ms, %" PRIu64 " errors\n",
                   opname, ops, l.batch, secs, rate, p50, p99, l.errors);
        if (l.errors) fprintf(stderr, "metaload: first error: %s\n", l.errmsg);
    }
    mkv_client_close(l.client);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(l.lat);
    free(slots);
    memset(&cred, 0, sizeof cred);
    return l.errors ? 1 : 0;
}
