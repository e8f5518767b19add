/* minikv FUSE client: namespace operations (client thread). Each turns
 * into one meta request (INO_*, XATTR_*) and one reply to the kernel. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include "fs_int.h"
#include "minikv/err.h"
#include "minikv/log.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define S(x) mkv_slice_str(x)

static int decode_inode(struct mkv_frame *reply, struct mkv_obj_info *oi)
{
    return reply && mkv_frame_decode(reply, &mkv_desc_obj_info, oi) == 0 ? 0 : -EIO;
}

/* Learns the inode of a reply (reached as name in parent) and answers the
 * kernel with an entry. */
static void reply_entry(struct fop *op, struct mkv_frame *reply, fuse_ino_t parent,
                        const char *name)
{
    struct mkv_obj_info oi;
    struct fuse_entry_param e;
    struct fino *fi;
    if (decode_inode(reply, &oi)) {
        fop_error(op, -EIO);
        return;
    }
    if (!(fi = fino_learn(op->fs, &oi))) {
        fop_error(op, -ENOMEM);
        return;
    }
    fino_place(op->fs, fi, parent, name);
    fs_entry(op->fs, fi, &e);
    if (fuse_reply_entry(op->req, &e) != 0) fino_forget(op->fs, fi, 1); /* interrupted */
    fop_free(op);
}

/* ---- lookup, forget, getattr ---- */

/* A negative entry, cached for secs (as long as a positive one would be,
 * when the cluster said so). */
static void reply_noent(struct fop *op, double secs)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.entry_timeout = secs;
    fuse_reply_entry(op->req, &e);
    fop_free(op);
}

static void on_lookup(struct fop *op, int status, struct mkv_frame *reply)
{
    if (status == -ENOENT) {
        reply_noent(op, op->fs->o.entry_timeout);
        return;
    }
    if (status) {
        fop_error(op, status);
        return;
    }
    fs_names_add(op->fs, fs_ns_ino(op->fs, op->ino), op->name); /* heals a set */
    reply_entry(op, reply, op->ino, op->name);
}

void op_lookup(struct fop *op)
{
    struct mkv_ino_lookup_req q = {0};
    double secs;
    int rv;
    q.parent = fs_ns_ino(op->fs, op->ino);
    q.name = S(op->name);
    q.flags = MKV_INO_ATTR;
    /* Not there, in a directory this mount knows whole (dnames.c). */
    if ((secs = fs_names_absent(op->fs, q.parent, op->name)) > 0) {
        reply_noent(op, secs);
        return;
    }
    if ((rv = fs_meta(op, MKV_MSG_INO_LOOKUP, &mkv_desc_ino_lookup_req, &q, on_lookup)))
        fop_error(op, rv);
}

void op_forget(struct fop *op)
{
    struct fs *fs = op->fs;
    if (op->kind == FOP_FORGET) {
        struct fino *fi = fino_find(fs, fs_ns_ino(fs, op->ino));
        if (fi) fino_forget(fs, fi, op->nlookup);
    } else {
        for (size_t i = 0; i < op->nforgets; i++) {
            struct fino *fi = fino_find(fs, fs_ns_ino(fs, op->forgets[i].ino));
            if (fi) fino_forget(fs, fi, op->forgets[i].nlookup);
        }
    }
    fop_free(op);
}

static void reply_attr(struct fop *op, struct fino *fi)
{
    struct stat st;
    fs_stat(op->fs, fi, &st);
    fuse_reply_attr(op->req, &st, op->fs->o.attr_timeout);
    fop_free(op);
}

static void on_getattr(struct fop *op, int status, struct mkv_frame *reply)
{
    struct fs *fs = op->fs;
    struct mkv_obj_info oi;
    struct fino *fi;
    if (status) {
        /* The inode went (replaced by a rename, unlinked elsewhere): ESTALE
         * makes the kernel look the name up again. */
        fop_error(op, status == -ENOENT ? -ESTALE : status);
        return;
    }
    if (decode_inode(reply, &oi)) {
        fop_error(op, -EIO);
        return;
    }
    fi = fino_get(op->fs, oi.ino);
    if (!fi) {
        fop_error(op, -ENOMEM);
        return;
    }
    fino_set_attr(op->fs, fi, &oi);
    reply_attr(op, fi); /* frees op */
    fino_maybe_free(fs, fi);
}

