/* minikv gateway: AWS Signature Version 2 (Authorization: AWS AKID:sig and
 * the AWSAccessKeyId/Expires/Signature query form), which libs3's s3 tool
 * and older clients still use.
 *
 * StringToSign = Verb \n Content-MD5 \n Content-Type \n Date-or-Expires \n
 *                CanonicalizedAmzHeaders CanonicalizedResource
 * The resource is taken literally as received (no decoding), prefixed with
 * the bucket for virtual-hosted requests, followed by the sub-resources
 * among the query parameters, sorted, with their values decoded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth_priv.h"
#include "checksum.h"
#include "http.h"

/* Sorted: the canonical resource lists them in this order. */
static const char *const v2_subresources[] = {
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
};

static int b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=';
}

static int set_signature(struct mkv_auth *a, const char *s, size_t n)
{
    if (n == 0 || n >= sizeof a->signature) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!b64_char(s[i])) return -EINVAL;
    memcpy(a->signature, s, n);
    a->signature[n] = '\0';
    return 0;
}

static int set_access_key(struct mkv_auth *a, const char *s, size_t n)
{
    if (n == 0 || n > MKV_AUTH_MAX_KEY) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return -EINVAL;
    memcpy(a->access_key, s, n);
    a->access_key[n] = '\0';
    return 0;
}

enum mkv_s3_error sigv2_parse(const struct mkv_http_req *r, const struct mkv_auth_opts *o,
                              struct mkv_auth *a, int64_t now, int query)
{
    (void)o;
    a->payload = MKV_PAYLOAD_NONE;
    if (!query) {
        const char *h = mkv_http_header(r, "authorization") + 4;
        const char *colon = strrchr(h, ':');
        const char *d;
        a->kind = MKV_AUTH_V2_HEADER;
        if (!colon || set_access_key(a, h, (size_t)(colon - h)) ||
            set_signature(a, colon + 1, strlen(colon + 1))) {
            auth_msg(a, "Authorization header is invalid -- one and only one ' ' (space) "
                        "required; expected AWS AKID:signature");
            return MKV_S3_INVALID_ARGUMENT;
        }
        d = mkv_http_header(r, "x-amz-date");
        if (!d) d = mkv_http_header(r, "date");
        if (!d || mkv_auth_parse_http_date(d, &a->request_time)) {
            auth_msg(a, "AWS authentication requires a valid Date or x-amz-date header");
            return MKV_S3_ACCESS_DENIED;
        }
        if (a->request_time > now + MKV_AUTH_MAX_SKEW ||
            a->request_time < now - MKV_AUTH_MAX_SKEW) {
            auth_msg(a, "The difference between the request time and the current time is "
                        "too large.");
            return MKV_S3_REQUEST_TIME_TOO_SKEWED;
        }
        return MKV_S3_OK;
    }

    struct auth_param p;
    char buf[MKV_AUTH_MAX_KEY + 1];
    char *end;
    long long exp;
    a->kind = MKV_AUTH_V2_QUERY;
    if (!auth_query_find(r->query, "AWSAccessKeyId", &p) ||
        auth_param_value(&p, buf, sizeof buf) || set_access_key(a, buf, strlen(buf)) ||
        !auth_query_find(r->query, "Signature", &p) || auth_param_value(&p, buf, sizeof buf) ||
        set_signature(a, buf, strlen(buf)) || !auth_query_find(r->query, "Expires", &p) ||
        auth_param_value(&p, buf, sizeof buf)) {
        auth_msg(a, "Query-string authentication requires the Signature, Expires and "
                    "AWSAccessKeyId parameters");
        return MKV_S3_ACCESS_DENIED;
    }
    errno = 0;
    exp = strtoll(buf, &end, 10);
    if (!buf[0] || *end || errno || buf[0] == '-' || buf[0] == '+') {
        auth_msg(a, "Invalid date (should be seconds since epoch): %.20s", buf);
        return MKV_S3_ACCESS_DENIED;
    }
    a->expires = exp;
    if (now > a->expires) {
        auth_msg(a, "Request has expired");
        return MKV_S3_ACCESS_DENIED;
    }
    return MKV_S3_OK;
}

/* A header value trimmed of surrounding blanks (inner text untouched). */
static int put_header_value(struct mkv_buf *b, const char *v)
{
    size_t n;
    if (!v) return 0;
    while (*v == ' ' || *v == '\t') v++;
    n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    return mkv_buf_append(b, v, n);
}

struct amz_hdr
{
    const char *name;
    const char *value;
    unsigned order;
};

