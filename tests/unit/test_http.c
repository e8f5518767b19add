/* Unit tests: the HTTP/1.1 server (s3gw/http.h), through real sockets.
 *
 * A server runs on 127.0.0.1, port 0, in a libuv loop on its own thread;
 * the tests are blocking clients in the main thread. Responses are parsed
 * with llhttp in response mode, an independent reading of the bytes. The
 * handler (on the loop thread) routes on the path:
 *   /hello            200 "hello"
 *   /noread           200 "ok" without reading the body
 *   /headers          "<nheaders> <x-test> <query> <raw_path> <path>"
 *   /echo, /pause     reads the body and sends it back (/pause holds the
 *                     body for 100 ms after its first piece)
 *   /len              reads the body and answers its length
 *   /stream?n=N[&chunked]  N bytes of a pattern, written 64 KiB at a time
 *                     while no more than 256 KiB are queued */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include "http.h"
#include "llhttp.h"
#include "minikv/buf.h"

#define STREAM_PIECE (64 * 1024)
#define STREAM_LIMIT (256 * 1024)

static uint8_t pattern[STREAM_PIECE + 251];

/* The server fixture */

struct fx
{
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t call;
    uv_mutex_t mu;
    uv_cond_t cv;
    void (*fn)(struct fx *, void *);
    void *arg;
    int done;
    struct mkv_http_server *srv;
    int port;
    /* what the handler saw (written on the loop thread, under mu) */
    int nreq, naborts, nbody_err, last_body_err, pause_violations, streams_done, stream_waits;
    size_t max_queued;
};

static struct fx F;

static void fx_lock(void)
{
    uv_mutex_lock(&F.mu);
}
static void fx_unlock(void)
{
    uv_mutex_unlock(&F.mu);
}

static void call_cb(uv_async_t *a)
{
    struct fx *f = a->data;
    void (*fn)(struct fx *, void *);
    void *arg;
    uv_mutex_lock(&f->mu);
    fn = f->fn;
    arg = f->arg;
    f->fn = NULL;
    uv_mutex_unlock(&f->mu);
    if (fn) fn(f, arg);
    uv_mutex_lock(&f->mu);
    f->done = 1;
    uv_cond_broadcast(&f->cv);
    uv_mutex_unlock(&f->mu);
}

/* Runs fn on the loop thread and waits for it. */
static void fx_call(void (*fn)(struct fx *, void *), void *arg)
{
    uv_mutex_lock(&F.mu);
    F.fn = fn;
    F.arg = arg;
    F.done = 0;
    uv_mutex_unlock(&F.mu);
    uv_async_send(&F.call);
    uv_mutex_lock(&F.mu);
    while (!F.done) uv_cond_wait(&F.cv, &F.mu);
    uv_mutex_unlock(&F.mu);
}

static void get_conns(struct fx *f, void *arg)
{
    *(uint64_t *)arg = mkv_http_server_connections(f->srv);
}

static uint64_t fx_conns(void)
{
    uint64_t n = 0;
    fx_call(get_conns, &n);
    return n;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits until the server has n connections; returns 0 or -1 on timeout. */
static int fx_wait_conns(uint64_t n, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (fx_conns() != n) {
        if (now_ms() > end) return -1;
        usleep(5000);
    }
    return 0;
}

/* Waits until *counter (read under the lock) reaches want. */
static int fx_wait_counter(int *counter, int want, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int v;
        fx_lock();
        v = *counter;
        fx_unlock();
        if (v >= want) return 0;
        if (now_ms() > end) return -1;
        usleep(5000);
    }
}

/* The handler */

enum { M_ECHO, M_LEN, M_PAUSE, M_STREAM };

struct hctx
{
    struct mkv_http_req *r;
    int mode;
    struct mkv_buf body;
    uint64_t left, total;
    int writing, finished, waits;
    int paused_once, paused_now, timer_pending, aborted;
};

struct ptimer
{
    uv_timer_t t;
    struct hctx *h;
};

static void h_free(struct hctx *h)
{
    mkv_buf_free(&h->body);
    free(h);
}

static void respond_str(struct mkv_http_req *r, int status, const char *s)
{
    struct mkv_http_header h[] = {{"Content-Type", "text/plain"}};
    assert_int_equal(mkv_http_respond(r, status, h, 1, s, strlen(s)), 0);
}

static void pump(struct hctx *h);

static void write_cb(struct mkv_http_req *r, int status, void *arg)
{
    struct hctx *h = arg;
    (void)r;
    h->writing--;
    assert_int_equal(status, 0);
    pump(h);
}

static void pump(struct hctx *h)
{
    struct mkv_http_req *r = h->r;
    while (h->left && mkv_http_queued(r) < STREAM_LIMIT) {
        size_t n = h->left < STREAM_PIECE ? (size_t)h->left : STREAM_PIECE;
        uint64_t off = h->total - h->left;
        assert_int_equal(mkv_http_write(r, pattern + off % 251, n, write_cb, h), 0);
        h->left -= n;
        h->writing++;
        fx_lock();
        if (mkv_http_queued(r) > F.max_queued) F.max_queued = mkv_http_queued(r);
        fx_unlock();
    }
    if (h->left) h->waits++;
    if (!h->left && !h->finished) {
        h->finished = 1;
        assert_int_equal(mkv_http_finish(r), 0);
    }
    if (h->finished && h->writing == 0) {
        fx_lock();
        F.streams_done++;
        F.stream_waits += h->waits;
        fx_unlock();
        h_free(h);
    }
}

