/* minikv: framed TCP connections on libuv (both sides of the wire protocol).
 *
 * A server accepts connections and hands every complete, CRC-checked frame
 * to its on_frame callback. A peer is the client side: a connection to one
 * address that connects lazily, reconnects after failures and matches
 * replies to calls by request id. Frames that fail any check (magic,
 * version, length, CRC) close the connection; they never reach a handler.
 *
 * Flow control: a connection stops reading while more than
 * MKV_CONN_WRITE_HIGH bytes of replies wait to be written, and a peer
 * queues calls while it is not connected. Memory per idle connection is a
 * few hundred bytes: read buffers are only held while a frame is partial.
 *
 * Threading: one loop per server or peer; every call and callback on it.
 */
#ifndef MKV_NET_H
#define MKV_NET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common.h"
#include "wire.h"

#define MKV_CONN_WRITE_HIGH (16u << 20)

/* An incoming frame. The payload is owned by the frame; slices decoded from
 * it are valid while a reference is held. */
struct mkv_frame
{
    struct mkv_frame_hdr hdr;
    uint8_t *payload;
    int refs;
};

/* A frame made in memory rather than read from a connection (a reply
 * produced in this process). Takes ownership of payload (malloc'ed; NULL
 * when len is 0), also on failure. refs is 1; NULL on ENOMEM. */
MKV_API struct mkv_frame *mkv_frame_new(uint16_t type, uint8_t flags, int32_t status, void *payload,
                                        size_t len);
MKV_API void mkv_frame_ref(struct mkv_frame *f);
MKV_API void mkv_frame_unref(struct mkv_frame *f);
/* Decodes the payload with d (the matching request or reply layout). */
MKV_API int mkv_frame_decode(const struct mkv_frame *f, const struct mkv_msgdesc *d, void *msg);

struct mkv_conn;
struct mkv_server;

struct mkv_server_ops
{
    /* A frame arrived. The callee owns one reference and must unref it
     * (after replying, or later when the work it started is done). */
    void (*on_frame)(struct mkv_conn *c, struct mkv_frame *f, void *ctx);
    /* The connection is closing (optional). Pending replies are dropped. */
    void (*on_close)(struct mkv_conn *c, void *ctx);
};

/* Listens on host:port (port 0 picks a free one: see mkv_server_port). */
MKV_API int mkv_server_listen(uv_loop_t *loop, const char *hostport,
                              const struct mkv_server_ops *ops, void *ctx, struct mkv_server **out,
                              char *err, size_t errlen);
MKV_API int mkv_server_port(const struct mkv_server *s);
/* Closes the listener and every connection; cb(data) once all are closed. */
MKV_API void mkv_server_close(struct mkv_server *s, void (*cb)(void *data), void *data);

/* A handler keeps a connection alive across asynchronous work with a
 * reference; replies on a closed connection are dropped (-ENOTCONN). */
MKV_API void mkv_conn_ref(struct mkv_conn *c);
MKV_API void mkv_conn_unref(struct mkv_conn *c);
MKV_API int mkv_conn_is_open(const struct mkv_conn *c);
/* "ip:port" of the remote end. */
MKV_API const char *mkv_conn_peer_name(const struct mkv_conn *c);
/* The server's own state for a connection (its authentication): freed
 * with free_fn when the connection closes. */
MKV_API void mkv_conn_set_data(struct mkv_conn *c, void *data, void (*free_fn)(void *data));
MKV_API void *mkv_conn_data(const struct mkv_conn *c);

/* Replies to the request whose header is req with msg encoded by d. */
MKV_API int mkv_conn_reply(struct mkv_conn *c, const struct mkv_frame_hdr *req,
                           const struct mkv_msgdesc *d, const void *msg);
/* Replies with an error status and an mkv_error_rep payload. */
MKV_API int mkv_conn_reply_error(struct mkv_conn *c, const struct mkv_frame_hdr *req, int status,
                                 const char *message, const char *leader);
/* Replies with a payload already encoded (payload[len], copied). */
/* As mkv_conn_reply_raw, with flags added to MKV_FRAME_REPLY (e.g.
 * MKV_FRAME_EARLY: the command was answered before its commit). */
MKV_API int mkv_conn_reply_flags(struct mkv_conn *c, const struct mkv_frame_hdr *req, int status,
                                 uint8_t flags, const void *payload, size_t len);
MKV_API int mkv_conn_reply_raw(struct mkv_conn *c, const struct mkv_frame_hdr *req, int status,
                               const void *payload, size_t len);

