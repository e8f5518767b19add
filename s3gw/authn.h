/* minikv gateway: authentication of S3 requests — the glue between the
 * request lifecycle, the key store (keys.c) and the signature code
 * (auth.c: SigV4/SigV2, chunked.c: aws-chunked bodies).
 *
 * authn_start parses the credentials, fetches the secret (from the worker's
 * cache or the meta service), verifies the signature and calls cb. Bodies
 * then go through authn_body, which removes aws-chunked framing and checks
 * chunk signatures and trailers, handing the payload to a sink. */
#ifndef MKV_S3GW_AUTHN_H
#define MKV_S3GW_AUTHN_H

#include <stddef.h>
#include <stdint.h>

#include "checksum.h"
#include "s3err.h"

struct s3req;

typedef void (*authn_cb)(struct s3req *r, enum mkv_s3_error e, const char *message);
/* Receives decoded payload; returns 0, a positive S3 error or a negative
 * code, which stops the body. */
typedef int (*authn_sink)(void *arg, const uint8_t *p, size_t n);

void authn_start(struct s3req *r, authn_cb cb);
/* 1 when the body is aws-chunked (x-amz-decoded-content-length applies). */
int authn_streaming(const struct s3req *r);
/* Feeds raw body bytes; returns 0 or what stopped it (see authn_sink). */
int authn_body(struct s3req *r, const uint8_t *data, size_t len, authn_sink sink, void *arg);
/* At the end of the body: checks the final chunk and trailer. */
int authn_body_end(struct s3req *r);
/* 1 and the digest when the body's trailer carried a checksum of alg. */
int authn_trailer_checksum(struct s3req *r, enum mkv_cksum_alg alg, uint8_t out[MKV_CKSUM_MAX],
                           size_t *len);
/* Details of the last refusal, for the error body ("" if none). */
const char *authn_message(struct s3req *r);
void authn_free(struct s3req *r);

#endif /* MKV_S3GW_AUTHN_H */