static void ptimer_closed(uv_handle_t *t)
{
    free(t->data);
}

static void ptimer_cb(uv_timer_t *t)
{
    struct ptimer *pt = t->data;
    struct hctx *h = pt->h;
    h->timer_pending = 0;
    if (h->aborted) {
        h_free(h);
    } else {
        h->paused_now = 0;
        mkv_http_resume_body(h->r);
    }
    uv_close((uv_handle_t *)t, ptimer_closed);
}

static void body_cb(struct mkv_http_req *r, int status, const uint8_t *data, size_t len)
{
    struct hctx *h = r->data;
    if (status < 0) {
        fx_lock();
        F.nbody_err++;
        F.last_body_err = status;
        fx_unlock();
        if (status == -ECONNRESET) return; /* on_abort follows */
        respond_str(r, status == -ETIMEDOUT ? 408 : 400, "bad body");
        h_free(h);
        r->data = NULL;
        return;
    }
    if (len) {
        if (h->paused_now) {
            fx_lock();
            F.pause_violations++;
            fx_unlock();
        }
        assert_int_equal(mkv_buf_append(&h->body, data, len), 0);
        if (h->mode == M_PAUSE && !h->paused_once) {
            struct ptimer *pt = calloc(1, sizeof *pt);
            h->paused_once = h->paused_now = 1;
            mkv_http_pause_body(r);
            uv_timer_init(&F.loop, &pt->t);
            pt->t.data = pt;
            pt->h = h;
            h->timer_pending = 1;
            uv_timer_start(&pt->t, ptimer_cb, 100, 0);
        }
        return;
    }
    if (h->mode == M_LEN) {
        char b[32];
        snprintf(b, sizeof b, "%zu", h->body.len);
        respond_str(r, 200, b);
    } else {
        assert_int_equal(mkv_http_respond(r, 200, NULL, 0, h->body.p, h->body.len), 0);
    }
    h_free(h);
    r->data = NULL;
}

static void on_request(struct mkv_http_req *r, void *ctx)
{
    struct hctx *h;
    char b[1024];
    (void)ctx;
    fx_lock();
    F.nreq++;
    fx_unlock();
    r->data = NULL;
    if (strcmp(r->path, "/hello") == 0) {
        respond_str(r, 200, "hello");
        return;
    }
    if (strcmp(r->path, "/hang") == 0) return; /* never answers */
    if (strcmp(r->path, "/noread") == 0) {
        respond_str(r, 200, "ok");
        return;
    }
    if (strcmp(r->path, "/headers") == 0) {
        const char *x = mkv_http_header(r, "X-TEST");
        snprintf(b, sizeof b, "%u [%s] [%s] [%s] [%s]", r->nheaders, x ? x : "-", r->query,
                 r->raw_path, r->path);
        respond_str(r, 200, b);
        return;
    }
    h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->r = r;
    r->data = h;
    if (strcmp(r->path, "/echo") == 0 || strcmp(r->path, "/len") == 0 ||
        strcmp(r->path, "/pause") == 0) {
        h->mode = r->path[1] == 'e' ? M_ECHO : r->path[1] == 'l' ? M_LEN : M_PAUSE;
        assert_int_equal(mkv_http_read_body(r, body_cb), 0);
        assert_int_equal(mkv_http_read_body(r, body_cb), -EALREADY);
        return;
    }
    if (strcmp(r->path, "/stream") == 0) {
        struct mkv_http_header hd[] = {{"Content-Type", "application/octet-stream"}};
        int chunked = mkv_http_query(r, "chunked", b, sizeof b) == 1;
        assert_int_equal(mkv_http_query(r, "n", b, sizeof b), 1);
        h->mode = M_STREAM;
        h->left = h->total = strtoull(b, NULL, 10);
        assert_int_equal(mkv_http_start(r, 200, hd, 1, chunked ? -1 : (int64_t)h->total), 0);
        pump(h);
        return;
    }
    respond_str(r, 404, "no such path");
    h_free(h);
    r->data = NULL;
}

static void on_abort(struct mkv_http_req *r, void *ctx)
{
    struct hctx *h = r->data;
    (void)ctx;
    fx_lock();
    F.naborts++;
    fx_unlock();
    if (!h) return;
    if (h->timer_pending)
        h->aborted = 1;
    else
        h_free(h);
}

static const struct mkv_http_handler handler = {on_request, on_abort};

