/* minikv meta: the POSIX front (inodes addressed by number, names by their
 * parent directory), as the FUSE client uses it.
 *
 * The same tables as the S3 front: a file made here is an object at the
 * key its path names, and an object put through S3 is a file here. What
 * POSIX has and S3 has not lives beside: symbolic links and FIFOs (which S3
 * listings skip), hard links (several entries naming one inode), extended
 * attributes (table xattrs), and unlinked files still open somewhere
 * (table orphans, until ORPHAN_DROP).
 *
 * Rules kept with the S3 front: a name is a valid S3 key component, and a
 * new entry's key (its path below the bucket) fits MKV_KEY_MAX bytes
 * (ENAMETOOLONG otherwise); buckets are the root's directories, so at the
 * root only mkdir (a bucket is made) and rmdir (an empty bucket goes) are
 * allowed; a rename across buckets is EXDEV. A directory left empty by a
 * removal here stops being implicit, so that S3 then lists it as its
 * "dir/" key, as an empty directory made in a mount is. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meta/ns_int.h"
#include "minikv/names.h"

#define EMPTY_ETAG "\"d41d8cd98f00b204e9800998ecf8427e\""
#define ETAG_UNKNOWN_LEN 40 /* "\"" + 32 hex + "-1\"" + NUL */
/* Directory depth walked when looking for a bucket or an ancestor. */
#define MAX_DEPTH (MKV_KEY_MAX / 2 + 2)

/* Copies *s into b and points *s at the copy (LMDB pages may be reused by
 * the writes that follow). */
static int dup_slice(struct ns_op *op, struct mkv_buf *b, struct mkv_slice *s)
{
    mkv_buf_reset(b);
    if (mkv_buf_append(b, s->p, s->len)) return ns_fail(op, ENOMEM, "copy");
    s->p = b->p ? b->p : (const uint8_t *)"";
    return 0;
}

/* One path component: 1..255 bytes, no '/', valid as part of an S3 key. */
static int check_name(struct mkv_slice n)
{
    if (n.len == 0 || memchr(n.p, '/', n.len)) return -EINVAL;
    if (n.len > MKV_NAME_MAX) return -ENAMETOOLONG;
    return mkv_check_key((const char *)n.p, n.len) ? -EINVAL : 0;
}

static int get_inode(struct ns_op *op, uint64_t ino, struct mkv_obj_info *oi)
{
    if (ino == 0) return -ENOENT;
    return ns_ino_get(op, ino, oi);
}

static int get_dir(struct ns_op *op, uint64_t ino, struct mkv_obj_info *oi)
{
    int rv = get_inode(op, ino, oi);
    if (rv) return rv;
    return oi->type == MKV_T_DIR ? 0 : -ENOTDIR;
}

/* Replies with oi, without extents, data and attrs when attr_only. */
static int reply_inode(struct ns_op *op, const struct mkv_obj_info *oi, int attr_only)
{
    struct mkv_obj_info r = *oi;
    if (attr_only) {
        r.extents = mkv_slice_mem("", 0);
        r.data = mkv_slice_mem("", 0);
        r.attrs = mkv_slice_mem("", 0);
    }
    return ns_reply(op, &mkv_desc_obj_info, &r);
}

/* The bucket directory dir lies in (0 for the root) and the length of its
 * key below the bucket, trailing '/' included (0 for a bucket). */
static int dir_place(struct ns_op *op, uint64_t dir, uint64_t *bucket, size_t *keylen)
{
    uint64_t cur = dir, parent;
    size_t n = 0, nlen;
    int rv;
    *bucket = 0;
    *keylen = 0;
    if (dir == NS_ROOT_INO) return 0;
    for (int depth = 0; depth < MAX_DEPTH; depth++) {
        if ((rv = ns_dirparent_get(op, cur, &parent, &nlen)))
            return rv == -ENOENT ? ns_fail(op, MDB_CORRUPTED, "dirparent missing") : rv;
        if (parent == NS_ROOT_INO) {
            *bucket = cur;
            *keylen = n;
            return 0;
        }
        n += nlen + 1;
        cur = parent;
    }
    return ns_fail(op, MDB_CORRUPTED, "dirparent loop");
}

/* 1 when anc is dir or one of its ancestors. */
static int is_ancestor(struct ns_op *op, uint64_t anc, uint64_t dir)
{
    uint64_t cur = dir, parent;
    int rv;
    for (int depth = 0; depth < MAX_DEPTH; depth++) {
        if (cur == anc) return 1;
        if (cur == NS_ROOT_INO) return 0;
        if ((rv = ns_dirparent_get(op, cur, &parent, NULL)))
            return rv == -ENOENT ? ns_fail(op, MDB_CORRUPTED, "dirparent missing") : rv;
        cur = parent;
    }
    return ns_fail(op, MDB_CORRUPTED, "dirparent loop");
}

/* A new entry name in dir (a directory when is_dir): its key must fit. */
static int check_key_room(struct ns_op *op, uint64_t dir, struct mkv_slice name, int is_dir,
                          uint64_t *bucket)
{
    size_t keylen;
    int rv = dir_place(op, dir, bucket, &keylen);
    if (rv) return rv;
    return keylen + name.len + (is_dir ? 1 : 0) > MKV_KEY_MAX ? -ENAMETOOLONG : 0;
}

/* Marks a directory changed (an entry came or went): mtime and ctime. A
 * directory an entry just left that is implicit and now empty becomes
 * explicit, so that S3 lists it (as "dir/"), as a mount shows it. */
