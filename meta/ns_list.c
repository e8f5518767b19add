/* minikv meta: S3 object listing over the directory tree.
 *
 * A directory entry's sort key is its name, plus '/' for a directory, so a
 * depth-first walk that visits each directory's entries in key order yields
 * full keys in byte order: every key below "a/" starts with "a/", and "a/"
 * sorts where those keys do ("a!" < "a/..." < "a0"). The walker below does
 * that walk with one LMDB cursor per level and can be re-positioned at the
 * first key >= any target (seek), which is how markers, prefixes and
 * skipping a whole common prefix are done without scanning.
 *
 * The result follows S3: keys in byte order; with a delimiter, keys that
 * contain it after the prefix are rolled up into one common prefix (up to
 * and including the delimiter); keys and common prefixes form one ordered
 * stream of which the items > start_after are returned, max_keys of them
 * (both kinds count); truncated tells that more items follow, and next is
 * the last item returned (a key or a common prefix), which used as the next
 * start_after continues the listing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta/ns_int.h"
#include "minikv/names.h"

#define WALK_DEPTH (MKV_KEY_MAX / 2 + 2)

enum { LV_PENDING = 1, LV_DESCEND = 2 };

struct level
{
    uint64_t dir;
    size_t plen; /* length of this directory's path in walker.key */
    MDB_cursor *cur;
    MDB_val k, v; /* the current entry (LV_PENDING: not yet returned) */
    int state;
    int rc; /* result of the last cursor positioning */
};

struct walker
{
    struct ns_op *op;
    uint64_t root;
    size_t root_len;
    uint8_t key[MKV_KEY_MAX + 8];
    size_t klen;
    struct level lv[WALK_DEPTH];
    int depth;
};

/* The current item (valid after walk_next returned 1). */
struct item
{
    int is_dir;
    uint8_t dflags;
    uint64_t ino;
};

static void walk_reset(struct walker *w)
{
    for (int i = 0; i < w->depth; i++) mdb_cursor_close(w->lv[i].cur);
    w->depth = 0;
}

static int walk_push(struct walker *w, uint64_t dir, size_t plen)
{
    struct level *l;
    int rv;
    if (w->depth == WALK_DEPTH) return ns_fail(w->op, MDB_CORRUPTED, "walk depth");
    l = &w->lv[w->depth];
    memset(l, 0, sizeof *l);
    if ((rv = ns_cursor(w->op, w->op->ns->db_dentries, &l->cur))) return rv;
    l->dir = dir;
    l->plen = plen;
    w->depth++;
    return 0;
}

/* Positions level l at its first entry with sort key >= name[nlen]. */
static int level_range(struct walker *w, struct level *l, const uint8_t *name, size_t nlen)
{
    uint8_t k[8 + MKV_KEY_MAX + 8];
    mkv_put_be64(k, l->dir);
    if (nlen > MKV_NAME_MAX + 1) nlen = MKV_NAME_MAX + 1;
    memcpy(k + 8, name, nlen);
    l->k.mv_data = k;
    l->k.mv_size = 8 + nlen;
    l->rc = mdb_cursor_get(l->cur, &l->k, &l->v, MDB_SET_RANGE);
    if (l->rc && l->rc != MDB_NOTFOUND) return ns_fail(w->op, l->rc, "walk");
    l->state = LV_PENDING;
    return 0;
}

/* Re-positions the walk at the first key >= t[tlen]. The walk covers the
 * subtree of the root directory, whose path w->key[0..root_len) t must
 * start with (or t is before it). */
