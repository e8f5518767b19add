/* minikv FUSE client: fcntl record locks and flock, held by the cluster
 * (the metadata leader's lock table, LOCK requests) so that they hold
 * between mounts, and between processes of one mount alike.
 *
 * A lock that conflicts is refused by the leader; F_SETLKW (and flock
 * without LOCK_NB) then asks again after a pause that grows from 2 ms to
 * 100 ms, until granted or the caller is interrupted (EINTR). There is no
 * deadlock detection (EDEADLK) across mounts.
 *
 * fcntl locks of a process go at each close of the file by that process
 * (flush, with its lock owner); a flock goes at the last close of its open
 * file (release). The leader drops a mount's locks when its connection
 * closes: a mount that dies, or loses its connection, loses its locks.
 *
 * Coherence follows the locks, as with NFS: unlocking commits what was
 * written first, and locking reloads the file from the cluster and drops
 * the kernel's cached pages, so that the next holder of a lock reads what
 * the previous one wrote under it, whatever the mount. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "fs_int.h"
#include "minikv/err.h"

#define RETRY_FIRST_MS 2
#define RETRY_MAX_MS 100

struct lkwait
{
    uv_timer_t timer;
    struct fop *op;
    uint64_t delay;
};

static void lock_request(struct fop *op, struct mkv_lock_req *q)
{
    q->ino = fs_ns_ino(op->fs, op->ino);
    q->owner = op->lock_owner;
    q->pid = (uint32_t)op->lk.l_pid;
    switch (op->lk.l_type) {
    case F_RDLCK: q->type = MKV_LOCK_READ; break;
    case F_WRLCK: q->type = MKV_LOCK_WRITE; break;
    default: q->type = MKV_LOCK_UNLOCK; break;
    }
    if (op->kind == FOP_FLOCK) {
        q->flags |= MKV_LOCK_FLOCK;
        q->start = 0;
        q->end = UINT64_MAX;
    } else {
        /* libfuse gives SEEK_SET ranges; length 0 runs to the end. */
        q->start = op->lk.l_start < 0 ? 0 : (uint64_t)op->lk.l_start;
        q->end = op->lk.l_len <= 0 ? UINT64_MAX : q->start + (uint64_t)op->lk.l_len - 1;
    }
}

static void on_getlk(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_lock_rep rep;
    struct flock fl = op->lk;
    if (!status && (!reply || mkv_frame_decode(reply, &mkv_desc_lock_rep, &rep))) status = -EIO;
    if (status) {
        fop_error(op, status);
        return;
    }
    if (rep.type == MKV_LOCK_UNLOCK) {
        fl.l_type = F_UNLCK;
    } else {
        fl.l_type = rep.type == MKV_LOCK_WRITE ? F_WRLCK : F_RDLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = (off_t)rep.start;
        fl.l_len = rep.end == UINT64_MAX ? 0 : (off_t)(rep.end - rep.start + 1);
        fl.l_pid = (pid_t)rep.pid;
    }
    fuse_reply_lock(op->req, &fl);
    fop_free(op);
}

void op_getlk(struct fop *op)
{
    struct mkv_lock_req q = {0};
    int rv;
    lock_request(op, &q);
    q.flags |= MKV_LOCK_TEST;
    if ((rv = fs_meta(op, MKV_MSG_LOCK, &mkv_desc_lock_req, &q, on_getlk))) fop_error(op, rv);
}

static void send_setlk(struct fop *op);

static void wait_closed(uv_handle_t *h)
{
    free(h->data);
}

static void wait_end(struct fop *op)
{
    struct lkwait *w = op->ctx2;
    op->ctx2 = NULL;
    if (w) uv_close((uv_handle_t *)&w->timer, wait_closed);
}

static void on_retry(uv_timer_t *t)
{
    struct lkwait *w = t->data;
    struct fop *op = w->op;
    if (fuse_req_interrupted(op->req) || op->fs->stopping) {
        wait_end(op);
        fop_error(op, -EINTR);
        return;
    }
    send_setlk(op);
}