static int dir_touch(struct ns_op *op, uint64_t dir, int removed)
{
    struct mkv_obj_info oi;
    uint64_t parent;
    size_t nlen;
    uint8_t name[MKV_NAME_MAX];
    int rv;
    if (dir == NS_ROOT_INO) return 0;
    if ((rv = ns_ino_get(op, dir, &oi))) return rv == -ENOENT ? NS_EFATAL : rv;
    oi.mtime = oi.ctime = op->now;
    if (removed && (oi.dflags & MKV_DF_IMPLICIT)) {
        rv = ns_dir_empty(op, dir);
        if (rv < 0) return rv;
        if (rv) {
            MDB_val v;
            uint8_t k[8];
            oi.dflags &= (uint8_t)~MKV_DF_IMPLICIT;
            mkv_put_be64(k, dir);
            if ((rv = ns_get(op, op->ns->db_dirparent, k, 8, &v)))
                return rv == -ENOENT ? NS_EFATAL : rv;
            if (v.mv_size < 8 || v.mv_size > 8 + MKV_NAME_MAX)
                return ns_fail(op, MDB_CORRUPTED, "dirparent");
            parent = mkv_get_le64(v.mv_data);
            nlen = v.mv_size - 8;
            memcpy(name, (const uint8_t *)v.mv_data + 8, nlen);
            if ((rv = ns_dent_put(op, parent, name, nlen, MKV_T_DIR, dir, 0))) return rv;
            op->ns->cnt.objects++;
        }
    }
    return ns_ino_put(op, &oi);
}

/* Whether ino is in a packed u64 keep list. */
static int in_keep(struct mkv_slice keep, uint64_t ino)
{
    for (size_t i = 0; i + 8 <= keep.len; i += 8)
        if (mkv_get_le64(keep.p + i) == ino) return 1;
    return 0;
}

/* Drops one link of a non-directory inode whose entry was just removed:
 * the inode goes (or, with keep, stays as an orphan) at the last one. */
static int drop_link(struct ns_op *op, struct mkv_obj_info *oi, int keep, uint32_t *left)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_buf ext = MKV_BUF_INIT;
    uint8_t owner[9], k[8], t[8];
    int rv;
    if (oi->nlink > 1) {
        oi->nlink--;
        oi->ctime = op->now;
        *left = oi->nlink;
        return ns_ino_put(op, oi);
    }
    *left = 0;
    ns->cnt.objects--;
    ns->cnt.bytes -= oi->size;
    if (keep) {
        /* Unlinked while open: the client that asked drops it at close. */
        oi->nlink = 0;
        oi->ctime = op->now;
        if ((rv = ns_ino_put(op, oi))) return rv;
        mkv_put_be64(k, oi->ino);
        mkv_put_le64(t, (uint64_t)op->now);
        return ns_put(op, ns->db_orphans, k, 8, t, 8);
    }
    if ((rv = dup_slice(op, &ext, &oi->extents))) return rv;
    rv = ns_ino_del(op, oi->ino);
    if (!rv) rv = ns_refs_drop(op, oi->extents, owner, ns_owner_inode(owner, oi->ino));
    mkv_buf_free(&ext);
    if (rv == -ENOENT || rv == -EINVAL) return NS_EFATAL;
    return rv;
}

/* ---- queries ---- */

int ns_ino_lookup(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ino_lookup_req req;
    struct mkv_obj_info oi;
    uint64_t ino;
    int rv, type;
    DECODE(mkv_desc_ino_lookup_req, p, len, &req);
    if ((rv = check_name(req.name))) return rv == -EINVAL ? -ENOENT : rv;
    if ((rv = get_dir(op, req.parent, &oi))) return rv;
    if ((rv = ns_dent_find(op, req.parent, req.name.p, req.name.len, &ino, &type))) return rv;
    if ((rv = ns_ino_get(op, ino, &oi))) return rv == -ENOENT ? NS_EFATAL : rv;
    return reply_inode(op, &oi, (req.flags & MKV_INO_ATTR) != 0);
}

int ns_ino_getattr(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ino_getattr_req req;
    struct mkv_obj_info oi;
    int rv;
    DECODE(mkv_desc_ino_getattr_req, p, len, &req);
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    return reply_inode(op, &oi, (req.flags & MKV_INO_ATTR) != 0);
}