static int walk_seek(struct walker *w, const uint8_t *t, size_t tlen)
{
    int rv;
    walk_reset(w);
    w->klen = w->root_len;
    if (tlen < w->root_len || memcmp(t, w->key, w->root_len) != 0) {
        if (memcmp(t, w->key, MKV_MIN(tlen, w->root_len)) > 0) return 0; /* past the end */
        tlen = w->root_len;                                              /* before: start */
        t = w->key;
    }
    if ((rv = walk_push(w, w->root, w->root_len))) return rv;
    for (;;) {
        struct level *l = &w->lv[w->depth - 1];
        const uint8_t *s = t + l->plen, *slash;
        size_t slen = tlen - l->plen;
        slash = memchr(s, '/', slen);
        if (slash && (size_t)(slash - s) + 1 < slen && (size_t)(slash - s) <= MKV_NAME_MAX) {
            /* The target lies inside child directory s[0..slash]: enter it
             * (its own key "name/" is before the target, so skip it). */
            size_t nlen = (size_t)(slash - s) + 1;
            uint8_t k[8 + MKV_NAME_MAX + 1];
            MDB_val key = {8 + nlen, k}, v;
            int rc;
            mkv_put_be64(k, l->dir);
            memcpy(k + 8, s, nlen);
            rc = mdb_cursor_get(l->cur, &key, &v, MDB_SET_KEY);
            if (rc == 0 && v.mv_size >= 10) {
                l->k = key;
                l->v = v;
                l->state = 0; /* returned; the next step moves past it */
                memcpy(w->key + l->plen, s, nlen);
                if ((rv = walk_push(w, mkv_get_le64(v.mv_data), l->plen + nlen))) return rv;
                continue;
            }
            if (rc && rc != MDB_NOTFOUND) return ns_fail(w->op, rc, "walk");
        }
        return level_range(w, l, s, slen);
    }
}

/* Advances to the next entry in key order: a file, or a directory (which
 * is entered on the following call unless walk_skip is called). */
static int walk_next(struct walker *w, struct item *it)
{
    while (w->depth > 0) {
        struct level *l = &w->lv[w->depth - 1];
        const uint8_t *name;
        size_t nlen;
        if (l->state & LV_DESCEND) {
            l->state &= ~LV_DESCEND;
            int rv = walk_push(w, mkv_get_le64(l->v.mv_data), w->klen);
            if (rv) return rv;
            struct level *c = &w->lv[w->depth - 1];
            if ((rv = level_range(w, c, (const uint8_t *)"", 0))) return rv;
            continue;
        }
        if (l->state & LV_PENDING) {
            l->state = 0;
        } else {
            l->rc = mdb_cursor_get(l->cur, &l->k, &l->v, MDB_NEXT);
            if (l->rc && l->rc != MDB_NOTFOUND) return ns_fail(w->op, l->rc, "walk");
        }
        if (l->rc == MDB_NOTFOUND || l->k.mv_size < 8 ||
            mkv_get_be64(l->k.mv_data) != l->dir) {
            mdb_cursor_close(l->cur);
            w->depth--;
            continue;
        }
        if (l->v.mv_size < 10) return ns_fail(w->op, MDB_CORRUPTED, "dentry");
        /* Symbolic links and FIFOs made through a mount are no objects. */
        if (((const uint8_t *)l->v.mv_data)[8] != MKV_T_DIR &&
            ((const uint8_t *)l->v.mv_data)[8] != MKV_T_FILE)
            continue;
        name = (const uint8_t *)l->k.mv_data + 8;
        nlen = l->k.mv_size - 8;
        if (l->plen + nlen > MKV_KEY_MAX + 1) return ns_fail(w->op, MDB_CORRUPTED, "path");
        memcpy(w->key + l->plen, name, nlen);
        w->klen = l->plen + nlen;
        it->ino = mkv_get_le64(l->v.mv_data);
        it->is_dir = ((const uint8_t *)l->v.mv_data)[8] == MKV_T_DIR;
        it->dflags = ((const uint8_t *)l->v.mv_data)[9];
        if (it->is_dir) l->state = LV_DESCEND;
        return 1;
    }
    return 0;
}

static void walk_skip(struct walker *w)
{
    if (w->depth > 0) w->lv[w->depth - 1].state &= ~LV_DESCEND;
}

struct lister
{
    struct ns_op *op;
    struct mkv_slice prefix, delim, after;
    uint32_t max, count;
    int no_dirs;
    struct mkv_buf entries, prefixes;
    uint8_t last_cp[MKV_KEY_MAX + 16];
    size_t last_cp_len;
    int have_cp;
    uint8_t next[MKV_KEY_MAX + 16];
    size_t next_len;
    int truncated;
};

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return ns_slice_cmp(mkv_slice_mem(a, al), mkv_slice_mem(b, bl));
}

