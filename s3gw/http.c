/* minikv gateway: the HTTP/1.1 server (see http.h) -- listener,
 * connections, parsing with llhttp, the request life cycle. Responses and
 * writes are in http_out.c, TLS in tls.c.
 *
 * A connection is a small state machine (enum conn_state) driven by one
 * function, conn_process, which runs from the read callback and from a
 * per-server idle handle ("kick") that API calls use to schedule work, so
 * no handler callback ever runs inside the API call that caused it.
 *
 * llhttp is paused (HPE_PAUSED) when a request's headers are complete and
 * when its message is complete, so pipelined requests wait their turn, and
 * after a body piece if the handler paused the body. Unparsed input stays
 * in its read buffer and the socket is not read until it is consumed: that
 * is the back-pressure. Read buffers come from a small per-server pool and
 * go back as soon as they are consumed, so an idle connection holds none. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http_priv.h"
#include "minikv/err.h"
#include "minikv/log.h"

static void conn_process(struct http_conn *c);
static void conn_close_graceful(struct http_conn *c);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* Read buffers */

void *pool_get(struct mkv_http_server *s)
{
    void *b = s->pool;
    if (b) {
        memcpy(&s->pool, b, sizeof(void *));
        s->npool--;
        return b;
    }
    return malloc(HTTP_RBUF_SIZE);
}

void pool_put(struct mkv_http_server *s, void *b)
{
    if (!b) return;
    if (s->npool >= HTTP_POOL_MAX || s->stopping) {
        free(b);
        return;
    }
    memcpy(b, &s->pool, sizeof(void *));
    s->pool = b;
    s->npool++;
}

/* Requests */

void req_unref(struct http_req *r)
{
    if (--r->refs) return;
    mkv_buf_free(&r->hb);
    mkv_buf_free(&r->head);
    free(r->hoff);
    free(r->hdrs);
    free(r);
}

static struct http_req *req_of(struct mkv_http_req *pub)
{
    return MKV_CONTAINER_OF(pub, struct http_req, pub);
}

/* Scheduling */

static void kick_unlink(struct http_conn *c)
{
    struct http_conn **pp = &c->srv->kick_head;
    if (!c->kicked) return;
    while (*pp && *pp != c) pp = &(*pp)->kick_next;
    if (*pp) *pp = c->kick_next;
    c->kick_next = NULL;
    c->kicked = 0;
}

static void kick_cb(uv_idle_t *h)
{
    struct mkv_http_server *s = h->data;
    while (s->kick_head) {
        struct http_conn *c = s->kick_head;
        s->kick_head = c->kick_next;
        c->kick_next = NULL;
        c->kicked = 0;
        conn_process(c);
    }
    uv_idle_stop(h);
}

void conn_kick(struct http_conn *c)
{
    struct mkv_http_server *s = c->srv;
    if (c->kicked || c->state == CONN_CLOSED || s->stopping) return;
    c->kicked = 1;
    c->kick_next = s->kick_head;
    s->kick_head = c;
    uv_idle_start(&s->kick, kick_cb);
}

/* Timers */

static int body_flowing(const struct http_req *r)
{
    if (r->msg_complete || !r->headers_done) return 0;
    if (r->body == BODY_DISCARD) return 1;
    return r->body == BODY_READING && !r->body_paused && !r->body_err;
}

static uint64_t conn_deadline(struct http_conn *c)
{
    const struct mkv_http_server_opts *o = &c->srv->o;
    uint64_t d = UINT64_MAX;
    switch (c->state) {
    case CONN_IDLE:
        if (c->tls && !tls_handshake_done(c->tls))
            d = c->since + o->header_timeout_ms;
        else
            d = c->since + o->idle_timeout_ms;
        break;
    case CONN_HEAD: d = c->since + o->header_timeout_ms; break;
    case CONN_ACTIVE:
        if (c->req && body_flowing(c->req)) d = c->last_body + o->body_timeout_ms;
        break;
    case CONN_LINGER:
        if (!c->shutting_down) d = c->since + HTTP_LINGER_MS;
        break;
    default: return UINT64_MAX;
    }
    if (c->wq_bytes) d = MKV_MIN(d, c->last_write + o->body_timeout_ms);
    return d;
}

static void timer_cb(uv_timer_t *t);

