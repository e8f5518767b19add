/* minikv chunk store: the data of one chunk server disk.
 *
 * A chunk is identified by a 64-bit id and holds up to MKV_CHUNK_SIZE bytes
 * in blocks of MKV_BLOCK_SIZE, each stored with a CRC32C that is checked on
 * every read. Data is written under a version: (chunk_id, version) is one
 * immutable generation of the chunk. A version may name a base version;
 * blocks it does not write are read from the base (copy-on-write at block
 * granularity, so an overwrite never rewrites a whole chunk).
 *
 * Two-phase commit: a write makes (chunk, version) *prepared*: durable, but
 * no namespace entry points at it yet. mkv_store_commit marks it committed
 * (and folds its base into it). Prepared versions that the metadata service
 * says are unreferenced are deleted by the chunk server's orphan collector,
 * which finds them with mkv_store_list_prepared.
 *
 * On disk (see docs/design.md, "chunk store"): a write-ahead log made of
 * segment files (wal/NNNNNNNNNNNNNNNN.seg). Every record has a header CRC
 * and a payload CRC; block data is stored once, in the log, so segments are
 * the data files. An LMDB index maps (chunk, version, block) to (segment,
 * offset) and records versions; it is a cache of the log that recovery
 * rebuilds from the last checkpoint. Sealed segments whose live data falls
 * below a threshold are compacted.
 *
 * Group commit: writes, commits and deletes queue records; one flush writes
 * every queued record and issues one fdatasync, then completes them all. A
 * callback with status 0 means the record is durable.
 *
 * Threading: every function must be called on the loop given to
 * mkv_store_open, and every callback runs on it. The store may use worker
 * threads internally (the synchronous I/O backend does).
 */
#ifndef MKV_CHUNK_STORE_H
#define MKV_CHUNK_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "minikv/common.h"
#include "minikv/metrics.h"

struct mkv_store;

enum mkv_io_backend {
    MKV_IO_AUTO = 0,  /* io_uring when the kernel allows it, else sync */
    MKV_IO_URING = 1, /* io_uring or fail to open */
    MKV_IO_SYNC = 2,  /* pread/pwrite/fdatasync on worker threads */
};

enum mkv_compression { MKV_COMP_NONE = 0, MKV_COMP_LZ4 = 1, MKV_COMP_ZSTD = 2 };

struct mkv_store_opts
{
    const char *dir;             /* created if missing */
    int io_backend;              /* enum mkv_io_backend */
    uint64_t segment_size;       /* 0: 256 MiB */
    int compression;             /* enum mkv_compression, per block */
    int compression_level;       /* 0: library default */
    const uint8_t *enc_key;      /* 32 bytes: AES-256-GCM at rest; NULL: off */
    uint64_t reserve_bytes;      /* refuse writes with -ENOSPC below this much free space */
    uint64_t group_commit_bytes; /* 0: 16 MiB, most bytes in one flush */
    uint32_t compact_percent;    /* 0: 50; compact sealed segments under this % live */
    int no_fsync;                /* 1: skip fdatasync (UNSAFE; benchmarks of the CPU path only) */
};

/* One request. The store owns the private part between the call and the
 * callback; the caller owns the memory. data is for the caller. */
struct mkv_store_req;
typedef void (*mkv_store_cb)(struct mkv_store_req *req, int status);
struct mkv_store_req
{
    void *data;
    /* private */
    struct mkv_store *store;
    mkv_store_cb cb;
    struct mkv_store_req *next;
    void *buf;
    size_t len;
    size_t done;
    uint64_t chunk_id;
    uint64_t offset;
    uint32_t version;
    uint32_t base_version;
    int status;
    int pending;
    int kind;
    uint64_t start_ns;
    void *priv; /* backend state */
};

/* Opens (or creates) the store in o->dir and recovers it: replays the log
 * from the index checkpoint, discards a torn tail (truncating it), and logs
 * every record it had to skip. On failure returns a negative code with a
 * message in err. */
MKV_API int mkv_store_open(uv_loop_t *loop, const struct mkv_store_opts *o,
                           struct mkv_store **out, char *err, size_t errlen);

/* Stops accepting requests, waits for queued ones to finish (their callbacks
 * run), syncs the index, releases everything and calls cb(data). */
MKV_API void mkv_store_close(struct mkv_store *s, void (*cb)(void *data), void *data);

/* Writes len bytes at offset of (chunk_id, version), creating the version
 * as prepared if it is new (with base_version as its base, 0 for none; the
 * base must exist). offset must be a multiple of MKV_BLOCK_SIZE; len may
 * end mid-block (the block then holds fewer bytes). A block written twice in
 * one version keeps the last write. buf must stay valid until cb.
 * Errors (in cb, or returned at once for bad arguments): -EINVAL, -ENOSPC
 * (disk full or under the reserve), -EIO, -ENOENT (base missing),
 * -EEXIST (version already committed: committed versions are immutable). */
MKV_API int mkv_store_write(struct mkv_store *s, struct mkv_store_req *req, uint64_t chunk_id,
                            uint32_t version, uint32_t base_version, uint64_t offset,
                            const void *buf, size_t len, mkv_store_cb cb);

/* Reads len bytes at offset (any alignment) of (chunk_id, version) into buf,
 * following base versions for blocks the version did not write. cb gets 0
 * when all len bytes were read, MKV_ECHECKSUM when a block failed its CRC
 * (a log line names chunk, version, block, segment and offset; nothing is
 * copied from that block), -ENODATA when part of the range was never
 * written, -ENOENT when the version does not exist, MKV_ESTALE when it was
 * folded into a newer committed version (the reader should refetch the
 * chunk map). Reads of prepared versions are allowed. */
