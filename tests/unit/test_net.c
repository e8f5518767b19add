/* Unit tests: framed connections over real loopback sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "minikv/crc32c.h"
#include "minikv/net.h"

struct fixture
{
    uv_loop_t loop;
    struct mkv_server *srv;
    char addr[64];
    int frames_seen;
    int closes_seen;
    struct mkv_frame *held; /* a frame the server answers later */
};

/* The test server: PING echoes; CHUNK_READ returns `length` bytes of a
 * pattern; CHUNK_WRITE replies with the CRC of its data; anything else
 * gets -ENOSYS. */
static void srv_on_frame(struct mkv_conn *c, struct mkv_frame *f, void *ctx)
{
    struct fixture *fx = ctx;
    fx->frames_seen++;
    switch (f->hdr.type) {
    case MKV_MSG_PING: {
        struct mkv_ping_req q;
        struct mkv_ping_rep r = {0};
        assert_int_equal(mkv_frame_decode(f, &mkv_desc_ping_req, &q), 0);
        if (q.sent_ns == -1) { /* "answer later" */
            fx->held = f;
            return;
        }
        r.sent_ns = q.sent_ns;
        r.node = mkv_slice_str("test");
        mkv_conn_reply(c, &f->hdr, &mkv_desc_ping_rep, &r);
        break;
    }
    case MKV_MSG_CHUNK_READ: {
        struct mkv_chunk_read_req q;
        struct mkv_outframe *of;
        uint8_t *p;
        assert_int_equal(mkv_frame_decode(f, &mkv_desc_chunk_read_req, &q), 0);
        of = mkv_outframe_new(4 + q.length);
        p = mkv_outframe_payload(of);
        mkv_put_le32(p, q.length);
        for (uint32_t i = 0; i < q.length; i++) p[4 + i] = (uint8_t)(i * 7 + q.chunk_id);
        mkv_conn_send(c, of, f->hdr.type, MKV_FRAME_REPLY, 0, f->hdr.req_id, 4 + q.length);
        break;
    }
    case MKV_MSG_CHUNK_WRITE: {
        struct mkv_chunk_write_req q;
        struct mkv_chunk_write_rep r = {0};
        assert_int_equal(mkv_frame_decode(f, &mkv_desc_chunk_write_req, &q), 0);
        r.length = q.data.len;
        r.lsn = mkv_crc32c(0, q.data.p, q.data.len);
        mkv_conn_reply(c, &f->hdr, &mkv_desc_chunk_write_rep, &r);
        break;
    }
    default:
        mkv_conn_reply_error(c, &f->hdr, -ENOSYS, "unknown type", NULL);
    }
    mkv_frame_unref(f);
}

static void srv_on_close(struct mkv_conn *c, void *ctx)
{
    struct fixture *fx = ctx;
    (void)c;
    fx->closes_seen++;
}

static const struct mkv_server_ops srv_ops = {srv_on_frame, srv_on_close};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char err[256];
    uv_loop_init(&fx->loop);
    assert_int_equal(mkv_server_listen(&fx->loop, "127.0.0.1:0", &srv_ops, fx, &fx->srv, err,
                                       sizeof err),
                     0);
    snprintf(fx->addr, sizeof fx->addr, "127.0.0.1:%d", mkv_server_port(fx->srv));
    *state = fx;
    return 0;
}

