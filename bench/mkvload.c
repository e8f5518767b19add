/* mkvload: an S3 load generator for benchmarks (not a test).
 *
 *   mkvload --endpoint http://127.0.0.1:8080 --op put|get|head|list
 *           [--size 4K] [--concurrency 16] [--threads 2] [--duration 10]
 *           [--keys 1000] [--bucket bench] [--prefix obj] [--fill]
 *           [--unsigned] [--json]
 *
 * Event-driven, like wrk, so that the client takes as little CPU as it can
 * from the server it measures on the same cores: --threads threads (never
 * more than connections), each with its own epoll instance, share the
 * --concurrency nonblocking keep-alive HTTP/1.1 connections. Each connection
 * is a small state machine: connect, send the request head and body, read the
 * response head, read the body by Content-Length, and again.
 *
 * Requests are SigV4-signed (UNSIGNED-PAYLOAD) with AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY, or unsigned for plain HTTP servers such as nginx
 * (the reference). The signing key is derived once a day and kept in a keyed
 * HMAC context, so a request costs one SHA-256 and one HMAC. PUT bodies come
 * from one shared read-only buffer; response bodies are read into a
 * per-thread scratch buffer and dropped. GET/HEAD read keys PREFIX-0 ..
 * PREFIX-(keys-1), which `--op put --fill` creates first (each key put
 * once). Prints operations per second, throughput and latency percentiles. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { OP_PUT, OP_GET, OP_HEAD, OP_LIST };

enum {
    REQ_CAP = 4096,                /* request head, per connection */
    HEAD_CAP = 16384,              /* response head (and small bodies), per connection */
    SCRATCH_CAP = 1024 * 1024,     /* body sink, per thread: large reads cost less per byte */
    READ_BUDGET = 4 * 1024 * 1024, /* per wake-up, so that one fast body does not starve the others */
    RCVBUF = 4 * 1024 * 1024,      /* fixed socket receive buffer, see conn_connect */
    MAX_EVENTS = 256,
    BACKOFF_MS = 10, /* pause before reconnecting after an error */
    STALL_S = 120,   /* a request that makes no progress this long is abandoned */
};

#define NS_PER_S 1000000000ull
#define MKV_MIN(a, b) ((a) < (b) ? (a) : (b))

struct opts
{
    char host[256];
    int port;
    char hostport[300]; /* Host header and signed host */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int op;
    uint64_t size;
    int concurrency;
    int threads;
    double duration;
    uint64_t keys;
    const char *bucket;
    const char *prefix;
    int unsigned_req;
    int fill;
    int json;
    const char *access;
    const char *secret;
    const char *region;
    const char *payload; /* PUT body, read-only, shared by every connection */
};

/* SigV4 state of one thread (OpenSSL contexts are not shared between
 * threads). The signing key depends only on the day, region and service: it
 * is derived when the day changes and kept in the keyed HMAC context. */
struct signer
{
    EVP_MD *sha256;
    EVP_MD_CTX *md;
    EVP_MAC *hmac;
    EVP_MAC_CTX *mac; /* keyed with the day's signing key */
    time_t now;       /* second that amz was formatted for */
    char amz[17];     /* 20260101T000000Z */
    char date8[9];    /* day the key was derived for */
    char scope[128];  /* DATE/REGION/s3/aws4_request */
};

/* A connection's states. conn_next builds a request and goes to CONNECTING
 * when there is no socket, else straight to SEND; SEND -> READ_HEAD ->
 * READ_BODY (skipped when the body is empty or came with the head) -> the
 * next request. An error goes to BACKOFF, which reconnects BACKOFF_MS later
 * with a new request. DONE: fill finished or duration over. */
enum conn_state { CONN_CONNECTING, CONN_SEND, CONN_READ_HEAD, CONN_READ_BODY, CONN_BACKOFF, CONN_DONE };

