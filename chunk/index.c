/* minikv chunk store: the LMDB index (index.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "minikv/err.h"
#include "minikv/log.h"

#include "index.h"

#define IX_MAPSIZE (64ull << 30)
#define IX_MAX_HOPS 64

#define VER_VAL 64
#define BLK_VAL 48
#define SEG_VAL 48
#define CKPT_VAL 32

int ix_err(int rc)
{
    if (rc == 0) return 0;
    if (rc > 0) return -rc;
    switch (rc) {
    case MDB_NOTFOUND: return -ENOENT;
    case MDB_MAP_FULL: return -ENOSPC;
    case MDB_KEYEXIST: return -EEXIST;
    default: return -EIO;
    }
}

/* ------------------------------------------------------------------------
 * Keys and values
 * ------------------------------------------------------------------------ */
static void blk_key(uint8_t *k, uint64_t c, uint32_t v, uint32_t b)
{
    mkv_put_be64(k, c);
    mkv_put_be32(k + 8, v);
    mkv_put_be32(k + 12, b);
}

static void ver_key(uint8_t *k, uint64_t c, uint32_t v)
{
    mkv_put_be64(k, c);
    mkv_put_be32(k + 8, v);
}

static void ver_enc(uint8_t *p, const struct ix_ver *v)
{
    memset(p, 0, VER_VAL);
    p[0] = v->state;
    mkv_put_le32(p + 4, v->base);
    mkv_put_le32(p + 8, v->folded_into);
    mkv_put_le64(p + 16, (uint64_t)v->ctime);
    mkv_put_le64(p + 24, v->create_lsn);
    mkv_put_le64(p + 32, v->vseg);
    mkv_put_le64(p + 40, v->voff);
    mkv_put_le64(p + 48, v->cseg);
    mkv_put_le64(p + 56, v->coff);
}

static int ver_dec(const MDB_val *d, struct ix_ver *v)
{
    const uint8_t *p = d->mv_data;
    if (d->mv_size != VER_VAL) return -EIO;
    v->state = p[0];
    v->base = mkv_get_le32(p + 4);
    v->folded_into = mkv_get_le32(p + 8);
    v->ctime = (int64_t)mkv_get_le64(p + 16);
    v->create_lsn = mkv_get_le64(p + 24);
    v->vseg = mkv_get_le64(p + 32);
    v->voff = mkv_get_le64(p + 40);
    v->cseg = mkv_get_le64(p + 48);
    v->coff = mkv_get_le64(p + 56);
    if (v->state < IX_PREPARED || v->state > IX_FOLDED) return -EIO;
    return 0;
}

static void blk_enc(uint8_t *p, const struct ix_blk *b)
{
    memset(p, 0, BLK_VAL);
    mkv_put_le64(p, b->seg);
    mkv_put_le64(p + 8, b->off);
    mkv_put_le32(p + 16, b->rec_len);
    mkv_put_le32(p + 20, b->data_len);
    mkv_put_le32(p + 24, b->stored_len);
    mkv_put_le32(p + 28, b->rec_version);
    mkv_put_le64(p + 32, b->lsn);
    p[40] = b->flags;
}

static int blk_dec(const MDB_val *d, struct ix_blk *b)
{
    const uint8_t *p = d->mv_data;
    if (d->mv_size != BLK_VAL) return -EIO;
    b->seg = mkv_get_le64(p);
    b->off = mkv_get_le64(p + 8);
    b->rec_len = mkv_get_le32(p + 16);
    b->data_len = mkv_get_le32(p + 20);
    b->stored_len = mkv_get_le32(p + 24);
    b->rec_version = mkv_get_le32(p + 28);
    b->lsn = mkv_get_le64(p + 32);
    b->flags = p[40];
    if (b->stored_len > WAL_MAX_STORED || b->rec_len != wal_rec_len(b->stored_len) ||
        b->data_len == 0 || (b->flags == 0 && b->stored_len != b->data_len) ||
        b->data_len > MKV_BLOCK_SIZE)
        return -EIO;
    return 0;
}