void op_getattr(struct fop *op)
{
    struct mkv_ino_getattr_req q = {0};
    struct fino *fi;
    int rv;
    q.ino = fs_ns_ino(op->fs, op->ino);
    /* Within attr_timeout of the cluster's answer, and kept exact by this
     * mount's own changes since: what the kernel would have cached had it
     * not dropped its copy after those changes. */
    /* A removed directory is gone from the cluster: what a descriptor
     * still open on it sees is what this mount knows (nlink 0). */
    if ((fi = fino_find(op->fs, q.ino)) && (fi->dir_gone || fino_attr_fresh(op->fs, fi))) {
        reply_attr(op, fi);
        return;
    }
    q.flags = MKV_INO_ATTR;
    if ((rv = fs_meta(op, MKV_MSG_INO_GETATTR, &mkv_desc_ino_getattr_req, &q, on_getattr)))
        fop_error(op, rv);
}

/* ---- setattr ---- */

static void on_setattr(struct fop *op, int status, struct mkv_frame *reply)
{
    struct fs *fs = op->fs;
    struct mkv_obj_info oi;
    struct fino *fi;
    if (status) {
        fop_error(op, status);
        return;
    }
    if (decode_inode(reply, &oi) || !(fi = fino_get(op->fs, oi.ino))) {
        fop_error(op, -EIO);
        return;
    }
    if (op->to_set & FUSE_SET_ATTR_SIZE) {
        /* Cut to a size other than 0: the MD5 is unknown again. */
        if (oi.size && oi.size != fi->attr.size) fi->etag_gen = oi.generation;
        else if (!oi.size) fi->etag_gen = 0;
        fino_truncated(fi, oi.size);
    }
    fino_set_attr(op->fs, fi, &oi);
    if (fi->etag_gen && !fi->opens && !fi->writing) fs_etag_start(op->fs, fi);
    reply_attr(op, fi); /* frees op */
    fino_maybe_free(fs, fi);
}

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static void setattr_send(struct fop *op)
{
    struct mkv_ino_setattr_req q = {0};
    int s = op->to_set, rv;
    q.ino = fs_ns_ino(op->fs, op->ino);
    if (s & FUSE_SET_ATTR_MODE) q.valid |= MKV_SET_MODE, q.mode = op->st.st_mode;
    if (s & FUSE_SET_ATTR_UID) q.valid |= MKV_SET_UID, q.uid = op->st.st_uid;
    if (s & FUSE_SET_ATTR_GID) q.valid |= MKV_SET_GID, q.gid = op->st.st_gid;
    if (s & FUSE_SET_ATTR_SIZE) q.valid |= MKV_SET_SIZE, q.size = (uint64_t)op->st.st_size;
    if (s & FUSE_SET_ATTR_ATIME_NOW) q.valid |= MKV_SET_ATIME_NOW;
    else if (s & FUSE_SET_ATTR_ATIME) q.valid |= MKV_SET_ATIME, q.atime = ts_ns(&op->st.st_atim);
    if (s & FUSE_SET_ATTR_MTIME_NOW) q.valid |= MKV_SET_MTIME_NOW;
    else if (s & FUSE_SET_ATTR_MTIME) q.valid |= MKV_SET_MTIME, q.mtime = ts_ns(&op->st.st_mtim);
    /* truncate and ftruncate change mtime (and ctime) as Linux does, even to
     * the size the cluster has (writes still buffered here were cut). */
    if ((s & FUSE_SET_ATTR_SIZE) && !(s & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)))
        q.valid |= MKV_SET_MTIME_NOW;
    /* A truncation must not be undone by buffered writes committed after
     * it: those past the new size are dropped first, the rest written. */
    if (s & FUSE_SET_ATTR_SIZE) {
        struct fino *fi = fino_find(op->fs, q.ino);
        if (fi) fino_truncated(fi, q.size);
    }
    if ((rv = fs_meta(op, MKV_MSG_INO_SETATTR, &mkv_desc_ino_setattr_req, &q, on_setattr)))
        fop_error(op, rv);
}

static void setattr_synced(struct fop *op, int status)
{
    if (status) {
        fop_error(op, status);
        return;
    }
    setattr_send(op);
}