/* Position of the delimiter in k after the prefix, or -1. */
static long find_delim(const struct lister *ls, const uint8_t *k, size_t klen)
{
    size_t dl = ls->delim.len;
    if (!dl || klen < ls->prefix.len + dl) return -1;
    for (size_t i = ls->prefix.len; i + dl <= klen; i++)
        if (memcmp(k + i, ls->delim.p, dl) == 0) return (long)i;
    return -1;
}

/* 1: taken, 0: not (<= start_after or a repeat), 2: the page is full and
 * this item exists (truncated). */
static int take(struct lister *ls, const uint8_t *name, size_t nlen, int is_prefix,
                const struct item *it)
{
    int rv;
    if (bytes_cmp(name, nlen, ls->after.p, ls->after.len) <= 0) return 0;
    if (is_prefix) {
        if (ls->have_cp && bytes_cmp(name, nlen, ls->last_cp, ls->last_cp_len) == 0) return 0;
        memcpy(ls->last_cp, name, nlen);
        ls->last_cp_len = nlen;
        ls->have_cp = 1;
    }
    if (ls->count == ls->max) {
        ls->truncated = 1;
        return 2;
    }
    if (is_prefix) {
        struct mkv_key_entry ke = {mkv_slice_mem(name, nlen)};
        rv = mkv_msg_append(&ls->prefixes, &mkv_desc_key_entry, &ke);
    } else {
        struct mkv_obj_info oi;
        struct mkv_list_entry le;
        if ((rv = ns_ino_get(ls->op, it->ino, &oi))) return rv == -ENOENT ? NS_EFATAL : rv;
        le.key = mkv_slice_mem(name, nlen);
        le.type = oi.type;
        le.size = oi.size;
        le.mtime = oi.mtime;
        le.etag = oi.etag;
        rv = mkv_msg_append(&ls->entries, &mkv_desc_list_entry, &le);
    }
    if (rv) return ns_fail(ls->op, ENOMEM, "list");
    memcpy(ls->next, name, nlen);
    ls->next_len = nlen;
    ls->count++;
    return 1;
}

/* The smallest string after every string that starts with p[n]: p with
 * its last byte incremented (0xff bytes drop and carry). 0 if none. */
static size_t successor(uint8_t *p, size_t n)
{
    while (n > 0) {
        if (p[n - 1] != 0xff) {
            p[n - 1]++;
            return n;
        }
        n--;
    }
    return 0;
}

static int list_walk(struct lister *ls, struct walker *w)
{
    const uint8_t *P = ls->prefix.p;
    size_t plen = ls->prefix.len;
    struct item it;
    int rv;
    while ((rv = walk_next(w, &it)) == 1) {
        const uint8_t *k = w->key;
        size_t klen = w->klen;
        long d;
        if (klen < plen || memcmp(k, P, plen) != 0) {
            if (bytes_cmp(k, klen, P, plen) > 0) return 0; /* past the prefix */
            if (it.is_dir) walk_skip(w);
            continue;
        }
        d = find_delim(ls, k, klen);
        if (d >= 0) {
            /* k (a file, or a directory path "x/") rolls up into a common
             * prefix; a directory's subtree shares it, so it is not entered.
             */
            size_t cplen = (size_t)d + ls->delim.len;
            uint8_t t[MKV_KEY_MAX + 16];
            size_t tlen;
            if (it.is_dir) walk_skip(w);
            rv = take(ls, k, cplen, 1, &it);
            if (rv < 0 || rv == 2) return rv < 0 ? rv : 0;
            /* Jump past every key under the prefix when it ends inside the
             * current directory's path (those keys can be anywhere below). */
            if (w->depth > 0 && cplen <= w->lv[w->depth - 1].plen) {
                memcpy(t, k, cplen);
                tlen = successor(t, cplen);
                if (!tlen) return 0;
                if ((rv = walk_seek(w, t, tlen))) return rv;
            }
            continue;
        }
        if (it.is_dir) {
            if ((it.dflags & MKV_DF_IMPLICIT) || ls->no_dirs) continue;
        }
        rv = take(ls, k, klen, 0, &it);
        if (rv < 0 || rv == 2) return rv < 0 ? rv : 0;
    }
    return rv;
}

