/* minikv meta: private declarations of the namespace state machine.
 *
 * Shared by meta/ns_*.c only. The layout of every table is documented in
 * docs/design-meta.md; the helpers here are the only code that builds keys. */
#ifndef MKV_META_NS_INT_H
#define MKV_META_NS_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>

#include "meta/ns.h"
#include "minikv/buf.h"
#include "minikv/err.h"
#include "minikv/wire.h"

#define NS_SCHEMA_VERSION 3 /* 2: dirparent, xattrs, orphans; 3: entry cookies */
#define NS_ROOT_INO 1
/* A dentry's value: ino u64 LE, type u8, dflags u8, cookie u64 LE (schema
 * 3; 10 bytes before). */
#define NS_DENT_VLEN 18
/* Keys of the "meta" table. */
#define NS_K_SCHEMA "schema"
#define NS_K_APPLIED "applied"
#define NS_K_NEXT_INO "next_ino"
#define NS_K_NEXT_CHUNK "next_chunk"
#define NS_K_COUNTERS "counters"

/* Chunk reference owners. */
enum { NS_OWNER_INODE = 1, NS_OWNER_PART = 2 };

/* Multipart rules (S3). */
#define NS_MPU_MIN_PART (5ull << 20)
/* Key bytes kept in an upload index key before the tail goes to the value
 * (LMDB keys are at most 511 bytes). */
#define NS_UPIDX_PREFIX 430
/* Sessions idle for longer than this are dropped by a sweep every
 * NS_SESSION_SWEEP applied entries (driven by the log, so deterministic). */
#define NS_SESSION_TTL_NS (24ll * 3600 * 1000000000ll)
#define NS_SESSION_SWEEP 4096

/* Private record layouts, encoded with the wire codec. */
#define MKV_FIELDS_ns_bucket(F, s) \
    F(s, U64, ino, 0)              \
    F(s, I64, ctime, 0)            \
    F(s, U32, replicas, 0)         \
    F(s, U32, flags, 0)
#define MKV_FIELDS_ns_part(F, s)    \
    F(s, U32, part_no, 0)           \
    F(s, U64, size, 0)              \
    F(s, STR, etag, MKV_ETAG_MAX)   \
    F(s, I64, mtime, 0)             \
    F(s, BLOB, attrs, MKV_ATTR_MAX) \
    F(s, BLOB, extents, 40u * 1024u)
#define MKV_FIELDS_ns_session(F, s) \
    F(s, U64, seq, 0)               \
    F(s, I64, last_ns, 0)           \
    F(s, I64, status, 0)            \
    F(s, BLOB, reply, MKV_FRAME_MAX)

#define NS_RECORDS(M) \
    M(ns_bucket)      \
    M(ns_part)        \
    M(ns_session)

#define NS_STRUCT(name)                           \
    struct mkv_##name                             \
    {                                             \
        MKV_FIELDS_##name(MKV_STRUCT_FIELD, name) \
    };
NS_RECORDS(NS_STRUCT)
#undef NS_STRUCT
#define NS_DESC(name) extern const struct mkv_msgdesc ns_desc_##name;
NS_RECORDS(NS_DESC)
#undef NS_DESC

struct mkv_ns
{
    MDB_env *env;
    MDB_dbi db_meta, db_inodes, db_dentries, db_buckets, db_uploads, db_upidx, db_parts, db_refs,
        db_garbage, db_sessions, db_keys, db_dirparent, db_xattrs, db_orphans, db_dirseq, db_nodes,
        db_vshards;
    MDB_txn *batch; /* pending write transaction, or NULL */
    /* State mirrored in memory: the *_c copies are what is committed. */
    uint64_t applied, applied_c;
    uint64_t next_ino, next_ino_c;
    uint64_t next_chunk, next_chunk_c;
    struct mkv_ns_counters cnt, cnt_c;
    uint64_t skipped;
    uint64_t partial; /* commands that failed after writing (bugs) */
    int failed;       /* a fatal error happened: every call fails */
    char *dir;
    uint64_t map_size;
    int no_sync;
    /* The environment is committed without fsync (the Raft log is the
     * durable record); state_path says up to which transaction it is on
     * disk (lib/minikv/trust.h). */
    char *state_path;
    char boot_id[64];
    uint64_t synced_txn;
    /* Held shared by users of the environment on other threads (sync_to,
     * mkv_ns_read), exclusively by restore and close, which replace or
     * close it. */
    pthread_rwlock_t env_lock;
};