/* ------------------------------------------------------------------------
 * Environment
 * ------------------------------------------------------------------------ */
int ix_open(struct ix *ix, const char *path, char *err, size_t errlen)
{
    MDB_txn *t;
    int rc, dead;
    memset(ix, 0, sizeof *ix);
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        return mkv_errf(err, errlen, -errno, "mkdir %s", path);
    rc = mdb_env_create(&ix->env);
    if (rc) return mkv_errf(err, errlen, ix_err(rc), "mdb_env_create");
    mdb_env_set_maxdbs(ix->env, 8);
    mdb_env_set_mapsize(ix->env, (size_t)IX_MAPSIZE);
    rc = mdb_env_open(ix->env, path, MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD, 0640);
    if (rc) {
        mkv_errf(err, errlen, ix_err(rc), "index %s: %s", path, mdb_strerror(rc));
        goto err_env;
    }
    mdb_reader_check(ix->env, &dead); /* readers of a killed process */
    rc = mdb_txn_begin(ix->env, NULL, 0, &t);
    if (rc) {
        mkv_errf(err, errlen, ix_err(rc), "index %s: %s", path, mdb_strerror(rc));
        goto err_env;
    }
    if ((rc = mdb_dbi_open(t, "blocks", MDB_CREATE, &ix->blocks)) ||
        (rc = mdb_dbi_open(t, "versions", MDB_CREATE, &ix->versions)) ||
        (rc = mdb_dbi_open(t, "segs", MDB_CREATE, &ix->segs)) ||
        (rc = mdb_dbi_open(t, "meta", MDB_CREATE, &ix->meta)) || (rc = mdb_txn_commit(t))) {
        if (rc && t) mdb_txn_abort(t);
        mkv_errf(err, errlen, ix_err(rc), "index %s: %s", path, mdb_strerror(rc));
        goto err_env;
    }
    ix->open = 1;
    return 0;
err_env:
    mdb_env_close(ix->env);
    ix->env = NULL;
    return ix_err(rc) ? ix_err(rc) : -EIO;
}

void ix_close(struct ix *ix)
{
    if (ix->env) mdb_env_close(ix->env);
    ix->env = NULL;
    ix->open = 0;
}

int ix_clear(struct ix *ix)
{
    MDB_txn *t;
    int rc = mdb_txn_begin(ix->env, NULL, 0, &t);
    if (rc) return ix_err(rc);
    if ((rc = mdb_drop(t, ix->blocks, 0)) || (rc = mdb_drop(t, ix->versions, 0)) ||
        (rc = mdb_drop(t, ix->segs, 0)) || (rc = mdb_drop(t, ix->meta, 0))) {
        mdb_txn_abort(t);
        return ix_err(rc);
    }
    return ix_err(mdb_txn_commit(t));
}

int ix_sync(struct ix *ix)
{
    return ix_err(mdb_env_sync(ix->env, 1));
}

uint64_t ix_last_txnid(struct ix *ix)
{
    MDB_envinfo info;
    if (mdb_env_info(ix->env, &info)) return 0;
    return info.me_last_txnid;
}

int64_t ix_count_versions(struct ix *ix)
{
    MDB_txn *t;
    MDB_stat st;
    int64_t n = 0;
    if (ix_rd_begin(ix, &t)) return 0;
    if (mdb_stat(t, ix->versions, &st) == 0) n = (int64_t)st.ms_entries;
    ix_rd_end(t);
    return n;
}

int ix_rd_begin(struct ix *ix, MDB_txn **t)
{
    return ix_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, t));
}

void ix_rd_end(MDB_txn *t)
{
    if (t) mdb_txn_abort(t);
}

/* ------------------------------------------------------------------------
 * Lookups
 * ------------------------------------------------------------------------ */
