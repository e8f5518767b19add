/* minikv meta: buckets and objects (put, delete, lookup). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "meta/ns_int.h"
#include "minikv/names.h"
#include "minikv/vshard.h"

/* Copies *s into b and points *s at the copy. */
static int dup_slice(struct ns_op *op, struct mkv_buf *b, struct mkv_slice *s)
{
    mkv_buf_reset(b);
    if (mkv_buf_append(b, s->p, s->len)) return ns_fail(op, ENOMEM, "copy");
    s->p = b->p ? b->p : (const uint8_t *)"";
    return 0;
}

/* ---- buckets ---- */

int ns_bucket_make(struct ns_op *op, struct mkv_slice name, uint32_t replicas, uint32_t flags,
                   uint32_t mode, uint32_t uid, uint32_t gid, struct mkv_obj_info *oi)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_ns_bucket b;
    int rv;
    if ((rv = mkv_check_bucket((const char *)name.p, name.len))) return rv;
    rv = ns_bucket_get(op, name, &b);
    if (rv == 0) return MKV_EBUCKETEXISTS;
    if (rv != MKV_ENOBUCKET) return rv;
    memset(oi, 0, sizeof *oi);
    oi->ino = ns->next_ino++;
    oi->type = MKV_T_DIR;
    oi->mode = S_IFDIR | (mode ? (mode & 07777) : 0755);
    oi->uid = uid;
    oi->gid = gid;
    oi->nlink = 1;
    oi->atime = oi->mtime = oi->ctime = op->now;
    oi->generation = op->index;
    if ((rv = ns_ino_put(op, oi))) return rv;
    if ((rv = ns_dent_put(op, NS_ROOT_INO, name.p, name.len, MKV_T_DIR, oi->ino, 0))) return rv;
    b.ino = oi->ino;
    b.ctime = op->now;
    b.replicas = replicas;
    b.flags = flags;
    if ((rv = ns_put_msg(op, ns->db_buckets, name.p, name.len, &ns_desc_ns_bucket, &b)))
        return rv;
    ns->cnt.buckets++;
    return 0;
}

int ns_bucket_create(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_bucket_create_req req;
    struct mkv_bucket_create_rep rep;
    struct mkv_obj_info oi;
    int rv;
    uint32_t factor;
    DECODE(mkv_desc_bucket_create_req, p, len, &req);
    /* A factor of its own: at most the cluster's (a chunk goes to some of
     * its vshard's replicas, never more), and only once there is a map
     * (without one, a single server: 1). */
    if (req.replicas) {
        if ((rv = ns_vshard_factor(op, &factor))) return rv;
        if (req.replicas > (factor ? factor : 1) || req.replicas >= (1u << MKV_COPIES_BITS))
            return -ERANGE;
    }
    if ((rv = ns_bucket_make(op, req.name, req.replicas, req.flags, 0, 0, 0, &oi))) return rv;
    rep.ctime = op->now;
    return ns_reply(op, &mkv_desc_bucket_create_rep, &rep);
}

/* 1 when the bucket whose directory is ino has multipart uploads. */
static int bucket_has_uploads(struct ns_op *op, uint64_t ino)
{
    MDB_cursor *c;
    uint8_t k[8];
    MDB_val key = {8, k}, v;
    int rc, rv;
    mkv_put_be64(k, ino);
    if ((rv = ns_cursor(op, op->ns->db_upidx, &c))) return rv;
    rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return ns_fail(op, rc, "upidx");
    return key.mv_size >= 8 && mkv_get_be64(key.mv_data) == ino;
}

