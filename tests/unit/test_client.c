/* Unit tests: the client library (lib/minikv/client.h) against a real
 * metadata service and a real chunk server in this process, on one loop:
 * meta calls, the chunk id pool, streaming writes across chunk boundaries
 * with back-pressure, ranged and hole-crossing reads, and objects freed from
 * their own callbacks (run under ASan to mean something). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "chunk/chunk.h"
#include "meta/meta.h"
#include "minikv/client.h"
#include "minikv/err.h"

struct env
{
    uv_loop_t loop;
    char dir[64];
    char meta_addr[32];
    char chunk_addr[32];
    struct mkv_meta *meta;
    struct mkv_chunk_server *chunk;
    struct mkv_client *client;
};

static struct env E;

/* A port p with p+1 also free (Raft uses the meta port + 1). */
static int port_pair(void)
{
    for (int tries = 0; tries < 100; tries++) {
        struct sockaddr_in a = {0};
        socklen_t len = sizeof a;
        int s = socket(AF_INET, SOCK_STREAM, 0), s2, p, ok;
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(s, (struct sockaddr *)&a, sizeof a);
        getsockname(s, (struct sockaddr *)&a, &len);
        p = ntohs(a.sin_port);
        s2 = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_port = htons((uint16_t)(p + 1));
        ok = bind(s2, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        close(s2);
        if (ok && p < 65535) return p;
    }
    return -1;
}

static void run_until_flag(const int *flag)
{
    assert_int_equal(mkv_run_until(&E.loop, flag, 30000), 0);
}

static const uint8_t CLUSTER_KEY[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                        12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                        23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* With a non-NULL key, both services require authentication and E.client
 * authenticates as the cluster. */
static int setup_with(const uint8_t *key)
{
    struct mkv_meta_opts mo = {0};
    struct mkv_chunk_server_opts co = {0};
    struct mkv_client_opts cl = {0};
    struct mkv_cred cred;
    char err[512], mdir[128], cdir[128];
    int port = port_pair();
    assert_true(port > 0);
    snprintf(E.dir, sizeof E.dir, "/tmp/mkv-test-client-XXXXXX");
    assert_non_null(mkdtemp(E.dir));
    snprintf(mdir, sizeof mdir, "%s/meta", E.dir);
    snprintf(cdir, sizeof cdir, "%s/chunk", E.dir);
    uv_loop_init(&E.loop);
    snprintf(E.meta_addr, sizeof E.meta_addr, "127.0.0.1:%d", port);
    mo.dir = mdir;
    mo.listen = E.meta_addr;
    mo.cluster_key = key;
    assert_int_equal(mkv_meta_start(&E.loop, &mo, &E.meta, err, sizeof err), 0);
    co.store.dir = cdir;
    co.listen = "127.0.0.1:0";
    co.meta = E.meta_addr;
    co.orphan_age_ms = 50; /* the collector tests run it by hand */
    co.cluster_key = key;
    assert_int_equal(mkv_chunk_server_start(&E.loop, &co, &E.chunk, err, sizeof err), 0);
    snprintf(E.chunk_addr, sizeof E.chunk_addr, "127.0.0.1:%d", mkv_chunk_server_port(E.chunk));
    cl.meta = E.meta_addr;
    cl.chunk = E.chunk_addr;
    if (key) {
        mkv_cred_cluster(&cred, key);
        cl.cred = &cred;
    }
    assert_int_equal(mkv_client_new(&E.loop, &cl, &E.client, err, sizeof err), 0);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return setup_with(NULL);
}

static int setup_auth(void **state)
{
    (void)state;
    return setup_with(CLUSTER_KEY);
}

static void flag_cb(void *data)
{
    ++*(int *)data;
}

static int teardown(void **state)
{
    int done = 0;
    char cmd[128];
    (void)state;
    mkv_client_close(E.client);
    mkv_chunk_server_stop(E.chunk, flag_cb, &done);
    mkv_meta_stop(E.meta, flag_cb, &done);
    while (done < 2) uv_run(&E.loop, UV_RUN_ONCE);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    mkv_meta_free(E.meta);
    assert_int_equal(uv_loop_close(&E.loop), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", E.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ---- helpers ---- */

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

struct wtest
{
    struct mkv_writer *w;
    int ready;
    int done;
    int status;
    struct mkv_buf extents;
    int free_in_done;
};

static void w_ready(struct mkv_writer *w, void *data)
{
    struct wtest *t = data;
    (void)w;
    t->ready++;
}

static void w_done(struct mkv_writer *w, void *data, int status, struct mkv_slice extents)
{
    struct wtest *t = data;
    t->done = 1;
    t->status = status;
    if (status == 0) mkv_buf_append(&t->extents, extents.p, extents.len);
    if (t->free_in_done) {
        mkv_writer_free(w); /* from inside its own callback */
        t->w = NULL;
    }
}

static const struct mkv_writer_ops wops = {w_ready, w_done};

/* Writes size bytes of the pattern in pieces of odd sizes, honouring the
 * back-pressure signal, and returns the extent list. */
static void write_object(uint64_t size, struct wtest *t)
{
    uint8_t *buf = malloc(300001);
    uint64_t off = 0;
    int full_seen = 0;
    memset(t, 0, sizeof *t);
    t->free_in_done = 1;
    assert_int_equal(mkv_writer_new(E.client, &wops, t, &t->w), 0);
    while (off < size) {
        size_t n = (size_t)MKV_MIN((uint64_t)(off % 7 == 0 ? 300001 : 77777), size - off);
        int rv;
        for (size_t i = 0; i < n; i++) buf[i] = pattern(off + i);
        rv = mkv_writer_write(t->w, buf, n);
        assert_true(rv >= 0);
        off += n;
        if (rv == 1) {
            /* window full: wait for on_ready before writing more */
            int before = t->ready;
            full_seen = 1;
            while (t->ready == before && !t->done) uv_run(&E.loop, UV_RUN_ONCE);
        }
    }
    assert_int_equal(mkv_writer_finish(t->w), 0);
    run_until_flag(&t->done);
    assert_int_equal(t->status, 0);
    assert_null(t->w);
    if (size > 16u << 20) assert_true(full_seen); /* the window does fill */
    free(buf);
}

struct rtest
{
    uint8_t *got;
    uint64_t len;
    int ended;
    int status;
    int free_in_end;
    struct mkv_reader *r;
};

static void r_data(struct mkv_reader *r, void *data, struct mkv_frame *frame, const uint8_t *p,
                   size_t n)
{
    struct rtest *t = data;
    (void)frame;
    memcpy(t->got + t->len, p, n);
    t->len += n;
    mkv_reader_release(r);
}

static void r_end(struct mkv_reader *r, void *data, int status)
{
    struct rtest *t = data;
    t->ended = 1;
    t->status = status;
    mkv_reader_free(r); /* from inside its own callback */
}

static const struct mkv_reader_ops rops = {r_data, r_end};

static void read_range(struct mkv_slice extents, uint64_t size, uint64_t off, uint64_t len,
                       struct rtest *t)
{
    memset(t, 0, sizeof *t);
    t->got = malloc(len ? len : 1);
    assert_int_equal(mkv_reader_new(E.client, extents, size, off, len, &rops, t, &t->r), 0);
    run_until_flag(&t->ended);
    assert_int_equal(t->status, 0);
    assert_true(t->len == len);
}

/* ---- tests ---- */

static void meta_calls(void **state)
{
    struct mkv_bucket_create_req q = {0};
    struct mkv_bucket_head_req hq = {0};
    struct mkv_frame *reply = NULL;
    char err[256];
    (void)state;
    q.name = mkv_slice_str("client-test");
    assert_int_equal(mkv_meta_call_sync(E.client, MKV_MSG_BUCKET_CREATE,
                                        &mkv_desc_bucket_create_req, &q, &reply, err, sizeof err),
                     0);
    mkv_frame_unref(reply);
    /* A second create is refused, and the error says so. */
    assert_int_equal(mkv_meta_call_sync(E.client, MKV_MSG_BUCKET_CREATE,
                                        &mkv_desc_bucket_create_req, &q, &reply, err, sizeof err),
                     MKV_EBUCKETEXISTS);
    hq.name = mkv_slice_str("client-test");
    assert_int_equal(mkv_meta_call_sync(E.client, MKV_MSG_BUCKET_HEAD, &mkv_desc_bucket_head_req,
                                        &hq, &reply, err, sizeof err),
                     0);
    mkv_frame_unref(reply);
    assert_string_equal(mkv_client_leader(E.client), E.meta_addr);
}

struct ids
{
    struct mkv_id_req r[3000];
    uint64_t id[3000];
    int done;
};

static void on_id(struct mkv_id_req *r, int status, uint64_t id)
{
    struct ids *s = r->data;
    assert_int_equal(status, 0);
    s->id[r - s->r] = id;
    s->done++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void chunk_ids_unique(void **state)
{
    static struct ids s;
    (void)state;
    memset(&s, 0, sizeof s);
    /* More than one pool batch, all requested before any arrives. */
    for (int i = 0; i < 3000; i++) {
        s.r[i].data = &s;
        assert_int_equal(mkv_client_alloc_chunk(E.client, &s.r[i], on_id), 0);
    }
    while (s.done < 3000) uv_run(&E.loop, UV_RUN_ONCE);
    qsort(s.id, 3000, sizeof s.id[0], cmp_u64);
    assert_true(s.id[0] != 0);
    for (int i = 1; i < 3000; i++) assert_true(s.id[i] != s.id[i - 1]);
}

static void write_read_across_chunks(void **state)
{
    const uint64_t size = 2 * MKV_CHUNK_SIZE + 12345; /* three chunks, the last partial */
    struct wtest w;
    struct rtest r;
    struct mkv_slice cur;
    struct mkv_extent e;
    int n = 0;
    (void)state;
    write_object(size, &w);
    cur = mkv_slice_mem(w.extents.p, w.extents.len);
    while (mkv_msg_next(&mkv_desc_extent, &cur, &e) == 1) {
        assert_true(e.file_off == (uint64_t)n * MKV_CHUNK_SIZE);
        assert_true(e.len == (n < 2 ? MKV_CHUNK_SIZE : 12345));
        n++;
    }
    assert_int_equal(n, 3);
    /* Whole object, then ranges crossing chunk and frame boundaries. */
    read_range(mkv_slice_mem(w.extents.p, w.extents.len), size, 0, size, &r);
    for (uint64_t i = 0; i < size; i += 4099) assert_int_equal(r.got[i], pattern(i));
    assert_int_equal(r.got[size - 1], pattern(size - 1));
    free(r.got);
    {
        uint64_t offs[][2] = {{MKV_CHUNK_SIZE - 10, 20},
                              {1, 1},
                              {(1u << 20) - 1, 3},
                              {size - 5, 5},
                              {MKV_CHUNK_SIZE * 2 - 100000, 105000},
                              {7, 0}};
        for (size_t k = 0; k < MKV_ARRAY_SIZE(offs); k++) {
            read_range(mkv_slice_mem(w.extents.p, w.extents.len), size, offs[k][0], offs[k][1], &r);
            for (uint64_t i = 0; i < offs[k][1]; i++)
                assert_int_equal(r.got[i], pattern(offs[k][0] + i));
            free(r.got);
        }
    }
    mkv_buf_free(&w.extents);
}

static void holes_read_as_zeros(void **state)
{
    struct wtest w;
    struct rtest r;
    struct mkv_buf ext = MKV_BUF_INIT;
    struct mkv_extent e;
    struct mkv_slice cur;
    (void)state;
    write_object(100000, &w);
    cur = mkv_slice_mem(w.extents.p, w.extents.len);
    assert_int_equal(mkv_msg_next(&mkv_desc_extent, &cur, &e), 1);
    /* The same data placed at 3 MiB, with a hole before it and one after. */
    e.file_off = 3u << 20;
    mkv_msg_append(&ext, &mkv_desc_extent, &e);
    read_range(mkv_slice_mem(ext.p, ext.len), (5u << 20), 0, 5u << 20, &r);
    for (uint64_t i = 0; i < (3u << 20); i += 997) assert_int_equal(r.got[i], 0);
    for (uint64_t i = 0; i < 100000; i++) assert_int_equal(r.got[(3u << 20) + i], pattern(i));
    for (uint64_t i = (3u << 20) + 100000; i < (5u << 20); i += 991) assert_int_equal(r.got[i], 0);
    free(r.got);
    mkv_buf_free(&ext);
    mkv_buf_free(&w.extents);
}

static void overlapping_extents_refused(void **state)
{
    struct mkv_buf ext = MKV_BUF_INIT;
    struct mkv_extent e = {0};
    struct mkv_reader *rd;
    struct rtest t;
    (void)state;
    e.len = 1000;
    e.chunk_id = 1;
    e.version = 1;
    mkv_msg_append(&ext, &mkv_desc_extent, &e);
    e.file_off = 500; /* overlaps the first */
    mkv_msg_append(&ext, &mkv_desc_extent, &e);
    memset(&t, 0, sizeof t);
    assert_int_equal(
        mkv_reader_new(E.client, mkv_slice_mem(ext.p, ext.len), 2000, 0, 2000, &rops, &t, &rd),
        -EPROTO);
    /* A range past the end of the object is refused before any I/O. */
    assert_int_equal(
        mkv_reader_new(E.client, mkv_slice_mem(ext.p, 40), 1000, 900, 101, &rops, &t, &rd),
        -EINVAL);
    mkv_buf_free(&ext);
}

static void abort_mid_write(void **state)
{
    struct wtest t;
    uint8_t *buf = calloc(1, 1u << 20);
    (void)state;
    memset(&t, 0, sizeof t);
    assert_int_equal(mkv_writer_new(E.client, &wops, &t, &t.w), 0);
    for (int i = 0; i < 12; i++) mkv_writer_write(t.w, buf, 1u << 20);
    mkv_writer_abort(t.w); /* frames in flight: their replies must land safely */
    for (int i = 0; i < 50; i++) uv_run(&E.loop, UV_RUN_NOWAIT), usleep(2000);
    assert_int_equal(t.done, 0); /* no callback after abort */
    free(buf);
}

/* Reads the whole object; returns the reader's status. */
static int read_status(struct mkv_slice extents, uint64_t size)
{
    struct rtest t;
    memset(&t, 0, sizeof t);
    t.got = malloc(size ? size : 1);
    assert_int_equal(mkv_reader_new(E.client, extents, size, 0, size, &rops, &t, &t.r), 0);
    run_until_flag(&t.ended);
    free(t.got);
    return t.status;
}

/* Runs the chunk server's collectors until read_status gives want_ok (0)
 * or an error (!want_ok), for at most 10 s. */
static void collect_until(struct mkv_slice extents, uint64_t size, int want_ok)
{
    for (int i = 0; i < 100; i++) {
        int st;
        mkv_chunk_server_collect(E.chunk);
        for (int k = 0; k < 10; k++) uv_run(&E.loop, UV_RUN_NOWAIT), usleep(2000);
        st = read_status(extents, size);
        if ((st == 0) == want_ok) return;
    }
    fail_msg("the collectors did not reach the expected state");
}

static void put_object(const char *key, struct wtest *w, uint64_t size)
{
    struct mkv_obj_put_req q = {0};
    struct mkv_frame *reply = NULL;
    char err[256];
    q.bucket = mkv_slice_str("client-test");
    q.key = mkv_slice_str(key);
    q.size = size;
    q.etag = mkv_slice_str("\"x\"");
    q.extents = mkv_slice_mem(w->extents.p, w->extents.len);
    assert_int_equal(mkv_meta_call_sync(E.client, MKV_MSG_OBJ_PUT, &mkv_desc_obj_put_req, &q,
                                        &reply, err, sizeof err),
                     0);
    mkv_frame_unref(reply);
}

/* The two-phase commit's loose ends: data written but never committed is
 * deleted; data committed in the namespace whose CHUNK_COMMIT was lost is
 * committed by the collector, not deleted; data of a deleted object is
 * freed through the garbage list. */
static void collectors_close_the_commit(void **state)
{
    struct wtest orphan, kept;
    struct mkv_slice eo, ek;
    struct mkv_obj_delete_req dq = {0};
    struct mkv_frame *reply = NULL;
    char err[256];
    (void)state;
    write_object(200000, &orphan); /* never committed */
    write_object(300000, &kept);
    put_object("kept", &kept, 300000); /* committed; no CHUNK_COMMIT sent */
    eo = mkv_slice_mem(orphan.extents.p, orphan.extents.len);
    ek = mkv_slice_mem(kept.extents.p, kept.extents.len);
    assert_int_equal(read_status(eo, 200000), 0); /* prepared data reads */
    usleep(100000);                               /* older than orphan_age */
    collect_until(eo, 200000, 0);                 /* the orphan goes */
    assert_int_equal(read_status(ek, 300000), 0); /* the committed one stays */
    /* Deleting the object puts its chunk on the garbage list. */
    dq.bucket = mkv_slice_str("client-test");
    dq.key = mkv_slice_str("kept");
    assert_int_equal(mkv_meta_call_sync(E.client, MKV_MSG_OBJ_DELETE, &mkv_desc_obj_delete_req, &dq,
                                        &reply, err, sizeof err),
                     0);
    mkv_frame_unref(reply);
    collect_until(ek, 300000, 0);
    mkv_buf_free(&orphan.extents);
    mkv_buf_free(&kept.extents);
}

static void unreachable_meta_gives_up(void **state)
{
    struct mkv_client_opts o = {0};
    struct mkv_client *c;
    struct mkv_frame *reply = NULL;
    struct mkv_bucket_list_req q = {0};
    char err[256];
    int port = port_pair();
    char addr[32];
    uint64_t t0;
    (void)state;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port); /* nothing listens */
    o.meta = addr;
    o.retry_ms = 400;
    assert_int_equal(mkv_client_new(&E.loop, &o, &c, err, sizeof err), 0);
    t0 = uv_hrtime();
    assert_int_equal(mkv_meta_call_sync(c, MKV_MSG_BUCKET_LIST, &mkv_desc_bucket_list_req, &q,
                                        &reply, err, sizeof err),
                     -ECONNREFUSED);
    /* It retried for about retry_ms, not forever and not not at all. */
    assert_true(uv_hrtime() - t0 >= 300ull * 1000000ull);
    assert_true(uv_hrtime() - t0 < 5000ull * 1000000ull);
    mkv_client_close(c);
}

/* ---- authentication (minikv/auth.h) ---- */

static struct mkv_client *client_as(const struct mkv_cred *cred)
{
    struct mkv_client_opts cl = {0};
    struct mkv_client *c = NULL;
    char err[256];
    cl.meta = E.meta_addr;
    cl.chunk = E.chunk_addr;
    cl.cred = cred;
    cl.retry_ms = 500;
    assert_int_equal(mkv_client_new(&E.loop, &cl, &c, err, sizeof err), 0);
    return c;
}

static int status_of(struct mkv_client *c)
{
    struct mkv_meta_status_req q = {0};
    struct mkv_frame *reply = NULL;
    char err[256];
    int rv = mkv_meta_call_sync(c, MKV_MSG_META_STATUS, &mkv_desc_meta_status_req, &q, &reply, err,
                                sizeof err);
    if (reply) mkv_frame_unref(reply);
    return rv;
}

struct chunk_call
{
    struct mkv_call call;
    int done, status;
};

static void on_chunk_call(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct chunk_call *cc = MKV_CONTAINER_OF(call, struct chunk_call, call);
    (void)reply;
    cc->status = status;
    cc->done = 1;
}

static int chunk_stat_of(struct mkv_peer *p)
{
    struct chunk_call cc = {0};
    struct mkv_chunk_stat_req q = {0};
    assert_int_equal(mkv_peer_call(p, &cc.call, MKV_MSG_CHUNK_STAT, &mkv_desc_chunk_stat_req, &q,
                                   3000, on_chunk_call),
                     0);
    run_until_flag(&cc.done);
    return cc.status;
}

static void close_client(struct mkv_client *c)
{
    mkv_client_close(c);
    uv_run(&E.loop, UV_RUN_NOWAIT);
}

/* Without credentials, or with wrong ones, both services refuse. */
static void auth_required(void **state)
{
    struct mkv_client *anon = client_as(NULL), *wrong;
    struct mkv_cred bad;
    uint8_t other[32] = {9};
    (void)state;
    assert_int_equal(status_of(anon), -EACCES);
    assert_int_equal(chunk_stat_of(mkv_client_chunk_peer(anon, 0)), -EACCES);
    close_client(anon);
    mkv_cred_cluster(&bad, other); /* the cluster principal with another key */
    wrong = client_as(&bad);
    assert_int_equal(status_of(wrong), -EACCES);
    assert_int_equal(chunk_stat_of(mkv_client_chunk_peer(wrong, 0)), -EACCES);
    close_client(wrong);
    /* The cluster principal with the right key: both answer. */
    assert_int_equal(status_of(E.client), 0);
    assert_int_equal(chunk_stat_of(mkv_client_chunk_peer(E.client, 0)), 0);
}

/* An access key of the key store: the meta service checks its MAC, and
 * hands it a token the chunk server takes. */
static void auth_with_access_key(void **state)
{
    struct mkv_buf sealed = MKV_BUF_INIT;
    struct mkv_key_put_req kq = {0};
    struct mkv_frame *reply = NULL;
    struct mkv_cred good, bad;
    struct mkv_client *c;
    char err[256];
    (void)state;
    assert_int_equal(mkv_secret_seal(CLUSTER_KEY, "AKTEST", "s3cr3t-s3cr3t", &sealed), 0);
    kq.access_key = mkv_slice_str("AKTEST");
    kq.sealed_secret = mkv_slice_mem(sealed.p, sealed.len);
    assert_int_equal(mkv_meta_call_sync(E.client, MKV_MSG_KEY_PUT, &mkv_desc_key_put_req, &kq,
                                        &reply, err, sizeof err),
                     0);
    mkv_frame_unref(reply);
    mkv_buf_free(&sealed);
    assert_int_equal(mkv_cred_key(&good, "AKTEST", "s3cr3t-s3cr3t"), 0);
    c = client_as(&good);
    assert_int_equal(status_of(c), 0);
    assert_int_equal(chunk_stat_of(mkv_client_chunk_peer(c, 0)), 0);
    close_client(c);
    assert_int_equal(mkv_cred_key(&bad, "AKTEST", "wrong-secret"), 0);
    c = client_as(&bad);
    assert_int_equal(status_of(c), -EACCES);
    close_client(c);
    assert_int_equal(mkv_cred_key(&bad, "AKNOBODY", "s3cr3t-s3cr3t"), 0);
    c = client_as(&bad);
    assert_int_equal(status_of(c), -EACCES);
    close_client(c);
}

/* A token the meta service did not make (or an expired one) is refused. */
static void auth_forged_token(void **state)
{
    struct mkv_peer *p;
    struct chunk_call cc = {0};
    struct mkv_auth_token_req q = {0};
    uint8_t tok[32];
    (void)state;
    assert_int_equal(mkv_peer_new(&E.loop, E.chunk_addr, &p), 0);
    mkv_auth_token((const uint8_t *)"not the cluster key, 32 bytes!!", "AKX",
                   (uint64_t)mkv_now_ns() + 1000000000ull, tok);
    q.access_key = mkv_slice_str("AKX");
    q.expiry_ns = (uint64_t)mkv_now_ns() + 1000000000ull;
    q.token = mkv_slice_mem(tok, sizeof tok);
    assert_int_equal(mkv_peer_call(p, &cc.call, MKV_MSG_AUTH_TOKEN, &mkv_desc_auth_token_req, &q,
                                   3000, on_chunk_call),
                     0);
    run_until_flag(&cc.done);
    assert_int_equal(cc.status, -EACCES);
    /* The real key, but expired. */
    q.expiry_ns = (uint64_t)mkv_now_ns() - 1000000000ull;
    mkv_auth_token(CLUSTER_KEY, "AKX", q.expiry_ns, tok);
    cc.done = 0;
    assert_int_equal(mkv_peer_call(p, &cc.call, MKV_MSG_AUTH_TOKEN, &mkv_desc_auth_token_req, &q,
                                   3000, on_chunk_call),
                     0);
    run_until_flag(&cc.done);
    assert_int_equal(cc.status, -EACCES);
    assert_int_equal(chunk_stat_of(p), -EACCES);
    mkv_peer_close(p);
}

int main(void)
{
    const struct CMUnitTest auth_tests[] = {
        cmocka_unit_test(auth_required), cmocka_unit_test(auth_with_access_key),
        cmocka_unit_test(auth_forged_token),
        cmocka_unit_test(write_read_across_chunks), /* the data path, authenticated */
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meta_calls),
        cmocka_unit_test(chunk_ids_unique),
        cmocka_unit_test(write_read_across_chunks),
        cmocka_unit_test(holes_read_as_zeros),
        cmocka_unit_test(overlapping_extents_refused),
        cmocka_unit_test(abort_mid_write),
        cmocka_unit_test(collectors_close_the_commit),
        cmocka_unit_test(unreachable_meta_gives_up),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return failed + cmocka_run_group_tests_name("authenticated", auth_tests, setup_auth, teardown);
}
