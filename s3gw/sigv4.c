/* minikv gateway: AWS Signature Version 4 (Authorization header and
 * presigned URLs), the entry points of auth.h, and helpers SigV2 shares.
 *
 * Canonicalisation follows what S3 does: the URI path is taken as
 * received, each segment decoded and re-encoded per RFC 3986 (S3 does not
 * encode twice); query parameters are decoded ('+' is a space) and
 * re-encoded, then sorted by name and value; signed headers are lowercased
 * names with trimmed values whose inner runs of blanks collapse to one
 * space, values of repeated headers joined with ','. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth_priv.h"
#include "checksum.h"
#include "http.h"

#define V4_ALGORITHM "AWS4-HMAC-SHA256"
#define V4_MAX_QUERY_PARAMS 512

/* Shared helpers */

void auth_msg(struct mkv_auth *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->msg, sizeof a->msg, fmt, ap);
    va_end(ap);
}

void mkv_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                     uint8_t out[32])
{
    unsigned len = 32;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len)) memset(out, 0, 32);
}

void mkv_sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t d[32];
    unsigned len = 0;
    if (EVP_Digest(p, n, d, &len, EVP_sha256(), NULL) != 1) memset(d, 0, sizeof d);
    mkv_hex_encode(d, 32, out);
}

int mkv_auth_equal(const char *a, const char *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int mkv_sigv4_signing_key(const char *secret, size_t secret_len, const char *date8,
                          const char *region, const char *service, uint8_t out[32])
{
    char k0[4 + 256];
    uint8_t k[32];
    if (secret_len > 256) return -EINVAL;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, secret_len);
    mkv_hmac_sha256(k0, 4 + secret_len, date8, strlen(date8), k);
    mkv_hmac_sha256(k, 32, region, strlen(region), k);
    mkv_hmac_sha256(k, 32, service, strlen(service), k);
    mkv_hmac_sha256(k, 32, "aws4_request", 12, out);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(k, sizeof k);
    return 0;
}

/* Times */

static int days_in_month(int64_t y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : dm[m - 1];
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int make_time(int64_t y, int mo, int d, int h, int mi, int s, int64_t *t)
{
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
        h > 23 || mi > 59 || s > 60)
        return -EINVAL;
    *t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

static int digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -EINVAL;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

int mkv_auth_parse_iso8601(const char *s, int64_t *t)
{
    int y, mo, d, h, mi, se;
    if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z') return -EINVAL;
    if (digits(s, 4, &y) || digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) ||
        digits(s + 9, 2, &h) || digits(s + 11, 2, &mi) || digits(s + 13, 2, &se))
        return -EINVAL;
    return make_time(y, mo, d, h, mi, se, t);
}

static int month_index(const char *s)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (strncasecmp(s, names + 3 * i, 3) == 0) return i + 1;
    return 0;
}

/* hh:mm:ss */
static int parse_clock(const char **pp, int *h, int *mi, int *s)
{
    const char *p = *pp;
    if (digits(p, 2, h) || p[2] != ':' || digits(p + 3, 2, mi) || p[5] != ':' ||
        digits(p + 6, 2, s))
        return -EINVAL;
    *pp = p + 8;
    return 0;
}

