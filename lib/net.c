/* minikv: framed TCP connections on libuv (see lib/minikv/net.h).
 *
 * Reading: a connection has no buffer of its own while idle. Small reads go
 * into a per-thread scratch buffer and are split into the header and the
 * payload of the frame being assembled; once a large payload is known, the
 * rest of it is read straight into the frame (no copy). A complete frame is
 * CRC-checked, then handed to the server's on_frame or matched to a call.
 *
 * Flow control: a connection stops reading while its unwritten replies or
 * its frames still held by handlers exceed their high-water marks, and
 * resumes when they drain.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minikv/config.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/net.h"

#define SCRATCH_SIZE (64u * 1024u)
#define DIRECT_READ_MIN (16u * 1024u)
#define INFLIGHT_HIGH (64u << 20) /* frame bytes held by handlers */
#define CALL_BUCKETS 256
#define DEFAULT_TIMEOUT_MS 30000

struct mkv_conn
{
    uv_tcp_t tcp;
    uv_loop_t *loop;
    int refs;
    int open;
    int reading;
    struct mkv_server *srv; /* server side */
    struct mkv_peer *peer;  /* client side */
    struct mkv_conn *next, *prev;
    /* frame being assembled */
    uint8_t hdr[MKV_FRAME_HDR_SIZE];
    size_t hdr_have;
    struct frame_priv *cur;
    size_t cur_have;
    int direct; /* the current read buffer is the payload itself */
    /* Frames written in one loop turn leave together: they are queued here
     * and the idle handle flushes them with one writev at the next turn
     * (replies to a batch of Raft commands, pipelined calls). */
    uv_idle_t flush_idle;
    struct mkv_outframe *outq_head, *outq_tail;
    unsigned outq_n;
    int flush_started;
    /* flow control */
    size_t write_queued;
    size_t inflight; /* payload bytes of frames handlers still hold */
    char name[64];
    void *data; /* the server's, per connection (its authentication) */
    void (*data_free)(void *data);
};

struct frame_priv
{
    struct mkv_frame f; /* first: mkv_frame* and frame_priv* convert */
    struct mkv_conn *conn;
};

struct mkv_outframe
{
    struct mkv_outframe *next; /* in the connection's queue, then its write batch */
    struct mkv_conn *conn;
    size_t cap;
    size_t total;
    uint8_t buf[]; /* header then payload */
};

/* Frames leaving in one uv_write. */
#define WBATCH_MAX 128
struct wbatch
{
    uv_write_t req;
    struct mkv_outframe *frames;
};

struct mkv_server
{
    uv_tcp_t listener;
    uv_loop_t *loop;
    struct mkv_server_ops ops;
    void *ctx;
    struct mkv_conn *conns;
    int closing;
    int pending_closes;
    void (*close_cb)(void *);
    void *close_data;
    int port;
};

/* PEER_HELLO: connected, the hello (authentication) running: only its own
 * calls go out; the rest wait in the queue. */
enum peer_state { PEER_IDLE, PEER_CONNECTING, PEER_HELLO, PEER_CONNECTED, PEER_CLOSED };

struct mkv_peer
{
    uv_loop_t *loop;
    char address[256];
    char host[256];
    int port;
    int state;
    struct mkv_conn *conn;
    uv_connect_t connect_req;
    uv_getaddrinfo_t gai_req;
    int gai_active;
    uv_timer_t timer;
    int timer_active;
    int handles_open;
    struct mkv_call *queue_head, *queue_tail; /* waiting for the connection */
    struct mkv_call *buckets[CALL_BUCKETS];   /* sent, waiting for a reply */
    unsigned outstanding;
    uint64_t next_req_id;
    size_t queued_bytes;
    const struct mkv_peer_hello *hello;
    void *hello_data;
    uint64_t connects; /* connections made so far */
};

/* The per-thread read buffer; freed by the key's destructor when the
 * thread exits. */
static __thread uint8_t *scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void)
{
    pthread_key_create(&scratch_key, free);
}

static uint8_t *scratch_get(void)
{
    if (!scratch) {
        pthread_once(&scratch_once, scratch_key_init);
        scratch = malloc(SCRATCH_SIZE);
        if (scratch) pthread_setspecific(scratch_key, scratch);
    }
    return scratch;
}

static void conn_read_start(struct mkv_conn *c);
static void conn_close(struct mkv_conn *c);
static void peer_fail_all(struct mkv_peer *p, int status);
static void peer_flush_queue(struct mkv_peer *p);
static void peer_connect(struct mkv_peer *p);

/* ---- frames ---- */

struct mkv_frame *mkv_frame_new(uint16_t type, uint8_t flags, int32_t status, void *payload,
                                size_t len)
{
    struct frame_priv *fp;
    if (len > UINT32_MAX || !(fp = calloc(1, sizeof *fp))) {
        free(payload);
        return NULL;
    }
    fp->f.hdr.magic = MKV_WIRE_MAGIC;
    fp->f.hdr.version = MKV_WIRE_VERSION;
    fp->f.hdr.flags = flags;
    fp->f.hdr.type = type;
    fp->f.hdr.status = status;
    fp->f.hdr.length = (uint32_t)len;
    fp->f.payload = payload;
    fp->f.refs = 1;
    return &fp->f;
}

