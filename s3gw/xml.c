/* minikv gateway: the XML pull parser (see xml.h). */
#include <errno.h>
#include <string.h>

#include "xml.h"

static enum mkv_s3_error xfail(struct mkv_xml *x, enum mkv_s3_error e)
{
    if (!x->err) x->err = e;
    return x->err;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
}

static int name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, cp = s[0] & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || cp == 0xfffe || cp == 0xffff)
        return 0;
    return len;
}

static int put_utf8(struct mkv_buf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) u[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800) u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)),
        u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f)),
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
    return mkv_buf_append(b, u, n);
}

/* Appends s[0..n) to b with entities decoded; checks characters. Returns
 * 0, -EINVAL (malformed) or -ENOMEM. With raw set (CDATA) nothing is
 * decoded. */
static int decode_into(struct mkv_buf *b, const char *s, size_t n, int raw)
{
    size_t i = 0, start = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return -EINVAL;
        if (c >= 0x80) {
            size_t l = utf8_len((const unsigned char *)s + i, n - i);
            if (!l) return -EINVAL;
            i += l;
            continue;
        }
        if (c != '&' || raw) {
            i++;
            continue;
        }
        if (mkv_buf_append(b, s + start, i - start)) return -ENOMEM;
        const char *semi = memchr(s + i, ';', MKV_MIN(n - i, (size_t)12));
        if (!semi) return -EINVAL;
        const char *e = s + i + 1;
        size_t elen = (size_t)(semi - e);
        const char *rep = NULL;
        if (elen == 3 && memcmp(e, "amp", 3) == 0) rep = "&";
        else if (elen == 2 && memcmp(e, "lt", 2) == 0) rep = "<";
        else if (elen == 2 && memcmp(e, "gt", 2) == 0) rep = ">";
        else if (elen == 4 && memcmp(e, "quot", 4) == 0) rep = "\"";
        else if (elen == 4 && memcmp(e, "apos", 4) == 0) rep = "'";
        if (rep) {
            if (mkv_buf_append(b, rep, 1)) return -ENOMEM;
        } else if (elen >= 2 && e[0] == '#') {
            uint32_t cp = 0;
            int hex = e[1] == 'x';
            size_t k = hex ? 2 : 1;
            if (k == elen || elen - k > 8) return -EINVAL;
            for (; k < elen; k++) {
                char d = e[k];
                int v = d >= '0' && d <= '9' ? d - '0'
                        : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10
                        : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10
                                                      : -1;
                if (v < 0) return -EINVAL;
                cp = cp * (hex ? 16 : 10) + (uint32_t)v;
            }
            /* XML 1.0 Char */
            if (!(cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
                  (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff)))
                return -EINVAL;
            if (put_utf8(b, cp)) return -ENOMEM;
        } else {
            return -EINVAL;
        }
        i = (size_t)(semi - s) + 1;
        start = i;
    }
    if (mkv_buf_append(b, s + start, i - start)) return -ENOMEM;
    return 0;
}

void mkv_xml_init(struct mkv_xml *x, const char *doc, size_t len)
{
    memset(x, 0, sizeof *x);
    x->p = doc;
    x->end = doc + len;
    /* a UTF-8 byte order mark */
    if (len >= 3 && memcmp(doc, "\xef\xbb\xbf", 3) == 0) x->p += 3;
}

void mkv_xml_free(struct mkv_xml *x)
{
    mkv_buf_free(&x->text);
}

static const char *find(const char *p, const char *end, const char *pat)
{
    size_t n = strlen(pat);
    while ((size_t)(end - p) >= n) {
        if (memcmp(p, pat, n) == 0) return p;
        p++;
    }
    return NULL;
}

static size_t scan_name(const char *p, const char *end)
{
    size_t n = 0;
    if (p >= end || !name_start((unsigned char)*p)) return 0;
    while (p + n < end && name_char((unsigned char)p[n])) n++;
    return n;
}

static void local_name(const char *q, size_t n, const char **name, size_t *nlen)
{
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (q[i] == ':') colon = q + i;
    *name = colon ? colon + 1 : q;
    *nlen = colon ? n - (size_t)(colon + 1 - q) : n;
}

/* Markup that is skipped: comments, processing instructions. Returns 1 if
 * one was skipped, 0 if p is not at one, -1 on error. */
static int skip_misc(struct mkv_xml *x)
{
    const char *e;
    if (x->end - x->p >= 4 && memcmp(x->p, "<!--", 4) == 0) {
        if (!(e = find(x->p + 4, x->end, "-->"))) return -1;
        x->p = e + 3;
        return 1;
    }
    if (x->end - x->p >= 2 && memcmp(x->p, "<?", 2) == 0) {
        if (!(e = find(x->p + 2, x->end, "?>"))) return -1;
        x->p = e + 2;
        return 1;
    }
    return 0;
}