/* One command or query in progress. */
struct ns_op
{
    struct mkv_ns *ns;
    MDB_txn *txn;
    int64_t now;    /* the envelope's clock (queries: 0) */
    uint64_t index; /* raft index (queries: 0) */
    int fatal;      /* LMDB error code when the state machine failed */
    int wrote;      /* a table was modified */
    struct mkv_buf *reply;
    struct mkv_buf scratch; /* encode area for puts */
    uint32_t dent_seq;      /* entries this command made (their cookies) */
    /* Records ns_get_msg read in a command, copied: LMDB's pointers into a
     * page this write transaction already changed move with the next put,
     * and the batch holds many commands. Freed by ns_op_done. */
    struct ns_copy *copies;
};

/* Frees what op allocated (scratch, copies). */
void ns_op_done(struct ns_op *op);

/* In a handler: decodes the request or returns -EPROTO. */
#define DECODE(desc, p, len, msg) \
    if (mkv_msg_decode(&(desc), (p), (len), (msg))) return -EPROTO

/* Status a helper returns after recording a fatal LMDB error in op->fatal. */
#define NS_EFATAL (-EIO)

/* ---- ns_store.c: tables and primitive access ---- */
int ns_fail(struct ns_op *op, int mdb_rc, const char *what);
int ns_get(struct ns_op *op, MDB_dbi db, const void *k, size_t klen, MDB_val *v);
int ns_put(struct ns_op *op, MDB_dbi db, const void *k, size_t klen, const void *v, size_t vlen);
int ns_del(struct ns_op *op, MDB_dbi db, const void *k, size_t klen);
/* Encodes msg with d (into op->scratch, so slices may point into LMDB) and
 * stores it. */
int ns_put_msg(struct ns_op *op, MDB_dbi db, const void *k, size_t klen,
               const struct mkv_msgdesc *d, const void *msg);
int ns_get_msg(struct ns_op *op, MDB_dbi db, const void *k, size_t klen,
               const struct mkv_msgdesc *d, void *msg);
int ns_cursor(struct ns_op *op, MDB_dbi db, MDB_cursor **c);
/* Writes the mirrored counters/indices of ns into txn. */
int ns_store_state(struct mkv_ns *ns, MDB_txn *txn);

/* ---- ns_path.c: names, inodes, directory entries, chunk references ---- */
struct ns_path
{
    const uint8_t *p;
    size_t len;
    int dir;    /* the key ends with '/' */
    unsigned n; /* components */
    uint16_t off[MKV_KEY_MAX / 2 + 1];
    uint16_t clen[MKV_KEY_MAX / 2 + 1];
};
int ns_path_parse(struct ns_path *path, struct mkv_slice key);

/* 0, MKV_ENOBUCKET (or MKV_EBADNAME for an invalid name), fatal. */
int ns_bucket_get(struct ns_op *op, struct mkv_slice name, struct mkv_ns_bucket *b);

size_t ns_dent_key(uint8_t *k, uint64_t dir, const uint8_t *name, size_t nlen, int is_dir);
/* Looks a child up as file or directory: 0 with *ino and *type, -ENOENT. */
int ns_dent_find(struct ns_op *op, uint64_t dir, const uint8_t *name, size_t nlen, uint64_t *ino,
                 int *type);
