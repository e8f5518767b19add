/* minikv FUSE client: the low-level operations table, and the session's
 * requests read and handled on the client thread's loop (see fs_int.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "fs_int.h"
#include "minikv/err.h"
#include "minikv/log.h"

struct fs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

uint64_t fs_ns_ino(struct fs *fs, fuse_ino_t ino)
{
    return ino == FUSE_ROOT_ID ? fs->root : (uint64_t)ino;
}

fuse_ino_t fs_fuse_ino(struct fs *fs, uint64_t ino)
{
    /* The namespace root (1) is FUSE_ROOT_ID only when it is mounted; a
     * bucket mount never meets it below its root. */
    return ino == fs->root ? FUSE_ROOT_ID : (fuse_ino_t)ino;
}

int fs_errno(int status)
{
    if (status >= 0) return 0;
    switch (status) {
    case MKV_ENOBUCKET:
    case MKV_ENOTFOUND: return ENOENT;
    case MKV_EBUCKETNOTEMPTY: return ENOTEMPTY;
    case MKV_EBUCKETEXISTS: return EEXIST;
    case MKV_EKEYCONFLICT: return EEXIST;
    case MKV_EBADNAME: return EINVAL;
    case MKV_EPRECONDITION: return EAGAIN;
    case MKV_ECHECKSUM: return EIO;
    case MKV_ESTALE: return ESTALE;
    case MKV_ENOTLEADER:
    case MKV_EUNAVAILABLE: return EIO;
    case MKV_ENOKEY: return EACCES;
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EPIPE:
    case -ENOTCONN:
    case -ECANCELED:
    case -EPROTO: return EIO;
    default: return status > -4096 ? -status : EIO;
    }
}

void fop_free(struct fop *op)
{
    free(op->name);
    free(op->name2);
    free(op->buf);
    free(op->forgets);
    free(op);
}

void fop_error(struct fop *op, int status)
{
    if (op->req) fuse_reply_err(op->req, fs_errno(status));
    fop_free(op);
}

static void on_meta(struct mkv_meta_req *m, int status, struct mkv_frame *reply)
{
    struct fop *op = m->data;
    void (*cb)(struct fop *, int, struct mkv_frame *) =
        (void (*)(struct fop *, int, struct mkv_frame *))op->ctx;
    op->ctx = NULL;
    cb(op, status, reply);
}

int fs_meta(struct fop *op, uint16_t type, const struct mkv_msgdesc *d, const void *msg,
            void (*cb)(struct fop *op, int status, struct mkv_frame *reply))
{
    op->m.data = op;
    op->ctx = (void *)cb;
    return mkv_meta_call(op->fs->client, &op->m, type, d, msg, on_meta);
}

int fs_meta_sync(struct fop *op, void (*cb)(struct fop *op, int status, struct mkv_frame *reply))
{
    op->m.data = op;
    op->ctx = (void *)cb;
    return mkv_client_sync(op->fs->client, &op->m, on_meta);
}

/* ---- kernel cache invalidation ---- */

static void *inval_main(void *arg)
{
    struct fs *fs = arg;
    pthread_mutex_lock(&fs->ilock);
    for (;;) {
        struct fop *op;
        while (!fs->iq_head && !fs->inval_stop) pthread_cond_wait(&fs->icond, &fs->ilock);
        if (!(op = fs->iq_head)) break;
        fs->iq_head = op->next;
        if (!fs->iq_head) fs->iq_tail = NULL;
        pthread_mutex_unlock(&fs->ilock);
        /* Pages and attributes; -ENOENT: the kernel has no such inode now. */
        fuse_lowlevel_notify_inval_inode(fs->se, op->ino, 0, 0);
        fuse_reply_err(op->req, 0);
        fop_free(op);
        pthread_mutex_lock(&fs->ilock);
    }
    pthread_mutex_unlock(&fs->ilock);
    return NULL;
}

int fs_inval_start(struct fs *fs)
{
    pthread_mutex_init(&fs->ilock, NULL);
    pthread_cond_init(&fs->icond, NULL);
    if (pthread_create(&fs->inval_thread, NULL, inval_main, fs)) return -EAGAIN;
    fs->inval_started = 1;
    return 0;
}

/* After the session loop ended: what is queued is still answered. */
void fs_inval_stop(struct fs *fs)
{
    if (!fs->inval_started) return;
    pthread_mutex_lock(&fs->ilock);
    fs->inval_stop = 1;
    pthread_cond_signal(&fs->icond);
    pthread_mutex_unlock(&fs->ilock);
    pthread_join(fs->inval_thread, NULL);
    fs->inval_started = 0;
}

