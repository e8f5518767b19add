/* minikv: a growable byte buffer.
 *
 * The buffer owns p; mkv_buf_free releases it. Every append returns 0 or
 * -ENOMEM and leaves the buffer valid on failure. */
#ifndef MKV_BUF_H
#define MKV_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct mkv_buf
{
    uint8_t *p;
    size_t len;
    size_t cap;
};

#define MKV_BUF_INIT {NULL, 0, 0}

MKV_API int mkv_buf_reserve(struct mkv_buf *b, size_t extra);
MKV_API int mkv_buf_append(struct mkv_buf *b, const void *data, size_t len);
MKV_API int mkv_buf_puts(struct mkv_buf *b, const char *s);
MKV_API int mkv_buf_printf(struct mkv_buf *b, const char *fmt, ...) MKV_PRINTF(2, 3);
MKV_API int mkv_buf_vprintf(struct mkv_buf *b, const char *fmt, va_list ap)
    MKV_PRINTF(2, 0);
MKV_API int mkv_buf_put_u8(struct mkv_buf *b, uint8_t v);
MKV_API int mkv_buf_put_le16(struct mkv_buf *b, uint16_t v);
MKV_API int mkv_buf_put_le32(struct mkv_buf *b, uint32_t v);
MKV_API int mkv_buf_put_le64(struct mkv_buf *b, uint64_t v);
/* Appends s with XML character escaping (&, <, >, ", '). */
MKV_API int mkv_buf_put_xml(struct mkv_buf *b, const char *s, size_t len);
/* Appends s as the contents of a JSON string (no quotes added). */
MKV_API int mkv_buf_put_json(struct mkv_buf *b, const char *s, size_t len);
/* Returns a NUL-terminated string the caller owns and empties b. */
MKV_API char *mkv_buf_steal(struct mkv_buf *b);
MKV_API void mkv_buf_reset(struct mkv_buf *b);
MKV_API void mkv_buf_free(struct mkv_buf *b);

/* For daemons, once at start: keeps the heap from handing the large
 * buffers data flows through (frames of up to 4 MiB) back to the kernel
 * after each use (glibc maps anything over 128 KiB-32 MiB on its own and
 * trims freed tops), which made every 1 MiB piece of a GET fault in 256
 * fresh zeroed pages. Memory then stays at its working-set peak. */
MKV_API void mkv_malloc_tune(void);

#endif /* MKV_BUF_H */