void conn_arm_timer(struct http_conn *c)
{
    uint64_t d, now;
    if (c->state == CONN_CLOSED) return;
    d = conn_deadline(c);
    if (d == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    now = uv_now(c->srv->loop);
    uv_timer_start(&c->timer, timer_cb, d > now ? d - now : 0, 0);
}

static void timer_cb(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    const struct mkv_http_server_opts *o = &c->srv->o;
    uint64_t now = uv_now(c->srv->loop);
    size_t wq = c->tcp.write_queue_size;
    struct http_req *r = c->req;

    /* a write made progress inside one request */
    if (c->wq_bytes && wq < c->last_wq) c->last_write = now;
    c->last_wq = wq;
    if (c->wq_bytes && now >= c->last_write + o->body_timeout_ms) {
        conn_abort(c, -ETIMEDOUT); /* the peer does not read */
        return;
    }
    switch (c->state) {
    case CONN_IDLE:
        if (now >= conn_deadline(c)) {
            conn_close_graceful(c);
            return;
        }
        break;
    case CONN_HEAD:
        if (now >= c->since + o->header_timeout_ms) {
            conn_abort(c, -ETIMEDOUT); /* headers too slow: just close */
            return;
        }
        break;
    case CONN_ACTIVE:
        if (r && body_flowing(r) && now >= c->last_body + o->body_timeout_ms) {
            r->close_conn = 1;
            r->body_failed = 1;
            c->parse_dead = 1;
            if (r->body == BODY_DISCARD) {
                conn_close_graceful(c);
                return;
            }
            r->body_err = -ETIMEDOUT;
            conn_process(c);
            return;
        }
        break;
    case CONN_LINGER:
        if (!c->shutting_down && now >= c->since + HTTP_LINGER_MS) {
            conn_abort(c, -ETIMEDOUT);
            return;
        }
        break;
    default: return;
    }
    conn_arm_timer(c);
}

/* Closing */

static void conn_close_cb(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    struct mkv_http_server *s = c->srv;
    if (--c->closes_pending) return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    pool_put(s, c->in);
    pool_put(s, c->cin);
    mkv_buf_free(&c->tls_out);
    tls_conn_free(c->tls);
    free(c);
    if (s->stopping) http_server_maybe_done(s);
}

void conn_abort(struct http_conn *c, int err)
{
    struct mkv_http_server *s = c->srv;
    struct http_req *r = c->req;
    (void)err;
    if (c->state == CONN_CLOSED) return;
    c->state = CONN_CLOSED;
    kick_unlink(c);
    if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    uv_timer_stop(&c->timer);
    c->closes_pending = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
    /* read buffers go back in conn_close_cb: llhttp may still be on them */
    if (r) {
        c->req = NULL;
        if (r->delivered && !r->finished && !r->aborted) {
            r->aborted = 1;
            s->h.on_abort(&r->pub, s->ctx);
        }
        req_unref(r);
    }
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    c->shutting_down = 0;
    if (c->state == CONN_CLOSED) return;
    if (status < 0 || c->eof) {
        conn_abort(c, status);
        return;
    }
    c->since = uv_now(c->srv->loop);
    conn_arm_timer(c);
}

static void conn_update_reading(struct http_conn *c);

/* After the last response: FIN once the writes are out, then read and drop
 * what the peer still sends (so the kernel does not answer it with a RST
 * that would destroy our response) until its EOF or HTTP_LINGER_MS. */
static void conn_close_graceful(struct http_conn *c)
{
    struct mkv_http_server *s = c->srv;
    struct http_req *r = c->req;
    if (c->state == CONN_LINGER || c->state == CONN_CLOSED) return;
    if (r) {
        c->req = NULL;
        if (r->delivered && !r->finished && !r->aborted) {
            r->aborted = 1;
            s->h.on_abort(&r->pub, s->ctx);
        }
        req_unref(r);
    }
    c->state = CONN_LINGER;
    c->since = uv_now(s->loop);
    if (c->tls) {
        tls_shutdown(c->tls);
        conn_flush_tls(c);
        if (c->state == CONN_CLOSED) return;
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, shutdown_cb)) {
        conn_abort(c, -EPIPE);
        return;
    }
    c->shutting_down = 1;
    conn_update_reading(c);
    conn_arm_timer(c);
}

void http_conn_close(struct http_conn *c)
{
    conn_close_graceful(c);
}

/* Reading */

static int has_input(const struct http_conn *c)
{
    return c->in_off < c->in_len || c->cin_left > 0;
}

static int can_parse(const struct http_conn *c)
{
    const struct http_req *r = c->req;
    if (c->state != CONN_IDLE && c->state != CONN_HEAD && c->state != CONN_ACTIVE) return 0;
    if (c->parse_dead || c->failed) return 0;
    if (!r || !r->headers_done) return 1;
    if (r->msg_complete) return 0;
    if (r->body == BODY_DISCARD) return 1;
    return r->body == BODY_READING && !r->body_paused && !r->body_err;
}

