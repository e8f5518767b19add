/* minikv meta: chunk id allocation, garbage collection, the reference
 * check and access keys. */
#include <errno.h>
#include <string.h>

#include "meta/ns_int.h"
#include "minikv/log.h"
#include "minikv/vshard.h"

/* Largest range one meta_alloc hands out. */
#define NS_ALLOC_MAX (1u << 20)

int ns_meta_alloc(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_meta_alloc_req req;
    struct mkv_meta_alloc_rep rep;
    DECODE(mkv_desc_meta_alloc_req, p, len, &req);
    if (req.count == 0 || req.count > NS_ALLOC_MAX) return -EINVAL;
    if (req.flags & MKV_ALLOC_INODES) {
        if (op->ns->next_ino > UINT64_MAX - req.count) return -EOVERFLOW;
        rep.first = op->ns->next_ino;
        rep.count = req.count;
        op->ns->next_ino += req.count;
        return ns_reply(op, &mkv_desc_meta_alloc_rep, &rep);
    }
    /* Chunk ids carry their copies in the top bits (minikv/vshard.h). */
    if (op->ns->next_chunk > MKV_CHUNK_ID_LIMIT - req.count) return -EOVERFLOW;
    rep.first = op->ns->next_chunk;
    rep.count = req.count;
    op->ns->next_chunk += req.count;
    return ns_reply(op, &mkv_desc_meta_alloc_rep, &rep);
}

/* A garbage value: the time it was added (8, LE), then the ids (8, LE
 * each) of the chunk servers that have deleted their copy. With several
 * chunk servers an entry stays until every replica of its vshard has. */
static int garbage_confirmed_by(const MDB_val *v, uint64_t node)
{
    for (size_t off = 8; off + 8 <= v->mv_size; off += 8)
        if (mkv_get_le64((const uint8_t *)v->mv_data + off) == node) return 1;
    return 0;
}

/* Whether every replica of the chunk's vshard (the garbage entry at k,
 * value v), node counted, has deleted its copy: 1, 0, or a negative code.
 * Without a map (one chunk server) always. */
static int garbage_complete(struct ns_op *op, const uint8_t *k, const MDB_val *v, uint64_t node)
{
    uint8_t key[2];
    struct mkv_vshard_rec r;
    struct mkv_vshard vs;
    int rv;
    mkv_put_be16(key, (uint16_t)mkv_vshard_of(mkv_get_be64(k)));
    rv = ns_get_msg(op, op->ns->db_vshards, key, sizeof key, &mkv_desc_vshard_rec, &r);
    if (rv == -ENOENT) return 1;
    if (rv) return rv;
    if (mkv_vshard_from_rec(&r, &vs)) return ns_fail(op, MDB_CORRUPTED, "garbage");
    for (unsigned i = 0; i < vs.n; i++)
        if (vs.rep[i] != node && !garbage_confirmed_by(v, vs.rep[i])) return 0;
    return 1;
}

int ns_gc_list(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_gc_list_req req;
    struct mkv_gc_list_rep rep;
    struct mkv_buf list = MKV_BUF_INIT;
    MDB_cursor *c;
    MDB_val k, v;
    uint32_t max, n = 0;
    int rc, rv;
    DECODE(mkv_desc_gc_list_req, p, len, &req);
    max = req.max ? MKV_MIN(req.max, MKV_MULTI_MAX) : MKV_MULTI_MAX;
    if ((rv = ns_cursor(op, op->ns->db_garbage, &c))) return rv;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && n < max;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct mkv_chunk_ref r;
        if (k.mv_size != 12) {
            rc = MDB_CORRUPTED;
            break;
        }
        /* What this server deleted already is listed again only once the
         * entry can go (the replicas it waited for left the map). */
        if (req.node && garbage_confirmed_by(&v, req.node)) {
            int done = garbage_complete(op, k.mv_data, &v, req.node);
            if (done < 0) {
                rc = MDB_CORRUPTED;
                break;
            }
            if (!done) continue;
        }
        r.chunk_id = mkv_get_be64(k.mv_data);
        r.version = mkv_get_be32((const uint8_t *)k.mv_data + 8);
        r.flags = 0;
        if (mkv_msg_append(&list, &mkv_desc_chunk_ref, &r)) {
            rc = ENOMEM;
            break;
        }
        n++;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        mkv_buf_free(&list);
        return ns_fail(op, rc, "gc_list");
    }
    rep.ids = mkv_slice_mem(list.p ? list.p : (const uint8_t *)"", list.len);
    rv = ns_reply(op, &mkv_desc_gc_list_rep, &rep);
    mkv_buf_free(&list);
    return rv;
}