void fs_inval_reply(struct fs *fs, struct fop *op)
{
    op->next = NULL;
    pthread_mutex_lock(&fs->ilock);
    if (fs->iq_tail) fs->iq_tail->next = op;
    else fs->iq_head = op;
    fs->iq_tail = op;
    pthread_cond_signal(&fs->icond);
    pthread_mutex_unlock(&fs->ilock);
}

/* ---- requests ---- */

static void dispatch(struct fop *op)
{
    switch (op->kind) {
    case FOP_LOOKUP: op_lookup(op); break;
    case FOP_FORGET:
    case FOP_FORGET_MULTI: op_forget(op); break;
    case FOP_GETATTR: op_getattr(op); break;
    case FOP_SETATTR: op_setattr(op); break;
    case FOP_READLINK: op_readlink(op); break;
    case FOP_MKNOD:
    case FOP_MKDIR:
    case FOP_SYMLINK:
    case FOP_CREATE: op_make(op); break;
    case FOP_UNLINK:
    case FOP_RMDIR: op_unlink(op); break;
    case FOP_RENAME: op_rename(op); break;
    case FOP_LINK: op_link(op); break;
    case FOP_OPEN: op_open(op); break;
    case FOP_READ: op_read(op); break;
    case FOP_WRITE: op_write(op); break;
    case FOP_FLUSH: op_flush(op); break;
    case FOP_RELEASE: op_release(op); break;
    case FOP_FSYNC: op_fsync(op); break;
    case FOP_FSYNCDIR: op_fsyncdir(op); break;
    case FOP_OPENDIR: op_opendir(op); break;
    case FOP_READDIR: op_readdir(op); break;
    case FOP_RELEASEDIR: op_releasedir(op); break;
    case FOP_STATFS: op_statfs(op); break;
    case FOP_SETXATTR: op_setxattr(op); break;
    case FOP_GETXATTR: op_getxattr(op); break;
    case FOP_LISTXATTR: op_listxattr(op); break;
    case FOP_REMOVEXATTR: op_removexattr(op); break;
    case FOP_FALLOCATE: op_fallocate(op); break;
    case FOP_GETLK: op_getlk(op); break;
    case FOP_SETLK:
    case FOP_FLOCK: op_setlk(op); break;
    }
}

static struct fop *fop_new(fuse_req_t req, enum fop_kind kind, fuse_ino_t ino)
{
    struct fop *op = calloc(1, sizeof *op);
    if (!op) {
        if (req) fuse_reply_err(req, ENOMEM);
        return NULL;
    }
    op->kind = kind;
    op->req = req;
    op->ino = ino;
    if (req) {
        const struct fuse_ctx *ctx = fuse_req_ctx(req);
        op->uid = ctx->uid;
        op->gid = ctx->gid;
    }
    return op;
}

static void submit(struct fs *fs, struct fop *op)
{
    op->fs = fs;
    if (fs->stopping && op->req) {
        fop_error(op, -EIO);
        return;
    }
    dispatch(op);
}

/* Requests read per wakeup before the loop sees to the network again. */
#define SESSION_BATCH 32

static void on_session(uv_poll_t *p, int status, int events)
{
    struct fs *fs = p->data;
    (void)events;
    if (status < 0) {
        MKV_ERROR("fs", "FUSE session err=\"%s\"", uv_strerror(status));
        fs_stop(fs);
        return;
    }
    for (int i = 0; i < SESSION_BATCH && !fs->stopping; i++) {
        int res = fuse_session_receive_buf(fs->se, &fs->fbuf);
        if (res == -EAGAIN || res == -EINTR) return;
        if (res <= 0 || fuse_session_exited(fs->se)) {
            /* 0: the kernel ended the session (unmounted, or aborted). */
            if (res < 0) MKV_ERROR("fs", "reading /dev/fuse err=\"%s\"", strerror(-res));
            fs_stop(fs);
            return;
        }
        fuse_session_process_buf(fs->se, &fs->fbuf);
    }
}

int fs_session_start(struct fs *fs)
{
    int fd = fuse_session_fd(fs->se);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    if (uv_poll_init(&fs->loop, &fs->session, fd)) return -EIO;
    fs->session.data = fs; /* set: fs_stop closes it */
    return uv_poll_start(&fs->session, UV_READABLE, on_session);
}

static int dup_name(struct fop *op, const char *name, char **out)
{
    size_t n = strlen(name);
    if (n > MKV_NAME_MAX) {
        fop_error(op, -ENAMETOOLONG);
        return -1;
    }
    if (!(*out = strdup(name))) {
        fop_error(op, -ENOMEM);
        return -1;
    }
    return 0;
}