static void conn_update_reading(struct http_conn *c)
{
    int want;
    if (c->state == CONN_CLOSED) return;
    if (c->state == CONN_LINGER)
        want = !c->eof;
    else
        want = !c->eof && !has_input(c) &&
               (can_parse(c) || (c->tls && !tls_handshake_done(c->tls)));
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0) c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    (void)suggested;
    buf->base = pool_get(c->srv);
    buf->len = buf->base ? HTTP_RBUF_SIZE : 0;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct http_conn *c = st->data;
    if (n == 0) {
        pool_put(c->srv, buf->base);
        return;
    }
    if (c->state == CONN_LINGER || c->state == CONN_CLOSED) {
        pool_put(c->srv, buf->base);
        if (n < 0 && c->state == CONN_LINGER) {
            c->eof = 1;
            if (c->reading) uv_read_stop(st);
            c->reading = 0;
            if (!c->shutting_down) conn_abort(c, (int)n);
        }
        return;
    }
    if (n < 0) {
        pool_put(c->srv, buf->base);
        if (n == UV_EOF) {
            c->eof = 1;
            conn_process(c);
        } else {
            conn_abort(c, (int)n);
        }
        return;
    }
    if (c->tls) {
        pool_put(c->srv, c->cin);
        c->cin = buf->base;
        c->cin_p = c->cin;
        c->cin_left = (size_t)n;
    } else {
        pool_put(c->srv, c->in);
        c->in = buf->base;
        c->in_off = 0;
        c->in_len = (size_t)n;
    }
    conn_process(c);
}

/* llhttp callbacks */

static struct http_conn *pconn(llhttp_t *p)
{
    return p->data;
}

static int reject(struct http_conn *c, int status)
{
    if (!c->reject_status) c->reject_status = status;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = calloc(1, sizeof *r);
    if (!r) return reject(c, 503);
    r->conn = c;
    r->refs = 1;
    r->resp_left = -1;
    r->pub.start_ns = mkv_mono_ns();
    c->req = r;
    c->state = CONN_HEAD;
    c->since = uv_now(c->srv->loop);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = c->req;
    r->url_len += len;
    if (r->url_len + 16 > c->srv->o.max_request_line) return reject(c, 414);
    if (mkv_buf_append(&r->hb, at, len)) return reject(c, 503);
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = c->req;
    if (mkv_buf_append(&r->hb, "", 1)) return reject(c, 503);
    r->url_done = 1;
    return 0;
}

static int count_header_bytes(struct http_conn *c, size_t len)
{
    struct http_req *r = c->req;
    if (r->headers_done) { /* trailers of a chunked body: bounded, ignored */
        r->trailer_bytes += len;
        return r->trailer_bytes > c->srv->o.max_header_bytes ? HPE_USER : 0;
    }
    r->header_bytes += len;
    if (r->header_bytes > c->srv->o.max_header_bytes) return reject(c, 431);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = c->req;
    int rv = count_header_bytes(c, len + 4);
    if (rv || r->headers_done) return rv;
    if (r->hstate != 1) {
        if (r->nhdr >= c->srv->o.max_headers) return reject(c, 431);
        if (r->nhdr == r->caphdr) {
            unsigned cap = r->caphdr ? r->caphdr * 2 : 16;
            void *n = realloc(r->hoff, cap * sizeof *r->hoff);
            if (!n) return reject(c, 503);
            r->hoff = n;
            r->caphdr = cap;
        }
        r->hoff[r->nhdr][0] = (uint32_t)r->hb.len;
        r->hoff[r->nhdr][1] = 0;
        r->hoff[r->nhdr][2] = 0;
        r->hoff[r->nhdr][3] = 0;
        r->nhdr++;
        r->hstate = 1;
    }
    if (mkv_buf_append(&r->hb, at, len)) return reject(c, 503);
    r->hoff[r->nhdr - 1][1] += (uint32_t)len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = c->req;
    if (r->headers_done) return 0;
    if (mkv_buf_append(&r->hb, "", 1)) return reject(c, 503);
    r->hoff[r->nhdr - 1][2] = (uint32_t)r->hb.len;
    r->hstate = 2;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = c->req;
    int rv = count_header_bytes(c, len);
    if (rv || r->headers_done) return rv;
    if (r->hstate != 2) return reject(c, 400);
    if (mkv_buf_append(&r->hb, at, len)) return reject(c, 503);
    r->hoff[r->nhdr - 1][3] += (uint32_t)len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = c->req;
    uint32_t *h;
    if (r->headers_done) return 0;
    if (r->hstate != 2) return reject(c, 400);
    h = r->hoff[r->nhdr - 1];
    while (h[3] && (r->hb.p[h[2] + h[3] - 1] == ' ' || r->hb.p[h[2] + h[3] - 1] == '\t')) {
        h[3]--;
        r->hb.len--;
    }
    if (mkv_buf_append(&r->hb, "", 1)) return reject(c, 503);
    r->hstate = 0;
    return 0;
}

