/* minikv: growable byte buffer. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minikv/buf.h"

void mkv_malloc_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's largest allowed value */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int mkv_buf_reserve(struct mkv_buf *b, size_t extra)
{
    size_t need, cap;
    uint8_t *p;
    if (extra > SIZE_MAX / 2 - b->len) return -ENOMEM;
    need = b->len + extra + 1; /* room for a terminating NUL */
    if (need <= b->cap) return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    p = realloc(b->p, cap);
    if (!p) return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int mkv_buf_append(struct mkv_buf *b, const void *data, size_t len)
{
    int rv = mkv_buf_reserve(b, len);
    if (rv) return rv;
    if (len) memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

int mkv_buf_puts(struct mkv_buf *b, const char *s)
{
    return mkv_buf_append(b, s, strlen(s));
}

int mkv_buf_vprintf(struct mkv_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n;
    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) return -EINVAL;
    if (mkv_buf_reserve(b, (size_t)n + 1)) return -ENOMEM;
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int mkv_buf_printf(struct mkv_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rv;
    va_start(ap, fmt);
    rv = mkv_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rv;
}

int mkv_buf_put_u8(struct mkv_buf *b, uint8_t v)
{
    return mkv_buf_append(b, &v, 1);
}

int mkv_buf_put_le16(struct mkv_buf *b, uint16_t v)
{
    uint8_t t[2];
    mkv_put_le16(t, v);
    return mkv_buf_append(b, t, 2);
}

int mkv_buf_put_le32(struct mkv_buf *b, uint32_t v)
{
    uint8_t t[4];
    mkv_put_le32(t, v);
    return mkv_buf_append(b, t, 4);
}

int mkv_buf_put_le64(struct mkv_buf *b, uint64_t v)
{
    uint8_t t[8];
    mkv_put_le64(t, v);
    return mkv_buf_append(b, t, 8);
}

int mkv_buf_put_xml(struct mkv_buf *b, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        char num[16];
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                snprintf(num, sizeof num, "&#x%X;", c);
                rep = num;
            }
        }
        if (rep) {
            if (mkv_buf_append(b, s + start, i - start) || mkv_buf_puts(b, rep)) return -ENOMEM;
            start = i + 1;
        }
    }
    return mkv_buf_append(b, s + start, len - start);
}

int mkv_buf_put_json(struct mkv_buf *b, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\' || c < 0x20) {
            if (c == '"' || c == '\\')
                snprintf(esc, sizeof esc, "\\%c", c);
            else
                snprintf(esc, sizeof esc, "\\u%04x", c);
            if (mkv_buf_append(b, s + start, i - start) || mkv_buf_puts(b, esc)) return -ENOMEM;
            start = i + 1;
        }
    }
    return mkv_buf_append(b, s + start, len - start);
}

char *mkv_buf_steal(struct mkv_buf *b)
{
    char *p;
    if (!b->p && mkv_buf_reserve(b, 0)) return NULL;
    b->p[b->len] = '\0';
    p = (char *)b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void mkv_buf_reset(struct mkv_buf *b)
{
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

void mkv_buf_free(struct mkv_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
