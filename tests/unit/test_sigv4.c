/* Unit tests: S3 request signatures (s3gw/auth.h).
 *
 * The expected values are AWS's published examples, nothing computed here:
 *  - "Signature Calculations for the Authorization Header: Transferring
 *    Payload in a Single Chunk" (S3 API reference, sig-v4-header-based-auth):
 *    GET Object with Range, PUT Object, GET Bucket Lifecycle, GET Bucket
 *    (List Objects); secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,
 *    us-east-1, 20130524T000000Z.
 *  - "Authenticating Requests: Using Query Parameters" (presigned GET).
 *  - "Transferring Payload in Multiple Chunks" (the seed signature of the
 *    chunked PUT; its chunk signatures are in test_chunked.c).
 *  - "Signing and Authenticating REST Requests" (SigV2, S3 developer guide,
 *    the johnsmith examples).
 * Negative cases tamper with those requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "checksum.h"
#include "http.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define AKID "AKIAIOSFODNN7EXAMPLE"
#define T20130524 1369353600 /* 2013-05-24T00:00:00Z */
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct treq
{
    struct mkv_http_req r;
    struct mkv_http_header h[32];
};

/* hdrs: name, value, name, value, ..., NULL */
static void mkreq(struct treq *t, const char *method, const char *raw_path, const char *query,
                  const char *const *hdrs)
{
    unsigned n = 0;
    memset(t, 0, sizeof *t);
    t->r.method = method;
    t->r.raw_path = raw_path;
    t->r.path = raw_path;
    t->r.query = query ? query : "";
    for (; hdrs && hdrs[2 * n]; n++) {
        t->h[n].name = hdrs[2 * n];
        t->h[n].value = hdrs[2 * n + 1];
    }
    t->r.headers = t->h;
    t->r.nheaders = n;
}

static enum mkv_s3_error check(struct treq *t, int64_t now, const char *v2_bucket,
                               const char *secret, struct mkv_auth *a)
{
    struct mkv_auth_opts o = {.now = now, .v2_bucket = v2_bucket};
    enum mkv_s3_error e = mkv_auth_parse(&t->r, &o, a);
    if (e) return e;
    return mkv_auth_verify(a, &t->r, &o, secret, strlen(secret));
}

/* SigV4, header-based */

#define GET_OBJECT_AUTH                                                                         \
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"      \
    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"                                 \
    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"

static void get_object_req(struct treq *t, const char *auth, const char *range)
{
    static const char *h[12];
    const char *hv[] = {"Host", "examplebucket.s3.amazonaws.com", "Range", range,
                        "x-amz-content-sha256", EMPTY_SHA, "x-amz-date", "20130524T000000Z",
                        "Authorization", auth, NULL};
    memcpy(h, hv, sizeof hv);
    mkreq(t, "GET", "/test.txt", "", h);
}

