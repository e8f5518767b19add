/* minikv chunk store, private: the store's state and the functions its
 * modules share (store.c: lifecycle, segment table, index commits;
 * flush.c: the group-commit write path; read.c; recover.c; compact.c:
 * compaction and scrub). */
#ifndef MKV_CHUNK_STORE_INT_H
#define MKV_CHUNK_STORE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "index.h"
#include "io.h"
#include "store.h"
#include "wal.h"
#include "xform.h"

#define COMP "chunk"

enum req_kind { RQ_WRITE = 1, RQ_READ, RQ_COMMIT, RQ_DELETE, RQ_COMPACT, RQ_SCRUB };

enum seg_flags {
    SEG_COMPACTED = 0x01, /* output of compaction (has a SEAL) */
    SEG_SEALED = 0x02,    /* no more appends */
    SEG_NOCOMPACT = 0x04, /* holds unreadable bytes: kept as is for inspection */
};

/* One segment file. Fields other than fd are read and written under
 * s->lock; size of the head is advanced by the flush path only. */
struct seg
{
    uint64_t id;
    uint64_t lo, hi; /* lsn range (hi 0: open) */
    uint64_t size;   /* bytes (the append offset for the head) */
    uint64_t live;   /* bytes of records the index refers to, tombstones included */
    uint64_t tomb;   /* bytes of DELETE records */
    uint32_t flags;
    int fd;
    int retired;
    uint64_t retire_epoch;
    int row_dirty; /* size/flags/hi changed: write its index row at the next commit */
    uint64_t end_pos; /* recovery: where the scan of its records ended */
};

struct pin
{
    uint64_t epoch;
    uint32_t count;
};

struct flush;
struct compact;

/* Fault injection for the tests of the flush error paths: the nth time
 * the flush reaches `where`, it fails there with `err` as if the system
 * call had (the bytes of a failed write are on disk, as after a real
 * partial write). Set on the loop thread, used by the flush path only. */
enum fault_where { FAULT_NONE = 0, FAULT_WRITE, FAULT_FSYNC, FAULT_APPLY };
struct fault
{
    int where;
    int nth;
    int err;
};

struct mkv_store
{
    uv_loop_t *loop;
    struct mkv_store_opts o;
    char *dir, *wal_dir, *ix_dir, *state_path;
    int lock_fd;
    int wal_dfd; /* the wal directory, for fsync after create/unlink */
    struct mkv_io *io;
    struct xf xf;
    struct xf_pool pool;
    struct ix ix;
    char boot_id[64];

    pthread_mutex_t lock;
    /* Versions a read or the scrubber found a bad block in, since start
     * (mkv_store_bad): a replica's fill copies them again. */
    pthread_mutex_t bad_lock;
    struct mkv_store_bad bad[MKV_STORE_BAD_MAX];
    unsigned nbad;
    uint64_t bad_gen;
    /* Held shared by mkv_store_read_cached (any thread) from the index
     * lookup to the end of its reads, exclusively while segment files of
     * the table are closed (reaping, store_free): a reader never reads a
     * closed or reused descriptor. */
    pthread_rwlock_t fd_lock;
    /* Segment table: order holds the active segments sorted by lo; hash
     * maps id -> seg for active and retired (not yet removed) ones. */
    struct seg **order;
    size_t norder, corder;
    struct seg **hash;
    size_t hcap, hcount;
    struct seg *head;
    struct seg **retired;
    size_t nretired, cretired;
    uint64_t next_seg_id;
    uint64_t ckpt_seg; /* segment of the last applied record */
    uint64_t next_lsn; /* flush path only */
    uint64_t durable_lsn;
    int64_t versions;

    /* Epoch pins: a read pins the current epoch; a retired segment is
     * removed once no pin of its epoch or older remains. Loop thread. */
    struct pin *pins;
    size_t pin_first, pin_n, pin_cap;
    uint64_t epoch;

    /* Write path. */
    struct mkv_store_req *q_head, *q_tail;
    size_t q_len;
    struct flush *fl;
    int flushing;
    uv_timer_t flush_timer;

