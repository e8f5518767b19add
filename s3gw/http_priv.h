/* minikv gateway: HTTP server internals shared by http.c (connections,
 * parsing, request life) and http_out.c (responses, writes). Not an API. */
#ifndef MKV_S3GW_HTTP_PRIV_H
#define MKV_S3GW_HTTP_PRIV_H

#include <stdint.h>

#include <uv.h>

#include "http.h"
#include "llhttp.h"
#include "minikv/buf.h"
#include "tls.h"

#define HTTP_RBUF_SIZE (64 * 1024)     /* one read */
#define HTTP_POOL_MAX 16               /* idle read buffers kept per server */
#define HTTP_DISCARD_MAX (1024 * 1024) /* body left unread that is drained, not closed on */
#define HTTP_LINGER_MS 2000            /* draining the peer after our FIN */

/* The connection's life. */
enum conn_state {
    CONN_IDLE,   /* between requests (idle timeout) */
    CONN_HEAD,   /* request line and headers arriving (header timeout) */
    CONN_ACTIVE, /* a request is with the handler */
    CONN_LINGER, /* FIN sent after the last response; reading and dropping */
    CONN_CLOSED, /* uv_close called; freed in the close callback */
};

/* The request body, seen from the handler. */
enum body_state {
    BODY_IDLE,    /* not asked for (the socket is not read) */
    BODY_READING, /* delivered to body_cb */
    BODY_DONE,    /* end or error delivered */
    BODY_DISCARD, /* the response is finished: the rest is read and dropped */
};

enum resp_state {
    RESP_NONE,      /* nothing sent */
    RESP_STREAMING, /* headers sent (mkv_http_start) */
    RESP_DONE,      /* complete (mkv_http_respond or mkv_http_finish) */
};

struct http_conn;

struct http_req
{
    struct mkv_http_req pub;
    struct http_conn *conn;
    unsigned refs; /* one for the connection while attached, one per write */

    /* parsing */
    struct mkv_buf hb;          /* URL, header names and values, derived strings */
    uint32_t (*hoff)[4];        /* name offset, length, value offset, length */
    unsigned nhdr, caphdr;
    struct mkv_http_header *hdrs;
    int hstate;                 /* 0 none, 1 in a name, 2 in a value */
    int url_done;
    size_t url_len, header_bytes, head_raw, trailer_bytes;
    int headers_done, delivered, msg_complete, no_body, keep_alive, is_head;

    /* body */
    enum body_state body;
    mkv_http_body_cb body_cb;
    int body_paused;
    int body_err;               /* error to deliver to body_cb */
    int body_failed;            /* the body could not be read whole */
    int sent_continue;
    uint64_t body_received, discarded;

    /* response */
    enum resp_state resp;
    int status;
    int finished, aborted, close_after, close_conn, truncated;
    int resp_chunked, resp_nobody;
    int64_t resp_left;          /* Content-Length still to write; -1 if none */
    size_t queued;
    /* A streamed response's head, held until the first body write or the
     * finish so that both leave in one system call (and TCP segment). */
    struct mkv_buf head;
};

struct mkv_http_server;

struct http_conn
{
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    llhttp_t parser;
    struct mkv_http_server *srv;
    struct http_conn *prev, *next;   /* all connections of the server */
    struct http_conn *kick_next;     /* connections waiting for conn_process */
    int kicked, in_process;
    enum conn_state state;
    struct http_req *req;

    /* input: plaintext not yet parsed, ciphertext not yet decrypted */
    char *in;
    size_t in_off, in_len;
    char *cin;
    const char *cin_p;
    size_t cin_left;
    int reading, eof, closes_pending, shutting_down;
    int reject_status;               /* set by parser callbacks (-1: close quietly) */
    int parse_dead;                  /* llhttp failed: parse nothing more */
    int parser_owes;  /* paused with all input used: callbacks that need no bytes may
                       * still be due (message complete after the last body byte) */
    int failed;                      /* a write failed: abort at the next chance */

    struct tls_conn *tls;
    struct mkv_buf tls_out;

    /* timers (uv_now, ms) and write accounting */
    uint64_t since, last_body, last_write;
    uint64_t wq_bytes;
    size_t last_wq;                  /* libuv write queue size at the last check */
    unsigned nwrites;
    char remote[64];
};

struct mkv_http_server
{
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_idle_t kick;
    int has_listener, port;
    struct mkv_http_server_opts o;
    struct mkv_http_handler h;
    void *ctx;
    struct tls_ctx *tls;
    llhttp_settings_t settings;
    struct http_conn *conns;
    struct http_conn *kick_head;
    uint64_t nconns;
    void *pool;                      /* free read buffers (linked through their first bytes) */
    unsigned npool;
    int stopping;
    unsigned closes_pending;
    void (*stop_cb)(void *data);
    void *stop_data;
    int64_t date_sec;
    char date[40];
};

/* http.c */
void conn_kick(struct http_conn *c);
void conn_abort(struct http_conn *c, int err);
void conn_arm_timer(struct http_conn *c);
/* Closes after the queued writes (FIN, then drains the peer). */
void http_conn_close(struct http_conn *c);
void http_server_maybe_done(struct mkv_http_server *s);
void req_unref(struct http_req *r);
void *pool_get(struct mkv_http_server *s);
void pool_put(struct mkv_http_server *s, void *buf);

/* http_out.c */
/* Queues bufs for the connection (copied for TLS, referenced otherwise);
 * owned is freed when the write completes. cb(arg) goes to the handler of
 * r for user_len bytes of its data. Returns 0 or a negative code (owned is
 * freed in every case). */
int conn_write(struct http_conn *c, struct http_req *r, uv_buf_t *bufs, unsigned nbufs,
               void *owned, size_t user_len, mkv_http_write_cb cb, void *arg);
/* Sends a whole server-generated response (400, 414, ...) with Connection: close. */
int conn_send_error(struct http_conn *c, int status);
/* Flushes ciphertext produced by TLS (handshake, alerts) to the socket. */
int conn_flush_tls(struct http_conn *c);
const char *http_reason(int status);

#endif /* MKV_S3GW_HTTP_PRIV_H */
