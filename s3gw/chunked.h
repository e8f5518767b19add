/* minikv gateway: streaming decoder for aws-chunked request bodies.
 *
 * Clients that sign payloads in pieces (x-amz-content-sha256:
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD, its -TRAILER variant) or that send a
 * trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER) frame the body as
 *
 *   <hex-size>[;chunk-signature=<64 hex>]\r\n <data> \r\n   ... repeated
 *   0[;chunk-signature=<64 hex>]\r\n
 *   [<trailer-name>:<value>\r\n ... [x-amz-trailer-signature:<64 hex>\r\n]]
 *   \r\n
 *
 * Chunk signatures chain from the request's (seed) signature: the string
 * to sign of chunk n is
 *   "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n" sig(n-1) "\n"
 *   hex(sha256("")) "\n" hex(sha256(data n))
 * and the trailer's
 *   "AWS4-HMAC-SHA256-TRAILER\n" date "\n" scope "\n" sig(last chunk) "\n"
 *   hex(sha256("name:value\n" for each trailer)).
 *
 * The decoder takes the body in pieces of any size and hands decoded
 * payload bytes to a callback as they arrive; it never holds more than one
 * framing line (bounded). Data of a chunk is passed on before the chunk's
 * signature can be checked (the signature follows the data), so the
 * consumer must treat everything as tentative until mkv_chunked_finish
 * returns MKV_S3_OK, and discard it otherwise.
 *
 * Errors (enum mkv_s3_error, sticky: every later call returns the same):
 * SignatureDoesNotMatch (chunk or trailer signature), IncompleteBody (body
 * ended early, or fewer bytes than x-amz-decoded-content-length),
 * InvalidRequest (malformed framing, over-long line, more bytes than
 * declared, unexpected trailer), BadDigest (trailer checksum mismatch). */
#ifndef MKV_S3GW_CHUNKED_H
#define MKV_S3GW_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "checksum.h"
#include "minikv/common.h"
#include "s3err.h"

struct mkv_http_req;

#define MKV_CHUNKED_MAX_LINE 256  /* longest framing or trailer line */
#define MKV_CHUNKED_MAX_TRAILERS 4

enum mkv_chunked_mode {
    MKV_CHUNKED_SIGNED,          /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
    MKV_CHUNKED_SIGNED_TRAILER,  /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
    MKV_CHUNKED_UNSIGNED_TRAILER /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
};

/* Receives decoded payload bytes; return 0, or non-zero to stop decoding
 * (feed then returns InternalError). */
typedef int (*mkv_chunked_out_cb)(void *arg, const uint8_t *p, size_t n);

struct mkv_chunked_params
{
    enum mkv_chunked_mode mode;
    /* signed modes */
    const uint8_t *signing_key; /* 32 bytes */
    const char *amz_date;       /* 20130524T000000Z */
    const char *scope;          /* 20130524/us-east-1/s3/aws4_request */
    const char *seed_signature; /* 64 hex: the request's signature */
    /* -1 when unknown (no x-amz-decoded-content-length) */
    int64_t decoded_length;
    /* The x-amz-trailer value: comma-separated trailer names the client
     * announced (e.g. "x-amz-checksum-crc32"); NULL or "" for none. */
    const char *trailer;
};

struct mkv_chunked
{
    int state;
    enum mkv_chunked_mode mode;
    enum mkv_s3_error err;
    int last_chunk;                 /* the 0-size chunk was seen */
    uint64_t chunk_left;
    uint64_t decoded;
    int64_t decoded_length;
    size_t line_len;
    char line[MKV_CHUNKED_MAX_LINE + 1];
    /* signatures */
    uint8_t key[32];
    char amz_date[17];
    char scope[MKV_AUTH_MAX_SCOPE + 1];
    char prev_sig[65];
    char chunk_sig[65];
    void *sha;                      /* EVP_MD_CTX over the current chunk */
    /* trailers */
    unsigned ntrailers;             /* announced in x-amz-trailer */
    unsigned received;              /* bit per announced trailer */
    enum mkv_cksum_alg alg[MKV_CHUNKED_MAX_TRAILERS];
    int has_cksum[MKV_CHUNKED_MAX_TRAILERS];
    char trailer_name[MKV_CHUNKED_MAX_TRAILERS][48];
    struct mkv_cksum cksum[MKV_CHUNKED_MAX_TRAILERS];
    char trailer_value[MKV_CHUNKED_MAX_TRAILERS][MKV_CHUNKED_MAX_LINE + 1];
    void *trailer_sha;              /* EVP_MD_CTX over the canonical trailers */
    int trailer_sig_ok;
};

/* From a verified request: the mode from a->payload, the signing material
 * from a, x-amz-decoded-content-length and x-amz-trailer from r. Returns
 * InvalidRequest when a->payload is not a streaming mode or a header is
 * malformed, NotImplemented for an unknown trailer checksum, InternalError
 * when out of memory. On error nothing needs freeing. */
MKV_API enum mkv_s3_error mkv_chunked_init(struct mkv_chunked *d, const struct mkv_http_req *r,
                                           const struct mkv_auth *a);
MKV_API enum mkv_s3_error mkv_chunked_init_params(struct mkv_chunked *d,
                                                  const struct mkv_chunked_params *p);
/* Feeds the next n body bytes; decoded payload goes to out(arg, ...). */
MKV_API enum mkv_s3_error mkv_chunked_feed(struct mkv_chunked *d, const void *p, size_t n,
                                           mkv_chunked_out_cb out, void *arg);
/* The body has ended: checks that the framing is complete, the decoded
 * length and the trailers. */
MKV_API enum mkv_s3_error mkv_chunked_finish(struct mkv_chunked *d);
/* Payload bytes decoded so far. */
MKV_API uint64_t mkv_chunked_decoded(const struct mkv_chunked *d);
/* After finish: the value (base64) of a received trailer checksum, or NULL. */
MKV_API const char *mkv_chunked_trailer_value(const struct mkv_chunked *d,
                                              enum mkv_cksum_alg alg);
MKV_API void mkv_chunked_free(struct mkv_chunked *d);

#endif /* MKV_S3GW_CHUNKED_H */