MKV_API int mkv_store_read(struct mkv_store *s, struct mkv_store_req *req, uint64_t chunk_id,
                           uint32_t version, uint64_t offset, void *buf, size_t len,
                           mkv_store_cb cb);

/* The same read as mkv_store_read, synchronous and in the caller's thread
 * (any thread, while the store is open), served from the page cache only:
 * -EAGAIN when a block is not cached or is compressed or encrypted (use
 * mkv_store_read then), else 0 or the codes of mkv_store_read. For a
 * co-located reader that would otherwise pay a round trip per read. */
MKV_API int mkv_store_read_cached(struct mkv_store *s, uint64_t chunk_id, uint32_t version,
                                  uint64_t offset, void *buf, size_t len);

/* Marks (chunk_id, version) committed, durably. If it has a base, blocks of
 * the base it did not overwrite become its own (index only, no data copy)
 * and the base version is removed. Committing twice is not an error.
 * -ENOENT when the version does not exist. */
MKV_API int mkv_store_commit(struct mkv_store *s, struct mkv_store_req *req, uint64_t chunk_id,
                             uint32_t version, mkv_store_cb cb);

/* Deletes (chunk_id, version), or every version when version is 0,
 * durably. Deleting what does not exist is not an error (deletes are
 * retried by garbage collection). Space is reclaimed by compaction. */
MKV_API int mkv_store_delete(struct mkv_store *s, struct mkv_store_req *req, uint64_t chunk_id,
                             uint32_t version, mkv_store_cb cb);

/* Calls fn for every prepared version created more than age_ms ago, in
 * (chunk, version) order, until fn returns non-zero. Synchronous (reads the
 * index). Returns 0 or a negative code. */
MKV_API int mkv_store_list_prepared(struct mkv_store *s, uint64_t age_ms,
                                    int (*fn)(void *arg, uint64_t chunk_id, uint32_t version),
                                    void *arg);

/* One version as the index holds it (mkv_store_list_versions). */
enum mkv_version_state { MKV_VER_PREPARED = 1, MKV_VER_COMMITTED = 2, MKV_VER_FOLDED = 3 };
struct mkv_store_version_info
{
    uint64_t chunk_id;
    uint32_t version;
    uint32_t base_version;
    int state;        /* enum mkv_version_state; FOLDED: merged into a newer version */
    int64_t ctime_ns; /* wall clock when it was created */
    uint64_t size;    /* end of the last block the version holds itself (0 if folded) */
};

/* Calls fn for every version in the index, in (chunk, version) order, until
 * fn returns non-zero. Synchronous (reads the index), like
 * mkv_store_list_prepared. For reports to the metadata service, tools and
 * tests. Returns 0 or a negative code. */
MKV_API int mkv_store_list_versions(struct mkv_store *s,
                                    int (*fn)(void *arg, const struct mkv_store_version_info *vi),
                                    void *arg);

struct mkv_store_stats
{
    uint64_t capacity;       /* bytes of the file system holding the store */
    uint64_t free;           /* bytes available to the store (minus the reserve) */
    uint64_t used;           /* bytes in segment files */
    uint64_t live;           /* bytes of live records (block records with their headers,
                              * version, commit and delete records): what compaction keeps */
    uint64_t chunks;         /* versions in the index (folded tombstones included) */
    uint64_t lsn;            /* last log sequence number made durable */
    uint64_t segments;
    uint64_t fsyncs;         /* fdatasync/fsync calls on segment files and the wal directory */
    uint64_t bytes_written;
    uint64_t bytes_read;
    uint64_t corrupt_blocks; /* checksum failures seen since start */
    uint64_t compactions;
    uint64_t torn_tails;       /* torn log tails truncated by recovery since open */
    uint64_t skipped_regions;  /* unreadable regions recovery skipped since open */
    uint64_t replayed_records; /* log records recovery applied to the index at open */
    const char *io_backend;  /* "io_uring" or "sync" */
    struct mkv_hist fsync_latency;
};

MKV_API void mkv_store_get_stats(struct mkv_store *s, struct mkv_store_stats *out);

/* Versions found with a bad block (a read or the scrubber) since start, so
 * that a replica can copy them again from another (chunk/fill.c); deleting
 * a version forgets it. Any thread. mkv_store_bad_note adds one (the first
 * MKV_STORE_BAD_MAX are kept); mkv_store_bad_clear with version 0
 * forgets every version of the chunk. mkv_store_bad_list writes up to max
 * of them and returns a number that grows whenever one is added. */
struct mkv_store_bad
{
    uint64_t chunk_id;
    uint32_t version;
};
#define MKV_STORE_BAD_MAX 1024
MKV_API void mkv_store_bad_note(struct mkv_store *s, uint64_t chunk_id, uint32_t version);
MKV_API int mkv_store_bad(struct mkv_store *s, uint64_t chunk_id, uint32_t version);
MKV_API void mkv_store_bad_clear(struct mkv_store *s, uint64_t chunk_id, uint32_t version);
MKV_API uint64_t mkv_store_bad_list(struct mkv_store *s, struct mkv_store_bad *out, unsigned max,
                                    unsigned *n);

/* Starts a compaction pass now (normally a timer does it); cb when done.
 * For tests and `minikvctl`. */
MKV_API int mkv_store_compact(struct mkv_store *s, struct mkv_store_req *req, mkv_store_cb cb);

/* Reads and checks every live block (the scrubber); counts failures in
 * *bad. Runs on worker threads; cb when done. */
MKV_API int mkv_store_scrub(struct mkv_store *s, struct mkv_store_req *req, uint64_t *bad,
                            mkv_store_cb cb);

#endif /* MKV_CHUNK_STORE_H */