int ns_bucket_remove(struct ns_op *op, struct mkv_slice name)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_ns_bucket b;
    int rv;
    if ((rv = ns_bucket_get(op, name, &b))) return rv;
    rv = ns_dir_empty(op, b.ino);
    if (rv < 0) return rv;
    if (!rv) return MKV_EBUCKETNOTEMPTY;
    rv = bucket_has_uploads(op, b.ino);
    if (rv < 0) return rv;
    if (rv) return MKV_EBUCKETNOTEMPTY;
    if ((rv = ns_ino_del(op, b.ino)) && rv != -ENOENT) return rv;
    if ((rv = ns_dent_del(op, NS_ROOT_INO, name.p, name.len, 1)) && rv != -ENOENT) return rv;
    if ((rv = ns_del(op, ns->db_buckets, name.p, name.len))) return rv;
    ns->cnt.buckets--;
    return 0;
}

int ns_bucket_delete(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_bucket_delete_req req;
    struct mkv_bucket_delete_rep rep = {0};
    int rv;
    DECODE(mkv_desc_bucket_delete_req, p, len, &req);
    if ((rv = ns_bucket_remove(op, req.name))) return rv;
    return ns_reply(op, &mkv_desc_bucket_delete_rep, &rep);
}

int ns_bucket_head(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_bucket_head_req req;
    struct mkv_bucket_head_rep rep;
    struct mkv_ns_bucket b;
    int rv;
    DECODE(mkv_desc_bucket_head_req, p, len, &req);
    if ((rv = ns_bucket_get(op, req.name, &b))) return rv;
    rep.ctime = b.ctime;
    rep.replicas = b.replicas;
    rep.ino = b.ino;
    return ns_reply(op, &mkv_desc_bucket_head_rep, &rep);
}

int ns_bucket_list(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_bucket_list_req req;
    struct mkv_bucket_list_rep rep;
    struct mkv_buf list = MKV_BUF_INIT;
    MDB_cursor *c;
    MDB_val k, v;
    int rc, rv;
    DECODE(mkv_desc_bucket_list_req, p, len, &req);
    if ((rv = ns_cursor(op, op->ns->db_buckets, &c))) return rv;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct mkv_ns_bucket b;
        struct mkv_bucket_entry e;
        if (mkv_msg_decode(&ns_desc_ns_bucket, v.mv_data, v.mv_size, &b)) {
            rc = MDB_CORRUPTED;
            break;
        }
        e.name = mkv_slice_mem(k.mv_data, k.mv_size);
        e.ctime = b.ctime;
        if (list.len + 2 + k.mv_size + 8 > (1u << 20)) break; /* reply bound */
        if (mkv_msg_append(&list, &mkv_desc_bucket_entry, &e)) {
            rc = ENOMEM;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        mkv_buf_free(&list);
        return ns_fail(op, rc, "bucket_list");
    }
    rep.buckets = mkv_slice_mem(list.p, list.len);
    rv = ns_reply(op, &mkv_desc_bucket_list_rep, &rep);
    mkv_buf_free(&list);
    return rv;
}

/* ---- put ---- */

static int mkdir_implicit(struct ns_op *op, uint64_t parent, const uint8_t *name, size_t nlen,
                          uint64_t *out)
{
    struct mkv_obj_info oi = {0};
    int rv;
    oi.ino = op->ns->next_ino++;
    oi.type = MKV_T_DIR;
    oi.dflags = MKV_DF_IMPLICIT;
    oi.mode = S_IFDIR | 0755;
    oi.nlink = 1;
    oi.atime = oi.mtime = oi.ctime = op->now;
    oi.generation = op->index;
    if ((rv = ns_ino_put(op, &oi))) return rv;
    if ((rv = ns_dent_put(op, parent, name, nlen, MKV_T_DIR, oi.ino, MKV_DF_IMPLICIT))) return rv;
    *out = oi.ino;
    return 0;
}

/* Precondition check against an existing object (old, or NULL). */
static int preconditions(const struct ns_put_args *a, const struct mkv_obj_info *old)
{
    if ((a->flags & MKV_PUT_IF_NONE_MATCH) && old) return MKV_EPRECONDITION;
    if (a->if_match.len) {
        if (!old) return MKV_EPRECONDITION;
        if (!mkv_slice_eq(a->if_match, "*") &&
            ns_slice_cmp(ns_etag_bare(a->if_match), ns_etag_bare(old->etag)) != 0)
            return MKV_EPRECONDITION;
    }
    return 0;
}