/* ---- libfuse entry points (on the client thread, from on_session) ---- */

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fop *op = fop_new(req, FOP_LOOKUP, parent);
    if (!op || dup_name(op, name, &op->name)) return;
    submit(fs_of(req), op);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    struct fop *op = fop_new(NULL, FOP_FORGET, ino);
    if (op) {
        op->nlookup = nlookup;
        submit(fs_of(req), op);
    }
    fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    struct fop *op = fop_new(NULL, FOP_FORGET_MULTI, 0);
    if (op && (op->forgets = malloc(count * sizeof *forgets))) {
        memcpy(op->forgets, forgets, count * sizeof *forgets);
        op->nforgets = count;
        submit(fs_of(req), op);
    } else {
        free(op);
    }
    fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_GETATTR, ino);
    (void)fi;
    if (op) submit(fs_of(req), op);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_SETATTR, ino);
    if (!op) return;
    op->st = *attr;
    op->to_set = to_set;
    op->fh = fi ? fi->fh : 0;
    submit(fs_of(req), op);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct fop *op = fop_new(req, FOP_READLINK, ino);
    if (op) submit(fs_of(req), op);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    struct fop *op;
    if (!S_ISREG(mode) && !S_ISFIFO(mode)) {
        fuse_reply_err(req, EPERM); /* devices and sockets are not stored */
        return;
    }
    op = fop_new(req, FOP_MKNOD, parent);
    if (!op || dup_name(op, name, &op->name)) return;
    op->mode = mode;
    op->rdev = rdev;
    submit(fs_of(req), op);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct fop *op = fop_new(req, FOP_MKDIR, parent);
    if (!op || dup_name(op, name, &op->name)) return;
    op->mode = mode | S_IFDIR;
    submit(fs_of(req), op);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    struct fop *op = fop_new(req, FOP_SYMLINK, parent);
    if (!op || dup_name(op, name, &op->name)) return;
    if (strlen(link) >= 4096) {
        fop_error(op, -ENAMETOOLONG);
        return;
    }
    if (!(op->name2 = strdup(link))) {
        fop_error(op, -ENOMEM);
        return;
    }
    op->mode = S_IFLNK | 0777;
    submit(fs_of(req), op);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fop *op = fop_new(req, FOP_UNLINK, parent);
    if (!op || dup_name(op, name, &op->name)) return;
    submit(fs_of(req), op);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fop *op = fop_new(req, FOP_RMDIR, parent);
    if (!op || dup_name(op, name, &op->name)) return;
    submit(fs_of(req), op);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    struct fop *op = fop_new(req, FOP_RENAME, parent);
    if (!op || dup_name(op, name, &op->name) || dup_name(op, newname, &op->name2)) return;
    op->ino2 = newparent;
    op->flags = (int)flags;
    submit(fs_of(req), op);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct fop *op = fop_new(req, FOP_LINK, ino);
    if (!op || dup_name(op, newname, &op->name)) return;
    op->ino2 = newparent;
    submit(fs_of(req), op);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_OPEN, ino);
    if (!op) return;
    op->flags = fi->flags;
    submit(fs_of(req), op);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_CREATE, parent);
    if (!op || dup_name(op, name, &op->name)) return;
    op->mode = mode;
    op->flags = fi->flags;
    submit(fs_of(req), op);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_READ, ino);
    if (!op) return;
    op->size = size;
    op->off = off;
    op->fh = fi->fh;
    submit(fs_of(req), op);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_WRITE, ino);
    if (!op) return;
    op->data = (const uint8_t *)buf; /* the request buffer: op_write copies it */
    op->size = size;
    op->off = off;
    op->fh = fi->fh;
    op->flags = fi->flags;
    submit(fs_of(req), op);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_FLUSH, ino);
    if (!op) return;
    op->fh = fi->fh;
    op->lock_owner = fi->lock_owner;
    submit(fs_of(req), op);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_RELEASE, ino);
    if (!op) return;
    op->fh = fi->fh;
    op->flags = fi->flags;
    op->lock_owner = fi->lock_owner;
    op->flock_release = fi->flock_release;
    submit(fs_of(req), op);
}

static void ll_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
    struct fop *op = fop_new(req, FOP_GETLK, ino);
    if (!op) return;
    op->fh = fi->fh;
    op->lock_owner = fi->lock_owner;
    op->lk = *lock;
    submit(fs_of(req), op);
}

static void ll_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
                     int sleep)
{
    struct fop *op = fop_new(req, FOP_SETLK, ino);
    if (!op) return;
    op->fh = fi->fh;
    op->lock_owner = fi->lock_owner;
    op->lk = *lock;
    op->lk_sleep = sleep;
    submit(fs_of(req), op);
}

