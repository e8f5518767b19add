/* Unit tests: the metadata service (meta/meta.h) over real TCP with the
 * framed protocol of lib/minikv/net.h, on real Raft and LMDB. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

#include "meta/meta.h"
#include "minikv/err.h"
#include "minikv/net.h"
#include "minikv/wire.h"

#define S(x) mkv_slice_str(x)
#define WAIT_MS 20000

struct env
{
    uv_loop_t loop;
    uv_timer_t tick;
    char dir[64];
    int n;
    char addr[3][32];
    struct mkv_meta *meta[3];
    struct mkv_peer *peer[3];
};

static int port_free(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static int pick_port_pair(void)
{
    static int next = 0;
    if (!next) next = 40000 + (int)(getpid() % 2000) * 10;
    for (int tries = 0; tries < 5000; tries++) {
        int p = next;
        next += 2;
        if (next > 60000) next = 20000;
        if (port_free(p) && port_free(p + 1)) return p;
    }
    fail_msg("no free port pair");
    return -1;
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

typedef int (*pred_fn)(struct env *e, void *arg);

static void run_until(struct env *e, pred_fn pred, void *arg, const char *what)
{
    uint64_t deadline = mkv_mono_ns() + WAIT_MS * 1000000ull;
    while (!pred(e, arg)) {
        if (mkv_mono_ns() > deadline) fail_msg("timed out waiting for %s", what);
        uv_run(&e->loop, UV_RUN_ONCE);
    }
}

static void stopped(void *data)
{
    (*(int *)data)++;
}

static struct env *env_new(int n)
{
    struct env *e = calloc(1, sizeof *e);
    char peers[256] = "", dir[128], err[256];
    int len = 0;
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->tick);
    uv_timer_start(&e->tick, tick_cb, 5, 5);
    strcpy(e->dir, "/tmp/test_svc.XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    e->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(e->addr[i], sizeof e->addr[i], "127.0.0.1:%d", pick_port_pair());
        len += snprintf(peers + len, sizeof peers - (size_t)len, "%s%d=%s", i ? "," : "", i + 1,
                        e->addr[i]);
    }
    for (int i = 0; i < n; i++) {
        struct mkv_meta_opts o;
        memset(&o, 0, sizeof o);
        snprintf(dir, sizeof dir, "%s/m%d", e->dir, i + 1);
        o.dir = dir;
        o.id = (uint64_t)i + 1;
        o.listen = e->addr[i];
        o.peers = n > 1 ? peers : NULL;
        o.election_ms = 400;
        o.heartbeat_ms = 50;
        o.map_size = 1ull << 30;
        if (mkv_meta_start(&e->loop, &o, &e->meta[i], err, sizeof err)) fail_msg("start: %s", err);
        assert_int_equal(mkv_meta_port(e->meta[i]), atoi(strchr(e->addr[i], ':') + 1));
        assert_int_equal(mkv_peer_new(&e->loop, e->addr[i], &e->peer[i]), 0);
    }
    return e;
}

static void env_free(struct env *e)
{
    int done = 0;
    for (int i = 0; i < e->n; i++) mkv_peer_close(e->peer[i]);
    for (int i = 0; i < e->n; i++) mkv_meta_stop(e->meta[i], stopped, &done);
    while (done < e->n) uv_run(&e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&e->tick, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < e->n; i++) mkv_meta_free(e->meta[i]);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
        assert_int_equal(system(cmd), 0);
    }
    free(e);
}

/* ---- calls ---- */

struct result
{
    struct mkv_call call;
    int done, status;
    struct mkv_buf payload;
    char msg[256], leader[256];
};

static void call_cb(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct result *r = MKV_CONTAINER_OF(call, struct result, call);
    r->done = 1;
    r->status = status;
    mkv_buf_reset(&r->payload);
    if (reply && status == 0) mkv_buf_append(&r->payload, reply->payload, reply->hdr.length);
    if (reply && status < 0)
        mkv_reply_error(reply, r->msg, sizeof r->msg, r->leader, sizeof r->leader);
}

static int res_done(struct env *e, void *arg)
{
    (void)e;
    return ((struct result *)arg)->done;
}

/* Sends type with payload[len] to member i, with a session prefix when
 * client_id != 0 (flags forces the frame flags when not 0xff). */