static int put_dir(struct ns_op *op, const struct ns_put_args *a, uint64_t parent,
                   const uint8_t *name, size_t nlen, int exists, struct mkv_obj_info *old,
                   int64_t mtime, uint64_t *ino_out)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_obj_info oi;
    int rv, was_implicit = 0;
    if (exists) {
        oi = *old;
        was_implicit = (oi.dflags & MKV_DF_IMPLICIT) != 0;
        oi.dflags &= (uint8_t)~MKV_DF_IMPLICIT;
    } else {
        memset(&oi, 0, sizeof oi);
        oi.ino = ns->next_ino++;
        oi.type = MKV_T_DIR;
        oi.mode = S_IFDIR | (a->mode ? (a->mode & 07777) : 0755);
        oi.uid = a->uid;
        oi.gid = a->gid;
        oi.nlink = 1;
        oi.generation = op->index;
    }
    oi.atime = oi.mtime = mtime;
    oi.ctime = op->now;
    oi.etag = a->etag;
    oi.content_type = a->content_type;
    oi.attrs = a->attrs;
    oi.extents = mkv_slice_mem("", 0);
    oi.symlink = mkv_slice_mem("", 0);
    if ((rv = ns_ino_put(op, &oi))) return rv;
    if (!exists || was_implicit) {
        if ((rv = ns_dent_put(op, parent, name, nlen, MKV_T_DIR, oi.ino, 0))) return rv;
        ns->cnt.objects++;
    }
    *ino_out = oi.ino;
    return 0;
}

/* Every check comes before the first write, so that a refused put leaves
 * no trace (commands do not run in nested transactions). */
