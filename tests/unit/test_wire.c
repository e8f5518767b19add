/* Unit tests: the wire codec (frames, messages, record lists, bounds). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "minikv/crc32c.h"
#include "minikv/wire.h"

static void crc32c_known_vectors(void **state)
{
    (void)state;
    /* RFC 3720 B.4 and the common "123456789" check value. */
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    assert_int_equal(mkv_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(mkv_crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(mkv_crc32c(0, ones, 32), 0x62A8AB43u);
    /* Incremental equals one-shot. */
    assert_int_equal(mkv_crc32c(mkv_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    /* IEEE CRC32 check value. */
    assert_int_equal(mkv_crc32(0, "123456789", 9), 0xCBF43926u);
}

static void message_round_trip(void **state)
{
    (void)state;
    uint8_t buf[256], data[100];
    size_t len;
    struct mkv_chunk_write_req in = {0}, out;
    for (unsigned i = 0; i < sizeof data; i++) data[i] = (uint8_t)i;
    in.chunk_id = 0x1122334455667788ull;
    in.version = 7;
    in.base_version = 6;
    in.offset = 65536;
    in.flags = MKV_CHUNK_SYNC;
    in.data = mkv_slice_mem(data, sizeof data);
    in.vepoch = 9;
    assert_int_equal(mkv_msg_size(&mkv_desc_chunk_write_req, &in), 8 + 4 + 4 + 8 + 4 + 8 + 4 + 100);
    assert_int_equal(mkv_msg_encode(&mkv_desc_chunk_write_req, &in, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 140);
    assert_int_equal(mkv_msg_decode(&mkv_desc_chunk_write_req, buf, len, &out), 0);
    assert_true(out.chunk_id == in.chunk_id);
    assert_int_equal(out.version, 7);
    assert_int_equal(out.base_version, 6);
    assert_true(out.offset == 65536);
    assert_int_equal(out.data.len, 100);
    assert_memory_equal(out.data.p, data, 100);
    assert_true(out.vepoch == 9);
    assert_ptr_equal(out.data.p, buf + 40); /* zero-copy: points into the frame */
}

static void decode_rejects_truncation_everywhere(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t len;
    struct mkv_obj_put_req in = {0}, out;
    in.bucket = mkv_slice_str("photos");
    in.key = mkv_slice_str("2024/a.jpg");
    in.etag = mkv_slice_str("\"abc\"");
    in.size = 42;
    assert_int_equal(mkv_msg_encode(&mkv_desc_obj_put_req, &in, buf, sizeof buf, &len), 0);
    assert_int_equal(mkv_msg_decode(&mkv_desc_obj_put_req, buf, len, &out), 0);
    assert_true(mkv_slice_eq(out.key, "2024/a.jpg"));
    /* Every strict prefix is refused. */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(mkv_msg_decode(&mkv_desc_obj_put_req, buf, cut, &out), -EPROTO);
    /* Trailing bytes (fields a newer peer appended) are ignored. */
    buf[len] = 0xAA;
    assert_int_equal(mkv_msg_decode(&mkv_desc_obj_put_req, buf, len + 1, &out), 0);
}

static void bounds_are_enforced(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len;
    char big[MKV_BUCKET_MAX + 2];
    struct mkv_bucket_create_req in = {0}, out;
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    in.name = mkv_slice_str(big);
    /* The encoder refuses a field over its bound... */
    assert_int_equal(mkv_msg_encode(&mkv_desc_bucket_create_req, &in, buf, sizeof buf, &len),
                     -EINVAL);
    /* ... and so does the decoder when a peer sends one anyway. */
    mkv_put_le16(buf, (uint16_t)(sizeof big - 1));
    memcpy(buf + 2, big, sizeof big - 1);
    memset(buf + 2 + sizeof big - 1, 0, 8);
    assert_int_equal(mkv_msg_decode(&mkv_desc_bucket_create_req, buf, 2 + sizeof big - 1 + 8, &out),
                     -EPROTO);
    /* A length field larger than the payload is refused. */
    mkv_put_le16(buf, 60);
    assert_int_equal(mkv_msg_decode(&mkv_desc_bucket_create_req, buf, 10, &out), -EPROTO);
    /* A NUL inside a string is refused both ways. */
    in.name = mkv_slice_mem("ab\0c", 4);
    assert_int_equal(mkv_msg_encode(&mkv_desc_bucket_create_req, &in, buf, sizeof buf, &len),
                     -EINVAL);
    mkv_put_le16(buf, 4);
    memcpy(buf + 2, "ab\0c", 4);
    memset(buf + 6, 0, 8);
    assert_int_equal(mkv_msg_decode(&mkv_desc_bucket_create_req, buf, 14, &out), -EPROTO);
    /* A buffer too small to encode into is reported, not overrun. */
    in.name = mkv_slice_str("abc");
    assert_int_equal(mkv_msg_encode(&mkv_desc_bucket_create_req, &in, buf, 4, &len), -ENOSPC);
}

static void record_lists(void **state)
{
    (void)state;
    struct mkv_buf b = MKV_BUF_INIT;
    struct mkv_slice cur;
    struct mkv_extent e = {0};
    int n = 0, rv;
    for (int i = 0; i < 5; i++) {
        e.file_off = (uint64_t)i * MKV_CHUNK_SIZE;
        e.len = MKV_CHUNK_SIZE;
        e.chunk_id = 100u + (unsigned)i;
        e.version = 1;
        assert_int_equal(mkv_msg_append(&b, &mkv_desc_extent, &e), 0);
    }
    assert_int_equal(b.len, 5 * 40);
    cur = mkv_slice_mem(b.p, b.len);
    while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1) {
        assert_true(e.chunk_id == 100u + (unsigned)n);
        n++;
    }
    assert_int_equal(rv, 0);
    assert_int_equal(n, 5);
    /* A list cut inside a record is an error, not a short list. */
    cur = mkv_slice_mem(b.p, b.len - 3);
    n = 0;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1) n++;
    assert_int_equal(rv, -EPROTO);
    assert_int_equal(n, 4);
    mkv_buf_free(&b);
}

static void frame_header(void **state)
{
    (void)state;
    uint8_t hdr[MKV_FRAME_HDR_SIZE], payload[] = "hello";
    struct mkv_frame_hdr h = {0}, d;
    h.flags = MKV_FRAME_REPLY;
    h.type = MKV_MSG_CHUNK_READ;
    h.status = -5;
    h.length = 5;
    h.req_id = 99;
    mkv_frame_hdr_encode(&h, payload, hdr);
    assert_int_equal(hdr[0], 'M');
    assert_int_equal(hdr[1], 'K');
    assert_int_equal(mkv_frame_hdr_decode(hdr, &d), 0);
    assert_int_equal(d.type, MKV_MSG_CHUNK_READ);
    assert_int_equal(d.status, -5);
    assert_int_equal(d.length, 5);
    assert_true(d.req_id == 99);
    assert_int_equal(mkv_frame_check(hdr, &d, payload), 0);
    payload[2] ^= 1; /* a flipped bit in the payload */
    assert_int_equal(mkv_frame_check(hdr, &d, payload), -EBADMSG);
    payload[2] ^= 1;
    hdr[17] ^= 1; /* and in the header */
    assert_int_equal(mkv_frame_hdr_decode(hdr, &d), 0);
    assert_int_equal(mkv_frame_check(hdr, &d, payload), -EBADMSG);
    /* Oversized length and wrong magic are refused before any allocation. */
    mkv_put_le32(hdr + 12, MKV_FRAME_MAX + 1);
    assert_int_equal(mkv_frame_hdr_decode(hdr, &d), -EPROTO);
    hdr[0] = 'X';
    assert_int_equal(mkv_frame_hdr_decode(hdr, &d), -EPROTO);
}

static void catalogue_lookup(void **state)
{
    (void)state;
    assert_ptr_equal(mkv_msg_request_desc(MKV_MSG_CHUNK_WRITE), &mkv_desc_chunk_write_req);
    assert_ptr_equal(mkv_msg_reply_desc(MKV_MSG_CHUNK_WRITE), &mkv_desc_chunk_write_rep);
    assert_ptr_equal(mkv_msg_reply_desc(MKV_MSG_OBJ_LOOKUP), &mkv_desc_obj_info);
    assert_null(mkv_msg_request_desc(0x7777));
    assert_string_equal(mkv_msg_name(MKV_MSG_OBJ_PUT), "OBJ_PUT");
}


/* The interleaved hardware path agrees with a bitwise reference at every
 * length and alignment, including the stream boundaries (3 x 8192 and
 * 3 x 256 bytes), and when a buffer is fed in pieces. */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void crc32c_matches_reference(void **state)
{
    enum { N = 3 * 8192 * 3 + 1000 };
    static const size_t edges[] = {0, 1, 7, 8, 255, 256, 767, 768, 769, 24575, 24576, 24577,
                                   49152, 49153, 65536, N - 64};
    uint8_t *b = malloc(N + 64);
    uint64_t x = 88172645463325252ull;
    (void)state;
    for (size_t i = 0; i < N + 64; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (uint8_t)x;
    }
    for (size_t e = 0; e < MKV_ARRAY_SIZE(edges); e++)
        for (size_t off = 0; off < 9; off++)
            assert_int_equal(mkv_crc32c(0x1234567u, b + off, edges[e]),
                             crc32c_bitwise(0x1234567u, b + off, edges[e]));
    for (int t = 0; t < 300; t++) {
        size_t off, len, cut;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        off = x % 64;
        len = (x >> 8) % (N - 64);
        cut = len ? (x >> 32) % len : 0;
        assert_int_equal(mkv_crc32c(0, b + off, len), crc32c_bitwise(0, b + off, len));
        assert_int_equal(mkv_crc32c(mkv_crc32c(0, b + off, cut), b + off + cut, len - cut),
                         crc32c_bitwise(0, b + off, len));
    }
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_known_vectors),
        cmocka_unit_test(crc32c_matches_reference),
        cmocka_unit_test(message_round_trip),
        cmocka_unit_test(decode_rejects_truncation_everywhere),
        cmocka_unit_test(bounds_are_enforced),
        cmocka_unit_test(record_lists),
        cmocka_unit_test(frame_header),
        cmocka_unit_test(catalogue_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