static void test_v4_get_object(void **state)
{
    struct treq t;
    struct mkv_auth a;
    struct mkv_buf b = MKV_BUF_INIT;
    (void)state;
    get_object_req(&t, GET_OBJECT_AUTH, "bytes=0-9");
    /* the published canonical request and string to sign */
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
    assert_int_equal(a.kind, MKV_AUTH_V4_HEADER);
    assert_string_equal(a.access_key, AKID);
    assert_string_equal(a.scope, "20130524/us-east-1/s3/aws4_request");
    assert_int_equal(a.payload, MKV_PAYLOAD_SHA256);
    assert_int_equal(mkv_sigv4_canonical_request(&t.r, &a, &b), 0);
    assert_string_equal((char *)b.p, "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
                                     "range:bytes=0-9\nx-amz-content-sha256:" EMPTY_SHA "\n"
                                     "x-amz-date:20130524T000000Z\n\n"
                                     "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA);
    mkv_buf_reset(&b);
    assert_int_equal(mkv_sigv4_string_to_sign(&t.r, &a, &b), 0);
    assert_string_equal((char *)b.p,
                        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    mkv_buf_free(&b);

    /* tampered header: the range the client signed is not the one received */
    get_object_req(&t, GET_OBJECT_AUTH, "bytes=0-99");
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_SIGNATURE_MISMATCH);
    /* other secret */
    get_object_req(&t, GET_OBJECT_AUTH, "bytes=0-9");
    assert_int_equal(check(&t, T20130524, NULL, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ", &a),
                     MKV_S3_SIGNATURE_MISMATCH);
    /* whitespace around the Authorization components is accepted */
    get_object_req(&t,
                   "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                   "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                   "Signature=F0E8BDB87C964420E857BD35B5D6ED310BD44F0170ABA48DD91039C6036BDB41",
                   "bytes=0-9");
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
}

static void test_v4_clock_skew(void **state)
{
    struct treq t;
    struct mkv_auth a;
    (void)state;
    get_object_req(&t, GET_OBJECT_AUTH, "bytes=0-9");
    assert_int_equal(check(&t, T20130524 + 14 * 60, NULL, SECRET, &a), MKV_S3_OK);
    assert_int_equal(check(&t, T20130524 - 14 * 60, NULL, SECRET, &a), MKV_S3_OK);
    assert_int_equal(check(&t, T20130524 + 16 * 60, NULL, SECRET, &a),
                     MKV_S3_REQUEST_TIME_TOO_SKEWED);
    assert_int_equal(check(&t, T20130524 - 16 * 60, NULL, SECRET, &a),
                     MKV_S3_REQUEST_TIME_TOO_SKEWED);
}

static void test_v4_put_object(void **state)
{
    const char *auth =
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
    const char *sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", "Date",
                       "Fri, 24 May 2013 00:00:00 GMT", "x-amz-date", "20130524T000000Z",
                       "x-amz-storage-class", "REDUCED_REDUNDANCY", "x-amz-content-sha256", sha,
                       "Authorization", auth, NULL};
    static const char body[] = "Welcome to Amazon S3.";
    struct treq t;
    struct mkv_auth a;
    struct mkv_body_check bc;
    (void)state;
    /* the key as the example sends it, and percent-encoded: one canonical URI */
    mkreq(&t, "PUT", "/test$file.text", "", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
    mkreq(&t, "PUT", "/test%24file.text", "", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
    assert_int_equal(a.payload, MKV_PAYLOAD_SHA256);

    /* the payload hash is checked against the body */
    assert_int_equal(mkv_body_check_init(&bc, &t.r, 0, 0), MKV_S3_OK);
    mkv_body_check_update(&bc, body, 10);
    mkv_body_check_update(&bc, body + 10, sizeof body - 1 - 10);
    assert_int_equal(mkv_body_check_finish(&bc), MKV_S3_OK);
    mkv_body_check_free(&bc);
    assert_int_equal(mkv_body_check_init(&bc, &t.r, 0, 0), MKV_S3_OK);
    mkv_body_check_update(&bc, "Welcome to Amazon S4.", sizeof body - 1);
    assert_int_equal(mkv_body_check_finish(&bc), MKV_S3_CONTENT_SHA256_MISMATCH);
    mkv_body_check_free(&bc);
}

static void test_v4_get_lifecycle(void **state)
{
    const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", "x-amz-date",
                       "20130524T000000Z", "x-amz-content-sha256", EMPTY_SHA, "Authorization",
                       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                       "aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                       "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
                       NULL};
    struct treq t;
    struct mkv_auth a;
    (void)state;
    mkreq(&t, "GET", "/", "lifecycle", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
    mkreq(&t, "GET", "/", "lifecycle=", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
    mkreq(&t, "GET", "/", "acl", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_SIGNATURE_MISMATCH);
}

static void test_v4_list_objects(void **state)
{
    const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", "x-amz-date",
                       "20130524T000000Z", "x-amz-content-sha256", EMPTY_SHA, "Authorization",
                       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                       "aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                       "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
                       NULL};
    struct treq t;
    struct mkv_auth a;
    struct mkv_buf b = MKV_BUF_INIT;
    (void)state;
    mkreq(&t, "GET", "/", "max-keys=2&prefix=J", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
    /* the canonical query is sorted whatever the order received */
    mkreq(&t, "GET", "/", "prefix=J&max-keys=2", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
    assert_int_equal(mkv_sigv4_string_to_sign(&t.r, &a, &b), 0);
    assert_string_equal((char *)b.p,
                        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
    mkv_buf_free(&b);
    mkreq(&t, "GET", "/", "max-keys=3&prefix=J", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_SIGNATURE_MISMATCH);
}

/* SigV4, presigned */

#define PRESIGNED_Q                                                                        \
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F" \
    "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"       \
    "X-Amz-SignedHeaders=host&X-Amz-Signature="                                            \
    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"

static void test_v4_presigned(void **state)
{
    const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", NULL};
    struct treq t;
    struct mkv_auth a;
    (void)state;
    mkreq(&t, "GET", "/test.txt", PRESIGNED_Q, h);
    assert_int_equal(check(&t, T20130524 + 3600, NULL, SECRET, &a), MKV_S3_OK);
    assert_int_equal(a.kind, MKV_AUTH_V4_QUERY);
    assert_int_equal(a.payload, MKV_PAYLOAD_UNSIGNED);
    assert_int_equal(a.expires, T20130524 + 86400);
    /* expired: AWS answers AccessDenied "Request has expired" */
    assert_int_equal(check(&t, T20130524 + 86401, NULL, SECRET, &a), MKV_S3_ACCESS_DENIED);
    assert_string_equal(a.msg, "Request has expired");
    /* not valid yet */
    assert_int_equal(check(&t, T20130524 - 3600, NULL, SECRET, &a), MKV_S3_ACCESS_DENIED);
    /* another object, another method: tampered */
    mkreq(&t, "GET", "/test.txu", PRESIGNED_Q, h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_SIGNATURE_MISMATCH);
    mkreq(&t, "PUT", "/test.txt", PRESIGNED_Q, h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_SIGNATURE_MISMATCH);
    /* an added parameter is part of the canonical query */
    mkreq(&t, "GET", "/test.txt", PRESIGNED_Q "&acl", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_SIGNATURE_MISMATCH);
    /* more than 7 days */
    mkreq(&t, "GET", "/test.txt",
          "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
          "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=604801&"
          "X-Amz-SignedHeaders=host&X-Amz-Signature="
          "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
          h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_AUTH_QUERY_MALFORMED);
    /* parameters missing */
    mkreq(&t, "GET", "/test.txt",
          "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20130524T000000Z&X-Amz-Expires=60", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_AUTH_QUERY_MALFORMED);
    mkreq(&t, "GET", "/test.txt",
          "X-Amz-Algorithm=AWS4-HMAC-SHA1&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
          "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=60&"
          "X-Amz-SignedHeaders=host&X-Amz-Signature=00",
          h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_AUTH_QUERY_MALFORMED);
}

/* The seed request of the chunked upload example. */
static void test_v4_streaming_seed(void **state)
{
    const char *h[] = {
        "Host", "s3.amazonaws.com", "x-amz-date", "20130524T000000Z", "x-amz-storage-class",
        "REDUCED_REDUNDANCY", "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "Content-Encoding", "aws-chunked", "x-amz-decoded-content-length", "66560",
        "Content-Length", "66824", "Authorization",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class,"
        "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        NULL};
    struct treq t;
    struct mkv_auth a;
    uint8_t key[32];
    (void)state;
    mkreq(&t, "PUT", "/examplebucket/chunkObject.txt", "", h);
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
    assert_int_equal(a.payload, MKV_PAYLOAD_STREAMING_SIGNED);
    /* what the chunk decoder needs */
    assert_string_equal(a.signature,
                        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    assert_string_equal(a.amz_date, "20130524T000000Z");
    assert_string_equal(a.scope, "20130524/us-east-1/s3/aws4_request");
    assert_int_equal(mkv_sigv4_signing_key(SECRET, strlen(SECRET), "20130524", "us-east-1", "s3",
                                           key),
                     0);
    assert_memory_equal(key, a.signing_key, 32);
}

/* Malformed and refused SigV4 requests. */
static void test_v4_malformed(void **state)
{
    struct treq t;
    struct mkv_auth a;
    struct mkv_auth_opts eu = {.now = T20130524, .region = "eu-west-1"};
    const char *bad[] = {
        /* no Signature */
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date",
        /* Credential with four parts */
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=" EMPTY_SHA,
        /* signature not hex */
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=xyz",
        /* host not signed */
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=range;x-amz-content-sha256;x-amz-date,Signature=" EMPTY_SHA,
        /* credential date is not the request date */
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130525/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=" EMPTY_SHA,
        /* another service */
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/ec2/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=" EMPTY_SHA,
        /* repeated component */
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host,Signature=" EMPTY_SHA,
        /* garbage */
        "AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256 ,,,===", "AWS4-HMAC-SHA256 Credential",
        NULL};
    (void)state;
    for (int i = 0; bad[i]; i++) {
        get_object_req(&t, bad[i], "bytes=0-9");
        assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_AUTH_HEADER_MALFORMED);
    }
    /* unknown schemes */
    get_object_req(&t, "AWS4-HMAC-SHA512 Credential=x", "bytes=0-9");
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_INVALID_ARGUMENT);
    get_object_req(&t, "Bearer abc", "bytes=0-9");
    assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_INVALID_ARGUMENT);
    /* the wrong region when one is configured */
    get_object_req(&t, GET_OBJECT_AUTH, "bytes=0-9");
    assert_int_equal(mkv_auth_parse(&t.r, &eu, &a), MKV_S3_AUTH_HEADER_MALFORMED);
    /* an x-amz-* header that is not signed */
    {
        const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", "Range", "bytes=0-9",
                           "x-amz-content-sha256", EMPTY_SHA, "x-amz-date", "20130524T000000Z",
                           "X-Amz-Meta-Color", "blue", "Authorization", GET_OBJECT_AUTH, NULL};
        mkreq(&t, "GET", "/test.txt", "", h);
        assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_ACCESS_DENIED);
    }
    /* no x-amz-content-sha256 */
    {
        const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", "Range", "bytes=0-9",
                           "x-amz-date", "20130524T000000Z", "Authorization", GET_OBJECT_AUTH,
                           NULL};
        mkreq(&t, "GET", "/test.txt", "", h);
        assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_INVALID_REQUEST);
    }
    /* no date at all */
    {
        const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", "Range", "bytes=0-9",
                           "x-amz-content-sha256", EMPTY_SHA, "Authorization", GET_OBJECT_AUTH,
                           NULL};
        mkreq(&t, "GET", "/test.txt", "", h);
        assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_ACCESS_DENIED);
    }
    /* header and query authentication together */
    {
        const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", "Authorization",
                           GET_OBJECT_AUTH, NULL};
        mkreq(&t, "GET", "/test.txt", PRESIGNED_Q, h);
        assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_INVALID_ARGUMENT);
    }
    /* anonymous */
    {
        const char *h[] = {"Host", "examplebucket.s3.amazonaws.com", NULL};
        mkreq(&t, "GET", "/test.txt", "", h);
        assert_int_equal(check(&t, T20130524, NULL, SECRET, &a), MKV_S3_OK);
        assert_int_equal(a.kind, MKV_AUTH_ANON);
    }
}