int ns_put_file(struct ns_op *op, const struct ns_put_args *a, uint64_t *ino_out,
                int64_t *mtime_out)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_ns_bucket b;
    struct ns_path path;
    struct mkv_obj_info old, oi;
    struct mkv_buf old_ext = MKV_BUF_INIT, old_etag = MKV_BUF_INIT, old_data = MKV_BUF_INIT;
    const int keep = (a->flags & MKV_PUT_KEEP_DATA) != 0;
    int64_t mtime = a->mtime ? a->mtime : op->now;
    uint64_t dir, ino = 0, old_size = 0;
    uint8_t owner[9];
    const uint8_t *lname;
    size_t llen;
    unsigned missing = 0, have_missing = 0;
    int type = 0, exists = 0, rv, is_dir;

    if ((rv = ns_bucket_get(op, a->bucket, &b))) return rv;
    if ((rv = ns_path_parse(&path, a->key))) return rv;
    is_dir = path.dir || (a->flags & MKV_PUT_DIR);
    if (is_dir && (a->size || a->extents.len || a->data.len)) return -EINVAL;
    if (a->data.len && (keep || a->extents.len || a->data.len != a->size ||
                        a->data.len > MKV_INLINE_MAX))
        return -EINVAL;
    if (!is_dir && !keep && !a->data.len &&
        (rv = ns_extents_check(a->extents, a->size, MKV_EXTENTS_MAX)))
        return rv;
    if ((rv = ns_attrs_check(a->attrs))) return rv;
    /* Walk the existing part of the path; the rest will be created. */
    dir = b.ino;
    for (unsigned i = 0; i + 1 < path.n; i++) {
        rv = ns_dent_find(op, dir, path.p + path.off[i], path.clen[i], &ino, &type);
        if (rv == -ENOENT) {
            missing = i;
            have_missing = 1;
            break;
        }
        if (rv) return rv;
        if (type != MKV_T_DIR) return MKV_EKEYCONFLICT;
        dir = ino;
    }
    lname = path.p + path.off[path.n - 1];
    llen = path.clen[path.n - 1];
    if (!have_missing) {
        rv = ns_dent_find(op, dir, lname, llen, &ino, &type);
        if (rv && rv != -ENOENT) return rv;
        exists = rv == 0;
    }
    if (exists) {
        if (is_dir != (type == MKV_T_DIR)) return MKV_EKEYCONFLICT;
        if ((rv = ns_ino_get(op, ino, &old))) return rv == -ENOENT ? NS_EFATAL : rv;
    }
    /* An implicit directory is no object for preconditions. */
    if ((rv = preconditions(a, exists && !(is_dir && (old.dflags & MKV_DF_IMPLICIT)) ? &old
                                                                                   : NULL)))
        return rv;
    if (!is_dir && keep && !exists) return MKV_ENOTFOUND;

    /* Writes from here on. */
    if (have_missing)
        for (unsigned i = missing; i + 1 < path.n; i++)
            if ((rv = mkdir_implicit(op, dir, path.p + path.off[i], path.clen[i], &dir)))
                return rv;
    if (is_dir) {
        rv = put_dir(op, a, dir, lname, llen, exists, &old, mtime, ino_out);
        if (!rv) *mtime_out = mtime;
        return rv;
    }
    memset(&oi, 0, sizeof oi);
    if (exists) {
        /* old points into LMDB pages that the writes below may reuse. */
        if ((rv = dup_slice(op, &old_ext, &old.extents)) ||
            (rv = dup_slice(op, &old_etag, &old.etag)) ||
            (keep && (rv = dup_slice(op, &old_data, &old.data))))
            goto out;
        old_size = old.size;
        oi.mode = old.mode;
    } else {
        ino = ns->next_ino++;
        oi.mode = S_IFREG | 0644;
    }
    if (a->mode) oi.mode = S_IFREG | (a->mode & 07777);
    oi.ino = ino;
    oi.type = MKV_T_FILE;
    oi.uid = a->uid;
    oi.gid = a->gid;
    oi.nlink = 1;
    oi.size = keep ? old.size : a->size;
    oi.atime = oi.mtime = mtime;
    oi.ctime = op->now;
    oi.etag = (keep && !a->etag.len) ? old.etag : a->etag;
    oi.content_type = a->content_type;
    oi.attrs = a->attrs;
    oi.extents = keep ? old.extents : a->extents;
    oi.data = keep ? old.data : a->data;
    oi.symlink = mkv_slice_mem("", 0);
    oi.generation = op->index;
    if ((rv = ns_ino_put(op, &oi))) goto out;
    if (!exists && (rv = ns_dent_put(op, dir, lname, llen, MKV_T_FILE, ino, 0))) goto out;
    if (!keep) {
        size_t olen = ns_owner_inode(owner, ino);
        if (exists && (rv = ns_refs_drop(op, old.extents, owner, olen))) goto out;
        if ((rv = ns_refs_add(op, a->extents, owner, olen))) goto out;
    }
    if (!exists) ns->cnt.objects++;
    ns->cnt.bytes += oi.size - old_size;
    *ino_out = ino;
    *mtime_out = mtime;
out:
    mkv_buf_free(&old_ext);
    mkv_buf_free(&old_etag);
    mkv_buf_free(&old_data);
    return rv;
}

int ns_obj_put(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_obj_put_req req;
    struct mkv_obj_put_rep rep;
    struct ns_put_args a;
    int rv;
    DECODE(mkv_desc_obj_put_req, p, len, &req);
    a.bucket = req.bucket;
    a.key = req.key;
    a.if_match = req.if_match;
    a.etag = req.etag;
    a.content_type = req.content_type;
    a.attrs = req.attrs;
    a.extents = req.extents;
    a.data = req.data;
    a.flags = req.flags;
    a.mode = req.mode;
    a.uid = req.uid;
    a.gid = req.gid;
    a.size = req.size;
    a.mtime = req.mtime;
    if ((rv = ns_put_file(op, &a, &rep.ino, &rep.mtime))) return rv;
    return ns_reply(op, &mkv_desc_obj_put_rep, &rep);
}