static int amz_cmp(const void *x, const void *y)
{
    const struct amz_hdr *a = x, *b = y;
    int c = strcasecmp(a->name, b->name);
    if (c) return c;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int put_amz_headers(struct mkv_buf *b, const struct mkv_http_req *r)
{
    struct amz_hdr *hs;
    unsigned n = 0;
    int rv = 0;
    if (!r->nheaders) return 0;
    hs = calloc(r->nheaders, sizeof *hs);
    if (!hs) return -ENOMEM;
    for (unsigned i = 0; i < r->nheaders; i++)
        if (strncasecmp(r->headers[i].name, "x-amz-", 6) == 0) {
            hs[n].name = r->headers[i].name;
            hs[n].value = r->headers[i].value;
            hs[n].order = i;
            n++;
        }
    qsort(hs, n, sizeof *hs, amz_cmp);
    for (unsigned i = 0; i < n && !rv; i++) {
        int same = i && strcasecmp(hs[i].name, hs[i - 1].name) == 0;
        if (same) {
            rv = mkv_buf_append(b, ",", 1);
        } else {
            if (i) rv = mkv_buf_append(b, "\n", 1);
            for (const char *c = hs[i].name; *c && !rv; c++) {
                char lc = (char)(*c >= 'A' && *c <= 'Z' ? *c | 0x20 : *c);
                rv = mkv_buf_append(b, &lc, 1);
            }
            if (!rv) rv = mkv_buf_append(b, ":", 1);
        }
        if (!rv) rv = put_header_value(b, hs[i].value);
    }
    if (n && !rv) rv = mkv_buf_append(b, "\n", 1);
    free(hs);
    return rv ? -ENOMEM : 0;
}

static int put_subresources(struct mkv_buf *b, const char *query)
{
    char sep = '?';
    for (size_t k = 0; k < MKV_ARRAY_SIZE(v2_subresources); k++) {
        const char *cur = query ? query : "";
        struct auth_param p;
        size_t n = strlen(v2_subresources[k]);
        while (auth_query_next(&cur, &p)) {
            if (p.nlen != n || memcmp(p.name, v2_subresources[k], n) != 0) continue;
            if (mkv_buf_append(b, &sep, 1) || mkv_buf_append(b, p.name, p.nlen)) return -ENOMEM;
            sep = '&';
            if (p.has_eq) {
                int len;
                if (mkv_buf_append(b, "=", 1) || mkv_buf_reserve(b, p.vlen + 1)) return -ENOMEM;
                len = mkv_http_unescape(p.value, p.vlen, (char *)b->p + b->len, p.vlen + 1, 0);
                if (len < 0) return -EINVAL;
                b->len += (size_t)len;
                b->p[b->len] = '\0';
            }
        }
    }
    return 0;
}

int mkv_sigv2_string_to_sign(const struct mkv_http_req *r, const struct mkv_auth *a,
                             const char *v2_bucket, struct mkv_buf *out)
{
    int rv;
    if (mkv_buf_puts(out, r->method) || mkv_buf_append(out, "\n", 1) ||
        put_header_value(out, mkv_http_header(r, "content-md5")) ||
        mkv_buf_append(out, "\n", 1) ||
        put_header_value(out, mkv_http_header(r, "content-type")) ||
        mkv_buf_append(out, "\n", 1))
        return -ENOMEM;
    if (a->kind == MKV_AUTH_V2_QUERY) {
        if (mkv_buf_printf(out, "%lld", (long long)a->expires)) return -ENOMEM;
    } else if (!mkv_http_header(r, "x-amz-date")) {
        if (put_header_value(out, mkv_http_header(r, "date"))) return -ENOMEM;
    }
    if (mkv_buf_append(out, "\n", 1)) return -ENOMEM;
    if ((rv = put_amz_headers(out, r))) return rv;
    if (v2_bucket && *v2_bucket &&
        (mkv_buf_append(out, "/", 1) || mkv_buf_puts(out, v2_bucket)))
        return -ENOMEM;
    if (mkv_buf_puts(out, r->raw_path && *r->raw_path ? r->raw_path : "/")) return -ENOMEM;
    return put_subresources(out, r->query);
}

enum mkv_s3_error sigv2_verify(struct mkv_auth *a, const struct mkv_http_req *r,
                               const struct mkv_auth_opts *o, const char *secret,
                               size_t secret_len)
{
    struct mkv_buf sts = MKV_BUF_INIT;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    char b64[64];
    size_t n;
    int rv = mkv_sigv2_string_to_sign(r, a, o ? o->v2_bucket : NULL, &sts);
    if (rv) {
        mkv_buf_free(&sts);
        if (rv == -ENOMEM) return MKV_S3_INTERNAL;
        auth_msg(a, "The request could not be canonicalised");
        return MKV_S3_SIGNATURE_MISMATCH;
    }
    if (secret_len > 4096 ||
        !HMAC(EVP_sha1(), secret, (int)secret_len, sts.p, sts.len, mac, &mlen)) {
        mkv_buf_free(&sts);
        return MKV_S3_INTERNAL;
    }
    mkv_buf_free(&sts);
    n = mkv_base64_encode(mac, mlen, b64, sizeof b64);
    if (n != strlen(a->signature) || !mkv_auth_equal(b64, a->signature, n)) {
        auth_msg(a, "The request signature we calculated does not match the signature you "
                    "provided.");
        return MKV_S3_SIGNATURE_MISMATCH;
    }
    return MKV_S3_OK;
}