int ns_obj_list(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_obj_list_req req;
    struct mkv_obj_list_rep rep;
    struct mkv_ns_bucket b;
    struct ns_path path;
    struct walker *w = NULL;
    struct lister *ls = NULL;
    size_t dlen;
    uint64_t dir;
    int rv;

    if (mkv_msg_decode(&mkv_desc_obj_list_req, p, len, &req)) return -EPROTO;
    if ((rv = ns_bucket_get(op, req.bucket, &b))) return rv;
    memset(&rep, 0, sizeof rep);
    rep.next = mkv_slice_mem("", 0);
    w = calloc(1, sizeof *w);
    ls = calloc(1, sizeof *ls);
    if (!w || !ls) {
        rv = ns_fail(op, ENOMEM, "list");
        goto out;
    }
    w->op = op;
    ls->op = op;
    ls->prefix = req.prefix;
    ls->delim = req.delimiter;
    ls->after = req.start_after;
    ls->max = MKV_MIN(req.max_keys, MKV_LIST_MAX);
    ls->no_dirs = (req.flags & MKV_LIST_NO_DIRS) != 0;
    if (ls->max == 0) goto reply;
    /* If start_after is beyond every key with the prefix, nothing follows. */
    if (bytes_cmp(req.start_after.p, req.start_after.len, req.prefix.p, req.prefix.len) > 0 &&
        !(req.start_after.len >= req.prefix.len &&
          memcmp(req.start_after.p, req.prefix.p, req.prefix.len) == 0))
        goto reply;
    /* Every key with the prefix is below the prefix's directory part. */
    dlen = req.prefix.len;
    while (dlen > 0 && req.prefix.p[dlen - 1] != '/') dlen--;
    dir = b.ino;
    if (dlen > 0) {
        if (mkv_check_key((const char *)req.prefix.p, dlen)) goto reply; /* no such directory */
        if ((rv = ns_path_parse(&path, mkv_slice_mem(req.prefix.p, dlen)))) goto reply;
        rv = ns_walk(op, b.ino, &path, path.n, &dir);
        if (rv == -ENOENT) {
            rv = 0;
            goto reply;
        }
        if (rv) goto out;
        if (dlen == req.prefix.len) {
            /* The prefix names a directory: it is itself a key ("d/") when
             * explicit. */
            struct mkv_obj_info oi;
            struct item it = {1, 0, dir};
            if ((rv = ns_ino_get(op, dir, &oi))) {
                if (rv == -ENOENT) rv = NS_EFATAL;
                goto out;
            }
            if (!(oi.dflags & MKV_DF_IMPLICIT) && !ls->no_dirs) {
                rv = take(ls, req.prefix.p, dlen, 0, &it);
                if (rv < 0) goto out;
                if (rv == 2) goto reply;
            }
        }
    }
    memcpy(w->key, req.prefix.p, dlen);
    w->root = dir;
    w->root_len = dlen;
    if (req.start_after.len >= req.prefix.len &&
        bytes_cmp(req.start_after.p, req.start_after.len, req.prefix.p, req.prefix.len) > 0)
        rv = walk_seek(w, req.start_after.p, req.start_after.len);
    else
        rv = walk_seek(w, req.prefix.p, req.prefix.len);
    if (rv) goto out;
    if ((rv = list_walk(ls, w))) goto out;
reply:
    rv = 0;
    rep.entries = mkv_slice_mem(ls->entries.p, ls->entries.len);
    rep.prefixes = mkv_slice_mem(ls->prefixes.p, ls->prefixes.len);
    rep.truncated = (uint8_t)ls->truncated;
    if (ls->truncated) rep.next = mkv_slice_mem(ls->next, ls->next_len);
    rv = ns_reply(op, &mkv_desc_obj_list_rep, &rep);
out:
    if (w) walk_reset(w);
    if (ls) {
        mkv_buf_free(&ls->entries);
        mkv_buf_free(&ls->prefixes);
    }
    free(w);
    free(ls);
    return rv;
}