int ns_ino_readdir(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ino_readdir_req req;
    struct mkv_ino_readdir_rep rep = {0};
    struct mkv_obj_info oi;
    struct mkv_buf out = MKV_BUF_INIT, attr = MKV_BUF_INIT;
    uint8_t k[16];
    MDB_cursor *c;
    MDB_val key, v;
    uint32_t max, n = 0;
    int rc, rv;
    DECODE(mkv_desc_ino_readdir_req, p, len, &req);
    if ((rv = get_dir(op, req.ino, &oi))) return rv;
    max = req.max ? MKV_MIN(req.max, MKV_LIST_MAX) : MKV_LIST_MAX;
    mkv_put_be64(k, req.ino);
    mkv_put_be64(k + 8, req.cookie + 1);
    key.mv_size = 16;
    key.mv_data = k;
    if ((rv = ns_cursor(op, op->ns->db_dirseq, &c))) return rv;
    rep.eof = 1;
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        const uint8_t *kp = key.mv_data;
        uint8_t dk[8 + MKV_NAME_MAX + 1];
        struct mkv_dirent d;
        MDB_val dv;
        if (key.mv_size != 16 || mkv_get_be64(kp) != req.ino) break;
        if (req.until && mkv_get_be64(kp + 8) > req.until) break; /* made since */
        if (v.mv_size < 1 || v.mv_size > MKV_NAME_MAX + 1) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (n == max || out.len > (900u << 10)) {
            rep.eof = 0;
            break;
        }
        mkv_put_be64(dk, req.ino);
        memcpy(dk + 8, v.mv_data, v.mv_size);
        if ((rv = ns_get(op, op->ns->db_dentries, dk, 8 + v.mv_size, &dv)) || dv.mv_size < 10) {
            rc = rv == -ENOENT || !rv ? MDB_CORRUPTED : EIO;
            break;
        }
        d.ino = mkv_get_le64(dv.mv_data);
        d.type = ((const uint8_t *)dv.mv_data)[8];
        d.name = mkv_slice_mem(v.mv_data, v.mv_size - (d.type == MKV_T_DIR ? 1 : 0));
        d.cookie = mkv_get_be64(kp + 8);
        d.attr = mkv_slice_mem("", 0);
        if (req.flags & MKV_INO_PLUS) {
            struct mkv_obj_info e;
            /* The name stays valid: reads do not move LMDB pages. */
            if ((rv = ns_ino_get(op, d.ino, &e))) {
                rc = rv == -ENOENT ? MDB_CORRUPTED : EIO;
                break;
            }
            e.extents = e.data = e.attrs = mkv_slice_mem("", 0);
            mkv_buf_reset(&attr);
            if (mkv_msg_append(&attr, &mkv_desc_obj_info, &e)) {
                rc = ENOMEM;
                break;
            }
            d.attr = mkv_slice_mem(attr.p, attr.len);
        }
        if (mkv_msg_append(&out, &mkv_desc_dirent, &d)) {
            rc = ENOMEM;
            break;
        }
        n++;
    }
    /* From the start: the largest cookie, where the listing ends. */
    if ((rc == 0 || rc == MDB_NOTFOUND) && req.cookie == 0) {
        int lc;
        mkv_put_be64(k, req.ino);
        mkv_put_be64(k + 8, UINT64_MAX);
        key.mv_size = 16;
        key.mv_data = k;
        lc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
        lc =
            lc == 0 ? mdb_cursor_get(c, &key, &v, MDB_PREV) : mdb_cursor_get(c, &key, &v, MDB_LAST);
        if (lc == 0 && key.mv_size == 16 && mkv_get_be64(key.mv_data) == req.ino)
            rep.last = mkv_get_be64((const uint8_t *)key.mv_data + 8);
        else if (lc && lc != MDB_NOTFOUND) rc = lc;
    }
    mdb_cursor_close(c);
    mkv_buf_free(&attr);
    if (rc && rc != MDB_NOTFOUND) {
        mkv_buf_free(&out);
        return op->fatal ? NS_EFATAL : ns_fail(op, rc, "readdir");
    }
    rep.entries = mkv_slice_mem(out.p ? out.p : (const uint8_t *)"", out.len);
    rv = ns_reply(op, &mkv_desc_ino_readdir_rep, &rep);
    mkv_buf_free(&out);
    return rv;
}

/* ---- making and removing entries ---- */

int ns_ino_make(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_ino_make_req req;
    struct mkv_obj_info parent, oi;
    uint64_t ino, bucket;
    int rv, type;
    DECODE(mkv_desc_ino_make_req, p, len, &req);
    if (req.type != MKV_T_FILE && req.type != MKV_T_DIR && req.type != MKV_T_SYMLINK &&
        req.type != MKV_T_FIFO)
        return -EINVAL;
    if ((rv = check_name(req.name))) return rv;
    if ((rv = get_dir(op, req.parent, &parent))) return rv;
    if (req.parent == NS_ROOT_INO) {
        /* The root holds buckets only: mkdir makes one. */
        if (req.type != MKV_T_DIR) return -EPERM;
        rv = ns_bucket_make(op, req.name, 0, 0, req.mode, req.uid, req.gid, &oi);
        if (rv == MKV_EBUCKETEXISTS) return -EEXIST;
        if (rv == MKV_EBADNAME) return -EINVAL;
        if (rv) return rv;
        return reply_inode(op, &oi, 1);
    }
    rv = ns_dent_find(op, req.parent, req.name.p, req.name.len, &ino, &type);
    if (rv == 0) return -EEXIST;
    if (rv != -ENOENT) return rv;
    if ((rv = check_key_room(op, req.parent, req.name, req.type == MKV_T_DIR, &bucket))) return rv;
    if (req.type == MKV_T_SYMLINK && req.symlink.len == 0) return -ENOENT;
    memset(&oi, 0, sizeof oi);
    oi.ino = ns->next_ino++;
    oi.type = req.type;
    switch (req.type) {
    case MKV_T_FILE: oi.mode = S_IFREG; break;
    case MKV_T_DIR: oi.mode = S_IFDIR; break;
    case MKV_T_SYMLINK: oi.mode = S_IFLNK; break;
    default: oi.mode = S_IFIFO; break;
    }
    oi.mode |= req.type == MKV_T_SYMLINK ? 0777 : (req.mode & 07777);
    oi.uid = req.uid;
    oi.gid = req.gid;
    oi.nlink = 1;
    oi.atime = oi.mtime = oi.ctime = op->now;
    oi.generation = op->index;
    if (req.type == MKV_T_FILE) oi.etag = mkv_slice_str(EMPTY_ETAG);
    if (req.type == MKV_T_SYMLINK) {
        oi.symlink = req.symlink;
        oi.size = req.symlink.len;
    }
    if ((rv = ns_ino_put(op, &oi))) return rv;
    if ((rv = ns_dent_put(op, req.parent, req.name.p, req.name.len, req.type, oi.ino, 0)))
        return rv;
    if ((rv = dir_touch(op, req.parent, 0))) return rv;
    ns->cnt.objects++;
    return reply_inode(op, &oi, 1);
}

