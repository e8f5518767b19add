/* minikv: small helpers shared by every component.
 *
 * Everything here is header-only and allocation-free. */
#ifndef MKV_COMMON_H
#define MKV_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define MKV_API __attribute__((visibility("default")))

#define MKV_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MKV_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define MKV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MKV_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MKV_LIKELY(x) __builtin_expect(!!(x), 1)
#define MKV_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MKV_UNUSED __attribute__((unused))
#define MKV_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* A view of bytes owned by someone else. The owner is named where a slice
 * is produced ("valid until the frame is released"). */
struct mkv_slice
{
    const uint8_t *p;
    uint32_t len;
};

static inline struct mkv_slice mkv_slice_str(const char *s)
{
    struct mkv_slice v = {(const uint8_t *)s, s ? (uint32_t)strlen(s) : 0};
    return v;
}

static inline struct mkv_slice mkv_slice_mem(const void *p, size_t len)
{
    struct mkv_slice v = {(const uint8_t *)p, (uint32_t)len};
    return v;
}

static inline int mkv_slice_eq(struct mkv_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

static inline int mkv_slice_same(struct mkv_slice a, struct mkv_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Little-endian load/store. The wire format and every on-disk format are
 * little-endian; keys in LMDB that must sort numerically are big-endian. */
static inline void mkv_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void mkv_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void mkv_put_le64(uint8_t *p, uint64_t v)
{
    mkv_put_le32(p, (uint32_t)v);
    mkv_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t mkv_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t mkv_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t mkv_get_le64(const uint8_t *p)
{
    return (uint64_t)mkv_get_le32(p) | ((uint64_t)mkv_get_le32(p + 4) << 32);
}
static inline void mkv_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void mkv_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void mkv_put_be64(uint8_t *p, uint64_t v)
{
    mkv_put_be32(p, (uint32_t)(v >> 32));
    mkv_put_be32(p + 4, (uint32_t)v);
}
static inline uint32_t mkv_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint64_t mkv_get_be64(const uint8_t *p)
{
    return ((uint64_t)mkv_get_be32(p) << 32) | mkv_get_be32(p + 4);
}

/* Clocks. Wall time is for timestamps users see; monotonic for timeouts. */
static inline int64_t mkv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static inline uint64_t mkv_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#endif /* MKV_COMMON_H */