/* SigV2: the johnsmith examples of the S3 developer guide. */

struct v2case
{
    const char *method, *path, *query, *bucket;
    const char *hdrs[32];
};

static void v2_check(const struct v2case *c, const char *date_for_now, enum mkv_s3_error want)
{
    struct treq t;
    struct mkv_auth a;
    int64_t now;
    assert_int_equal(mkv_auth_parse_http_date(date_for_now, &now), 0);
    mkreq(&t, c->method, c->path, c->query, c->hdrs);
    assert_int_equal(check(&t, now, c->bucket, SECRET, &a), want);
}

static void test_v2_examples(void **state)
{
    static const struct v2case get = {
        "GET", "/photos/puppy.jpg", "", "johnsmith",
        {"Host", "johnsmith.s3.amazonaws.com", "Date", "Tue, 27 Mar 2007 19:36:42 +0000",
         "Authorization", "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=", NULL}};
    static const struct v2case put = {
        "PUT", "/photos/puppy.jpg", "", "johnsmith",
        {"Content-Type", "image/jpeg", "Content-Length", "94328", "Host",
         "johnsmith.s3.amazonaws.com", "Date", "Tue, 27 Mar 2007 21:15:45 +0000", "Authorization",
         "AWS AKIAIOSFODNN7EXAMPLE:MyyxeRY7whkBe+bq8fHCL/2kKUg=", NULL}};
    static const struct v2case list = {
        "GET", "/", "prefix=photos&max-keys=50&marker=puppy", "johnsmith",
        {"User-Agent", "Mozilla/5.0", "Host", "johnsmith.s3.amazonaws.com", "Date",
         "Tue, 27 Mar 2007 19:42:41 +0000", "Authorization",
         "AWS AKIAIOSFODNN7EXAMPLE:htDYFYduRNen8P9ZfE/s9SuKy0U=", NULL}};
    static const struct v2case fetch = {
        "GET", "/", "acl", "johnsmith",
        {"Host", "johnsmith.s3.amazonaws.com", "Date", "Tue, 27 Mar 2007 19:44:46 +0000",
         "Authorization", "AWS AKIAIOSFODNN7EXAMPLE:c2WLPFtWHVgbEmeEG93a4cG37dM=", NULL}};
    static const struct v2case upload = {
        "PUT", "/db-backup.dat.gz", "", "static.johnsmith.net",
        {"User-Agent", "curl/7.15.5", "Host", "static.johnsmith.net:8080", "Date",
         "Tue, 27 Mar 2007 21:06:08 +0000", "x-amz-acl", "public-read", "content-type",
         "application/x-download", "Content-MD5", "4gJE4saaMU4BqNR0kLY+lw==",
         "X-Amz-Meta-ReviewedBy", "joe@johnsmith.net", "X-Amz-Meta-ReviewedBy",
         "jane@johnsmith.net", "X-Amz-Meta-FileChecksum", "0x02661779",
         "X-Amz-Meta-ChecksumAlgorithm", "crc32", "Content-Disposition",
         "attachment; filename=database.dat", "Content-Encoding", "gzip", "Content-Length",
         "5913339", "Authorization", "AWS AKIAIOSFODNN7EXAMPLE:ilyl83RwaSoYIEdixDQcA4OnAnc=",
         NULL}};
    static const struct v2case all = {
        "GET", "/", "", NULL,
        {"Host", "s3.amazonaws.com", "Date", "Wed, 28 Mar 2007 01:29:59 +0000", "Authorization",
         "AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=", NULL}};
    static const struct v2case unicode = {
        "GET", "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re", "", NULL,
        {"Host", "s3.amazonaws.com", "Date", "Wed, 28 Mar 2007 01:49:49 +0000", "Authorization",
         "AWS AKIAIOSFODNN7EXAMPLE:DNEZGsoieTZ92F3bUfSPQcbGmlM=", NULL}};
    /* The guide's DELETE example is left out: its StringToSign puts the
     * x-amz-date value in the Date position and omits the x-amz-date
     * header, contradicting the guide's own rules for x-amz-date. */
    (void)state;
    v2_check(&get, "Tue, 27 Mar 2007 19:36:42 +0000", MKV_S3_OK);
    v2_check(&put, "Tue, 27 Mar 2007 21:15:45 +0000", MKV_S3_OK);
    v2_check(&list, "Tue, 27 Mar 2007 19:42:41 +0000", MKV_S3_OK);
    v2_check(&fetch, "Tue, 27 Mar 2007 19:44:46 +0000", MKV_S3_OK);
    v2_check(&upload, "Tue, 27 Mar 2007 21:06:08 +0000", MKV_S3_OK);
    v2_check(&all, "Wed, 28 Mar 2007 01:29:59 +0000", MKV_S3_OK);
    v2_check(&unicode, "Wed, 28 Mar 2007 01:49:49 +0000", MKV_S3_OK);
    /* skew */
    v2_check(&get, "Tue, 27 Mar 2007 19:52:42 +0000", MKV_S3_REQUEST_TIME_TOO_SKEWED);
    /* path-style for the virtual-hosted request: another resource */
    {
        struct v2case pathstyle = get;
        pathstyle.bucket = NULL;
        v2_check(&pathstyle, "Tue, 27 Mar 2007 19:36:42 +0000", MKV_S3_SIGNATURE_MISMATCH);
    }
    /* tampered Content-Type */
    {
        struct v2case t = put;
        t.hdrs[1] = "image/png";
        v2_check(&t, "Tue, 27 Mar 2007 21:15:45 +0000", MKV_S3_SIGNATURE_MISMATCH);
    }
}

