/* minikv gateway: HTTP/1.1 server on libuv, parsed by llhttp, optional TLS.
 *
 * One server per libuv loop; several loops may listen on one port
 * (SO_REUSEPORT). Requests on a connection are handled one at a time
 * (pipelined requests wait their turn). Bodies stream in both directions:
 * a handler asks for the request body piece by piece and can pause the
 * socket while it has no room (back-pressure), and writes response bodies
 * in pieces with a completion callback. Nothing buffers a whole body.
 *
 * Limits (opts): the request line and the header block are bounded (414 /
 * 431 answers), a connection that sends headers too slowly is closed, and
 * idle keep-alive connections are closed after a timeout. Malformed
 * requests get 400 and the connection is closed; no handler sees them.
 *
 * Threading: every call on the server's loop.
 *
 * Callbacks (on_request, body, write, on_abort) never run inside the API
 * call that caused them: they run from the loop, so a handler may set up
 * its state after calling mkv_http_read_body or mkv_http_respond.
 *
 * Writes use write(2) through libuv: the process must ignore SIGPIPE (the
 * daemon's main does; this library changes no global state).
 */
#ifndef MKV_S3GW_HTTP_H
#define MKV_S3GW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "minikv/common.h"

struct mkv_http_server;
struct mkv_http_req;

struct mkv_http_header
{
    const char *name;  /* as received (handlers compare case-insensitively) */
    const char *value; /* leading/trailing whitespace removed */
};

struct mkv_http_server_opts
{
    const char *listen;           /* host:port (port 0: any) */
    const char *tls_cert;         /* PEM certificate chain; NULL: plain HTTP */
    const char *tls_key;          /* PEM private key */
    int reuseport;                /* SO_REUSEPORT, for one server per loop */
    uint32_t max_request_line;    /* 0: 16 KiB */
    uint32_t max_header_bytes;    /* 0: 64 KiB (all header lines together) */
    uint32_t max_headers;         /* 0: 100 */
    uint64_t header_timeout_ms;   /* 0: 30 s to receive a full header block (and
                                   * to complete a TLS handshake) */
    uint64_t idle_timeout_ms;     /* 0: 300 s between requests */
    uint64_t body_timeout_ms;     /* 0: 120 s without body progress; also the time
                                   * a response write may make no progress before
                                   * the connection is aborted (a peer that does
                                   * not read) */
    uint32_t max_connections;     /* 0: unlimited (bounded by RLIMIT_NOFILE) */
};

/* Read-only for handlers (except data); valid until the response is
 * finished and the callbacks of its writes have run, or until on_abort
 * returns. Strings are NUL-terminated. */
struct mkv_http_req
{
    const char *method;
    const char *target;     /* request-target as received: "/b/k%20x?acl" */
    const char *raw_path;   /* target before '?', still percent-encoded */
    const char *path;       /* raw_path percent-decoded (a %00 is refused with 400) */
    const char *query;      /* after '?', still encoded; "" if none */
    const struct mkv_http_header *headers;
    unsigned nheaders;
    int http_major, http_minor;
    int has_content_length;
    uint64_t content_length;
    int chunked_te;         /* Transfer-Encoding: chunked (decoded by the server) */
    int expect_continue;    /* Expect: 100-continue */
    int tls;
    const char *remote;     /* "ip:port" */
    uint64_t start_ns;      /* monotonic time the request line arrived */
    void *data;             /* for the handler */
};

struct mkv_http_handler
{
    /* A request's headers are complete. The handler must finish a response
     * (mkv_http_respond, or mkv_http_start ... mkv_http_finish), now or
     * later. If it finishes without reading the body, the server discards
     * a small remaining body or closes the connection after the response. */
    void (*on_request)(struct mkv_http_req *r, void *ctx);
    /* The client went away, a timeout hit or the server stops before the
     * response finished (mkv_http_respond or mkv_http_finish). After this
     * returns the handler must not touch r again; callbacks it registered
     * will not be called; buffers it gave mkv_http_write are no longer
     * referenced. Once the response is finished there is no on_abort: the
     * callbacks of pending writes report the failure instead. */
    void (*on_abort)(struct mkv_http_req *r, void *ctx);
};

/* Body pieces: data/len valid only during the call. The last call has
 * len 0 and status 0 (end of body), or status < 0 when the body could not
 * be read completely (client closed early: -ECONNRESET; body timeout:
 * -ETIMEDOUT; malformed chunked encoding: -EPROTO). In the error case the
 * handler should still finish a response (it is discarded if the
 * connection is gone) or rely on on_abort. */
typedef void (*mkv_http_body_cb)(struct mkv_http_req *r, int status, const uint8_t *data,
                                 size_t len);
typedef void (*mkv_http_write_cb)(struct mkv_http_req *r, int status, void *arg);

