/* minikv gateway: TLS for the HTTP server (private to s3gw/http*.c).
 *
 * OpenSSL runs over the libuv stream through a BIO of our own: reads come
 * from the ciphertext buffer the connection just received, writes are
 * appended to a buffer the connection then hands to uv_write. So an idle
 * connection holds no BIO buffers at all, and OpenSSL's own record buffers
 * are released when idle (SSL_MODE_RELEASE_BUFFERS). TLS 1.2 and newer. */
#ifndef MKV_S3GW_TLS_H
#define MKV_S3GW_TLS_H

#include <stddef.h>

#include "minikv/buf.h"

struct tls_ctx;
struct tls_conn;

/* Loads the PEM chain and key. Returns 0 or a negative code with err filled. */
int tls_ctx_new(const char *cert, const char *key, struct tls_ctx **out, char *err,
                size_t errlen);
void tls_ctx_free(struct tls_ctx *t);

int tls_conn_new(struct tls_ctx *t, struct tls_conn **out);
void tls_conn_free(struct tls_conn *tc);

/* The ciphertext OpenSSL reads next: in[0..*len). OpenSSL consumes from the
 * front; *len is decremented as it does. The pointers must stay valid
 * until the next call to tls_set_input. */
void tls_set_input(struct tls_conn *tc, const char **in, size_t *len);
/* Ciphertext to send is appended here during the calls below. */
void tls_set_output(struct tls_conn *tc, struct mkv_buf *out);

/* 1: handshake complete; 0: needs more input; < 0: failed. */
int tls_handshake(struct tls_conn *tc);
int tls_handshake_done(const struct tls_conn *tc);
/* Decrypts into buf: > 0 bytes, 0 needs more input, -ECONNRESET on a
 * close_notify from the peer, other < 0 on errors. */
int tls_read(struct tls_conn *tc, char *buf, size_t cap);
/* Encrypts p[0..n) entirely. 0 or < 0. */
int tls_write(struct tls_conn *tc, const void *p, size_t n);
/* Queues a close_notify. */
void tls_shutdown(struct tls_conn *tc);

#endif /* MKV_S3GW_TLS_H */