void op_setattr(struct fop *op)
{
    int s = op->to_set, rv;
    struct fino *fi;
    if (op->fs->o.read_only) {
        fop_error(op, -EROFS);
        return;
    }
    /* Setting mtime (futimens after writing, as tar x and cp -a do) on a
     * file with writes still buffered: those are committed first, or their
     * write-back, which stamps its own time, would undo the mtime set. */
    fi = fino_find(op->fs, fs_ns_ino(op->fs, op->ino));
    if ((s & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) && !(s & FUSE_SET_ATTR_SIZE) && fi &&
        (fi->dirty || fi->writing || fi->size_dirty)) {
        if ((rv = fs_sync_then(op, setattr_synced))) fop_error(op, rv);
        return;
    }
    setattr_send(op);
}

/* ---- readlink ---- */

static void on_readlink(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_obj_info oi;
    char target[4097];
    if (status) {
        fop_error(op, status);
        return;
    }
    if (decode_inode(reply, &oi)) {
        fop_error(op, -EIO);
        return;
    }
    if (oi.type != MKV_T_SYMLINK) {
        fop_error(op, -EINVAL);
        return;
    }
    snprintf(target, sizeof target, "%.*s", (int)oi.symlink.len, (const char *)oi.symlink.p);
    fuse_reply_readlink(op->req, target);
    fop_free(op);
}

void op_readlink(struct fop *op)
{
    struct mkv_ino_getattr_req q = {0};
    int rv;
    q.ino = fs_ns_ino(op->fs, op->ino);
    if ((rv = fs_meta(op, MKV_MSG_INO_GETATTR, &mkv_desc_ino_getattr_req, &q, on_readlink)))
        fop_error(op, rv);
}

/* ---- mknod, mkdir, symlink, create ---- */

static void on_existing_cut(struct fop *op, int status, struct mkv_frame *reply)
{
    if (status) {
        fop_error(op, status);
        return;
    }
    op_create_existing(op, reply);
}

static void on_existing(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_obj_info oi;
    struct mkv_ino_setattr_req q = {0};
    int rv;
    if (status == -ENOENT && op->size++ < 3) { /* gone again: create it after all */
        op_make(op);
        return;
    }
    if (status) {
        fop_error(op, status);
        return;
    }
    fs_names_add(op->fs, fs_ns_ino(op->fs, op->ino), op->name);
    if ((op->flags & O_TRUNC) && (op->flags & O_ACCMODE) != O_RDONLY && reply &&
        mkv_frame_decode(reply, &mkv_desc_obj_info, &oi) == 0 && oi.type == MKV_T_FILE && oi.size) {
        q.ino = oi.ino;
        q.valid = MKV_SET_SIZE;
        if ((rv = fs_meta(op, MKV_MSG_INO_SETATTR, &mkv_desc_ino_setattr_req, &q, on_existing_cut)))
            fop_error(op, rv);
        return;
    }
    op_create_existing(op, reply);
}

static void on_make(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_obj_info oi;
    struct fino *fi;
    int have;
    if (status == -EEXIST && op->kind == FOP_CREATE && !(op->flags & O_EXCL)) {
        /* open(O_CREAT) of a name made elsewhere since the kernel's lookup:
         * that file is opened, as a local file system would. */
        struct mkv_ino_lookup_req q = {0};
        int rv;
        q.parent = fs_ns_ino(op->fs, op->ino);
        q.name = S(op->name);
        if ((rv = fs_meta(op, MKV_MSG_INO_LOOKUP, &mkv_desc_ino_lookup_req, &q, on_existing)))
            fop_error(op, rv);
        return;
    }
    if (status) {
        if (fs_errno(status) == EEXIST) fs_names_add(op->fs, fs_ns_ino(op->fs, op->ino), op->name);
        fop_error(op, status);
        return;
    }
    fs_names_add(op->fs, fs_ns_ino(op->fs, op->ino), op->name);
    have = decode_inode(reply, &oi) == 0;
    if (have) fino_dir_changed(op->fs, fs_ns_ino(op->fs, op->ino), oi.ctime);
    if (op->kind != FOP_CREATE) {
        struct fs *fs = op->fs;
        int mkdir = op->kind == FOP_MKDIR && have;
        reply_entry(op, reply, op->ino, op->name);
        /* A directory of its own: every name in it is this mount's doing
         * until others make some (dnames.c). */
        if (mkdir && (fi = fino_find(fs, oi.ino))) fs_names_new_dir(fs, fi);
        return;
    }
    if (!have || !(fi = fino_learn(op->fs, &oi))) {
        fop_error(op, -EIO);
        return;
    }
    fino_place(op->fs, fi, op->ino, op->name);
    fi->nocap_until = fi->attr_until; /* made just now: no extended attributes */
    op_create_done(op, fi);
}

