/* Fuzz target: the aws-chunked decoder. The first byte picks the mode and
 * how the rest is cut into pieces; the rest is the body. Signed modes use
 * AWS's published example key, date, scope and seed signature, so that
 * the fuzzer can reach the signature checks from the corpus. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth.h"
#include "chunked.h"

static int out_cb(void *arg, const uint8_t *p, size_t n)
{
    (void)p;
    *(size_t *)arg += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char secret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    static uint8_t key[32];
    static int have_key;
    struct mkv_chunked_params p = {0};
    struct mkv_chunked d;
    size_t got = 0, piece, off = 1;
    if (size < 1) return 0;
    if (!have_key) {
        mkv_sigv4_signing_key(secret, sizeof secret - 1, "20130524", "us-east-1", "s3", key);
        have_key = 1;
    }
    p.mode = (enum mkv_chunked_mode)(data[0] % 3);
    p.signing_key = key;
    p.amz_date = "20130524T000000Z";
    p.scope = "20130524/us-east-1/s3/aws4_request";
    p.seed_signature = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    p.decoded_length = (data[0] & 4) ? -1 : 66560;
    p.trailer = (data[0] & 8) ? "x-amz-checksum-crc32" : "x-amz-checksum-sha256, x-amz-meta-x";
    piece = 1 + (data[0] >> 4) * 37;
    if (mkv_chunked_init_params(&d, &p) != MKV_S3_OK) return 0;
    while (off < size) {
        size_t n = size - off < piece ? size - off : piece;
        if (mkv_chunked_feed(&d, data + off, n, out_cb, &got)) break;
        off += n;
    }
    if (mkv_chunked_finish(&d) == MKV_S3_OK)
        (void)mkv_chunked_trailer_value(&d, MKV_CKSUM_CRC32);
    mkv_chunked_free(&d);
    return 0;
}
