/* Unit tests: the aws-chunked decoder (s3gw/chunked.h).
 *
 * The signed body is AWS's published example ("Signature Calculations for
 * the Authorization Header: Transferring Payload in Multiple Chunks"):
 * 66560 bytes of 'a' in chunks of 65536, 1024 and 0 bytes, seed signature
 * 4f232c43..., chunk signatures ad80c730..., 0055627c..., b6c6ea8a...,
 * Content-Length 66824. Trailer checksums use the published check values
 * of the CRC catalogue for "123456789" (CRC-32 0xCBF43926, CRC-32C
 * 0xE3069283). A signed trailer has no published example: that test
 * signs the trailer with a second, independent computation of the
 * documented string to sign (OpenSSL HMAC directly). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "checksum.h"
#include "chunked.h"
#include "minikv/crc32c.h"
#include "http.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define SIG1 "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
#define SIG2 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
#define SIG3 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
#define SCOPE "20130524/us-east-1/s3/aws4_request"
#define DATE "20130524T000000Z"

struct sink
{
    struct mkv_buf out;
};

static int sink_cb(void *arg, const uint8_t *p, size_t n)
{
    struct sink *s = arg;
    return mkv_buf_append(&s->out, p, n) ? -1 : 0;
}

/* The published example body. */
static void example_body(struct mkv_buf *b)
{
    char *a = malloc(65536);
    assert_non_null(a);
    memset(a, 'a', 65536);
    assert_int_equal(mkv_buf_puts(b, "10000;chunk-signature=" SIG1 "\r\n"), 0);
    assert_int_equal(mkv_buf_append(b, a, 65536), 0);
    assert_int_equal(mkv_buf_puts(b, "\r\n400;chunk-signature=" SIG2 "\r\n"), 0);
    assert_int_equal(mkv_buf_append(b, a, 1024), 0);
    assert_int_equal(mkv_buf_puts(b, "\r\n0;chunk-signature=" SIG3 "\r\n\r\n"), 0);
    free(a);
    /* the published Content-Length of the encoded body */
    assert_int_equal(b->len, 66824);
}

static uint8_t example_key[32];

static void example_params(struct mkv_chunked_params *p, enum mkv_chunked_mode mode)
{
    assert_int_equal(mkv_sigv4_signing_key(SECRET, strlen(SECRET), "20130524", "us-east-1", "s3",
                                           example_key),
                     0);
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->signing_key = example_key;
    p->amz_date = DATE;
    p->scope = SCOPE;
    p->seed_signature = SEED;
    p->decoded_length = 66560;
}

/* Decodes body fed as the given pieces (cuts are offsets, ascending). */
static enum mkv_s3_error decode(const struct mkv_chunked_params *p, const uint8_t *body,
                                size_t len, const size_t *cuts, int ncuts, struct sink *s)
{
    struct mkv_chunked d;
    enum mkv_s3_error e;
    size_t prev = 0;
    mkv_buf_reset(&s->out);
    e = mkv_chunked_init_params(&d, p);
    if (e) return e;
    for (int i = 0; i <= ncuts && !e; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        e = mkv_chunked_feed(&d, body + prev, end - prev, sink_cb, s);
        prev = end;
    }
    if (!e) e = mkv_chunked_finish(&d);
    mkv_chunked_free(&d);
    return e;
}

static void assert_all_a(const struct sink *s, size_t n)
{
    assert_int_equal(s->out.len, n);
    for (size_t i = 0; i < n; i++)
        if (s->out.p[i] != 'a') fail_msg("byte %zu is %02x", i, s->out.p[i]);
}

static void test_signed_example(void **state)
{
    struct mkv_buf body = MKV_BUF_INIT;
    struct mkv_chunked_params p;
    struct sink s = {MKV_BUF_INIT};
    (void)state;
    example_body(&body);
    example_params(&p, MKV_CHUNKED_SIGNED);
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_OK);
    assert_all_a(&s, 66560);
    mkv_buf_free(&body);
    mkv_buf_free(&s.out);
}

/* Every two-piece split inside and around the framing, a stride through
 * the data, and fixed piece sizes down to one byte. */