static int http_token_char(uint8_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Splits the target into path and query, decodes the path, builds the
 * header table: everything the handler reads, in r->hb. */
static int req_finalize(struct http_conn *c, struct http_req *r)
{
    llhttp_t *p = &c->parser;
    const char *t = (const char *)r->hb.p;
    size_t tlen = r->url_len, ps = 0, pe, qs = 0, qe = 0;
    size_t o_raw, o_query, o_path, o_remote;
    int n;

    if (!r->url_done || tlen == 0 || p->method == HTTP_CONNECT) return 400;
    if (p->http_major != 1) return 505;
    if (t[0] != '/') {
        const char *sch = strstr(t, "://");
        if (t[0] == '*' && tlen == 1) {
            ps = 0;
        } else if (sch) {
            const char *slash = strchr(sch + 3, '/');
            ps = slash ? (size_t)(slash - t) : tlen;
        } else {
            return 400;
        }
    }
    pe = ps;
    while (pe < tlen && t[pe] != '?' && t[pe] != '#') pe++;
    if (pe < tlen && t[pe] == '?') {
        qs = pe + 1;
        qe = qs;
        while (qe < tlen && t[qe] != '#') qe++;
    }
    /* room for everything appended below, so that copies from r->hb into
     * itself never see it move */
    if (mkv_buf_reserve(&r->hb, 2 * (pe - ps) + (qe - qs) + strlen(c->remote) + 8)) return 503;
    o_raw = r->hb.len;
    if (ps == pe) {
        if (mkv_buf_append(&r->hb, "/", 2)) return 503;
    } else if (mkv_buf_append(&r->hb, r->hb.p + ps, pe - ps) || mkv_buf_append(&r->hb, "", 1)) {
        return 503;
    }
    o_query = r->hb.len;
    if (mkv_buf_append(&r->hb, r->hb.p + qs, qe - qs) || mkv_buf_append(&r->hb, "", 1)) return 503;
    o_path = r->hb.len;
    {
        size_t rawlen = strlen((const char *)r->hb.p + o_raw);
        if (mkv_buf_reserve(&r->hb, rawlen + 1)) return 503;
        n = mkv_http_unescape((const char *)r->hb.p + o_raw, rawlen,
                              (char *)r->hb.p + o_path, rawlen + 1, 0);
        if (n < 0 || memchr(r->hb.p + o_path, '\0', (size_t)n)) return 400; /* bad escape, %00 */
        r->hb.len += (size_t)n + 1;
        r->hb.p[r->hb.len - 1] = '\0';
    }
    o_remote = r->hb.len;
    if (mkv_buf_puts(&r->hb, c->remote) || mkv_buf_append(&r->hb, "", 1)) return 503;

    /* field names are tokens (llhttp lets a space inside one pass) */
    for (unsigned i = 0; i < r->nhdr; i++) {
        const uint8_t *nm = r->hb.p + r->hoff[i][0];
        if (r->hoff[i][1] == 0) return 400;
        for (uint32_t k = 0; k < r->hoff[i][1]; k++)
            if (!http_token_char(nm[k])) return 400;
    }

    /* r->hb is complete: pointers from here on */
    if (r->nhdr) {
        r->hdrs = calloc(r->nhdr, sizeof *r->hdrs);
        if (!r->hdrs) return 503;
        for (unsigned i = 0; i < r->nhdr; i++) {
            r->hdrs[i].name = (const char *)r->hb.p + r->hoff[i][0];
            r->hdrs[i].value = (const char *)r->hb.p + r->hoff[i][2];
        }
    }
    r->pub.method = llhttp_method_name((llhttp_method_t)p->method);
    r->pub.target = (const char *)r->hb.p;
    r->pub.raw_path = (const char *)r->hb.p + o_raw;
    r->pub.query = (const char *)r->hb.p + o_query;
    r->pub.path = (const char *)r->hb.p + o_path;
    r->pub.remote = (const char *)r->hb.p + o_remote;
    r->pub.headers = r->hdrs;
    r->pub.nheaders = r->nhdr;
    r->pub.http_major = p->http_major;
    r->pub.http_minor = p->http_minor;
    r->pub.chunked_te = (p->flags & F_CHUNKED) != 0;
    r->pub.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
    r->pub.content_length = r->pub.has_content_length ? p->content_length : 0;
    r->pub.tls = c->tls != NULL;
    {
        const char *e = mkv_http_header(&r->pub, "expect");
        r->pub.expect_continue = e && strcasecmp(e, "100-continue") == 0;
    }
    r->keep_alive = llhttp_should_keep_alive(p);
    r->is_head = p->method == HTTP_HEAD;
    r->no_body = !r->pub.chunked_te && r->pub.content_length == 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = c->req;
    int st = req_finalize(c, r);
    if (st) return reject(c, st);
    r->headers_done = 1;
    c->state = CONN_ACTIVE;
    c->last_body = uv_now(c->srv->loop);
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *c = pconn(p);
    struct http_req *r = c->req;
    c->last_body = uv_now(c->srv->loop);
    if (r->body == BODY_DISCARD) {
        r->discarded += len;
        return r->discarded > HTTP_DISCARD_MAX ? reject(c, -1) : 0;
    }
    if (r->body != BODY_READING || r->body_paused) return HPE_PAUSED; /* not expected */
    /* llhttp flushes an open body span at the end of every execute, with
     * len 0 when the input ended exactly there; for handlers len 0 means
     * "end of body", so an empty piece must not reach them. */
    if (len == 0) return 0;
    r->body_received += len;
    r->body_cb(&r->pub, 0, (const uint8_t *)at, len);
    if (c->state == CONN_CLOSED || c->req != r || r->body != BODY_READING || r->body_paused ||
        r->resp == RESP_DONE)
        return HPE_PAUSED;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct http_conn *c = pconn(p);
    if (c->req) c->req->msg_complete = 1;
    return HPE_PAUSED;
}

/* The connection's main loop */

static void parse_error(struct http_conn *c, llhttp_errno_t err)
{
    struct http_req *r = c->req;
    int status = c->reject_status ? c->reject_status : 400;
    c->parse_dead = 1;
    if (status == -1) { /* too much unread body to drain */
        conn_close_graceful(c);
        return;
    }
    if (!r || !r->delivered) {
        MKV_DEBUG("s3gw", "bad request remote=%s status=%d err=%s", c->remote, status,
                  llhttp_errno_name(err));
        if (r) {
            c->req = NULL;
            req_unref(r);
        }
        conn_send_error(c, status);
        return;
    }
    /* in the body of a request the handler has */
    r->close_conn = 1;
    r->body_failed = 1;
    if (r->body == BODY_READING) r->body_err = -EPROTO;
}

static void conn_execute(struct http_conn *c, const char *start, size_t len)
{
    struct http_req *r = c->req;
    int in_head = !r || !r->headers_done;
    llhttp_errno_t err = llhttp_execute(&c->parser, start, len);
    size_t used;
    if (err == HPE_OK) {
        used = len;
    } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&c->parser) - start);
        /* llhttp stops at the callback that paused it; what follows
         * (on_message_complete right after the last body byte) runs on the
         * next execute, which may need no input at all. */
        c->parser_owes = used == len;
        if (err == HPE_PAUSED)
            llhttp_resume(&c->parser);
        else
            llhttp_resume_after_upgrade(&c->parser);
    } else {
        parse_error(c, err);
        return;
    }
    if (c->in) c->in_off += used;
    r = c->req;
    /* the head's raw size (whitespace llhttp skips included); a call that
     * completes the headers stops right after them */
    if (in_head && r) {
        const struct mkv_http_server_opts *o = &c->srv->o;
        r->head_raw += used;
        if (r->head_raw > (uint64_t)o->max_request_line + o->max_header_bytes + 8 * o->max_headers) {
            c->reject_status = r->url_done ? 431 : 414;
            parse_error(c, HPE_USER);
        }
    }
}