static void raw_call(struct env *e, int i, uint16_t type, const void *payload, size_t len,
                     uint64_t client_id, uint64_t seq, struct result *r)
{
    size_t plen = len + (client_id ? MKV_SESSION_PREFIX : 0);
    struct mkv_outframe *of = mkv_outframe_new(plen ? plen : 1);
    uint8_t *p = mkv_outframe_payload(of);
    memset(r->msg, 0, sizeof r->msg);
    memset(r->leader, 0, sizeof r->leader);
    r->done = 0;
    if (client_id) {
        mkv_put_le64(p, client_id);
        mkv_put_le64(p + 8, seq);
        p += MKV_SESSION_PREFIX;
    }
    if (len) memcpy(p, payload, len);
    assert_int_equal(mkv_peer_call_frame(e->peer[i], &r->call, type, of, plen,
                                         client_id ? MKV_FRAME_SESSION : 0, 10000, call_cb),
                     0);
    run_until(e, res_done, r, "a reply");
}

static void call_msg(struct env *e, int i, uint16_t type, const struct mkv_msgdesc *d,
                     const void *msg, uint64_t client_id, uint64_t seq, struct result *r)
{
    struct mkv_buf pl = MKV_BUF_INIT;
    assert_int_equal(mkv_msg_append(&pl, d, msg), 0);
    raw_call(e, i, type, pl.p, pl.len, client_id, seq, r);
    mkv_buf_free(&pl);
}