/* Validates attributes between p and the end of the start tag; sets
 * *close to the '>' and *empty for "/>". */
static int scan_attrs(const char *p, const char *end, const char **close, int *empty)
{
    for (;;) {
        int had_ws = 0;
        while (p < end && is_ws(*p)) p++, had_ws = 1;
        if (p >= end) return -1;
        if (*p == '>') {
            *close = p;
            *empty = 0;
            return 0;
        }
        if (*p == '/') {
            if (p + 1 >= end || p[1] != '>') return -1;
            *close = p + 1;
            *empty = 1;
            return 0;
        }
        size_t n = scan_name(p, end);
        if (!n || !had_ws) return -1;
        p += n;
        while (p < end && is_ws(*p)) p++;
        if (p >= end || *p != '=') return -1;
        p++;
        while (p < end && is_ws(*p)) p++;
        if (p >= end || (*p != '"' && *p != '\'')) return -1;
        char q = *p++;
        const char *v = p;
        while (p < end && *p != q) {
            if (*p == '<') return -1;
            p++;
        }
        if (p >= end) return -1;
        {
            struct mkv_buf tmp = MKV_BUF_INIT;
            int rv = decode_into(&tmp, v, (size_t)(p - v), 0);
            mkv_buf_free(&tmp);
            if (rv) return -1;
        }
        p++;
    }
}

static enum mkv_s3_error text_token(struct mkv_xml *x, struct mkv_xml_token *t,
                                    const char *s, size_t n, int raw)
{
    int rv;
    mkv_buf_reset(&x->text);
    rv = decode_into(&x->text, s, n, raw);
    if (rv == -ENOMEM) return xfail(x, MKV_S3_INTERNAL);
    if (rv || x->text.len > MKV_XML_MAX_TEXT) return xfail(x, MKV_S3_MALFORMED_XML);
    if (mkv_buf_reserve(&x->text, 0)) return xfail(x, MKV_S3_INTERNAL);
    x->text.p[x->text.len] = '\0';
    t->type = MKV_XML_TEXT;
    t->text = (const char *)x->text.p;
    t->tlen = x->text.len;
    t->ws = 1;
    for (size_t i = 0; i < t->tlen; i++)
        if (!is_ws(t->text[i])) t->ws = 0;
    t->depth = x->depth;
    return MKV_S3_OK;
}

enum mkv_s3_error mkv_xml_next(struct mkv_xml *x, struct mkv_xml_token *t)
{
    const enum mkv_s3_error bad = MKV_S3_MALFORMED_XML;
    memset(t, 0, sizeof *t);
    if (x->err) return x->err;
    if (x->pending_end) {
        x->pending_end = 0;
        t->type = MKV_XML_END;
        local_name(x->stack[x->depth - 1].name, x->stack[x->depth - 1].nlen, &t->name, &t->nlen);
        t->depth = x->depth--;
        return MKV_S3_OK;
    }
    for (;;) {
        if (x->p >= x->end) {
            if (!x->seen_root || x->depth) return xfail(x, bad);
            t->type = MKV_XML_EOF;
            return MKV_S3_OK;
        }
        if (x->depth == 0) {
            /* prolog or epilog: whitespace and misc only, one root */
            if (is_ws(*x->p)) {
                x->p++;
                continue;
            }
            int m = skip_misc(x);
            if (m < 0) return xfail(x, bad);
            if (m) continue;
            if (*x->p != '<' || x->seen_root) return xfail(x, bad);
        }
        if (*x->p != '<') {
            const char *lt = memchr(x->p, '<', (size_t)(x->end - x->p));
            const char *s = x->p;
            if (!lt) return xfail(x, bad);
            x->p = lt;
            return text_token(x, t, s, (size_t)(lt - s), 0);
        }
        /* markup */
        if (x->end - x->p >= 9 && memcmp(x->p, "<![CDATA[", 9) == 0) {
            const char *s = x->p + 9, *e = find(s, x->end, "]]>");
            if (!e) return xfail(x, bad);
            x->p = e + 3;
            return text_token(x, t, s, (size_t)(e - s), 1);
        }
        if (x->end - x->p >= 2 && x->p[1] == '!' &&
            !(x->end - x->p >= 4 && memcmp(x->p, "<!--", 4) == 0))
            return xfail(x, bad); /* DOCTYPE, ENTITY and the like */
        {
            int m = skip_misc(x);
            if (m < 0) return xfail(x, bad);
            if (m) continue;
        }
        if (x->end - x->p >= 2 && x->p[1] == '/') {
            const char *q = x->p + 2;
            size_t n = scan_name(q, x->end);
            const char *e = q + n;
            if (!n || x->depth == 0) return xfail(x, bad);
            while (e < x->end && is_ws(*e)) e++;
            if (e >= x->end || *e != '>') return xfail(x, bad);
            if (x->stack[x->depth - 1].nlen != n || memcmp(x->stack[x->depth - 1].name, q, n))
                return xfail(x, bad);
            x->p = e + 1;
            t->type = MKV_XML_END;
            local_name(q, n, &t->name, &t->nlen);
            t->depth = x->depth--;
            return MKV_S3_OK;
        }
        /* start tag */
        {
            const char *q = x->p + 1, *close;
            size_t n = scan_name(q, x->end);
            int empty;
            if (!n) return xfail(x, bad);
            if (x->depth == MKV_XML_MAX_DEPTH) return xfail(x, bad);
            if (scan_attrs(q + n, x->end, &close, &empty)) return xfail(x, bad);
            x->stack[x->depth].name = q;
            x->stack[x->depth].nlen = n;
            x->depth++;
            x->seen_root = 1;
            t->type = MKV_XML_START;
            local_name(q, n, &t->name, &t->nlen);
            t->depth = x->depth;
            t->attrs = q + n;
            t->alen = (size_t)(close - (q + n)) - (size_t)empty;
            x->pending_end = empty;
            x->p = close + 1;
            return MKV_S3_OK;
        }
    }
}

