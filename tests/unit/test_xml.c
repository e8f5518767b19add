/* Unit tests: the XML pull parser (s3gw/xml.h) and the checksum module
 * (s3gw/checksum.h).
 *
 * Checksum known answers are published ones: MD5 (RFC 1321 test suite),
 * SHA-1 and SHA-256 of "abc" (FIPS 180 examples), the CRC catalogue's check
 * values for "123456789" (CRC-32, CRC-32C, CRC-64/NVME), base64 test
 * vectors of RFC 4648 section 10. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checksum.h"
#include "http.h"
#include "xml.h"

/* XML */

static void test_complete_multipart(void **state)
{
    static const char doc[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
        "  <Part>\n    <PartNumber>1</PartNumber>\n"
        "    <ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag>\n  </Part>\n"
        "  <!-- a comment -->\n"
        "  <Part><PartNumber>2</PartNumber><ETag>\"0c78aef83f66abc1fa1e8477f296d394\"</ETag></Part>\n"
        "</CompleteMultipartUpload>\n";
    struct mkv_xml x;
    struct mkv_xml_token t;
    char buf[128];
    size_t len;
    int parts = 0;
    (void)state;
    mkv_xml_init(&x, doc, sizeof doc - 1);
    assert_int_equal(mkv_xml_next(&x, &t), MKV_S3_OK);
    assert_true(mkv_xml_is(&t, "CompleteMultipartUpload"));
    assert_int_equal(t.depth, 1);
    assert_int_equal(mkv_xml_attr(&t, "xmlns", buf, sizeof buf), 1);
    assert_string_equal(buf, "http://s3.amazonaws.com/doc/2006-03-01/");
    for (;;) {
        assert_int_equal(mkv_xml_next(&x, &t), MKV_S3_OK);
        if (t.type == MKV_XML_EOF) break;
        if (t.type == MKV_XML_TEXT) {
            assert_true(t.ws);
            continue;
        }
        if (t.type == MKV_XML_START && mkv_xml_is(&t, "PartNumber")) {
            assert_int_equal(mkv_xml_text(&x, buf, sizeof buf, &len), MKV_S3_OK);
            assert_int_equal(buf[0] - '0', ++parts);
        } else if (t.type == MKV_XML_START && mkv_xml_is(&t, "ETag")) {
            assert_int_equal(mkv_xml_text(&x, buf, sizeof buf, &len), MKV_S3_OK);
            assert_int_equal(len, 34);
            assert_true(buf[0] == '"' && buf[33] == '"');
        }
    }
    assert_int_equal(parts, 2);
    /* EOF is sticky and harmless */
    assert_int_equal(mkv_xml_next(&x, &t), MKV_S3_OK);
    assert_int_equal(t.type, MKV_XML_EOF);
    mkv_xml_free(&x);
}

static void test_delete_entities(void **state)
{
    static const char doc[] =
        "\xef\xbb\xbf<s3:Delete xmlns:s3='http://s3.amazonaws.com/doc/2006-03-01/'>"
        "<s3:Quiet>true</s3:Quiet>"
        "<s3:Object><s3:Key>a&amp;b&lt;c&gt;d&quot;e&apos;f&#65;&#x42;&#x20AC;</s3:Key></s3:Object>"
        "<s3:Object><s3:Key><![CDATA[<raw> & text]]>+more</s3:Key><VersionId/></s3:Object>"
        "<s3:Object><s3:Key> </s3:Key></s3:Object>"
        "</s3:Delete>";
    struct mkv_xml x;
    struct mkv_xml_token t;
    char key[256];
    size_t len;
    int keys = 0, empty = 0;
    (void)state;
    mkv_xml_init(&x, doc, sizeof doc - 1);
    while (mkv_xml_next(&x, &t) == MKV_S3_OK && t.type != MKV_XML_EOF) {
        if (t.type == MKV_XML_START && mkv_xml_is(&t, "Key")) {
            assert_int_equal(mkv_xml_text(&x, key, sizeof key, &len), MKV_S3_OK);
            keys++;
            if (keys == 1) assert_string_equal(key, "a&b<c>d\"e'fAB\xe2\x82\xac");
            if (keys == 2) assert_string_equal(key, "<raw> & text+more");
            if (keys == 3) assert_string_equal(key, " ");
        } else if (t.type == MKV_XML_START && mkv_xml_is(&t, "VersionId")) {
            assert_int_equal(mkv_xml_next(&x, &t), MKV_S3_OK);
            assert_int_equal(t.type, MKV_XML_END);
            assert_true(mkv_xml_is(&t, "VersionId"));
            empty++;
        } else if (t.type == MKV_XML_START && mkv_xml_is(&t, "Quiet")) {
            assert_int_equal(mkv_xml_skip(&x), MKV_S3_OK);
        }
    }
    assert_int_equal(x.err, MKV_S3_OK);
    assert_int_equal(keys, 3);
    assert_int_equal(empty, 1);
    mkv_xml_free(&x);
}

static enum mkv_s3_error walk(const char *doc, size_t len)
{
    struct mkv_xml x;
    struct mkv_xml_token t;
    enum mkv_s3_error e;
    mkv_xml_init(&x, doc, len);
    while ((e = mkv_xml_next(&x, &t)) == MKV_S3_OK && t.type != MKV_XML_EOF)
        ;
    mkv_xml_free(&x);
    return e;
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "   ",
        "<a>",
        "<a></b>",
        "<a><b></a></b>",
        "<a>x</a>trailing",
        "<a/><b/>",
        "text<a/>",
        "<a>&foo;</a>",
        "<a>&amp</a>",
        "<a>&#0;</a>",
        "<a>&#xD800;</a>",
        "<a>&#x110000;</a>",
        "<a>&#;</a>",
        "<a>&#xZZ;</a>",
        "<a>\x01</a>",
        "<a>\xc3\x28</a>",       /* invalid UTF-8 */
        "<a>\xed\xa0\x80</a>",   /* encoded surrogate */
        "<a>\xf8\x88\x80\x80\x80</a>",
        "<a><!-- open</a>",
        "<a><![CDATA[open</a>",
        "<a b></a>",
        "<a b=c></a>",
        "<a b=\"<\"></a>",
        "<a b=\"1\"c=\"2\"></a>",
        "<a b=\"&bogus;\"></a>",
        "<1a></1a>",
        "< a></a>",
        "<a></ a>",
        "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
        "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><lolz>&lol2;</lolz>",
        "<a><!ENTITY x \"y\"></a>",
        "<?xml version=\"1.0\"?",
        NULL,
    };
    (void)state;
    for (int i = 0; bad[i]; i++)
        if (walk(bad[i], strlen(bad[i])) != MKV_S3_MALFORMED_XML) fail_msg("accepted: %s", bad[i]);
    /* a NUL byte inside the document */
    assert_int_equal(walk("<a>x\0y</a>", 10), MKV_S3_MALFORMED_XML);
    /* well-formed odd cases */
    assert_int_equal(walk("<a/>", 4), MKV_S3_OK);
    {
        static const char odd[] = "<?xml version='1.0'?><!-- c --><a >x<?pi data?></a ><!-- end -->\n";
        assert_int_equal(walk(odd, sizeof odd - 1), MKV_S3_OK);
    }
}

