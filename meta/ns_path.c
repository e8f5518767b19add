/* minikv meta: names, directory entries, inodes and chunk references. */
#include <errno.h>
#include <string.h>

#include "meta/ns_int.h"
#include "minikv/names.h"

/* ---- names ---- */


int ns_path_parse(struct ns_path *path, struct mkv_slice key)
{
    int rv = mkv_check_key((const char *)key.p, key.len);
    size_t start = 0;
    if (rv) return rv;
    path->p = key.p;
    path->len = key.len;
    path->dir = key.p[key.len - 1] == '/';
    path->n = 0;
    for (size_t i = 0; i <= key.len; i++) {
        if (i < key.len && key.p[i] != '/') continue;
        if (i > start) {
            path->off[path->n] = (uint16_t)start;
            path->clen[path->n] = (uint16_t)(i - start);
            path->n++;
        }
        start = i + 1;
    }
    return 0;
}

struct mkv_slice ns_etag_bare(struct mkv_slice e)
{
    if (e.len >= 2 && e.p[0] == '"' && e.p[e.len - 1] == '"') {
        e.p++;
        e.len -= 2;
    }
    return e;
}

int ns_slice_cmp(struct mkv_slice a, struct mkv_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* ---- buckets ---- */

int ns_bucket_get(struct ns_op *op, struct mkv_slice name, struct mkv_ns_bucket *b)
{
    int rv;
    if (name.len == 0 || name.len > MKV_BUCKET_MAX) return MKV_ENOBUCKET;
    rv = ns_get_msg(op, op->ns->db_buckets, name.p, name.len, &ns_desc_ns_bucket, b);
    return rv == -ENOENT ? MKV_ENOBUCKET : rv;
}

/* ---- directory entries ----
 * key: parent inode (8, big-endian) + name (+ '/' for a directory)
 * value: inode (8, LE) + type (1) + dflags (1) */

size_t ns_dent_key(uint8_t *k, uint64_t dir, const uint8_t *name, size_t nlen, int is_dir)
{
    mkv_put_be64(k, dir);
    memcpy(k + 8, name, nlen);
    if (is_dir) k[8 + nlen++] = '/';
    return 8 + nlen;
}

int ns_dent_find(struct ns_op *op, uint64_t dir, const uint8_t *name, size_t nlen,
                 uint64_t *ino, int *type)
{
    uint8_t k[8 + MKV_NAME_MAX + 1];
    MDB_val v;
    int rv;
    if (nlen > MKV_NAME_MAX) return -ENOENT;
    for (int is_dir = 1; is_dir >= 0; is_dir--) {
        rv = ns_get(op, op->ns->db_dentries, k, ns_dent_key(k, dir, name, nlen, is_dir), &v);
        if (rv == -ENOENT) continue;
        if (rv) return rv;
        if (v.mv_size < 10) return ns_fail(op, MDB_CORRUPTED, "dentry");
        *ino = mkv_get_le64(v.mv_data);
        *type = ((const uint8_t *)v.mv_data)[8];
        return 0;
    }
    return -ENOENT;
}

/* dirseq: key directory inode (8, BE) + cookie (8, BE), value the entry's
 * key in dentries after the directory (name, '/' for a directory). */
static int dirseq_put(struct ns_op *op, uint64_t dir, uint64_t seq, const uint8_t *dkey,
                      size_t dlen)
{
    uint8_t k[16];
    mkv_put_be64(k, dir);
    mkv_put_be64(k + 8, seq);
    return ns_put(op, op->ns->db_dirseq, k, 16, dkey, dlen);
}

int ns_dent_put(struct ns_op *op, uint64_t dir, const uint8_t *name, size_t nlen, int type,
                uint64_t ino, uint8_t dflags)
{
    uint8_t k[8 + MKV_NAME_MAX + 1], v[NS_DENT_VLEN];
    int is_dir = type == MKV_T_DIR, rv;
    size_t klen = ns_dent_key(k, dir, name, nlen, is_dir);
    uint64_t seq = 0;
    MDB_val old;
    rv = ns_get(op, op->ns->db_dentries, k, klen, &old);
    if (rv && rv != -ENOENT) return rv;
    if (rv == 0 && old.mv_size >= NS_DENT_VLEN) seq = mkv_get_le64((const uint8_t *)old.mv_data + 10);
    mkv_put_le64(v, ino);
    v[8] = (uint8_t)type;
    v[9] = dflags;
    if (!seq) {
        /* Unique and increasing with the log: the same on every replica. */
        seq = ((op->index ? op->index : 1) << 20) | (op->dent_seq++ & 0xFFFFF);
        if ((rv = dirseq_put(op, dir, seq, k + 8, klen - 8))) return rv;
    }
    mkv_put_le64(v + 10, seq);
    rv = ns_put(op, op->ns->db_dentries, k, klen, v, sizeof v);
    if (!rv && is_dir) rv = ns_dirparent_put(op, ino, dir, name, nlen);
    return rv;
}

int ns_dent_del(struct ns_op *op, uint64_t dir, const uint8_t *name, size_t nlen, int is_dir)
{
    uint8_t k[8 + MKV_NAME_MAX + 1], dk[8];
    size_t klen = ns_dent_key(k, dir, name, nlen, is_dir);
    MDB_val v;
    int rv;
    /* Its cookie, and a directory's row in dirparent, go with the entry. */
    rv = ns_get(op, op->ns->db_dentries, k, klen, &v);
    if (rv) return rv;
    if (v.mv_size < 10) return ns_fail(op, MDB_CORRUPTED, "dentry");
    if (v.mv_size >= NS_DENT_VLEN) {
        uint8_t sk[16];
        mkv_put_be64(sk, dir);
        memcpy(sk + 8, (const uint8_t *)v.mv_data + 10, 8);
        mkv_put_be64(sk + 8, mkv_get_le64(sk + 8));
        if ((rv = ns_del(op, op->ns->db_dirseq, sk, 16)) && rv != -ENOENT) return rv;
    }
    if (is_dir) {
        mkv_put_be64(dk, mkv_get_le64(v.mv_data));
        if ((rv = ns_del(op, op->ns->db_dirparent, dk, 8)) && rv != -ENOENT) return rv;
    }
    return ns_del(op, op->ns->db_dentries, k, klen);
}

/* ---- directory parents ----
 * key: directory inode (8, big-endian); value: parent inode (8, LE) + name.
 * A directory has one parent (no hard links to directories), so this is
 * how a directory finds its own name and its path. */

int ns_dirparent_put(struct ns_op *op, uint64_t dir, uint64_t parent, const uint8_t *name,
                     size_t nlen)
{
    uint8_t k[8], v[8 + MKV_NAME_MAX];
    if (nlen > MKV_NAME_MAX) return -ENAMETOOLONG;
    mkv_put_be64(k, dir);
    mkv_put_le64(v, parent);
    memcpy(v + 8, name, nlen);
    return ns_put(op, op->ns->db_dirparent, k, 8, v, 8 + nlen);
}

int ns_dirparent_get(struct ns_op *op, uint64_t dir, uint64_t *parent, size_t *nlen)
{
    uint8_t k[8];
    MDB_val v;
    int rv;
    mkv_put_be64(k, dir);
    if ((rv = ns_get(op, op->ns->db_dirparent, k, 8, &v))) return rv;
    if (v.mv_size < 8 || v.mv_size > 8 + MKV_NAME_MAX) return ns_fail(op, MDB_CORRUPTED, "dirparent");
    *parent = mkv_get_le64(v.mv_data);
    if (nlen) *nlen = v.mv_size - 8;
    return 0;
}

int ns_dir_empty(struct ns_op *op, uint64_t dir)
{
    MDB_cursor *c;
    uint8_t k[8];
    MDB_val key = {8, k}, v;
    int rc, rv;
    mkv_put_be64(k, dir);
    if ((rv = ns_cursor(op, op->ns->db_dentries, &c))) return rv;
    rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) return 1;
    if (rc) return ns_fail(op, rc, "dir_empty");
    return !(key.mv_size >= 8 && mkv_get_be64(key.mv_data) == dir);
}