static void ll_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int how)
{
    struct fop *op = fop_new(req, FOP_FLOCK, ino);
    if (!op) return;
    op->fh = fi->fh;
    op->lock_owner = fi->lock_owner;
    switch (how & ~LOCK_NB) {
    case LOCK_SH: op->lk.l_type = F_RDLCK; break;
    case LOCK_EX: op->lk.l_type = F_WRLCK; break;
    default: op->lk.l_type = F_UNLCK; break;
    }
    op->lk_sleep = !(how & LOCK_NB);
    submit(fs_of(req), op);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_FSYNC, ino);
    if (!op) return;
    op->fh = fi->fh;
    op->datasync = datasync;
    submit(fs_of(req), op);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_OPENDIR, ino);
    (void)fi;
    if (op) submit(fs_of(req), op);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi, int plus)
{
    struct fop *op = fop_new(req, FOP_READDIR, ino);
    if (!op) return;
    op->size = size;
    op->off = off;
    op->fh = fi->fh;
    op->plus = plus;
    submit(fs_of(req), op);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, fi, 0);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, fi, 1);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_RELEASEDIR, ino);
    if (!op) return;
    op->fh = fi->fh;
    submit(fs_of(req), op);
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    /* Namespace changes are answered before they are durable (early
     * replies): this waits until every one so far is. */
    struct fop *op = fop_new(req, FOP_FSYNCDIR, ino);
    (void)datasync;
    (void)fi;
    if (!op) return;
    submit(fs_of(req), op);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct fop *op = fop_new(req, FOP_STATFS, ino);
    if (op) submit(fs_of(req), op);
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    struct fop *op;
    if (size > MKV_XATTR_MAX) {
        fuse_reply_err(req, E2BIG);
        return;
    }
    op = fop_new(req, FOP_SETXATTR, ino);
    if (!op || dup_name(op, name, &op->name)) return;
    if (size && !(op->buf = malloc(size))) {
        fop_error(op, -ENOMEM);
        return;
    }
    if (size) memcpy(op->buf, value, size);
    op->size = size;
    op->flags = flags;
    submit(fs_of(req), op);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    struct fop *op = fop_new(req, FOP_GETXATTR, ino);
    if (!op || dup_name(op, name, &op->name)) return;
    op->size = size;
    submit(fs_of(req), op);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct fop *op = fop_new(req, FOP_LISTXATTR, ino);
    if (!op) return;
    op->size = size;
    submit(fs_of(req), op);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    struct fop *op = fop_new(req, FOP_REMOVEXATTR, ino);
    if (!op || dup_name(op, name, &op->name)) return;
    submit(fs_of(req), op);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
    struct fop *op = fop_new(req, FOP_FALLOCATE, ino);
    if (!op) return;
    op->flags = mode;
    op->off = offset;
    op->size = (size_t)length;
    op->fh = fi->fh;
    submit(fs_of(req), op);
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
    struct fs *fs = userdata;
    (void)fs;
    /* Locks are the cluster's (locks.c), so that they hold between mounts. */
    if (conn->capable & FUSE_CAP_POSIX_LOCKS) conn->want |= FUSE_CAP_POSIX_LOCKS;
    if (conn->capable & FUSE_CAP_FLOCK_LOCKS) conn->want |= FUSE_CAP_FLOCK_LOCKS;
    if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
    if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
    if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
    /* O_TRUNC comes as a setattr before the open, not inside it. */
    conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
    conn->max_write = 1u << 20;
    conn->max_readahead = 1u << 20;
}

const struct fuse_lowlevel_ops fs_ops = {
    .init = ll_init,
    .lookup = ll_lookup,
    .forget = ll_forget,
    .forget_multi = ll_forget_multi,
    .getattr = ll_getattr,
    .setattr = ll_setattr,
    .readlink = ll_readlink,
    .mknod = ll_mknod,
    .mkdir = ll_mkdir,
    .symlink = ll_symlink,
    .unlink = ll_unlink,
    .rmdir = ll_rmdir,
    .rename = ll_rename,
    .link = ll_link,
    .open = ll_open,
    .create = ll_create,
    .read = ll_read,
    .write = ll_write,
    .flush = ll_flush,
    .release = ll_release,
    .fsync = ll_fsync,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .readdirplus = ll_readdirplus,
    .releasedir = ll_releasedir,
    .fsyncdir = ll_fsyncdir,
    .statfs = ll_statfs,
    .setxattr = ll_setxattr,
    .getxattr = ll_getxattr,
    .listxattr = ll_listxattr,
    .removexattr = ll_removexattr,
    .fallocate = ll_fallocate,
    .getlk = ll_getlk,
    .setlk = ll_setlk,
    .flock = ll_flock,
};