static void loop_main(void *arg)
{
    struct fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void fx_start(struct mkv_http_server_opts *o)
{
    char err[256] = "";
    int rv;
    uv_mutex_init(&F.mu);
    uv_cond_init(&F.cv);
    assert_int_equal(uv_loop_init(&F.loop), 0);
    assert_int_equal(uv_async_init(&F.loop, &F.call, call_cb), 0);
    F.call.data = &F;
    F.nreq = F.naborts = F.nbody_err = F.last_body_err = F.pause_violations = 0;
    F.streams_done = F.stream_waits = 0;
    F.max_queued = 0;
    if (!o->listen) o->listen = "127.0.0.1:0";
    rv = mkv_http_server_start(&F.loop, o, &handler, &F, &F.srv, err, sizeof err);
    if (rv) fail_msg("server start: %s", err);
    F.port = mkv_http_server_port(F.srv);
    assert_true(F.port > 0);
    assert_int_equal(uv_thread_create(&F.thread, loop_main, &F), 0);
}

static void stopped(void *data)
{
    (void)data;
}

static void do_stop(struct fx *f, void *arg)
{
    (void)arg;
    mkv_http_server_stop(f->srv, stopped, f);
    uv_close((uv_handle_t *)&f->call, NULL);
}

static void fx_stop(void)
{
    fx_call(do_stop, NULL);
    uv_thread_join(&F.thread);
    assert_int_equal(uv_loop_close(&F.loop), 0);
    uv_cond_destroy(&F.cv);
    uv_mutex_destroy(&F.mu);
}

/* Clients */

struct resp
{
    int status, complete;
    char hdrs[8192];
    size_t hlen;
    struct mkv_buf body;
};

struct cl
{
    int fd;
    SSL *ssl;
    llhttp_t p;
    llhttp_settings_t st;
    char buf[65536];
    size_t off, len;
    struct resp *cur;
    int head;
    int slow_us;     /* sleep after every read (a slow reader) */
    size_t read_max; /* bytes per read (0: the whole buffer) */
};

static int r_hfield(llhttp_t *p, const char *at, size_t n)
{
    struct cl *c = p->data;
    struct resp *r = c->cur;
    for (size_t i = 0; i < n && r->hlen + 2 < sizeof r->hdrs; i++)
        r->hdrs[r->hlen++] = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] | 0x20 : at[i]);
    return 0;
}

static int r_hfield_done(llhttp_t *p)
{
    struct cl *c = p->data;
    struct resp *r = c->cur;
    if (r->hlen + 2 < sizeof r->hdrs) {
        r->hdrs[r->hlen++] = ':';
        r->hdrs[r->hlen++] = ' ';
    }
    return 0;
}

static int r_hvalue(llhttp_t *p, const char *at, size_t n)
{
    struct cl *c = p->data;
    struct resp *r = c->cur;
    for (size_t i = 0; i < n && r->hlen + 2 < sizeof r->hdrs; i++)
        r->hdrs[r->hlen++] = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] | 0x20 : at[i]);
    return 0;
}

static int r_hvalue_done(llhttp_t *p)
{
    struct cl *c = p->data;
    struct resp *r = c->cur;
    if (r->hlen + 1 < sizeof r->hdrs) r->hdrs[r->hlen++] = '\n';
    r->hdrs[r->hlen] = '\0';
    return 0;
}

static int r_headers_done(llhttp_t *p)
{
    struct cl *c = p->data;
    c->cur->status = llhttp_get_status_code(p);
    return c->head ? 1 : 0;
}

static int r_body(llhttp_t *p, const char *at, size_t n)
{
    struct cl *c = p->data;
    return mkv_buf_append(&c->cur->body, at, n) ? -1 : 0;
}

static int r_done(llhttp_t *p)
{
    struct cl *c = p->data;
    c->cur->complete = 1;
    return HPE_PAUSED;
}

static void cl_init(struct cl *c, int fd)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    llhttp_settings_init(&c->st);
    c->st.on_header_field = r_hfield;
    c->st.on_header_field_complete = r_hfield_done;
    c->st.on_header_value = r_hvalue;
    c->st.on_header_value_complete = r_hvalue_done;
    c->st.on_headers_complete = r_headers_done;
    c->st.on_body = r_body;
    c->st.on_message_complete = r_done;
    llhttp_init(&c->p, HTTP_RESPONSE, &c->st);
    c->p.data = c;
}

static int tcp_connect(int port, int rcvbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) fail_msg("connect: %s", strerror(errno));
    return fd;
}

static void cl_open(struct cl *c)
{
    cl_init(c, tcp_connect(F.port, 0));
}

static void cl_close(struct cl *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static void cl_send(struct cl *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = c->ssl ? SSL_write(c->ssl, s, (int)n) : send(c->fd, s, n, MSG_NOSIGNAL);
        if (k <= 0) fail_msg("send: %s", strerror(errno));
        s += k;
        n -= (size_t)k;
    }
}

static void cl_sends(struct cl *c, const char *s)
{
    cl_send(c, s, strlen(s));
}

static ssize_t cl_recv(struct cl *c, char *buf, size_t cap)
{
    ssize_t n;
    if (c->read_max && cap > c->read_max) cap = c->read_max;
    if (c->ssl) {
        n = SSL_read(c->ssl, buf, (int)cap);
        if (n <= 0) n = SSL_get_error(c->ssl, (int)n) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    } else {
        n = recv(c->fd, buf, cap, 0);
    }
    if (c->slow_us) usleep((useconds_t)c->slow_us);
    return n;
}

/* Reads one response; 0 or -1. */
static int cl_read(struct cl *c, struct resp *r, int head)
{
    mkv_buf_free(&r->body);
    memset(r, 0, sizeof *r);
    c->cur = r;
    c->head = head;
    for (;;) {
        if (c->off < c->len) {
            const char *start = c->buf + c->off;
            llhttp_errno_t e = llhttp_execute(&c->p, start, c->len - c->off);
            if (e == HPE_PAUSED) {
                c->off += (size_t)(llhttp_get_error_pos(&c->p) - start);
                llhttp_resume(&c->p);
            } else if (e == HPE_OK) {
                c->off = c->len;
            } else {
                return -1;
            }
            if (r->complete) return 0;
            continue;
        }
        ssize_t n = cl_recv(c, c->buf, sizeof c->buf);
        if (n == 0) {
            llhttp_errno_t e = llhttp_finish(&c->p); /* a body that ends with the connection */
            if ((e == HPE_OK || e == HPE_PAUSED) && r->complete) return 0;
            return -1;
        }
        if (n < 0) return -1;
        c->off = 0;
        c->len = (size_t)n;
    }
}