/* Records that node deleted its copy of the garbage entry at k (value v):
 * returns 1 when the entry can go, 0 when other replicas have not yet
 * deleted theirs (the entry now names node), or a negative code. */
static int garbage_confirm(struct ns_op *op, const uint8_t *k, const MDB_val *v, uint64_t node)
{
    uint8_t val[8 + 8 * 2 * MKV_REPLICAS_MAX];
    size_t vlen;
    int rv = garbage_complete(op, k, v, node);
    if (rv || garbage_confirmed_by(v, node)) return rv;
    vlen = MKV_MIN(v->mv_size, sizeof val - 8);
    memcpy(val, v->mv_data, vlen);
    mkv_put_le64(val + vlen, node);
    return ns_put(op, op->ns->db_garbage, k, 12, val, vlen + 8);
}

int ns_gc_done(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_gc_done_req req;
    struct mkv_gc_done_rep rep = {0};
    struct mkv_chunk_ref r;
    struct mkv_slice cur;
    int rv;
    DECODE(mkv_desc_gc_done_req, p, len, &req);
    cur = req.ids; /* the whole list is checked before the first delete */
    while ((rv = mkv_msg_next(&mkv_desc_chunk_ref, &cur, &r)) == 1) {
    }
    if (rv < 0) return -EPROTO;
    cur = req.ids;
    while ((rv = mkv_msg_next(&mkv_desc_chunk_ref, &cur, &r)) == 1) {
        uint8_t k[12];
        MDB_val v;
        mkv_put_be64(k, r.chunk_id);
        mkv_put_be32(k + 8, r.version);
        if (req.node) {
            rv = ns_get(op, op->ns->db_garbage, k, 12, &v);
            if (rv == -ENOENT) continue;
            if (rv) return rv;
            if ((rv = garbage_confirm(op, k, &v, req.node)) <= 0) {
                if (rv < 0) return rv;
                continue;
            }
        }
        rv = ns_del(op, op->ns->db_garbage, k, 12);
        if (rv == 0) {
            op->ns->cnt.garbage--;
            rep.count++;
        } else if (rv != -ENOENT) {
            return rv;
        }
    }
    if (rv < 0) return -EPROTO;
    return ns_reply(op, &mkv_desc_gc_done_rep, &rep);
}

int ns_refcheck(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_refcheck_req req;
    struct mkv_refcheck_rep rep;
    struct mkv_chunk_ref r;
    struct mkv_slice cur;
    uint8_t out[MKV_MULTI_MAX];
    uint32_t n = 0;
    int rv;
    DECODE(mkv_desc_refcheck_req, p, len, &req);
    cur = req.ids;
    while ((rv = mkv_msg_next(&mkv_desc_chunk_ref, &cur, &r)) == 1) {
        int ref;
        if (n == MKV_MULTI_MAX) return -EINVAL;
        ref = ns_ref_exists(op, r.chunk_id, r.version);
        if (ref < 0) return ref;
        out[n++] = (uint8_t)ref;
    }
    if (rv < 0) return -EPROTO;
    rep.referenced = mkv_slice_mem(out, n);
    return ns_reply(op, &mkv_desc_refcheck_rep, &rep);
}

/* ---- access keys: access key -> key_get_rep record ---- */

int ns_key_put(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_key_put_req req;
    struct mkv_key_put_rep rep;
    struct mkv_key_get_rep rec, old;
    int rv;
    DECODE(mkv_desc_key_put_req, p, len, &req);
    if (req.access_key.len == 0) return MKV_EBADNAME;
    rv = ns_get_msg(op, op->ns->db_keys, req.access_key.p, req.access_key.len,
                    &mkv_desc_key_get_rep, &old);
    if (rv && rv != -ENOENT) return rv;
    rec.sealed_secret = req.sealed_secret;
    rec.flags = req.flags;
    rec.created = rv == 0 ? old.created : op->now; /* a replaced key keeps its date */
    if ((rv = ns_put_msg(op, op->ns->db_keys, req.access_key.p, req.access_key.len,
                         &mkv_desc_key_get_rep, &rec)))
        return rv;
    rep.created = rec.created;
    return ns_reply(op, &mkv_desc_key_put_rep, &rep);
}