/* ---- delete ---- */

/* Removes empty implicit directories upward: chain[i] is the directory
 * reached through component i-1 of path; chain[0] is the bucket. */
static int cleanup_parents(struct ns_op *op, const uint64_t *chain, const struct ns_path *path,
                           unsigned top)
{
    for (unsigned i = top; i >= 1; i--) {
        struct mkv_obj_info oi;
        int rv = ns_ino_get(op, chain[i], &oi);
        if (rv) return rv == -ENOENT ? NS_EFATAL : rv;
        if (!(oi.dflags & MKV_DF_IMPLICIT)) break;
        rv = ns_dir_empty(op, chain[i]);
        if (rv < 0) return rv;
        if (!rv) break;
        if ((rv = ns_ino_del(op, chain[i]))) return rv == -ENOENT ? NS_EFATAL : rv;
        if ((rv = ns_dent_del(op, chain[i - 1], path->p + path->off[i - 1], path->clen[i - 1], 1)))
            return rv == -ENOENT ? NS_EFATAL : rv;
    }
    return 0;
}

static int delete_key(struct ns_op *op, uint64_t bucket_ino, struct mkv_slice key, int *existed)
{
    struct mkv_ns *ns = op->ns;
    struct ns_path path;
    struct mkv_obj_info oi;
    uint64_t chain[MKV_KEY_MAX / 2 + 2], ino;
    const uint8_t *lname;
    size_t llen;
    int rv, type;

    *existed = 0;
    if ((rv = ns_path_parse(&path, key))) return rv;
    chain[0] = bucket_ino;
    for (unsigned i = 0; i + 1 < path.n; i++) {
        rv = ns_dent_find(op, chain[i], path.p + path.off[i], path.clen[i], &ino, &type);
        if (rv == -ENOENT || (rv == 0 && type != MKV_T_DIR)) return 0;
        if (rv) return rv;
        chain[i + 1] = ino;
    }
    lname = path.p + path.off[path.n - 1];
    llen = path.clen[path.n - 1];
    rv = ns_dent_find(op, chain[path.n - 1], lname, llen, &ino, &type);
    if (rv == -ENOENT) return 0;
    if (rv) return rv;
    if (path.dir != (type == MKV_T_DIR)) return 0; /* "a" names no directory, "a/" no file */
    if ((rv = ns_ino_get(op, ino, &oi))) return rv == -ENOENT ? NS_EFATAL : rv;
    if (type == MKV_T_DIR) {
        if (oi.dflags & MKV_DF_IMPLICIT) return 0;
        rv = ns_dir_empty(op, ino);
        if (rv < 0) return rv;
        if (!rv) {
            /* Children keep it: it stays as an implicit directory. */
            oi.dflags |= MKV_DF_IMPLICIT;
            oi.ctime = op->now;
            if ((rv = ns_ino_put(op, &oi))) return rv;
            if ((rv = ns_dent_put(op, chain[path.n - 1], lname, llen, MKV_T_DIR, ino, MKV_DF_IMPLICIT)))
                return rv;
            ns->cnt.objects--;
            *existed = 1;
            return 0;
        }
        if ((rv = ns_ino_del(op, ino))) return rv == -ENOENT ? NS_EFATAL : rv;
        if ((rv = ns_dent_del(op, chain[path.n - 1], lname, llen, 1)))
            return rv == -ENOENT ? NS_EFATAL : rv;
    } else {
        struct mkv_buf ext = MKV_BUF_INIT;
        uint8_t owner[9];
        uint64_t size = oi.size;
        if ((rv = dup_slice(op, &ext, &oi.extents))) return rv;
        rv = ns_ino_del(op, ino);
        if (!rv) rv = ns_dent_del(op, chain[path.n - 1], lname, llen, 0);
        if (!rv) rv = ns_refs_drop(op, oi.extents, owner, ns_owner_inode(owner, ino));
        mkv_buf_free(&ext);
        if (rv) return rv == -ENOENT || rv == -EINVAL ? NS_EFATAL : rv;
        ns->cnt.bytes -= size;
    }
    ns->cnt.objects--;
    *existed = 1;
    return cleanup_parents(op, chain, &path, path.n - 1);
}

