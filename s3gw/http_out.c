/* minikv gateway: HTTP responses and socket writes (see http.h).
 *
 * A response is a head (status line, headers) and a body written as
 * Content-Length bytes, as chunks, or not at all (HEAD, 204, 304). Handler
 * buffers go to uv_write as they are (plain TCP) or are encrypted into a
 * buffer of our own (TLS); either way the handler's callback runs when the
 * bytes are on the socket. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_priv.h"

struct http_wreq
{
    uv_write_t w;
    struct http_conn *c;
    struct http_req *r;
    mkv_http_write_cb cb;
    void *arg;
    size_t user_len, total;
    void *owned;
};

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
    }
}

static const char *http_date(struct mkv_http_server *s)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if ((int64_t)now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(s->date, sizeof s->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday % 100, months[tm.tm_mon % 12],
                 (tm.tm_year + 1900) % 10000, tm.tm_hour % 100, tm.tm_min % 100,
                 tm.tm_sec % 100);
        s->date_sec = (int64_t)now;
    }
    return s->date;
}

/* Writes */

static void write_done(uv_write_t *req, int status)
{
    struct http_wreq *w = MKV_CONTAINER_OF(req, struct http_wreq, w);
    struct http_conn *c = w->c;
    struct http_req *r = w->r;
    c->nwrites--;
    c->wq_bytes -= w->total;
    c->last_write = uv_now(c->srv->loop);
    free(w->owned);
    if (status < 0 && c->state != CONN_CLOSED) conn_abort(c, status);
    if (r) {
        r->queued -= w->user_len;
        if (w->cb && !r->aborted) w->cb(&r->pub, status < 0 ? status : 0, w->arg);
        req_unref(r);
    }
    free(w);
}