int mkv_auth_parse_http_date(const char *s, int64_t *t)
{
    const char *p = s;
    int y = 0, mo, d = 0, h, mi, se, off = 0;
    int64_t base;
    while (*p >= 'A' && ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')) p++; /* weekday */
    if (p == s) return -EINVAL;
    if (*p == ',') {
        p++;
        while (*p == ' ') p++;
        if (!(*p >= '0' && *p <= '9')) return -EINVAL;
        d = (int)strtol(p, (char **)&p, 10);
        if (*p == ' ') { /* RFC 1123: 06 Nov 1994 */
            p++;
            if (!(mo = month_index(p)) || p[3] != ' ') return -EINVAL;
            p += 4;
            if (digits(p, 4, &y)) return -EINVAL;
            p += 4;
        } else if (*p == '-') { /* RFC 850: 06-Nov-94 */
            p++;
            if (!(mo = month_index(p)) || p[3] != '-') return -EINVAL;
            p += 4;
            if (digits(p, 2, &y)) return -EINVAL;
            y += y < 70 ? 2000 : 1900;
            p += 2;
        } else {
            return -EINVAL;
        }
        if (*p++ != ' ' || parse_clock(&p, &h, &mi, &se)) return -EINVAL;
        while (*p == ' ') p++;
        if (strcmp(p, "GMT") == 0 || strcmp(p, "UTC") == 0 || strcmp(p, "UT") == 0 ||
            strcmp(p, "Z") == 0) {
            off = 0;
        } else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 5) {
            int hh, mm;
            if (digits(p + 1, 2, &hh) || digits(p + 3, 2, &mm) || mm > 59) return -EINVAL;
            off = (hh * 60 + mm) * 60 * (p[0] == '-' ? -1 : 1);
        } else {
            return -EINVAL;
        }
    } else if (*p == ' ') { /* asctime: Sun Nov  6 08:49:37 1994 */
        p++;
        if (!(mo = month_index(p)) || p[3] != ' ') return -EINVAL;
        p += 4;
        if (*p == ' ') p++;
        if (!(*p >= '0' && *p <= '9')) return -EINVAL;
        d = (int)strtol(p, (char **)&p, 10);
        if (*p++ != ' ' || parse_clock(&p, &h, &mi, &se) || *p++ != ' ' || digits(p, 4, &y) ||
            p[4] != '\0')
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (d < 1 || d > 31 || make_time(y, mo, d, h, mi, se, &base)) return -EINVAL;
    *t = base - off;
    return 0;
}

static void format_iso8601(int64_t t, char out[17])
{
    struct tm tm;
    time_t tt = (time_t)t;
    char tmp[64];
    gmtime_r(&tt, &tm);
    snprintf(tmp, sizeof tmp, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, 16); /* years past 9999 are refused by the parsers */
    out[16] = '\0';
}

/* Query strings */

int auth_query_next(const char **cur, struct auth_param *p)
{
    const char *s = *cur;
    while (*s == '&') s++;
    if (!*s) {
        *cur = s;
        return 0;
    }
    const char *end = strchr(s, '&');
    if (!end) end = s + strlen(s);
    const char *eq = memchr(s, '=', (size_t)(end - s));
    p->name = s;
    if (eq) {
        p->nlen = (size_t)(eq - s);
        p->value = eq + 1;
        p->vlen = (size_t)(end - eq - 1);
        p->has_eq = 1;
    } else {
        p->nlen = (size_t)(end - s);
        p->value = end;
        p->vlen = 0;
        p->has_eq = 0;
    }
    *cur = end;
    return 1;
}

int auth_query_find(const char *query, const char *name, struct auth_param *p)
{
    size_t n = strlen(name);
    const char *cur = query ? query : "";
    while (auth_query_next(&cur, p))
        if (p->nlen == n && memcmp(p->name, name, n) == 0) return 1;
    return 0;
}

int auth_param_value(const struct auth_param *p, char *out, size_t cap)
{
    int n = mkv_http_unescape(p->value, p->vlen, out, cap, 0);
    if (n < 0) return n;
    if ((size_t)n >= cap) return -ENOSPC;
    if (memchr(out, '\0', (size_t)n)) return -EINVAL;
    return 0;
}

/* Canonical pieces */

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int put_encoded(struct mkv_buf *b, const uint8_t *p, size_t n)
{
    static const char hexd[] = "0123456789ABCDEF";
    if (mkv_buf_reserve(b, n * 3)) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (is_unreserved(p[i])) {
            b->p[b->len++] = p[i];
        } else {
            b->p[b->len++] = '%';
            b->p[b->len++] = (uint8_t)hexd[p[i] >> 4];
            b->p[b->len++] = (uint8_t)hexd[p[i] & 15];
        }
    }
    b->p[b->len] = '\0';
    return 0;
}