struct conn
{
    int fd;
    enum conn_state state;
    uint32_t events;   /* epoll interest registered for fd */
    uint64_t nreq;     /* responses completed on this socket */
    int retried;       /* request resent once after a keep-alive close */
    uint64_t t0;       /* ns, request built */
    uint64_t last_io;  /* ns, last progress; for the stall check */
    uint64_t retry_at; /* ns, end of CONN_BACKOFF */
    /* request */
    size_t req_len;
    uint64_t sent; /* bytes of head + body accepted by the socket */
    /* response */
    size_t have; /* bytes in head */
    int status;
    int close_after; /* the server will close after this response */
    uint64_t clen, got;
    size_t snip_len;
    char snippet[160]; /* start of a non-2xx body */
    char req[REQ_CAP];
    char head[HEAD_CAP];
};

/* One thread: its epoll instance, its connections, its counters. */
struct worker
{
    const struct opts *o;
    int id;
    pthread_t thread;
    int ep;
    struct conn *conns;
    int nconn;
    int active;   /* connections not DONE */
    int nbackoff; /* connections in CONN_BACKOFF */
    int stopping; /* duration over: no new requests */
    uint64_t now;      /* ns, after the last epoll_wait */
    uint64_t deadline; /* ns; 0 in fill mode */
    uint64_t next_key, fill_to; /* fill mode: keys next_key..fill_to-1 left */
    uint64_t seed;
    char *scratch;
    struct signer sig;
    uint64_t ops, errors, bytes;
    uint32_t *lat_us; /* one per successful op */
    size_t nlat, caplat;
    char err[256];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    uint64_t m = 1;
    if (end == s || v < 0) return -1;
    switch (*end) {
    case 'k': case 'K': m = 1024; end++; break;
    case 'm': case 'M': m = 1024 * 1024; end++; break;
    case 'g': case 'G': m = 1024ull * 1024 * 1024; end++; break;
    }
    if (*end) return -1;
    *out = (uint64_t)(v * (double)m);
    return 0;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len) ? 0 : -EIO;
}

static int signer_init(struct signer *s)
{
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    s->md = EVP_MD_CTX_new();
    s->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    s->mac = s->hmac ? EVP_MAC_CTX_new(s->hmac) : NULL;
    return s->sha256 && s->md && s->mac ? 0 : -ENOMEM;
}

static void signer_free(struct signer *s)
{
    EVP_MAC_CTX_free(s->mac);
    EVP_MAC_free(s->hmac);
    EVP_MD_CTX_free(s->md);
    EVP_MD_free(s->sha256);
}

/* Derives the signing key for s->date8 and keys s->mac with it. */
static int signer_rekey(struct signer *s, const struct opts *o)
{
    char kstart[300], digest[] = "SHA256";
    unsigned char k[32];
    OSSL_PARAM params[2];
    snprintf(kstart, sizeof kstart, "AWS4%s", o->secret);
    if (hmac256(kstart, strlen(kstart), s->date8, k) || hmac256(k, 32, o->region, k) || hmac256(k, 32, "s3", k) ||
        hmac256(k, 32, "aws4_request", k))
        return -EIO;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(s->mac, k, sizeof k, params)) return -EIO;
    snprintf(s->scope, sizeof s->scope, "%s/%s/s3/aws4_request", s->date8, o->region);
    return 0;
}

/* Writes the x-amz-* and Authorization header lines of a request into
 * headers; returns their length or a negative errno. */