    int reads; /* in flight */
    int scrubs;
    int reaping;

    struct compact *cp;
    uv_timer_t compact_timer;

    uv_timer_t sync_timer;
    uv_work_t sync_work;
    int syncing;
    int sync_rc;
    uint64_t txns; /* index write transactions committed (for lazy sync) */
    uint64_t txns_synced;

    int closing;
    int close_stage;
    int handles;
    void (*close_cb)(void *data);
    void *close_data;
    int fatal; /* the log could not be repaired after a failed flush */
    struct fault fault;

    /* Stats (relaxed atomics). */
    uint64_t st_fsyncs, st_bytes_written, st_bytes_read, st_corrupt, st_compactions;
    uint64_t st_torn, st_skipped, st_replayed;
    struct mkv_hist fsync_hist;
};

/* store.c */
struct seg *seg_find(struct mkv_store *s, uint64_t id);
int seg_insert(struct mkv_store *s, struct seg *g);
void seg_unorder(struct mkv_store *s, struct seg *g);
void seg_forget(struct mkv_store *s, struct seg *g);
struct seg *seg_new(uint64_t id, int fd);
void seg_path(struct mkv_store *s, uint64_t id, char *buf, size_t len);
/* Creates segment file id with its SEGHDR; returns the fd or a negative code. */
int seg_create(struct mkv_store *s, uint64_t id, uint64_t lo, uint64_t hi, uint32_t flags);
/* Commits w after merging its deltas and dirty rows into the segment table
 * (under s->lock); ck may be NULL. extra(arg) runs under the lock right
 * after a successful commit. */
int store_commit(struct mkv_store *s, struct ix_wtx *w, const struct ix_ckpt *ck,
                 void (*extra)(struct mkv_store *s, void *arg), void *arg);
void store_fsync_observe(void *arg, uint64_t ns);
int store_fsync_dir(struct mkv_store *s);
uint64_t store_pin(struct mkv_store *s);
void store_unpin(struct mkv_store *s, uint64_t epoch);
void store_retire(struct mkv_store *s, struct seg *g);
void store_maybe_reap(struct mkv_store *s);
void store_maybe_close(struct mkv_store *s);
/* Checks a block record read from disk against the index entry it was
 * found through and decodes it. raw holds header + payload (payload may be
 * decoded in place); plain receives data_len bytes when the block is
 * transformed (else NULL and the payload is the plaintext). Returns 0,
 * MKV_ECHECKSUM, -EIO (index and record disagree) or -ENOKEY; logs. */
int store_check_block(struct mkv_store *s, uint64_t c, uint32_t v, uint32_t b,
                      const struct ix_blk *e, const uint8_t *hdr, uint8_t *payload, uint8_t *plain);

static inline int fault_hit(struct mkv_store *s, int where)
{
    if (s->fault.where != where || --s->fault.nth > 0) return 0;
    s->fault.where = FAULT_NONE;
    return s->fault.err;
}
/* Tests: arm a fault (see struct fault). */
void store_fault_set(struct mkv_store *s, int where, int nth, int err);

/* flush.c */
int flush_init(struct mkv_store *s);
void flush_free(struct mkv_store *s);
void flush_enqueue(struct mkv_store *s, struct mkv_store_req *req);
int flush_idle(struct mkv_store *s);

/* read.c */
int read_start(struct mkv_store *s, struct mkv_store_req *req);

/* recover.c */
int recover(struct mkv_store *s, char *err, size_t errlen);
int state_write(struct mkv_store *s, int clean, uint64_t txnid);

/* compact.c */
int compact_init(struct mkv_store *s);
void compact_free(struct mkv_store *s);
void compact_start(struct mkv_store *s, struct mkv_store_req *req);
int compact_idle(struct mkv_store *s);
/* Retired segments were just unlinked. */
void compact_reaped(struct mkv_store *s);
int scrub_start(struct mkv_store *s, struct mkv_store_req *req, uint64_t *bad);

#endif /* MKV_CHUNK_STORE_INT_H */
