/* minikv gateway: the aws-chunked body decoder (see chunked.h).
 *
 * A byte-at-a-time state machine for the framing, with bulk copies for
 * chunk data. Every line is bounded by MKV_CHUNKED_MAX_LINE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "chunked.h"
#include "http.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

enum chunked_state {
    ST_SIZE,      /* reading "<hex>[;ext]\r\n" */
    ST_DATA,      /* chunk_left bytes of data */
    ST_DATA_CR,   /* "\r\n" after the data */
    ST_DATA_LF,
    ST_FINAL_CR,  /* signed, no trailer: "\r\n" after the 0-size chunk */
    ST_FINAL_LF,
    ST_TRAILER,   /* trailer lines until an empty one */
    ST_DONE,
};

static int signed_mode(const struct mkv_chunked *d)
{
    return d->mode == MKV_CHUNKED_SIGNED || d->mode == MKV_CHUNKED_SIGNED_TRAILER;
}

static enum mkv_s3_error fail(struct mkv_chunked *d, enum mkv_s3_error e)
{
    if (!d->err) d->err = e;
    return d->err;
}

static int is_hex64(const char *s, size_t n)
{
    if (n != 64) return 0;
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

/* Parses "x-amz-checksum-crc32, x-amz-checksum-sha1" into the trailer table. */
static enum mkv_s3_error parse_trailer_list(struct mkv_chunked *d, const char *list)
{
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ',') end++;
        size_t n = (size_t)(end - p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (d->ntrailers == MKV_CHUNKED_MAX_TRAILERS || n >= sizeof d->trailer_name[0])
            return MKV_S3_INVALID_REQUEST;
        unsigned t = d->ntrailers;
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            d->trailer_name[t][i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
        }
        d->trailer_name[t][n] = '\0';
        if (mkv_cksum_from_header(p, n, &d->alg[t]) == 0) {
            if (mkv_cksum_init(&d->cksum[t], d->alg[t])) return MKV_S3_INTERNAL;
            d->has_cksum[t] = 1;
        } else if (n > 15 && strncmp(d->trailer_name[t], "x-amz-checksum-", 15) == 0) {
            return MKV_S3_NOT_IMPLEMENTED;
        }
        d->ntrailers++;
        p = end;
    }
    return MKV_S3_OK;
}

enum mkv_s3_error mkv_chunked_init_params(struct mkv_chunked *d,
                                          const struct mkv_chunked_params *p)
{
    enum mkv_s3_error e;
    memset(d, 0, sizeof *d);
    d->mode = p->mode;
    d->state = ST_SIZE;
    d->decoded_length = p->decoded_length;
    if (p->mode != MKV_CHUNKED_SIGNED && p->mode != MKV_CHUNKED_SIGNED_TRAILER &&
        p->mode != MKV_CHUNKED_UNSIGNED_TRAILER)
        return MKV_S3_INVALID_REQUEST;
    if (signed_mode(d)) {
        if (!p->signing_key || !p->amz_date || strlen(p->amz_date) != 16 || !p->scope ||
            strlen(p->scope) > MKV_AUTH_MAX_SCOPE || !p->seed_signature ||
            !is_hex64(p->seed_signature, strlen(p->seed_signature)))
            return MKV_S3_INVALID_REQUEST;
        memcpy(d->key, p->signing_key, 32);
        memcpy(d->amz_date, p->amz_date, 17);
        strcpy(d->scope, p->scope);
        for (int i = 0; i < 64; i++) {
            char c = p->seed_signature[i];
            d->prev_sig[i] = (char)(c >= 'A' && c <= 'F' ? c | 0x20 : c);
        }
        d->prev_sig[64] = '\0';
        d->sha = EVP_MD_CTX_new();
        d->trailer_sha = EVP_MD_CTX_new();
        if (!d->sha || !d->trailer_sha || EVP_DigestInit_ex(d->trailer_sha, EVP_sha256(), NULL) != 1) {
            mkv_chunked_free(d);
            return MKV_S3_INTERNAL;
        }
    }
    if (d->mode != MKV_CHUNKED_SIGNED && (e = parse_trailer_list(d, p->trailer))) {
        mkv_chunked_free(d);
        return e;
    }
    return MKV_S3_OK;
}