/* The peer closed its side (UV_EOF, or a TLS close_notify). */
static void conn_on_eof(struct http_conn *c)
{
    struct http_req *r = c->req;
    if (!r || !r->headers_done) {
        conn_close_graceful(c);
        return;
    }
    if (!r->msg_complete && r->body == BODY_DISCARD) {
        /* the response is out or on its way: let it finish, then close */
        r->close_conn = 1;
        conn_close_graceful(c);
        return;
    }
    if (!r->msg_complete) {
        if (r->body == BODY_READING && !r->body_err) {
            r->body = BODY_DONE;
            r->body_failed = 1;
            r->body_cb(&r->pub, -ECONNRESET, NULL, 0);
        }
        conn_abort(c, -ECONNRESET);
        return;
    }
    r->close_conn = 1;
}

static void conn_retire(struct http_conn *c)
{
    struct http_req *r = c->req;
    int close = r->close_conn || r->truncated || c->srv->stopping || c->eof;
    c->req = NULL;
    req_unref(r);
    if (close) {
        conn_close_graceful(c);
        return;
    }
    c->state = CONN_IDLE;
    c->since = uv_now(c->srv->loop);
}

/* Decrypts more input into c->in. 1: got some; 0: needs the socket; < 0 done. */
static int conn_tls_input(struct http_conn *c)
{
    char *buf;
    int n;
    if (!c->tls) return 0;
    buf = pool_get(c->srv);
    if (!buf) return -ENOMEM;
    n = tls_read(c->tls, buf, HTTP_RBUF_SIZE);
    if (conn_flush_tls(c) && n >= 0) n = -EPIPE;
    if (c->cin_left == 0 && c->cin) {
        pool_put(c->srv, c->cin);
        c->cin = NULL;
        c->cin_p = NULL;
    }
    if (n > 0) {
        pool_put(c->srv, c->in);
        c->in = buf;
        c->in_off = 0;
        c->in_len = (size_t)n;
        return 1;
    }
    pool_put(c->srv, buf);
    return n;
}