int ns_ino_unlink(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_ino_unlink_req req;
    struct mkv_ino_unlink_rep rep = {0};
    struct mkv_obj_info parent, oi;
    uint64_t ino;
    uint32_t left = 0;
    int rv, type, rmdir;
    DECODE(mkv_desc_ino_unlink_req, p, len, &req);
    rmdir = (req.flags & MKV_UNLINK_DIR) != 0;
    if ((rv = check_name(req.name))) return rv == -EINVAL ? -ENOENT : rv;
    if ((rv = get_dir(op, req.parent, &parent))) return rv;
    if ((rv = ns_dent_find(op, req.parent, req.name.p, req.name.len, &ino, &type))) return rv;
    if ((rv = ns_ino_get(op, ino, &oi))) return rv == -ENOENT ? NS_EFATAL : rv;
    rep.ino = ino;
    rep.now = op->now;
    if (rmdir) {
        if (oi.type != MKV_T_DIR) return -ENOTDIR;
        if (req.parent == NS_ROOT_INO) {
            rv = ns_bucket_remove(op, req.name);
            if (rv == MKV_EBUCKETNOTEMPTY) return -ENOTEMPTY;
            if (rv) return rv;
            return ns_reply(op, &mkv_desc_ino_unlink_rep, &rep);
        }
        rv = ns_dir_empty(op, ino);
        if (rv < 0) return rv;
        if (!rv) return -ENOTEMPTY;
        if ((rv = ns_dent_del(op, req.parent, req.name.p, req.name.len, 1)))
            return rv == -ENOENT ? NS_EFATAL : rv;
        if ((rv = ns_ino_del(op, ino))) return rv == -ENOENT ? NS_EFATAL : rv;
        if (!(oi.dflags & MKV_DF_IMPLICIT)) ns->cnt.objects--;
    } else {
        if (oi.type == MKV_T_DIR) return -EISDIR;
        if ((rv = ns_dent_del(op, req.parent, req.name.p, req.name.len, 0)))
            return rv == -ENOENT ? NS_EFATAL : rv;
        if ((rv = drop_link(op, &oi, (req.flags & MKV_UNLINK_KEEP) || in_keep(req.keep, oi.ino),
                            &left)))
            return rv;
    }
    if ((rv = dir_touch(op, req.parent, 1))) return rv;
    rep.nlink = left;
    return ns_reply(op, &mkv_desc_ino_unlink_rep, &rep);
}

int ns_ino_link(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ino_link_req req;
    struct mkv_obj_info parent, oi;
    uint64_t ino, bucket;
    int rv, type;
    DECODE(mkv_desc_ino_link_req, p, len, &req);
    if ((rv = check_name(req.newname))) return rv;
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    if (oi.type == MKV_T_DIR) return -EPERM;
    if (oi.nlink == 0) return -ENOENT; /* an orphan cannot come back */
    if ((rv = get_dir(op, req.newparent, &parent))) return rv;
    if (req.newparent == NS_ROOT_INO) return -EPERM;
    rv = ns_dent_find(op, req.newparent, req.newname.p, req.newname.len, &ino, &type);
    if (rv == 0) return -EEXIST;
    if (rv != -ENOENT) return rv;
    if ((rv = check_key_room(op, req.newparent, req.newname, 0, &bucket))) return rv;
    if (oi.nlink == UINT32_MAX) return -EMLINK;
    oi.nlink++;
    oi.ctime = op->now;
    if ((rv = ns_ino_put(op, &oi))) return rv;
    if ((rv = ns_dent_put(op, req.newparent, req.newname.p, req.newname.len, oi.type, oi.ino, 0)))
        return rv;
    if ((rv = dir_touch(op, req.newparent, 0))) return rv;
    return reply_inode(op, &oi, 1);
}