void op_make(struct fop *op)
{
    struct mkv_ino_make_req q = {0};
    struct fino *parent;
    int rv;
    if (op->fs->o.read_only) {
        fop_error(op, -EROFS);
        return;
    }
    q.parent = fs_ns_ino(op->fs, op->ino);
    q.name = S(op->name);
    q.mode = op->mode & 07777;
    q.uid = op->uid;
    q.gid = op->gid;
    switch (op->kind) {
    case FOP_MKDIR: q.type = MKV_T_DIR; break;
    case FOP_SYMLINK:
        q.type = MKV_T_SYMLINK;
        q.symlink = S(op->name2);
        break;
    case FOP_MKNOD: q.type = S_ISFIFO(op->mode) ? MKV_T_FIFO : MKV_T_FILE; break;
    default: q.type = MKV_T_FILE; break;
    }
    q.flags = MKV_MAKE_EXCL;
    /* A set-group-ID directory gives its group, and its bit to
     * subdirectories, as local file systems do. */
    parent = fino_find(op->fs, q.parent);
    if (parent && parent->have_attr && (parent->attr.mode & S_ISGID)) {
        q.gid = parent->attr.gid;
        if (q.type == MKV_T_DIR) q.mode |= S_ISGID;
    }
    if ((rv = fs_meta(op, MKV_MSG_INO_MAKE, &mkv_desc_ino_make_req, &q, on_make)))
        fop_error(op, rv);
}

/* ---- unlink, rmdir, rename, link ---- */

/* An inode lost a link (unlink, replaced by a rename) at time now. */
static void mark_orphan(struct fop *op, uint64_t ino, uint32_t nlink, int64_t now)
{
    struct fino *fi = fino_find(op->fs, ino);
    if (fi && nlink == 0 && fi->opens) fi->orphan = 1;
    if (fi) {
        if (fi->attr.type == MKV_T_DIR && nlink == 0) fi->dir_gone = 1;
        fi->attr.nlink = nlink;
        if (now > fi->attr.ctime) fi->attr.ctime = now;
        if (nlink == 0 && !fi->opens) fino_dirty_drop(fi); /* nobody will read it */
    }
}

static void on_unlink(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_ino_unlink_rep rep;
    struct mkv_buf *keep = op->ctx2;
    mkv_buf_free(keep);
    free(keep);
    op->ctx2 = NULL;
    if (status) {
        fop_error(op, status);
        return;
    }
    fs_names_del(op->fs, fs_ns_ino(op->fs, op->ino), op->name);
    if (reply && mkv_frame_decode(reply, &mkv_desc_ino_unlink_rep, &rep) == 0) {
        fino_dir_changed(op->fs, fs_ns_ino(op->fs, op->ino), rep.now);
        if (op->kind == FOP_UNLINK) mark_orphan(op, rep.ino, rep.nlink, rep.now);
        else if (rep.ino) mark_orphan(op, rep.ino, 0, rep.now); /* rmdir */
    }
    fuse_reply_err(op->req, 0);
    fop_free(op);
}

void op_unlink(struct fop *op)
{
    struct mkv_ino_unlink_req q = {0};
    struct mkv_buf *keep;
    int rv;
    if (op->fs->o.read_only) {
        fop_error(op, -EROFS);
        return;
    }
    if (!(keep = calloc(1, sizeof *keep))) {
        fop_error(op, -ENOMEM);
        return;
    }
    q.parent = fs_ns_ino(op->fs, op->ino);
    q.name = S(op->name);
    q.flags = op->kind == FOP_RMDIR ? MKV_UNLINK_DIR : 0;
    if (op->kind == FOP_UNLINK) fs_open_inos(op->fs, keep);
    q.keep = mkv_slice_mem(keep->p ? keep->p : (const uint8_t *)"", keep->len);
    op->ctx2 = keep;
    if ((rv = fs_meta(op, MKV_MSG_INO_UNLINK, &mkv_desc_ino_unlink_req, &q, on_unlink))) {
        mkv_buf_free(keep);
        free(keep);
        op->ctx2 = NULL;
        fop_error(op, rv);
    }
}