static void server_closed(void *data)
{
    *(int *)data = 1;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    int closed = 0;
    if (fx->held) mkv_frame_unref(fx->held);
    if (fx->srv) mkv_server_close(fx->srv, server_closed, &closed);
    while (fx->srv && !closed) uv_run(&fx->loop, UV_RUN_ONCE);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

struct result
{
    struct mkv_call call;
    int done;
    int status;
    uint8_t *data;
    size_t len;
    uint64_t value;
};

static void on_reply(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct result *r = MKV_CONTAINER_OF(call, struct result, call);
    r->done = 1;
    r->status = status;
    if (reply && status == 0) {
        r->len = reply->hdr.length;
        r->data = malloc(r->len + 1);
        memcpy(r->data, reply->payload, r->len);
    }
}

static void run_until(uv_loop_t *loop, int *flag)
{
    uint64_t deadline = uv_hrtime() + 10ull * 1000000000ull;
    while (!*flag && uv_hrtime() < deadline) uv_run(loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static void ping_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct mkv_peer *p;
    struct mkv_ping_req q = {12345};
    struct mkv_ping_rep rep;
    struct result r = {0};
    assert_int_equal(mkv_peer_new(&fx->loop, fx->addr, &p), 0);
    assert_int_equal(mkv_peer_call(p, &r.call, MKV_MSG_PING, &mkv_desc_ping_req, &q, 0, on_reply), 0);
    run_until(&fx->loop, &r.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(mkv_msg_decode(&mkv_desc_ping_rep, r.data, r.len, &rep), 0);
    assert_true(rep.sent_ns == 12345);
    assert_true(mkv_slice_eq(rep.node, "test"));
    free(r.data);
    mkv_peer_close(p);
}

static void many_concurrent_and_large(void **state)
{
    struct fixture *fx = *state;
    struct mkv_peer *p;
    enum { N = 200 };
    static struct result rs[N];
    struct mkv_chunk_read_req q = {0};
    int all = 0;
    memset(rs, 0, sizeof rs);
    assert_int_equal(mkv_peer_new(&fx->loop, fx->addr, &p), 0);
    for (int i = 0; i < N; i++) {
        q.chunk_id = (uint64_t)i;
        /* A mix of small frames and frames of the maximum data size. */
        q.length = (i % 20 == 0) ? MKV_DATA_MAX : (uint32_t)(i * 37);
        assert_int_equal(mkv_peer_call(p, &rs[i].call, MKV_MSG_CHUNK_READ, &mkv_desc_chunk_read_req,
                                       &q, 0, on_reply),
                         0);
    }
    while (!all) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        all = 1;
        for (int i = 0; i < N; i++) all &= rs[i].done;
    }
    for (int i = 0; i < N; i++) {
        struct mkv_chunk_read_rep rep;
        uint32_t want = (i % 20 == 0) ? MKV_DATA_MAX : (uint32_t)(i * 37);
        assert_int_equal(rs[i].status, 0);
        assert_int_equal(mkv_msg_decode(&mkv_desc_chunk_read_rep, rs[i].data, rs[i].len, &rep), 0);
        assert_int_equal(rep.data.len, want);
        for (uint32_t k = 0; k < want; k += 4093)
            assert_int_equal(rep.data.p[k], (uint8_t)(k * 7 + (uint32_t)i));
        free(rs[i].data);
    }
    assert_int_equal(fx->frames_seen, N);
    mkv_peer_close(p);
}

static void large_request_payload(void **state)
{
    struct fixture *fx = *state;
    struct mkv_peer *p;
    struct mkv_chunk_write_req q = {0};
    struct mkv_chunk_write_rep rep;
    struct result r = {0};
    uint8_t *data = malloc(MKV_DATA_MAX);
    for (uint32_t i = 0; i < MKV_DATA_MAX; i++) data[i] = (uint8_t)(i ^ (i >> 9));
    q.data = mkv_slice_mem(data, MKV_DATA_MAX);
    assert_int_equal(mkv_peer_new(&fx->loop, fx->addr, &p), 0);
    assert_int_equal(mkv_peer_call(p, &r.call, MKV_MSG_CHUNK_WRITE, &mkv_desc_chunk_write_req, &q,
                                   0, on_reply),
                     0);
    run_until(&fx->loop, &r.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(mkv_msg_decode(&mkv_desc_chunk_write_rep, r.data, r.len, &rep), 0);
    assert_int_equal(rep.length, MKV_DATA_MAX);
    assert_true(rep.lsn == mkv_crc32c(0, data, MKV_DATA_MAX));
    free(r.data);
    free(data);
    mkv_peer_close(p);
}

static void error_replies_carry_status_and_message(void **state)
{
    struct fixture *fx = *state;
    struct mkv_peer *p;
    struct result r = {0};
    struct mkv_frame fake;
    assert_int_equal(mkv_peer_new(&fx->loop, fx->addr, &p), 0);
    assert_int_equal(mkv_peer_call_raw(p, &r.call, 0x7777, NULL, 0, 0, on_reply), 0);
    run_until(&fx->loop, &r.done);
    assert_int_equal(r.status, -ENOSYS);
    mkv_peer_close(p);
    (void)fake;
}

static void refused_and_timeout(void **state)
{
    struct fixture *fx = *state;
    struct mkv_peer *p;
    struct result r = {0}, r2 = {0};
    struct mkv_ping_req q = {-1}; /* the server holds it: no reply */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {0};
    socklen_t sl = sizeof sin;
    char addr[64];
    /* A port nobody listens on: bind without listen. */
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sin.sin_port));
    assert_int_equal(mkv_peer_new(&fx->loop, addr, &p), 0);
    assert_int_equal(mkv_peer_call_raw(p, &r.call, MKV_MSG_PING, "\0\0\0\0\0\0\0\0", 8, 0, on_reply), 0);
    run_until(&fx->loop, &r.done);
    assert_int_equal(r.status, -ECONNREFUSED);
    mkv_peer_close(p);
    close(fd);

    assert_int_equal(mkv_peer_new(&fx->loop, fx->addr, &p), 0);
    assert_int_equal(mkv_peer_call(p, &r2.call, MKV_MSG_PING, &mkv_desc_ping_req, &q, 300, on_reply), 0);
    run_until(&fx->loop, &r2.done);
    assert_int_equal(r2.status, -ETIMEDOUT);
    mkv_peer_close(p);
}

static void bad_frames_close_the_connection(void **state)
{
    struct fixture *fx = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {0};
    uint8_t hdr[MKV_FRAME_HDR_SIZE], payload[8] = {1, 2, 3, 4, 5, 6, 7, 8}, buf[16];
    struct mkv_frame_hdr h = {0};
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)mkv_server_port(fx->srv));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    h.type = MKV_MSG_PING;
    h.length = 8;
    mkv_frame_hdr_encode(&h, payload, hdr);
    payload[3] ^= 0x10; /* corrupt after the CRC was computed */
    assert_int_equal(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
    assert_int_equal(write(fd, payload, sizeof payload), (ssize_t)sizeof payload);
    for (int i = 0; i < 100 && fx->closes_seen == 0; i++) uv_run(&fx->loop, UV_RUN_NOWAIT), usleep(1000);
    assert_int_equal(fx->closes_seen, 1);
    assert_int_equal(fx->frames_seen, 0); /* never reached the handler */
    assert_int_equal(read(fd, buf, sizeof buf), 0); /* closed by the server */
    close(fd);
}