static void test_signed_splits(void **state)
{
    struct mkv_buf body = MKV_BUF_INIT;
    struct mkv_chunked_params p;
    struct sink s = {MKV_BUF_INIT};
    const size_t l1 = 22 + 64 + 2;             /* first size line */
    const size_t d1 = l1 + 65536;              /* end of first data */
    const size_t l2 = d1 + 2 + 20 + 64 + 2;    /* end of second size line */
    const size_t d2 = l2 + 1024;
    int runs = 0;
    (void)state;
    example_body(&body);
    example_params(&p, MKV_CHUNKED_SIGNED);
    for (size_t k = 0; k <= body.len; k++) {
        int framing = k <= l1 + 2 || (k + 2 >= d1 && k <= l2 + 2) || k + 2 >= d2;
        if (!framing && k % 509) continue;
        size_t cut = k;
        assert_int_equal(decode(&p, body.p, body.len, &cut, 1, &s), MKV_S3_OK);
        assert_int_equal(s.out.len, 66560);
        runs++;
    }
    assert_true(runs > 400);
    /* three pieces: every pair of cuts within the last framing lines */
    for (size_t a = d2 - 3; a < body.len; a++)
        for (size_t b = a; b <= body.len; b++) {
            size_t cuts[2] = {a, b};
            assert_int_equal(decode(&p, body.p, body.len, cuts, 2, &s), MKV_S3_OK);
        }
    /* fixed piece sizes */
    {
        static const size_t sizes[] = {1, 2, 3, 7, 64, 100, 4096, 65535, 65536, 65537};
        for (size_t i = 0; i < MKV_ARRAY_SIZE(sizes); i++) {
            struct mkv_chunked d;
            mkv_buf_reset(&s.out);
            assert_int_equal(mkv_chunked_init_params(&d, &p), MKV_S3_OK);
            for (size_t off = 0; off < body.len; off += sizes[i])
                assert_int_equal(mkv_chunked_feed(&d, body.p + off,
                                                  MKV_MIN(sizes[i], body.len - off), sink_cb, &s),
                                 MKV_S3_OK);
            assert_int_equal(mkv_chunked_finish(&d), MKV_S3_OK);
            mkv_chunked_free(&d);
            assert_all_a(&s, 66560);
        }
    }
    mkv_buf_free(&body);
    mkv_buf_free(&s.out);
}

static void test_signed_tampered(void **state)
{
    struct mkv_buf body = MKV_BUF_INIT;
    struct mkv_chunked_params p;
    struct sink s = {MKV_BUF_INIT};
    char *sig2;
    (void)state;
    example_body(&body);
    example_params(&p, MKV_CHUNKED_SIGNED);
    /* one data byte of the second chunk */
    sig2 = strstr((char *)body.p + 65536, SIG2);
    assert_non_null(sig2);
    sig2[64 + 2 + 10] = 'b';
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_SIGNATURE_MISMATCH);
    sig2[64 + 2 + 10] = 'a';
    /* one hex digit of the second chunk's signature */
    sig2[5] = sig2[5] == '0' ? '1' : '0';
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_SIGNATURE_MISMATCH);
    sig2[5] = SIG2[5];
    /* chunks in another order cannot chain: a wrong seed */
    p.seed_signature = SIG1;
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_SIGNATURE_MISMATCH);
    p.seed_signature = SEED;
    /* the final (empty) chunk's signature */
    {
        char *sig3 = strstr((char *)body.p + body.len - 80, SIG3);
        assert_non_null(sig3);
        sig3[63] = sig3[63] == '9' ? '8' : '9';
        assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_SIGNATURE_MISMATCH);
        sig3[63] = SIG3[63];
    }
    /* a signature missing from a size line */
    {
        struct mkv_buf nosig = MKV_BUF_INIT;
        assert_int_equal(mkv_buf_puts(&nosig, "10000\r\n"), 0);
        assert_int_equal(decode(&p, nosig.p, nosig.len, NULL, 0, &s), MKV_S3_INVALID_REQUEST);
        mkv_buf_free(&nosig);
    }
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_OK);
    mkv_buf_free(&body);
    mkv_buf_free(&s.out);
}

static void test_truncated(void **state)
{
    struct mkv_buf body = MKV_BUF_INIT;
    struct mkv_chunked_params p;
    struct sink s = {MKV_BUF_INIT};
    (void)state;
    example_body(&body);
    example_params(&p, MKV_CHUNKED_SIGNED);
    /* a body that stops anywhere before the last chunk line is complete */
    for (size_t cut = 0; cut < body.len - 2; cut += (cut < 200 || cut > body.len - 200) ? 1 : 997)
        assert_int_equal(decode(&p, body.p, cut, NULL, 0, &s), MKV_S3_INCOMPLETE_BODY);
    /* the final CRLF alone may be missing */
    assert_int_equal(decode(&p, body.p, body.len - 2, NULL, 0, &s), MKV_S3_OK);
    /* bytes after the end */
    assert_int_equal(mkv_buf_puts(&body, "x"), 0);
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_INVALID_REQUEST);
    mkv_buf_free(&body);
    mkv_buf_free(&s.out);
}