static void on_rename(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_ino_rename_rep rep;
    struct mkv_buf *keep = op->ctx2;
    mkv_buf_free(keep);
    free(keep);
    op->ctx2 = NULL;
    if (status) {
        if (fs_errno(status) == EEXIST)
            fs_names_add(op->fs, fs_ns_ino(op->fs, op->ino2), op->name2);
        fop_error(op, status);
        return;
    }
    /* now 0: nothing moved (two names of one inode: both stay). */
    if (reply && mkv_frame_decode(reply, &mkv_desc_ino_rename_rep, &rep) == 0 && rep.now) {
        struct fino *fi = fino_find(op->fs, rep.ino);
        if (!(op->flags & RENAME_EXCHANGE)) {
            fs_names_del(op->fs, fs_ns_ino(op->fs, op->ino), op->name);
            fs_names_add(op->fs, fs_ns_ino(op->fs, op->ino2), op->name2);
        }
        fino_dir_changed(op->fs, fs_ns_ino(op->fs, op->ino), rep.now);
        fino_dir_changed(op->fs, fs_ns_ino(op->fs, op->ino2), rep.now);
        if (fi && rep.now > fi->attr.ctime) fi->attr.ctime = rep.now;
        if (rep.replaced && !(op->flags & RENAME_EXCHANGE)) {
            mark_orphan(op, rep.replaced, rep.replaced_nlink, rep.now);
        } else if (rep.replaced && (fi = fino_find(op->fs, rep.replaced)) &&
                   rep.now > fi->attr.ctime) {
            fi->attr.ctime = rep.now;
        }
    }
    fuse_reply_err(op->req, 0);
    fop_free(op);
}

void op_rename(struct fop *op)
{
    struct mkv_ino_rename_req q = {0};
    struct mkv_buf *keep;
    int rv;
    if (op->fs->o.read_only) {
        fop_error(op, -EROFS);
        return;
    }
    if (op->flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        fop_error(op, -EINVAL); /* RENAME_WHITEOUT: no overlay support */
        return;
    }
    if (!(keep = calloc(1, sizeof *keep))) {
        fop_error(op, -ENOMEM);
        return;
    }
    q.parent = fs_ns_ino(op->fs, op->ino);
    q.name = S(op->name);
    q.newparent = fs_ns_ino(op->fs, op->ino2);
    q.newname = S(op->name2);
    if (op->flags & RENAME_NOREPLACE) q.flags |= MKV_RENAME_NOREPLACE;
    if (op->flags & RENAME_EXCHANGE) q.flags |= MKV_RENAME_EXCHANGE;
    fs_open_inos(op->fs, keep);
    q.keep = mkv_slice_mem(keep->p ? keep->p : (const uint8_t *)"", keep->len);
    op->ctx2 = keep;
    if ((rv = fs_meta(op, MKV_MSG_INO_RENAME, &mkv_desc_ino_rename_req, &q, on_rename))) {
        mkv_buf_free(keep);
        free(keep);
        op->ctx2 = NULL;
        fop_error(op, rv);
    }
}

static void on_link(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_obj_info oi;
    if (status) {
        if (fs_errno(status) == EEXIST) fs_names_add(op->fs, fs_ns_ino(op->fs, op->ino2), op->name);
        fop_error(op, status);
        return;
    }
    fs_names_add(op->fs, fs_ns_ino(op->fs, op->ino2), op->name);
    if (decode_inode(reply, &oi) == 0)
        fino_dir_changed(op->fs, fs_ns_ino(op->fs, op->ino2), oi.ctime);
    reply_entry(op, reply, op->ino2, op->name);
}

void op_link(struct fop *op)
{
    struct mkv_ino_link_req q = {0};
    int rv;
    if (op->fs->o.read_only) {
        fop_error(op, -EROFS);
        return;
    }
    q.ino = fs_ns_ino(op->fs, op->ino);
    q.newparent = fs_ns_ino(op->fs, op->ino2);
    q.newname = S(op->name);
    if ((rv = fs_meta(op, MKV_MSG_INO_LINK, &mkv_desc_ino_link_req, &q, on_link)))
        fop_error(op, rv);
}