static void test_bounds(void **state)
{
    char doc[4096];
    size_t n = 0;
    (void)state;
    /* nesting up to the bound is fine, one more is not */
    for (int i = 0; i < MKV_XML_MAX_DEPTH; i++) n += (size_t)sprintf(doc + n, "<e>");
    for (int i = 0; i < MKV_XML_MAX_DEPTH; i++) n += (size_t)sprintf(doc + n, "</e>");
    assert_int_equal(walk(doc, n), MKV_S3_OK);
    n = 0;
    for (int i = 0; i <= MKV_XML_MAX_DEPTH; i++) n += (size_t)sprintf(doc + n, "<e>");
    for (int i = 0; i <= MKV_XML_MAX_DEPTH; i++) n += (size_t)sprintf(doc + n, "</e>");
    assert_int_equal(walk(doc, n), MKV_S3_MALFORMED_XML);
    /* one text run longer than the bound */
    {
        size_t big = MKV_XML_MAX_TEXT + 10;
        char *d = malloc(big + 8);
        assert_non_null(d);
        memcpy(d, "<a>", 3);
        memset(d + 3, 'x', big);
        memcpy(d + 3 + big, "</a>", 4);
        assert_int_equal(walk(d, big + 7), MKV_S3_MALFORMED_XML);
        free(d);
    }
    /* mkv_xml_text: a child element, a value longer than the buffer */
    {
        struct mkv_xml x;
        struct mkv_xml_token t;
        char buf[4];
        mkv_xml_init(&x, "<a><b/></a>", 11);
        assert_int_equal(mkv_xml_next(&x, &t), MKV_S3_OK);
        assert_int_equal(mkv_xml_text(&x, buf, sizeof buf, NULL), MKV_S3_MALFORMED_XML);
        assert_int_equal(mkv_xml_next(&x, &t), MKV_S3_MALFORMED_XML); /* sticky */
        mkv_xml_free(&x);
        mkv_xml_init(&x, "<a>abcd</a>", 11);
        assert_int_equal(mkv_xml_next(&x, &t), MKV_S3_OK);
        assert_int_equal(mkv_xml_text(&x, buf, sizeof buf, NULL), MKV_S3_MALFORMED_XML);
        mkv_xml_free(&x);
    }
}