void mkv_frame_ref(struct mkv_frame *f)
{
    f->refs++;
}

void mkv_frame_unref(struct mkv_frame *f)
{
    struct frame_priv *fp = (struct frame_priv *)f;
    struct mkv_conn *c;
    if (--f->refs > 0) return;
    c = fp->conn;
    if (c) {
        c->inflight -= f->hdr.length;
        if (c->open && !c->reading && c->inflight < INFLIGHT_HIGH / 2 &&
            c->write_queued < MKV_CONN_WRITE_HIGH / 2)
            conn_read_start(c);
        mkv_conn_unref(c);
    }
    free(f->payload);
    free(fp);
}

int mkv_frame_decode(const struct mkv_frame *f, const struct mkv_msgdesc *d, void *msg)
{
    const uint8_t *p = f->payload;
    size_t len = f->hdr.length;
    if (f->hdr.flags & MKV_FRAME_SESSION) {
        if (len < MKV_SESSION_PREFIX) return -EPROTO;
        p += MKV_SESSION_PREFIX;
        len -= MKV_SESSION_PREFIX;
    }
    return mkv_msg_decode(d, p, len, msg);
}

/* ---- connections ---- */

void mkv_conn_ref(struct mkv_conn *c)
{
    c->refs++;
}

void mkv_conn_unref(struct mkv_conn *c)
{
    if (--c->refs == 0) free(c);
}

int mkv_conn_is_open(const struct mkv_conn *c)
{
    return c->open;
}

const char *mkv_conn_peer_name(const struct mkv_conn *c)
{
    return c->name;
}

void mkv_conn_set_data(struct mkv_conn *c, void *data, void (*free_fn)(void *data))
{
    if (c->data_free && c->data != data) c->data_free(c->data);
    c->data = data;
    c->data_free = free_fn;
}

void *mkv_conn_data(const struct mkv_conn *c)
{
    return c->data;
}

static void set_peer_name(struct mkv_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            uv_ip4_name(sin, ip, sizeof ip);
            port = ntohs(sin->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(sin6, ip, sizeof ip);
            port = ntohs(sin6->sin6_port);
        }
    }
    snprintf(c->name, sizeof c->name, "%s:%d", ip, port);
}

static struct mkv_conn *conn_new(uv_loop_t *loop)
{
    struct mkv_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->loop = loop;
    c->refs = 2; /* dropped by the close callbacks of tcp and flush_idle */
    if (uv_tcp_init(loop, &c->tcp)) {
        free(c);
        return NULL;
    }
    uv_idle_init(loop, &c->flush_idle);
    c->tcp.data = c->flush_idle.data = c;
    return c;
}

static void on_idle_closed(uv_handle_t *h)
{
    mkv_conn_unref(h->data);
}

static void on_conn_closed(uv_handle_t *h);

/* Closes both handles of c (each close callback drops its reference). */
static void conn_close_handles(struct mkv_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (!uv_is_closing((uv_handle_t *)&c->flush_idle))
        uv_close((uv_handle_t *)&c->flush_idle, on_idle_closed);
}

/* Drops one written (or discarded) frame's accounting. */
static void frame_written(struct mkv_conn *c, struct mkv_outframe *of)
{
    c->write_queued -= of->total;
    if (c->peer) c->peer->queued_bytes -= MKV_MIN(c->peer->queued_bytes, of->total);
    free(of);
}

/* Frames queued but not handed to libuv, when the connection closes. */
static void outq_drop(struct mkv_conn *c)
{
    struct mkv_outframe *of;
    while ((of = c->outq_head)) {
        c->outq_head = of->next;
        frame_written(c, of);
        mkv_conn_unref(c);
    }
    c->outq_tail = NULL;
    c->outq_n = 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct mkv_conn *c = h->data;
    (void)suggested;
    if (c->cur && c->cur->f.hdr.length - c->cur_have >= DIRECT_READ_MIN) {
        c->direct = 1;
        buf->base = (char *)c->cur->f.payload + c->cur_have;
        buf->len = c->cur->f.hdr.length - c->cur_have;
        return;
    }
    c->direct = 0;
    buf->base = (char *)scratch_get();
    buf->len = buf->base ? SCRATCH_SIZE : 0;
}

static void deliver(struct mkv_conn *c, struct frame_priv *fp);

/* Completes the frame being assembled. Returns 0, or -1 if the connection
 * was closed because the frame is bad. */