static int conn_write_raw(struct http_conn *c, struct http_req *r, uv_buf_t *bufs, unsigned nbufs,
                          void *owned, size_t user_len, mkv_http_write_cb cb, void *arg)
{
    struct http_wreq *w;
    size_t total = 0;
    int rv;
    if (c->state == CONN_CLOSED) {
        free(owned);
        return -ECONNRESET;
    }
    w = calloc(1, sizeof *w);
    if (!w) {
        free(owned);
        c->failed = -ENOMEM;
        conn_kick(c);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
    w->c = c;
    w->r = r;
    w->cb = cb;
    w->arg = arg;
    w->user_len = user_len;
    w->total = total;
    w->owned = owned;
    rv = uv_write(&w->w, (uv_stream_t *)&c->tcp, bufs, nbufs, write_done);
    if (rv) {
        free(owned);
        free(w);
        c->failed = rv; /* aborted from conn_process, never under llhttp */
        conn_kick(c);
        return rv;
    }
    c->nwrites++;
    if (c->wq_bytes == 0) {
        c->last_write = uv_now(c->srv->loop);
        c->last_wq = c->tcp.write_queue_size;
        c->wq_bytes += total;
        if (total) conn_arm_timer(c);
    } else {
        c->wq_bytes += total;
    }
    if (r) {
        r->refs++;
        r->queued += user_len;
    }
    return 0;
}

int conn_write(struct http_conn *c, struct http_req *r, uv_buf_t *bufs, unsigned nbufs,
               void *owned, size_t user_len, mkv_http_write_cb cb, void *arg)
{
    uv_buf_t cb_buf;
    char *cipher;
    if (!c->tls || c->state == CONN_CLOSED)
        return conn_write_raw(c, r, bufs, nbufs, owned, user_len, cb, arg);
    for (unsigned i = 0; i < nbufs; i++) {
        if (bufs[i].len && tls_write(c->tls, bufs[i].base, bufs[i].len)) {
            free(owned);
            c->failed = -EPROTO;
            conn_kick(c);
            return -EPROTO;
        }
    }
    free(owned);
    /* a zero-length write still completes in order, with its callback */
    cipher = (char *)c->tls_out.p;
    cb_buf = uv_buf_init(cipher ? cipher : (char *)"", (unsigned)c->tls_out.len);
    c->tls_out.p = NULL;
    c->tls_out.len = c->tls_out.cap = 0;
    return conn_write_raw(c, r, &cb_buf, 1, cipher, user_len, cb, arg);
}

int conn_flush_tls(struct http_conn *c)
{
    uv_buf_t b;
    char *cipher;
    if (!c->tls || c->tls_out.len == 0) return 0;
    cipher = (char *)c->tls_out.p;
    b = uv_buf_init(cipher, (unsigned)c->tls_out.len);
    c->tls_out.p = NULL;
    c->tls_out.len = c->tls_out.cap = 0;
    return conn_write_raw(c, NULL, &b, 1, cipher, 0, NULL, NULL);
}

/* Heads */

static int token_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int valid_header(const struct mkv_http_header *h)
{
    if (!h->name || !h->value || !h->name[0]) return 0;
    for (const char *p = h->name; *p; p++)
        if (!token_char((unsigned char)*p)) return 0;
    for (const char *p = h->value; *p; p++)
        if (*p == '\r' || *p == '\n') return 0;
    return 1;
}

/* Whether the connection ends after this response. */
static int resp_closes(struct http_req *r)
{
    struct http_conn *c = r->conn;
    if (!r->keep_alive || r->close_after || c->srv->stopping || r->body_failed || c->eof ||
        c->parse_dead)
        return 1;
    if (!r->msg_complete) {
        /* the client waits for 100 Continue before it sends the body */
        if (r->body == BODY_IDLE && r->pub.expect_continue && !r->sent_continue && !r->no_body)
            return 1;
        if (!r->pub.chunked_te &&
            r->pub.content_length - MKV_MIN(r->body_received, r->pub.content_length) >
                HTTP_DISCARD_MAX)
            return 1;
    }
    return 0;
}

static int put_head(struct mkv_buf *b, struct http_req *r, int status,
                    const struct mkv_http_header *hdrs, unsigned n, int64_t clen, int chunked,
                    int close)
{
    int has_date = 0, has_server = 0;
    int nobody_status = status < 200 || status == 204 || status == 304;
    if (mkv_buf_printf(b, "HTTP/1.1 %d %s\r\n", status, http_reason(status))) return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        const struct mkv_http_header *h = &hdrs[i];
        if (!valid_header(h)) return -EINVAL;
        if (strcasecmp(h->name, "content-length") == 0 ||
            strcasecmp(h->name, "transfer-encoding") == 0 || strcasecmp(h->name, "connection") == 0)
            continue; /* ours */
        if (strcasecmp(h->name, "date") == 0) has_date = 1;
        if (strcasecmp(h->name, "server") == 0) has_server = 1;
        if (mkv_buf_printf(b, "%s: %s\r\n", h->name, h->value)) return -ENOMEM;
    }
    if (!has_date && mkv_buf_printf(b, "Date: %s\r\n", http_date(r->conn->srv))) return -ENOMEM;
    if (!has_server && mkv_buf_puts(b, "Server: minikv\r\n")) return -ENOMEM;
    if (!nobody_status) {
        if (chunked) {
            if (mkv_buf_puts(b, "Transfer-Encoding: chunked\r\n")) return -ENOMEM;
        } else if (clen >= 0) {
            if (mkv_buf_printf(b, "Content-Length: %lld\r\n", (long long)clen)) return -ENOMEM;
        }
    }
    if (mkv_buf_puts(b, close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n"))
        return -ENOMEM;
    return 0;
}

static int resp_check(struct http_req *r, int status)
{
    if (r->resp != RESP_NONE) return -EALREADY;
    if (status < 200 || status > 999) return -EINVAL;
    if (r->aborted || r->conn->state == CONN_CLOSED || r->conn->req != r) return -ECONNRESET;
    return 0;
}

int mkv_http_respond(struct mkv_http_req *pub, int status, const struct mkv_http_header *hdrs,
                     unsigned n, const void *body, size_t len)
{
    struct http_req *r = MKV_CONTAINER_OF(pub, struct http_req, pub);
    struct mkv_buf b = MKV_BUF_INIT;
    uv_buf_t ub;
    int nobody = r->is_head || status == 204 || status == 304;
    int rv = resp_check(r, status), close;
    if (!rv && len > UINT_MAX / 2) rv = -EINVAL;
    if (rv) {
        if (rv == -ECONNRESET && r->resp == RESP_NONE) r->resp = RESP_DONE, r->finished = 1;
        return rv;
    }
    close = resp_closes(r);
    if ((rv = put_head(&b, r, status, hdrs, n, (int64_t)len, 0, close))) {
        mkv_buf_free(&b);
        return rv;
    }
    if (!nobody && len && mkv_buf_append(&b, body, len)) {
        mkv_buf_free(&b);
        return -ENOMEM;
    }
    r->status = status;
    r->close_conn = close;
    r->resp = RESP_DONE;
    r->finished = 1;
    ub = uv_buf_init((char *)b.p, (unsigned)b.len);
    rv = conn_write(r->conn, r, &ub, 1, b.p, 0, NULL, NULL);
    conn_kick(r->conn);
    return rv;
}

int mkv_http_start(struct mkv_http_req *pub, int status, const struct mkv_http_header *hdrs,
                   unsigned n, int64_t content_length)
{
    struct http_req *r = MKV_CONTAINER_OF(pub, struct http_req, pub);
    struct mkv_buf b = MKV_BUF_INIT;
    int chunked = content_length < 0, close, rv = resp_check(r, status);
    if (rv) return rv;
    if (chunked && r->pub.http_major == 1 && r->pub.http_minor == 0) {
        chunked = 0; /* HTTP/1.0: the body ends when the connection does */
        r->close_after = 1;
    }
    close = resp_closes(r);
    if ((rv = put_head(&b, r, status, hdrs, n, content_length, chunked, close))) {
        mkv_buf_free(&b);
        return rv;
    }
    r->status = status;
    r->close_conn = close;
    r->resp_nobody = r->is_head || status == 204 || status == 304;
    r->resp_chunked = chunked && !r->resp_nobody;
    r->resp_left = content_length >= 0 && !r->resp_nobody ? content_length : -1;
    r->resp = RESP_STREAMING;
    mkv_buf_free(&r->head);
    r->head = b; /* sent with the first write, or by the finish */
    return 0;
}

/* The held head, to lead the next write: the caller passes it as the
 * first buffer and as the write's owned memory. NULL when already sent. */
static char *take_head(struct http_req *r, uv_buf_t *ub)
{
    char *p = (char *)r->head.p;
    if (!p) return NULL;
    *ub = uv_buf_init(p, (unsigned)r->head.len);
    r->head.p = NULL;
    r->head.len = r->head.cap = 0;
    return p;
}

int mkv_http_write(struct mkv_http_req *pub, const void *buf, size_t len, mkv_http_write_cb cb,
                   void *arg)
{
    struct http_req *r = MKV_CONTAINER_OF(pub, struct http_req, pub);
    struct http_conn *c = r->conn;
    uv_buf_t bufs[4];
    static char crlf[] = "\r\n";
    char *owned;
    unsigned nb = 0;
    if (r->resp != RESP_STREAMING || len > UINT_MAX) return -EINVAL;
    if (r->aborted || c->state == CONN_CLOSED) return -ECONNRESET;
    if (r->resp_nobody || len == 0) {
        owned = take_head(r, &bufs[0]);
        if (!owned) bufs[0] = uv_buf_init((char *)"", 0);
        return conn_write(c, r, bufs, 1, owned, 0, cb, arg);
    }
    if (r->resp_left >= 0) {
        if ((uint64_t)len > (uint64_t)r->resp_left) return -EINVAL;
        r->resp_left -= (int64_t)len;
    }
    if (r->resp_chunked) {
        /* The chunk size line goes at the end of the held head, or in a
         * buffer of its own. */
        if (mkv_buf_printf(&r->head, "%zx\r\n", len)) return -ENOMEM;
    }
    owned = take_head(r, &bufs[nb]);
    if (owned) nb++;
    bufs[nb++] = uv_buf_init((char *)buf, (unsigned)len);
    if (r->resp_chunked) bufs[nb++] = uv_buf_init(crlf, 2);
    return conn_write(c, r, bufs, nb, owned, len, cb, arg);
}

size_t mkv_http_queued(const struct mkv_http_req *pub)
{
    const struct http_req *r = MKV_CONTAINER_OF(pub, const struct http_req, pub);
    return r->queued;
}

int mkv_http_finish(struct mkv_http_req *pub)
{
    struct http_req *r = MKV_CONTAINER_OF(pub, struct http_req, pub);
    struct http_conn *c = r->conn;
    static char last[] = "0\r\n\r\n";
    int rv = 0;
    if (r->resp != RESP_STREAMING) return -EINVAL;
    r->resp = RESP_DONE;
    r->finished = 1;
    if (r->aborted || c->state == CONN_CLOSED) return -ECONNRESET;
    if (r->resp_chunked && !r->head.p) {
        uv_buf_t b = uv_buf_init(last, sizeof last - 1);
        rv = conn_write(c, r, &b, 1, NULL, 0, NULL, NULL);
    } else if (r->head.p) {
        /* Nothing was written: the head (and an empty chunked body) alone. */
        uv_buf_t b;
        char *owned;
        if (r->resp_chunked && mkv_buf_puts(&r->head, last)) return -ENOMEM;
        owned = take_head(r, &b);
        rv = conn_write(c, r, &b, 1, owned, 0, NULL, NULL);
    }
    if (!r->resp_chunked && r->resp_left > 0) {
        r->truncated = 1; /* the client must see the body end early */
        r->close_conn = 1;
    }
    if (r->close_after) r->close_conn = 1;
    conn_kick(c);
    return rv;
}

void mkv_http_close_after(struct mkv_http_req *pub)
{
    struct http_req *r = MKV_CONTAINER_OF(pub, struct http_req, pub);
    r->close_after = 1;
    if (r->resp != RESP_NONE) r->close_conn = 1;
}

int conn_send_error(struct http_conn *c, int status)
{
    struct mkv_buf b = MKV_BUF_INIT;
    uv_buf_t ub;
    int rv;
    if (mkv_buf_printf(&b,
                       "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: minikv\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n",
                       status, http_reason(status), http_date(c->srv))) {
        mkv_buf_free(&b);
        conn_abort(c, -ENOMEM);
        return -ENOMEM;
    }
    ub = uv_buf_init((char *)b.p, (unsigned)b.len);
    rv = conn_write(c, NULL, &ub, 1, b.p, 0, NULL, NULL);
    http_conn_close(c);
    return rv;
}