static int has_header(const struct resp *r, const char *line)
{
    return strstr(r->hdrs, line) != NULL;
}

static void expect_body(const struct resp *r, int status, const char *body)
{
    assert_int_equal(r->status, status);
    assert_int_equal(r->body.len, strlen(body));
    assert_memory_equal(r->body.p, body, r->body.len);
}

/* Milliseconds until the server closes the connection (EOF or reset), or
 * -1 if it stays open for timeout_ms. Anything received is dropped. */
static int cl_wait_close(struct cl *c, int timeout_ms)
{
    uint64_t start = now_ms();
    char b[4096];
    for (;;) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int left = timeout_ms - (int)(now_ms() - start);
        if (left <= 0) return -1;
        if (poll(&pfd, 1, left) <= 0) continue;
        ssize_t n = recv(c->fd, b, sizeof b, 0);
        if (n <= 0) return (int)(now_ms() - start);
    }
}

static const char *GET_HELLO = "GET /hello HTTP/1.1\r\nHost: test\r\n\r\n";

/* Tests */

static void test_keepalive(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    (void)state;
    fx_start(&o);
    cl_open(&c);
    for (int i = 0; i < 3; i++) {
        cl_sends(&c, GET_HELLO);
        assert_int_equal(cl_read(&c, &r, 0), 0);
        expect_body(&r, 200, "hello");
        assert_true(has_header(&r, "connection: keep-alive\n"));
        assert_true(has_header(&r, "server: minikv\n"));
        assert_true(has_header(&r, "date: "));
        assert_true(has_header(&r, "content-length: 5\n"));
    }
    assert_int_equal(fx_conns(), 1);
    /* Connection: close from the client */
    cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_true(has_header(&r, "connection: close\n"));
    assert_true(cl_wait_close(&c, 2000) >= 0);
    cl_close(&c);
    /* HTTP/1.0 closes unless asked otherwise */
    cl_open(&c);
    cl_sends(&c, "GET /hello HTTP/1.0\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    assert_true(cl_wait_close(&c, 2000) >= 0);
    cl_close(&c);
    cl_open(&c);
    cl_sends(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_true(has_header(&r, "connection: keep-alive\n"));
    cl_sends(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    cl_close(&c);
    assert_int_equal(fx_wait_conns(0, 2000), 0);
    mkv_buf_free(&r.body);
    fx_stop();
}

static void test_pipelining(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    (void)state;
    fx_start(&o);
    cl_open(&c);
    /* four requests in one write, answered in order, one at a time */
    cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world"
                 "GET /headers?a=1&b HTTP/1.1\r\nHost: t\r\nX-Test:   spaced  value \t\r\n"
                 "Empty:\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello world");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "3 [spaced  value] [a=1&b] [/headers] [/headers]");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    /* a request split across many small writes */
    {
        const char *req = "GET /headers?k=%41 HTTP/1.1\r\nHost: t\r\nX-Test: v\r\n\r\n";
        for (size_t i = 0; req[i]; i++) {
            cl_send(&c, req + i, 1);
            if (i % 7 == 0) usleep(1000);
        }
        assert_int_equal(cl_read(&c, &r, 0), 0);
        expect_body(&r, 200, "2 [v] [k=%41] [/headers] [/headers]");
    }
    /* the decoded path */
    cl_sends(&c, "GET /head%65rs HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "1 [-] [] [/head%65rs] [/headers]");
    cl_close(&c);
    mkv_buf_free(&r.body);
    fx_stop();
}

static void test_expect_continue(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    (void)state;
    fx_start(&o);
    cl_open(&c);
    cl_sends(&c, "PUT /len HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    /* the interim response comes before any body byte is sent */
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_int_equal(r.status, 100);
    cl_sends(&c, "hello");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "5");
    assert_true(has_header(&r, "connection: keep-alive\n"));
    /* a handler that answers without reading: no 100, and the connection
     * closes since the client may or may not send the body */
    cl_sends(&c, "PUT /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "ok");
    assert_true(has_header(&r, "connection: close\n"));
    assert_true(cl_wait_close(&c, 2000) >= 0);
    cl_close(&c);
    mkv_buf_free(&r.body);
    fx_stop();
}

static void test_chunked_request(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    int errs;
    (void)state;
    fx_start(&o);
    cl_open(&c);
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    usleep(20000);
    cl_sends(&c, "lo\r\n6;ext=1\r\n world\r\n");
    usleep(20000);
    cl_sends(&c, "0\r\nX-Trailer: ignored\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello world");
    /* the same connection goes on */
    cl_sends(&c, GET_HELLO);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    /* malformed chunk size: the body callback sees -EPROTO, the handler
     * answers, the connection closes */
    fx_lock();
    errs = F.nbody_err;
    fx_unlock();
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 400, "bad body");
    assert_true(has_header(&r, "connection: close\n"));
    assert_true(cl_wait_close(&c, 2000) >= 0);
    fx_lock();
    assert_int_equal(F.nbody_err, errs + 1);
    assert_int_equal(F.last_body_err, -EPROTO);
    fx_unlock();
    cl_close(&c);
    mkv_buf_free(&r.body);
    fx_stop();
}

static void check_pattern(const struct mkv_buf *b, size_t n)
{
    assert_int_equal(b->len, n);
    for (size_t i = 0; i < n; i++)
        if (b->p[i] != (uint8_t)(i % 251)) fail_msg("byte %zu differs", i);
}

static void test_stream_backpressure(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    const size_t n = 8 * 1024 * 1024;
    char req[128];
    (void)state;
    fx_start(&o);
    cl_init(&c, tcp_connect(F.port, 16 * 1024));
    /* a slow reader: 16 KiB every 2 ms */
    c.slow_us = 2000;
    c.read_max = 16 * 1024;
    snprintf(req, sizeof req, "GET /stream?n=%zu HTTP/1.1\r\nHost: t\r\n\r\n", n);
    cl_sends(&c, req);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "content-length: 8388608\n"));
    check_pattern(&r.body, n);
    assert_int_equal(fx_wait_counter(&F.streams_done, 1, 5000), 0);
    fx_lock();
    /* the handler was held back: it waited for write completions many
     * times, and never had more than its limit plus one piece queued */
    assert_true(F.stream_waits > 10);
    assert_true(F.max_queued <= STREAM_LIMIT + STREAM_PIECE);
    fx_unlock();
    /* chunked transfer encoding, read at full speed */
    c.slow_us = 0;
    c.read_max = 0;
    snprintf(req, sizeof req, "GET /stream?n=%d&chunked HTTP/1.1\r\nHost: t\r\n\r\n", 1000003);
    cl_sends(&c, req);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_true(has_header(&r, "transfer-encoding: chunked\n"));
    check_pattern(&r.body, 1000003);
    /* HTTP/1.0 cannot have chunks: the body ends with the connection */
    snprintf(req, sizeof req, "GET /stream?n=%d&chunked HTTP/1.0\r\n\r\n", 300000);
    cl_sends(&c, req);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_false(has_header(&r, "transfer-encoding"));
    assert_true(has_header(&r, "connection: close\n"));
    check_pattern(&r.body, 300000);
    cl_close(&c);
    mkv_buf_free(&r.body);
    fx_stop();
}

