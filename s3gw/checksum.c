/* minikv gateway: streaming body checksums and their encodings. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "checksum.h"
#include "http.h"
#include "minikv/crc32c.h"

struct cksum_info
{
    const char *name;
    const char *header;
    size_t size;
};

static const struct cksum_info cksum_infos[MKV_CKSUM__COUNT] = {
    [MKV_CKSUM_MD5] = {"MD5", NULL, 16},
    [MKV_CKSUM_CRC32] = {"CRC32", "x-amz-checksum-crc32", 4},
    [MKV_CKSUM_CRC32C] = {"CRC32C", "x-amz-checksum-crc32c", 4},
    [MKV_CKSUM_CRC64NVME] = {"CRC64NVME", "x-amz-checksum-crc64nvme", 8},
    [MKV_CKSUM_SHA1] = {"SHA1", "x-amz-checksum-sha1", 20},
    [MKV_CKSUM_SHA256] = {"SHA256", "x-amz-checksum-sha256", 32},
};

static int alg_valid(enum mkv_cksum_alg alg)
{
    return (unsigned)alg < (unsigned)MKV_CKSUM__COUNT;
}

const char *mkv_cksum_name(enum mkv_cksum_alg alg)
{
    return alg_valid(alg) ? cksum_infos[alg].name : "?";
}

size_t mkv_cksum_size(enum mkv_cksum_alg alg)
{
    return alg_valid(alg) ? cksum_infos[alg].size : 0;
}

const char *mkv_cksum_header(enum mkv_cksum_alg alg)
{
    return alg_valid(alg) ? cksum_infos[alg].header : NULL;
}

int mkv_cksum_from_header(const char *name, size_t len, enum mkv_cksum_alg *alg)
{
    for (int i = 0; i < MKV_CKSUM__COUNT; i++) {
        const char *h = cksum_infos[i].header;
        if (h && strlen(h) == len && strncasecmp(h, name, len) == 0) {
            *alg = (enum mkv_cksum_alg)i;
            return 0;
        }
    }
    return -ENOENT;
}

/* CRC-64/NVME, reflected, one table built on first use. */
static uint64_t crc64_tab[256];
static int crc64_ready;

static void crc64_init_table(void)
{
    if (__atomic_load_n(&crc64_ready, __ATOMIC_ACQUIRE)) return;
    for (uint32_t n = 0; n < 256; n++) {
        uint64_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x9a6c9329ac4bc9b5ULL : c >> 1;
        crc64_tab[n] = c;
    }
    __atomic_store_n(&crc64_ready, 1, __ATOMIC_RELEASE);
}