static void test_v2_query(void **state)
{
    static const struct v2case q = {
        "GET", "/photos/puppy.jpg",
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&"
        "Expires=1175139620",
        "johnsmith",
        {"Host", "johnsmith.s3.amazonaws.com", NULL}};
    struct treq t;
    struct mkv_auth a;
    (void)state;
    mkreq(&t, q.method, q.path, q.query, q.hdrs);
    assert_int_equal(check(&t, 1175139620 - 60, "johnsmith", SECRET, &a), MKV_S3_OK);
    assert_int_equal(a.kind, MKV_AUTH_V2_QUERY);
    assert_string_equal(a.access_key, AKID);
    assert_int_equal(check(&t, 1175139620 + 1, "johnsmith", SECRET, &a), MKV_S3_ACCESS_DENIED);
    assert_string_equal(a.msg, "Request has expired");
    mkreq(&t, "GET", "/photos/puppy.png", q.query, q.hdrs);
    assert_int_equal(check(&t, 1175139620 - 60, "johnsmith", SECRET, &a),
                     MKV_S3_SIGNATURE_MISMATCH);
    mkreq(&t, "GET", "/photos/puppy.jpg",
          "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D",
          q.hdrs);
    assert_int_equal(check(&t, 1175139620 - 60, "johnsmith", SECRET, &a), MKV_S3_ACCESS_DENIED);
}