/* Puts an entry of type MKV_T_*; a directory's entry also records its
 * parent (dirparent), and deleting it removes that. A new entry gets a
 * cookie (its position in readdir order, table dirseq: stable while the
 * entry lives); putting an existing entry again keeps it. */
int ns_dent_put(struct ns_op *op, uint64_t dir, const uint8_t *name, size_t nlen, int type,
                uint64_t ino, uint8_t dflags);
int ns_dent_del(struct ns_op *op, uint64_t dir, const uint8_t *name, size_t nlen, int is_dir);
/* A directory's parent and the length of its name there (-ENOENT for the
 * root and for inodes that are no directory). */
int ns_dirparent_put(struct ns_op *op, uint64_t dir, uint64_t parent, const uint8_t *name,
                     size_t nlen);
int ns_dirparent_get(struct ns_op *op, uint64_t dir, uint64_t *parent, size_t *nlen);
/* 1 when dir has no entries, 0 when it has, or a fatal status. */
int ns_dir_empty(struct ns_op *op, uint64_t dir);

int ns_ino_get(struct ns_op *op, uint64_t ino, struct mkv_obj_info *oi);
int ns_ino_put(struct ns_op *op, const struct mkv_obj_info *oi);
/* Removes an inode with its extended attributes and orphan mark. */
int ns_ino_del(struct ns_op *op, uint64_t ino);

/* Walks the first upto components of path from dir as directories. -ENOENT
 * when one is missing or is not a directory. */
int ns_walk(struct ns_op *op, uint64_t dir, const struct ns_path *path, unsigned upto,
            uint64_t *out);

/* Validates a packed extent list for a file of size bytes. */
int ns_extents_check(struct mkv_slice ext, uint64_t size, uint32_t max_count);
int ns_attrs_check(struct mkv_slice attrs);

/* Owner keys for the reverse index: 1 + 8 bytes (inode) or 1 + upload id +
 * NUL + 4 bytes (part). Returns the length. */
size_t ns_owner_inode(uint8_t *o, uint64_t ino);
size_t ns_owner_part(uint8_t *o, struct mkv_slice upload_id, uint32_t part_no);
/* Adds the references of every extent in ext for owner (removing the pairs
 * from the garbage table if they were there). */
int ns_refs_add(struct ns_op *op, struct mkv_slice ext, const uint8_t *owner, size_t olen);
/* Removes owner's references for ext; pairs no longer referenced by anyone
 * go to the garbage table. ext must not point into LMDB memory. */
int ns_refs_drop(struct ns_op *op, struct mkv_slice ext, const uint8_t *owner, size_t olen);
/* 1 if (chunk, version) is referenced, 0 if not, or a fatal status. */
int ns_ref_exists(struct ns_op *op, uint64_t chunk, uint32_t version);
int ns_garbage_add(struct ns_op *op, uint64_t chunk, uint32_t version);

/* Buckets (the root's child directories): make one, and remove an empty
 * one (MKV_EBUCKETNOTEMPTY while it holds keys or uploads). */
int ns_bucket_make(struct ns_op *op, struct mkv_slice name, uint32_t replicas, uint32_t flags,
                   uint32_t mode, uint32_t uid, uint32_t gid, struct mkv_obj_info *oi);
int ns_bucket_remove(struct ns_op *op, struct mkv_slice name);

/* ---- command handlers (ns_obj.c, ns_mpu.c, ns_misc.c, ns_list.c, ns_ino.c) ---- */
int ns_bucket_create(struct ns_op *op, const uint8_t *p, size_t len);
int ns_bucket_delete(struct ns_op *op, const uint8_t *p, size_t len);
int ns_bucket_head(struct ns_op *op, const uint8_t *p, size_t len);
int ns_bucket_list(struct ns_op *op, const uint8_t *p, size_t len);
int ns_obj_put(struct ns_op *op, const uint8_t *p, size_t len);
int ns_obj_delete(struct ns_op *op, const uint8_t *p, size_t len);
int ns_obj_delete_multi(struct ns_op *op, const uint8_t *p, size_t len);
int ns_obj_txn(struct ns_op *op, const uint8_t *p, size_t len);
int ns_obj_lookup(struct ns_op *op, const uint8_t *p, size_t len);
int ns_obj_list(struct ns_op *op, const uint8_t *p, size_t len);