static void test_line_bounds(void **state)
{
    struct mkv_chunked_params p = {.mode = MKV_CHUNKED_UNSIGNED_TRAILER, .decoded_length = -1};
    struct mkv_chunked d;
    struct sink s = {MKV_BUF_INIT};
    char line[4096];
    (void)state;
    /* a size line that never ends is refused once it passes the bound,
     * without the decoder taking the rest */
    memset(line, '0', sizeof line);
    assert_int_equal(mkv_chunked_init_params(&d, &p), MKV_S3_OK);
    assert_int_equal(mkv_chunked_feed(&d, line, sizeof line, sink_cb, &s), MKV_S3_INVALID_REQUEST);
    assert_int_equal(mkv_chunked_feed(&d, "\r\n", 2, sink_cb, &s), MKV_S3_INVALID_REQUEST);
    assert_int_equal(mkv_chunked_finish(&d), MKV_S3_INVALID_REQUEST);
    mkv_chunked_free(&d);
    /* an extension making the line long: the bound applies to the line */
    memset(line, 'x', sizeof line);
    memcpy(line, "5;", 2);
    memcpy(line + MKV_CHUNKED_MAX_LINE + 10, "\r\n", 2);
    assert_int_equal(mkv_chunked_init_params(&d, &p), MKV_S3_OK);
    assert_int_equal(mkv_chunked_feed(&d, line, MKV_CHUNKED_MAX_LINE + 12, sink_cb, &s),
                     MKV_S3_INVALID_REQUEST);
    mkv_chunked_free(&d);
    /* too many hex digits, bad digits, LF without CR */
    {
        const char *bad[] = {"11111111111111111\r\n", "zz\r\n", "5\nhello\r\n", "\r\n",
                             "5\r\nhelloXY", NULL};
        for (int i = 0; bad[i]; i++) {
            assert_int_equal(mkv_chunked_init_params(&d, &p), MKV_S3_OK);
            assert_int_equal(mkv_chunked_feed(&d, bad[i], strlen(bad[i]), sink_cb, &s),
                             MKV_S3_INVALID_REQUEST);
            mkv_chunked_free(&d);
        }
    }
    mkv_buf_free(&s.out);
}

/* STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC trailer */
static void unsigned_body(struct mkv_buf *b, const char *name, uint32_t crc)
{
    uint8_t be[4];
    char b64[16];
    mkv_put_be32(be, crc);
    assert_true(mkv_base64_encode(be, 4, b64, sizeof b64) > 0);
    mkv_buf_reset(b);
    assert_int_equal(mkv_buf_printf(b, "4\r\n1234\r\n5\r\n56789\r\n0\r\n%s:%s\r\n\r\n", name, b64),
                     0);
}