/* Decodes s[0..n) and appends it re-encoded. */
static int put_reencoded(struct mkv_buf *b, const char *s, size_t n, int flags)
{
    char stackbuf[512];
    char *tmp = n < sizeof stackbuf ? stackbuf : malloc(n + 1);
    int len, rv;
    if (!tmp) return -ENOMEM;
    len = mkv_http_unescape(s, n, tmp, n + 1, flags);
    rv = len < 0 ? -EINVAL : put_encoded(b, (const uint8_t *)tmp, (size_t)len);
    if (tmp != stackbuf) free(tmp);
    return rv;
}

static int put_canonical_uri(struct mkv_buf *b, const char *raw_path)
{
    const char *p = raw_path && *raw_path ? raw_path : "/";
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n && put_reencoded(b, p, n, 0)) return -EINVAL;
        if (!slash) break;
        if (mkv_buf_append(b, "/", 1)) return -ENOMEM;
        p = slash + 1;
    }
    return 0;
}

struct qparam
{
    const char *base;               /* the scratch buffer, once complete */
    size_t name, nlen, value, vlen; /* offsets into it */
};

static int qparam_cmp(const void *x, const void *y)
{
    const struct qparam *a = x, *b = y;
    size_t n = MKV_MIN(a->nlen, b->nlen);
    int c = memcmp(a->base + a->name, b->base + b->name, n);
    if (c) return c;
    if (a->nlen != b->nlen) return a->nlen < b->nlen ? -1 : 1;
    n = MKV_MIN(a->vlen, b->vlen);
    c = memcmp(a->base + a->value, b->base + b->value, n);
    if (c) return c;
    return a->vlen < b->vlen ? -1 : a->vlen > b->vlen;
}

/* skip: a parameter name left out (X-Amz-Signature of presigned URLs). */
static int put_canonical_query(struct mkv_buf *b, const char *query, const char *skip)
{
    struct mkv_buf scratch = MKV_BUF_INIT;
    struct qparam *ps = NULL;
    size_t np = 0, cap = 0;
    struct auth_param p;
    const char *cur = query ? query : "";
    int rv = 0;

    while (auth_query_next(&cur, &p)) {
        if (skip && p.nlen == strlen(skip) && memcmp(p.name, skip, p.nlen) == 0) continue;
        if (np == V4_MAX_QUERY_PARAMS) {
            rv = -EINVAL;
            goto out;
        }
        if (np == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct qparam *n = realloc(ps, ncap * sizeof *ps);
            if (!n) {
                rv = -ENOMEM;
                goto out;
            }
            ps = n;
            cap = ncap;
        }
        ps[np].name = scratch.len;
        if ((rv = put_reencoded(&scratch, p.name, p.nlen, MKV_HTTP_PLUS_SPACE))) goto out;
        ps[np].nlen = scratch.len - ps[np].name;
        ps[np].value = scratch.len;
        if ((rv = put_reencoded(&scratch, p.value, p.vlen, MKV_HTTP_PLUS_SPACE))) goto out;
        ps[np].vlen = scratch.len - ps[np].value;
        np++;
    }
    for (size_t i = 0; i < np; i++) ps[i].base = (const char *)scratch.p;
    if (np) qsort(ps, np, sizeof *ps, qparam_cmp);
    for (size_t i = 0; i < np; i++) {
        if ((i && mkv_buf_append(b, "&", 1)) ||
            mkv_buf_append(b, scratch.p + ps[i].name, ps[i].nlen) || mkv_buf_append(b, "=", 1) ||
            mkv_buf_append(b, scratch.p + ps[i].value, ps[i].vlen)) {
            rv = -ENOMEM;
            goto out;
        }
    }
out:
    free(ps);
    mkv_buf_free(&scratch);
    return rv;
}

int auth_put_trimmed(struct mkv_buf *out, const char *v)
{
    int blank = 0, started = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
            blank = started;
            continue;
        }
        if (blank && mkv_buf_append(out, " ", 1)) return -ENOMEM;
        if (mkv_buf_append(out, v, 1)) return -ENOMEM;
        blank = 0;
        started = 1;
    }
    return 0;
}