int ix_get_ver(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v, struct ix_ver *out)
{
    uint8_t k[12];
    MDB_val key = {sizeof k, k}, d;
    int rc;
    ver_key(k, c, v);
    rc = mdb_get(t, ix->versions, &key, &d);
    if (rc) return ix_err(rc);
    return ver_dec(&d, out);
}

int ix_get_blk(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v, uint32_t b, struct ix_blk *out)
{
    uint8_t k[16];
    MDB_val key = {sizeof k, k}, d;
    int rc;
    blk_key(k, c, v, b);
    rc = mdb_get(t, ix->blocks, &key, &d);
    if (rc) return ix_err(rc);
    return blk_dec(&d, out);
}

int ix_get_ckpt(struct ix *ix, MDB_txn *t, struct ix_ckpt *out)
{
    MDB_val key = {4, (void *)"ckpt"}, d;
    const uint8_t *p;
    int rc = mdb_get(t, ix->meta, &key, &d);
    if (rc) return ix_err(rc);
    if (d.mv_size != CKPT_VAL) return -EIO;
    p = d.mv_data;
    out->seg = mkv_get_le64(p);
    out->off = mkv_get_le64(p + 8);
    out->lsn = mkv_get_le64(p + 16);
    out->last_off = mkv_get_le64(p + 24);
    return 0;
}

int ix_get_u64(struct ix *ix, MDB_txn *t, const char *name, uint64_t *out)
{
    MDB_val key = {strlen(name), (void *)name}, d;
    int rc = mdb_get(t, ix->meta, &key, &d);
    if (rc) return ix_err(rc);
    if (d.mv_size != 8) return -EIO;
    *out = mkv_get_le64(d.mv_data);
    return 0;
}

