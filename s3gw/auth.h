/* minikv gateway: S3 request authentication (AWS SigV4 and SigV2).
 *
 * Verification is split in two so that the secret can be fetched
 * asynchronously between the steps:
 *
 *   struct mkv_auth *a = ...;                 // lives with the request
 *   e = mkv_auth_parse(req, &opts, a);        // syntax, scheme, time window
 *   if (e) -> answer the S3 error e (a->msg has details)
 *   if (a->kind == MKV_AUTH_ANON) -> anonymous request
 *   ... look up the secret of a->access_key (meta lookup, callback later);
 *       unknown key -> MKV_S3_INVALID_ACCESS_KEY
 *   e = mkv_auth_verify(a, req, &opts, secret, secret_len);
 *   if (e) -> answer e (SignatureDoesNotMatch, ...)
 *
 * After a successful verify, a->payload tells how the body must be read:
 *   MKV_PAYLOAD_SHA256: the body's SHA-256 must equal a->payload_sha256
 *     (mkv_body_check_init does this from the header);
 *   MKV_PAYLOAD_STREAMING_*: the body is aws-chunked; feed it through the
 *     decoder of chunked.h, initialised from a (signing key, scope, date and
 *     seed signature are in a->signing_key, a->scope, a->amz_date and
 *     a->signature);
 *   MKV_PAYLOAD_UNSIGNED / NONE: nothing to check.
 *
 * Both calls read the request (method, raw_path, query, headers) and never
 * keep pointers into it. They never allocate except transiently, and are
 * safe on hostile input (fuzz target tests/fuzz/fuzz_sigv4.c).
 * Return values are enum mkv_s3_error: MKV_S3_OK (0) or the error to send. */
#ifndef MKV_S3GW_AUTH_H
#define MKV_S3GW_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "minikv/buf.h"
#include "minikv/common.h"
#include "s3err.h"

struct mkv_http_req;

enum mkv_auth_kind {
    MKV_AUTH_ANON = 0,   /* no credentials at all */
    MKV_AUTH_V4_HEADER,  /* Authorization: AWS4-HMAC-SHA256 ... */
    MKV_AUTH_V4_QUERY,   /* presigned: X-Amz-Algorithm=AWS4-HMAC-SHA256&... */
    MKV_AUTH_V2_HEADER,  /* Authorization: AWS AKID:signature */
    MKV_AUTH_V2_QUERY,   /* AWSAccessKeyId=...&Expires=...&Signature=... */
};

enum mkv_payload_mode {
    MKV_PAYLOAD_NONE = 0,                  /* SigV2 or anonymous */
    MKV_PAYLOAD_SHA256,                    /* x-amz-content-sha256: <hex> */
    MKV_PAYLOAD_UNSIGNED,                  /* UNSIGNED-PAYLOAD (and presigned URLs) */
    MKV_PAYLOAD_STREAMING_SIGNED,          /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
    MKV_PAYLOAD_STREAMING_SIGNED_TRAILER,  /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
    MKV_PAYLOAD_STREAMING_UNSIGNED_TRAILER, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
};

#define MKV_AUTH_MAX_KEY 128           /* access key id */
#define MKV_AUTH_MAX_SIGNED 1024       /* SignedHeaders list */
#define MKV_AUTH_MAX_SCOPE 160         /* date/region/service/aws4_request */
#define MKV_AUTH_MAX_SKEW 900          /* seconds (15 minutes) */
#define MKV_AUTH_MAX_EXPIRES 604800    /* presigned URL lifetime (7 days) */

struct mkv_auth_opts
{
    const char *region;    /* the region requests must be scoped to; NULL: any */
    const char *v2_bucket; /* SigV2 only: bucket named by the Host header
                            * (virtual-hosted style), prefixed to the
                            * CanonicalizedResource; NULL for path style */
    int64_t now;           /* seconds since the epoch; 0: the wall clock */
};

/* Everything parsed from and derived for one request. Plain data; the
 * caller owns it (typically inside its request context). */
struct mkv_auth
{
    enum mkv_auth_kind kind;
    enum mkv_payload_mode payload;
    char access_key[MKV_AUTH_MAX_KEY + 1];
    char signature[65];     /* V4: 64 lowercase hex; V2: base64 (28 chars) */
    /* SigV4 */
    char amz_date[17];      /* ISO 8601 basic: 20130524T000000Z */
    char scope[MKV_AUTH_MAX_SCOPE + 1];
    char region[64];
    char signed_headers[MKV_AUTH_MAX_SIGNED + 1];
    uint8_t payload_sha256[32]; /* MKV_PAYLOAD_SHA256 */
    uint8_t signing_key[32];    /* after a successful verify */
    /* times, seconds since the epoch */
    int64_t request_time;   /* x-amz-date / Date / X-Amz-Date */
    int64_t expires;        /* presigned: the instant the URL expires */
    /* why the request was refused, for the error body */
    char msg[160];
};

MKV_API enum mkv_s3_error mkv_auth_parse(const struct mkv_http_req *r,
                                         const struct mkv_auth_opts *o, struct mkv_auth *a);
/* secret: the access key's secret (secret_len bytes). On success for SigV4
 * also fills a->signing_key for the chunked decoder. */
MKV_API enum mkv_s3_error mkv_auth_verify(struct mkv_auth *a, const struct mkv_http_req *r,
                                          const struct mkv_auth_opts *o, const char *secret,
                                          size_t secret_len);

/* Pieces of the algorithms, for the chunked decoder, tests and debugging.
 * The canonical request and string to sign are appended to out; they
 * return 0, -ENOMEM, or -EINVAL when the request cannot be canonicalised. */
MKV_API int mkv_sigv4_canonical_request(const struct mkv_http_req *r, const struct mkv_auth *a,
                                        struct mkv_buf *out);
MKV_API int mkv_sigv4_string_to_sign(const struct mkv_http_req *r, const struct mkv_auth *a,
                                     struct mkv_buf *out);
MKV_API int mkv_sigv2_string_to_sign(const struct mkv_http_req *r, const struct mkv_auth *a,
                                     const char *v2_bucket, struct mkv_buf *out);
/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date8), region), service),
 * "aws4_request"). Returns 0 or -EINVAL (secret too long). */
MKV_API int mkv_sigv4_signing_key(const char *secret, size_t secret_len, const char *date8,
                                  const char *region, const char *service, uint8_t out[32]);
MKV_API void mkv_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                             uint8_t out[32]);
/* hex(SHA-256(p)), 64 chars and a NUL. */
MKV_API void mkv_sha256_hex(const void *p, size_t n, char out[65]);
/* Constant-time comparison of two strings of length n; 1 when equal. */
MKV_API int mkv_auth_equal(const char *a, const char *b, size_t n);

/* Time helpers. Return 0 and set *t (seconds since the epoch, UTC), or -EINVAL. */
MKV_API int mkv_auth_parse_iso8601(const char *s, int64_t *t);  /* 20130524T000000Z */
MKV_API int mkv_auth_parse_http_date(const char *s, int64_t *t); /* RFC 1123 / 850 / asctime */

#endif /* MKV_S3GW_AUTH_H */