/* "name:v1,v2\n" for every name of the SignedHeaders list. */
static int put_canonical_headers(struct mkv_buf *b, const struct mkv_http_req *r,
                                 const char *signed_headers)
{
    const char *s = signed_headers;
    while (*s) {
        const char *semi = strchr(s, ';');
        size_t n = semi ? (size_t)(semi - s) : strlen(s);
        int first = 1;
        if (mkv_buf_append(b, s, n) || mkv_buf_append(b, ":", 1)) return -ENOMEM;
        for (unsigned i = 0; i < r->nheaders; i++) {
            const char *name = r->headers[i].name;
            if (strlen(name) != n || strncasecmp(name, s, n) != 0) continue;
            if (!first && mkv_buf_append(b, ",", 1)) return -ENOMEM;
            if (auth_put_trimmed(b, r->headers[i].value)) return -ENOMEM;
            first = 0;
        }
        if (mkv_buf_append(b, "\n", 1)) return -ENOMEM;
        if (!semi) break;
        s = semi + 1;
    }
    return 0;
}

static const char *payload_line(const struct mkv_http_req *r, const struct mkv_auth *a,
                                char *tmp, size_t cap)
{
    if (a->kind == MKV_AUTH_V4_QUERY) {
        struct auth_param p;
        if (auth_query_find(r->query, "X-Amz-Content-Sha256", &p) &&
            auth_param_value(&p, tmp, cap) == 0)
            return tmp;
        return "UNSIGNED-PAYLOAD";
    }
    const char *v = mkv_http_header(r, "x-amz-content-sha256");
    return v ? v : "UNSIGNED-PAYLOAD";
}

int mkv_sigv4_canonical_request(const struct mkv_http_req *r, const struct mkv_auth *a,
                                struct mkv_buf *out)
{
    char tmp[128];
    int rv;
    if (mkv_buf_puts(out, r->method) || mkv_buf_append(out, "\n", 1)) return -ENOMEM;
    if ((rv = put_canonical_uri(out, r->raw_path))) return rv;
    if (mkv_buf_append(out, "\n", 1)) return -ENOMEM;
    rv = put_canonical_query(out, r->query,
                             a->kind == MKV_AUTH_V4_QUERY ? "X-Amz-Signature" : NULL);
    if (rv) return rv;
    if (mkv_buf_append(out, "\n", 1)) return -ENOMEM;
    if ((rv = put_canonical_headers(out, r, a->signed_headers))) return rv;
    if (mkv_buf_append(out, "\n", 1) || mkv_buf_puts(out, a->signed_headers) ||
        mkv_buf_append(out, "\n", 1) || mkv_buf_puts(out, payload_line(r, a, tmp, sizeof tmp)))
        return -ENOMEM;
    return 0;
}

int mkv_sigv4_string_to_sign(const struct mkv_http_req *r, const struct mkv_auth *a,
                             struct mkv_buf *out)
{
    struct mkv_buf creq = MKV_BUF_INIT;
    char hash[65];
    int rv = mkv_sigv4_canonical_request(r, a, &creq);
    if (rv) {
        mkv_buf_free(&creq);
        return rv;
    }
    mkv_sha256_hex(creq.p, creq.len, hash);
    mkv_buf_free(&creq);
    if (mkv_buf_printf(out, V4_ALGORITHM "\n%s\n%s\n%s", a->amz_date, a->scope, hash))
        return -ENOMEM;
    return 0;
}

/* Parsing */

static int copy_str(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) return -ENOSPC;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int valid_key_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '/';
}