uint64_t ix_ver_size(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v)
{
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {sizeof k, k}, d;
    struct ix_blk b;
    uint64_t size = 0;
    int rc;
    if (mdb_cursor_open(t, ix->blocks, &cur)) return 0;
    if (v == UINT32_MAX) blk_key(k, c + 1, 0, 0);
    else blk_key(k, c, v + 1, 0);
    rc = mdb_cursor_get(cur, &key, &d, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(cur, &key, &d, MDB_PREV) : mdb_cursor_get(cur, &key, &d, MDB_LAST);
    if (rc == 0 && key.mv_size == 16 && mkv_get_be64(key.mv_data) == c &&
        mkv_get_be32((uint8_t *)key.mv_data + 8) == v && blk_dec(&d, &b) == 0)
        size = (uint64_t)mkv_get_be32((uint8_t *)key.mv_data + 12) * MKV_BLOCK_SIZE + b.data_len;
    mdb_cursor_close(cur);
    return size;
}

int ix_chunk_any(struct ix *ix, MDB_txn *t, uint64_t c)
{
    MDB_cursor *cur;
    uint8_t k[12];
    MDB_val key = {sizeof k, k}, d;
    int rc, any = 0;
    ver_key(k, c, 0);
    rc = mdb_cursor_open(t, ix->versions, &cur);
    if (rc) return ix_err(rc);
    rc = mdb_cursor_get(cur, &key, &d, MDB_SET_RANGE);
    if (rc == 0) any = key.mv_size == 12 && mkv_get_be64(key.mv_data) == c;
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return ix_err(rc);
    return any;
}

int ix_each_ver(struct ix *ix, MDB_txn *t, ix_ver_fn fn, void *arg)
{
    MDB_cursor *cur;
    MDB_val key, d;
    struct ix_ver v;
    int rc, stop = 0;
    rc = mdb_cursor_open(t, ix->versions, &cur);
    if (rc) return ix_err(rc);
    for (rc = mdb_cursor_get(cur, &key, &d, MDB_FIRST); rc == 0 && !stop;
         rc = mdb_cursor_get(cur, &key, &d, MDB_NEXT)) {
        if (key.mv_size != 12 || ver_dec(&d, &v) != 0) continue;
        stop = fn(arg, mkv_get_be64(key.mv_data), mkv_get_be32((uint8_t *)key.mv_data + 8), &v);
    }
    mdb_cursor_close(cur);
    if (stop) return stop;
    return rc == MDB_NOTFOUND ? 0 : ix_err(rc);
}

int ix_blk_batch(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v, uint32_t b, int after,
                 uint64_t *kc, uint32_t *kv, uint32_t *kb, struct ix_blk *vals, int max)
{
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {sizeof k, k}, d;
    int rc, n = 0;
    blk_key(k, c, v, b);
    rc = mdb_cursor_open(t, ix->blocks, &cur);
    if (rc) return ix_err(rc);
    rc = mdb_cursor_get(cur, &key, &d, MDB_SET_RANGE);
    if (rc == 0 && after && key.mv_size == 16 && memcmp(key.mv_data, k, 16) == 0)
        rc = mdb_cursor_get(cur, &key, &d, MDB_NEXT);
    for (; rc == 0 && n < max; rc = mdb_cursor_get(cur, &key, &d, MDB_NEXT)) {
        const uint8_t *p = key.mv_data;
        if (key.mv_size != 16 || blk_dec(&d, &vals[n]) != 0) continue;
        kc[n] = mkv_get_be64(p);
        kv[n] = mkv_get_be32(p + 8);
        kb[n] = mkv_get_be32(p + 12);
        n++;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return ix_err(rc);
    return n;
}

int ix_each_seg(struct ix *ix, MDB_txn *t, ix_seg_fn fn, void *arg)
{
    MDB_cursor *cur;
    MDB_val key, d;
    int rc, stop = 0;
    rc = mdb_cursor_open(t, ix->segs, &cur);
    if (rc) return ix_err(rc);
    for (rc = mdb_cursor_get(cur, &key, &d, MDB_FIRST); rc == 0 && !stop;
         rc = mdb_cursor_get(cur, &key, &d, MDB_NEXT)) {
        const uint8_t *p = d.mv_data;
        struct ix_segrow r;
        if (key.mv_size != 8 || d.mv_size != SEG_VAL) {
            stop = -EIO;
            break;
        }
        r.lo = mkv_get_le64(p);
        r.hi = mkv_get_le64(p + 8);
        r.size = mkv_get_le64(p + 16);
        r.live = mkv_get_le64(p + 24);
        r.tomb = mkv_get_le64(p + 32);
        r.flags = mkv_get_le32(p + 40);
        stop = fn(arg, mkv_get_be64(key.mv_data), &r);
    }
    mdb_cursor_close(cur);
    if (stop) return stop;
    return rc == MDB_NOTFOUND ? 0 : ix_err(rc);
}

/* ------------------------------------------------------------------------
 * Write transactions
 * ------------------------------------------------------------------------ */
int ix_wtx_begin(struct ix *ix, struct ix_wtx *w)
{
    memset(w, 0, sizeof *w);
    w->ix = ix;
    return ix_err(mdb_txn_begin(ix->env, NULL, 0, &w->t));
}

static void wtx_free(struct ix_wtx *w)
{
    free(w->d);
    free(w->scratch);
    w->d = NULL;
    w->scratch = NULL;
    w->t = NULL;
}

void ix_wtx_abort(struct ix_wtx *w)
{
    if (w->t) mdb_txn_abort(w->t);
    wtx_free(w);
}

int ix_wtx_commit(struct ix_wtx *w)
{
    int rc = mdb_txn_commit(w->t);
    wtx_free(w);
    return ix_err(rc);
}

void ix_delta(struct ix_wtx *w, uint64_t seg, int64_t live, int64_t tomb)
{
    for (size_t i = 0; i < w->nd; i++) {
        if (w->d[i].seg == seg) {
            w->d[i].live += live;
            w->d[i].tomb += tomb;
            return;
        }
    }
    if (w->nd == w->capd) {
        size_t cap = w->capd ? w->capd * 2 : 8;
        struct ix_delta *n = realloc(w->d, cap * sizeof *n);
        if (!n) return; /* accounting only: a lost delta makes compaction less exact */
        w->d = n;
        w->capd = cap;
    }
    w->d[w->nd].seg = seg;
    w->d[w->nd].live = live;
    w->d[w->nd].tomb = tomb;
    w->nd++;
}

static int put_ver(struct ix_wtx *w, uint64_t c, uint32_t v, const struct ix_ver *vi)
{
    uint8_t k[12], val[VER_VAL];
    MDB_val key = {sizeof k, k}, d = {sizeof val, val};
    ver_key(k, c, v);
    ver_enc(val, vi);
    return ix_err(mdb_put(w->t, w->ix->versions, &key, &d, 0));
}

static int put_blk(struct ix_wtx *w, uint64_t c, uint32_t v, uint32_t b, const struct ix_blk *bi)
{
    uint8_t k[16], val[BLK_VAL];
    MDB_val key = {sizeof k, k}, d = {sizeof val, val};
    blk_key(k, c, v, b);
    blk_enc(val, bi);
    return ix_err(mdb_put(w->t, w->ix->blocks, &key, &d, 0));
}

int ix_put_ckpt(struct ix_wtx *w, const struct ix_ckpt *c)
{
    uint8_t val[CKPT_VAL];
    MDB_val key = {4, (void *)"ckpt"}, d = {sizeof val, val};
    mkv_put_le64(val, c->seg);
    mkv_put_le64(val + 8, c->off);
    mkv_put_le64(val + 16, c->lsn);
    mkv_put_le64(val + 24, c->last_off);
    return ix_err(mdb_put(w->t, w->ix->meta, &key, &d, 0));
}

int ix_put_u64(struct ix_wtx *w, const char *name, uint64_t v)
{
    uint8_t val[8];
    MDB_val key = {strlen(name), (void *)name}, d = {sizeof val, val};
    mkv_put_le64(val, v);
    return ix_err(mdb_put(w->t, w->ix->meta, &key, &d, 0));
}

int ix_put_seg(struct ix_wtx *w, uint64_t id, const struct ix_segrow *r)
{
    uint8_t k[8], val[SEG_VAL];
    MDB_val key = {sizeof k, k}, d = {sizeof val, val};
    mkv_put_be64(k, id);
    memset(val, 0, sizeof val);
    mkv_put_le64(val, r->lo);
    mkv_put_le64(val + 8, r->hi);
    mkv_put_le64(val + 16, r->size);
    mkv_put_le64(val + 24, r->live);
    mkv_put_le64(val + 32, r->tomb);
    mkv_put_le32(val + 40, r->flags);
    return ix_err(mdb_put(w->t, w->ix->segs, &key, &d, 0));
}

int ix_del_seg(struct ix_wtx *w, uint64_t id)
{
    uint8_t k[8];
    MDB_val key = {sizeof k, k};
    int rc;
    mkv_put_be64(k, id);
    rc = mdb_del(w->t, w->ix->segs, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : ix_err(rc);
}

/* Collects the blocks of (c, v) into w->scratch; returns the count. */
struct blk_item
{
    uint32_t b;
    struct ix_blk e;
};

static int collect_blocks(struct ix_wtx *w, uint64_t c, uint32_t v, struct blk_item **out)
{
    MDB_cursor *cur;
    uint8_t k[16];
    MDB_val key = {sizeof k, k}, d;
    int rc, n = 0;
    blk_key(k, c, v, 0);
    rc = mdb_cursor_open(w->t, w->ix->blocks, &cur);
    if (rc) return ix_err(rc);
    for (rc = mdb_cursor_get(cur, &key, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &d, MDB_NEXT)) {
        const uint8_t *p = key.mv_data;
        struct blk_item *items = w->scratch;
        if (key.mv_size != 16 || mkv_get_be64(p) != c || mkv_get_be32(p + 8) != v) break;
        if ((size_t)(n + 1) * sizeof *items > w->scratch_cap) {
            size_t cap = w->scratch_cap ? w->scratch_cap * 2 : 64 * sizeof *items;
            void *nb = realloc(w->scratch, cap);
            if (!nb) {
                mdb_cursor_close(cur);
                return -ENOMEM;
            }
            w->scratch = nb;
            w->scratch_cap = cap;
            items = nb;
        }
        if (blk_dec(&d, &items[n].e) != 0) continue;
        items[n].b = mkv_get_be32(p + 12);
        n++;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) return ix_err(rc);
    *out = w->scratch;
    return n;
}

static int del_blk(struct ix_wtx *w, uint64_t c, uint32_t v, uint32_t b)
{
    uint8_t k[16];
    MDB_val key = {sizeof k, k};
    int rc;
    blk_key(k, c, v, b);
    rc = mdb_del(w->t, w->ix->blocks, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : ix_err(rc);
}

static int del_version(struct ix_wtx *w, uint64_t c, uint32_t v)
{
    struct ix_ver vi;
    struct blk_item *items;
    uint8_t k[12];
    MDB_val key = {sizeof k, k};
    int n, rv;
    rv = ix_get_ver(w->ix, w->t, c, v, &vi);
    if (rv == -ENOENT) return 0;
    if (rv) return rv;
    n = collect_blocks(w, c, v, &items);
    if (n < 0) return n;
    for (int i = 0; i < n; i++) {
        ix_delta(w, items[i].e.seg, -(int64_t)items[i].e.rec_len, 0);
        if ((rv = del_blk(w, c, v, items[i].b))) return rv;
    }
    ix_delta(w, vi.vseg, -(int64_t)WAL_HDR, 0);
    if (vi.cseg) ix_delta(w, vi.cseg, -(int64_t)WAL_HDR, 0);
    ver_key(k, c, v);
    rv = mdb_del(w->t, w->ix->versions, &key, NULL);
    if (rv) return ix_err(rv);
    w->dversions--;
    return 0;
}

struct cver
{
    uint32_t v;
    uint8_t del;
    struct ix_ver vi;
};

/* Every version of chunk c, in order, in a malloc'ed array. */
static int chunk_versions(struct ix_wtx *w, uint64_t c, struct cver **out)
{
    MDB_cursor *cur;
    uint8_t k[12];
    MDB_val key = {sizeof k, k}, d;
    struct cver *a = NULL;
    size_t cap = 0;
    int rc, n = 0;
    ver_key(k, c, 0);
    rc = mdb_cursor_open(w->t, w->ix->versions, &cur);
    if (rc) return ix_err(rc);
    for (rc = mdb_cursor_get(cur, &key, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &d, MDB_NEXT)) {
        if (key.mv_size != 12 || mkv_get_be64(key.mv_data) != c) break;
        if ((size_t)n == cap) {
            struct cver *na = realloc(a, (cap ? cap * 2 : 16) * sizeof *a);
            if (!na) {
                rc = ENOMEM;
                break;
            }
            a = na;
            cap = cap ? cap * 2 : 16;
        }
        if (ver_dec(&d, &a[n].vi) != 0) continue;
        a[n].v = mkv_get_be32((uint8_t *)key.mv_data + 8);
        a[n].del = 0;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) {
        free(a);
        return ix_err(rc);
    }
    *out = a;
    return n;
}

static int apply_delete(struct ix_wtx *w, uint64_t c, uint32_t v)
{
    struct cver *a = NULL;
    int n, rv = 0, changed;

    n = chunk_versions(w, c, &a);
    if (n <= 0) {
        free(a);
        return n;
    }
    for (int i = 0; i < n; i++) a[i].del = v == 0 || a[i].v == v;
    /* Versions folded into a deleted one are its tombstones: delete too. */
    do {
        changed = 0;
        for (int i = 0; i < n; i++) {
            if (a[i].del || a[i].vi.state != IX_FOLDED) continue;
            for (int j = 0; j < n; j++) {
                if (a[j].del && a[j].v == a[i].vi.folded_into) {
                    a[i].del = 1;
                    changed = 1;
                    break;
                }
            }
        }
    } while (changed);
    for (int i = 0; i < n && rv == 0; i++)
        if (a[i].del) rv = del_version(w, c, a[i].v);
    free(a);
    return rv;
}

/* Commit of (c, v): the base chain's blocks that v does not have become
 * v's (the entry moves, the record stays where it is); the rest are
 * dropped; each base in the chain becomes a FOLDED tombstone. */
static int fold(struct ix_wtx *w, uint64_t c, uint32_t v, uint32_t cur)
{
    struct ix_ver bv;
    struct ix_blk tmp;
    struct blk_item *items;
    int n, rv, hops = 0, was_committed;

    while (cur != 0 && cur != v && hops++ < IX_MAX_HOPS) {
        rv = ix_get_ver(w->ix, w->t, c, cur, &bv);
        if (rv == -ENOENT) return 0;
        if (rv) return rv;
        if (bv.state == IX_FOLDED) return 0;
        n = collect_blocks(w, c, cur, &items);
        if (n < 0) return n;
        for (int i = 0; i < n; i++) {
            rv = ix_get_blk(w->ix, w->t, c, v, items[i].b, &tmp);
            if (rv == 0) {
                ix_delta(w, items[i].e.seg, -(int64_t)items[i].e.rec_len, 0);
            } else if (rv == -ENOENT) {
                if ((rv = put_blk(w, c, v, items[i].b, &items[i].e))) return rv;
            } else {
                return rv;
            }
            if ((rv = del_blk(w, c, cur, items[i].b))) return rv;
        }
        was_committed = bv.state == IX_COMMITTED;
        bv.state = IX_FOLDED;
        bv.folded_into = v;
        if ((rv = put_ver(w, c, cur, &bv))) return rv;
        if (was_committed) return 0;
        cur = bv.base;
    }
    return 0;
}

int ix_apply(struct ix_wtx *w, const struct wal_hdr *h, uint64_t seg, uint64_t off, uint32_t rec_len)
{
    struct ix_ver vi;
    struct ix_blk bi, old;
    int rv;

    switch (h->type) {
    case WAL_VERSION:
        rv = ix_get_ver(w->ix, w->t, h->chunk, h->version, &vi);
        if (rv == 0) {
            w->ignored++;
            return 0;
        }
        if (rv != -ENOENT) return rv;
        memset(&vi, 0, sizeof vi);
        vi.state = IX_PREPARED;
        vi.base = h->arg;
        vi.ctime = (int64_t)h->aux;
        vi.create_lsn = h->lsn;
        vi.vseg = seg;
        vi.voff = off;
        if ((rv = put_ver(w, h->chunk, h->version, &vi))) return rv;
        ix_delta(w, seg, rec_len, 0);
        w->dversions++;
        return 0;
    case WAL_BLOCK:
        rv = ix_get_ver(w->ix, w->t, h->chunk, h->version, &vi);
        if (rv == -ENOENT || (rv == 0 && vi.state != IX_PREPARED)) {
            w->ignored++;
            return 0;
        }
        if (rv) return rv;
        rv = ix_get_blk(w->ix, w->t, h->chunk, h->version, h->arg, &old);
        if (rv == 0) ix_delta(w, old.seg, -(int64_t)old.rec_len, 0);
        else if (rv != -ENOENT) return rv;
        bi.seg = seg;
        bi.off = off;
        bi.rec_len = rec_len;
        bi.data_len = h->data_len;
        bi.stored_len = h->stored_len;
        bi.lsn = h->lsn;
        bi.rec_version = h->version;
        bi.flags = h->flags;
        if ((rv = put_blk(w, h->chunk, h->version, h->arg, &bi))) return rv;
        ix_delta(w, seg, rec_len, 0);
        return 0;
    case WAL_COMMIT:
        rv = ix_get_ver(w->ix, w->t, h->chunk, h->version, &vi);
        if (rv == -ENOENT || (rv == 0 && vi.state != IX_PREPARED)) {
            w->ignored++;
            return 0;
        }
        if (rv) return rv;
        vi.state = IX_COMMITTED;
        vi.cseg = seg;
        vi.coff = off;
        if ((rv = put_ver(w, h->chunk, h->version, &vi))) return rv;
        ix_delta(w, seg, rec_len, 0);
        return fold(w, h->chunk, h->version, vi.base);
    case WAL_DELETE:
        ix_delta(w, seg, rec_len, rec_len);
        return apply_delete(w, h->chunk, h->version);
    default:
        return 0; /* SEGHDR, SEAL: not index content */
    }
}

/* Follows folds from version v to the version whose entries hold v's
 * blocks now. */
static int final_version(struct ix *ix, MDB_txn *t, uint64_t c, uint32_t v, uint32_t *out)
{
    struct ix_ver vi;
    int rv;
    for (int hops = 0; hops < IX_MAX_HOPS; hops++) {
        rv = ix_get_ver(ix, t, c, v, &vi);
        if (rv) return rv;
        if (vi.state != IX_FOLDED) {
            *out = v;
            return 0;
        }
        v = vi.folded_into;
    }
    return -ENOENT;
}

int ix_locate(struct ix *ix, MDB_txn *t, const struct wal_hdr *h, uint64_t seg, uint64_t off,
              uint32_t *key_version)
{
    struct ix_ver vi;
    struct ix_blk bi;
    uint32_t v;
    int rv;
    switch (h->type) {
    case WAL_BLOCK:
        rv = final_version(ix, t, h->chunk, h->version, &v);
        if (rv == -ENOENT) return 0;
        if (rv) return rv;
        rv = ix_get_blk(ix, t, h->chunk, v, h->arg, &bi);
        if (rv == -ENOENT) return 0;
        if (rv) return rv;
        *key_version = v;
        return bi.seg == seg && bi.off == off;
    case WAL_VERSION:
    case WAL_COMMIT:
        rv = ix_get_ver(ix, t, h->chunk, h->version, &vi);
        if (rv == -ENOENT) return 0;
        if (rv) return rv;
        *key_version = h->version;
        if (h->type == WAL_VERSION) return vi.vseg == seg && vi.voff == off;
        return vi.cseg == seg && vi.coff == off;
    default:
        return 0;
    }
}

int ix_relocate(struct ix_wtx *w, const struct wal_hdr *h, uint64_t seg, uint64_t off,
                uint64_t nseg, uint64_t noff)
{
    uint32_t v = 0;
    int rv = ix_locate(w->ix, w->t, h, seg, off, &v);
    if (rv <= 0) return rv;
    if (h->type == WAL_BLOCK) {
        struct ix_blk bi;
        if ((rv = ix_get_blk(w->ix, w->t, h->chunk, v, h->arg, &bi))) return rv;
        bi.seg = nseg;
        bi.off = noff;
        if ((rv = put_blk(w, h->chunk, v, h->arg, &bi))) return rv;
    } else {
        struct ix_ver vi;
        if ((rv = ix_get_ver(w->ix, w->t, h->chunk, v, &vi))) return rv;
        if (h->type == WAL_VERSION) {
            vi.vseg = nseg;
            vi.voff = noff;
        } else {
            vi.cseg = nseg;
            vi.coff = noff;
        }
        if ((rv = put_ver(w, h->chunk, v, &vi))) return rv;
    }
    return 1;
}