uint64_t mkv_crc64nvme(uint64_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    crc64_init_table();
    crc = ~crc;
    while (n--) crc = crc64_tab[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static const EVP_MD *cksum_md(enum mkv_cksum_alg alg)
{
    switch (alg) {
    case MKV_CKSUM_MD5: return EVP_md5();
    case MKV_CKSUM_SHA1: return EVP_sha1();
    case MKV_CKSUM_SHA256: return EVP_sha256();
    default: return NULL;
    }
}

int mkv_cksum_init(struct mkv_cksum *c, enum mkv_cksum_alg alg)
{
    const EVP_MD *md;
    memset(c, 0, sizeof *c);
    if (!alg_valid(alg)) return -EINVAL;
    c->alg = alg;
    md = cksum_md(alg);
    if (!md) return 0;
    c->md = EVP_MD_CTX_new();
    if (!c->md) return -ENOMEM;
    if (EVP_DigestInit_ex(c->md, md, NULL) != 1) {
        EVP_MD_CTX_free(c->md);
        c->md = NULL;
        return -ENOMEM;
    }
    return 0;
}

void mkv_cksum_update(struct mkv_cksum *c, const void *p, size_t n)
{
    if (n == 0) return;
    switch (c->alg) {
    case MKV_CKSUM_CRC32: c->crc = mkv_crc32((uint32_t)c->crc, p, n); break;
    case MKV_CKSUM_CRC32C: c->crc = mkv_crc32c((uint32_t)c->crc, p, n); break;
    case MKV_CKSUM_CRC64NVME: c->crc = mkv_crc64nvme(c->crc, p, n); break;
    default:
        if (c->md) (void)EVP_DigestUpdate(c->md, p, n);
        break;
    }
}

size_t mkv_cksum_final(struct mkv_cksum *c, uint8_t out[MKV_CKSUM_MAX])
{
    unsigned len = 0;
    switch (c->alg) {
    case MKV_CKSUM_CRC32:
    case MKV_CKSUM_CRC32C: mkv_put_be32(out, (uint32_t)c->crc); return 4;
    case MKV_CKSUM_CRC64NVME: mkv_put_be64(out, c->crc); return 8;
    default:
        if (!c->md || EVP_DigestFinal_ex(c->md, out, &len) != 1) return 0;
        return len;
    }
}

void mkv_cksum_free(struct mkv_cksum *c)
{
    if (c->md) EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

size_t mkv_cksum_oneshot(enum mkv_cksum_alg alg, const void *p, size_t n,
                         uint8_t out[MKV_CKSUM_MAX])
{
    struct mkv_cksum c;
    size_t len;
    if (mkv_cksum_init(&c, alg)) return 0;
    mkv_cksum_update(&c, p, n);
    len = mkv_cksum_final(&c, out);
    mkv_cksum_free(&c);
    return len;
}

/* Encodings */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mkv_base64_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    size_t need = (n + 2) / 3 * 4, o = 0;
    if (outlen < need + 1) return 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int mkv_base64_decode(const char *in, size_t n, uint8_t *out, size_t outcap, size_t *outlen)
{
    size_t o = 0;
    if (n % 4) return -EINVAL;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=') {
                /* padding only in the last quantum, only at its end */
                if (i + 4 != n || k < 2) return -EINVAL;
                v[k] = 0;
                pad++;
            } else {
                if (pad) return -EINVAL;
                v[k] = b64_value(in[i + k]);
                if (v[k] < 0) return -EINVAL;
            }
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                     (uint32_t)v[3];
        /* canonical form: the bits under the padding are zero */
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))) return -EINVAL;
        if (o + 3 - (size_t)pad > outcap) return -ENOSPC;
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2) out[o++] = (uint8_t)(w >> 8);
        if (pad < 1) out[o++] = (uint8_t)w;
    }
    *outlen = o;
    return 0;
}