/* Credential: AKID/yyyymmdd/region/service/aws4_request */
static int parse_credential(struct mkv_auth *a, const char *s, size_t n, char date8[9])
{
    const char *part[5];
    size_t plen[5];
    int k = 0;
    const char *p = s, *end = s + n;
    while (k < 5) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        part[k] = p;
        plen[k] = slash ? (size_t)(slash - p) : (size_t)(end - p);
        k++;
        if (!slash) break;
        p = slash + 1;
    }
    if (k != 5 || part[4] + plen[4] != end) {
        auth_msg(a, "Credential must have the form AKID/date/region/service/aws4_request");
        return -EINVAL;
    }
    if (plen[0] == 0 || copy_str(a->access_key, sizeof a->access_key, part[0], plen[0])) {
        auth_msg(a, "Invalid access key id in Credential");
        return -EINVAL;
    }
    for (size_t i = 0; i < plen[0]; i++)
        if (!valid_key_char((unsigned char)part[0][i])) {
            auth_msg(a, "Invalid access key id in Credential");
            return -EINVAL;
        }
    int dummy;
    if (plen[1] != 8 || digits(part[1], 8, &dummy)) {
        auth_msg(a, "Invalid date in Credential");
        return -EINVAL;
    }
    memcpy(date8, part[1], 8);
    date8[8] = '\0';
    if (plen[2] == 0 || copy_str(a->region, sizeof a->region, part[2], plen[2])) {
        auth_msg(a, "Invalid region in Credential");
        return -EINVAL;
    }
    for (size_t i = 0; i < plen[2]; i++)
        if (!valid_key_char((unsigned char)part[2][i])) {
            auth_msg(a, "Invalid region in Credential");
            return -EINVAL;
        }
    if (plen[3] != 2 || memcmp(part[3], "s3", 2) != 0) {
        auth_msg(a, "Credential should be scoped to the service s3");
        return -EINVAL;
    }
    if (plen[4] != 12 || memcmp(part[4], "aws4_request", 12) != 0) {
        auth_msg(a, "Credential should be scoped with a valid terminator: 'aws4_request'");
        return -EINVAL;
    }
    snprintf(a->scope, sizeof a->scope, "%s/%s/s3/aws4_request", date8, a->region);
    return 0;
}

static int valid_signed_headers(const char *s)
{
    size_t n = 0;
    if (!*s) return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == ';') {
            if (n == 0) return 0;
            n = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return 0;
        n++;
    }
    return n > 0;
}

static int list_has(const char *list, const char *name, size_t n)
{
    const char *s = list;
    while (*s) {
        const char *semi = strchr(s, ';');
        size_t len = semi ? (size_t)(semi - s) : strlen(s);
        if (len == n && strncasecmp(s, name, n) == 0) return 1;
        if (!semi) break;
        s = semi + 1;
    }
    return 0;
}

static int parse_signature_hex(struct mkv_auth *a, const char *s, size_t n)
{
    if (n != 64) return -EINVAL;
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F') c = (char)(c | 0x20);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -EINVAL;
        a->signature[i] = c;
    }
    a->signature[64] = '\0';
    return 0;
}