enum mkv_s3_error mkv_chunked_init(struct mkv_chunked *d, const struct mkv_http_req *r,
                                   const struct mkv_auth *a)
{
    struct mkv_chunked_params p = {0};
    const char *v;
    switch (a->payload) {
    case MKV_PAYLOAD_STREAMING_SIGNED: p.mode = MKV_CHUNKED_SIGNED; break;
    case MKV_PAYLOAD_STREAMING_SIGNED_TRAILER: p.mode = MKV_CHUNKED_SIGNED_TRAILER; break;
    case MKV_PAYLOAD_STREAMING_UNSIGNED_TRAILER: p.mode = MKV_CHUNKED_UNSIGNED_TRAILER; break;
    default: memset(d, 0, sizeof *d); return MKV_S3_INVALID_REQUEST;
    }
    p.signing_key = a->signing_key;
    p.amz_date = a->amz_date;
    p.scope = a->scope;
    p.seed_signature = a->signature;
    p.decoded_length = -1;
    if ((v = mkv_http_header(r, "x-amz-decoded-content-length"))) {
        char *end;
        unsigned long long n;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (!*v || *end || errno || *v < '0' || *v > '9' || n > (1ULL << 62)) {
            memset(d, 0, sizeof *d);
            return MKV_S3_INVALID_REQUEST;
        }
        p.decoded_length = (int64_t)n;
    }
    p.trailer = mkv_http_header(r, "x-amz-trailer");
    return mkv_chunked_init_params(d, &p);
}

/* Checks the signature of the chunk whose data hash is in d->sha. */
static enum mkv_s3_error verify_chunk(struct mkv_chunked *d)
{
    uint8_t digest[32], mac[32];
    unsigned len = 0;
    char hash[65], sts[512], hex[65];
    int n;
    if (EVP_DigestFinal_ex(d->sha, digest, &len) != 1) return fail(d, MKV_S3_INTERNAL);
    mkv_hex_encode(digest, 32, hash);
    n = snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256-PAYLOAD\n%s\n%s\n%s\n" EMPTY_SHA256 "\n%s",
                 d->amz_date, d->scope, d->prev_sig, hash);
    if (n < 0 || (size_t)n >= sizeof sts) return fail(d, MKV_S3_INTERNAL);
    mkv_hmac_sha256(d->key, 32, sts, (size_t)n, mac);
    mkv_hex_encode(mac, 32, hex);
    if (!mkv_auth_equal(hex, d->chunk_sig, 64)) return fail(d, MKV_S3_SIGNATURE_MISMATCH);
    memcpy(d->prev_sig, d->chunk_sig, 65);
    return MKV_S3_OK;
}

static enum mkv_s3_error start_chunk(struct mkv_chunked *d)
{
    if (signed_mode(d) && EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL) != 1)
        return fail(d, MKV_S3_INTERNAL);
    return MKV_S3_OK;
}

/* "<hex>[;chunk-signature=<sig>]" (the CRLF already removed). */
static enum mkv_s3_error size_line(struct mkv_chunked *d)
{
    const char *s = d->line, *semi;
    uint64_t size = 0;
    size_t i = 0, ndig;
    semi = memchr(s, ';', d->line_len);
    ndig = semi ? (size_t)(semi - s) : d->line_len;
    if (ndig == 0 || ndig > 16) return fail(d, MKV_S3_INVALID_REQUEST);
    for (i = 0; i < ndig; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0) return fail(d, MKV_S3_INVALID_REQUEST);
        size = size << 4 | (uint64_t)v;
    }
    if (signed_mode(d)) {
        static const char ext[] = ";chunk-signature=";
        size_t rest = d->line_len - ndig;
        if (rest != sizeof ext - 1 + 64 || memcmp(semi, ext, sizeof ext - 1) != 0 ||
            !is_hex64(semi + sizeof ext - 1, 64))
            return fail(d, MKV_S3_INVALID_REQUEST);
        for (int k = 0; k < 64; k++) {
            char c = semi[sizeof ext - 1 + k];
            d->chunk_sig[k] = (char)(c >= 'A' && c <= 'F' ? c | 0x20 : c);
        }
        d->chunk_sig[64] = '\0';
    }
    if (start_chunk(d)) return d->err;
    if (size == 0) {
        d->last_chunk = 1;
        if (signed_mode(d) && verify_chunk(d)) return d->err;
        d->state = d->mode == MKV_CHUNKED_SIGNED ? ST_FINAL_CR : ST_TRAILER;
        return MKV_S3_OK;
    }
    d->chunk_left = size;
    d->state = ST_DATA;
    return MKV_S3_OK;
}

static int find_trailer(const struct mkv_chunked *d, const char *name, size_t n)
{
    for (unsigned t = 0; t < d->ntrailers; t++)
        if (strlen(d->trailer_name[t]) == n && strncasecmp(d->trailer_name[t], name, n) == 0)
            return (int)t;
    return -1;
}

