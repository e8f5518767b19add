/* minikv: bucket name and key rules (see lib/minikv/names.h). */
#include <errno.h>
#include <string.h>

#include "minikv/err.h"
#include "minikv/names.h"
#include "minikv/wire.h"

int mkv_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf, *end = s + len;
    while (s < end) {
        unsigned c = *s;
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
        else return 0;
        if ((size_t)(end - s) <= n) return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        s += n + 1;
    }
    return 1;
}

static int is_ipv4(const char *s, size_t len)
{
    int dots = 0, digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (!digits) return 0;
            dots++;
            digits = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            if (++digits > 3) return 0;
        } else {
            return 0;
        }
    }
    return dots == 3 && digits;
}

static int has_prefix(const char *s, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(s, p, n) == 0;
}

static int has_suffix(const char *s, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(s + len - n, p, n) == 0;
}

int mkv_check_bucket(const char *name, size_t len)
{
    if (len < 3 || len > MKV_BUCKET_MAX) return MKV_EBADNAME;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-') return MKV_EBADNAME;
        if ((i == 0 || i == len - 1) && !alnum) return MKV_EBADNAME;
        if (i > 0 && c == '.' && (name[i - 1] == '.' || name[i - 1] == '-')) return MKV_EBADNAME;
        if (i > 0 && c == '-' && name[i - 1] == '.') return MKV_EBADNAME;
    }
    if (is_ipv4(name, len)) return MKV_EBADNAME;
    if (has_prefix(name, len, "xn--") || has_prefix(name, len, "sthree-") ||
        has_prefix(name, len, "amzn-s3-demo-"))
        return MKV_EBADNAME;
    if (has_suffix(name, len, "-s3alias") || has_suffix(name, len, "--ol-s3") ||
        has_suffix(name, len, ".mrap") || has_suffix(name, len, "--x-s3"))
        return MKV_EBADNAME;
    return 0;
}

int mkv_check_key(const char *key, size_t len)
{
    size_t start = 0;
    if (len == 0) return MKV_EBADNAME;
    if (len > MKV_KEY_MAX) return -ENAMETOOLONG;
    if (memchr(key, 0, len) || !mkv_utf8_valid(key, len)) return MKV_EBADNAME;
    if (key[0] == '/') return MKV_EBADNAME;
    if (key[len - 1] == '/') len--; /* a directory: "a/b/" */
    for (size_t i = 0; i <= len; i++) {
        if (i == len || key[i] == '/') {
            size_t n = i - start;
            if (n == 0) return MKV_EBADNAME;
            if (n > MKV_NAME_MAX) return -ENAMETOOLONG;
            if ((n == 1 && key[start] == '.') || (n == 2 && key[start] == '.' && key[start + 1] == '.'))
                return MKV_EBADNAME;
            start = i + 1;
        }
    }
    return 0;
}