void mkv_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int mkv_hex_decode(const char *in, size_t n, uint8_t *out)
{
    if (n % 2) return -EINVAL;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value(in[i]), lo = hex_value(in[i + 1]);
        if (hi < 0 || lo < 0) return -EINVAL;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Body verification */

/* Decodes a base64 header value that must be exactly size bytes. */
static int decode_digest(const char *v, size_t size, uint8_t *out)
{
    size_t len = 0;
    if (mkv_base64_decode(v, strlen(v), out, MKV_CKSUM_MAX, &len) || len != size) return -EINVAL;
    return 0;
}

enum mkv_s3_error mkv_body_check_init(struct mkv_body_check *b, const struct mkv_http_req *r,
                                      unsigned extra, int streaming)
{
    const char *v;
    int nchecksums = 0;
    memset(b, 0, sizeof *b);
    b->compute = extra & (MKV_CKSUM_BIT(MKV_CKSUM__COUNT) - 1);

    v = mkv_http_header(r, "content-md5");
    if (v) {
        if (decode_digest(v, 16, b->expected[MKV_CKSUM_MD5])) return MKV_S3_INVALID_DIGEST;
        b->expect |= MKV_CKSUM_BIT(MKV_CKSUM_MD5);
    }
    for (int i = 0; i < MKV_CKSUM__COUNT; i++) {
        const char *h = cksum_infos[i].header;
        if (!h || !(v = mkv_http_header(r, h))) continue;
        if (++nchecksums > 1) return MKV_S3_INVALID_REQUEST; /* S3 takes one */
        if (decode_digest(v, cksum_infos[i].size, b->expected[i])) return MKV_S3_INVALID_REQUEST;
        b->expect |= MKV_CKSUM_BIT(i);
    }
    v = mkv_http_header(r, "x-amz-content-sha256");
    if (v && !streaming) {
        if (strlen(v) == 64) {
            if (mkv_hex_decode(v, 64, b->content_sha256)) return MKV_S3_INVALID_ARGUMENT;
            b->expect_content_sha256 = 1;
            b->compute |= MKV_CKSUM_BIT(MKV_CKSUM_SHA256);
        } else if (strcmp(v, "UNSIGNED-PAYLOAD") != 0 &&
                   strncmp(v, "STREAMING-", 10) != 0) {
            return MKV_S3_INVALID_ARGUMENT;
        }
    }
    b->compute |= b->expect;
    for (int i = 0; i < MKV_CKSUM__COUNT; i++) {
        if (!(b->compute & MKV_CKSUM_BIT(i))) continue;
        if (mkv_cksum_init(&b->ck[i], (enum mkv_cksum_alg)i)) {
            mkv_body_check_free(b);
            return MKV_S3_INTERNAL;
        }
    }
    return MKV_S3_OK;
}

void mkv_body_check_update(struct mkv_body_check *b, const void *p, size_t n)
{
    b->bytes += n;
    for (int i = 0; i < MKV_CKSUM__COUNT; i++)
        if (b->compute & MKV_CKSUM_BIT(i)) mkv_cksum_update(&b->ck[i], p, n);
}

enum mkv_s3_error mkv_body_check_finish(struct mkv_body_check *b)
{
    enum mkv_s3_error e = MKV_S3_OK;
    if (!b->finished) {
        for (int i = 0; i < MKV_CKSUM__COUNT; i++) {
            if (!(b->compute & MKV_CKSUM_BIT(i))) continue;
            if (mkv_cksum_final(&b->ck[i], b->digest[i]) != cksum_infos[i].size) e = MKV_S3_INTERNAL;
            mkv_cksum_free(&b->ck[i]);
        }
        b->finished = 1;
    }
    if (e) return e;
    if (b->expect_content_sha256 && memcmp(b->content_sha256, b->digest[MKV_CKSUM_SHA256], 32))
        return MKV_S3_CONTENT_SHA256_MISMATCH;
    if ((b->expect & MKV_CKSUM_BIT(MKV_CKSUM_MD5)) &&
        memcmp(b->expected[MKV_CKSUM_MD5], b->digest[MKV_CKSUM_MD5], 16))
        return MKV_S3_BAD_DIGEST;
    for (int i = 0; i < MKV_CKSUM__COUNT; i++) {
        if (i == MKV_CKSUM_MD5 || !(b->expect & MKV_CKSUM_BIT(i))) continue;
        if (memcmp(b->expected[i], b->digest[i], cksum_infos[i].size)) return MKV_S3_BAD_CHECKSUM;
    }
    return MKV_S3_OK;
}

int mkv_body_check_digest(const struct mkv_body_check *b, enum mkv_cksum_alg alg,
                          uint8_t out[MKV_CKSUM_MAX], size_t *len)
{
    if (!alg_valid(alg) || !b->finished || !(b->compute & MKV_CKSUM_BIT(alg))) return -ENOENT;
    memcpy(out, b->digest[alg], cksum_infos[alg].size);
    *len = cksum_infos[alg].size;
    return 0;
}

void mkv_body_check_free(struct mkv_body_check *b)
{
    for (int i = 0; i < MKV_CKSUM__COUNT; i++) mkv_cksum_free(&b->ck[i]);
}