enum mkv_s3_error mkv_xml_text(struct mkv_xml *x, char *buf, size_t cap, size_t *len)
{
    struct mkv_xml_token t;
    enum mkv_s3_error e;
    size_t n = 0;
    unsigned depth = x->depth;
    if (cap == 0) return xfail(x, MKV_S3_INTERNAL);
    buf[0] = '\0';
    if (x->err) return x->err;
    for (;;) {
        if ((e = mkv_xml_next(x, &t))) return e;
        if (t.type == MKV_XML_END && t.depth == depth) break;
        if (t.type != MKV_XML_TEXT) return xfail(x, MKV_S3_MALFORMED_XML);
        if (t.tlen >= cap - n) return xfail(x, MKV_S3_MALFORMED_XML);
        memcpy(buf + n, t.text, t.tlen);
        n += t.tlen;
        buf[n] = '\0';
    }
    if (len) *len = n;
    return MKV_S3_OK;
}

enum mkv_s3_error mkv_xml_skip(struct mkv_xml *x)
{
    struct mkv_xml_token t;
    enum mkv_s3_error e;
    unsigned depth = x->depth;
    if (depth == 0) return xfail(x, MKV_S3_INTERNAL);
    do {
        if ((e = mkv_xml_next(x, &t))) return e;
    } while (!(t.type == MKV_XML_END && t.depth == depth));
    return MKV_S3_OK;
}

int mkv_xml_is(const struct mkv_xml_token *t, const char *name)
{
    size_t n = strlen(name);
    return (t->type == MKV_XML_START || t->type == MKV_XML_END) && t->nlen == n &&
           memcmp(t->name, name, n) == 0;
}

int mkv_xml_attr(const struct mkv_xml_token *t, const char *name, char *buf, size_t cap)
{
    const char *p = t->attrs, *end = t->attrs + t->alen;
    size_t want = strlen(name);
    if (t->type != MKV_XML_START || !p) return 0;
    while (p < end) {
        while (p < end && is_ws(*p)) p++;
        if (p >= end) break;
        size_t n = scan_name(p, end);
        const char *an = p, *ln;
        size_t lnlen;
        if (!n) return -EINVAL;
        p += n;
        while (p < end && *p != '"' && *p != '\'') p++;
        if (p >= end) return -EINVAL;
        char q = *p++;
        const char *v = p;
        while (p < end && *p != q) p++;
        if (p >= end) return -EINVAL;
        local_name(an, n, &ln, &lnlen);
        if (lnlen == want && memcmp(ln, name, want) == 0) {
            struct mkv_buf b = MKV_BUF_INIT;
            int rv = decode_into(&b, v, (size_t)(p - v), 0);
            if (rv || b.len >= cap || memchr(b.p ? (char *)b.p : "", '\0', b.len)) {
                mkv_buf_free(&b);
                return rv == -ENOMEM ? -ENOMEM : -EINVAL;
            }
            if (b.len) memcpy(buf, b.p, b.len);
            buf[b.len] = '\0';
            mkv_buf_free(&b);
            return 1;
        }
        p++;
    }
    return 0;
}
