/* minikv meta: the namespace state machine.
 *
 * A deterministic state machine over LMDB: buckets, keys (as a tree of
 * directories and files), multipart uploads, chunk bookkeeping (id
 * allocation, reverse index, garbage), access keys and client sessions.
 * The LMDB schema is documented byte by byte in docs/design-meta.md.
 *
 * State changes arrive as Raft log entries: an mkv_raft_cmd envelope (see
 * lib/minikv/wire.h) whose payload is a [raft] request exactly as it came off
 * the wire. mkv_ns_apply applies one entry; entries are batched into one LMDB
 * write transaction that mkv_ns_flush commits. The stored applied index is
 * written in the same transaction as the state it describes, so after a crash
 * the environment is at some applied index X and entries <= X are skipped
 * when Raft replays them.
 *
 * Threading: one thread (the Raft loop) calls everything here, except
 * mkv_ns_snapshot_copy and mkv_ns_sync_to, which may run on a worker thread
 * concurrently with apply/query/flush on the loop thread, and mkv_ns_read,
 * which any thread may call until mkv_ns_close.
 */
#ifndef MKV_META_NS_H
#define MKV_META_NS_H

#include <stddef.h>
#include <stdint.h>

#include "minikv/buf.h"
#include "minikv/common.h"

struct mkv_ns;

struct mkv_ns_opts
{
    const char *dir;   /* directory of the LMDB environment (created if missing) */
    uint64_t map_size; /* LMDB map size in bytes; 0: 16 GiB */
    int no_sync;       /* 1: never fsync the environment (tests only; see the design notes) */
};

/* Counters reported by META_STATUS. */
struct mkv_ns_counters
{
    uint64_t buckets;
    uint64_t objects; /* files and explicit directories, buckets excluded */
    uint64_t bytes;   /* sum of file sizes */
    uint64_t uploads; /* multipart uploads in progress */
    uint64_t garbage; /* (chunk, version) pairs waiting for gc_done */
};

/* Opens (creating if needed) the environment in opts->dir. On success *out
 * owns the environment until mkv_ns_close. err gets a message on failure. */
int mkv_ns_open(const struct mkv_ns_opts *opts, struct mkv_ns **out, char *err, size_t errlen);
/* Commits a pending batch (errors are logged), syncs, marks the state
 * clean and closes. NULL is a no-op. */
void mkv_ns_close(struct mkv_ns *ns);

/* Batches are committed without fsync: the Raft log is what makes a
 * command durable, and after kill -9 the page cache still holds every
 * committed transaction. To bound what an OS crash or power loss makes
 * untrustworthy, the owner calls this every few seconds: the last
 * committed transaction's id (mkv_ns_sync_point, on the loop thread), then
 * mkv_ns_sync_to with it (fsync of the environment and of the state file:
 * slow, and safe on a worker thread while the loop goes on). An
 * environment found unsynced after a reboot is discarded at open and
 * rebuilt by Raft from its last snapshot and log. sync_point returns 0 when
 * there is nothing new to sync. */
uint64_t mkv_ns_sync_point(struct mkv_ns *ns);
int mkv_ns_sync_to(struct mkv_ns *ns, uint64_t txn);

/* Applies the Raft entry at raft_index. env[len] is an encoded mkv_raft_cmd.
 * *status gets 0 or the command's negative code (MKV_E*, -errno); reply is
 * reset and gets the encoded *_rep payload when *status == 0 (the caller
 * owns it). An entry with raft_index <= the applied index is skipped (status
 * 0, empty reply). Returns 0, or a negative code when the state machine
 * itself failed (LMDB error): the pending batch is then discarded and the
 * node must stop. */
int mkv_ns_apply(struct mkv_ns *ns, uint64_t raft_index, const void *env, size_t len, int *status,
                 struct mkv_buf *reply);
/* Commits the pending batch, if any. Returns 0 or a negative code (fatal). */
int mkv_ns_flush(struct mkv_ns *ns);
/* 1 when applied entries wait in an uncommitted batch. */
int mkv_ns_dirty(const struct mkv_ns *ns);
/* Drops the uncommitted batch: the state goes back to the last commit.
 * Raft applies the dropped entries again after a restart (the node stops
 * serving; see "Applying ahead" in node.c). */
