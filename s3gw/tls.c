/* minikv gateway: OpenSSL over the libuv stream (see tls.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "minikv/err.h"
#include "tls.h"

struct tls_ctx
{
    SSL_CTX *ssl;
    BIO_METHOD *meth;
};

struct tls_conn
{
    SSL *ssl;
    const char **in;   /* ciphertext source */
    size_t *in_len;
    struct mkv_buf *out;
    int done;          /* handshake complete */
};

/* The BIO: reads from the connection's input, writes to its output. */

static int bio_write(BIO *b, const char *data, int len)
{
    struct tls_conn *tc = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!tc || !tc->out || len < 0 || mkv_buf_append(tc->out, data, (size_t)len)) return -1;
    return len;
}

static int bio_read(BIO *b, char *data, int len)
{
    struct tls_conn *tc = BIO_get_data(b);
    size_t n;
    BIO_clear_retry_flags(b);
    if (!tc || !tc->in || !*tc->in || *tc->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    n = MKV_MIN((size_t)len, *tc->in_len);
    memcpy(data, *tc->in, n);
    *tc->in += n;
    *tc->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_PUSH:
    case BIO_CTRL_POP: return 1;
    default: return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    BIO_set_data(b, NULL);
    return 1;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    static const unsigned char h11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    (void)ssl, (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, h11, sizeof h11, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_NOACK;
}

static void ssl_err(char *err, size_t errlen, const char *what, const char *path)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    if (err && errlen) snprintf(err, errlen, "%s %s: %s", what, path ? path : "", buf);
}

int tls_ctx_new(const char *cert, const char *key, struct tls_ctx **out, char *err,
                size_t errlen)
{
    struct tls_ctx *t = calloc(1, sizeof *t);
    if (!t) return mkv_errf(err, errlen, -ENOMEM, "tls");
    t->ssl = SSL_CTX_new(TLS_server_method());
    if (!t->ssl) {
        ssl_err(err, errlen, "SSL_CTX_new", NULL);
        goto err_after_alloc;
    }
    SSL_CTX_set_min_proto_version(t->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(t->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                    SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_alpn_select_cb(t->ssl, alpn_select, NULL);
    if (SSL_CTX_use_certificate_chain_file(t->ssl, cert) != 1) {
        ssl_err(err, errlen, "certificate", cert);
        goto err_after_ctx;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ssl, key, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, errlen, "private key", key);
        goto err_after_ctx;
    }
    if (SSL_CTX_check_private_key(t->ssl) != 1) {
        ssl_err(err, errlen, "key does not match certificate", key);
        goto err_after_ctx;
    }
    t->meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "minikv-uv");
    if (!t->meth) {
        ssl_err(err, errlen, "BIO_meth_new", NULL);
        goto err_after_ctx;
    }
    BIO_meth_set_write(t->meth, bio_write);
    BIO_meth_set_read(t->meth, bio_read);
    BIO_meth_set_ctrl(t->meth, bio_ctrl);
    BIO_meth_set_create(t->meth, bio_create);
    BIO_meth_set_destroy(t->meth, bio_destroy);
    *out = t;
    return 0;

err_after_ctx:
    SSL_CTX_free(t->ssl);
err_after_alloc:
    free(t);
    return -EINVAL;
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (!t) return;
    BIO_meth_free(t->meth);
    SSL_CTX_free(t->ssl);
    free(t);
}

int tls_conn_new(struct tls_ctx *t, struct tls_conn **out)
{
    struct tls_conn *tc = calloc(1, sizeof *tc);
    BIO *bio;
    if (!tc) return -ENOMEM;
    tc->ssl = SSL_new(t->ssl);
    if (!tc->ssl) goto err_after_alloc;
    bio = BIO_new(t->meth);
    if (!bio) goto err_after_ssl;
    BIO_set_data(bio, tc);
    SSL_set_bio(tc->ssl, bio, bio); /* the SSL owns it now */
    SSL_set_accept_state(tc->ssl);
    *out = tc;
    return 0;

err_after_ssl:
    SSL_free(tc->ssl);
err_after_alloc:
    free(tc);
    ERR_clear_error();
    return -ENOMEM;
}

void tls_conn_free(struct tls_conn *tc)
{
    if (!tc) return;
    SSL_free(tc->ssl);
    free(tc);
    ERR_clear_error();
}

void tls_set_input(struct tls_conn *tc, const char **in, size_t *len)
{
    tc->in = in;
    tc->in_len = len;
}

void tls_set_output(struct tls_conn *tc, struct mkv_buf *out)
{
    tc->out = out;
}

int tls_handshake_done(const struct tls_conn *tc)
{
    return tc->done;
}

int tls_handshake(struct tls_conn *tc)
{
    int rv = SSL_do_handshake(tc->ssl);
    if (rv == 1) {
        tc->done = 1;
        return 1;
    }
    switch (SSL_get_error(tc->ssl, rv)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return 0;
    default: ERR_clear_error(); return -EPROTO;
    }
}

int tls_read(struct tls_conn *tc, char *buf, size_t cap)
{
    int rv = SSL_read(tc->ssl, buf, (int)MKV_MIN(cap, (size_t)1 << 30));
    if (rv > 0) return rv;
    switch (SSL_get_error(tc->ssl, rv)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return 0;
    case SSL_ERROR_ZERO_RETURN: return -ECONNRESET;
    default: ERR_clear_error(); return -EPROTO;
    }
}

int tls_write(struct tls_conn *tc, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        size_t k = MKV_MIN(n, (size_t)1 << 30);
        int rv = SSL_write(tc->ssl, s, (int)k);
        if (rv <= 0) {
            ERR_clear_error();
            return -EPROTO;
        }
        s += rv;
        n -= (size_t)rv;
    }
    return 0;
}

void tls_shutdown(struct tls_conn *tc)
{
    if (tc->done) (void)SSL_shutdown(tc->ssl);
    ERR_clear_error();
}