static void test_trailer_checksum(void **state)
{
    struct mkv_chunked_params p = {.mode = MKV_CHUNKED_UNSIGNED_TRAILER, .decoded_length = 9,
                                   .trailer = "x-amz-checksum-crc32"};
    struct mkv_buf body = MKV_BUF_INIT;
    struct sink s = {MKV_BUF_INIT};
    struct mkv_chunked d;
    (void)state;
    unsigned_body(&body, "x-amz-checksum-crc32", 0xCBF43926);
    /* every split into two and into three pieces */
    for (size_t a = 0; a <= body.len; a++)
        for (size_t b = a; b <= body.len; b++) {
            size_t cuts[2] = {a, b};
            assert_int_equal(decode(&p, body.p, body.len, cuts, 2, &s), MKV_S3_OK);
            assert_int_equal(s.out.len, 9);
            assert_memory_equal(s.out.p, "123456789", 9);
        }
    /* the trailer value is available after finish */
    assert_int_equal(mkv_chunked_init_params(&d, &p), MKV_S3_OK);
    assert_int_equal(mkv_chunked_feed(&d, body.p, body.len, NULL, NULL), MKV_S3_OK);
    assert_int_equal(mkv_chunked_finish(&d), MKV_S3_OK);
    assert_string_equal(mkv_chunked_trailer_value(&d, MKV_CKSUM_CRC32), "y/Q5Jg==");
    mkv_chunked_free(&d);
    /* a wrong checksum: BadDigest */
    unsigned_body(&body, "x-amz-checksum-crc32", 0xCBF43927);
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_BAD_CHECKSUM);
    /* CRC32C */
    p.trailer = "x-amz-checksum-crc32c";
    unsigned_body(&body, "x-amz-checksum-crc32c", 0xE3069283);
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_OK);
    unsigned_body(&body, "x-amz-checksum-crc32c", 0xCBF43926);
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_BAD_CHECKSUM);
    /* a trailer that was not announced */
    unsigned_body(&body, "x-amz-checksum-crc32", 0xCBF43926);
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_INVALID_REQUEST);
    /* announced but never sent */
    {
        static const char nosend[] = "9\r\n123456789\r\n0\r\n\r\n";
        assert_int_equal(decode(&p, (const uint8_t *)nosend, sizeof nosend - 1, NULL, 0, &s),
                         MKV_S3_INCOMPLETE_BODY);
    }
    /* malformed value */
    {
        static const char badval[] = "9\r\n123456789\r\n0\r\nx-amz-checksum-crc32c:%%%\r\n\r\n";
        assert_int_equal(decode(&p, (const uint8_t *)badval, sizeof badval - 1, NULL, 0, &s),
                         MKV_S3_INVALID_REQUEST);
    }
    /* an unknown checksum algorithm announced */
    p.trailer = "x-amz-checksum-md7";
    assert_int_equal(mkv_chunked_init_params(&d, &p), MKV_S3_NOT_IMPLEMENTED);
    mkv_buf_free(&body);
    mkv_buf_free(&s.out);
}

static void test_decoded_length(void **state)
{
    struct mkv_chunked_params p = {.mode = MKV_CHUNKED_UNSIGNED_TRAILER,
                                   .trailer = "x-amz-checksum-crc32"};
    struct mkv_buf body = MKV_BUF_INIT;
    struct sink s = {MKV_BUF_INIT};
    (void)state;
    unsigned_body(&body, "x-amz-checksum-crc32", 0xCBF43926);
    p.decoded_length = 10; /* more announced than sent */
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_INCOMPLETE_BODY);
    p.decoded_length = 8; /* fewer announced than sent: refused as it arrives */
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_INVALID_REQUEST);
    assert_true(s.out.len <= 8);
    p.decoded_length = -1;
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_OK);
    mkv_buf_free(&body);
    mkv_buf_free(&s.out);
}

/* Signed chunks followed by a signed trailer. */
static void hmac_hex(const uint8_t key[32], const char *msg, char out[65])
{
    uint8_t mac[32];
    unsigned len = 32;
    static const char hexd[] = "0123456789abcdef";
    assert_non_null(HMAC(EVP_sha256(), key, 32, (const uint8_t *)msg, strlen(msg), mac, &len));
    for (int i = 0; i < 32; i++) out[2 * i] = hexd[mac[i] >> 4], out[2 * i + 1] = hexd[mac[i] & 15];
    out[64] = '\0';
}