static enum mkv_s3_error trailer_signature(struct mkv_chunked *d, const char *v, size_t n)
{
    uint8_t digest[32], mac[32];
    unsigned len = 0;
    char hash[65], sts[512], hex[65], sig[65];
    int k;
    if (d->mode != MKV_CHUNKED_SIGNED_TRAILER || d->trailer_sig_ok || !is_hex64(v, n))
        return fail(d, MKV_S3_INVALID_REQUEST);
    for (int i = 0; i < 64; i++) sig[i] = (char)(v[i] >= 'A' && v[i] <= 'F' ? v[i] | 0x20 : v[i]);
    sig[64] = '\0';
    if (EVP_DigestFinal_ex(d->trailer_sha, digest, &len) != 1) return fail(d, MKV_S3_INTERNAL);
    mkv_hex_encode(digest, 32, hash);
    k = snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256-TRAILER\n%s\n%s\n%s\n%s", d->amz_date,
                 d->scope, d->prev_sig, hash);
    if (k < 0 || (size_t)k >= sizeof sts) return fail(d, MKV_S3_INTERNAL);
    mkv_hmac_sha256(d->key, 32, sts, (size_t)k, mac);
    mkv_hex_encode(mac, 32, hex);
    if (!mkv_auth_equal(hex, sig, 64)) return fail(d, MKV_S3_SIGNATURE_MISMATCH);
    d->trailer_sig_ok = 1;
    return MKV_S3_OK;
}

/* "name:value" of the trailer section, or "" at its end. */
static enum mkv_s3_error trailer_line(struct mkv_chunked *d)
{
    char *s = d->line, *colon, *v;
    size_t n, vn;
    int t;
    if (d->line_len == 0) {
        if (d->mode == MKV_CHUNKED_SIGNED_TRAILER && !d->trailer_sig_ok)
            return fail(d, MKV_S3_SIGNATURE_MISMATCH);
        d->state = ST_DONE;
        return MKV_S3_OK;
    }
    colon = memchr(s, ':', d->line_len);
    if (!colon || colon == s) return fail(d, MKV_S3_INVALID_REQUEST);
    n = (size_t)(colon - s);
    v = colon + 1;
    vn = d->line_len - n - 1;
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
    if (d->trailer_sig_ok) return fail(d, MKV_S3_INVALID_REQUEST); /* nothing after it */
    if (n == 23 && strncasecmp(s, "x-amz-trailer-signature", 23) == 0)
        return trailer_signature(d, v, vn);
    t = find_trailer(d, s, n);
    if (t < 0 || (d->received & (1u << t))) return fail(d, MKV_S3_INVALID_REQUEST);
    d->received |= 1u << t;
    memcpy(d->trailer_value[t], v, vn);
    d->trailer_value[t][vn] = '\0';
    if (d->trailer_sha) {
        const char *name = d->trailer_name[t];
        if (EVP_DigestUpdate(d->trailer_sha, name, strlen(name)) != 1 ||
            EVP_DigestUpdate(d->trailer_sha, ":", 1) != 1 ||
            EVP_DigestUpdate(d->trailer_sha, v, vn) != 1 ||
            EVP_DigestUpdate(d->trailer_sha, "\n", 1) != 1)
            return fail(d, MKV_S3_INTERNAL);
    }
    if (d->has_cksum[t]) {
        uint8_t want[MKV_CKSUM_MAX], got[MKV_CKSUM_MAX];
        size_t wlen = 0, glen;
        if (mkv_base64_decode(v, vn, want, sizeof want, &wlen) ||
            wlen != mkv_cksum_size(d->alg[t]))
            return fail(d, MKV_S3_INVALID_REQUEST);
        glen = mkv_cksum_final(&d->cksum[t], got);
        mkv_cksum_free(&d->cksum[t]);
        d->has_cksum[t] = 0;
        if (glen != wlen || memcmp(want, got, wlen) != 0) return fail(d, MKV_S3_BAD_CHECKSUM);
    }
    return MKV_S3_OK;
}

/* Accumulates a CRLF-terminated line; returns 1 when complete. */
static int take_line(struct mkv_chunked *d, uint8_t c)
{
    if (c == '\n') {
        if (d->line_len == 0 || d->line[d->line_len - 1] != '\r') {
            fail(d, MKV_S3_INVALID_REQUEST);
            return 0;
        }
        d->line_len--;
        d->line[d->line_len] = '\0';
        return 1;
    }
    if (d->line_len >= MKV_CHUNKED_MAX_LINE || (c == '\0')) {
        fail(d, MKV_S3_INVALID_REQUEST);
        return 0;
    }
    d->line[d->line_len++] = (char)c;
    return 0;
}