static void test_v2_malformed(void **state)
{
    const char *auths[] = {"AWS AKIAIOSFODNN7EXAMPLE", "AWS :sig", "AWS AKID:", "AWS AKID:s!g",
                           NULL};
    struct treq t;
    struct mkv_auth a;
    (void)state;
    for (int i = 0; auths[i]; i++) {
        const char *h[] = {"Date", "Tue, 27 Mar 2007 19:36:42 +0000", "Authorization", auths[i],
                           NULL};
        mkreq(&t, "GET", "/", "", h);
        assert_int_equal(check(&t, 1175024202, NULL, SECRET, &a), MKV_S3_INVALID_ARGUMENT);
    }
    {
        const char *h[] = {"Date", "yesterday", "Authorization", "AWS AKID:abcd", NULL};
        mkreq(&t, "GET", "/", "", h);
        assert_int_equal(check(&t, 1175024202, NULL, SECRET, &a), MKV_S3_ACCESS_DENIED);
    }
}

static void test_dates(void **state)
{
    int64_t a, b;
    (void)state;
    assert_int_equal(mkv_auth_parse_iso8601("20130524T000000Z", &a), 0);
    assert_int_equal(a, T20130524);
    assert_int_equal(mkv_auth_parse_http_date("Fri, 24 May 2013 00:00:00 GMT", &b), 0);
    assert_int_equal(b, T20130524);
    assert_int_equal(mkv_auth_parse_http_date("Friday, 24-May-13 00:00:00 GMT", &b), 0);
    assert_int_equal(b, T20130524);
    assert_int_equal(mkv_auth_parse_http_date("Fri May 24 00:00:00 2013", &b), 0);
    assert_int_equal(b, T20130524);
    assert_int_equal(mkv_auth_parse_http_date("Fri, 24 May 2013 02:00:00 +0200", &b), 0);
    assert_int_equal(b, T20130524);
    assert_int_equal(mkv_auth_parse_iso8601("20130532T000000Z", &a), -EINVAL);
    assert_int_equal(mkv_auth_parse_iso8601("20130524T000000", &a), -EINVAL);
    assert_int_equal(mkv_auth_parse_iso8601("2013052xT000000Z", &a), -EINVAL);
    assert_int_equal(mkv_auth_parse_http_date("Fri, 31 Feb 2013 00:00:00 GMT", &b), -EINVAL);
    assert_int_equal(mkv_auth_parse_http_date("Fri, 24 Foo 2013 00:00:00 GMT", &b), -EINVAL);
    assert_int_equal(mkv_auth_parse_http_date("", &b), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4_get_object),    cmocka_unit_test(test_v4_clock_skew),
        cmocka_unit_test(test_v4_put_object),    cmocka_unit_test(test_v4_get_lifecycle),
        cmocka_unit_test(test_v4_list_objects),  cmocka_unit_test(test_v4_presigned),
        cmocka_unit_test(test_v4_streaming_seed), cmocka_unit_test(test_v4_malformed),
        cmocka_unit_test(test_v2_examples),      cmocka_unit_test(test_v2_query),
        cmocka_unit_test(test_v2_malformed),     cmocka_unit_test(test_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