int ns_ino_rename(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_ino_rename_req req;
    struct mkv_ino_rename_rep rep = {0};
    struct mkv_obj_info pdir, ndir, src, dst;
    uint64_t sino, tino = 0, sb, nb;
    uint8_t sdflags = 0, tdflags = 0;
    int rv, stype, ttype = 0, exchange, have_t;
    uint32_t left = 0;
    DECODE(mkv_desc_ino_rename_req, p, len, &req);
    exchange = (req.flags & MKV_RENAME_EXCHANGE) != 0;
    if (exchange && (req.flags & MKV_RENAME_NOREPLACE)) return -EINVAL;
    if ((rv = check_name(req.name))) return rv == -EINVAL ? -ENOENT : rv;
    if ((rv = check_name(req.newname))) return rv;
    if ((rv = get_dir(op, req.parent, &pdir))) return rv;
    if ((rv = get_dir(op, req.newparent, &ndir))) return rv;
    if ((rv = ns_dent_find(op, req.parent, req.name.p, req.name.len, &sino, &stype))) return rv;
    if (req.parent == NS_ROOT_INO || req.newparent == NS_ROOT_INO) return -EPERM; /* buckets */
    if ((rv = ns_ino_get(op, sino, &src))) return rv == -ENOENT ? NS_EFATAL : rv;
    rv = ns_dent_find(op, req.newparent, req.newname.p, req.newname.len, &tino, &ttype);
    if (rv && rv != -ENOENT) return rv;
    have_t = rv == 0;
    rep.ino = sino;
    if (have_t && tino == sino) /* two links of one inode, or the same entry: nothing changes */
        return ns_reply(op, &mkv_desc_ino_rename_rep, &rep);
    rep.now = op->now;
    if (have_t && (req.flags & MKV_RENAME_NOREPLACE)) return -EEXIST;
    if (exchange && !have_t) return -ENOENT;
    {
        size_t k1, k2;
        if ((rv = dir_place(op, req.parent, &sb, &k1)) ||
            (rv = dir_place(op, req.newparent, &nb, &k2)))
            return rv;
        if (sb != nb) return -EXDEV;
        if (k2 + req.newname.len + (src.type == MKV_T_DIR) > MKV_KEY_MAX) return -ENAMETOOLONG;
        if (exchange && k1 + req.name.len + (ttype == MKV_T_DIR) > MKV_KEY_MAX)
            return -ENAMETOOLONG;
    }
    /* A directory cannot move below itself. */
    if (src.type == MKV_T_DIR && (rv = is_ancestor(op, sino, req.newparent)))
        return rv < 0 ? rv : -EINVAL;
    if (have_t) {
        if ((rv = ns_ino_get(op, tino, &dst))) return rv == -ENOENT ? NS_EFATAL : rv;
        if (exchange && dst.type == MKV_T_DIR && (rv = is_ancestor(op, tino, req.parent)))
            return rv < 0 ? rv : -EINVAL;
        if (!exchange) {
            if (src.type == MKV_T_DIR && dst.type != MKV_T_DIR) return -ENOTDIR;
            if (src.type != MKV_T_DIR && dst.type == MKV_T_DIR) return -EISDIR;
            if (dst.type == MKV_T_DIR) {
                rv = ns_dir_empty(op, tino);
                if (rv < 0) return rv;
                if (!rv) return -ENOTEMPTY;
            }
        }
    }
    /* The implicit marks travel with the entries. */
    {
        uint8_t k[8 + MKV_NAME_MAX + 1];
        MDB_val v;
        if ((rv = ns_get(op, ns->db_dentries, k,
                         ns_dent_key(k, req.parent, req.name.p, req.name.len, stype == MKV_T_DIR),
                         &v)))
            return rv == -ENOENT ? NS_EFATAL : rv;
        sdflags = v.mv_size >= 10 ? ((const uint8_t *)v.mv_data)[9] : 0;
        if (have_t) {
            if ((rv = ns_get(op, ns->db_dentries, k,
                             ns_dent_key(k, req.newparent, req.newname.p, req.newname.len,
                                         ttype == MKV_T_DIR),
                             &v)))
                return rv == -ENOENT ? NS_EFATAL : rv;
            tdflags = v.mv_size >= 10 ? ((const uint8_t *)v.mv_data)[9] : 0;
        }
    }

    /* Writes from here on. */
    if ((rv = ns_dent_del(op, req.parent, req.name.p, req.name.len, stype == MKV_T_DIR)))
        return rv == -ENOENT ? NS_EFATAL : rv;
    if (have_t) {
        if ((rv = ns_dent_del(op, req.newparent, req.newname.p, req.newname.len,
                              ttype == MKV_T_DIR)))
            return rv == -ENOENT ? NS_EFATAL : rv;
        rep.replaced = tino;
        if (exchange) {
            if ((rv = ns_dent_put(op, req.parent, req.name.p, req.name.len, ttype, tino, tdflags)))
                return rv;
            dst.ctime = op->now;
            if ((rv = ns_ino_put(op, &dst))) return rv;
            rep.replaced_nlink = dst.nlink;
        } else if (dst.type == MKV_T_DIR) {
            if ((rv = ns_ino_del(op, tino))) return rv == -ENOENT ? NS_EFATAL : rv;
            if (!(tdflags & MKV_DF_IMPLICIT)) ns->cnt.objects--;
        } else {
            if ((rv = drop_link(
                     op, &dst, (req.flags & MKV_UNLINK_KEEP) || in_keep(req.keep, dst.ino), &left)))
                return rv;
            rep.replaced_nlink = left;
        }
    }
    if ((rv = ns_dent_put(op, req.newparent, req.newname.p, req.newname.len, stype, sino, sdflags)))
        return rv;
    src.ctime = op->now;
    if ((rv = ns_ino_put(op, &src))) return rv;
    if ((rv = dir_touch(op, req.parent, !exchange))) return rv;
    if (req.newparent != req.parent && (rv = dir_touch(op, req.newparent, 0))) return rv;
    return ns_reply(op, &mkv_desc_ino_rename_rep, &rep);
}

int ns_orphan_drop(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_orphan_drop_req req;
    struct mkv_orphan_drop_rep rep = {0};
    struct mkv_obj_info oi;
    struct mkv_buf ext = MKV_BUF_INIT;
    uint8_t k[8], owner[9];
    MDB_val v;
    int rv;
    DECODE(mkv_desc_orphan_drop_req, p, len, &req);
    mkv_put_be64(k, req.ino);
    rv = ns_get(op, op->ns->db_orphans, k, 8, &v);
    if (rv == -ENOENT) return ns_reply(op, &mkv_desc_orphan_drop_rep, &rep);
    if (rv) return rv;
    if ((rv = ns_ino_get(op, req.ino, &oi))) return rv == -ENOENT ? NS_EFATAL : rv;
    if (oi.nlink) return ns_fail(op, MDB_CORRUPTED, "orphan with links");
    if ((rv = dup_slice(op, &ext, &oi.extents))) return rv;
    rv = ns_ino_del(op, req.ino);
    if (!rv) rv = ns_refs_drop(op, oi.extents, owner, ns_owner_inode(owner, req.ino));
    mkv_buf_free(&ext);
    if (rv) return rv == -ENOENT || rv == -EINVAL ? NS_EFATAL : rv;
    rep.dropped = 1;
    return ns_reply(op, &mkv_desc_orphan_drop_rep, &rep);
}

