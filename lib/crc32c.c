/* minikv: CRC32C and CRC32.
 *
 * CRC32C uses the SSE4.2 crc32 instruction when the CPU has it (checked once
 * with cpuid) and slicing-by-8 tables otherwise. CRC32 (IEEE) is only used
 * for S3 checksum headers and uses slicing-by-8. */
#include <stdint.h>
#include <string.h>

#include "minikv/crc32c.h"

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
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p,
                                                         size_t len)
{
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
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