int ns_key_get(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_key_get_req req;
    MDB_val v;
    int rv;
    DECODE(mkv_desc_key_get_req, p, len, &req);
    if (req.access_key.len == 0) return MKV_ENOKEY;
    rv = ns_get(op, op->ns->db_keys, req.access_key.p, req.access_key.len, &v);
    if (rv == -ENOENT) return MKV_ENOKEY;
    if (rv) return rv;
    if (mkv_buf_append(op->reply, v.mv_data, v.mv_size)) return ns_fail(op, ENOMEM, "reply");
    return 0;
}

int ns_key_delete(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_key_delete_req req;
    struct mkv_key_delete_rep rep = {0};
    int rv;
    DECODE(mkv_desc_key_delete_req, p, len, &req);
    if (req.access_key.len == 0) return MKV_ENOKEY;
    rv = ns_del(op, op->ns->db_keys, req.access_key.p, req.access_key.len);
    if (rv == -ENOENT) return MKV_ENOKEY;
    if (rv) return rv;
    return ns_reply(op, &mkv_desc_key_delete_rep, &rep);
}

int ns_key_list(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_key_list_req req;
    struct mkv_key_list_rep rep;
    struct mkv_buf list = MKV_BUF_INIT;
    MDB_cursor *c;
    MDB_val k, v;
    int rc, rv;
    DECODE(mkv_desc_key_list_req, p, len, &req);
    if ((rv = ns_cursor(op, op->ns->db_keys, &c))) return rv;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct mkv_key_get_rep rec;
        struct mkv_key_info ki;
        if (mkv_msg_decode(&mkv_desc_key_get_rep, v.mv_data, v.mv_size, &rec)) {
            rc = MDB_CORRUPTED;
            break;
        }
        ki.access_key = mkv_slice_mem(k.mv_data, k.mv_size);
        ki.flags = rec.flags;
        ki.created = rec.created;
        if (list.len + k.mv_size + 14 > (1u << 20)) break; /* reply bound */
        if (mkv_msg_append(&list, &mkv_desc_key_info, &ki)) {
            rc = ENOMEM;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        mkv_buf_free(&list);
        return ns_fail(op, rc, "key_list");
    }
    rep.keys = mkv_slice_mem(list.p ? list.p : (const uint8_t *)"", list.len);
    rv = ns_reply(op, &mkv_desc_key_list_rep, &rep);
    mkv_buf_free(&list);
    return rv;
}

/* ---- chunk servers (NODE_REGISTER, NODE_LIST) ---- */

int ns_node_register(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_node_register_req req;
    struct mkv_node_register_rep rep = {0};
    struct mkv_node_rec rec = {0};
    uint8_t key[8];
    MDB_cursor *c;
    MDB_val k, v;
    int rc, rv;
    DECODE(mkv_desc_node_register_req, p, len, &req);
    if (req.address.len == 0) return -EINVAL;
    if (req.id) {
        mkv_put_be64(key, req.id);
        rv = ns_get_msg(op, op->ns->db_nodes, key, sizeof key, &mkv_desc_node_rec, &rec);
        if (rv) return rv; /* -ENOENT: an id this group never gave */
        if (mkv_slice_same(rec.address, req.address) && mkv_slice_same(rec.zone, req.zone)) {
            rep.id = req.id;
            return ns_reply(op, &mkv_desc_node_register_rep, &rep);
        }
    } else {
        /* A new chunk server: the id after the largest given. */
        if ((rv = ns_cursor(op, op->ns->db_nodes, &c))) return rv;
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        mdb_cursor_close(c);
        if (rc && rc != MDB_NOTFOUND) return ns_fail(op, rc, "node_register");
        req.id = rc == 0 && k.mv_size == 8 ? mkv_get_be64(k.mv_data) + 1 : 1;
        mkv_put_be64(key, req.id);
        rec.registered = op->now;
    }
    rec.id = req.id;
    rec.address = req.address;
    rec.zone = req.zone;
    if ((rv = ns_put_msg(op, op->ns->db_nodes, key, sizeof key, &mkv_desc_node_rec, &rec)))
        return rv;
    MKV_INFO("meta", "chunk server registered id=%llu address=%.*s zone=%.*s",
             (unsigned long long)rec.id, (int)rec.address.len, (const char *)rec.address.p,
             (int)rec.zone.len, (const char *)rec.zone.p);
    rep.id = rec.id;
    return ns_reply(op, &mkv_desc_node_register_rep, &rep);
}