static int sign(struct signer *s, const struct opts *o, const char *method, const char *path, const char *query,
                char *headers, size_t cap)
{
    char creq[2048], sts[512], hash[65], sig[65];
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hlen = 0;
    size_t mlen = 0;
    time_t t = time(NULL);
    int n;
    if (t != s->now) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(s->amz, sizeof s->amz, "%Y%m%dT%H%M%SZ", &tm);
        s->now = t;
        if (memcmp(s->amz, s->date8, 8)) {
            memcpy(s->date8, s->amz, 8);
            s->date8[8] = '\0';
            if ((n = signer_rekey(s, o))) {
                s->date8[0] = '\0';
                return n;
            }
        }
    }
    n = snprintf(creq, sizeof creq,
                 "%s\n%s\n%s\nhost:%s\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:%s\n\n"
                 "host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD",
                 method, path, query, o->hostport, s->amz);
    if (n < 0 || (size_t)n >= sizeof creq) return -ENAMETOOLONG;
    if (!EVP_DigestInit_ex2(s->md, s->sha256, NULL) || !EVP_DigestUpdate(s->md, creq, (size_t)n) ||
        !EVP_DigestFinal_ex(s->md, h, &hlen))
        return -EIO;
    hex(h, 32, hash);
    n = snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", s->amz, s->scope, hash);
    if (n < 0 || (size_t)n >= sizeof sts) return -ENAMETOOLONG;
    /* A NULL key reuses the key's precomputed inner and outer states. */
    if (!EVP_MAC_init(s->mac, NULL, 0, NULL) || !EVP_MAC_update(s->mac, (const unsigned char *)sts, (size_t)n) ||
        !EVP_MAC_final(s->mac, h, &mlen, sizeof h))
        return -EIO;
    hex(h, 32, sig);
    n = snprintf(headers, cap,
                 "x-amz-date: %s\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"
                 "Authorization: AWS4-HMAC-SHA256 Credential=%s/%s, "
                 "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=%s\r\n",
                 s->amz, o->access, s->scope, sig);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : n;
}

static void conn_next(struct worker *w, struct conn *c);
static void conn_send(struct worker *w, struct conn *c);

static void resp_reset(struct conn *c)
{
    c->have = 0;
    c->status = 0;
    c->close_after = 0;
    c->clen = c->got = 0;
    c->snip_len = 0;
    c->snippet[0] = '\0';
}

/* Builds the connection's next request; -ENOENT when fill mode has handed
 * out every key of this thread. */
static int req_build(struct worker *w, struct conn *c)
{
    static const char *const methods[] = {[OP_PUT] = "PUT", [OP_GET] = "GET", [OP_HEAD] = "HEAD", [OP_LIST] = "GET"};
    const struct opts *o = w->o;
    const char *method = methods[o->op];
    char path[512], query[300], auth[1024] = "";
    uint64_t key;
    int n;
    if (o->fill) {
        if (w->next_key >= w->fill_to) return -ENOENT;
        key = w->next_key++;
    } else {
        w->seed = w->seed * 6364136223846793005ull + 1442695040888963407ull;
        key = (w->seed >> 33) % o->keys;
    }
    if (o->op == OP_LIST) {
        snprintf(path, sizeof path, "/%s", o->bucket);
        snprintf(query, sizeof query, "list-type=2&max-keys=100&prefix=%s", o->prefix);
    } else {
        snprintf(path, sizeof path, "%s%s/%s-%" PRIu64, o->bucket[0] ? "/" : "", o->bucket, o->prefix, key);
        query[0] = '\0';
    }
    if (!o->unsigned_req && (n = sign(&w->sig, o, method, path, query, auth, sizeof auth)) < 0) return n;
    n = snprintf(c->req, sizeof c->req, "%s %s%s%s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %" PRIu64 "\r\n\r\n",
                 method, path, query[0] ? "?" : "", query, o->hostport, auth, o->op == OP_PUT ? o->size : 0);
    if (n < 0 || (size_t)n >= sizeof c->req) return -ENAMETOOLONG;
    c->req_len = (size_t)n;
    c->sent = 0;
    c->retried = 0;
    c->t0 = now_ns();
    resp_reset(c);
    return 0;
}

static void lat_add(struct worker *w, uint64_t ns)
{
    if (w->nlat == w->caplat) {
        size_t cap = w->caplat ? w->caplat * 2 : 4096;
        uint32_t *p = realloc(w->lat_us, cap * sizeof *p);
        if (!p) return; /* the op still counts; its latency is not kept */
        w->lat_us = p;
        w->caplat = cap;
    }
    w->lat_us[w->nlat++] = (uint32_t)MKV_MIN(ns / 1000, UINT32_MAX);
}

/* Changes the epoll interest of the connection's socket. */
static int conn_want(struct worker *w, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (c->events == events) return 0;
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev)) return -errno;
    c->events = events;
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->events = 0;
    c->nreq = 0;
}

static void conn_done(struct worker *w, struct conn *c)
{
    conn_close(c);
    c->state = CONN_DONE;
    w->active--;
}

/* Counts an error, drops the request and the socket, and reconnects with a
 * new request after BACKOFF_MS (or retires the connection when stopping). */
