/* minikv chunk store, private: the on-disk record format and segment files.
 *
 * Every byte the store keeps lives in records appended to segment files
 * (dir/wal/NNNNNNNNNNNNNNNN.seg, N = segment id in hex). A record is a
 * 64-byte header followed by stored_len payload bytes and zero padding to a
 * multiple of 8. docs/design-chunk.md describes the layout byte by byte;
 * this header is the one place that encodes it. */
#ifndef MKV_CHUNK_WAL_H
#define MKV_CHUNK_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "minikv/wire.h"

#define WAL_MAGIC 0x524B564Du /* "MVKR" in a little-endian dump */
#define WAL_FORMAT 1
#define WAL_HDR 64u
#define WAL_ALIGN 8u
#define WAL_ENC_OVERHEAD 28u /* 12-byte nonce + 16-byte GCM tag */
#define WAL_MAX_STORED (MKV_BLOCK_SIZE + WAL_ENC_OVERHEAD)
#define WAL_MAX_REC (WAL_HDR + WAL_MAX_STORED + WAL_ALIGN)
#define WAL_MAX_BLOCKS ((uint32_t)(MKV_CHUNK_SIZE / MKV_BLOCK_SIZE))
#define WAL_AAD_OFF 4u
#define WAL_AAD_LEN 36u /* header bytes 4..39: everything but the checksums */

enum wal_type {
    WAL_SEGHDR = 1,  /* first record of every segment file */
    WAL_VERSION = 2, /* (chunk, version) created, prepared, with base */
    WAL_BLOCK = 3,   /* one block of (chunk, version) */
    WAL_COMMIT = 4,  /* (chunk, version) committed; its base chain folded */
    WAL_DELETE = 5,  /* (chunk, version) or (chunk, every version) deleted */
    WAL_SEAL = 6,    /* last record of a complete compacted segment */
};

enum wal_flags {
    WAL_F_LZ4 = 0x01,  /* payload compressed with LZ4 */
    WAL_F_ZSTD = 0x02, /* payload compressed with zstd */
    WAL_F_ENC = 0x04,  /* payload is nonce | AES-256-GCM ciphertext | tag */
    WAL_F_COMPACTED = 0x10, /* SEGHDR: a compacted segment (needs a SEAL) */
};
#define WAL_F_BLOCK_MASK (WAL_F_LZ4 | WAL_F_ZSTD | WAL_F_ENC)

/* A decoded header. */
struct wal_hdr
{
    uint8_t type;
    uint8_t flags;
    uint64_t lsn;
    uint64_t chunk;   /* SEGHDR/SEAL: segment id */
    uint32_t version;
    uint32_t arg;     /* BLOCK: block index; VERSION: base version */
    uint32_t stored_len;
    uint32_t data_len;
    uint32_t data_crc;
    uint32_t payload_crc;
    uint64_t aux;     /* VERSION: ctime ns; SEGHDR: hi lsn; SEAL: record count */
};

static inline uint32_t wal_pad(uint32_t n)
{
    return (WAL_ALIGN - (n & (WAL_ALIGN - 1))) & (WAL_ALIGN - 1);
}
static inline uint32_t wal_rec_len(uint32_t stored_len)
{
    return WAL_HDR + stored_len + wal_pad(stored_len);
}

/* Encodes h into out[64] and sets the header CRC. */
void wal_hdr_encode(const struct wal_hdr *h, uint8_t *out);
/* Decodes and validates p[64] (magic, format, header CRC, type, bounds).
 * Returns 0 or -EINVAL. */
int wal_hdr_decode(const uint8_t *p, struct wal_hdr *h);
/* Checks the payload of a decoded header: 0 or MKV_ECHECKSUM. */
int wal_payload_check(const struct wal_hdr *h, const uint8_t *payload);

/* Segment file names. */
void wal_seg_name(char *buf, size_t len, uint64_t id);
/* Parses "NNNNNNNNNNNNNNNN.seg"; returns 0 or -EINVAL. */
int wal_seg_parse(const char *name, uint64_t *id);

/* Sequential scanner over one segment file, used by recovery and
 * compaction. It reads through a window buffer it owns. */
struct wal_scan
{
    int fd;
    uint64_t end;      /* file size */
    uint64_t pos;      /* next record offset */
    uint8_t *win;
    size_t win_cap;
    uint64_t win_off;
    size_t win_len;
    /* Set by wal_scan_next: */
    uint64_t skip_from; /* bytes [skip_from, skip_from + skip_len) were unreadable */
    uint64_t skip_len;
    uint64_t torn_at;   /* when next returns 0 early: where valid data ends */
    int torn;
};

/* One record as the scanner returns it. payload points into the window
 * and is valid until the next call. */
struct wal_rec
{
    struct wal_hdr h;
    uint64_t off;
    uint32_t rec_len;
    int payload_ok; /* 0: header fine, payload failed its CRC */
    const uint8_t *raw; /* the whole record (header + payload) */
    const uint8_t *payload;
};

int wal_scan_init(struct wal_scan *sc, int fd, uint64_t start, uint64_t end);
/* Returns 1 and fills r; 0 at the end of valid data (sc->torn tells whether
 * bytes remained that hold no valid record: a torn tail, starting at
 * sc->torn_at); or a negative code on an I/O error. When it had to skip
 * unreadable bytes before r, sc->skip_len is non-zero. A record with a valid
 * header but a bad payload is returned (payload_ok = 0) when a valid record
 * follows it, and treated as the start of a torn tail otherwise. */
int wal_scan_next(struct wal_scan *sc, struct wal_rec *r);
void wal_scan_free(struct wal_scan *sc);

/* pread/pwrite that retry short transfers; 0 or a negative errno. A read
 * that hits the end of the file returns -EIO. */
int wal_pread_full(int fd, void *buf, size_t len, uint64_t off);
int wal_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

#endif /* MKV_CHUNK_WAL_H */