/* ---- inodes: key inode (8, big-endian), value an obj_info record ---- */

int ns_ino_get(struct ns_op *op, uint64_t ino, struct mkv_obj_info *oi)
{
    uint8_t k[8];
    mkv_put_be64(k, ino);
    return ns_get_msg(op, op->ns->db_inodes, k, 8, &mkv_desc_obj_info, oi);
}

int ns_ino_put(struct ns_op *op, const struct mkv_obj_info *oi)
{
    uint8_t k[8];
    mkv_put_be64(k, oi->ino);
    return ns_put_msg(op, op->ns->db_inodes, k, 8, &mkv_desc_obj_info, oi);
}

int ns_ino_del(struct ns_op *op, uint64_t ino)
{
    uint8_t k[8];
    MDB_cursor *c;
    MDB_val key = {8, k}, v;
    int rc, rv;
    mkv_put_be64(k, ino);
    if ((rv = ns_del(op, op->ns->db_inodes, k, 8))) return rv;
    /* Its extended attributes and orphan mark go with it. */
    if ((rv = ns_del(op, op->ns->db_orphans, k, 8)) && rv != -ENOENT) return rv;
    if ((rv = ns_cursor(op, op->ns->db_xattrs, &c))) return rv;
    for (;;) {
        key.mv_size = 8;
        key.mv_data = k;
        rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
        if (rc || key.mv_size < 8 || mkv_get_be64(key.mv_data) != ino) break;
        if ((rc = mdb_cursor_del(c, 0))) break;
        op->wrote = 1;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) return ns_fail(op, rc, "xattr cleanup");
    return 0;
}

int ns_walk(struct ns_op *op, uint64_t dir, const struct ns_path *path, unsigned upto,
            uint64_t *out)
{
    for (unsigned i = 0; i < upto; i++) {
        uint64_t ino;
        int type, rv;
        rv = ns_dent_find(op, dir, path->p + path->off[i], path->clen[i], &ino, &type);
        if (rv) return rv;
        if (type != MKV_T_DIR) return -ENOENT;
        dir = ino;
    }
    *out = dir;
    return 0;
}