__attribute__((format(printf, 3, 4))) static void conn_error(struct worker *w, struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    w->errors++;
    if (w->stopping) {
        conn_done(w, c);
        return;
    }
    conn_close(c);
    c->state = CONN_BACKOFF;
    c->retry_at = w->now + BACKOFF_MS * 1000000ull;
    w->nbackoff++;
}

/* Opens a socket for the request already built in c and starts sending. */
static void conn_connect(struct worker *w, struct conn *c)
{
    const struct opts *o = w->o;
    struct epoll_event ev;
    int one = 1, rcvbuf = RCVBUF, rc;
    c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_error(w, c, "socket: %s", strerror(errno));
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* One thread serves many connections in turn, so with receive-buffer
     * autotuning the connections it happens to drain first grow the largest
     * windows and take the bandwidth: large GETs then finish in a very
     * uneven order (p99 three times the median). A fixed buffer, set before
     * connect for the window scale, keeps them even. The kernel caps it at
     * net.core.rmem_max. */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    rc = connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen);
    if (rc && errno != EINPROGRESS) {
        conn_error(w, c, "connect: %s", strerror(errno));
        return;
    }
    c->state = rc ? CONN_CONNECTING : CONN_SEND;
    c->events = rc ? EPOLLOUT : EPOLLIN | EPOLLOUT;
    c->last_io = w->now;
    ev.events = c->events;
    ev.data.ptr = c;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev)) {
        conn_error(w, c, "epoll_ctl: %s", strerror(errno));
        return;
    }
    if (!rc) conn_send(w, c);
}

/* The socket failed or was closed while a request was in flight (err 0:
 * closed). A keep-alive connection that the server closed before answering
 * anything of the new request is not an error: reconnect and send the same
 * request again, once. Anything else is. */
static void conn_lost(struct worker *w, struct conn *c, const char *what, int err)
{
    if (c->nreq > 0 && c->have == 0 && !c->retried) {
        conn_close(c);
        c->retried = 1;
        c->sent = 0;
        resp_reset(c);
        conn_connect(w, c);
        return;
    }
    if (err)
        conn_error(w, c, "%s: %s", what, strerror(err));
    else
        conn_error(w, c, "%s: connection closed by the server after %" PRIu64 " responses", what, c->nreq);
}

/* Sends what is left of the request head and body. */
static void conn_send(struct worker *w, struct conn *c)
{
    const struct opts *o = w->o;
    uint64_t body = o->op == OP_PUT ? o->size : 0;
    struct iovec iov[2];
    struct msghdr msg = {.msg_iov = iov};
    ssize_t n;
    int rc;
    if (c->sent < c->req_len) {
        iov[0].iov_base = c->req + c->sent;
        iov[0].iov_len = c->req_len - c->sent;
        iov[1].iov_base = (void *)o->payload;
        iov[1].iov_len = body;
        msg.msg_iovlen = body ? 2 : 1;
    } else {
        uint64_t off = c->sent - c->req_len;
        iov[0].iov_base = (void *)(o->payload + off);
        iov[0].iov_len = body - off;
        msg.msg_iovlen = 1;
    }
    do
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN) {
        conn_lost(w, c, "send", errno);
        return;
    }
    if (n > 0) {
        c->sent += (uint64_t)n;
        c->last_io = w->now;
    }
    if (c->sent == c->req_len + body) {
        c->state = CONN_READ_HEAD;
        rc = conn_want(w, c, EPOLLIN);
    } else {
        /* The socket buffer is full; also watch for an early answer (an
         * error before the body is read) or a close. */
        rc = conn_want(w, c, EPOLLIN | EPOLLOUT);
    }
    if (rc) conn_error(w, c, "epoll_ctl: %s", strerror(-rc));
}

/* Appends the start of a non-2xx body to the error snippet. */
static void snip(struct conn *c, const char *p, size_t n)
{
    size_t room = sizeof c->snippet - 1 - c->snip_len;
    if (c->status / 100 == 2 || !room) return;
    n = MKV_MIN(n, room);
    memcpy(c->snippet + c->snip_len, p, n);
    c->snip_len += n;
    c->snippet[c->snip_len] = '\0';
}

