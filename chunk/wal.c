/* minikv chunk store: record encoding and the segment scanner (wal.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minikv/crc32c.h"
#include "minikv/err.h"

#include "wal.h"

void wal_hdr_encode(const struct wal_hdr *h, uint8_t *p)
{
    mkv_put_le32(p + 0, WAL_MAGIC);
    p[4] = h->type;
    p[5] = h->flags;
    mkv_put_le16(p + 6, WAL_FORMAT);
    mkv_put_le64(p + 8, h->lsn);
    mkv_put_le64(p + 16, h->chunk);
    mkv_put_le32(p + 24, h->version);
    mkv_put_le32(p + 28, h->arg);
    mkv_put_le32(p + 32, h->stored_len);
    mkv_put_le32(p + 36, h->data_len);
    mkv_put_le32(p + 40, h->data_crc);
    mkv_put_le32(p + 44, h->payload_crc);
    mkv_put_le64(p + 48, h->aux);
    mkv_put_le32(p + 56, 0);
    mkv_put_le32(p + 60, mkv_crc32c(0, p, 60));
}

int wal_hdr_decode(const uint8_t *p, struct wal_hdr *h)
{
    if (mkv_get_le32(p) != WAL_MAGIC || mkv_get_le16(p + 6) != WAL_FORMAT) return -EINVAL;
    if (mkv_get_le32(p + 60) != mkv_crc32c(0, p, 60)) return -EINVAL;
    if (mkv_get_le32(p + 56) != 0) return -EINVAL;
    h->type = p[4];
    h->flags = p[5];
    h->lsn = mkv_get_le64(p + 8);
    h->chunk = mkv_get_le64(p + 16);
    h->version = mkv_get_le32(p + 24);
    h->arg = mkv_get_le32(p + 28);
    h->stored_len = mkv_get_le32(p + 32);
    h->data_len = mkv_get_le32(p + 36);
    h->data_crc = mkv_get_le32(p + 40);
    h->payload_crc = mkv_get_le32(p + 44);
    h->aux = mkv_get_le64(p + 48);
    switch (h->type) {
    case WAL_BLOCK:
        if (h->flags & ~WAL_F_BLOCK_MASK) return -EINVAL;
        if ((h->flags & WAL_F_LZ4) && (h->flags & WAL_F_ZSTD)) return -EINVAL;
        if (h->data_len == 0 || h->data_len > MKV_BLOCK_SIZE) return -EINVAL;
        if (h->arg >= WAL_MAX_BLOCKS || h->version == 0) return -EINVAL;
        if (h->stored_len == 0 || h->stored_len > WAL_MAX_STORED) return -EINVAL;
        if (h->flags == 0 && h->stored_len != h->data_len) return -EINVAL;
        if ((h->flags & WAL_F_ENC) && h->stored_len <= WAL_ENC_OVERHEAD) return -EINVAL;
        return 0;
    case WAL_SEGHDR:
        if (h->flags & ~WAL_F_COMPACTED) return -EINVAL;
        break;
    case WAL_VERSION:
    case WAL_COMMIT:
        if (h->version == 0) return -EINVAL;
        /* fall through */
    case WAL_DELETE:
    case WAL_SEAL:
        if (h->flags) return -EINVAL;
        break;
    default:
        return -EINVAL;
    }
    if (h->stored_len || h->data_len) return -EINVAL;
    return 0;
}

int wal_payload_check(const struct wal_hdr *h, const uint8_t *payload)
{
    uint32_t c = h->stored_len ? mkv_crc32c(0, payload, h->stored_len) : 0;
    if (c != h->payload_crc) return MKV_ECHECKSUM;
    if (h->type == WAL_BLOCK && h->flags == 0 && h->data_crc != c) return MKV_ECHECKSUM;
    return 0;
}

void wal_seg_name(char *buf, size_t len, uint64_t id)
{
    snprintf(buf, len, "%016llx.seg", (unsigned long long)id);
}

int wal_seg_parse(const char *name, uint64_t *id)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else return -EINVAL;
        v = (v << 4) | (uint64_t)d;
    }
    if (strcmp(name + 16, ".seg") != 0) return -EINVAL;
    *id = v;
    return 0;
}

int wal_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int wal_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Scanner
 * ------------------------------------------------------------------------ */
#define SCAN_WIN_MAX (4u << 20)

int wal_scan_init(struct wal_scan *sc, int fd, uint64_t start, uint64_t end)
{
    uint64_t want = end > start ? end - start : 0;
    memset(sc, 0, sizeof *sc);
    sc->fd = fd;
    sc->end = end;
    sc->pos = start;
    if (want < 2 * WAL_MAX_REC) want = 2 * WAL_MAX_REC;
    if (want > SCAN_WIN_MAX) want = SCAN_WIN_MAX;
    sc->win_cap = (size_t)want;
    sc->win = malloc(sc->win_cap);
    return sc->win ? 0 : -ENOMEM;
}