/* Zero-copy replies: allocate a frame, fill its payload, send it.
 * mkv_conn_send takes ownership of of (also on error). */
struct mkv_outframe;
MKV_API struct mkv_outframe *mkv_outframe_new(size_t payload_cap);
MKV_API uint8_t *mkv_outframe_payload(struct mkv_outframe *of);
MKV_API void mkv_outframe_free(struct mkv_outframe *of);
MKV_API int mkv_conn_send(struct mkv_conn *c, struct mkv_outframe *of, uint16_t type, uint8_t flags,
                          int32_t status, uint64_t req_id, size_t payload_len);

/* ---- client side ---- */

struct mkv_peer;
struct mkv_call;

/* status: 0 or the reply's negative status, or a transport error
 * (-ECONNREFUSED, -ECONNRESET, -ETIMEDOUT, -ECANCELED on close). reply is
 * NULL on transport errors; otherwise the callee may take a reference with
 * mkv_frame_ref, else it is released when the callback returns. For
 * status < 0 with a reply, the payload is an mkv_error_rep. */
typedef void (*mkv_call_cb)(struct mkv_call *call, int status, struct mkv_frame *reply);

struct mkv_call
{
    void *data; /* for the caller */
    /* private */
    struct mkv_peer *peer;
    mkv_call_cb cb;
    uint64_t req_id;
    uint64_t deadline_ns;
    struct mkv_call *next, *prev;
    struct mkv_outframe *frame;
    uint16_t type;
    int hello;
};

/* A hello runs on every new connection of a peer before any queued call
 * goes out (authentication): start(p, data) sends its calls with
 * mkv_peer_call_hello and ends with mkv_peer_hello_done(p, status); on an
 * error status the queued calls fail with it and the connection closes. */
struct mkv_peer_hello
{
    void (*start)(struct mkv_peer *p, void *data);
};
MKV_API void mkv_peer_set_hello(struct mkv_peer *p, const struct mkv_peer_hello *h, void *data);
MKV_API int mkv_peer_call_hello(struct mkv_peer *p, struct mkv_call *call, uint16_t type,
                                const struct mkv_msgdesc *d, const void *msg, uint64_t timeout_ms,
                                mkv_call_cb cb);
MKV_API void mkv_peer_hello_done(struct mkv_peer *p, int status);

/* A peer for host:port; nothing is connected until the first call. */
MKV_API int mkv_peer_new(uv_loop_t *loop, const char *hostport, struct mkv_peer **out);
/* Fails every pending call with -ECANCELED, closes, frees. */
MKV_API void mkv_peer_close(struct mkv_peer *p);
MKV_API const char *mkv_peer_address(const struct mkv_peer *p);
/* Sends a request (msg encoded with d; d may be NULL for an empty payload)
 * and calls cb with the reply or an error. timeout_ms 0 means the default
 * (30 s). The call struct must stay valid until cb. */
MKV_API int mkv_peer_call(struct mkv_peer *p, struct mkv_call *call, uint16_t type,
                          const struct mkv_msgdesc *d, const void *msg, uint64_t timeout_ms,
                          mkv_call_cb cb);
/* Same with a payload already encoded (copied). */
MKV_API int mkv_peer_call_raw(struct mkv_peer *p, struct mkv_call *call, uint16_t type,
                              const void *payload, size_t len, uint64_t timeout_ms, mkv_call_cb cb);
/* Sends a frame the caller filled (mkv_outframe_new + payload), with frame
 * flags such as MKV_FRAME_SESSION; takes ownership of of (also on error).
 * The zero-copy path for large payloads. */
MKV_API int mkv_peer_call_frame(struct mkv_peer *p, struct mkv_call *call, uint16_t type,
                                struct mkv_outframe *of, size_t payload_len, uint8_t flags,
                                uint64_t timeout_ms, mkv_call_cb cb);
/* Bytes queued to this peer and not yet written (for back-pressure). */
MKV_API size_t mkv_peer_queued_bytes(const struct mkv_peer *p);
/* Connections this peer has opened so far (a reply on the same count came
 * over the same connection as another). */
MKV_API uint64_t mkv_peer_connects(const struct mkv_peer *p);

/* Extracts the message of an error reply ("" when none). */
MKV_API void mkv_reply_error(const struct mkv_frame *reply, char *msg, size_t msglen, char *leader,
                             size_t leaderlen);

#endif /* MKV_NET_H */