/* Skips spaces and tells whether a header value starts with word. */
static int value_is(const char *v, const char *word)
{
    while (*v == ' ' || *v == '\t') v++;
    return !strncasecmp(v, word, strlen(word));
}

/* Parses the response head, which ends at end; sets status, clen and
 * close_after. Returns 0, or a negative errno after conn_error. */
static int resp_parse(struct worker *w, struct conn *c, const char *end)
{
    const char *p = c->head;
    long long clen = -1;
    int minor, chunked = 0, conn_close_hdr = 0, keep_alive_hdr = 0;
    /* "HTTP/1.x NNN " */
    if (strncmp(p, "HTTP/1.", 7) || p[7] < '0' || p[7] > '9' || p[8] != ' ' || p[9] < '1' || p[9] > '9' ||
        p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9') {
        conn_error(w, c, "bad response: %.60s", c->head);
        return -EPROTO;
    }
    minor = p[7] - '0';
    c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    for (const char *l = strstr(c->head, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (!strncasecmp(h, "Content-Length:", 15)) clen = strtoll(h + 15, NULL, 10);
        else if (!strncasecmp(h, "Transfer-Encoding:", 18)) chunked = value_is(h + 18, "chunked");
        else if (!strncasecmp(h, "Connection:", 11)) {
            conn_close_hdr = value_is(h + 11, "close");
            keep_alive_hdr = value_is(h + 11, "keep-alive");
        }
    }
    c->close_after = conn_close_hdr || (minor == 0 && !keep_alive_hdr);
    if (w->o->op == OP_HEAD || c->status / 100 == 1 || c->status == 204 || c->status == 304) clen = 0;
    else if (chunked) {
        conn_error(w, c, "HTTP %d: chunked response not supported", c->status);
        return -EPROTO;
    } else if (clen < 0) {
        conn_error(w, c, "HTTP %d: response without Content-Length", c->status);
        return -EPROTO;
    }
    c->clen = (uint64_t)clen;
    return 0;
}

/* A response is complete: count it and go on with the next request. */
static void conn_complete(struct worker *w, struct conn *c)
{
    const struct opts *o = w->o;
    if (c->status / 100 == 2) {
        w->ops++;
        w->bytes += o->op == OP_PUT ? o->size : c->got;
        lat_add(w, now_ns() - c->t0);
    } else {
        snprintf(w->err, sizeof w->err, "HTTP %d %s", c->status, c->snippet);
        w->errors++;
    }
    c->nreq++;
    if (c->close_after) conn_close(c);
    conn_next(w, c);
}

/* Reads what has arrived of the response. */
static void conn_recv(struct worker *w, struct conn *c)
{
    for (size_t budget = READ_BUDGET;;) {
        int in_head = c->state != CONN_READ_BODY;
        char *buf = in_head ? c->head + c->have : w->scratch;
        size_t cap = in_head ? sizeof c->head - 1 - c->have : (size_t)MKV_MIN(SCRATCH_CAP, c->clen - c->got);
        ssize_t n;
        if (!cap) {
            conn_error(w, c, "response head over %d bytes", HEAD_CAP - 1);
            return;
        }
        do
            n = recv(c->fd, buf, cap, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            conn_lost(w, c, "recv", n ? errno : 0);
            return;
        }
        c->last_io = w->now;
        if (in_head) {
            size_t from = c->have > 3 ? c->have - 3 : 0, hlen;
            const char *end;
            c->have += (size_t)n;
            c->head[c->have] = '\0';
            end = memmem(c->head + from, c->have - from, "\r\n\r\n", 4);
            if (!end) {
                if ((size_t)n < cap) return; /* drained: wait for more */
                continue;
            }
            if (resp_parse(w, c, end)) return;
            hlen = (size_t)(end + 4 - c->head);
            snip(c, end + 4, c->have - hlen);
            if (c->state == CONN_SEND) {
                conn_error(w, c, "HTTP %d before the request body was sent %s", c->status, c->snippet);
                return;
            }
            if (c->have - hlen > c->clen) {
                conn_error(w, c, "HTTP %d: %zu bytes past Content-Length", c->status,
                           (size_t)(c->have - hlen - c->clen));
                return;
            }
            c->got = c->have - hlen;
            if (c->got == c->clen) {
                conn_complete(w, c);
                return;
            }
            c->state = CONN_READ_BODY;
        } else {
            snip(c, buf, (size_t)n);
            c->got += (uint64_t)n;
            if (c->got == c->clen) {
                conn_complete(w, c);
                return;
            }
        }
        /* A short read drained the socket; epoll is level-triggered, so
         * when the budget is spent it reports the rest. */
        if ((size_t)n < cap || budget <= (size_t)n) return;
        budget -= (size_t)n;
    }
}

/* Starts the connection's next request, or retires the connection. */
static void conn_next(struct worker *w, struct conn *c)
{
    int rc;
    if (w->stopping) {
        conn_done(w, c);
        return;
    }
    if ((rc = req_build(w, c))) {
        if (rc != -ENOENT) {
            snprintf(w->err, sizeof w->err, "building the request: %s", strerror(-rc));
            w->errors++;
        }
        conn_done(w, c);
        return;
    }
    if (c->fd < 0) {
        conn_connect(w, c);
    } else {
        c->state = CONN_SEND;
        conn_send(w, c);
    }
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events)
{
    switch (c->state) {
    case CONN_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len)) err = errno;
        if (err) {
            conn_error(w, c, "connect: %s", strerror(err));
            return;
        }
        c->state = CONN_SEND;
        conn_send(w, c);
        return;
    }
    case CONN_SEND:
        if (events & EPOLLOUT) conn_send(w, c);
        if (c->state == CONN_SEND && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) conn_recv(w, c);
        return;
    case CONN_READ_HEAD:
    case CONN_READ_BODY:
        conn_recv(w, c);
        return;
    case CONN_BACKOFF:
    case CONN_DONE:
        return; /* no socket */
    }
}

