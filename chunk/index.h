/* minikv chunk store, private: the LMDB index, a cache of the log.
 *
 * Four named databases (docs/design-chunk.md has the byte layouts):
 *   blocks:   chunk(be64) version(be32) block(be32) -> where the block's record is
 *   versions: chunk(be64) version(be32)             -> state, base, ctime, records
 *   segs:     id(be64)                              -> lo, hi, size, live, tomb, flags
 *   meta:     "ckpt" -> (segment, end offset, lsn, offset of the last record)
 *             "next_seg" -> next segment id
 * ix_apply is the one function that turns a log record into index changes;
 * the flush path and recovery both use it, so replaying the log gives the
 * index the live store had. */
#ifndef MKV_CHUNK_INDEX_H
#define MKV_CHUNK_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "wal.h"

enum ix_state { IX_PREPARED = 1, IX_COMMITTED = 2, IX_FOLDED = 3 };

struct ix_ver
{
    uint8_t state;
    uint32_t base;
    uint32_t folded_into;
    int64_t ctime;
    uint64_t create_lsn;
    uint64_t vseg, voff; /* the VERSION record */
    uint64_t cseg, coff; /* the COMMIT record (cseg 0: none) */
};

struct ix_blk
{
    uint64_t seg, off;
    uint32_t rec_len, data_len, stored_len;
    uint64_t lsn;
    uint32_t rec_version; /* version named in the record header (differs after a fold) */
    uint8_t flags;
};

struct ix_segrow
{
    uint64_t lo, hi, size, live, tomb;
    uint32_t flags;
};

struct ix_ckpt
{
    uint64_t seg, off, lsn, last_off;
};

struct ix
{
    MDB_env *env;
    MDB_dbi blocks, versions, segs, meta;
    int open;
};

/* Per-transaction changes to segment accounting, merged into the store's
 * segment table when the transaction commits. */
struct ix_delta
{
    uint64_t seg;
    int64_t live, tomb;
};

struct ix_wtx
{
    struct ix *ix;
    MDB_txn *t;
    struct ix_delta *d;
    size_t nd, capd;
    int64_t dversions;
    uint64_t ignored; /* records that changed nothing (stale or unknown) */
    void *scratch;    /* block list used by folds */
    size_t scratch_cap;
};

int ix_err(int mdb_rc);
int ix_open(struct ix *ix, const char *path, char *err, size_t errlen);
void ix_close(struct ix *ix);
/* Empties every database (before a rebuild). */
int ix_clear(struct ix *ix);
int ix_sync(struct ix *ix);
uint64_t ix_last_txnid(struct ix *ix);
int64_t ix_count_versions(struct ix *ix);

int ix_rd_begin(struct ix *ix, MDB_txn **t);
void ix_rd_end(MDB_txn *t);
int ix_get_ver(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v, struct ix_ver *out);
int ix_get_blk(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v, uint32_t b, struct ix_blk *out);
int ix_get_ckpt(struct ix *ix, MDB_txn *t, struct ix_ckpt *out);
int ix_get_u64(struct ix *ix, MDB_txn *t, const char *name, uint64_t *out);
/* End (byte offset) of the last block version v holds itself; 0 if none. */
uint64_t ix_ver_size(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v);

/* 1 when chunk c has any version, 0 if none, <0 error. */
int ix_chunk_any(struct ix *ix, MDB_txn *t, uint64_t c);
/* Calls fn for each version (from chunk c0 on, all chunks), until fn
 * returns non-zero (which is returned). */
typedef int (*ix_ver_fn)(void *arg, uint64_t c, uint32_t v, const struct ix_ver *vi);
int ix_each_ver(struct ix *ix, MDB_txn *t, ix_ver_fn fn, void *arg);
/* Reads up to max block entries after the key (c, v, b) (exclusive when
 * after is 1) into keys/vals; returns how many. */
int ix_blk_batch(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v, uint32_t b, int after,
                 uint64_t *kc, uint32_t *kv, uint32_t *kb, struct ix_blk *vals, int max);
/* Segment rows. */
typedef int (*ix_seg_fn)(void *arg, uint64_t id, const struct ix_segrow *row);
int ix_each_seg(struct ix *ix, MDB_txn *t, ix_seg_fn fn, void *arg);

int ix_wtx_begin(struct ix *ix, struct ix_wtx *w);
void ix_wtx_abort(struct ix_wtx *w);
/* Commits; the caller merges w->d into its segment table first (under its
 * lock) and writes the rows with ix_put_seg. Frees w's memory either way. */
int ix_wtx_commit(struct ix_wtx *w);
int ix_apply(struct ix_wtx *w, const struct wal_hdr *h, uint64_t seg, uint64_t off, uint32_t rec_len);
int ix_put_ckpt(struct ix_wtx *w, const struct ix_ckpt *c);
int ix_put_u64(struct ix_wtx *w, const char *name, uint64_t v);
int ix_put_seg(struct ix_wtx *w, uint64_t id, const struct ix_segrow *row);
int ix_del_seg(struct ix_wtx *w, uint64_t id);
void ix_delta(struct ix_wtx *w, uint64_t seg, int64_t live, int64_t tomb);

/* Where the index refers to the record h stored at (seg, off): 1 live
 * (*key_version is the version whose entry points there), 0 not referred
 * to, <0 error. DELETE records are never "referred to" (see compaction). */
int ix_locate(struct ix *ix, MDB_txn *t, const struct wal_hdr *h, uint64_t seg, uint64_t off,
              uint32_t *key_version);
/* Moves the reference to the record h from (seg, off) to (nseg, noff) if
 * the index still points there. 1 moved, 0 not, <0 error. */
int ix_relocate(struct ix_wtx *w, const struct wal_hdr *h, uint64_t seg, uint64_t off,
                uint64_t nseg, uint64_t noff);

#endif /* MKV_CHUNK_INDEX_H */
