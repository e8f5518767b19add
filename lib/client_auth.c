/* minikv client library: authentication of its connections (see
 * minikv/auth.h), as a hello on each new connection of a peer.
 *
 * Metadata peers: AUTH_HELLO, then AUTH with the MAC of the server's nonce.
 * The chunk peer: AUTH_TOKEN with a token from the metadata service
 * (TOKEN_GET, on an authenticated connection), kept until an hour before
 * it expires; the cluster principal mints its own. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "client_priv.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define TOKEN_MARGIN_NS (3600ull * 1000000000ull)

struct mkv_hello
{
    struct mkv_client *c;
    struct mkv_peer *peer;
    struct mkv_call call;
    uint8_t nonce_c[MKV_AUTH_NONCE];
    int chunk;
    int token_busy; /* a TOKEN_GET in flight */
    struct mkv_meta_req token_req;
};

static void hello_fail(struct mkv_hello *h, int status)
{
    mkv_peer_hello_done(h->peer, status);
}

/* ---- metadata peers ---- */

static void on_auth(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_hello *h = call->data;
    (void)reply;
    if (status == MKV_ENOTLEADER || status == MKV_EUNAVAILABLE) /* tried elsewhere */
        MKV_DEBUG("client", "authentication deferred peer=%s err=\"%s\"", mkv_peer_address(h->peer),
                  mkv_strerror(status));
    else if (status)
        MKV_WARN("client", "authentication refused peer=%s key=%s err=\"%s\"",
                 mkv_peer_address(h->peer), h->c->cred.access_key, mkv_strerror(status));
    mkv_peer_hello_done(h->peer, status);
}

static void on_nonce(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_hello *h = call->data;
    struct mkv_auth_hello_rep rep;
    struct mkv_auth_req q = {0};
    uint8_t mac[MKV_AUTH_MAC];
    int rv;
    if (!status && (!reply || mkv_frame_decode(reply, &mkv_desc_auth_hello_rep, &rep) ||
                    rep.nonce.len != MKV_AUTH_NONCE))
        status = -EPROTO;
    if (status) {
        hello_fail(h, status);
        return;
    }
    if (getrandom(h->nonce_c, sizeof h->nonce_c, 0) != sizeof h->nonce_c) {
        hello_fail(h, -EIO);
        return;
    }
    mkv_auth_mac(h->c->cred.secret, h->c->cred.secret_len, rep.nonce.p, h->nonce_c,
                 h->c->cred.access_key, mac);
    q.access_key = mkv_slice_str(h->c->cred.access_key);
    q.nonce = mkv_slice_mem(h->nonce_c, sizeof h->nonce_c);
    q.mac = mkv_slice_mem(mac, sizeof mac);
    h->call.data = h;
    if ((rv = mkv_peer_call_hello(h->peer, &h->call, MKV_MSG_AUTH, &mkv_desc_auth_req, &q,
                                  h->c->timeout_ms, on_auth)))
        hello_fail(h, rv);
}

static void meta_hello(struct mkv_peer *p, void *data)
{
    struct mkv_hello *h = data;
    struct mkv_auth_hello_req q = {1};
    int rv;
    h->call.data = h;
    if ((rv = mkv_peer_call_hello(p, &h->call, MKV_MSG_AUTH_HELLO, &mkv_desc_auth_hello_req, &q,
                                  h->c->timeout_ms, on_nonce)))
        hello_fail(h, rv);
}

/* ---- the chunk peer ---- */

static void on_token_accepted(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct mkv_hello *h = call->data;
    (void)reply;
    if (status == -EACCES) h->c->token_expiry_ns = 0; /* perhaps stale: ask again next time */
    mkv_peer_hello_done(h->peer, status);
}

static void send_token(struct mkv_hello *h)
{
    struct mkv_client *c = h->c;
    struct mkv_auth_token_req q = {0};
    int rv;
    q.access_key = mkv_slice_str(c->cred.access_key);
    q.expiry_ns = c->token_expiry_ns;
    q.token = mkv_slice_mem(c->token, sizeof c->token);
    h->call.data = h;
    /* -ENOTCONN: the connection went while the token came; the next one
     * starts over. */
    if ((rv = mkv_peer_call_hello(h->peer, &h->call, MKV_MSG_AUTH_TOKEN, &mkv_desc_auth_token_req,
                                  &q, c->timeout_ms, on_token_accepted)) &&
        rv != -ENOTCONN)
        hello_fail(h, rv);
}

static void on_token(struct mkv_meta_req *m, int status, struct mkv_frame *reply)
{
    struct mkv_hello *h = m->data;
    struct mkv_client *c = h->c;
    struct mkv_token_get_rep rep;
    h->token_busy = 0;
    if (status == -ENOTSUP) { /* a cluster without keys: its chunk servers ask for nothing */
        mkv_peer_hello_done(h->peer, 0);
        return;
    }
    if (!status && (!reply || mkv_frame_decode(reply, &mkv_desc_token_get_rep, &rep) ||
                    rep.token.len != MKV_AUTH_MAC))
        status = -EPROTO;
    if (status) {
        hello_fail(h, status);
        return;
    }
    memcpy(c->token, rep.token.p, MKV_AUTH_MAC);
    c->token_expiry_ns = rep.expiry_ns;
    send_token(h);
}

static void chunk_hello(struct mkv_peer *p, void *data)
{
    struct mkv_hello *h = data;
    struct mkv_client *c = h->c;
    struct mkv_token_get_req q = {0};
    uint64_t now = mkv_now_ns();
    int rv;
    (void)p;
    if (c->cred.cluster) {
        c->token_expiry_ns = now + MKV_TOKEN_TTL_NS;
        mkv_auth_token(c->cred.secret, MKV_CLUSTER_PRINCIPAL, c->token_expiry_ns, c->token);
    }
    if (c->token_expiry_ns > now + TOKEN_MARGIN_NS) {
        send_token(h);
        return;
    }
    if (h->token_busy) return; /* on_token sends it */
    h->token_busy = 1;
    h->token_req.data = h;
    if ((rv = mkv_meta_call(c, &h->token_req, MKV_MSG_TOKEN_GET, &mkv_desc_token_get_req, &q,
                            on_token))) {
        h->token_busy = 0;
        hello_fail(h, rv);
    }
}

static const struct mkv_peer_hello meta_hello_ops = {meta_hello};
static const struct mkv_peer_hello chunk_hello_ops = {chunk_hello};

int mkv_client_hello(struct mkv_client *c, struct mkv_peer *p, int chunk)
{
    struct mkv_hello *h;
    if (!c->have_cred) return 0;
    if (c->nhellos == c->cap_hellos) {
        unsigned cap = c->cap_hellos ? 2 * c->cap_hellos : 16;
        struct mkv_hello **v = realloc(c->hellos, cap * sizeof *v);
        if (!v) return -ENOMEM;
        c->hellos = v;
        c->cap_hellos = cap;
    }
    if (!(h = calloc(1, sizeof *h))) return -ENOMEM;
    h->c = c;
    h->peer = p;
    h->chunk = chunk;
    c->hellos[c->nhellos++] = h;
    mkv_peer_set_hello(p, chunk ? &chunk_hello_ops : &meta_hello_ops, h);
    return 0;
}

void mkv_client_hellos_free(struct mkv_client *c)
{
    for (unsigned i = 0; i < c->nhellos; i++) free(c->hellos[i]);
    free(c->hellos);
    c->hellos = NULL;
    c->nhellos = c->cap_hellos = 0;
    memset(&c->cred, 0, sizeof c->cred);
}