static void reconnects_after_server_restart(void **state)
{
    struct fixture *fx = *state;
    struct mkv_peer *p;
    struct mkv_ping_req q = {7};
    struct result r1 = {0}, r2 = {0}, r3 = {0};
    char err[256];
    int closed = 0, port = mkv_server_port(fx->srv);
    assert_int_equal(mkv_peer_new(&fx->loop, fx->addr, &p), 0);
    assert_int_equal(mkv_peer_call(p, &r1.call, MKV_MSG_PING, &mkv_desc_ping_req, &q, 0, on_reply), 0);
    run_until(&fx->loop, &r1.done);
    assert_int_equal(r1.status, 0);
    free(r1.data);
    mkv_server_close(fx->srv, server_closed, &closed);
    fx->srv = NULL;
    run_until(&fx->loop, &closed);
    /* With the server gone the call fails quickly. */
    assert_int_equal(mkv_peer_call(p, &r2.call, MKV_MSG_PING, &mkv_desc_ping_req, &q, 0, on_reply), 0);
    run_until(&fx->loop, &r2.done);
    assert_true(r2.status == -ECONNRESET || r2.status == -ECONNREFUSED);
    /* Back on the same port: the same peer reconnects by itself. */
    snprintf(fx->addr, sizeof fx->addr, "127.0.0.1:%d", port);
    assert_int_equal(mkv_server_listen(&fx->loop, fx->addr, &srv_ops, fx, &fx->srv, err, sizeof err), 0);
    assert_int_equal(mkv_peer_call(p, &r3.call, MKV_MSG_PING, &mkv_desc_ping_req, &q, 0, on_reply), 0);
    run_until(&fx->loop, &r3.done);
    assert_int_equal(r3.status, 0);
    free(r3.data);
    mkv_peer_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ping_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(many_concurrent_and_large, setup, teardown),
        cmocka_unit_test_setup_teardown(large_request_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(error_replies_carry_status_and_message, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_frames_close_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(reconnects_after_server_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