#define CALL(e, i, T, name, r, ...) \
    call_msg(e, i, MKV_MSG_##T, &mkv_desc_##name, &(struct mkv_##name){__VA_ARGS__}, 0, 0, r)

static int status_of(struct env *e, int i, struct mkv_meta_status_rep *st, struct result *r)
{
    CALL(e, i, META_STATUS, meta_status_req, r, .flags = 0);
    if (r->status) return r->status;
    assert_int_equal(mkv_msg_decode(&mkv_desc_meta_status_rep, r->payload.p, r->payload.len, st),
                     0);
    return 0;
}

static int find_leader(struct env *e)
{
    struct result r = {0};
    uint64_t deadline = mkv_mono_ns() + WAIT_MS * 1000000ull;
    int who = -1;
    while (who < 0) {
        if (mkv_mono_ns() > deadline) fail_msg("no ready leader");
        for (int i = 0; i < e->n && who < 0; i++) {
            struct mkv_meta_status_rep st;
            if (status_of(e, i, &st, &r) == 0 && st.ready) who = i;
        }
        uv_run(&e->loop, UV_RUN_ONCE);
    }
    mkv_buf_free(&r.payload);
    return who;
}

/* mkv_meta_read_local from another thread, as a co-located gateway does. */
struct local_read
{
    struct mkv_meta *m;
    uint16_t type;
    struct mkv_buf req, reply;
    int rv, status;
};

static void *local_read_main(void *arg)
{
    struct local_read *lr = arg;
    lr->rv = mkv_meta_read_local(lr->m, lr->type, lr->req.p, lr->req.len, &lr->status, &lr->reply);
    return NULL;
}

static int local_read(struct env *e, int i, uint16_t type, const struct mkv_msgdesc *d,
                      const void *msg, struct local_read *lr)
{
    pthread_t th;
    lr->m = e->meta[i];
    lr->type = type;
    mkv_buf_reset(&lr->req);
    assert_int_equal(mkv_msg_append(&lr->req, d, msg), 0);
    assert_int_equal(pthread_create(&th, NULL, local_read_main, lr), 0);
    pthread_join(th, NULL);
    return lr->rv;
}

#define LOCAL(e, i, T, name, lr, ...) \
    local_read(e, i, MKV_MSG_##T, &mkv_desc_##name, &(struct mkv_##name){__VA_ARGS__}, lr)

/* ---- tests ---- */

static void single(void **state)
{
    struct env *e = env_new(1);
    struct result r = {0};
    struct mkv_ping_rep pr;
    struct mkv_bucket_create_req bc = {S("svc"), 1, 0};
    struct mkv_bucket_create_rep bcr;
    struct mkv_obj_info oi;
    struct mkv_extent ext = {0, 10, 42, 1, 0, 0};
    struct mkv_buf eb = MKV_BUF_INIT;
    int64_t ctime;
    (void)state;
    assert_int_equal(find_leader(e), 0);

    CALL(e, 0, PING, ping_req, &r, .sent_ns = 1234);
    assert_int_equal(r.status, 0);
    assert_int_equal(mkv_msg_decode(&mkv_desc_ping_rep, r.payload.p, r.payload.len, &pr), 0);
    assert_int_equal(pr.sent_ns, 1234);
    assert_true(mkv_slice_eq(pr.node, e->addr[0]));

    /* A command with a session, then its retry: applied once. */
    call_msg(e, 0, MKV_MSG_BUCKET_CREATE, &mkv_desc_bucket_create_req, &bc, 77, 1, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(mkv_msg_decode(&mkv_desc_bucket_create_rep, r.payload.p, r.payload.len, &bcr),
                     0);
    ctime = bcr.ctime;
    call_msg(e, 0, MKV_MSG_BUCKET_CREATE, &mkv_desc_bucket_create_req, &bc, 77, 1, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(mkv_msg_decode(&mkv_desc_bucket_create_rep, r.payload.p, r.payload.len, &bcr),
                     0);
    assert_int_equal(bcr.ctime, ctime);
    /* Without a session: a second create. */
    call_msg(e, 0, MKV_MSG_BUCKET_CREATE, &mkv_desc_bucket_create_req, &bc, 0, 0, &r);
    assert_int_equal(r.status, MKV_EBUCKETEXISTS);
    assert_string_equal(r.msg, mkv_strerror(MKV_EBUCKETEXISTS));

    mkv_msg_append(&eb, &mkv_desc_extent, &ext);
    CALL(e, 0, OBJ_PUT, obj_put_req, &r, .bucket = S("svc"), .key = S("dir/file"), .size = 10,
         .etag = S("abc"), .extents = mkv_slice_mem(eb.p, eb.len));
    assert_int_equal(r.status, 0);
    CALL(e, 0, OBJ_LOOKUP, obj_lookup_req, &r, .bucket = S("svc"), .key = S("dir/file"));
    assert_int_equal(r.status, 0);
    assert_int_equal(mkv_msg_decode(&mkv_desc_obj_info, r.payload.p, r.payload.len, &oi), 0);
    assert_int_equal(oi.size, 10);
    assert_true(mkv_slice_eq(oi.etag, "abc"));
    CALL(e, 0, OBJ_LOOKUP, obj_lookup_req, &r, .bucket = S("svc"), .key = S("nope"));
    assert_int_equal(r.status, MKV_ENOTFOUND);

    /* The ready leader of a group of one answers reads in the caller's
     * thread, exactly as over the wire; writes always go through Raft. */
    {
        struct local_read lr = {0};
        struct mkv_obj_info loi;
        assert_int_equal(
            LOCAL(e, 0, OBJ_LOOKUP, obj_lookup_req, &lr, .bucket = S("svc"), .key = S("dir/file")),
            0);
        assert_int_equal(lr.status, 0);
        CALL(e, 0, OBJ_LOOKUP, obj_lookup_req, &r, .bucket = S("svc"), .key = S("dir/file"));
        assert_int_equal(lr.reply.len, r.payload.len);
        assert_memory_equal(lr.reply.p, r.payload.p, r.payload.len);
        assert_int_equal(mkv_msg_decode(&mkv_desc_obj_info, lr.reply.p, lr.reply.len, &loi), 0);
        assert_int_equal(loi.size, 10);
        assert_int_equal(
            LOCAL(e, 0, OBJ_LOOKUP, obj_lookup_req, &lr, .bucket = S("svc"), .key = S("nope")), 0);
        assert_int_equal(lr.status, MKV_ENOTFOUND);
        /* What a command acknowledged is visible at once. */
        CALL(e, 0, OBJ_PUT, obj_put_req, &r, .bucket = S("svc"), .key = S("fresh"), .size = 2,
             .etag = S("e2"), .data = S("hi"));
        assert_int_equal(r.status, 0);
        assert_int_equal(
            LOCAL(e, 0, OBJ_LOOKUP, obj_lookup_req, &lr, .bucket = S("svc"), .key = S("fresh")), 0);
        assert_int_equal(lr.status, 0);
        assert_int_equal(mkv_msg_decode(&mkv_desc_obj_info, lr.reply.p, lr.reply.len, &loi), 0);
        assert_true(mkv_slice_eq(loi.data, "hi"));
        assert_int_equal(LOCAL(e, 0, OBJ_PUT, obj_put_req, &lr, .bucket = S("svc"), .key = S("x"),
                               .etag = S("e")),
                         -EAGAIN);
        mkv_buf_free(&lr.req);
        mkv_buf_free(&lr.reply);
    }

    /* Bad input gets errors; the service carries on. */
    raw_call(e, 0, MKV_MSG_OBJ_PUT,
             "\x03\x00"
             "ab",
             4, 0, 0, &r);
    assert_int_equal(r.status, -EPROTO);
    raw_call(e, 0, MKV_MSG_OBJ_LIST, "\x01", 1, 0, 0, &r);
    assert_int_equal(r.status, -EPROTO);
    raw_call(e, 0, 0x7777, "", 0, 0, 0, &r);
    assert_int_equal(r.status, -ENOTSUP);
    raw_call(e, 0, MKV_MSG_CHUNK_WRITE, "", 0, 0, 0, &r);
    assert_int_equal(r.status, -ENOTSUP);
    {
        struct mkv_outframe *of = mkv_outframe_new(4);
        memset(mkv_outframe_payload(of), 0, 4);
        r.done = 0;
        assert_int_equal(mkv_peer_call_frame(e->peer[0], &r.call, MKV_MSG_BUCKET_DELETE, of, 4,
                                             MKV_FRAME_SESSION, 10000, call_cb),
                         0);
        run_until(e, res_done, &r, "a reply");
        assert_int_equal(r.status, -EPROTO);
    }
    CALL(e, 0, PING, ping_req, &r, .sent_ns = 1);
    assert_int_equal(r.status, 0);
    mkv_buf_free(&eb);
    mkv_buf_free(&r.payload);
    env_free(e);
}

static void group(void **state)
{
    struct env *e = env_new(3);
    struct result r = {0};
    struct mkv_meta_status_rep st;
    int leader, follower;
    (void)state;
    leader = find_leader(e);
    follower = (leader + 1) % 3;
    CALL(e, leader, BUCKET_CREATE, bucket_create_req, &r, .name = S("grp"));
    assert_int_equal(r.status, 0);
    /* A follower names the leader, for writes and for reads. */
    CALL(e, follower, BUCKET_CREATE, bucket_create_req, &r, .name = S("grp2"));
    assert_int_equal(r.status, MKV_ENOTLEADER);
    assert_string_equal(r.leader, e->addr[leader]);
    CALL(e, follower, BUCKET_HEAD, bucket_head_req, &r, .name = S("grp"));
    assert_int_equal(r.status, MKV_ENOTLEADER);
    assert_string_equal(r.leader, e->addr[leader]);
    CALL(e, leader, BUCKET_HEAD, bucket_head_req, &r, .name = S("grp"));
    assert_int_equal(r.status, 0);
    /* With three voters no member answers a read in the caller's thread:
     * another may have been elected meanwhile. */
    {
        struct local_read lr = {0};
        for (int i = 0; i < 3; i++)
            assert_int_equal(LOCAL(e, i, BUCKET_HEAD, bucket_head_req, &lr, .name = S("grp")),
                             -EAGAIN);
        mkv_buf_free(&lr.req);
        mkv_buf_free(&lr.reply);
    }
    /* A read on the leader of three is answered once a barrier issued
     * after it arrived is applied (one more log entry per batch of
     * reads): a leader cut off from the others could not get there, so it
     * never answers from a state a new leader has moved past. */
    {
        uint64_t before;
        assert_int_equal(status_of(e, leader, &st, &r), 0);
        before = st.last_index;
        CALL(e, leader, BUCKET_HEAD, bucket_head_req, &r, .name = S("grp"));
        assert_int_equal(r.status, 0);
        CALL(e, leader, BUCKET_HEAD, bucket_head_req, &r, .name = S("nope"));
        assert_int_equal(r.status, MKV_ENOBUCKET);
        assert_int_equal(status_of(e, leader, &st, &r), 0);
        assert_int_equal(st.last_index, before + 2);
    }
    assert_int_equal(status_of(e, follower, &st, &r), 0);
    assert_int_equal(st.role, 1);
    assert_int_equal(st.voters, 3);
    assert_true(mkv_slice_eq(st.leader, e->addr[leader]));
    assert_true(mkv_slice_eq(st.address, e->addr[follower]));
    assert_int_equal(st.leader_id, (uint64_t)leader + 1);
    mkv_buf_free(&r.payload);
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single),
        cmocka_unit_test(group),
    };
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