/* ---- directories ----
 * The kernel's offset of an entry is its cookie in the namespace (1 and 2
 * are "." and ".."): a position stays valid however the directory changes
 * and whatever handle resumes from it, and no entry comes twice. */

struct dirh
{
    uint64_t ino;
    uint64_t until; /* the largest cookie when the listing began (0: none) */
};

void op_opendir(struct fop *op)
{
    struct fuse_file_info fi;
    struct dirh *d = calloc(1, sizeof *d);
    if (!d) {
        fop_error(op, -ENOMEM);
        return;
    }
    d->ino = fs_ns_ino(op->fs, op->ino);
    memset(&fi, 0, sizeof fi);
    fi.fh = (uint64_t)(uintptr_t)d;
    if (fuse_reply_open(op->req, &fi) != 0) free(d);
    fop_free(op);
}

void op_releasedir(struct fop *op)
{
    free((struct dirh *)(uintptr_t)op->fh);
    fuse_reply_err(op->req, 0);
    fop_free(op);
}

static mode_t type_mode(uint8_t type)
{
    switch (type) {
    case MKV_T_DIR: return S_IFDIR;
    case MKV_T_SYMLINK: return S_IFLNK;
    case MKV_T_FIFO: return S_IFIFO;
    default: return S_IFREG;
    }
}

/* Adds one entry to buf[used..cap); returns the bytes it took, 0 when it
 * does not fit. */
static size_t add_entry(struct fop *op, char *buf, size_t used, size_t cap, const char *name,
                        struct stat *st, off_t next, struct mkv_obj_info *attr)
{
    struct fs *fs = op->fs;
    size_t need;
    if (!op->plus) {
        need = fuse_add_direntry(op->req, buf + used, cap - used, name, st, next);
        return need > cap - used ? 0 : need;
    }
    {
        struct fuse_entry_param ep;
        struct fino *fi = NULL;
        memset(&ep, 0, sizeof ep);
        ep.attr = *st;
        if (attr) {
            if (!(fi = fino_get(fs, attr->ino))) return 0;
            fino_set_attr(fs, fi, attr);
            fino_place(fs, fi, op->ino, name);
            fs_entry(fs, fi, &ep);
        }
        need = fuse_add_direntry_plus(op->req, buf + used, cap - used, name, &ep, next);
        if (need > cap - used) {
            if (fi) fino_maybe_free(fs, fi);
            return 0;
        }
        if (fi) fi->nlookup++; /* readdirplus counts as a lookup */
        return need;
    }
}

static void on_readdir(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_ino_readdir_rep rep;
    struct mkv_dirent de;
    struct mkv_slice cur;
    size_t cap = op->size, used = 0, n;
    char *buf;
    if (status) {
        fop_error(op, status);
        return;
    }
    if (mkv_frame_decode(reply, &mkv_desc_ino_readdir_rep, &rep) ||
        !(buf = malloc(cap ? cap : 1))) {
        fop_error(op, -EIO);
        return;
    }
    if (op->off <= 2) {
        struct dirh *d = (struct dirh *)(uintptr_t)op->fh;
        d->until = rep.last; /* 0 (empty then): nothing to bound */
    }
    /* "." and ".." first (offsets 1 and 2). ".." names the parent, which
     * a handle does not know; glibc hides inode 0, so the root stands in. */
    for (off_t i = op->off; i < 2; i++) {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_mode = S_IFDIR;
        st.st_ino = i == 0 ? op->ino : FUSE_ROOT_ID;
        if (!(n = add_entry(op, buf, used, cap, i == 0 ? "." : "..", &st, i + 1, NULL))) break;
        used += n;
    }
    cur = rep.entries;
    while (used < cap && mkv_msg_next(&mkv_desc_dirent, &cur, &de) == 1) {
        struct mkv_obj_info a;
        struct stat st;
        char name[MKV_NAME_MAX + 1];
        int have = 0;
        memset(&st, 0, sizeof st);
        snprintf(name, sizeof name, "%.*s", (int)de.name.len, (const char *)de.name.p);
        st.st_ino = fs_fuse_ino(op->fs, de.ino);
        st.st_mode = type_mode(de.type);
        if (op->plus && de.attr.len &&
            mkv_msg_decode(&mkv_desc_obj_info, de.attr.p, de.attr.len, &a) == 0)
            have = 1;
        if (!(n = add_entry(op, buf, used, cap, name, &st, (off_t)de.cookie, have ? &a : NULL)))
            break;
        used += n;
    }
    fuse_reply_buf(op->req, buf, used);
    free(buf);
    fop_free(op);
}