static int frame_complete(struct mkv_conn *c)
{
    struct frame_priv *fp = c->cur;
    c->cur = NULL;
    c->cur_have = 0;
    c->hdr_have = 0;
    if (mkv_frame_check(c->hdr, &fp->f.hdr, fp->f.payload)) {
        MKV_WARN("net", "frame checksum mismatch, closing peer=%s type=%u len=%u", c->name,
                 fp->f.hdr.type, fp->f.hdr.length);
        c->inflight -= fp->f.hdr.length;
        mkv_conn_unref(c);
        free(fp->f.payload);
        free(fp);
        conn_close(c);
        return -1;
    }
    deliver(c, fp);
    return c->open ? 0 : -1;
}

static int frame_begin(struct mkv_conn *c)
{
    struct frame_priv *fp;
    struct mkv_frame_hdr h;
    if (mkv_frame_hdr_decode(c->hdr, &h)) {
        MKV_WARN("net", "bad frame header, closing peer=%s", c->name);
        conn_close(c);
        return -1;
    }
    fp = calloc(1, sizeof *fp);
    if (!fp) goto nomem;
    fp->f.hdr = h;
    fp->f.refs = 1;
    fp->f.payload = malloc(h.length ? h.length : 1);
    if (!fp->f.payload) {
        free(fp);
        goto nomem;
    }
    fp->conn = c;
    mkv_conn_ref(c);
    c->inflight += h.length;
    c->cur = fp;
    c->cur_have = 0;
    if (h.length == 0) return frame_complete(c);
    return 0;
nomem:
    MKV_ERROR("net", "out of memory for a frame, closing peer=%s len=%u", c->name, h.length);
    conn_close(c);
    return -1;
}