static void conn_process(struct http_conn *c)
{
    struct mkv_http_server *s = c->srv;
    if (c->in_process) return;
    c->in_process = 1;
    while (c->state != CONN_CLOSED && c->state != CONN_LINGER) {
        struct http_req *r = c->req;
        if (c->failed) {
            conn_abort(c, c->failed);
            break;
        }
        if (c->tls && !tls_handshake_done(c->tls)) {
            int rv = tls_handshake(c->tls);
            if (conn_flush_tls(c) && rv >= 0) rv = -EPIPE;
            if (c->cin_left == 0 && c->cin) {
                pool_put(s, c->cin);
                c->cin = NULL;
                c->cin_p = NULL;
            }
            if (rv < 0 || (rv == 0 && c->eof)) {
                conn_abort(c, rv);
                break;
            }
            if (rv == 0) break;
            continue;
        }
        if (r && r->headers_done && !r->delivered) {
            r->delivered = 1;
            s->h.on_request(&r->pub, s->ctx);
            continue;
        }
        if (r && r->body == BODY_READING && r->body_err) {
            int e = r->body_err;
            r->body = BODY_DONE;
            r->body_failed = 1;
            r->body_cb(&r->pub, e, NULL, 0);
            continue;
        }
        if (r && r->body == BODY_READING && r->msg_complete && !r->body_paused &&
            r->resp != RESP_DONE) {
            r->body = BODY_DONE;
            r->body_cb(&r->pub, 0, NULL, 0);
            continue;
        }
        if (r && r->resp == RESP_DONE) {
            if (r->msg_complete) {
                conn_retire(c);
                continue;
            }
            if (r->close_conn || r->body_failed) {
                conn_close_graceful(c);
                break;
            }
            if (r->body != BODY_DISCARD) {
                r->body = BODY_DISCARD;
                r->body_cb = NULL;
                c->last_body = uv_now(s->loop);
            }
        }
        if (!can_parse(c)) break;
        if (c->in_off < c->in_len) {
            conn_execute(c, c->in + c->in_off, c->in_len - c->in_off);
            continue;
        }
        if (c->parser_owes) {
            c->parser_owes = 0;
            conn_execute(c, "", 0);
            continue;
        }
        if (c->in) {
            pool_put(s, c->in);
            c->in = NULL;
            c->in_off = c->in_len = 0;
        }
        {
            int rv = conn_tls_input(c);
            if (rv > 0) continue;
            if (rv == -ECONNRESET) {
                c->eof = 1;
            } else if (rv < 0) {
                conn_abort(c, rv);
                break;
            }
        }
        if (r && r->headers_done && !r->msg_complete && r->no_body) {
            conn_execute(c, "", 0); /* completes a message without body */
            continue;
        }
        if (c->eof) {
            conn_on_eof(c);
            continue;
        }
        break; /* wait for the socket */
    }
    conn_update_reading(c);
    conn_arm_timer(c);
    c->in_process = 0;
}

/* Connections */

static void format_remote(struct http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    strcpy(c->remote, "local");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len)) return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(c->remote, sizeof c->remote, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(c->remote, sizeof c->remote, "[%s]:%d", ip, port);
    }
}

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

/* Accepts and drops one pending connection (connection limit, no memory). */
static void reject_connection(struct mkv_http_server *s)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t || uv_tcp_init(s->loop, t)) {
        free(t);
        MKV_ERROR("s3gw", "cannot accept a connection: out of memory");
        return;
    }
    (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, free_handle_cb);
}

/* Sets up a connection whose tcp handle is initialised; on failure the
 * handle is closed and the connection freed. */
static void conn_start(struct mkv_http_server *s, struct http_conn *c)
{
    c->srv = s;
    c->tcp.data = c;
    c->timer.data = c;
    uv_timer_init(s->loop, &c->timer);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    c->state = CONN_IDLE;
    c->since = uv_now(s->loop);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    (void)uv_tcp_nodelay(&c->tcp, 1);
    format_remote(c);
    if (s->tls) {
        if (tls_conn_new(s->tls, &c->tls)) {
            conn_abort(c, -ENOMEM);
            return;
        }
        tls_set_input(c->tls, &c->cin_p, &c->cin_left);
        tls_set_output(c->tls, &c->tls_out);
    }
    /* uv_read_start wants the callbacks once; conn_update_reading restarts */
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) {
        conn_abort(c, -EIO);
        return;
    }
    c->reading = 1;
    conn_arm_timer(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct mkv_http_server *s = l->data;
    struct http_conn *c;
    if (status < 0) {
        MKV_WARN("s3gw", "accept failed err=%s", uv_strerror(status));
        return;
    }
    if (s->o.max_connections && s->nconns >= s->o.max_connections) {
        reject_connection(s);
        return;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        reject_connection(s);
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
        c->tcp.data = c;
        uv_close((uv_handle_t *)&c->tcp, free_handle_cb); /* c is the handle's start */
        return;
    }
    conn_start(s, c);
}

int mkv_http_server_adopt(struct mkv_http_server *s, uv_os_sock_t fd)
{
    struct http_conn *c;
    if (s->stopping) return -ECANCELED;
    c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    uv_tcp_init(s->loop, &c->tcp);
    if (uv_tcp_open(&c->tcp, fd)) {
        uv_close((uv_handle_t *)&c->tcp, free_handle_cb);
        return -EINVAL;
    }
    conn_start(s, c);
    return 0;
}

/* The server */