/* ---- attributes and data ---- */

/* ext cut to [0, size): appended to out. */
static int extents_cut(struct mkv_slice ext, uint64_t size, struct mkv_buf *out)
{
    struct mkv_slice cur = ext;
    struct mkv_extent e;
    int rv;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1) {
        if (e.file_off >= size) continue;
        if (e.len > size - e.file_off) e.len = size - e.file_off;
        if (mkv_msg_append(out, &mkv_desc_extent, &e)) return -ENOMEM;
    }
    return rv < 0 ? -EPROTO : 0;
}

/* Replaces the content's extents by next (which the caller owns): adjusts
 * the chunk references and the byte counter. */
static int set_content(struct ns_op *op, struct mkv_obj_info *oi, struct mkv_slice next,
                       struct mkv_slice data, uint64_t size)
{
    struct mkv_buf old = MKV_BUF_INIT;
    uint8_t owner[9];
    size_t olen = ns_owner_inode(owner, oi->ino);
    int rv;
    if ((rv = dup_slice(op, &old, &oi->extents))) return rv;
    rv = ns_refs_drop(op, oi->extents, owner, olen);
    if (!rv) rv = ns_refs_add(op, next, owner, olen);
    mkv_buf_free(&old);
    if (rv) return rv == -ENOENT || rv == -EINVAL ? NS_EFATAL : rv;
    op->ns->cnt.bytes += size - oi->size;
    oi->extents = next;
    oi->data = data;
    oi->size = size;
    return 0;
}

/* The ETag of content whose MD5 nobody knows (written out of order, cut
 * by a truncation): not an MD5 — the "-1" tells S3 clients so, as for a
 * multipart upload — but unique to this content, until the writer
 * computes the MD5 (INO_ETAG). */
static struct mkv_slice etag_unknown(char buf[ETAG_UNKNOWN_LEN], uint64_t ino, uint64_t generation)
{
    snprintf(buf, ETAG_UNKNOWN_LEN, "\"%016llx%016llx-1\"", (unsigned long long)ino,
             (unsigned long long)generation);
    return mkv_slice_str(buf);
}

int ns_ino_setattr(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ino_setattr_req req;
    struct mkv_obj_info oi;
    char fallback[ETAG_UNKNOWN_LEN];
    struct mkv_buf ext = MKV_BUF_INIT, data = MKV_BUF_INIT;
    int rv = 0;
    DECODE(mkv_desc_ino_setattr_req, p, len, &req);
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    if (req.valid & MKV_SET_SIZE) {
        if (oi.type == MKV_T_DIR) return -EISDIR;
        if (oi.type != MKV_T_FILE) return -EINVAL;
        if (req.size > (1ull << 62)) return -EFBIG;
    }
    if (req.valid & MKV_SET_MODE) oi.mode = (oi.mode & S_IFMT) | (req.mode & 07777);
    if (req.valid & MKV_SET_UID) oi.uid = req.uid;
    if (req.valid & MKV_SET_GID) oi.gid = req.gid;
    if (req.valid & MKV_SET_ATIME) oi.atime = req.atime;
    if (req.valid & MKV_SET_ATIME_NOW) oi.atime = op->now;
    if (req.valid & MKV_SET_MTIME) oi.mtime = req.mtime;
    if (req.valid & MKV_SET_MTIME_NOW) oi.mtime = op->now;
    oi.ctime = op->now;
    if ((req.valid & MKV_SET_SIZE) && req.size != oi.size) {
        struct mkv_slice d = oi.data;
        if (d.len > req.size) d.len = (uint32_t)req.size;
        /* Bytes past the inline data and the extents read as zeros. */
        if ((rv = extents_cut(oi.extents, req.size, &ext))) goto out;
        if ((rv = dup_slice(op, &data, &d))) goto out;
        if ((rv = set_content(op, &oi, mkv_slice_mem(ext.p ? ext.p : (const uint8_t *)"", ext.len),
                              d, req.size)))
            goto out;
        if (!(req.valid & (MKV_SET_MTIME | MKV_SET_MTIME_NOW))) oi.mtime = op->now;
        oi.generation = op->index;
        if (req.size == 0) oi.etag = mkv_slice_str(EMPTY_ETAG);
        else oi.etag = etag_unknown(fallback, oi.ino, oi.generation);
    }
    if (!(rv = ns_ino_put(op, &oi))) rv = reply_inode(op, &oi, 1);
out:
    mkv_buf_free(&ext);
    mkv_buf_free(&data);
    return rv == -ENOMEM ? ns_fail(op, ENOMEM, "setattr") : rv;
}

/* Appends the decoded extents of list to *v (grown as needed). */
static int extents_load(struct mkv_slice list, struct mkv_extent **v, size_t *n, size_t *cap)
{
    struct mkv_extent e;
    int rv;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &list, &e)) == 1) {
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 16;
            struct mkv_extent *q = realloc(*v, c * sizeof *q);
            if (!q) return -ENOMEM;
            *v = q;
            *cap = c;
        }
        (*v)[(*n)++] = e;
    }
    return rv < 0 ? -EPROTO : 0;
}

/* The parts of old's extents that add does not cover, merged with add's
 * extents in file order. Both lists are sorted and non-overlapping, and so
 * is the result. */