static void consume(struct mkv_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0 && c->open) {
        if (!c->cur) {
            size_t take = MKV_MIN(n, MKV_FRAME_HDR_SIZE - c->hdr_have);
            memcpy(c->hdr + c->hdr_have, p, take);
            c->hdr_have += take;
            p += take;
            n -= take;
            if (c->hdr_have == MKV_FRAME_HDR_SIZE && frame_begin(c)) return;
        } else {
            size_t take = MKV_MIN(n, c->cur->f.hdr.length - c->cur_have);
            memcpy(c->cur->f.payload + c->cur_have, p, take);
            c->cur_have += take;
            p += take;
            n -= take;
            if (c->cur_have == c->cur->f.hdr.length && frame_complete(c)) return;
        }
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct mkv_conn *c = s->data;
    (void)buf;
    if (nread < 0) {
        if (nread != UV_EOF)
            MKV_DEBUG("net", "read error peer=%s err=%s", c->name, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    if (nread == 0) return;
    mkv_conn_ref(c);
    if (c->direct) {
        c->direct = 0;
        c->cur_have += (size_t)nread;
        if (c->cur_have == c->cur->f.hdr.length) frame_complete(c);
    } else {
        consume(c, (const uint8_t *)buf->base, (size_t)nread);
    }
    if (c->open && c->reading &&
        (c->inflight >= INFLIGHT_HIGH || c->write_queued >= MKV_CONN_WRITE_HIGH)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    mkv_conn_unref(c);
}

static void conn_read_start(struct mkv_conn *c)
{
    if (!c->open || c->reading) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

static void on_conn_closed(uv_handle_t *h)
{
    struct mkv_conn *c = h->data;
    struct mkv_server *srv = c->srv;
    if (c->cur) {
        struct frame_priv *fp = c->cur;
        c->cur = NULL;
        c->inflight -= fp->f.hdr.length;
        free(fp->f.payload);
        free(fp);
        c->refs--; /* the frame's reference; the close reference follows */
    }
    if (c->data_free) c->data_free(c->data);
    c->data = NULL;
    c->data_free = NULL;
    if (srv) {
        if (srv->ops.on_close) srv->ops.on_close(c, srv->ctx);
        if (c->prev) c->prev->next = c->next;
        else srv->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        if (srv->closing && --srv->pending_closes == 0 && srv->close_cb) {
            void (*cb)(void *) = srv->close_cb;
            srv->close_cb = NULL;
            cb(srv->close_data);
            free(srv);
        }
    }
    mkv_conn_unref(c);
}

static void conn_close(struct mkv_conn *c)
{
    struct mkv_peer *p = c->peer;
    if (!c->open && uv_is_closing((uv_handle_t *)&c->tcp)) return;
    c->open = 0;
    c->reading = 0;
    if (p && p->conn == c) {
        p->conn = NULL;
        p->state = PEER_IDLE;
        c->peer = NULL;
        peer_fail_all(p, -ECONNRESET);
    }
    outq_drop(c);
    conn_close_handles(c);
}

/* ---- writing ---- */

struct mkv_outframe *mkv_outframe_new(size_t payload_cap)
{
    struct mkv_outframe *of;
    if (payload_cap > MKV_FRAME_MAX) return NULL;
    of = malloc(sizeof *of + MKV_FRAME_HDR_SIZE + payload_cap);
    if (!of) return NULL;
    of->conn = NULL;
    of->cap = payload_cap;
    of->total = 0;
    return of;
}

uint8_t *mkv_outframe_payload(struct mkv_outframe *of)
{
    return of->buf + MKV_FRAME_HDR_SIZE;
}

void mkv_outframe_free(struct mkv_outframe *of)
{
    free(of);
}

static void frame_seal(struct mkv_outframe *of, uint16_t type, uint8_t flags, int32_t status,
                       uint64_t req_id, size_t payload_len)
{
    struct mkv_frame_hdr h = {0};
    h.type = type;
    h.flags = flags;
    h.status = status;
    h.length = (uint32_t)payload_len;
    h.req_id = req_id;
    mkv_frame_hdr_encode(&h, of->buf + MKV_FRAME_HDR_SIZE, of->buf);
    of->total = MKV_FRAME_HDR_SIZE + payload_len;
}

static void on_written(uv_write_t *req, int status)
{
    struct wbatch *wb = MKV_CONTAINER_OF(req, struct wbatch, req);
    struct mkv_outframe *of = wb->frames, *next;
    struct mkv_conn *c = of->conn;
    unsigned n = 0;
    for (; of; of = next) {
        next = of->next;
        frame_written(c, of);
        n++;
    }
    free(wb);
    if (status < 0 && c->open) {
        MKV_DEBUG("net", "write failed peer=%s err=%s", c->name, uv_strerror(status));
        conn_close(c);
    } else if (c->open && !c->reading && c->write_queued < MKV_CONN_WRITE_HIGH / 2 &&
               c->inflight < INFLIGHT_HIGH / 2) {
        conn_read_start(c);
    }
    while (n--) mkv_conn_unref(c);
}

/* Hands the queued frames to libuv, up to WBATCH_MAX per write. */
static void conn_flush(struct mkv_conn *c)
{
    while (c->open && c->outq_head) {
        uv_buf_t bufs[WBATCH_MAX];
        struct wbatch *wb = malloc(sizeof *wb);
        struct mkv_outframe *of = c->outq_head, *last = NULL;
        unsigned n = 0;
        int rv;
        if (!wb) {
            conn_close(c);
            return;
        }
        wb->frames = of;
        for (; of && n < WBATCH_MAX; of = of->next) {
            bufs[n++] = uv_buf_init((char *)of->buf, (unsigned)of->total);
            last = of;
        }
        c->outq_head = last->next;
        if (!c->outq_head) c->outq_tail = NULL;
        c->outq_n -= n;
        last->next = NULL;
        rv = uv_write(&wb->req, (uv_stream_t *)&c->tcp, bufs, n, on_written);
        if (rv) {
            /* Not queued: account the batch as written, then close. */
            for (of = wb->frames; of; of = last) {
                last = of->next;
                frame_written(c, of);
                mkv_conn_unref(c);
            }
            free(wb);
            conn_close(c);
            return;
        }
    }
}

static void on_flush_idle(uv_idle_t *h)
{
    struct mkv_conn *c = h->data;
    uv_idle_stop(h);
    c->flush_started = 0;
    mkv_conn_ref(c);
    conn_flush(c);
    mkv_conn_unref(c);
}

/* Queues a sealed frame; takes ownership of of. It leaves at the next loop
 * turn with whatever else was queued meanwhile. */
static int conn_write(struct mkv_conn *c, struct mkv_outframe *of)
{
    if (!c->open) {
        free(of);
        return -ENOTCONN;
    }
    of->conn = c;
    of->next = NULL;
    mkv_conn_ref(c);
    c->write_queued += of->total;
    if (c->outq_tail) c->outq_tail->next = of;
    else c->outq_head = of;
    c->outq_tail = of;
    c->outq_n++;
    if (c->outq_n >= WBATCH_MAX) {
        conn_flush(c);
    } else if (!c->flush_started) {
        uv_idle_start(&c->flush_idle, on_flush_idle);
        c->flush_started = 1;
    }
    return 0;
}

int mkv_conn_send(struct mkv_conn *c, struct mkv_outframe *of, uint16_t type, uint8_t flags,
                  int32_t status, uint64_t req_id, size_t payload_len)
{
    if (payload_len > of->cap) {
        free(of);
        return -EINVAL;
    }
    frame_seal(of, type, flags, status, req_id, payload_len);
    return conn_write(c, of);
}

int mkv_conn_reply_flags(struct mkv_conn *c, const struct mkv_frame_hdr *req, int status,
                         uint8_t flags, const void *payload, size_t len)
{
    struct mkv_outframe *of;
    if (!c->open) return -ENOTCONN;
    of = mkv_outframe_new(len);
    if (!of) return -ENOMEM;
    if (len) memcpy(mkv_outframe_payload(of), payload, len);
    return mkv_conn_send(c, of, req->type, MKV_FRAME_REPLY | flags, status, req->req_id, len);
}

int mkv_conn_reply_raw(struct mkv_conn *c, const struct mkv_frame_hdr *req, int status,
                       const void *payload, size_t len)
{
    return mkv_conn_reply_flags(c, req, status, 0, payload, len);
}

int mkv_conn_reply(struct mkv_conn *c, const struct mkv_frame_hdr *req, const struct mkv_msgdesc *d,
                   const void *msg)
{
    struct mkv_outframe *of;
    size_t need, len;
    int rv;
    if (!c->open) return -ENOTCONN;
    need = mkv_msg_size(d, msg);
    of = mkv_outframe_new(need);
    if (!of) return -ENOMEM;
    rv = mkv_msg_encode(d, msg, mkv_outframe_payload(of), need, &len);
    if (rv) {
        free(of);
        return rv;
    }
    return mkv_conn_send(c, of, req->type, MKV_FRAME_REPLY, 0, req->req_id, len);
}

int mkv_conn_reply_error(struct mkv_conn *c, const struct mkv_frame_hdr *req, int status,
                         const char *message, const char *leader)
{
    struct mkv_error_rep e;
    struct mkv_outframe *of;
    size_t need, len;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", message ? message : mkv_strerror(status));
    e.message = mkv_slice_str(msg);
    e.leader = mkv_slice_str(leader ? leader : "");
    if (e.leader.len > 256) e.leader.len = 0;
    if (!c->open) return -ENOTCONN;
    need = mkv_msg_size(&mkv_desc_error_rep, &e);
    of = mkv_outframe_new(need);
    if (!of) return -ENOMEM;
    if (mkv_msg_encode(&mkv_desc_error_rep, &e, mkv_outframe_payload(of), need, &len)) {
        free(of);
        return -EINVAL;
    }
    return mkv_conn_send(c, of, req->type, MKV_FRAME_REPLY, status < 0 ? status : -EIO, req->req_id,
                         len);
}

void mkv_reply_error(const struct mkv_frame *reply, char *msg, size_t msglen, char *leader,
                     size_t leaderlen)
{
    struct mkv_error_rep e;
    if (msglen) msg[0] = '\0';
    if (leaderlen) leader[0] = '\0';
    if (!reply || mkv_msg_decode(&mkv_desc_error_rep, reply->payload, reply->hdr.length, &e))
        return;
    if (msglen) snprintf(msg, msglen, "%.*s", (int)e.message.len, (const char *)e.message.p);
    if (leaderlen) snprintf(leader, leaderlen, "%.*s", (int)e.leader.len, (const char *)e.leader.p);
}

/* ---- server ---- */

static void on_connection(uv_stream_t *ls, int status)
{
    struct mkv_server *srv = ls->data;
    struct mkv_conn *c;
    if (status < 0) {
        MKV_WARN("net", "accept failed err=%s", uv_strerror(status));
        return;
    }
    c = conn_new(srv->loop);
    if (!c) {
        /* Accept and drop so the listener does not spin on the pending
         * connection. */
        uv_tcp_t tmp;
        if (uv_tcp_init(srv->loop, &tmp) == 0) {
            if (uv_accept(ls, (uv_stream_t *)&tmp) == 0)
                MKV_ERROR("net", "out of memory, dropping connection");
            uv_close((uv_handle_t *)&tmp, NULL);
        }
        return;
    }
    if (uv_accept(ls, (uv_stream_t *)&c->tcp)) {
        conn_close_handles(c);
        return;
    }
    c->open = 1;
    c->srv = srv;
    uv_tcp_nodelay(&c->tcp, 1);
    set_peer_name(c);
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    conn_read_start(c);
}

static int resolve_listen(const char *hostport, struct sockaddr_storage *ss, char *err,
                          size_t errlen)
{
    char host[256];
    int port;
    if (mkv_parse_hostport(hostport, host, sizeof host, &port))
        return mkv_errf(err, errlen, -EINVAL, "listen address '%s' is not HOST:PORT", hostport);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
    if (strcmp(host, "localhost") == 0)
        return uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)ss);
    return mkv_errf(err, errlen, -EINVAL, "listen address '%s': host must be an IP address",
                    hostport);
}

static void free_listener(uv_handle_t *h)
{
    free(h->data);
}

int mkv_server_listen(uv_loop_t *loop, const char *hostport, const struct mkv_server_ops *ops,
                      void *ctx, struct mkv_server **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    struct mkv_server *srv;
    int rv, len = sizeof ss;
    rv = resolve_listen(hostport, &ss, err, errlen);
    if (rv) return rv;
    srv = calloc(1, sizeof *srv);
    if (!srv) return mkv_errf(err, errlen, -ENOMEM, "listen %s", hostport);
    srv->loop = loop;
    srv->ops = *ops;
    srv->ctx = ctx;
    rv = uv_tcp_init(loop, &srv->listener);
    if (rv) goto err_after_alloc;
    srv->listener.data = srv;
    rv = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0) rv = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    if (rv) goto err_after_init;
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) == 0)
        srv->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
    *out = srv;
    return 0;