void op_readdir(struct fop *op)
{
    struct dirh *d = (struct dirh *)(uintptr_t)op->fh;
    struct mkv_ino_readdir_req q = {0};
    int rv;
    if (!d) {
        fop_error(op, -EBADF);
        return;
    }
    q.ino = d->ino;
    q.cookie = op->off > 2 ? (uint64_t)op->off : 0;
    /* Entries made after the listing began are left out (as POSIX allows):
     * a program renaming each entry it reads still gets to the end. */
    q.until = q.cookie ? d->until : 0;
    /* About as many as the kernel's buffer holds. */
    q.max = (uint32_t)MKV_MAX((size_t)8, MKV_MIN((size_t)512, op->size / (op->plus ? 160 : 32)));
    q.flags = op->plus ? MKV_INO_PLUS : 0;
    if ((rv = fs_meta(op, MKV_MSG_INO_READDIR, &mkv_desc_ino_readdir_req, &q, on_readdir)))
        fop_error(op, rv);
}

/* ---- statfs ---- */

static void on_chunk_stat(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct fop *op = call->data;
    struct mkv_chunk_stat_rep rep;
    struct statvfs sv;
    free(call);
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_namemax = MKV_NAME_MAX;
    sv.f_files = sv.f_ffree = sv.f_favail = 1ull << 40; /* inodes are not a resource here */
    if (status == 0 && reply && mkv_frame_decode(reply, &mkv_desc_chunk_stat_rep, &rep) == 0) {
        sv.f_blocks = rep.capacity / sv.f_frsize;
        sv.f_bfree = sv.f_bavail = MKV_MIN(rep.free, rep.capacity) / sv.f_frsize;
    } else {
        fop_error(op, status ? status : -EIO);
        return;
    }
    fuse_reply_statfs(op->req, &sv);
    fop_free(op);
}

void op_statfs(struct fop *op)
{
    struct mkv_chunk_stat_req q = {0};
    struct mkv_call *call = calloc(1, sizeof *call);
    struct mkv_peer *p = mkv_client_chunk_peer(op->fs->client, 0);
    int rv;
    if (!call || !p) {
        free(call);
        fop_error(op, p ? -ENOMEM : -EIO);
        return;
    }
    call->data = op;
    rv = mkv_peer_call(p, call, MKV_MSG_CHUNK_STAT, &mkv_desc_chunk_stat_req, &q,
                       op->fs->o.op_timeout_ms, on_chunk_stat);
    if (rv) {
        free(call);
        fop_error(op, rv);
    }
}

/* ---- extended attributes ---- */

static int xattr_name_ok(const char *name)
{
    return !strncmp(name, "user.", 5) || !strncmp(name, "security.", 9) ||
           !strncmp(name, "trusted.", 8);
}

static void on_xattr_done(struct fop *op, int status, struct mkv_frame *reply)
{
    struct fino *fi = fino_find(op->fs, fs_ns_ino(op->fs, op->ino));
    (void)reply;
    if (fi) {
        /* Its ctime moved (by an amount the reply does not say), and
         * security.capability may be there now. */
        fino_attr_stale(fi);
        fi->nocap_until = 0;
    }
    if (status) {
        fop_error(op, status);
        return;
    }
    fuse_reply_err(op->req, 0);
    fop_free(op);
}