static int extents_splice(struct mkv_slice old, struct mkv_slice add, struct mkv_buf *out)
{
    struct mkv_extent *a = NULL, *o = NULL, *keep = NULL;
    size_t na = 0, ca = 0, no = 0, co = 0, nk = 0, ck = 0, ia = 0, ik = 0, j = 0;
    int rv;
    if ((rv = extents_load(add, &a, &na, &ca)) || (rv = extents_load(old, &o, &no, &co))) goto out;
    /* Old pieces outside every new extent (a only moves forward: both are
     * sorted). At most na + no pieces. */
    ck = na + no + 1;
    if (!(keep = malloc(ck * sizeof *keep))) {
        rv = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < no; i++) {
        uint64_t pos = o[i].file_off, end = o[i].file_off + o[i].len;
        while (j < na && a[j].file_off + a[j].len <= pos) j++;
        for (size_t k = j; k < na && pos < end && a[k].file_off < end; k++) {
            uint64_t as = a[k].file_off, ae = as + a[k].len;
            if (as > pos) {
                keep[nk] = o[i];
                keep[nk].file_off = pos;
                keep[nk].len = as - pos;
                keep[nk].chunk_off = o[i].chunk_off + (pos - o[i].file_off);
                nk++;
            }
            if (ae > pos) pos = ae;
        }
        if (pos < end) {
            keep[nk] = o[i];
            keep[nk].file_off = pos;
            keep[nk].len = end - pos;
            keep[nk].chunk_off = o[i].chunk_off + (pos - o[i].file_off);
            nk++;
        }
    }
    while (ia < na || ik < nk) {
        const struct mkv_extent *e =
            ik == nk || (ia < na && a[ia].file_off < keep[ik].file_off) ? &a[ia++] : &keep[ik++];
        if (mkv_msg_append(out, &mkv_desc_extent, e)) {
            rv = -ENOMEM;
            goto out;
        }
    }
out:
    free(a);
    free(o);
    free(keep);
    return rv;
}

/* The extents of an INO_WRITE: sorted, non-overlapping; chunk id 0 is a
 * hole to punch (fallocate PUNCH_HOLE): it cuts what it covers and then
 * goes. */
static int write_extents_check(struct mkv_slice ext)
{
    struct mkv_extent e;
    uint64_t end = 0;
    uint32_t n = 0;
    int rv;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &ext, &e)) == 1) {
        if (++n > MKV_EXTENTS_MAX) return -E2BIG;
        if (e.len == 0 || e.file_off < end || e.file_off + e.len < e.file_off) return -EINVAL;
        if (e.chunk_id && (e.chunk_off > MKV_CHUNK_SIZE || e.len > MKV_CHUNK_SIZE - e.chunk_off))
            return -EINVAL;
        end = e.file_off + e.len;
    }
    return rv < 0 ? -EINVAL : 0;
}

static int drop_holes(struct mkv_buf *b)
{
    struct mkv_buf out = MKV_BUF_INIT;
    struct mkv_slice cur = mkv_slice_mem(b->p ? b->p : (const uint8_t *)"", b->len);
    struct mkv_extent e;
    int rv;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1)
        if (e.chunk_id && mkv_msg_append(&out, &mkv_desc_extent, &e)) {
            mkv_buf_free(&out);
            return -ENOMEM;
        }
    mkv_buf_free(b);
    *b = out;
    return rv < 0 ? -EPROTO : 0;
}

int ns_ino_write(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ino_write_req req;
    struct mkv_obj_info oi;
    char fallback[ETAG_UNKNOWN_LEN];
    struct mkv_buf spliced = MKV_BUF_INIT, cut = MKV_BUF_INIT;
    struct mkv_slice next = mkv_slice_mem("", 0), data = mkv_slice_mem("", 0);
    uint64_t end = 0;
    int rv;
    DECODE(mkv_desc_ino_write_req, p, len, &req);
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    if (oi.type == MKV_T_DIR) return -EISDIR;
    if (oi.type != MKV_T_FILE) return -EINVAL;
    if (req.size > (1ull << 62)) return -EFBIG;
    if (req.flags & MKV_WRITE_INLINE) {
        if (req.extents.len || req.data.len > req.size) return -EINVAL;
        data = req.data;
    } else {
        struct mkv_slice cur = req.extents;
        struct mkv_extent e;
        while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1)
            if (e.file_off + e.len > end) end = e.file_off + e.len;
        if (rv < 0) return -EPROTO;
        if (end > req.size) return -EINVAL;
        if ((rv = write_extents_check(req.extents))) return rv;
        /* Inline bytes cannot be partly overwritten by extents: the writer
         * rewrites the whole file then. */
        if (oi.data.len && !(req.flags & MKV_WRITE_REPLACE)) return -EINVAL;
        if (req.flags & MKV_WRITE_REPLACE) {
            rv = extents_cut(req.extents, req.size, &cut);
        } else {
            rv = extents_splice(oi.extents, req.extents, &spliced);
            if (!rv)
                rv = extents_cut(
                    mkv_slice_mem(spliced.p ? spliced.p : (const uint8_t *)"", spliced.len),
                    req.size, &cut);
        }
        if (!rv) rv = drop_holes(&cut);
        if (rv) goto out;
        next = mkv_slice_mem(cut.p ? cut.p : (const uint8_t *)"", cut.len);
        if ((rv = ns_extents_check(next, req.size, MKV_EXTENTS_MAX))) {
            rv = rv == -EINVAL ? -EFBIG : rv; /* too fragmented: rewrite it whole */
            goto out;
        }
    }
    if ((rv = set_content(op, &oi, next, data, req.size))) goto out;
    oi.mtime = req.mtime ? req.mtime : op->now;
    oi.ctime = op->now;
    oi.generation = op->index;
    oi.etag = req.etag.len ? req.etag : etag_unknown(fallback, oi.ino, oi.generation);
    /* The whole inode: the writer's view of the content is the new one. */
    if (!(rv = ns_ino_put(op, &oi))) rv = reply_inode(op, &oi, 0);