err_after_init:
    mkv_errf(err, errlen, rv, "listen on %s (%s)", hostport, uv_strerror(rv));
    srv->closing = 1;
    uv_close((uv_handle_t *)&srv->listener, free_listener);
    return rv == UV_EADDRINUSE ? -EADDRINUSE : rv;
err_after_alloc:
    free(srv);
    return mkv_errf(err, errlen, rv, "listen on %s", hostport);
}

int mkv_server_port(const struct mkv_server *s)
{
    return s->port;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct mkv_server *srv = h->data;
    if (--srv->pending_closes == 0) {
        void (*cb)(void *) = srv->close_cb;
        void *data = srv->close_data;
        srv->close_cb = NULL;
        free(srv);
        if (cb) cb(data);
    }
}

void mkv_server_close(struct mkv_server *s, void (*cb)(void *data), void *data)
{
    struct mkv_conn *c, *next;
    s->closing = 1;
    s->close_cb = cb;
    s->close_data = data;
    s->pending_closes = 1; /* the listener */
    for (c = s->conns; c; c = c->next) s->pending_closes++;
    for (c = s->conns; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

static void deliver(struct mkv_conn *c, struct frame_priv *fp)
{
    if (c->srv) {
        c->srv->ops.on_frame(c, &fp->f, c->srv->ctx);
        return;
    }
    if (c->peer) {
        struct mkv_peer *p = c->peer;
        struct mkv_call *call, **pp;
        uint64_t id = fp->f.hdr.req_id;
        pp = &p->buckets[id % CALL_BUCKETS];
        while ((call = *pp) && call->req_id != id) pp = &call->next;
        if (call && (fp->f.hdr.flags & MKV_FRAME_REPLY)) {
            *pp = call->next;
            p->outstanding--;
            call->peer = NULL;
            call->cb(call, fp->f.hdr.status, &fp->f);
        }
        /* Replies to calls that timed out are dropped. */
    }
    mkv_frame_unref(&fp->f);
}

/* ---- peers (client side) ---- */

static void peer_maybe_free(struct mkv_peer *p)
{
    if (p->state == PEER_CLOSED && p->handles_open == 0 && !p->gai_active &&
        p->connect_req.data == NULL)
        free(p);
}

static void on_peer_timer_closed(uv_handle_t *h)
{
    struct mkv_peer *p = h->data;
    p->handles_open--;
    peer_maybe_free(p);
}

int mkv_peer_new(uv_loop_t *loop, const char *hostport, struct mkv_peer **out)
{
    struct mkv_peer *p;
    if (strlen(hostport) >= sizeof p->address) return -EINVAL;
    p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    if (mkv_parse_hostport(hostport, p->host, sizeof p->host, &p->port)) {
        free(p);
        return -EINVAL;
    }
    snprintf(p->address, sizeof p->address, "%s", hostport);
    p->loop = loop;
    p->next_req_id = 1;
    if (uv_timer_init(loop, &p->timer)) {
        free(p);
        return -ENOMEM;
    }
    p->timer.data = p;
    p->handles_open = 1;
    *out = p;
    return 0;
}

const char *mkv_peer_address(const struct mkv_peer *p)
{
    return p->address;
}

uint64_t mkv_peer_connects(const struct mkv_peer *p)
{
    return p->connects;
}

size_t mkv_peer_queued_bytes(const struct mkv_peer *p)
{
    return p->queued_bytes;
}

static void call_finish(struct mkv_call *call, int status)
{
    call->peer = NULL;
    if (call->frame) {
        free(call->frame);
        call->frame = NULL;
    }
    call->cb(call, status, NULL);
}

static void peer_fail_all(struct mkv_peer *p, int status)
{
    struct mkv_call *list = NULL, *call, *next;
    /* Detach everything first: callbacks may issue new calls. */
    for (int i = 0; i < CALL_BUCKETS; i++) {
        for (call = p->buckets[i]; call; call = next) {
            next = call->next;
            call->next = list;
            list = call;
        }
        p->buckets[i] = NULL;
    }
    for (call = p->queue_head; call; call = next) {
        next = call->next;
        p->queued_bytes -= MKV_MIN(p->queued_bytes, call->frame ? call->frame->total : 0);
        call->next = list;
        list = call;
    }
    p->queue_head = p->queue_tail = NULL;
    p->outstanding = 0;
    for (call = list; call; call = next) {
        next = call->next;
        call_finish(call, status);
    }
}

static void on_peer_timer(uv_timer_t *t)
{
    struct mkv_peer *p = t->data;
    uint64_t now = mkv_mono_ns();
    struct mkv_call *expired = NULL, *call, *next, **pp;
    for (int i = 0; i < CALL_BUCKETS; i++) {
        pp = &p->buckets[i];
        while ((call = *pp)) {
            if (call->deadline_ns <= now) {
                *pp = call->next;
                p->outstanding--;
                call->next = expired;
                expired = call;
            } else {
                pp = &call->next;
            }
        }
    }
    pp = &p->queue_head;
    p->queue_tail = NULL;
    while ((call = *pp)) {
        if (call->deadline_ns <= now) {
            *pp = call->next;
            p->queued_bytes -= MKV_MIN(p->queued_bytes, call->frame ? call->frame->total : 0);
            call->next = expired;
            expired = call;
        } else {
            p->queue_tail = call;
            pp = &call->next;
        }
    }
    for (call = expired; call; call = next) {
        next = call->next;
        MKV_DEBUG("net", "call timed out peer=%s type=%s", p->address, mkv_msg_name(call->type));
        call_finish(call, -ETIMEDOUT);
    }
    if (p->outstanding == 0 && !p->queue_head && p->timer_active) {
        uv_timer_stop(&p->timer);
        p->timer_active = 0;
    }
}

static void on_peer_connected(uv_connect_t *req, int status)
{
    struct mkv_peer *p = req->data;
    struct mkv_conn *c = MKV_CONTAINER_OF(req->handle, struct mkv_conn, tcp);
    req->data = NULL;
    if (p->state == PEER_CLOSED) {
        conn_close(c);
        peer_maybe_free(p);
        return;
    }
    if (status < 0) {
        p->conn = NULL;
        p->state = PEER_IDLE;
        c->peer = NULL;
        conn_close(c);
        MKV_DEBUG("net", "connect failed peer=%s err=%s", p->address, uv_strerror(status));
        peer_fail_all(p, status == UV_ECONNREFUSED ? -ECONNREFUSED : status);
        return;
    }
    c->open = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    set_peer_name(c);
    conn_read_start(c);
    if (p->hello) {
        p->state = PEER_HELLO;
        p->hello->start(p, p->hello_data);
        return;
    }
    p->state = PEER_CONNECTED;
    peer_flush_queue(p);
}

void mkv_peer_set_hello(struct mkv_peer *p, const struct mkv_peer_hello *h, void *data)
{
    p->hello = h;
    p->hello_data = data;
}

void mkv_peer_hello_done(struct mkv_peer *p, int status)
{
    if (p->state != PEER_HELLO) return;
    if (status == 0) {
        p->state = PEER_CONNECTED;
        peer_flush_queue(p);
        return;
    }
    /* Refused: what waits fails with the reason, and the connection goes
     * (the next call starts over). */
    if (status == MKV_ENOTLEADER || status == MKV_EUNAVAILABLE) /* the caller goes elsewhere */
        MKV_DEBUG("net", "hello deferred peer=%s err=\"%s\"", p->address, mkv_strerror(status));
    else MKV_WARN("net", "hello refused peer=%s err=\"%s\"", p->address, mkv_strerror(status));
    if (p->conn) {
        struct mkv_conn *c = p->conn;
        p->conn = NULL;
        c->peer = NULL;
        conn_close(c);
    }
    p->state = PEER_IDLE;
    peer_fail_all(p, status);
}

static void peer_connect_addr(struct mkv_peer *p, const struct sockaddr *sa)
{
    struct mkv_conn *c = conn_new(p->loop);
    int rv;
    if (!c) {
        p->state = PEER_IDLE;
        peer_fail_all(p, -ENOMEM);
        return;
    }
    c->peer = p;
    p->conn = c;
    p->connects++;
    p->connect_req.data = p;
    rv = uv_tcp_connect(&p->connect_req, &c->tcp, sa, on_peer_connected);
    if (rv) {
        p->connect_req.data = NULL;
        p->conn = NULL;
        c->peer = NULL;
        p->state = PEER_IDLE;
        conn_close_handles(c);
        peer_fail_all(p, rv);
    }
}

static void on_peer_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct mkv_peer *p = req->data;
    p->gai_active = 0;
    if (p->state == PEER_CLOSED) {
        if (res) uv_freeaddrinfo(res);
        peer_maybe_free(p);
        return;
    }
    if (status < 0 || !res) {
        p->state = PEER_IDLE;
        MKV_WARN("net", "cannot resolve peer=%s err=%s", p->address, uv_strerror(status));
        peer_fail_all(p, -EHOSTUNREACH);
        if (res) uv_freeaddrinfo(res);
        return;
    }
    peer_connect_addr(p, res->ai_addr);
    uv_freeaddrinfo(res);
}

static void peer_connect(struct mkv_peer *p)
{
    struct sockaddr_storage ss;
    char port[16];
    struct addrinfo hints;
    if (p->state != PEER_IDLE) return;
    p->state = PEER_CONNECTING;
    if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&ss) == 0) {
        peer_connect_addr(p, (struct sockaddr *)&ss);
        return;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", p->port);
    p->gai_req.data = p;
    p->gai_active = 1;
    if (uv_getaddrinfo(p->loop, &p->gai_req, on_peer_resolved, p->host, port, &hints)) {
        p->gai_active = 0;
        p->state = PEER_IDLE;
        peer_fail_all(p, -EHOSTUNREACH);
    }
}