static void on_relocked(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_obj_info oi;
    struct fino *fi = fino_find(op->fs, fs_ns_ino(op->fs, op->ino));
    if (!status && fi && reply && mkv_frame_decode(reply, &mkv_desc_obj_info, &oi) == 0)
        fs_file_reload(op->fs, fi, &oi);
    fs_inval_reply(op->fs, op);
}

static void on_setlk(struct fop *op, int status, struct mkv_frame *reply)
{
    struct lkwait *w = op->ctx2;
    struct fino *fi;
    (void)reply;
    if (status == -EAGAIN && op->lk_sleep) {
        if (!w) {
            if (!(w = calloc(1, sizeof *w)) || uv_timer_init(&op->fs->loop, &w->timer)) {
                free(w);
                fop_error(op, -ENOLCK);
                return;
            }
            w->timer.data = w;
            w->op = op;
            w->delay = RETRY_FIRST_MS;
            op->ctx2 = w;
        } else if (w->delay < RETRY_MAX_MS) {
            w->delay = w->delay * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : w->delay * 2;
        }
        uv_timer_start(&w->timer, on_retry, w->delay, 0);
        return;
    }
    wait_end(op);
    if (status) {
        fop_error(op, status);
        return;
    }
    if (op->lk.l_type == F_UNLCK) {
        fuse_reply_err(op->req, 0);
        fop_free(op);
        return;
    }
    if ((fi = fino_find(op->fs, fs_ns_ino(op->fs, op->ino)))) fi->locked = 1;
    /* Locked: what others wrote under the lock before is read now (the
     * file again from the cluster, the kernel's pages dropped). */
    {
        struct mkv_ino_getattr_req q = {0};
        q.ino = fs_ns_ino(op->fs, op->ino);
        if (fs_meta(op, MKV_MSG_INO_GETATTR, &mkv_desc_ino_getattr_req, &q, on_relocked))
            fs_inval_reply(op->fs, op);
    }
}

static void send_setlk(struct fop *op)
{
    struct mkv_lock_req q = {0};
    int rv;
    lock_request(op, &q);
    if ((rv = fs_meta(op, MKV_MSG_LOCK, &mkv_desc_lock_req, &q, on_setlk))) {
        wait_end(op);
        fop_error(op, rv);
    }
}

/* Unlocking: what was written under the lock is committed first, so that
 * the next holder reads it. */
static void on_unlock_synced(struct fop *op, int status)
{
    (void)status; /* a failed write-back is reported by the next fsync or close */
    send_setlk(op);
}

void op_setlk(struct fop *op)
{
    int rv;
    if (op->lk.l_type != F_UNLCK) {
        send_setlk(op);
        return;
    }
    if ((rv = fs_sync_then(op, on_unlock_synced))) fop_error(op, rv);
}

/* ---- at close ---- */

static void on_close_unlocked(struct fop *op, int status, struct mkv_frame *reply)
{
    void (*next)(struct fop *) = op->after;
    (void)status; /* the connection is gone, or the lock was: nothing held either way */
    (void)reply;
    op->after = NULL;
    next(op);
}

void fs_unlock_on_close(struct fop *op, int flock, void (*next)(struct fop *op))
{
    struct fino *fi = fino_find(op->fs, fs_ns_ino(op->fs, op->ino));
    struct mkv_lock_req q = {0};
    if (!fi || !fi->locked) {
        next(op);
        return;
    }
    q.ino = fi->ino;
    q.owner = op->lock_owner;
    q.type = MKV_LOCK_UNLOCK;
    q.end = UINT64_MAX;
    if (flock) q.flags = MKV_LOCK_FLOCK;
    op->after = next;
    if (fs_meta(op, MKV_MSG_LOCK, &mkv_desc_lock_req, &q, on_close_unlocked)) {
        op->after = NULL;
        next(op);
    }
}