/* ---- extents and attributes ---- */

int ns_extents_check(struct mkv_slice ext, uint64_t size, uint32_t max_count)
{
    struct mkv_extent e;
    uint64_t end = 0;
    uint32_t n = 0;
    int rv;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &ext, &e)) == 1) {
        if (++n > max_count) return -E2BIG;
        if (e.len == 0 || e.chunk_id == 0) return -EINVAL;
        if (e.file_off < end || e.file_off + e.len < e.file_off) return -EINVAL;
        if (e.file_off + e.len > size) return -EINVAL;
        if (e.chunk_off > MKV_CHUNK_SIZE || e.len > MKV_CHUNK_SIZE - e.chunk_off) return -EINVAL;
        end = e.file_off + e.len;
    }
    return rv < 0 ? -EINVAL : 0;
}

int ns_attrs_check(struct mkv_slice attrs)
{
    struct mkv_attr a;
    int rv;
    while ((rv = mkv_msg_next(&mkv_desc_attr, &attrs, &a)) == 1) {
    }
    return rv < 0 ? -EINVAL : 0;
}

/* ---- chunk references ----
 * refs key: chunk (8, BE) + version (4, BE) + owner; empty value.
 * owner: NS_OWNER_INODE + inode (8, BE) | NS_OWNER_PART + upload id + NUL +
 *        part number (4, BE)
 * garbage key: chunk (8, BE) + version (4, BE); value: time added (8, LE). */

size_t ns_owner_inode(uint8_t *o, uint64_t ino)
{
    o[0] = NS_OWNER_INODE;
    mkv_put_be64(o + 1, ino);
    return 9;
}

size_t ns_owner_part(uint8_t *o, struct mkv_slice upload_id, uint32_t part_no)
{
    o[0] = NS_OWNER_PART;
    memcpy(o + 1, upload_id.p, upload_id.len);
    o[1 + upload_id.len] = 0;
    mkv_put_be32(o + 2 + upload_id.len, part_no);
    return 6 + upload_id.len;
}

static size_t ref_key(uint8_t *k, uint64_t chunk, uint32_t version, const uint8_t *owner,
                      size_t olen)
{
    mkv_put_be64(k, chunk);
    mkv_put_be32(k + 8, version);
    if (olen) memcpy(k + 12, owner, olen);
    return 12 + olen;
}

int ns_ref_exists(struct ns_op *op, uint64_t chunk, uint32_t version)
{
    MDB_cursor *c;
    uint8_t k[12];
    MDB_val key = {12, k}, v;
    int rc, rv;
    ref_key(k, chunk, version, NULL, 0);
    if ((rv = ns_cursor(op, op->ns->db_refs, &c))) return rv;
    rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    if (rc == 0) rv = key.mv_size >= 12 && memcmp(key.mv_data, k, 12) == 0;
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return ns_fail(op, rc, "ref_exists");
    return rv;
}

int ns_garbage_add(struct ns_op *op, uint64_t chunk, uint32_t version)
{
    uint8_t k[12], v[8];
    MDB_val tmp;
    int rv;
    ref_key(k, chunk, version, NULL, 0);
    rv = ns_get(op, op->ns->db_garbage, k, 12, &tmp);
    if (rv == 0) return 0;
    if (rv != -ENOENT) return rv;
    mkv_put_le64(v, (uint64_t)op->now);
    if ((rv = ns_put(op, op->ns->db_garbage, k, 12, v, 8))) return rv;
    op->ns->cnt.garbage++;
    return 0;
}

int ns_refs_add(struct ns_op *op, struct mkv_slice ext, const uint8_t *owner, size_t olen)
{
    uint8_t k[12 + 80];
    struct mkv_extent e;
    int rv;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &ext, &e)) == 1) {
        if ((rv = ns_put(op, op->ns->db_refs, k, ref_key(k, e.chunk_id, e.version, owner, olen),
                         "", 0)))
            return rv;
        rv = ns_del(op, op->ns->db_garbage, k, 12);
        if (rv == 0) op->ns->cnt.garbage--;
        else if (rv != -ENOENT) return rv;
    }
    return rv < 0 ? -EINVAL : 0;
}

int ns_refs_drop(struct ns_op *op, struct mkv_slice ext, const uint8_t *owner, size_t olen)
{
    uint8_t k[12 + 80];
    struct mkv_extent e;
    struct mkv_slice cur = ext;
    int rv;
    /* First every reference of this owner, then the garbage check, so that
     * a pair used by two extents of the owner is judged once it is gone. */
    while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1) {
        rv = ns_del(op, op->ns->db_refs, k, ref_key(k, e.chunk_id, e.version, owner, olen));
        if (rv && rv != -ENOENT) return rv;
    }
    if (rv < 0) return -EINVAL;
    cur = ext;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1) {
        int ref = ns_ref_exists(op, e.chunk_id, e.version);
        if (ref < 0) return ref;
        if (!ref && (rv = ns_garbage_add(op, e.chunk_id, e.version))) return rv;
    }
    return rv < 0 ? -EINVAL : 0;
}