/* Sends queued calls once connected. */
static void peer_flush_queue(struct mkv_peer *p)
{
    struct mkv_call *call;
    while (p->state == PEER_CONNECTED && (call = p->queue_head)) {
        struct mkv_outframe *of = call->frame;
        p->queue_head = call->next;
        if (!p->queue_head) p->queue_tail = NULL;
        call->frame = NULL;
        call->next = p->buckets[call->req_id % CALL_BUCKETS];
        p->buckets[call->req_id % CALL_BUCKETS] = call;
        p->outstanding++;
        /* queued_bytes now tracks the socket write queue (on_written). */
        if (conn_write(p->conn, of)) return; /* the connection closed: calls failed */
    }
}

static int peer_submit(struct mkv_peer *p, struct mkv_call *call, uint16_t type,
                       struct mkv_outframe *of, size_t payload_len, uint8_t flags,
                       uint64_t timeout_ms, mkv_call_cb cb)
{
    int hello = call->hello;
    if (p->state == PEER_CLOSED || (hello && (p->state != PEER_HELLO || !p->conn))) {
        free(of);
        return p->state == PEER_CLOSED ? -ECANCELED : -ENOTCONN;
    }
    call->peer = p;
    call->cb = cb;
    call->type = type;
    call->req_id = p->next_req_id++;
    call->deadline_ns = mkv_mono_ns() + (timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS) * 1000000ull;
    call->next = NULL;
    call->frame = NULL;
    frame_seal(of, type, flags, 0, call->req_id, payload_len);
    if (!p->timer_active) {
        uv_timer_start(&p->timer, on_peer_timer, 100, 100);
        p->timer_active = 1;
    }
    if (hello) {
        /* A call of the hello itself: out now, ahead of the queue. */
        call->next = p->buckets[call->req_id % CALL_BUCKETS];
        p->buckets[call->req_id % CALL_BUCKETS] = call;
        p->outstanding++;
        p->queued_bytes += of->total;
        conn_write(p->conn, of);
        return 0;
    }
    call->frame = of;
    p->queued_bytes += of->total;
    if (p->queue_tail) p->queue_tail->next = call;
    else p->queue_head = call;
    p->queue_tail = call;
    if (p->state == PEER_CONNECTED) peer_flush_queue(p);
    else if (p->state != PEER_HELLO) peer_connect(p);
    return 0;
}

