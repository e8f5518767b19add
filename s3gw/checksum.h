/* minikv gateway: body checksums for S3 (Content-MD5, x-amz-checksum-*,
 * x-amz-content-sha256), computed while the body streams through.
 *
 * Digests: MD5, SHA1 and SHA256 through OpenSSL EVP; CRC32 and CRC32C from
 * lib/minikv/crc32c.h; CRC64NVME here. Values travel in headers as base64 of
 * the big-endian digest bytes (x-amz-content-sha256 alone is lowercase hex).
 *
 * Typical use by an S3 operation (PutObject, UploadPart):
 *
 *   struct mkv_body_check bc;
 *   e = mkv_body_check_init(&bc, req, MKV_CKSUM_BIT(MKV_CKSUM_MD5), streaming);
 *   ... for every decoded body piece: mkv_body_check_update(&bc, p, n);
 *   e = mkv_body_check_finish(&bc);        // BadDigest & co. or MKV_S3_OK
 *   mkv_body_check_digest(&bc, MKV_CKSUM_MD5, md5, &len);   // for the ETag
 *   mkv_body_check_free(&bc);
 *
 * Functions returning enum mkv_s3_error give MKV_S3_OK (0) or the S3 error to
 * answer with; the others return 0 or a negative errno-style code. */
#ifndef MKV_S3GW_CHECKSUM_H
#define MKV_S3GW_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#include "minikv/common.h"
#include "s3err.h"

struct mkv_http_req;

enum mkv_cksum_alg {
    MKV_CKSUM_MD5 = 0,
    MKV_CKSUM_CRC32,
    MKV_CKSUM_CRC32C,
    MKV_CKSUM_CRC64NVME,
    MKV_CKSUM_SHA1,
    MKV_CKSUM_SHA256,
    MKV_CKSUM__COUNT
};

#define MKV_CKSUM_BIT(alg) (1u << (alg))
#define MKV_CKSUM_MAX 32   /* largest digest (SHA256) in bytes */
#define MKV_CKSUM_B64_MAX 45 /* base64 of MKV_CKSUM_MAX bytes, with NUL */

/* A running digest. Init before use, free after (final does not free). */
struct mkv_cksum
{
    enum mkv_cksum_alg alg;
    uint64_t crc;
    void *md; /* EVP_MD_CTX for the hashes */
};

/* "MD5", "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256". */
MKV_API const char *mkv_cksum_name(enum mkv_cksum_alg alg);
/* Digest length in bytes. */
MKV_API size_t mkv_cksum_size(enum mkv_cksum_alg alg);
/* "x-amz-checksum-crc32" and so on; NULL for MD5 (it travels as Content-MD5). */
MKV_API const char *mkv_cksum_header(enum mkv_cksum_alg alg);
/* The algorithm named by an x-amz-checksum-* header name (any case);
 * returns 0 and sets *alg, or -ENOENT. */
MKV_API int mkv_cksum_from_header(const char *name, size_t len, enum mkv_cksum_alg *alg);

/* Returns 0, -EINVAL (unknown alg) or -ENOMEM. */
MKV_API int mkv_cksum_init(struct mkv_cksum *c, enum mkv_cksum_alg alg);
MKV_API void mkv_cksum_update(struct mkv_cksum *c, const void *p, size_t n);
/* Writes the digest (mkv_cksum_size bytes) and returns its length. The
 * digest may be finalised once; free afterwards. */
MKV_API size_t mkv_cksum_final(struct mkv_cksum *c, uint8_t out[MKV_CKSUM_MAX]);
MKV_API void mkv_cksum_free(struct mkv_cksum *c);
/* Digest of one buffer; returns its length or 0 on allocation failure. */
MKV_API size_t mkv_cksum_oneshot(enum mkv_cksum_alg alg, const void *p, size_t n,
                                 uint8_t out[MKV_CKSUM_MAX]);
/* CRC-64/NVME (reflected poly 0x9a6c9329ac4bc9b5, init and xorout all ones);
 * pass 0 to start and a previous result to continue. */
MKV_API uint64_t mkv_crc64nvme(uint64_t crc, const void *p, size_t n);

/* Encodings. mkv_base64_encode writes NUL-terminated standard base64 with
 * padding and returns its length, or 0 if out (outlen bytes) is too small.
 * mkv_base64_decode accepts only canonical padded base64 and returns 0 with
 * *outlen set, or -EINVAL (malformed) / -ENOSPC (outcap too small). */
MKV_API size_t mkv_base64_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
MKV_API int mkv_base64_decode(const char *in, size_t n, uint8_t *out, size_t outcap,
                              size_t *outlen);
/* Lowercase hex; out holds 2n+1 bytes. */
MKV_API void mkv_hex_encode(const uint8_t *in, size_t n, char *out);
/* n must be even; accepts either case. Returns 0 or -EINVAL. */
MKV_API int mkv_hex_decode(const char *in, size_t n, uint8_t *out);

/* Verification of a request body against its headers. */
struct mkv_body_check
{
    unsigned compute;                 /* algorithms being computed */
    unsigned expect;                  /* algorithms with a value to match */
    int expect_content_sha256;        /* x-amz-content-sha256 was a hex hash */
    int finished;
    uint64_t bytes;
    struct mkv_cksum ck[MKV_CKSUM__COUNT];
    uint8_t expected[MKV_CKSUM__COUNT][MKV_CKSUM_MAX];
    uint8_t content_sha256[32];
    uint8_t digest[MKV_CKSUM__COUNT][MKV_CKSUM_MAX];
};

/* Reads Content-MD5, x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256} and
 * (unless streaming is set: the body is aws-chunked and that header names
 * the framing, not a digest) a hex x-amz-content-sha256 from r, and starts
 * computing what they need plus the algorithms in extra (MKV_CKSUM_BIT
 * mask, e.g. MD5 for the ETag). Errors: InvalidDigest (malformed
 * Content-MD5), InvalidRequest (malformed or several x-amz-checksum-*),
 * InvalidArgument (x-amz-content-sha256 neither a hash nor a known
 * marker), InternalError (no memory). On error nothing needs freeing. */
MKV_API enum mkv_s3_error mkv_body_check_init(struct mkv_body_check *b,
                                              const struct mkv_http_req *r, unsigned extra,
                                              int streaming);
MKV_API void mkv_body_check_update(struct mkv_body_check *b, const void *p, size_t n);
/* Finalises the digests and compares: XAmzContentSHA256Mismatch, then
 * BadDigest (Content-MD5), then BadDigest (checksum). */
MKV_API enum mkv_s3_error mkv_body_check_finish(struct mkv_body_check *b);
/* After finish: the digest of a computed algorithm. Returns 0 or -ENOENT. */
MKV_API int mkv_body_check_digest(const struct mkv_body_check *b, enum mkv_cksum_alg alg,
                                  uint8_t out[MKV_CKSUM_MAX], size_t *len);
MKV_API void mkv_body_check_free(struct mkv_body_check *b);

#endif /* MKV_S3GW_CHECKSUM_H */