void mkv_ns_discard(struct mkv_ns *ns);

/* Answers a read-only request: BUCKET_HEAD, BUCKET_LIST, OBJ_LOOKUP,
 * OBJ_LIST, MPU_GET, MPU_LIST_PARTS, MPU_LIST_UPLOADS, GC_LIST, REFCHECK,
 * KEY_GET, KEY_LIST. req[len] is the request payload (no session prefix).
 * Sees the pending batch. Same status/reply/return convention as apply;
 * an unknown type gives *status -ENOTSUP. */
int mkv_ns_query(struct mkv_ns *ns, uint16_t type, const void *req, size_t len, int *status,
                 struct mkv_buf *reply);

/* Index of the last applied entry (pending batch included). */
uint64_t mkv_ns_applied(const struct mkv_ns *ns);
/* Entries applied to the pending batch (0 when it is clean). */
uint64_t mkv_ns_batch_entries(const struct mkv_ns *ns);
void mkv_ns_counters(const struct mkv_ns *ns, struct mkv_ns_counters *out);
/* Entries mkv_ns_apply skipped because they were already applied. */
uint64_t mkv_ns_skipped(const struct mkv_ns *ns);
/* Commands that failed after modifying a table (a bug; logged). */
uint64_t mkv_ns_partial(const struct mkv_ns *ns);

/* ---- snapshots ----
 * A snapshot is a header (MKV_NS_SNAP_HDR bytes: "MKVNSNP1", u64 applied
 * index, u64 image length, all little-endian) followed by a compacted LMDB
 * image (mdb_env_copyfd2 with MDB_CP_COMPACT). */
#define MKV_NS_SNAP_HDR 24

/* Commits the pending batch so that a copy taken afterwards holds every
 * applied entry. Loop thread. */
int mkv_ns_snapshot_prepare(struct mkv_ns *ns, uint64_t *applied);
/* Writes the LMDB image to the new file path (created exclusively) and fills
 * hdr with the header for it. The image is taken with its own read
 * transaction when the copy starts, so its applied index (in hdr) is >= the
 * one mkv_ns_snapshot_prepare returned. Safe on a worker thread while the
 * loop thread applies; the caller must not close or restore meanwhile. */
int mkv_ns_snapshot_copy(struct mkv_ns *ns, const char *path, uint8_t hdr[MKV_NS_SNAP_HDR],
                         uint64_t *image_len);
/* Restores from snap[len] (header + image). When the snapshot's applied index
 * is not newer than the local one, the local state is kept (it holds every
 * entry of the snapshot: apply only ever sees committed entries) and
 * *replaced = 0. Otherwise the environment is replaced by the image
 * (written to a file, fsynced and renamed over data.mdb) and *replaced = 1.
 * Returns 0, -EINVAL for a bad snapshot, or an I/O/LMDB error (fatal: the
 * ns is then closed internally and every further call fails with -EIO). */
int mkv_ns_restore(struct mkv_ns *ns, const void *snap, size_t len, int *replaced);

/* mkv_ns_query on committed state only (a read transaction of its own,
 * never the pending batch), callable from any thread. Every state a command
 * reply has announced is committed before the reply goes out, so this
 * sees every acknowledged command; and because the service and in-process
 * readers both use it, no reader sees state another could then miss. The
 * exception is a batch held with entries applied ahead (node.c), whose
 * replies may precede the commit: the node then reads with mkv_ns_query
 * and turns the other threads' reads off until the batch is committed. */
int mkv_ns_read(struct mkv_ns *ns, uint16_t type, const void *req, size_t len, int *status,
                struct mkv_buf *reply);

/* 1 when type is a [raft] request mkv_ns_apply handles. */
int mkv_ns_is_command(uint16_t type);
/* 1 when type is a read-only request mkv_ns_query answers. */
int mkv_ns_is_query(uint16_t type);

/* Names are checked with lib/minikv/names.h, the rules every front shares. */

#endif /* MKV_META_NS_H */
