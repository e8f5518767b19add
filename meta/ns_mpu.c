/* minikv meta: multipart uploads.
 *
 * uploads: upload id -> mpu_get_rep record (bucket, key, initiated, ...)
 * upidx:   bucket inode (8, BE) + key[0..430) + NUL + long flag + upload id
 *          -> upload_entry record; keys longer than 430 bytes share one
 *          index prefix per 430-byte head and are sorted in memory.
 * parts:   upload id + NUL + part number (4, BE) -> ns_part record */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "meta/ns_int.h"
#include "minikv/names.h"

static size_t upidx_key(uint8_t *k, uint64_t bino, struct mkv_slice key, struct mkv_slice id)
{
    size_t n = key.len > NS_UPIDX_PREFIX ? NS_UPIDX_PREFIX : key.len;
    mkv_put_be64(k, bino);
    memcpy(k + 8, key.p, n);
    k[8 + n] = 0;
    k[9 + n] = key.len > NS_UPIDX_PREFIX;
    memcpy(k + 10 + n, id.p, id.len);
    return 10 + n + id.len;
}

static size_t part_key(uint8_t *k, struct mkv_slice id, uint32_t part_no)
{
    memcpy(k, id.p, id.len);
    k[id.len] = 0;
    mkv_put_be32(k + id.len + 1, part_no);
    return id.len + 5;
}

static int upload_get(struct ns_op *op, struct mkv_slice id, struct mkv_mpu_get_rep *u)
{
    int rv;
    if (id.len == 0) return MKV_ENOUPLOAD;
    rv = ns_get_msg(op, op->ns->db_uploads, id.p, id.len, &mkv_desc_mpu_get_rep, u);
    return rv == -ENOENT ? MKV_ENOUPLOAD : rv;
}

int ns_mpu_create(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_mpu_create_req req;
    struct mkv_mpu_create_rep rep;
    struct mkv_mpu_get_rep u;
    struct mkv_upload_entry ue;
    struct mkv_ns_bucket b;
    uint8_t k[512];
    MDB_val v;
    int rv;
    DECODE(mkv_desc_mpu_create_req, p, len, &req);
    if ((rv = ns_bucket_get(op, req.bucket, &b))) return rv;
    if ((rv = mkv_check_key((const char *)req.key.p, req.key.len))) return rv;
    if (req.upload_id.len == 0) return -EINVAL;
    if ((rv = ns_attrs_check(req.attrs))) return rv;
    rv = ns_get(op, ns->db_uploads, req.upload_id.p, req.upload_id.len, &v);
    if (rv == 0) return -EEXIST;
    if (rv != -ENOENT) return rv;
    u.bucket = req.bucket;
    u.key = req.key;
    u.initiated = op->now;
    u.content_type = req.content_type;
    u.attrs = req.attrs;
    if ((rv = ns_put_msg(op, ns->db_uploads, req.upload_id.p, req.upload_id.len,
                         &mkv_desc_mpu_get_rep, &u)))
        return rv;
    ue.key = req.key;
    ue.upload_id = req.upload_id;
    ue.initiated = op->now;
    if ((rv = ns_put_msg(op, ns->db_upidx, k, upidx_key(k, b.ino, req.key, req.upload_id),
                         &mkv_desc_upload_entry, &ue)))
        return rv;
    ns->cnt.uploads++;
    rep.initiated = op->now;
    return ns_reply(op, &mkv_desc_mpu_create_rep, &rep);
}

int ns_mpu_part(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_mpu_part_req req;
    struct mkv_mpu_part_rep rep;
    struct mkv_mpu_get_rep u;
    struct mkv_ns_part part, old;
    struct mkv_buf old_ext = MKV_BUF_INIT;
    uint8_t k[80], owner[80];
    size_t klen, olen;
    int rv, exists;
    DECODE(mkv_desc_mpu_part_req, p, len, &req);
    if ((rv = upload_get(op, req.upload_id, &u))) return rv;
    if (req.part_no < 1 || req.part_no > MKV_PARTS_MAX) return -EINVAL;
    if ((rv = ns_extents_check(req.extents, req.size, 1024))) return rv;
    if ((rv = ns_attrs_check(req.attrs))) return rv;
    klen = part_key(k, req.upload_id, req.part_no);
    rv = ns_get_msg(op, ns->db_parts, k, klen, &ns_desc_ns_part, &old);
    if (rv && rv != -ENOENT) return rv;
    exists = rv == 0;
    if (exists && mkv_buf_append(&old_ext, old.extents.p, old.extents.len))
        return ns_fail(op, ENOMEM, "part");
    part.part_no = req.part_no;
    part.size = req.size;
    part.etag = req.etag;
    part.mtime = op->now;
    part.attrs = req.attrs;
    part.extents = req.extents;
    rv = ns_put_msg(op, ns->db_parts, k, klen, &ns_desc_ns_part, &part);
    olen = ns_owner_part(owner, req.upload_id, req.part_no);
    if (!rv && exists)
        rv = ns_refs_drop(op, mkv_slice_mem(old_ext.p, old_ext.len), owner, olen);
    if (!rv) rv = ns_refs_add(op, req.extents, owner, olen);
    mkv_buf_free(&old_ext);
    if (rv) return rv;
    rep.mtime = op->now;
    return ns_reply(op, &mkv_desc_mpu_part_rep, &rep);
}