int ns_obj_delete(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_obj_delete_req req;
    struct mkv_obj_delete_rep rep;
    struct mkv_ns_bucket b;
    int rv, existed;
    DECODE(mkv_desc_obj_delete_req, p, len, &req);
    if ((rv = ns_bucket_get(op, req.bucket, &b))) return rv;
    if ((rv = delete_key(op, b.ino, req.key, &existed))) return rv;
    rep.existed = (uint32_t)existed;
    return ns_reply(op, &mkv_desc_obj_delete_rep, &rep);
}

int ns_obj_delete_multi(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_obj_delete_multi_req req;
    struct mkv_obj_delete_multi_rep rep;
    struct mkv_ns_bucket b;
    struct mkv_key_entry ke;
    struct mkv_slice cur;
    int64_t st[MKV_MULTI_MAX];
    struct mkv_buf out = MKV_BUF_INIT;
    unsigned n = 0, failed = 0;
    int rv;

    DECODE(mkv_desc_obj_delete_multi_req, p, len, &req);
    if ((rv = ns_bucket_get(op, req.bucket, &b))) return rv;
    /* All or nothing: only a bad key can make a delete fail (other than a
     * fatal error), so every key is checked before anything is deleted. */
    cur = req.keys;
    while ((rv = mkv_msg_next(&mkv_desc_key_entry, &cur, &ke)) == 1) {
        if (n == MKV_MULTI_MAX) return -EINVAL;
        st[n] = mkv_check_key((const char *)ke.key.p, ke.key.len);
        if (st[n]) failed++;
        n++;
    }
    if (rv < 0) return -EPROTO;
    cur = req.keys;
    for (unsigned i = 0; i < n; i++) {
        int existed = 0;
        mkv_msg_next(&mkv_desc_key_entry, &cur, &ke);
        if (failed) {
            if (st[i] == 0) st[i] = -ECANCELED;
            continue;
        }
        if ((rv = delete_key(op, b.ino, ke.key, &existed))) return rv; /* fatal only */
        st[i] = existed;
    }
    for (unsigned i = 0; i < n; i++) {
        struct mkv_status_entry se = {st[i]};
        if (mkv_msg_append(&out, &mkv_desc_status_entry, &se)) {
            mkv_buf_free(&out);
            return ns_fail(op, ENOMEM, "multi reply");
        }
    }
    rep.results = mkv_slice_mem(out.p ? out.p : (const uint8_t *)"", out.len);
    rv = ns_reply(op, &mkv_desc_obj_delete_multi_rep, &rep);
    mkv_buf_free(&out);
    return rv;
}

/* ---- multi-key transactions ---- */

/* One operation of a transaction, in op->txn. */
static int txn_apply_one(struct ns_op *op, const struct mkv_txn_op *t)
{
    struct mkv_ns_bucket b;
    int rv, existed;
    if (t->kind == MKV_TXN_PUT) {
        struct ns_put_args a;
        uint64_t ino;
        int64_t mtime;
        memset(&a, 0, sizeof a);
        a.bucket = t->bucket;
        a.key = t->key;
        a.flags = t->flags & MKV_PUT_IF_NONE_MATCH;
        a.if_match = t->if_match;
        a.etag = t->etag;
        a.content_type = t->content_type;
        a.data = t->data;
        a.size = t->data.len;
        a.mode = 0644;
        return ns_put_file(op, &a, &ino, &mtime);
    }
    if ((rv = ns_bucket_get(op, t->bucket, &b))) return rv;
    if ((rv = delete_key(op, b.ino, t->key, &existed))) return rv;
    if (!existed && (t->flags & MKV_TXN_MUST_EXIST)) return MKV_ENOTFOUND;
    return 0;
}

