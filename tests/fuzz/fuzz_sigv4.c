/* Fuzz target: S3 request authentication. The input is a request:
 *   <method>\n<target>\n<name>: <value>\n ...
 * It is parsed (SigV4 header and query, SigV2 header and query), and when
 * that succeeds verified against a fixed secret; the canonical request,
 * the string to sign and the SigV2 string to sign are built; the date
 * parsers and the aws-chunked decoder set-up see it too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "chunked.h"
#include "http.h"

#define MAXH 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), *line, *save = NULL, *target, *q;
    struct mkv_http_header h[MAXH];
    struct mkv_http_req r = {0};
    struct mkv_auth a;
    struct mkv_auth_opts o = {.now = 1369353600, .v2_bucket = "bucket"};
    struct mkv_buf b = MKV_BUF_INIT;
    unsigned n = 0;
    int64_t t;
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (strlen(s) != size) goto out; /* headers are C strings */
    r.method = strtok_r(s, "\n", &save);
    target = strtok_r(NULL, "\n", &save);
    if (!r.method || !target) goto out;
    q = strchr(target, '?');
    if (q) *q++ = '\0';
    r.raw_path = r.path = target;
    r.query = q ? q : "";
    while (n < MAXH && (line = strtok_r(NULL, "\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = '\0';
        h[n].name = line;
        h[n].value = colon + 1 + (colon[1] == ' ');
        (void)mkv_auth_parse_http_date(h[n].value, &t);
        (void)mkv_auth_parse_iso8601(h[n].value, &t);
        n++;
    }
    r.headers = h;
    r.nheaders = n;
    {
        char v[64];
        (void)mkv_http_query(&r, "X-Amz-Date", v, sizeof v);
    }
    if (mkv_auth_parse(&r, &o, &a) == MKV_S3_OK && a.kind != MKV_AUTH_ANON) {
        (void)mkv_sigv4_canonical_request(&r, &a, &b);
        mkv_buf_reset(&b);
        (void)mkv_sigv2_string_to_sign(&r, &a, "bucket", &b);
        if (mkv_auth_verify(&a, &r, &o, "secret", 6) == MKV_S3_OK ||
            a.kind == MKV_AUTH_V4_HEADER) {
            struct mkv_chunked d;
            if (mkv_chunked_init(&d, &r, &a) == MKV_S3_OK) {
                (void)mkv_chunked_feed(&d, "0\r\n\r\n", 5, NULL, NULL);
                (void)mkv_chunked_finish(&d);
                mkv_chunked_free(&d);
            }
        }
    }
    /* canonicalisation of whatever came, as if signed with everything */
    memset(&a, 0, sizeof a);
    a.kind = MKV_AUTH_V4_HEADER;
    strcpy(a.signed_headers, "host;x-amz-date");
    strcpy(a.amz_date, "20130524T000000Z");
    strcpy(a.scope, "20130524/us-east-1/s3/aws4_request");
    mkv_buf_reset(&b);
    (void)mkv_sigv4_string_to_sign(&r, &a, &b);
out:
    mkv_buf_free(&b);
    free(s);
    return 0;
}