void wal_scan_free(struct wal_scan *sc)
{
    free(sc->win);
    sc->win = NULL;
}

/* Makes [off, off + len) available in the window (len <= win_cap, and the
 * range within the file). Returns a pointer or NULL with *err set. */
static const uint8_t *win_get(struct wal_scan *sc, uint64_t off, size_t len, int *err)
{
    size_t n;
    int rv;
    if (off >= sc->win_off && off + len <= sc->win_off + sc->win_len)
        return sc->win + (off - sc->win_off);
    n = sc->win_cap;
    if (off + n > sc->end) n = (size_t)(sc->end - off);
    rv = wal_pread_full(sc->fd, sc->win, n, off);
    if (rv) {
        sc->win_len = 0;
        *err = rv;
        return NULL;
    }
    sc->win_off = off;
    sc->win_len = n;
    return sc->win;
}

/* Is there a complete, valid record at off? 1 yes, 0 no, <0 I/O error.
 * Fills h when yes or when only the payload is bad (*hdr_ok). */
static int valid_at(struct wal_scan *sc, uint64_t off, struct wal_hdr *h, int *hdr_ok)
{
    const uint8_t *p;
    int err = 0;
    *hdr_ok = 0;
    if (off + WAL_HDR > sc->end) return 0;
    p = win_get(sc, off, WAL_HDR, &err);
    if (!p) return err;
    if (mkv_get_le32(p) != WAL_MAGIC || wal_hdr_decode(p, h) != 0) return 0;
    *hdr_ok = 1;
    if (off + WAL_HDR + h->stored_len > sc->end) return 0;
    p = win_get(sc, off, WAL_HDR + h->stored_len, &err);
    if (!p) return err;
    return wal_payload_check(h, p + WAL_HDR) == 0 ? 1 : 0;
}

/* Finds the first offset >= from (aligned) holding a valid record. Returns
 * 1 with *at set, 0 when none, <0 on I/O error. */
static int find_valid(struct wal_scan *sc, uint64_t from, uint64_t *at)
{
    struct wal_hdr h;
    int hdr_ok, rv;
    uint64_t off = (from + WAL_ALIGN - 1) & ~(uint64_t)(WAL_ALIGN - 1);
    for (; off + WAL_HDR <= sc->end; off += WAL_ALIGN) {
        const uint8_t *p;
        int err = 0;
        p = win_get(sc, off, 4, &err);
        if (!p) return err;
        if (mkv_get_le32(p) != WAL_MAGIC) continue;
        rv = valid_at(sc, off, &h, &hdr_ok);
        if (rv < 0) return rv;
        if (rv == 1) {
            *at = off;
            return 1;
        }
    }
    return 0;
}

int wal_scan_next(struct wal_scan *sc, struct wal_rec *r)
{
    int rv, hdr_ok, err = 0;
    uint64_t at;
    const uint8_t *p;

    sc->skip_len = 0;
    sc->torn = 0;
    for (;;) {
        if (sc->pos >= sc->end) return 0;
        rv = valid_at(sc, sc->pos, &r->h, &hdr_ok);
        if (rv < 0) return rv;
        if (rv == 1) break;
        if (hdr_ok && sc->pos + WAL_HDR + r->h.stored_len <= sc->end) {
            /* Payload failed its CRC. Corruption if valid data follows,
             * else the start of a torn tail. */
            uint64_t next = sc->pos + wal_rec_len(r->h.stored_len);
            rv = find_valid(sc, next, &at);
            if (rv < 0) return rv;
            if (rv == 0) goto torn;
            r->payload_ok = 0;
            r->off = sc->pos;
            r->rec_len = wal_rec_len(r->h.stored_len);
            p = win_get(sc, sc->pos, WAL_HDR + r->h.stored_len, &err);
            if (!p) return err;
            r->raw = p;
            r->payload = p + WAL_HDR;
            sc->pos = next;
            return 1;
        }
        if (hdr_ok) goto torn; /* a valid header whose record runs past the end */
        rv = find_valid(sc, sc->pos + WAL_ALIGN, &at);
        if (rv < 0) return rv;
        if (rv == 0) goto torn;
        if (sc->skip_len == 0) sc->skip_from = sc->pos;
        sc->skip_len += at - sc->pos;
        sc->pos = at;
    }
    r->payload_ok = 1;
    r->off = sc->pos;
    r->rec_len = wal_rec_len(r->h.stored_len);
    p = win_get(sc, sc->pos, WAL_HDR + r->h.stored_len, &err);
    if (!p) return err;
    r->raw = p;
    r->payload = p + WAL_HDR;
    sc->pos += r->rec_len;
    return 1;
torn:
    sc->torn = 1;
    sc->torn_at = sc->pos;
    return 0;
}