static enum mkv_s3_error data(struct mkv_chunked *d, const uint8_t *p, size_t n,
                              mkv_chunked_out_cb out, void *arg)
{
    if (d->decoded_length >= 0 && d->decoded + n > (uint64_t)d->decoded_length)
        return fail(d, MKV_S3_INVALID_REQUEST);
    d->decoded += n;
    if (d->sha && EVP_DigestUpdate(d->sha, p, n) != 1) return fail(d, MKV_S3_INTERNAL);
    for (unsigned t = 0; t < d->ntrailers; t++)
        if (d->has_cksum[t]) mkv_cksum_update(&d->cksum[t], p, n);
    if (out && out(arg, p, n)) return fail(d, MKV_S3_INTERNAL);
    return MKV_S3_OK;
}

enum mkv_s3_error mkv_chunked_feed(struct mkv_chunked *d, const void *buf, size_t n,
                                   mkv_chunked_out_cb out, void *arg)
{
    const uint8_t *p = buf, *end = p + n;
    while (p < end && !d->err) {
        switch (d->state) {
        case ST_DATA: {
            size_t take = (size_t)MKV_MIN((uint64_t)(end - p), d->chunk_left);
            if (data(d, p, take, out, arg)) break;
            p += take;
            d->chunk_left -= take;
            if (d->chunk_left == 0) d->state = ST_DATA_CR;
            break;
        }
        case ST_DATA_CR:
            if (*p++ != '\r') return fail(d, MKV_S3_INVALID_REQUEST);
            d->state = ST_DATA_LF;
            break;
        case ST_DATA_LF:
            if (*p++ != '\n') return fail(d, MKV_S3_INVALID_REQUEST);
            if (signed_mode(d) && verify_chunk(d)) break;
            d->state = ST_SIZE;
            d->line_len = 0;
            break;
        case ST_FINAL_CR:
            if (*p++ != '\r') return fail(d, MKV_S3_INVALID_REQUEST);
            d->state = ST_FINAL_LF;
            break;
        case ST_FINAL_LF:
            if (*p++ != '\n') return fail(d, MKV_S3_INVALID_REQUEST);
            d->state = ST_DONE;
            break;
        case ST_SIZE:
        case ST_TRAILER:
            if (take_line(d, *p++)) {
                if (d->state == ST_SIZE)
                    size_line(d);
                else
                    trailer_line(d);
                d->line_len = 0;
            }
            break;
        case ST_DONE:
        default: return fail(d, MKV_S3_INVALID_REQUEST); /* bytes after the end */
        }
    }
    return d->err;
}

enum mkv_s3_error mkv_chunked_finish(struct mkv_chunked *d)
{
    int complete;
    if (d->err) return d->err;
    switch (d->state) {
    case ST_DONE: complete = 1; break;
    case ST_FINAL_CR: complete = 1; break; /* final CRLF omitted */
    case ST_TRAILER:
        /* the closing empty line omitted, but everything else arrived */
        complete = d->line_len == 0 &&
                   (d->mode != MKV_CHUNKED_SIGNED_TRAILER || d->trailer_sig_ok);
        break;
    default: complete = 0;
    }
    if (!complete) return fail(d, MKV_S3_INCOMPLETE_BODY);
    if (d->decoded_length >= 0 && d->decoded != (uint64_t)d->decoded_length)
        return fail(d, MKV_S3_INCOMPLETE_BODY);
    for (unsigned t = 0; t < d->ntrailers; t++)
        if (!(d->received & (1u << t))) return fail(d, MKV_S3_INCOMPLETE_BODY);
    d->state = ST_DONE;
    return MKV_S3_OK;
}

uint64_t mkv_chunked_decoded(const struct mkv_chunked *d)
{
    return d->decoded;
}

const char *mkv_chunked_trailer_value(const struct mkv_chunked *d, enum mkv_cksum_alg alg)
{
    const char *h = mkv_cksum_header(alg);
    int t;
    if (!h || d->err || d->state != ST_DONE) return NULL;
    t = find_trailer(d, h, strlen(h));
    if (t < 0 || !(d->received & (1u << t))) return NULL;
    return d->trailer_value[t];
}

void mkv_chunked_free(struct mkv_chunked *d)
{
    if (d->sha) EVP_MD_CTX_free(d->sha);
    if (d->trailer_sha) EVP_MD_CTX_free(d->trailer_sha);
    d->sha = d->trailer_sha = NULL;
    for (unsigned t = 0; t < MKV_CHUNKED_MAX_TRAILERS; t++) mkv_cksum_free(&d->cksum[t]);
    OPENSSL_cleanse(d->key, sizeof d->key);
}
