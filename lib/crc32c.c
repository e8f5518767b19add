/* minikv: CRC32C and CRC32.
 *
 * CRC32C uses the SSE4.2 crc32 instruction when the CPU has it (checked once
 * with cpuid), on three interleaved streams for long buffers, and
 * slicing-by-8 tables otherwise. CRC32 (IEEE) is only used
 * for S3 checksum headers and uses slicing-by-8. */
#include <stdint.h>
#include <string.h>

#include "minikv/crc32c.h"

/* GF(2) product of a and b modulo the (reflected) CRC32C polynomial. */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ 0x82F63B78u : b >> 1;
    }
    return p;
}

/* x^(8 * n) mod p: what feeding n zero bytes multiplies a CRC register by. */
static uint32_t zeros_op(size_t n)
{
    uint32_t r = 1u << 31, sq = 1u << 30; /* x^0, x^1 */
    size_t bits = n * 8;
    while (bits) {
        if (bits & 1) r = multmodp(sq, r);
        sq = multmodp(sq, sq);
        bits >>= 1;
    }
    return r;
}

/* Three streams of LONG (then SHORT) bytes run through the crc32
 * instruction side by side, hiding its 3-cycle latency; their registers
 * are then combined by multiplying with x^(8 * LONG) (the register the
 * later streams started from, shifted past them). */
#define CRC_LONG 8192
#define CRC_SHORT 256
static uint32_t op_long[2], op_short[2]; /* shifts by LONG, 2 LONG; SHORT, 2 SHORT */

static uint32_t tab_c[8][256];
static uint32_t tab_ieee[8][256];
static int hw_state = -1; /* -1 unknown, 0 no, 1 yes */

static void make_tables(uint32_t tab[8][256], uint32_t poly)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >> 1) : c >> 1;
        tab[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = tab[0][n];
        for (int k = 1; k < 8; k++) {
            c = tab[0][c & 0xff] ^ (c >> 8);
            tab[k][n] = c;
        }
    }
}

static void init_once(void)
{
    static int done;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) return;
    make_tables(tab_c, 0x82F63B78u);
    make_tables(tab_ieee, 0xEDB88320u);
#if defined(__x86_64__)
    __builtin_cpu_init();
    hw_state = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    op_long[0] = zeros_op(CRC_LONG);
    op_long[1] = zeros_op(2 * CRC_LONG);
    op_short[0] = zeros_op(CRC_SHORT);
    op_short[1] = zeros_op(2 * CRC_SHORT);
#else
    hw_state = 0;
#endif
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

static uint32_t crc_sw(uint32_t tab[8][256], uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = tab[7][w & 0xff] ^ tab[6][(w >> 8) & 0xff] ^ tab[5][(w >> 16) & 0xff] ^
              tab[4][(w >> 24) & 0xff] ^ tab[3][(w >> 32) & 0xff] ^ tab[2][(w >> 40) & 0xff] ^
              tab[1][(w >> 48) & 0xff] ^ tab[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) crc = tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint64_t crc_hw_streams(uint64_t c, const uint8_t **pp,
                                                                 size_t *lenp, size_t n,
                                                                 const uint32_t op[2])
{
    const uint8_t *p = *pp;
    while (*lenp >= 3 * n) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t a, b, d;
            memcpy(&a, p + i, 8);
            memcpy(&b, p + n + i, 8);
            memcpy(&d, p + 2 * n + i, 8);
            c = __builtin_ia32_crc32di(c, a);
            c1 = __builtin_ia32_crc32di(c1, b);
            c2 = __builtin_ia32_crc32di(c2, d);
        }
        c = multmodp(op[1], (uint32_t)c) ^ multmodp(op[0], (uint32_t)c1) ^ (uint32_t)c2;
        p += 3 * n;
        *lenp -= 3 * n;
    }
    *pp = p;
    return c;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p,
                                                         size_t len)
{
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    c = crc_hw_streams(c, &p, &len, CRC_LONG, op_long);
    c = crc_hw_streams(c, &p, &len, CRC_SHORT, op_short);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    while (len--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

uint32_t mkv_crc32c(uint32_t crc, const void *buf, size_t len)
{
    init_once();
#if defined(__x86_64__)
    if (hw_state == 1) return crc_hw(crc, buf, len);
#endif
    return crc_sw(tab_c, crc, buf, len);
}

uint32_t mkv_crc32(uint32_t crc, const void *buf, size_t len)
{
    init_once();
    return crc_sw(tab_ieee, crc, buf, len);
}

int mkv_crc32c_hw(void)
{
    init_once();
    return hw_state == 1;
}