/* Removes every part of an upload (their chunks go to garbage unless
 * referenced elsewhere, e.g. by the completed object) and the upload. */
static int drop_upload(struct ns_op *op, struct mkv_slice id, uint64_t bucket_ino,
                       struct mkv_slice okey)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_buf exts = MKV_BUF_INIT, nums = MKV_BUF_INIT;
    uint8_t k[512], owner[80];
    MDB_cursor *c;
    MDB_val key, v;
    size_t plen = id.len + 1, off = 0;
    int rc, rv;

    if (id.len > 64) return -EINVAL;
    memcpy(k, id.p, id.len);
    k[id.len] = 0;
    key.mv_data = k;
    key.mv_size = plen;
    if ((rv = ns_cursor(op, ns->db_parts, &c))) return rv;
    /* Collect first: the deletions below must not run under the cursor. */
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        struct mkv_ns_part part;
        uint8_t hdr[12];
        if (key.mv_size != plen + 4 || memcmp(key.mv_data, k, plen) != 0) break;
        if (mkv_msg_decode(&ns_desc_ns_part, v.mv_data, v.mv_size, &part)) {
            rc = MDB_CORRUPTED;
            break;
        }
        mkv_put_le32(hdr, part.part_no);
        mkv_put_le64(hdr + 4, part.extents.len);
        if (mkv_buf_append(&nums, hdr, sizeof hdr) ||
            mkv_buf_append(&exts, part.extents.p, part.extents.len)) {
            rc = ENOMEM;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        rv = ns_fail(op, rc, "parts");
        goto out;
    }
    for (size_t i = 0; i + 12 <= nums.len; i += 12) {
        uint32_t no = mkv_get_le32(nums.p + i);
        uint64_t elen = mkv_get_le64(nums.p + i + 4);
        struct mkv_slice ext = mkv_slice_mem(exts.p + off, elen);
        off += elen;
        if ((rv = ns_del(op, ns->db_parts, k, part_key(k, id, no)))) goto out;
        if ((rv = ns_refs_drop(op, ext, owner, ns_owner_part(owner, id, no)))) goto out;
    }
    if ((rv = ns_del(op, ns->db_uploads, id.p, id.len))) goto out;
    if ((rv = ns_del(op, ns->db_upidx, k, upidx_key(k, bucket_ino, okey, id)))) {
        if (rv == -ENOENT) rv = NS_EFATAL;
        goto out;
    }
    ns->cnt.uploads--;
out:
    mkv_buf_free(&exts);
    mkv_buf_free(&nums);
    return rv;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The binary MD5 of a part from its ETag (32 hex digits). */