static void test_head(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    (void)state;
    fx_start(&o);
    cl_open(&c);
    cl_sends(&c, "HEAD /stream?n=1000 HTTP/1.1\r\nHost: t\r\n\r\n"
                 "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "content-length: 1000\n"));
    assert_int_equal(r.body.len, 0);
    assert_int_equal(cl_read(&c, &r, 1), 0);
    assert_true(has_header(&r, "content-length: 5\n"));
    assert_int_equal(r.body.len, 0);
    /* no stray body bytes: the next response parses */
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    cl_close(&c);
    mkv_buf_free(&r.body);
    fx_stop();
}

/* A request the server refuses before the handler sees it. */
static void refused(const char *req, size_t len, int status)
{
    struct cl c;
    struct resp r = {0};
    cl_open(&c);
    cl_send(&c, req, len);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_int_equal(r.status, status);
    assert_true(has_header(&r, "connection: close\n"));
    assert_true(cl_wait_close(&c, 3000) >= 0);
    cl_close(&c);
    mkv_buf_free(&r.body);
}

static void test_limits(void **state)
{
    struct mkv_http_server_opts o = {.max_request_line = 1024, .max_header_bytes = 4096,
                                     .max_headers = 20};
    struct mkv_buf b = MKV_BUF_INIT;
    struct cl c;
    struct resp r = {0};
    int nreq;
    (void)state;
    fx_start(&o);
    /* request line */
    mkv_buf_puts(&b, "GET /");
    for (int i = 0; i < 2000; i++) mkv_buf_puts(&b, "a");
    mkv_buf_puts(&b, " HTTP/1.1\r\nHost: t\r\n\r\n");
    refused((char *)b.p, b.len, 414);
    /* header block */
    mkv_buf_reset(&b);
    mkv_buf_puts(&b, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 10; i++) {
        mkv_buf_printf(&b, "X-Big-%d: ", i);
        for (int k = 0; k < 500; k++) mkv_buf_puts(&b, "v");
        mkv_buf_puts(&b, "\r\n");
    }
    mkv_buf_puts(&b, "\r\n");
    refused((char *)b.p, b.len, 431);
    /* header count */
    mkv_buf_reset(&b);
    mkv_buf_puts(&b, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 25; i++) mkv_buf_printf(&b, "X-H%d: v\r\n", i);
    mkv_buf_puts(&b, "\r\n");
    refused((char *)b.p, b.len, 431);
    /* one huge header line, sent whole: the answer survives the unread rest */
    mkv_buf_reset(&b);
    mkv_buf_puts(&b, "GET /hello HTTP/1.1\r\nX-Huge: ");
    for (int i = 0; i < 200000; i++) mkv_buf_puts(&b, "v");
    mkv_buf_puts(&b, "\r\n\r\n");
    refused((char *)b.p, b.len, 431);
    /* whitespace does not escape the bound */
    mkv_buf_reset(&b);
    mkv_buf_puts(&b, "GET /hello HTTP/1.1\r\nX-Spaces:");
    for (int i = 0; i < 20000; i++) mkv_buf_puts(&b, " ");
    mkv_buf_puts(&b, "v\r\n\r\n");
    refused((char *)b.p, b.len, 431);
    fx_lock();
    nreq = F.nreq;
    fx_unlock();
    assert_int_equal(nreq, 0); /* the handler saw none of them */
    /* just inside the limits */
    mkv_buf_reset(&b);
    mkv_buf_puts(&b, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 20; i++) mkv_buf_printf(&b, "X-H%d: v\r\n", i);
    mkv_buf_puts(&b, "\r\n");
    cl_open(&c);
    cl_send(&c, b.p, b.len);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    cl_close(&c);
    mkv_buf_free(&r.body);
    mkv_buf_free(&b);
    fx_stop();
}

static void test_timeouts(void **state)
{
    struct mkv_http_server_opts o = {.header_timeout_ms = 300, .idle_timeout_ms = 400,
                                     .body_timeout_ms = 300};
    struct cl c;
    struct resp r = {0};
    uint64_t start;
    int closed = 0, ms;
    (void)state;
    fx_start(&o);
    /* slowloris: a header every 100 ms never completes the block in time */
    cl_open(&c);
    start = now_ms();
    cl_sends(&c, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 30 && !closed; i++) {
        struct pollfd pfd = {c.fd, POLLIN, 0};
        if (send(c.fd, "X-a: b\r\n", 8, MSG_NOSIGNAL) < 0 || poll(&pfd, 1, 100) > 0) closed = 1;
    }
    ms = (int)(now_ms() - start);
    assert_true(closed);
    assert_true(ms >= 250 && ms < 2000);
    cl_close(&c);
    /* an idle connection */
    cl_open(&c);
    ms = cl_wait_close(&c, 3000);
    assert_true(ms >= 350 && ms < 2000);
    cl_close(&c);
    /* idle after a request */
    cl_open(&c);
    cl_sends(&c, GET_HELLO);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    ms = cl_wait_close(&c, 3000);
    assert_true(ms >= 350 && ms < 2000);
    cl_close(&c);
    /* body timeout: the handler hears -ETIMEDOUT and answers 408 */
    cl_open(&c);
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 408, "bad body");
    assert_true(has_header(&r, "connection: close\n"));
    assert_true(cl_wait_close(&c, 2000) >= 0);
    fx_lock();
    assert_int_equal(F.last_body_err, -ETIMEDOUT);
    fx_unlock();
    cl_close(&c);
    mkv_buf_free(&r.body);
    fx_stop();
}