int mkv_peer_call_hello(struct mkv_peer *p, struct mkv_call *call, uint16_t type,
                        const struct mkv_msgdesc *d, const void *msg, uint64_t timeout_ms,
                        mkv_call_cb cb)
{
    int rv;
    if (p->state != PEER_HELLO || !p->conn) return -ENOTCONN;
    call->hello = 1;
    rv = mkv_peer_call(p, call, type, d, msg, timeout_ms, cb);
    call->hello = 0;
    return rv;
}

int mkv_peer_call_raw(struct mkv_peer *p, struct mkv_call *call, uint16_t type, const void *payload,
                      size_t len, uint64_t timeout_ms, mkv_call_cb cb)
{
    struct mkv_outframe *of = mkv_outframe_new(len);
    if (!of) return -ENOMEM;
    if (len) memcpy(mkv_outframe_payload(of), payload, len);
    return peer_submit(p, call, type, of, len, 0, timeout_ms, cb);
}

int mkv_peer_call(struct mkv_peer *p, struct mkv_call *call, uint16_t type,
                  const struct mkv_msgdesc *d, const void *msg, uint64_t timeout_ms, mkv_call_cb cb)
{
    size_t need = d ? mkv_msg_size(d, msg) : 0, len = 0;
    struct mkv_outframe *of = mkv_outframe_new(need);
    int rv;
    if (!of) return -ENOMEM;
    if (d) {
        rv = mkv_msg_encode(d, msg, mkv_outframe_payload(of), need, &len);
        if (rv) {
            free(of);
            return rv;
        }
    }
    return peer_submit(p, call, type, of, len, 0, timeout_ms, cb);
}

int mkv_peer_call_frame(struct mkv_peer *p, struct mkv_call *call, uint16_t type,
                        struct mkv_outframe *of, size_t payload_len, uint8_t flags,
                        uint64_t timeout_ms, mkv_call_cb cb)
{
    if (payload_len > of->cap) {
        free(of);
        return -EINVAL;
    }
    return peer_submit(p, call, type, of, payload_len, flags, timeout_ms, cb);
}

void mkv_peer_close(struct mkv_peer *p)
{
    if (p->state == PEER_CLOSED) return;
    p->state = PEER_CLOSED;
    peer_fail_all(p, -ECANCELED);
    if (p->conn) {
        struct mkv_conn *c = p->conn;
        p->conn = NULL;
        c->peer = NULL;
        if (c->open) conn_close(c);
        /* A connect in progress completes with ECANCELED and frees p. */
    }
    if (p->timer_active) uv_timer_stop(&p->timer);
    p->timer_active = 0;
    uv_close((uv_handle_t *)&p->timer, on_peer_timer_closed);
}