static void sha_hex(const char *msg, size_t n, char out[65])
{
    uint8_t d[32];
    unsigned len = 32;
    static const char hexd[] = "0123456789abcdef";
    assert_int_equal(EVP_Digest(msg, n, d, &len, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++) out[2 * i] = hexd[d[i] >> 4], out[2 * i + 1] = hexd[d[i] & 15];
    out[64] = '\0';
}

static void test_signed_trailer(void **state)
{
    struct mkv_buf body = MKV_BUF_INIT;
    struct mkv_chunked_params p;
    struct sink s = {MKV_BUF_INIT};
    char sts[512], th[65], tsig[65];
    uint8_t be[4];
    char b64[16];
    uint32_t crc;
    (void)state;
    /* the published chunks, then the trailer the documented way */
    example_body(&body);
    body.len -= 2; /* trailer modes have no CRLF after the 0-size chunk line */
    example_params(&p, MKV_CHUNKED_SIGNED_TRAILER);
    p.trailer = "x-amz-checksum-crc32";
    {
        char *a = malloc(66560);
        memset(a, 'a', 66560);
        crc = mkv_crc32(0, a, 66560);
        free(a);
    }
    mkv_put_be32(be, crc);
    mkv_base64_encode(be, 4, b64, sizeof b64);
    {
        char canon[128];
        snprintf(canon, sizeof canon, "x-amz-checksum-crc32:%s\n", b64);
        sha_hex(canon, strlen(canon), th);
    }
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256-TRAILER\n" DATE "\n" SCOPE "\n" SIG3 "\n%s", th);
    hmac_hex(example_key, sts, tsig);
    assert_int_equal(mkv_buf_printf(&body, "x-amz-checksum-crc32:%s\r\nx-amz-trailer-signature:%s\r\n\r\n",
                                    b64, tsig),
                     0);
    assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_OK);
    assert_all_a(&s, 66560);
    /* every split over the trailer section */
    for (size_t k = body.len - 140; k <= body.len; k++)
        assert_int_equal(decode(&p, body.p, body.len, &k, 1, &s), MKV_S3_OK);
    /* a wrong trailer signature */
    {
        char *t = strstr((char *)body.p + body.len - 100, "signature:");
        assert_non_null(t);
        t[10] = t[10] == '0' ? '1' : '0';
        assert_int_equal(decode(&p, body.p, body.len, NULL, 0, &s), MKV_S3_SIGNATURE_MISMATCH);
        t[10] = tsig[0];
    }
    /* without the trailer signature */
    {
        struct mkv_buf b2 = MKV_BUF_INIT;
        char *t = strstr((char *)body.p + body.len - 100, "x-amz-trailer-signature");
        assert_int_equal(mkv_buf_append(&b2, body.p, (size_t)((uint8_t *)t - body.p)), 0);
        assert_int_equal(mkv_buf_puts(&b2, "\r\n"), 0);
        assert_int_equal(decode(&p, b2.p, b2.len, NULL, 0, &s), MKV_S3_SIGNATURE_MISMATCH);
        mkv_buf_free(&b2);
    }
    mkv_buf_free(&body);
    mkv_buf_free(&s.out);
}

/* From a verified request: mkv_auth_parse/verify, then mkv_chunked_init. */
static void test_from_request(void **state)
{
    struct mkv_http_header h[] = {
        {"Host", "s3.amazonaws.com"},
        {"x-amz-date", DATE},
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
        {"Content-Encoding", "aws-chunked"},
        {"x-amz-decoded-content-length", "66560"},
        {"Content-Length", "66824"},
        {"Authorization",
         "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
         "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
         "x-amz-decoded-content-length;x-amz-storage-class,Signature=" SEED},
    };
    struct mkv_http_req r = {.method = "PUT", .raw_path = "/examplebucket/chunkObject.txt",
                             .path = "/examplebucket/chunkObject.txt", .query = "",
                             .headers = h, .nheaders = MKV_ARRAY_SIZE(h)};
    struct mkv_auth_opts o = {.now = 1369353600};
    struct mkv_auth a;
    struct mkv_chunked d;
    struct mkv_buf body = MKV_BUF_INIT;
    struct sink s = {MKV_BUF_INIT};
    (void)state;
    assert_int_equal(mkv_auth_parse(&r, &o, &a), MKV_S3_OK);
    assert_int_equal(mkv_auth_verify(&a, &r, &o, SECRET, strlen(SECRET)), MKV_S3_OK);
    assert_int_equal(mkv_chunked_init(&d, &r, &a), MKV_S3_OK);
    example_body(&body);
    assert_int_equal(mkv_chunked_feed(&d, body.p, body.len, sink_cb, &s), MKV_S3_OK);
    assert_int_equal(mkv_chunked_finish(&d), MKV_S3_OK);
    assert_int_equal(mkv_chunked_decoded(&d), 66560);
    mkv_chunked_free(&d);
    assert_all_a(&s, 66560);
    /* a request that is not streaming */
    a.payload = MKV_PAYLOAD_UNSIGNED;
    assert_int_equal(mkv_chunked_init(&d, &r, &a), MKV_S3_INVALID_REQUEST);
    mkv_buf_free(&body);
    mkv_buf_free(&s.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_example),   cmocka_unit_test(test_signed_splits),
        cmocka_unit_test(test_signed_tampered),  cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_line_bounds),      cmocka_unit_test(test_trailer_checksum),
        cmocka_unit_test(test_decoded_length),   cmocka_unit_test(test_signed_trailer),
        cmocka_unit_test(test_from_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