/* Puts a file at key in bucket (shared by obj_put and mpu_complete). */
struct ns_put_args
{
    struct mkv_slice bucket, key, if_match, etag, content_type, attrs, extents;
    struct mkv_slice data; /* inline data (len == size, no extents), or empty */
    uint32_t flags, mode, uid, gid;
    uint64_t size;
    int64_t mtime;
};
int ns_put_file(struct ns_op *op, const struct ns_put_args *a, uint64_t *ino, int64_t *mtime);

int ns_mpu_create(struct ns_op *op, const uint8_t *p, size_t len);
int ns_mpu_part(struct ns_op *op, const uint8_t *p, size_t len);
int ns_mpu_complete(struct ns_op *op, const uint8_t *p, size_t len);
int ns_mpu_abort(struct ns_op *op, const uint8_t *p, size_t len);
int ns_mpu_get(struct ns_op *op, const uint8_t *p, size_t len);
int ns_mpu_list_parts(struct ns_op *op, const uint8_t *p, size_t len);
int ns_mpu_list_uploads(struct ns_op *op, const uint8_t *p, size_t len);

int ns_meta_alloc(struct ns_op *op, const uint8_t *p, size_t len);
int ns_gc_list(struct ns_op *op, const uint8_t *p, size_t len);
int ns_gc_done(struct ns_op *op, const uint8_t *p, size_t len);
int ns_refcheck(struct ns_op *op, const uint8_t *p, size_t len);
int ns_key_put(struct ns_op *op, const uint8_t *p, size_t len);
int ns_key_get(struct ns_op *op, const uint8_t *p, size_t len);
int ns_key_delete(struct ns_op *op, const uint8_t *p, size_t len);
int ns_key_list(struct ns_op *op, const uint8_t *p, size_t len);
int ns_node_register(struct ns_op *op, const uint8_t *p, size_t len);
int ns_node_list(struct ns_op *op, const uint8_t *p, size_t len);
int ns_vshard_set(struct ns_op *op, const uint8_t *p, size_t len);
/* The cluster's replication factor (the vshard map's; 0: no map yet). */
int ns_vshard_factor(struct ns_op *op, uint32_t *replicas);
int ns_vshard_list(struct ns_op *op, const uint8_t *p, size_t len);
int ns_node_drain(struct ns_op *op, const uint8_t *p, size_t len);
int ns_vshard_mark(struct ns_op *op, const uint8_t *p, size_t len);
int ns_vshard_filled(struct ns_op *op, const uint8_t *p, size_t len);

/* ns_ino.c: the POSIX front. */
int ns_ino_lookup(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_getattr(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_readdir(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_make(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_unlink(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_link(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_rename(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_setattr(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_write(struct ns_op *op, const uint8_t *p, size_t len);
int ns_ino_etag(struct ns_op *op, const uint8_t *p, size_t len);
int ns_orphan_drop(struct ns_op *op, const uint8_t *p, size_t len);
int ns_xattr_set(struct ns_op *op, const uint8_t *p, size_t len);
int ns_xattr_remove(struct ns_op *op, const uint8_t *p, size_t len);
int ns_xattr_get(struct ns_op *op, const uint8_t *p, size_t len);
int ns_xattr_list(struct ns_op *op, const uint8_t *p, size_t len);

/* Encodes msg with d as the reply. */
int ns_reply(struct ns_op *op, const struct mkv_msgdesc *d, const void *msg);

/* Strips one pair of surrounding double quotes from an ETag. */
struct mkv_slice ns_etag_bare(struct mkv_slice e);
int ns_slice_cmp(struct mkv_slice a, struct mkv_slice b);

#endif /* MKV_META_NS_INT_H */
