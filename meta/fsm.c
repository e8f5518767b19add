/* minikv meta: the Raft FSM adapter (raft_fsm version 3) over meta/ns.h.
 *
 * apply: raft (v0.15, src/replication.c replicationApply) calls fsm->apply
 * for index last_applied + 1 and only then sets last_applied = index, so the
 * entry's index is raft_last_applied() + 1. The state machine writes into
 * its batch transaction; node.c commits the batch at the end of the loop
 * iteration (uv_check) and only then releases the replies. An entry the
 * leader applied ahead (node.c, "Applying ahead") is already in the batch:
 * its apply here is skipped, and the batch is not committed while it holds
 * such an entry raft has not committed yet.
 *
 * Why this is safe under kill -9: apply only ever sees committed entries.
 * LMDB holds, in one transaction, the state and the index it reflects (X).
 * A crash loses at most the open batch; at restart raft re-applies from its
 * snapshot index S and the state machine skips indices <= X. Entries after
 * X are still in the raft log because raft only deletes entries covered by
 * a snapshot, and a snapshot is taken at an index <= X: fsm->snapshot
 * commits the batch first. A client therefore never sees a reply (nor a
 * read, which only happens on the thread that owns the batch) for state that
 * a restart would not rebuild.
 *
 * snapshot (loop thread): commits the batch. snapshot_async (raft's worker
 * thread): mdb_env_copyfd2(MDB_CP_COMPACT) into DIR/snap-N.tmp, which is
 * mmapped and handed to raft as [header, image]; finalize unmaps and
 * removes it. The copy runs its own read transaction, so the image may hold
 * entries applied after the snapshot index raft records (never fewer); the
 * header carries the image's own applied index, and since entries <= that
 * index are skipped when raft replays from its snapshot index, the extra
 * entries are harmless.
 *
 * restore (loop thread; at start and on InstallSnapshot): replaces the
 * environment only when the snapshot is newer than the local state. At a
 * restart the local LMDB is usually at or past the snapshot, so only the
 * short log tail after it is replayed, not the history. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "meta/node_int.h"
#include "minikv/log.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct mkv_node *n = fsm->data;
    raft_index index = raft_last_applied(&n->raft) + 1;
    uint64_t skipped = mkv_ns_skipped(n->ns);
    int rc;
    *result = NULL;
    if (n->fatal) return RAFT_IOERR;
    rc = mkv_ns_apply(n->ns, index, buf->base, buf->len, &n->res_status, &n->res_reply);
    if (rc) {
        mkv_node_fail(n, "apply");
        return RAFT_IOERR;
    }
    n->stats.applied++;
    if (n->starting || index <= n->stats.start_last_index) {
        n->stats.replayed++;
        if (mkv_ns_skipped(n->ns) != skipped) n->stats.replay_skipped++;
    }
    mkv_node_kick(n);
    *result = n;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct mkv_node *n = fsm->data;
    uint64_t applied;
    if (n->fatal) return RAFT_IOERR;
    if (n->snap_busy) return RAFT_BUSY;
    /* The batch holds entries applied ahead and not committed: it cannot
     * be committed yet. raft tries again after its next commit. */
    if (mkv_node_holding(n)) return RAFT_BUSY;
    /* Everything applied so far must be in the copy: commit the batch. */
    if (mkv_ns_snapshot_prepare(n->ns, &applied)) {
        mkv_node_fail(n, "snapshot commit");
        return RAFT_IOERR;
    }
    n->snap_busy = 1;
    n->snap_seq++;
    snprintf(n->snap_path, sizeof n->snap_path, "%s/snap-%u.tmp", n->dir, n->snap_seq);
    unlink(n->snap_path);
    *bufs = NULL;
    *n_bufs = 0;
    MKV_DEBUG("meta", "snapshot start index=%llu", (unsigned long long)applied);
    return 0;
}

/* Runs on a raft worker thread: touches only the LMDB environment (the
 * copy is thread-safe) and the snapshot fields of n, which the loop thread
 * leaves alone until finalize. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct mkv_node *n = fsm->data;
    struct raft_buffer *b;
    uint64_t ilen;
    void *map;
    int fd;
    if (mkv_ns_snapshot_copy(n->ns, n->snap_path, n->snap_hdr, &ilen)) return RAFT_IOERR;
    fd = open(n->snap_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return RAFT_IOERR;
    map = mmap(NULL, (size_t)ilen, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return RAFT_IOERR;
    b = calloc(2, sizeof *b);
    if (!b) {
        munmap(map, (size_t)ilen);
        return RAFT_NOMEM;
    }
    n->snap_map = map;
    n->snap_len = (size_t)ilen;
    b[0].base = n->snap_hdr;
    b[0].len = MKV_NS_SNAP_HDR;
    b[1].base = map;
    b[1].len = (size_t)ilen;
    n->snap_bufs = b;
    *bufs = b;
    *n_bufs = 2;
    return 0;
}

static void snapshot_release(struct mkv_node *n)
{
    if (n->snap_map) munmap(n->snap_map, n->snap_len);
    n->snap_map = NULL;
    n->snap_len = 0;
    free(n->snap_bufs);
    n->snap_bufs = NULL;
    if (n->snap_path[0]) unlink(n->snap_path);
    n->snap_path[0] = 0;
    n->snap_busy = 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct mkv_node *n = fsm->data;
    if (*n_bufs == 2) {
        n->stats.snapshots++;
        MKV_INFO("meta", "snapshot taken image_index=%llu bytes=%zu",
                 (unsigned long long)mkv_get_le64(n->snap_hdr + 8), n->snap_len);
    }
    snapshot_release(n);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct mkv_node *n = fsm->data;
    int replaced = 0, rv;
    if (n->fatal) return RAFT_IOERR;
    if (n->snap_busy) return RAFT_BUSY;
    rv = mkv_ns_restore(n->ns, buf->base, buf->len, &replaced);
    if (rv == -EINVAL) {
        MKV_ERROR("meta", "snapshot rejected: bad format bytes=%zu", buf->len);
        return RAFT_MALFORMED;
    }
    if (rv) {
        mkv_node_fail(n, "restore");
        return RAFT_IOERR;
    }
    n->stats.restores++;
    if (replaced) n->stats.restores_replaced++;
    MKV_INFO("meta", "snapshot restored bytes=%zu replaced=%d", buf->len, replaced);
    /* Success: the buffer is ours to free. */
    raft_free(buf->base);
    return 0;
}

void mkv_node_fsm_init(struct mkv_node *n)
{
    memset(&n->fsm, 0, sizeof n->fsm);
    n->fsm.version = 3;
    n->fsm.data = n;
    n->fsm.apply = fsm_apply;
    n->fsm.snapshot = fsm_snapshot;
    n->fsm.restore = fsm_restore;
    n->fsm.snapshot_finalize = fsm_snapshot_finalize;
    n->fsm.snapshot_async = fsm_snapshot_async;
}

void mkv_node_fsm_cleanup(struct mkv_node *n)
{
    if (n->snap_busy) snapshot_release(n);
}