static enum mkv_s3_error payload_mode(struct mkv_auth *a, const char *v)
{
    if (strlen(v) == 64 && mkv_hex_decode(v, 64, a->payload_sha256) == 0) {
        a->payload = MKV_PAYLOAD_SHA256;
    } else if (strcmp(v, "UNSIGNED-PAYLOAD") == 0) {
        a->payload = MKV_PAYLOAD_UNSIGNED;
    } else if (strcmp(v, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") == 0) {
        a->payload = MKV_PAYLOAD_STREAMING_SIGNED;
    } else if (strcmp(v, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER") == 0) {
        a->payload = MKV_PAYLOAD_STREAMING_SIGNED_TRAILER;
    } else if (strcmp(v, "STREAMING-UNSIGNED-PAYLOAD-TRAILER") == 0) {
        a->payload = MKV_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
    } else if (strncmp(v, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", 40) == 0) {
        auth_msg(a, "SigV4a streaming payloads are not supported");
        return MKV_S3_NOT_IMPLEMENTED;
    } else {
        auth_msg(a, "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD or a valid sha256 value");
        return MKV_S3_INVALID_ARGUMENT;
    }
    return MKV_S3_OK;
}

static enum mkv_s3_error check_region(struct mkv_auth *a, const struct mkv_auth_opts *o,
                                      enum mkv_s3_error malformed)
{
    if (o && o->region && strcmp(o->region, a->region) != 0) {
        auth_msg(a, "the region '%s' is wrong; expecting '%s'", a->region, o->region);
        return malformed;
    }
    return MKV_S3_OK;
}

static enum mkv_s3_error parse_v4_header(const struct mkv_http_req *r,
                                         const struct mkv_auth_opts *o, struct mkv_auth *a,
                                         const char *hv, int64_t now)
{
    const enum mkv_s3_error bad = MKV_S3_AUTH_HEADER_MALFORMED;
    const char *p = hv + strlen(V4_ALGORITHM);
    int have_cred = 0, have_sh = 0, have_sig = 0;
    char date8[9] = "";
    const char *v;
    enum mkv_s3_error e;

    a->kind = MKV_AUTH_V4_HEADER;
    if (*p != ' ') {
        auth_msg(a, "Unsupported Authorization Type");
        return bad;
    }
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq) {
            auth_msg(a, "Authorization component without '='");
            return bad;
        }
        size_t klen = (size_t)(eq - p);
        const char *val = eq + 1;
        size_t vlen = (size_t)(end - val);
        while (vlen && val[vlen - 1] == ' ') vlen--;
        if (klen == 10 && memcmp(p, "Credential", 10) == 0 && !have_cred) {
            if (parse_credential(a, val, vlen, date8)) return bad;
            have_cred = 1;
        } else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0 && !have_sh) {
            if (copy_str(a->signed_headers, sizeof a->signed_headers, val, vlen) ||
                !valid_signed_headers(a->signed_headers)) {
                auth_msg(a, "Invalid SignedHeaders");
                return bad;
            }
            have_sh = 1;
        } else if (klen == 9 && memcmp(p, "Signature", 9) == 0 && !have_sig) {
            if (parse_signature_hex(a, val, vlen)) {
                auth_msg(a, "Signature must be 64 hexadecimal characters");
                return bad;
            }
            have_sig = 1;
        } else {
            auth_msg(a, "Unexpected or repeated Authorization component '%.*s'",
                     (int)MKV_MIN(klen, 40), p);
            return bad;
        }
        p = end;
    }
    if (!have_cred || !have_sh || !have_sig) {
        auth_msg(a, "Authorization needs Credential, SignedHeaders and Signature");
        return bad;
    }
    if ((e = check_region(a, o, bad))) return e;
    if (!list_has(a->signed_headers, "host", 4)) {
        auth_msg(a, "SignedHeaders must include host");
        return bad;
    }
    /* the request time: x-amz-date, else Date */
    if ((v = mkv_http_header(r, "x-amz-date"))) {
        if (mkv_auth_parse_iso8601(v, &a->request_time) &&
            mkv_auth_parse_http_date(v, &a->request_time)) {
            auth_msg(a, "Invalid x-amz-date");
            return MKV_S3_ACCESS_DENIED;
        }
    } else if ((v = mkv_http_header(r, "date"))) {
        if (mkv_auth_parse_iso8601(v, &a->request_time) &&
            mkv_auth_parse_http_date(v, &a->request_time)) {
            auth_msg(a, "Invalid Date");
            return MKV_S3_ACCESS_DENIED;
        }
    } else {
        auth_msg(a, "AWS authentication requires a valid Date or x-amz-date header");
        return MKV_S3_ACCESS_DENIED;
    }
    format_iso8601(a->request_time, a->amz_date);
    if (memcmp(a->amz_date, date8, 8) != 0) {
        auth_msg(a, "Invalid credential date. Date is not the same as X-Amz-Date.");
        return bad;
    }
    if (a->request_time > now + MKV_AUTH_MAX_SKEW || a->request_time < now - MKV_AUTH_MAX_SKEW) {
        auth_msg(a, "The difference between the request time and the current time is too large.");
        return MKV_S3_REQUEST_TIME_TOO_SKEWED;
    }
    /* every x-amz-* header must be signed */
    for (unsigned i = 0; i < r->nheaders; i++) {
        const char *name = r->headers[i].name;
        if (strncasecmp(name, "x-amz-", 6) == 0 && !list_has(a->signed_headers, name, strlen(name))) {
            auth_msg(a, "There were headers present in the request which were not signed: %.64s",
                     name);
            return MKV_S3_ACCESS_DENIED;
        }
    }
    if (!(v = mkv_http_header(r, "x-amz-content-sha256"))) {
        auth_msg(a, "Missing required header for this request: x-amz-content-sha256");
        return MKV_S3_INVALID_REQUEST;
    }
    return payload_mode(a, v);
}