static int etag_md5(struct mkv_slice etag, uint8_t out[16])
{
    etag = ns_etag_bare(etag);
    if (etag.len != 32) return -1;
    for (int i = 0; i < 16; i++) {
        int hi = hexval(etag.p[2 * i]), lo = hexval(etag.p[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int ns_mpu_complete(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_ns *ns = op->ns;
    struct mkv_mpu_complete_req req;
    struct mkv_mpu_complete_rep rep;
    struct mkv_mpu_get_rep u;
    struct mkv_ns_bucket b;
    struct mkv_part_ref pr;
    struct mkv_slice cur;
    struct mkv_buf ext = MKV_BUF_INIT, md5s = MKV_BUF_INIT, ctype = MKV_BUF_INIT,
                   attrs = MKV_BUF_INIT;
    struct ns_put_args a;
    uint8_t k[80], digest[EVP_MAX_MD_SIZE];
    char etag[MKV_ETAG_MAX + 1];
    unsigned n = 0, dlen = 0;
    uint32_t prev = 0, nexts = 0;
    uint64_t total = 0;
    int64_t mtime;
    int rv;

    DECODE(mkv_desc_mpu_complete_req, p, len, &req);
    if ((rv = ns_bucket_get(op, req.bucket, &b))) return rv;
    if ((rv = upload_get(op, req.upload_id, &u))) return rv;
    if (ns_slice_cmp(u.bucket, req.bucket) || ns_slice_cmp(u.key, req.key)) return MKV_ENOUPLOAD;
    /* Order first, as S3 does. */
    cur = req.parts;
    while ((rv = mkv_msg_next(&mkv_desc_part_ref, &cur, &pr)) == 1) {
        if (++n > MKV_PARTS_MAX) return -EINVAL;
        if (pr.part_no <= prev) return MKV_EPARTORDER;
        prev = pr.part_no;
    }
    if (rv < 0) return -EPROTO;
    if (n == 0) return -EINVAL;
    /* Every listed part must exist with the given ETag. */
    cur = req.parts;
    rv = 0;
    for (unsigned i = 0; i < n && !rv; i++) {
        struct mkv_ns_part part;
        uint8_t md5[16];
        mkv_msg_next(&mkv_desc_part_ref, &cur, &pr);
        rv = ns_get_msg(op, ns->db_parts, k, part_key(k, req.upload_id, pr.part_no),
                        &ns_desc_ns_part, &part);
        if (rv == -ENOENT) rv = MKV_EINVALIDPART;
        if (rv) break;
        if (ns_slice_cmp(ns_etag_bare(part.etag), ns_etag_bare(pr.etag)) ||
            etag_md5(part.etag, md5)) {
            rv = MKV_EINVALIDPART;
            break;
        }
        if (i + 1 < n && part.size < NS_MPU_MIN_PART) rv = MKV_ETOOSMALL;
        if (mkv_buf_append(&md5s, md5, 16)) rv = ns_fail(op, ENOMEM, "complete");
        /* The object's extents: the parts' extents, shifted. */
        struct mkv_slice ec = part.extents;
        struct mkv_extent e;
        int r;
        while (!rv && (r = mkv_msg_next(&mkv_desc_extent, &ec, &e)) == 1) {
            e.file_off += total;
            if (++nexts > MKV_EXTENTS_MAX) rv = -E2BIG;
            else if (mkv_msg_append(&ext, &mkv_desc_extent, &e))
                rv = ns_fail(op, ENOMEM, "complete");
        }
        total += part.size;
    }
    if (rv) goto out;
    if (!EVP_Digest(md5s.p, md5s.len, digest, &dlen, EVP_md5(), NULL) || dlen != 16) {
        rv = ns_fail(op, EIO, "md5");
        goto out;
    }
    /* Quoted like every other ETag minikv stores (and S3 sends). */
    etag[0] = '"';
    for (unsigned i = 0; i < 16; i++) snprintf(etag + 1 + 2 * i, 3, "%02x", digest[i]);
    snprintf(etag + 33, sizeof etag - 33, "-%u\"", n);
    /* u points into LMDB: keep copies across the writes below. */
    if (mkv_buf_append(&ctype, u.content_type.p, u.content_type.len) ||
        mkv_buf_append(&attrs, u.attrs.p, u.attrs.len)) {
        rv = ns_fail(op, ENOMEM, "complete");
        goto out;
    }
    memset(&a, 0, sizeof a);
    a.bucket = req.bucket;
    a.key = req.key;
    a.if_match = mkv_slice_mem("", 0);
    a.etag = mkv_slice_str(etag);
    a.content_type = mkv_slice_mem(ctype.p ? ctype.p : (const uint8_t *)"", ctype.len);
    a.attrs = mkv_slice_mem(attrs.p ? attrs.p : (const uint8_t *)"", attrs.len);
    a.extents = mkv_slice_mem(ext.p ? ext.p : (const uint8_t *)"", ext.len);
    a.flags = req.flags & MKV_PUT_IF_NONE_MATCH;
    a.size = total;
    if ((rv = ns_put_file(op, &a, &rep.ino, &mtime))) goto out;
    /* The object now references the listed parts' chunks; the rest become
     * garbage as the parts are dropped. */
    if ((rv = drop_upload(op, req.upload_id, b.ino, req.key))) goto out;
    rep.etag = mkv_slice_str(etag);
    rep.size = total;
    rv = ns_reply(op, &mkv_desc_mpu_complete_rep, &rep);
out:
    mkv_buf_free(&ext);
    mkv_buf_free(&md5s);
    mkv_buf_free(&ctype);
    mkv_buf_free(&attrs);
    return rv;
}

int ns_mpu_abort(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_mpu_abort_req req;
    struct mkv_mpu_abort_rep rep = {0};
    struct mkv_mpu_get_rep u;
    struct mkv_ns_bucket b;
    int rv;
    DECODE(mkv_desc_mpu_abort_req, p, len, &req);
    if ((rv = ns_bucket_get(op, req.bucket, &b))) return rv;
    if ((rv = upload_get(op, req.upload_id, &u))) return rv;
    if (ns_slice_cmp(u.bucket, req.bucket) || ns_slice_cmp(u.key, req.key)) return MKV_ENOUPLOAD;
    if ((rv = drop_upload(op, req.upload_id, b.ino, req.key))) return rv;
    return ns_reply(op, &mkv_desc_mpu_abort_rep, &rep);
}

int ns_mpu_get(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_mpu_get_req req;
    MDB_val v;
    int rv;
    DECODE(mkv_desc_mpu_get_req, p, len, &req);
    if (req.upload_id.len == 0) return MKV_ENOUPLOAD;
    rv = ns_get(op, op->ns->db_uploads, req.upload_id.p, req.upload_id.len, &v);
    if (rv == -ENOENT) return MKV_ENOUPLOAD;
    if (rv) return rv;
    /* The stored record is an encoded mpu_get_rep. */
    if (mkv_buf_append(op->reply, v.mv_data, v.mv_size)) return ns_fail(op, ENOMEM, "reply");
    return 0;
}

int ns_mpu_list_parts(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_mpu_list_parts_req req;
    struct mkv_mpu_list_parts_rep rep = {0};
    struct mkv_mpu_get_rep u;
    struct mkv_buf list = MKV_BUF_INIT;
    uint8_t k[80];
    MDB_cursor *c;
    MDB_val key, v;
    uint32_t max, count = 0;
    int rc = MDB_NOTFOUND, rv;
    DECODE(mkv_desc_mpu_list_parts_req, p, len, &req);
    if ((rv = upload_get(op, req.upload_id, &u))) return rv;
    max = req.max_parts ? MKV_MIN(req.max_parts, MKV_LIST_MAX) : MKV_LIST_MAX;
    if ((rv = ns_cursor(op, op->ns->db_parts, &c))) return rv;
    if (req.marker < MKV_PARTS_MAX) {
        key.mv_data = k;
        key.mv_size = part_key(k, req.upload_id, req.marker + 1);
        for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
            struct mkv_ns_part part;
            struct mkv_part_entry pe;
            if (key.mv_size != req.upload_id.len + 5 ||
                memcmp(key.mv_data, req.upload_id.p, req.upload_id.len) ||
                ((uint8_t *)key.mv_data)[req.upload_id.len] != 0)
                break;
            if (mkv_msg_decode(&ns_desc_ns_part, v.mv_data, v.mv_size, &part)) {
                rc = MDB_CORRUPTED;
                break;
            }
            if (count == max) {
                rep.truncated = 1;
                break;
            }
            pe.part_no = part.part_no;
            pe.size = part.size;
            pe.etag = part.etag;
            pe.mtime = part.mtime;
            pe.attrs = part.attrs;
            if (mkv_msg_append(&list, &mkv_desc_part_entry, &pe)) {
                rc = ENOMEM;
                break;
            }
            rep.next_marker = part.part_no;
            count++;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) {
        mkv_buf_free(&list);
        return ns_fail(op, rc, "list_parts");
    }
    if (!rep.truncated) rep.next_marker = 0;
    rep.parts = mkv_slice_mem(list.p ? list.p : (const uint8_t *)"", list.len);
    rv = ns_reply(op, &mkv_desc_mpu_list_parts_rep, &rep);
    mkv_buf_free(&list);
    return rv;
}

/* ---- listing uploads ---- */

struct up_lister
{
    struct mkv_slice prefix, key_marker, id_marker;
    uint32_t max, count;
    int done, truncated;
    struct mkv_buf out;
    uint8_t next_key[MKV_KEY_MAX];
    size_t next_key_len;
    uint8_t next_id[64];
    size_t next_id_len;
};

static int up_take(struct up_lister *l, const struct mkv_upload_entry *e)
{
    if (e->key.len < l->prefix.len || memcmp(e->key.p, l->prefix.p, l->prefix.len) != 0) {
        if (ns_slice_cmp(e->key, l->prefix) > 0) l->done = 1;
        return 0;
    }
    if (l->key_marker.len) {
        int c = ns_slice_cmp(e->key, l->key_marker);
        if (c < 0) return 0;
        if (c == 0 && (!l->id_marker.len || ns_slice_cmp(e->upload_id, l->id_marker) <= 0))
            return 0;
    }
    if (l->count == l->max) {
        l->truncated = 1;
        l->done = 1;
        return 0;
    }
    if (mkv_msg_append(&l->out, &mkv_desc_upload_entry, e)) return -ENOMEM;
    memcpy(l->next_key, e->key.p, e->key.len);
    l->next_key_len = e->key.len;
    memcpy(l->next_id, e->upload_id.p, e->upload_id.len);
    l->next_id_len = e->upload_id.len;
    l->count++;
    return 0;
}

static int up_item_cmp(const void *a, const void *b)
{
    const struct mkv_upload_entry *x = a, *y = b;
    int c = ns_slice_cmp(x->key, y->key);
    return c ? c : ns_slice_cmp(x->upload_id, y->upload_id);
}

int ns_mpu_list_uploads(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_mpu_list_uploads_req req;
    struct mkv_mpu_list_uploads_rep rep;
    struct mkv_ns_bucket b;
    struct up_lister l;
    struct mkv_upload_entry *group = NULL;
    size_t ngroup = 0, capgroup = 0;
    struct mkv_slice start;
    uint8_t k[512];
    MDB_cursor *c;
    MDB_val key, v;
    int rc, rv;

    DECODE(mkv_desc_mpu_list_uploads_req, p, len, &req);
    if ((rv = ns_bucket_get(op, req.bucket, &b))) return rv;
    memset(&l, 0, sizeof l);
    l.prefix = req.prefix;
    l.key_marker = req.key_marker;
    l.id_marker = req.upload_id_marker;
    l.max = req.max_uploads ? MKV_MIN(req.max_uploads, MKV_LIST_MAX) : MKV_LIST_MAX;
    start = ns_slice_cmp(req.key_marker, req.prefix) > 0 ? req.key_marker : req.prefix;
    mkv_put_be64(k, b.ino);
    memcpy(k + 8, start.p, MKV_MIN(start.len, NS_UPIDX_PREFIX));
    key.mv_data = k;
    key.mv_size = 8 + MKV_MIN(start.len, NS_UPIDX_PREFIX);
    if ((rv = ns_cursor(op, op->ns->db_upidx, &c))) return rv;
    rv = 0;
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0 && !l.done && !rv;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        const uint8_t *kp = key.mv_data;
        struct mkv_upload_entry e;
        if (key.mv_size < 10 || mkv_get_be64(kp) != b.ino) break;
        if (mkv_msg_decode(&mkv_desc_upload_entry, v.mv_data, v.mv_size, &e)) {
            rc = MDB_CORRUPTED;
            break;
        }
        int is_long = e.key.len > NS_UPIDX_PREFIX;
        if (ngroup && (!is_long || memcmp(group[0].key.p, e.key.p, NS_UPIDX_PREFIX) != 0)) {
            /* End of a group of long keys: emit it in true order. */
            qsort(group, ngroup, sizeof *group, up_item_cmp);
            for (size_t i = 0; i < ngroup && !l.done && !rv; i++) rv = up_take(&l, &group[i]);
            ngroup = 0;
            if (l.done || rv) break;
        }
        if (is_long) {
            if (ngroup == capgroup) {
                size_t nc = capgroup ? capgroup * 2 : 16;
                void *ng = realloc(group, nc * sizeof *group);
                if (!ng) {
                    rv = -ENOMEM;
                    break;
                }
                group = ng;
                capgroup = nc;
            }
            group[ngroup++] = e; /* slices stay valid: nothing is written */
            continue;
        }
        rv = up_take(&l, &e);
    }
    if (!rv && ngroup && !l.done) {
        qsort(group, ngroup, sizeof *group, up_item_cmp);
        for (size_t i = 0; i < ngroup && !l.done && !rv; i++) rv = up_take(&l, &group[i]);
    }
    mdb_cursor_close(c);
    free(group);
    if (rv) {
        mkv_buf_free(&l.out);
        return ns_fail(op, ENOMEM, "list_uploads");
    }
    if (rc && rc != MDB_NOTFOUND) {
        mkv_buf_free(&l.out);
        return ns_fail(op, rc, "list_uploads");
    }
    memset(&rep, 0, sizeof rep);
    rep.uploads = mkv_slice_mem(l.out.p ? l.out.p : (const uint8_t *)"", l.out.len);
    rep.truncated = (uint8_t)l.truncated;
    rep.next_key = mkv_slice_mem("", 0);
    rep.next_upload_id = mkv_slice_mem("", 0);
    if (l.truncated) {
        rep.next_key = mkv_slice_mem(l.next_key, l.next_key_len);
        rep.next_upload_id = mkv_slice_mem(l.next_id, l.next_id_len);
    }
    rv = ns_reply(op, &mkv_desc_mpu_list_uploads_rep, &rep);
    mkv_buf_free(&l.out);
    return rv;
}