static void test_every_prefix(void **state)
{
    static const char doc[] = "<Delete><Object><Key>k&amp;1</Key></Object></Delete>";
    (void)state;
    /* every strict prefix of a document is malformed, the whole one is not */
    for (size_t n = 0; n < sizeof doc - 1; n++)
        assert_int_equal(walk(doc, n), MKV_S3_MALFORMED_XML);
    assert_int_equal(walk(doc, sizeof doc - 1), MKV_S3_OK);
}

/* Checksums */

static void hex_is(const uint8_t *d, size_t n, const char *want)
{
    char hex[2 * MKV_CKSUM_MAX + 1];
    mkv_hex_encode(d, n, hex);
    assert_string_equal(hex, want);
}

static void test_digests(void **state)
{
    uint8_t d[MKV_CKSUM_MAX];
    struct mkv_cksum c;
    (void)state;
    /* RFC 1321 A.5 */
    assert_int_equal(mkv_cksum_oneshot(MKV_CKSUM_MD5, "", 0, d), 16);
    hex_is(d, 16, "d41d8cd98f00b204e9800998ecf8427e");
    assert_int_equal(mkv_cksum_oneshot(MKV_CKSUM_MD5, "abc", 3, d), 16);
    hex_is(d, 16, "900150983cd24fb0d6963f7d28e17f72");
    assert_int_equal(mkv_cksum_oneshot(MKV_CKSUM_MD5, "message digest", 14, d), 16);
    hex_is(d, 16, "f96b697d7cb7938d525a2f31aaf161d0");
    /* FIPS 180 */
    assert_int_equal(mkv_cksum_oneshot(MKV_CKSUM_SHA1, "abc", 3, d), 20);
    hex_is(d, 20, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_int_equal(mkv_cksum_oneshot(MKV_CKSUM_SHA256, "abc", 3, d), 32);
    hex_is(d, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* CRC catalogue check values */
    assert_int_equal(mkv_cksum_oneshot(MKV_CKSUM_CRC32, "123456789", 9, d), 4);
    hex_is(d, 4, "cbf43926");
    assert_int_equal(mkv_cksum_oneshot(MKV_CKSUM_CRC32C, "123456789", 9, d), 4);
    hex_is(d, 4, "e3069283");
    assert_int_equal(mkv_cksum_oneshot(MKV_CKSUM_CRC64NVME, "123456789", 9, d), 8);
    hex_is(d, 8, "ae8b14860a799888");
    /* streaming in pieces gives the same */
    for (int alg = 0; alg < MKV_CKSUM__COUNT; alg++) {
        uint8_t one[MKV_CKSUM_MAX];
        size_t n = mkv_cksum_oneshot((enum mkv_cksum_alg)alg, "123456789", 9, one);
        assert_int_equal(mkv_cksum_init(&c, (enum mkv_cksum_alg)alg), 0);
        mkv_cksum_update(&c, "1", 1);
        mkv_cksum_update(&c, "", 0);
        mkv_cksum_update(&c, "2345", 4);
        mkv_cksum_update(&c, "6789", 4);
        assert_int_equal(mkv_cksum_final(&c, d), n);
        mkv_cksum_free(&c);
        assert_memory_equal(d, one, n);
    }
    assert_int_equal(mkv_cksum_init(&c, MKV_CKSUM__COUNT), -EINVAL);
    {
        enum mkv_cksum_alg alg;
        assert_int_equal(mkv_cksum_from_header("X-Amz-Checksum-CRC32C", 21, &alg), 0);
        assert_int_equal(alg, MKV_CKSUM_CRC32C);
        assert_int_equal(mkv_cksum_from_header("x-amz-checksum-md5", 18, &alg), -ENOENT);
    }
}

static void test_base64_hex(void **state)
{
    /* RFC 4648 section 10 */
    static const char *const v[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                       {"foo", "Zm9v"},   {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                       {"foobar", "Zm9vYmFy"}};
    static const char *const bad[] = {"Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm9v=", "Zm=v",
                                      "Zm9v\n", "Zm 9", "=Zm9", NULL};
    char out[64];
    uint8_t bin[64];
    size_t n;
    (void)state;
    for (size_t i = 0; i < MKV_ARRAY_SIZE(v); i++) {
        assert_int_equal(mkv_base64_encode((const uint8_t *)v[i][0], strlen(v[i][0]), out,
                                           sizeof out),
                         strlen(v[i][1]));
        assert_string_equal(out, v[i][1]);
        assert_int_equal(mkv_base64_decode(v[i][1], strlen(v[i][1]), bin, sizeof bin, &n), 0);
        assert_int_equal(n, strlen(v[i][0]));
        assert_memory_equal(bin, v[i][0], n);
    }
    for (int i = 0; bad[i]; i++)
        assert_int_equal(mkv_base64_decode(bad[i], strlen(bad[i]), bin, sizeof bin, &n), -EINVAL);
    assert_int_equal(mkv_base64_decode("Zm9vYmFy", 8, bin, 5, &n), -ENOSPC);
    assert_int_equal(mkv_base64_encode((const uint8_t *)"foo", 3, out, 4), 0); /* no room for NUL */
    assert_int_equal(mkv_hex_decode("00fFa9", 6, bin), 0);
    assert_int_equal(bin[0], 0x00);
    assert_int_equal(bin[1], 0xff);
    assert_int_equal(bin[2], 0xa9);
    assert_int_equal(mkv_hex_decode("0g", 2, bin), -EINVAL);
    assert_int_equal(mkv_hex_decode("abc", 3, bin), -EINVAL);
}

/* Content-MD5 and x-amz-checksum-* against a streamed body. */
static enum mkv_s3_error body_check(const char *const *hdrs, const char *body, int streaming,
                                    struct mkv_body_check *bc)
{
    struct mkv_http_header h[8];
    struct mkv_http_req r = {0};
    enum mkv_s3_error e;
    unsigned n = 0;
    for (; hdrs[2 * n]; n++) h[n].name = hdrs[2 * n], h[n].value = hdrs[2 * n + 1];
    r.headers = h;
    r.nheaders = n;
    e = mkv_body_check_init(bc, &r, MKV_CKSUM_BIT(MKV_CKSUM_MD5), streaming);
    if (e) return e;
    for (size_t i = 0; body[i]; i++) mkv_body_check_update(bc, body + i, 1);
    e = mkv_body_check_finish(bc);
    return e;
}

static void test_body_check(void **state)
{
    struct mkv_body_check bc;
    uint8_t d[MKV_CKSUM_MAX], md5[16];
    char md5_b64[32], sha_b64[64], crc_b64[16];
    size_t n;
    (void)state;
    /* published digests of "abc" (RFC 1321, FIPS 180), base64 for the headers */
    assert_int_equal(mkv_hex_decode("900150983cd24fb0d6963f7d28e17f72", 32, md5), 0);
    mkv_base64_encode(md5, 16, md5_b64, sizeof md5_b64);
    assert_int_equal(mkv_hex_decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                                    64, d),
                     0);
    mkv_base64_encode(d, 32, sha_b64, sizeof sha_b64);
    mkv_put_be32(d, 0xCBF43926);
    mkv_base64_encode(d, 4, crc_b64, sizeof crc_b64);
    {
        const char *h[] = {"Content-MD5", md5_b64, NULL};
        assert_int_equal(body_check(h, "abc", 0, &bc), MKV_S3_OK);
        assert_int_equal(mkv_body_check_digest(&bc, MKV_CKSUM_MD5, d, &n), 0);
        assert_int_equal(n, 16);
        assert_memory_equal(d, md5, 16);
        assert_int_equal(mkv_body_check_digest(&bc, MKV_CKSUM_SHA1, d, &n), -ENOENT);
        mkv_body_check_free(&bc);
        assert_int_equal(body_check(h, "abd", 0, &bc), MKV_S3_BAD_DIGEST);
        mkv_body_check_free(&bc);
    }
    {
        const char *h[] = {"Content-MD5", "not base64!", NULL};
        assert_int_equal(body_check(h, "abc", 0, &bc), MKV_S3_INVALID_DIGEST);
        const char *h2[] = {"Content-MD5", "AAAA", NULL}; /* 3 bytes, not 16 */
        assert_int_equal(body_check(h2, "abc", 0, &bc), MKV_S3_INVALID_DIGEST);
    }
    {
        const char *h[] = {"x-amz-checksum-sha256", sha_b64, NULL};
        assert_int_equal(body_check(h, "abc", 0, &bc), MKV_S3_OK);
        mkv_body_check_free(&bc);
        assert_int_equal(body_check(h, "abcd", 0, &bc), MKV_S3_BAD_CHECKSUM);
        mkv_body_check_free(&bc);
    }
    {
        const char *h[] = {"x-amz-checksum-crc32", crc_b64, NULL};
        assert_int_equal(body_check(h, "123456789", 0, &bc), MKV_S3_OK);
        mkv_body_check_free(&bc);
        assert_int_equal(body_check(h, "12345678", 0, &bc), MKV_S3_BAD_CHECKSUM);
        mkv_body_check_free(&bc);
    }
    {
        const char *h[] = {"x-amz-checksum-crc32", crc_b64, "x-amz-checksum-sha256", sha_b64, NULL};
        assert_int_equal(body_check(h, "abc", 0, &bc), MKV_S3_INVALID_REQUEST);
        const char *h2[] = {"x-amz-checksum-crc32", "AAAAAAAA", NULL};
        assert_int_equal(body_check(h2, "abc", 0, &bc), MKV_S3_INVALID_REQUEST);
    }
    {
        /* x-amz-content-sha256 markers are not digests; garbage is refused */
        const char *h[] = {"x-amz-content-sha256", "UNSIGNED-PAYLOAD", NULL};
        assert_int_equal(body_check(h, "abc", 0, &bc), MKV_S3_OK);
        mkv_body_check_free(&bc);
        const char *h2[] = {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", NULL};
        assert_int_equal(body_check(h2, "abc", 1, &bc), MKV_S3_OK);
        mkv_body_check_free(&bc);
        const char *h3[] = {"x-amz-content-sha256", "nonsense", NULL};
        assert_int_equal(body_check(h3, "abc", 0, &bc), MKV_S3_INVALID_ARGUMENT);
        const char *h4[] = {"x-amz-content-sha256",
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", NULL};
        assert_int_equal(body_check(h4, "abc", 0, &bc), MKV_S3_OK);
        mkv_body_check_free(&bc);
        assert_int_equal(body_check(h4, "abx", 0, &bc), MKV_S3_CONTENT_SHA256_MISMATCH);
        mkv_body_check_free(&bc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_multipart), cmocka_unit_test(test_delete_entities),
        cmocka_unit_test(test_malformed),          cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_every_prefix),       cmocka_unit_test(test_digests),
        cmocka_unit_test(test_base64_hex),         cmocka_unit_test(test_body_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