static void test_short_body_abort(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    (void)state;
    fx_start(&o);
    cl_open(&c);
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    usleep(50000);
    cl_close(&c); /* 90 bytes short */
    assert_int_equal(fx_wait_counter(&F.naborts, 1, 3000), 0);
    fx_lock();
    assert_int_equal(F.nbody_err, 1);
    assert_int_equal(F.last_body_err, -ECONNRESET);
    assert_int_equal(F.naborts, 1);
    fx_unlock();
    assert_int_equal(fx_wait_conns(0, 2000), 0);
    fx_stop();
}

static void test_bad_requests(void **state)
{
    struct mkv_http_server_opts o = {0};
    static const char *const bad[] = {
        "GET /a%00b HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /a%zzb HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /a%4 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header: v\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "CONNECT host:443 HTTP/1.1\r\n\r\n",
        "GET noslash HTTP/1.1\r\n\r\n",
        NULL,
    };
    int nreq;
    (void)state;
    fx_start(&o);
    for (int i = 0; bad[i]; i++) refused(bad[i], strlen(bad[i]), 400);
    refused("GET / HTTP/2.0\r\n\r\n", 18, 505);
    refused("GET / HTTP/0.9\r\n\r\n", 18, 505);
    fx_lock();
    nreq = F.nreq;
    fx_unlock();
    assert_int_equal(nreq, 0);
    /* absolute-form targets are served */
    {
        struct cl c;
        struct resp r = {0};
        cl_open(&c);
        cl_sends(&c, "GET http://example.com/headers?q HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(cl_read(&c, &r, 0), 0);
        expect_body(&r, 200, "1 [-] [q] [/headers] [/headers]");
        cl_close(&c);
        mkv_buf_free(&r.body);
    }
    fx_stop();
}

static void test_unread_body(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    char *big;
    (void)state;
    fx_start(&o);
    cl_open(&c);
    /* a small unread body is drained: the connection stays usable */
    cl_sends(&c, "PUT /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    big = malloc(3 << 20);
    memset(big, 'x', 3 << 20);
    cl_send(&c, big, 1000);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "ok");
    assert_true(has_header(&r, "connection: keep-alive\n"));
    cl_sends(&c, GET_HELLO);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    /* same with chunks */
    cl_sends(&c, "PUT /noread HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "ok");
    cl_sends(&c, GET_HELLO);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    cl_close(&c);
    /* a large one is not: answered with Connection: close */
    cl_open(&c);
    cl_sends(&c, "PUT /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 3145728\r\n\r\n");
    cl_send(&c, big, 4096);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "ok");
    assert_true(has_header(&r, "connection: close\n"));
    assert_true(cl_wait_close(&c, 3000) >= 0);
    cl_close(&c);
    /* a chunked body larger than the drain bound ends the connection */
    cl_open(&c);
    cl_sends(&c, "PUT /noread HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "ok");
    {
        int closed = 0;
        for (int i = 0; i < 64 && !closed; i++) {
            char hdr[32];
            snprintf(hdr, sizeof hdr, "%x\r\n", 64 * 1024);
            if (send(c.fd, hdr, strlen(hdr), MSG_NOSIGNAL) < 0 ||
                send(c.fd, big, 64 * 1024, MSG_NOSIGNAL) < 0 ||
                send(c.fd, "\r\n", 2, MSG_NOSIGNAL) < 0)
                closed = 1;
        }
        assert_true(closed || cl_wait_close(&c, 3000) >= 0);
    }
    cl_close(&c);
    free(big);
    mkv_buf_free(&r.body);
    fx_stop();
}

static void test_pause_resume(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    const size_t n = 1 << 20;
    char hdr[128];
    uint8_t *body = malloc(n);
    (void)state;
    for (size_t i = 0; i < n; i++) body[i] = (uint8_t)(i % 251);
    fx_start(&o);
    cl_open(&c);
    snprintf(hdr, sizeof hdr, "POST /pause HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
    cl_sends(&c, hdr);
    cl_send(&c, body, n);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    check_pattern(&r.body, n);
    fx_lock();
    assert_int_equal(F.pause_violations, 0); /* nothing arrived while paused */
    fx_unlock();
    cl_close(&c);
    free(body);
    mkv_buf_free(&r.body);
    fx_stop();
}

/* A body paused at its very last byte must still end once resumed: llhttp
 * owes on_message_complete but has no input left to run it on. (This hung
 * S3 multipart uploads until the client's read timeout.) */
static void test_pause_at_end(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    struct resp r = {0};
    const size_t n = 1000;
    char hdr[128];
    uint8_t body[1000];
    (void)state;
    for (size_t i = 0; i < n; i++) body[i] = (uint8_t)(i % 251);
    fx_start(&o);
    cl_open(&c);
    snprintf(hdr, sizeof hdr, "POST /pause HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
    /* one write: the first body piece is the whole body */
    {
        uint8_t all[1200];
        size_t hl = strlen(hdr);
        memcpy(all, hdr, hl);
        memcpy(all + hl, body, n);
        cl_send(&c, all, hl + n);
    }
    assert_int_equal(cl_read(&c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    check_pattern(&r.body, n);
    /* and the connection serves the next request */
    cl_sends(&c, GET_HELLO);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    cl_close(&c);
    mkv_buf_free(&r.body);
    fx_stop();
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_idle_connections(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct rlimit rl;
    int n = 2500, *fds;
    long rss0, rss1;
    uint64_t t0;
    (void)state;
    /* both ends live in this process: two descriptors per connection */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < (rlim_t)(2 * n + 256)) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)(2 * n + 256) ? rl.rlim_max : (rlim_t)(2 * n + 256);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < (rlim_t)(2 * n + 256)) n = (int)(rl.rlim_cur - 256) / 2;
    assert_true(n >= 2000);
    fds = calloc((size_t)n, sizeof *fds);
    fx_start(&o);
    /* warm up the allocator with one request */
    {
        struct cl c;
        struct resp r = {0};
        cl_open(&c);
        cl_sends(&c, GET_HELLO);
        assert_int_equal(cl_read(&c, &r, 0), 0);
        cl_close(&c);
        mkv_buf_free(&r.body);
        assert_int_equal(fx_wait_conns(0, 2000), 0);
    }
    rss0 = rss_kib();
    for (int i = 0; i < n; i++) {
        fds[i] = tcp_connect(F.port, 0);
        if (i % 250 == 249) assert_int_equal(fx_wait_conns((uint64_t)i + 1, 5000), 0);
    }
    assert_int_equal(fx_wait_conns((uint64_t)n, 5000), 0);
    rss1 = rss_kib();
    print_message("%d idle connections: %ld KiB resident more (%ld bytes each)\n", n, rss1 - rss0,
                  (rss1 - rss0) * 1024 / n);
#ifdef MKV_SANITIZERS
    assert_true((rss1 - rss0) * 1024 / n < 32 * 1024);
#else
    assert_true((rss1 - rss0) * 1024 / n < 4 * 1024); /* no read buffer is held */
#endif
    /* another client is served at once */
    t0 = now_ms();
    {
        struct cl c;
        struct resp r = {0};
        cl_open(&c);
        cl_sends(&c, GET_HELLO);
        assert_int_equal(cl_read(&c, &r, 0), 0);
        expect_body(&r, 200, "hello");
        cl_close(&c);
        mkv_buf_free(&r.body);
    }
    assert_true(now_ms() - t0 < 1000);
    /* and the idle ones still work */
    for (int i = 0; i < n; i += n / 5) {
        struct cl c;
        struct resp r = {0};
        cl_init(&c, fds[i]);
        cl_sends(&c, GET_HELLO);
        assert_int_equal(cl_read(&c, &r, 0), 0);
        expect_body(&r, 200, "hello");
        mkv_buf_free(&r.body);
    }
    for (int i = 0; i < n; i++) close(fds[i]);
    assert_int_equal(fx_wait_conns(0, 10000), 0);
    free(fds);
    fx_stop();
}

/* TLS with a throwaway self-signed certificate. */
static X509 *make_cert(EVP_PKEY **pkey, const char *certpath, const char *keypath)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    FILE *f;
    assert_non_null(pk);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    f = fopen(certpath, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    f = fopen(keypath, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    *pkey = pk;
    return x;
}

static void test_tls(void **state)
{
    char dir[] = "/tmp/mkv-tls-XXXXXX", certpath[64], keypath[64];
    struct mkv_http_server_opts o = {0};
    EVP_PKEY *pk;
    X509 *x;
    SSL_CTX *cctx;
    struct cl c;
    struct resp r = {0};
    uint8_t *body;
    const size_t n = 300000;
    char hdr[128];
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(certpath, sizeof certpath, "%s/cert.pem", dir);
    snprintf(keypath, sizeof keypath, "%s/key.pem", dir);
    x = make_cert(&pk, certpath, keypath);
    o.tls_cert = certpath;
    o.tls_key = keypath;
    fx_start(&o);

    cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(cctx);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), x), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    cl_open(&c);
    c.ssl = SSL_new(cctx);
    SSL_set_fd(c.ssl, c.fd);
    SSL_set1_host(c.ssl, "localhost");
    assert_int_equal(SSL_connect(c.ssl), 1);
    assert_true(SSL_version(c.ssl) >= TLS1_2_VERSION);
    assert_int_equal(SSL_get_verify_result(c.ssl), X509_V_OK);
    cl_sends(&c, GET_HELLO);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    expect_body(&r, 200, "hello");
    /* a body over many records, echoed */
    body = malloc(n);
    for (size_t i = 0; i < n; i++) body[i] = (uint8_t)(i % 251);
    snprintf(hdr, sizeof hdr, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
    cl_sends(&c, hdr);
    cl_send(&c, body, n);
    assert_int_equal(cl_read(&c, &r, 0), 0);
    check_pattern(&r.body, n);
    free(body);
    /* a streamed response */
    cl_sends(&c, "GET /stream?n=2000000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c, &r, 0), 0);
    check_pattern(&r.body, 2000000);
    cl_close(&c);
    /* plain HTTP on the TLS port: refused without harm */
    {
        struct cl p;
        cl_open(&p);
        cl_sends(&p, GET_HELLO);
        assert_true(cl_wait_close(&p, 3000) >= 0);
        cl_close(&p);
    }
    assert_int_equal(fx_wait_conns(0, 3000), 0);
    fx_stop();
    SSL_CTX_free(cctx);
    X509_free(x);
    EVP_PKEY_free(pk);
    unlink(certpath);
    unlink(keypath);
    rmdir(dir);
    mkv_buf_free(&r.body);
}

/* SO_REUSEPORT: two servers, one port. A start that fails releases its
 * handle through the loop. */
static int stops;
static void count_stop(void *d)
{
    (void)d;
    stops++;
}

static void test_reuseport(void **state)
{
    uv_loop_t loop;
    struct mkv_http_server *a, *b, *c;
    struct mkv_http_server_opts o = {.listen = "127.0.0.1:0", .reuseport = 1};
    char err[256], listen[64];
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(mkv_http_server_start(&loop, &o, &handler, NULL, &a, err, sizeof err), 0);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", mkv_http_server_port(a));
    o.listen = listen;
    assert_int_equal(mkv_http_server_start(&loop, &o, &handler, NULL, &b, err, sizeof err), 0);
    assert_int_equal(mkv_http_server_port(b), mkv_http_server_port(a));
    o.reuseport = 0;
    assert_int_equal(mkv_http_server_start(&loop, &o, &handler, NULL, &c, err, sizeof err),
                     UV_EADDRINUSE);
    o.listen = "not an address";
    assert_int_equal(mkv_http_server_start(&loop, &o, &handler, NULL, &c, err, sizeof err), -EINVAL);
    o.listen = "127.0.0.1:0";
    o.tls_cert = "/nonexistent/cert.pem";
    o.tls_key = "/nonexistent/key.pem";
    assert_int_not_equal(mkv_http_server_start(&loop, &o, &handler, NULL, &c, err, sizeof err), 0);
    stops = 0;
    mkv_http_server_stop(a, count_stop, NULL);
    mkv_http_server_stop(b, count_stop, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(stops, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_max_connections(void **state)
{
    struct mkv_http_server_opts o = {.max_connections = 2};
    struct cl a, b, c;
    struct resp r = {0};
    (void)state;
    fx_start(&o);
    cl_open(&a);
    cl_open(&b);
    assert_int_equal(fx_wait_conns(2, 2000), 0);
    cl_open(&c); /* over the limit: accepted and closed */
    assert_true(cl_wait_close(&c, 2000) >= 0);
    cl_close(&c);
    cl_sends(&a, GET_HELLO);
    assert_int_equal(cl_read(&a, &r, 0), 0);
    expect_body(&r, 200, "hello");
    cl_close(&a);
    cl_close(&b);
    mkv_buf_free(&r.body);
    fx_stop();
}

/* Stopping the server aborts the requests in flight. */
static void test_stop_inflight(void **state)
{
    struct mkv_http_server_opts o = {0};
    struct cl c;
    (void)state;
    fx_start(&o);
    cl_open(&c);
    cl_sends(&c, "GET /hang HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(fx_wait_counter(&F.nreq, 1, 2000), 0);
    fx_stop();
    assert_int_equal(F.naborts, 1);
    assert_true(cl_wait_close(&c, 2000) >= 0);
    cl_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive),        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_expect_continue),  cmocka_unit_test(test_chunked_request),
        cmocka_unit_test(test_stream_backpressure), cmocka_unit_test(test_head),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_short_body_abort), cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_unread_body),      cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_pause_at_end),
        cmocka_unit_test(test_idle_connections), cmocka_unit_test(test_tls),
        cmocka_unit_test(test_reuseport),        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_stop_inflight),
    };
    signal(SIGPIPE, SIG_IGN); /* libuv writes with write(2): the process ignores SIGPIPE */
    alarm(300);
    for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (uint8_t)(i % 251);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