/* The duration is over: retire the connections that have nothing in flight;
 * the others finish their request first. */
static void worker_stop(struct worker *w)
{
    w->stopping = 1;
    for (int i = 0; i < w->nconn; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == CONN_BACKOFF) w->nbackoff--;
        if (c->state == CONN_BACKOFF || c->state == CONN_CONNECTING || (c->state == CONN_SEND && !c->sent))
            conn_done(w, c);
    }
}

/* Reconnects after backoffs and abandons stalled requests. */
static void worker_timers(struct worker *w)
{
    for (int i = 0; i < w->nconn; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == CONN_BACKOFF && w->now >= c->retry_at) {
            w->nbackoff--;
            conn_next(w, c);
        } else if (c->state != CONN_BACKOFF && c->state != CONN_DONE && w->now - c->last_io > STALL_S * NS_PER_S) {
            conn_error(w, c, "no progress for %d s", STALL_S);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t last_scan;
    w->now = last_scan = now_ns();
    w->active = w->nconn;
    for (int i = 0; i < w->nconn; i++) conn_next(w, &w->conns[i]);
    while (w->active > 0) {
        int timeout = 1000, n;
        if (w->deadline && !w->stopping)
            timeout = (int)MKV_MIN((uint64_t)timeout, (w->deadline - MKV_MIN(w->now, w->deadline) + 999999) / 1000000);
        if (w->nbackoff) timeout = MKV_MIN(timeout, BACKOFF_MS);
        n = epoll_wait(w->ep, evs, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            snprintf(w->err, sizeof w->err, "epoll_wait: %s", strerror(errno));
            w->errors++;
            break;
        }
        w->now = now_ns();
        for (int i = 0; i < n; i++) conn_event(w, evs[i].data.ptr, evs[i].events);
        if (w->deadline && !w->stopping && w->now >= w->deadline) worker_stop(w);
        if (w->nbackoff || w->now - last_scan >= NS_PER_S) {
            worker_timers(w);
            last_scan = w->now;
        }
    }
    for (int i = 0; i < w->nconn; i++) conn_close(&w->conns[i]);
    return NULL;
}

/* Sets up thread i of n with its share of the connections (and of the keys
 * in fill mode). Returns 0 or a negative errno; worker_free undoes it. */
static int worker_init(struct worker *w, const struct opts *o, int i, int n)
{
    w->o = o;
    w->id = i;
    w->ep = -1;
    w->seed = (uint64_t)i * 7919 + 1;
    w->nconn = (int)((int64_t)o->concurrency * (i + 1) / n - (int64_t)o->concurrency * i / n);
    if (o->fill) {
        w->next_key = o->keys * (uint64_t)i / (uint64_t)n;
        w->fill_to = o->keys * (uint64_t)(i + 1) / (uint64_t)n;
    }
    if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) return -errno;
    if (!(w->conns = calloc((size_t)w->nconn, sizeof *w->conns)) || !(w->scratch = malloc(SCRATCH_CAP)))
        return -ENOMEM;
    for (int k = 0; k < w->nconn; k++) w->conns[k].fd = -1;
    return o->unsigned_req ? 0 : signer_init(&w->sig);
}