static enum mkv_s3_error query_value(struct mkv_auth *a, const struct mkv_http_req *r,
                                     const char *name, char *out, size_t cap)
{
    struct auth_param p;
    if (!auth_query_find(r->query, name, &p)) {
        auth_msg(a, "Query-string authentication requires the %s parameter", name);
        return MKV_S3_AUTH_QUERY_MALFORMED;
    }
    if (auth_param_value(&p, out, cap)) {
        auth_msg(a, "Invalid %s parameter", name);
        return MKV_S3_AUTH_QUERY_MALFORMED;
    }
    return MKV_S3_OK;
}

static enum mkv_s3_error parse_v4_query(const struct mkv_http_req *r,
                                        const struct mkv_auth_opts *o, struct mkv_auth *a,
                                        int64_t now)
{
    const enum mkv_s3_error bad = MKV_S3_AUTH_QUERY_MALFORMED;
    char buf[MKV_AUTH_MAX_SIGNED + 1], date8[9];
    enum mkv_s3_error e;
    char *end;
    long long secs;

    a->kind = MKV_AUTH_V4_QUERY;
    if ((e = query_value(a, r, "X-Amz-Algorithm", buf, sizeof buf))) return e;
    if (strcmp(buf, V4_ALGORITHM) != 0) {
        auth_msg(a, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
        return bad;
    }
    if ((e = query_value(a, r, "X-Amz-Credential", buf, sizeof buf))) return e;
    if (parse_credential(a, buf, strlen(buf), date8)) return bad;
    if ((e = check_region(a, o, bad))) return e;
    if ((e = query_value(a, r, "X-Amz-Date", buf, sizeof buf))) return e;
    if (mkv_auth_parse_iso8601(buf, &a->request_time)) {
        auth_msg(a, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
        return bad;
    }
    memcpy(a->amz_date, buf, 17);
    if (memcmp(a->amz_date, date8, 8) != 0) {
        auth_msg(a, "Invalid credential date. Date is not the same as X-Amz-Date.");
        return bad;
    }
    if ((e = query_value(a, r, "X-Amz-Expires", buf, sizeof buf))) return e;
    errno = 0;
    secs = strtoll(buf, &end, 10);
    if (!buf[0] || *end || errno || buf[0] == '-' || buf[0] == '+' || secs < 0) {
        auth_msg(a, "X-Amz-Expires should be a number");
        return bad;
    }
    if (secs > MKV_AUTH_MAX_EXPIRES) {
        auth_msg(a, "X-Amz-Expires must be less than a week (in seconds) that is 604800");
        return bad;
    }
    a->expires = a->request_time + secs;
    if ((e = query_value(a, r, "X-Amz-SignedHeaders", a->signed_headers,
                         sizeof a->signed_headers)))
        return e;
    if (!valid_signed_headers(a->signed_headers) || !list_has(a->signed_headers, "host", 4)) {
        auth_msg(a, "X-Amz-SignedHeaders must be a ';'-separated list including host");
        return bad;
    }
    if ((e = query_value(a, r, "X-Amz-Signature", buf, sizeof buf))) return e;
    if (parse_signature_hex(a, buf, strlen(buf))) {
        auth_msg(a, "X-Amz-Signature must be 64 hexadecimal characters");
        return bad;
    }
    if (now > a->expires) {
        auth_msg(a, "Request has expired");
        return MKV_S3_ACCESS_DENIED;
    }
    if (a->request_time > now + MKV_AUTH_MAX_SKEW) {
        auth_msg(a, "Request is not valid yet");
        return MKV_S3_ACCESS_DENIED;
    }
    struct auth_param p;
    a->payload = MKV_PAYLOAD_UNSIGNED;
    if (auth_query_find(r->query, "X-Amz-Content-Sha256", &p)) {
        if (auth_param_value(&p, buf, sizeof buf)) return bad;
        if ((e = payload_mode(a, buf))) return e;
    }
    return MKV_S3_OK;
}

/* Entry points */

enum mkv_s3_error mkv_auth_parse(const struct mkv_http_req *r, const struct mkv_auth_opts *o,
                                 struct mkv_auth *a)
{
    const char *h = mkv_http_header(r, "authorization");
    struct auth_param p;
    int q4 = auth_query_find(r->query, "X-Amz-Algorithm", &p) ||
             auth_query_find(r->query, "X-Amz-Signature", &p) ||
             auth_query_find(r->query, "X-Amz-Credential", &p);
    int q2 = auth_query_find(r->query, "AWSAccessKeyId", &p) ||
             auth_query_find(r->query, "Signature", &p);
    int64_t now = o && o->now ? o->now : (int64_t)time(NULL);

    memset(a, 0, sizeof *a);
    if ((h ? 1 : 0) + q4 + q2 > 1) {
        auth_msg(a, "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                    "parameter, Signature query string parameter or the Authorization "
                    "header should be specified");
        return MKV_S3_INVALID_ARGUMENT;
    }
    if (h) {
        if (strncmp(h, V4_ALGORITHM, strlen(V4_ALGORITHM)) == 0 && h[strlen(V4_ALGORITHM)] == ' ')
            return parse_v4_header(r, o, a, h, now);
        if (strncmp(h, "AWS ", 4) == 0) return sigv2_parse(r, o, a, now, 0);
        auth_msg(a, "Unsupported Authorization Type");
        return MKV_S3_INVALID_ARGUMENT;
    }
    if (q4) return parse_v4_query(r, o, a, now);
    if (q2) return sigv2_parse(r, o, a, now, 1);
    a->kind = MKV_AUTH_ANON;
    return MKV_S3_OK;
}

enum mkv_s3_error mkv_auth_verify(struct mkv_auth *a, const struct mkv_http_req *r,
                                  const struct mkv_auth_opts *o, const char *secret,
                                  size_t secret_len)
{
    struct mkv_buf sts = MKV_BUF_INIT;
    uint8_t key[32], mac[32];
    char date8[9], hex[65];
    int rv;

    switch (a->kind) {
    case MKV_AUTH_ANON: return MKV_S3_OK;
    case MKV_AUTH_V2_HEADER:
    case MKV_AUTH_V2_QUERY: return sigv2_verify(a, r, o, secret, secret_len);
    case MKV_AUTH_V4_HEADER:
    case MKV_AUTH_V4_QUERY: break;
    default: return MKV_S3_INTERNAL;
    }
    memcpy(date8, a->scope, 8);
    date8[8] = '\0';
    if (mkv_sigv4_signing_key(secret, secret_len, date8, a->region, "s3", key)) {
        auth_msg(a, "secret too long");
        return MKV_S3_SIGNATURE_MISMATCH;
    }
    rv = mkv_sigv4_string_to_sign(r, a, &sts);
    if (rv) {
        mkv_buf_free(&sts);
        OPENSSL_cleanse(key, sizeof key);
        if (rv == -ENOMEM) return MKV_S3_INTERNAL;
        auth_msg(a, "The request could not be canonicalised");
        return MKV_S3_SIGNATURE_MISMATCH;
    }
    mkv_hmac_sha256(key, 32, sts.p, sts.len, mac);
    mkv_buf_free(&sts);
    mkv_hex_encode(mac, 32, hex);
    if (!mkv_auth_equal(hex, a->signature, 64)) {
        OPENSSL_cleanse(key, sizeof key);
        auth_msg(a, "The request signature we calculated does not match the signature you "
                    "provided.");
        return MKV_S3_SIGNATURE_MISMATCH;
    }
    memcpy(a->signing_key, key, 32);
    OPENSSL_cleanse(key, sizeof key);
    return MKV_S3_OK;
}