MKV_API int mkv_http_server_start(uv_loop_t *loop, const struct mkv_http_server_opts *o,
                                  const struct mkv_http_handler *h, void *ctx,
                                  struct mkv_http_server **out, char *err, size_t errlen);
MKV_API int mkv_http_server_port(const struct mkv_http_server *s);
/* Stops accepting, aborts requests in flight, closes every connection,
 * then cb(data). */
MKV_API void mkv_http_server_stop(struct mkv_http_server *s, void (*cb)(void *data), void *data);
/* Open connections (for /metrics and tests). */
MKV_API uint64_t mkv_http_server_connections(const struct mkv_http_server *s);
/* Serves an already connected stream socket (a socketpair in tests and
 * fuzzing, a socket handed over by a supervisor). The server owns fd on
 * success. opts.listen may be NULL for a server that only adopts. */
MKV_API int mkv_http_server_adopt(struct mkv_http_server *s, uv_os_sock_t fd);

/* The value of a header, compared case-insensitively; NULL if absent. */
MKV_API const char *mkv_http_header(const struct mkv_http_req *r, const char *name);
/* The value of a query parameter, percent-decoded into buf ('+' decodes to
 * a space, as S3 reads query strings); returns 1 if present (value may be
 * empty), 0 if not, -EINVAL if malformed, holding a NUL, or longer than
 * buflen-1. */
MKV_API int mkv_http_query(const struct mkv_http_req *r, const char *name, char *buf,
                           size_t buflen);
/* Percent-decodes s[0..n) into out (cap bytes; NUL-terminated when room
 * is left, but the result may itself contain NUL bytes). With
 * MKV_HTTP_PLUS_SPACE a '+' decodes to a space (query strings). Returns the
 * decoded length, -EINVAL for a malformed escape, -ENOSPC if cap is short. */
#define MKV_HTTP_PLUS_SPACE 1
MKV_API int mkv_http_unescape(const char *s, size_t n, char *out, size_t cap, int flags);

/* Starts delivering the body to cb (sends "100 Continue" first when the
 * client asked for it). Call once: -EALREADY after that, -ECONNRESET if the
 * connection is gone, -EINVAL once the response is finished. A request
 * without a body gets the end (status 0, len 0) at once. */
MKV_API int mkv_http_read_body(struct mkv_http_req *r, mkv_http_body_cb cb);
/* Stops and restarts reading the socket (back-pressure). No body callback
 * (not even the end) comes while paused; the body timeout does not run. */
MKV_API void mkv_http_pause_body(struct mkv_http_req *r);
MKV_API void mkv_http_resume_body(struct mkv_http_req *r);

/* A whole response with a small body (copied). Adds Date, Server,
 * Content-Length and Connection (a Date or Server in hdrs replaces ours;
 * Content-Length, Transfer-Encoding and Connection in hdrs are ignored:
 * use mkv_http_close_after). hdrs may be NULL when n is 0. Header names
 * must be tokens and values free of CR/LF (-EINVAL). 204 and 304 have no
 * body; for HEAD the body is not sent but its length is (to answer HEAD
 * with the length of an object, use mkv_http_start with that length and
 * mkv_http_finish). Returns 0, -EALREADY (a response was started),
 * -ECONNRESET (the connection is gone: the response counts as finished),
 * -ENOMEM. */
MKV_API int mkv_http_respond(struct mkv_http_req *r, int status, const struct mkv_http_header *hdrs,
                             unsigned n, const void *body, size_t len);
/* Starts a streamed response: content_length >= 0 sends Content-Length,
 * -1 uses chunked transfer encoding. For HEAD, the body is never sent but
 * Content-Length is. */
MKV_API int mkv_http_start(struct mkv_http_req *r, int status, const struct mkv_http_header *hdrs,
                           unsigned n, int64_t content_length);
/* Queues buf[len] (not copied on plain TCP: keep it until cb; copied into
 * the TLS record buffer with TLS). cb(status) when written to the socket
 * (0) or when the connection failed (< 0). A write of 0 bytes, or any
 * write of a HEAD/204/304 response, sends nothing and still calls cb in
 * order. Writing more than the Content-Length is -EINVAL; len must be
 * under 4 GiB. */
MKV_API int mkv_http_write(struct mkv_http_req *r, const void *buf, size_t len,
                           mkv_http_write_cb cb, void *arg);
/* Bytes written with mkv_http_write and not yet on the socket. */
MKV_API size_t mkv_http_queued(const struct mkv_http_req *r);
/* Ends a streamed response. If fewer bytes than Content-Length were
 * written, the connection is closed (the client sees a truncated body, the
 * only honest signal left once headers are out). */
MKV_API int mkv_http_finish(struct mkv_http_req *r);
/* Asks for the connection to be closed after this response. */
MKV_API void mkv_http_close_after(struct mkv_http_req *r);

#endif /* MKV_S3GW_HTTP_H */