static void worker_free(struct worker *w)
{
    if (w->ep >= 0) close(w->ep);
    free(w->conns);
    free(w->scratch);
    free(w->lat_us);
    signer_free(&w->sig);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: mkvload --endpoint http://HOST:PORT --op put|get|head|list [options]\n"
               "  --size SIZE          object size for put (default 4K; K, M, G suffixes)\n"
               "  --concurrency N      keep-alive connections (default 16)\n"
               "  --threads N          event-loop threads sharing them (default 2)\n"
               "  --duration SECONDS   how long to run (default 10)\n"
               "  --keys N             key space PREFIX-0..N-1 (default 1000)\n"
               "  --bucket NAME        bucket (default bench; \"\" for plain paths)\n"
               "  --prefix TEXT        key prefix (default obj)\n"
               "  --fill               put every key once, then stop (prepares get/head)\n"
               "  --unsigned           do not sign (for a plain HTTP reference server)\n"
               "  --json               print one JSON object\n"
               "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.\n");
}

/* Resolves o->host and o->port into o->addr. */
static int resolve(struct opts *o)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char port[16];
    int rc;
    snprintf(port, sizeof port, "%d", o->port);
    if ((rc = getaddrinfo(o->host, port, &hints, &ai))) {
        fprintf(stderr, "mkvload: %s: %s\n", o->host, gai_strerror(rc));
        return -1;
    }
    memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
    o->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    snprintf(o->hostport, sizeof o->hostport, "%s:%d", o->host, o->port);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct worker *ws = NULL;
    char *payload = NULL;
    const char *endpoint = NULL;
    double elapsed;
    uint64_t t0, ops = 0, errors = 0, bytes = 0;
    size_t nlat = 0, k = 0;
    uint32_t *all;
    const char *opname = "get";
    int nw = 0, rc = 1;
    o.size = 4096;
    o.concurrency = 16;
    o.threads = 2;
    o.duration = 10;
    o.keys = 1000;
    o.bucket = "bench";
    o.prefix = "obj";
    o.region = "us-east-1";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--unsigned")) o.unsigned_req = 1;
        else if (!strcmp(a, "--fill")) o.fill = 1;
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!v) {
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--endpoint")) endpoint = v, i++;
        else if (!strcmp(a, "--op")) opname = v, i++;
        else if (!strcmp(a, "--size")) {
            if (parse_size(v, &o.size)) return fprintf(stderr, "mkvload: bad --size\n"), 2;
            i++;
        } else if (!strcmp(a, "--concurrency")) o.concurrency = atoi(v), i++;
        else if (!strcmp(a, "--threads")) o.threads = atoi(v), i++;
        else if (!strcmp(a, "--duration")) o.duration = atof(v), i++;
        else if (!strcmp(a, "--keys")) o.keys = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--bucket")) o.bucket = v, i++;
        else if (!strcmp(a, "--prefix")) o.prefix = v, i++;
        else {
            fprintf(stderr, "mkvload: unknown option %s\n", a);
            return 2;
        }
    }
    if (!endpoint || sscanf(endpoint, "http://%255[^:]:%d", o.host, &o.port) != 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(opname, "put")) o.op = OP_PUT;
    else if (!strcmp(opname, "get")) o.op = OP_GET;
    else if (!strcmp(opname, "head")) o.op = OP_HEAD;
    else if (!strcmp(opname, "list")) o.op = OP_LIST;
    else return fprintf(stderr, "mkvload: --op must be put, get, head or list\n"), 2;
    o.access = getenv("AWS_ACCESS_KEY_ID");
    o.secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (!o.unsigned_req && (!o.access || !o.secret))
        return fprintf(stderr, "mkvload: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n"), 2;
    if (o.concurrency < 1 || o.keys < 1) return fprintf(stderr, "mkvload: bad concurrency or keys\n"), 2;
    if (o.threads < 1) return fprintf(stderr, "mkvload: bad threads\n"), 2;
    if (o.fill && o.op != OP_PUT) return fprintf(stderr, "mkvload: --fill needs --op put\n"), 2;
    if (o.threads > o.concurrency) o.threads = o.concurrency;
    if (resolve(&o)) return 2;
    signal(SIGPIPE, SIG_IGN);
    if (o.op == OP_PUT && o.size) {
        if (!(payload = malloc(o.size))) {
            fprintf(stderr, "mkvload: no memory for a %" PRIu64 "-byte body\n", o.size);
            goto err;
        }
        for (uint64_t b = 0; b < o.size; b++) payload[b] = (char)(b * 31);
        o.payload = payload;
    }
    if (!(ws = calloc((size_t)o.threads, sizeof *ws))) goto err;
    for (; nw < o.threads; nw++) {
        int e = worker_init(&ws[nw], &o, nw, o.threads);
        if (e) {
            nw++; /* partly set up: worker_free it */
            fprintf(stderr, "mkvload: setting up thread %d: %s\n", nw - 1, strerror(-e));
            goto err_after_workers;
        }
    }
    t0 = now_ns();
    for (int i = 0; i < nw; i++) {
        int e;
        ws[i].deadline = o.fill ? 0 : t0 + (uint64_t)(o.duration * 1e9);
        if ((e = pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]))) {
            fprintf(stderr, "mkvload: pthread_create: %s\n", strerror(e));
            exit(1); /* the threads already started would run to the deadline */
        }
    }
    for (int i = 0; i < nw; i++) pthread_join(ws[i].thread, NULL);
    elapsed = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < nw; i++) {
        ops += ws[i].ops;
        errors += ws[i].errors;
        bytes += ws[i].bytes;
        nlat += ws[i].nlat;
    }
    all = malloc((nlat ? nlat : 1) * sizeof *all);
    for (int i = 0; i < nw; i++) {
        if (all && ws[i].nlat) memcpy(all + k, ws[i].lat_us, ws[i].nlat * sizeof *all);
        k += ws[i].nlat;
        if (ws[i].errors && ws[i].err[0])
            fprintf(stderr, "mkvload: thread %d: %" PRIu64 " errors, last: %s\n", i, ws[i].errors, ws[i].err);
    }
    if (!all) nlat = 0;
    if (nlat) qsort(all, nlat, sizeof *all, cmp_u32);
#define PCT(p) (nlat ? all[(size_t)((double)(nlat - 1) * (p))] / 1000.0 : 0.0)
    if (o.json)
        printf("{\"op\":\"%s\",\"size\":%" PRIu64 ",\"concurrency\":%d,\"seconds\":%.2f,\"ops\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"ops_per_s\":%.1f,\"mib_per_s\":%.2f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
               "\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
               opname, o.size, o.concurrency, elapsed, ops, errors, (double)ops / elapsed,
               (double)bytes / elapsed / 1048576.0, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0));
    else
        printf("%s size=%" PRIu64 " c=%d: %" PRIu64 " ops in %.2fs = %.1f ops/s, %.2f MiB/s, "
               "p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms, errors %" PRIu64 "\n",
               opname, o.size, o.concurrency, ops, elapsed, (double)ops / elapsed,
               (double)bytes / elapsed / 1048576.0, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0), errors);
    free(all);
    rc = errors && !ops ? 1 : 0;
err_after_workers:
    for (int i = 0; i < nw; i++) worker_free(&ws[i]);
    free(ws);
err:
    free(payload);
    return rc;
}