/* Puts and deletes over any buckets, all or nothing. Unlike the other
 * commands, an operation can fail after earlier ones wrote (a later put's
 * precondition, say), so they run in a nested LMDB transaction that is
 * dropped on failure. The failure is the reply, not the command's status:
 * the client learns which operation failed. */
int ns_obj_txn(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_obj_txn_req req;
    struct mkv_obj_txn_rep rep = {0, 0};
    struct mkv_txn_op t;
    struct mkv_slice cur;
    struct mkv_ns *ns = op->ns;
    struct mkv_ns_counters cnt = ns->cnt;
    uint64_t next_ino = ns->next_ino, next_chunk = ns->next_chunk;
    MDB_txn *parent = op->txn, *child;
    unsigned n = 0, i;
    int rv, rc;

    DECODE(mkv_desc_obj_txn_req, p, len, &req);
    cur = req.ops;
    while ((rv = mkv_msg_next(&mkv_desc_txn_op, &cur, &t)) == 1) {
        if (++n > MKV_MULTI_MAX) return -EINVAL;
        if (t.kind != MKV_TXN_PUT && t.kind != MKV_TXN_DELETE) return -EINVAL;
        if (mkv_check_key((const char *)t.key.p, t.key.len)) return -EINVAL;
    }
    if (rv < 0) return -EPROTO;
    if (n == 0) return -EINVAL;
    if ((rc = mdb_txn_begin(ns->env, parent, 0, &child))) return ns_fail(op, rc, "txn begin");
    op->txn = child;
    cur = req.ops;
    for (i = 0, rv = 0; i < n && rv == 0; i++) {
        mkv_msg_next(&mkv_desc_txn_op, &cur, &t);
        rv = txn_apply_one(op, &t);
    }
    op->txn = parent;
    if (rv == 0 && (rc = mdb_txn_commit(child))) return ns_fail(op, rc, "txn commit");
    if (rv) {
        mdb_txn_abort(child);
        if (op->fatal) return rv;
        /* Nothing of it stays: neither the tables nor the counters. */
        op->wrote = 0;
        ns->cnt = cnt;
        ns->next_ino = next_ino;
        ns->next_chunk = next_chunk;
        rep.failed = i;
        rep.status = rv;
    }
    return ns_reply(op, &mkv_desc_obj_txn_rep, &rep);
}

/* ---- lookup ---- */

int ns_obj_lookup(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_obj_lookup_req req;
    struct mkv_ns_bucket b;
    struct ns_path path;
    uint64_t dir, ino;
    uint8_t k[8];
    MDB_val v;
    int rv, type;
    DECODE(mkv_desc_obj_lookup_req, p, len, &req);
    if ((rv = ns_bucket_get(op, req.bucket, &b))) return rv;
    if (req.key.len == 0) {
        ino = b.ino; /* the bucket's own directory */
    } else {
        if ((rv = ns_path_parse(&path, req.key))) return rv;
        rv = ns_walk(op, b.ino, &path, path.n - 1, &dir);
        if (rv == -ENOENT) return MKV_ENOTFOUND;
        if (rv) return rv;
        rv = ns_dent_find(op, dir, path.p + path.off[path.n - 1], path.clen[path.n - 1], &ino,
                          &type);
        if (rv == -ENOENT || (rv == 0 && path.dir && type != MKV_T_DIR)) return MKV_ENOTFOUND;
        if (rv) return rv;
    }
    mkv_put_be64(k, ino);
    rv = ns_get(op, op->ns->db_inodes, k, 8, &v);
    if (rv) return rv == -ENOENT ? NS_EFATAL : rv;
    /* The stored record is an encoded obj_info: it is the reply. */
    if (mkv_buf_append(op->reply, v.mv_data, v.mv_size)) return ns_fail(op, ENOMEM, "reply");
    return 0;
}