void op_setxattr(struct fop *op)
{
    struct mkv_xattr_set_req q = {0};
    int rv;
    if (!xattr_name_ok(op->name)) {
        fop_error(op, -EOPNOTSUPP);
        return;
    }
    if (op->fs->o.read_only) {
        fop_error(op, -EROFS);
        return;
    }
    q.ino = fs_ns_ino(op->fs, op->ino);
    q.name = S(op->name);
    q.value = mkv_slice_mem(op->buf ? op->buf : (const uint8_t *)"", op->size);
    if (op->flags & XATTR_CREATE) q.flags |= MKV_XATTR_CREATE;
    if (op->flags & XATTR_REPLACE) q.flags |= MKV_XATTR_REPLACE;
    if ((rv = fs_meta(op, MKV_MSG_XATTR_SET, &mkv_desc_xattr_set_req, &q, on_xattr_done)))
        fop_error(op, rv);
}

void op_removexattr(struct fop *op)
{
    struct mkv_xattr_remove_req q = {0};
    int rv;
    if (!xattr_name_ok(op->name)) {
        fop_error(op, -ENODATA);
        return;
    }
    if (op->fs->o.read_only) {
        fop_error(op, -EROFS);
        return;
    }
    q.ino = fs_ns_ino(op->fs, op->ino);
    q.name = S(op->name);
    if ((rv = fs_meta(op, MKV_MSG_XATTR_REMOVE, &mkv_desc_xattr_remove_req, &q, on_xattr_done)))
        fop_error(op, rv);
}

/* size 0 asks for the length; a smaller buffer than the value is ERANGE. */
static void reply_sized(struct fop *op, const void *p, size_t n)
{
    if (op->size == 0) fuse_reply_xattr(op->req, n);
    else if (op->size < n) fuse_reply_err(op->req, ERANGE);
    else fuse_reply_buf(op->req, p, n);
    fop_free(op);
}

#define XATTR_CAPS "security.capability"

static void on_getxattr(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_xattr_get_rep rep;
    struct fino *fi;
    /* Remembered for attr_timeout, as attributes are. */
    if (status == -ENODATA && !strcmp(op->name, XATTR_CAPS) &&
        (fi = fino_find(op->fs, fs_ns_ino(op->fs, op->ino))))
        fi->nocap_until = uv_now(&op->fs->loop) + (uint64_t)(op->fs->o.attr_timeout * 1000.0);
    if (status) {
        fop_error(op, status);
        return;
    }
    if (mkv_frame_decode(reply, &mkv_desc_xattr_get_rep, &rep)) {
        fop_error(op, -EIO);
        return;
    }
    reply_sized(op, rep.value.p, rep.value.len);
}

void op_getxattr(struct fop *op)
{
    struct mkv_xattr_get_req q = {0};
    struct fino *fi;
    int rv;
    if (!xattr_name_ok(op->name)) {
        fop_error(op, -ENODATA);
        return;
    }
    q.ino = fs_ns_ino(op->fs, op->ino);
    if (!strcmp(op->name, XATTR_CAPS) && (fi = fino_find(op->fs, q.ino)) &&
        fi->nocap_until > uv_now(&op->fs->loop)) {
        fop_error(op, -ENODATA);
        return;
    }
    q.name = S(op->name);
    if ((rv = fs_meta(op, MKV_MSG_XATTR_GET, &mkv_desc_xattr_get_req, &q, on_getxattr)))
        fop_error(op, rv);
}

static void on_listxattr(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_xattr_list_rep rep;
    struct mkv_key_entry ke;
    struct mkv_slice cur;
    struct mkv_buf out = MKV_BUF_INIT;
    if (status) {
        fop_error(op, status);
        return;
    }
    if (mkv_frame_decode(reply, &mkv_desc_xattr_list_rep, &rep)) {
        fop_error(op, -EIO);
        return;
    }
    cur = rep.names;
    while (mkv_msg_next(&mkv_desc_key_entry, &cur, &ke) == 1) {
        if (mkv_buf_append(&out, ke.key.p, ke.key.len) || mkv_buf_append(&out, "", 1)) {
            mkv_buf_free(&out);
            fop_error(op, -ENOMEM);
            return;
        }
    }
    reply_sized(op, out.p ? out.p : (const uint8_t *)"", out.len);
    mkv_buf_free(&out);
}

void op_listxattr(struct fop *op)
{
    struct mkv_xattr_list_req q = {0};
    int rv;
    q.ino = fs_ns_ino(op->fs, op->ino);
    if ((rv = fs_meta(op, MKV_MSG_XATTR_LIST, &mkv_desc_xattr_list_req, &q, on_listxattr)))
        fop_error(op, rv);
}