out:
    mkv_buf_free(&spliced);
    mkv_buf_free(&cut);
    return rv == -ENOMEM ? ns_fail(op, ENOMEM, "write") : rv;
}

int ns_ino_etag(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ino_etag_req req;
    struct mkv_ino_etag_rep rep = {0};
    struct mkv_obj_info oi;
    int rv;
    DECODE(mkv_desc_ino_etag_req, p, len, &req);
    if (req.etag.len < 2 || req.etag.len > MKV_ETAG_MAX) return -EINVAL;
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    if (oi.type != MKV_T_FILE) return -EINVAL;
    /* Nothing else changes: it is the same content, now with its name. */
    if (oi.generation == req.generation) {
        oi.etag = req.etag;
        if ((rv = ns_ino_put(op, &oi))) return rv;
        rep.applied = 1;
    }
    return ns_reply(op, &mkv_desc_ino_etag_rep, &rep);
}

/* ---- extended attributes: key inode (8, BE) + name, value the bytes ---- */

static size_t xattr_key(uint8_t *k, uint64_t ino, struct mkv_slice name)
{
    mkv_put_be64(k, ino);
    memcpy(k + 8, name.p, name.len);
    return 8 + name.len;
}

static int xattr_touch(struct ns_op *op, struct mkv_obj_info *oi)
{
    oi->ctime = op->now;
    return ns_ino_put(op, oi);
}

int ns_xattr_set(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_xattr_set_req req;
    struct mkv_xattr_set_rep rep = {0};
    struct mkv_obj_info oi;
    uint8_t k[8 + 255];
    size_t klen;
    MDB_val v;
    int rv, exists;
    DECODE(mkv_desc_xattr_set_req, p, len, &req);
    if (req.name.len == 0) return -EINVAL;
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    klen = xattr_key(k, req.ino, req.name);
    rv = ns_get(op, op->ns->db_xattrs, k, klen, &v);
    if (rv && rv != -ENOENT) return rv;
    exists = rv == 0;
    if (exists && (req.flags & MKV_XATTR_CREATE)) return -EEXIST;
    if (!exists && (req.flags & MKV_XATTR_REPLACE)) return -ENODATA;
    if ((rv = ns_put(op, op->ns->db_xattrs, k, klen, req.value.p, req.value.len))) return rv;
    if ((rv = xattr_touch(op, &oi))) return rv;
    return ns_reply(op, &mkv_desc_xattr_set_rep, &rep);
}

int ns_xattr_remove(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_xattr_remove_req req;
    struct mkv_xattr_remove_rep rep = {0};
    struct mkv_obj_info oi;
    uint8_t k[8 + 255];
    size_t klen;
    MDB_val v;
    int rv;
    DECODE(mkv_desc_xattr_remove_req, p, len, &req);
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    klen = xattr_key(k, req.ino, req.name);
    rv = ns_get(op, op->ns->db_xattrs, k, klen, &v);
    if (rv == -ENOENT) return -ENODATA;
    if (rv) return rv;
    if ((rv = ns_del(op, op->ns->db_xattrs, k, klen))) return rv;
    if ((rv = xattr_touch(op, &oi))) return rv;
    return ns_reply(op, &mkv_desc_xattr_remove_rep, &rep);
}

int ns_xattr_get(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_xattr_get_req req;
    struct mkv_xattr_get_rep rep;
    struct mkv_obj_info oi;
    uint8_t k[8 + 255];
    MDB_val v;
    int rv;
    DECODE(mkv_desc_xattr_get_req, p, len, &req);
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    rv = ns_get(op, op->ns->db_xattrs, k, xattr_key(k, req.ino, req.name), &v);
    if (rv == -ENOENT) return -ENODATA;
    if (rv) return rv;
    if (v.mv_size > MKV_XATTR_MAX) return ns_fail(op, MDB_CORRUPTED, "xattr");
    rep.value = mkv_slice_mem(v.mv_size ? v.mv_data : "", v.mv_size);
    return ns_reply(op, &mkv_desc_xattr_get_rep, &rep);
}

int ns_xattr_list(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_xattr_list_req req;
    struct mkv_xattr_list_rep rep;
    struct mkv_obj_info oi;
    struct mkv_buf out = MKV_BUF_INIT;
    uint8_t k[8];
    MDB_cursor *c;
    MDB_val key = {8, k}, v;
    int rc, rv;
    DECODE(mkv_desc_xattr_list_req, p, len, &req);
    if ((rv = get_inode(op, req.ino, &oi))) return rv;
    mkv_put_be64(k, req.ino);
    if ((rv = ns_cursor(op, op->ns->db_xattrs, &c))) return rv;
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
         rc == 0 && key.mv_size > 8 && mkv_get_be64(key.mv_data) == req.ino;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        struct mkv_key_entry ke = {
            mkv_slice_mem((const uint8_t *)key.mv_data + 8, key.mv_size - 8)};
        if (mkv_msg_append(&out, &mkv_desc_key_entry, &ke)) {
            rc = ENOMEM;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        mkv_buf_free(&out);
        return ns_fail(op, rc, "xattr list");
    }
    rep.names = mkv_slice_mem(out.p ? out.p : (const uint8_t *)"", out.len);
    rv = ns_reply(op, &mkv_desc_xattr_list_rep, &rep);
    mkv_buf_free(&out);
    return rv;
}