static void opts_defaults(struct mkv_http_server_opts *o)
{
    if (!o->max_request_line) o->max_request_line = 16 * 1024;
    if (!o->max_header_bytes) o->max_header_bytes = 64 * 1024;
    if (!o->max_headers) o->max_headers = 100;
    if (!o->header_timeout_ms) o->header_timeout_ms = 30 * 1000;
    if (!o->idle_timeout_ms) o->idle_timeout_ms = 300 * 1000;
    if (!o->body_timeout_ms) o->body_timeout_ms = 120 * 1000;
}

static int resolve_listen(const char *spec, struct sockaddr_storage *ss, char *err,
                          size_t errlen)
{
    char host[256], port[16];
    const char *colon;
    struct addrinfo hints, *ai = NULL;
    int rv;
    if (spec[0] == '[') {
        const char *rb = strchr(spec, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - spec - 1) >= sizeof host)
            return mkv_errf(err, errlen, -EINVAL, "listen address '%s'", spec);
        memcpy(host, spec + 1, (size_t)(rb - spec - 1));
        host[rb - spec - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof host)
            return mkv_errf(err, errlen, -EINVAL, "listen address '%s' (want host:port)", spec);
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof port)
        return mkv_errf(err, errlen, -EINVAL, "listen address '%s': port", spec);
    strcpy(port, colon + 1);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rv = getaddrinfo(host[0] && strcmp(host, "*") ? host : NULL, port, &hints, &ai);
    if (rv || !ai) {
        if (err && errlen) snprintf(err, errlen, "listen address '%s': %s", spec, gai_strerror(rv));
        return -EINVAL;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static void start_fail_close_cb(uv_handle_t *h)
{
    struct mkv_http_server *s = h->data;
    tls_ctx_free(s->tls);
    free(s);
}

int mkv_http_server_start(uv_loop_t *loop, const struct mkv_http_server_opts *o,
                          const struct mkv_http_handler *h, void *ctx,
                          struct mkv_http_server **out, char *err, size_t errlen)
{
    struct mkv_http_server *s;
    struct sockaddr_storage ss;
    int rv;

    if (!h || !h->on_request || !h->on_abort) return mkv_errf(err, errlen, -EINVAL, "handler");
    s = calloc(1, sizeof *s);
    if (!s) return mkv_errf(err, errlen, -ENOMEM, "http server");
    s->loop = loop;
    s->o = *o;
    opts_defaults(&s->o);
    s->h = *h;
    s->ctx = ctx;
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_url_complete = on_url_complete;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_field_complete = on_header_field_complete;
    s->settings.on_header_value = on_header_value;
    s->settings.on_header_value_complete = on_header_value_complete;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;

    if (o->tls_cert || o->tls_key) {
        if (!o->tls_cert || !o->tls_key) {
            rv = mkv_errf(err, errlen, -EINVAL, "TLS needs both tls_cert and tls_key");
            goto err_after_alloc;
        }
        if ((rv = tls_ctx_new(o->tls_cert, o->tls_key, &s->tls, err, errlen))) goto err_after_alloc;
    }
    if (o->listen) {
        if ((rv = resolve_listen(o->listen, &ss, err, errlen))) goto err_after_tls;
        if ((rv = uv_tcp_init_ex(loop, &s->listener, ss.ss_family))) {
            mkv_errf(err, errlen, rv, "socket");
            goto err_after_tls;
        }
        s->listener.data = s;
        if (o->reuseport) {
            uv_os_fd_t fd;
            int one = 1;
            if ((rv = uv_fileno((uv_handle_t *)&s->listener, &fd)) ||
                setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) {
                rv = rv ? rv : -errno;
                mkv_errf(err, errlen, rv, "SO_REUSEPORT");
                goto err_after_listener;
            }
        }
        if ((rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0)) ||
            (rv = uv_listen((uv_stream_t *)&s->listener, 511, on_connection))) {
            mkv_errf(err, errlen, rv, "listen on %s", o->listen);
            goto err_after_listener;
        }
        {
            struct sockaddr_storage bound;
            int len = sizeof bound;
            if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len) == 0)
                s->port = ntohs(bound.ss_family == AF_INET6
                                    ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                    : ((struct sockaddr_in *)&bound)->sin_port);
        }
        s->has_listener = 1;
    }
    uv_idle_init(loop, &s->kick);
    s->kick.data = s;
    s->o.listen = s->o.tls_cert = s->o.tls_key = NULL; /* not kept: the caller owns them */
    *out = s;
    return 0;

err_after_listener:
    /* the handle must be closed by the loop; the server goes with it */
    uv_close((uv_handle_t *)&s->listener, start_fail_close_cb);
    return rv;
err_after_tls:
    tls_ctx_free(s->tls);
err_after_alloc:
    free(s);
    return rv;
}

int mkv_http_server_port(const struct mkv_http_server *s)
{
    return s->port;
}

uint64_t mkv_http_server_connections(const struct mkv_http_server *s)
{
    return s->nconns;
}

void http_server_maybe_done(struct mkv_http_server *s)
{
    void (*cb)(void *);
    void *data;
    if (s->closes_pending || s->nconns) return;
    while (s->pool) {
        void *b = s->pool;
        memcpy(&s->pool, b, sizeof(void *));
        free(b);
    }
    tls_ctx_free(s->tls);
    cb = s->stop_cb;
    data = s->stop_data;
    free(s);
    if (cb) cb(data);
}

static void server_handle_closed(uv_handle_t *h)
{
    struct mkv_http_server *s = h->data;
    s->closes_pending--;
    http_server_maybe_done(s);
}

void mkv_http_server_stop(struct mkv_http_server *s, void (*cb)(void *data), void *data)
{
    struct http_conn *c, *next;
    if (s->stopping) return;
    s->stopping = 1;
    s->stop_cb = cb;
    s->stop_data = data;
    s->closes_pending = 1 + (unsigned)s->has_listener;
    if (s->has_listener) uv_close((uv_handle_t *)&s->listener, server_handle_closed);
    uv_close((uv_handle_t *)&s->kick, server_handle_closed);
    s->kick_head = NULL;
    for (c = s->conns; c; c = next) {
        next = c->next;
        c->kicked = 0;
        conn_abort(c, -ECANCELED);
    }
}

/* Request accessors */

const char *mkv_http_header(const struct mkv_http_req *r, const char *name)
{
    for (unsigned i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

int mkv_http_unescape(const char *s, size_t n, char *out, size_t cap, int flags)
{
    size_t o = 0;
    if (n > (size_t)1 << 30) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n) return -EINVAL;
            hi = s[i + 1];
            lo = s[i + 2];
            hi = hi >= '0' && hi <= '9' ? hi - '0'
                 : (hi | 0x20) >= 'a' && (hi | 0x20) <= 'f' ? (hi | 0x20) - 'a' + 10
                                                            : -1;
            lo = lo >= '0' && lo <= '9' ? lo - '0'
                 : (lo | 0x20) >= 'a' && (lo | 0x20) <= 'f' ? (lo | 0x20) - 'a' + 10
                                                            : -1;
            if (hi < 0 || lo < 0) return -EINVAL;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && (flags & MKV_HTTP_PLUS_SPACE)) {
            c = ' ';
        }
        if (o >= cap) return -ENOSPC;
        out[o++] = (char)c;
    }
    if (o < cap) out[o] = '\0';
    return (int)o;
}

int mkv_http_query(const struct mkv_http_req *r, const char *name, char *buf, size_t buflen)
{
    const char *q = r->query ? r->query : "";
    size_t want = strlen(name);
    while (*q) {
        const char *end = strchr(q, '&'), *eq;
        char nbuf[256];
        int n;
        if (!end) end = q + strlen(q);
        eq = memchr(q, '=', (size_t)(end - q));
        n = mkv_http_unescape(q, (size_t)((eq ? eq : end) - q), nbuf, sizeof nbuf,
                              MKV_HTTP_PLUS_SPACE);
        if (n >= 0 && (size_t)n == want && memcmp(nbuf, name, want) == 0) {
            if (!eq) {
                if (buflen) buf[0] = '\0';
                return buflen ? 1 : -EINVAL;
            }
            n = mkv_http_unescape(eq + 1, (size_t)(end - eq - 1), buf, buflen,
                                  MKV_HTTP_PLUS_SPACE);
            if (n < 0 || (size_t)n >= buflen || memchr(buf, '\0', (size_t)n)) return -EINVAL;
            return 1;
        }
        q = *end ? end + 1 : end;
    }
    return 0;
}

/* Body */

int mkv_http_read_body(struct mkv_http_req *pub, mkv_http_body_cb cb)
{
    struct http_req *r = req_of(pub);
    struct http_conn *c = r->conn;
    if (!cb) return -EINVAL;
    if (r->body != BODY_IDLE) return -EALREADY;
    if (r->aborted || c->state == CONN_CLOSED || c->req != r) return -ECONNRESET;
    if (r->resp == RESP_DONE) return -EINVAL;
    r->body_cb = cb;
    r->body = BODY_READING;
    c->last_body = uv_now(c->srv->loop);
    if (r->pub.expect_continue && !r->sent_continue && r->resp == RESP_NONE && !r->msg_complete &&
        !r->no_body) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
        r->sent_continue = 1;
        (void)conn_write(c, NULL, &b, 1, NULL, 0, NULL, NULL);
    }
    conn_kick(c);
    return 0;
}

void mkv_http_pause_body(struct mkv_http_req *pub)
{
    req_of(pub)->body_paused = 1;
}

void mkv_http_resume_body(struct mkv_http_req *pub)
{
    struct http_req *r = req_of(pub);
    struct http_conn *c = r->conn;
    if (!r->body_paused) return;
    r->body_paused = 0;
    if (r->aborted || c->state == CONN_CLOSED || c->req != r) return;
    c->last_body = uv_now(c->srv->loop);
    conn_kick(c);
}
