/* minikv chunk store: recovery at open.
 *
 * 1. Find the segment files; read each SEGHDR; drop compacted files that
 *    lack their SEAL (a compaction that did not finish).
 * 2. Decide whether the index can be trusted (index.state: same boot, a
 *    clean close, or an index synced through its last transaction), and
 *    check it against the files and its checkpoint (the record the
 *    checkpoint names must be intact where it says).
 * 3. Trusted: replay the log from the checkpoint. Otherwise: empty the
 *    index, resolve compacted files against the segments they replaced,
 *    and replay every segment from the start.
 * Replay applies records with ix_apply, the function the flush path uses.
 * A torn tail of the last segment is cut off; unreadable bytes with valid
 * records after them are skipped with an error line. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/trust.h"

#include "store_int.h"

#define REPLAY_TXN_RECORDS 2048

struct rfile
{
    uint64_t id;
    int fd;
    uint64_t size;
    uint64_t lo, hi;
    uint32_t flags;
    int drop;
    int unsealed; /* a compaction output without its SEAL */
    struct ix_segrow row;
    int has_row;
};

struct rstate
{
    struct rfile *f;
    size_t n, cap;
};

/* ------------------------------------------------------------------------
 * index.state
 * ------------------------------------------------------------------------ */
int state_write(struct mkv_store *s, int clean, uint64_t txnid)
{
    return mkv_trust_write(s->state_path, s->boot_id, clean, txnid);
}

/* ------------------------------------------------------------------------
 * Segment files
 * ------------------------------------------------------------------------ */
static void remove_file(struct mkv_store *s, struct rfile *f, const char *why)
{
    char path[4096];
    seg_path(s, f->id, path, sizeof path);
    MKV_WARN(COMP, "removing segment file path=%s reason=%s", path, why);
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    unlink(path);
    f->drop = 1;
}

/* First lsn of a segment whose SEGHDR is unreadable, by scanning. */
static int first_lsn(int fd, uint64_t size, uint64_t *lsn)
{
    struct wal_scan sc;
    struct wal_rec r;
    int rv;
    if (wal_scan_init(&sc, fd, 0, size)) return -ENOMEM;
    rv = wal_scan_next(&sc, &r);
    if (rv == 1) *lsn = r.h.lsn;
    wal_scan_free(&sc);
    return rv;
}

static int load_files(struct mkv_store *s, struct rstate *rs, char *err, size_t errlen)
{
    DIR *d = opendir(s->wal_dir);
    struct dirent *de;
    if (!d) return mkv_errf(err, errlen, -errno, "opendir %s", s->wal_dir);
    while ((de = readdir(d)) != NULL) {
        struct rfile f;
        struct stat st;
        struct wal_hdr h;
        uint8_t hdr[WAL_HDR];
        char path[4096];
        if (wal_seg_parse(de->d_name, &f.id) != 0) continue;
        memset(&f, 0, sizeof f);
        wal_seg_parse(de->d_name, &f.id);
        seg_path(s, f.id, path, sizeof path);
        f.fd = open(path, O_RDWR | O_CLOEXEC);
        if (f.fd < 0 || fstat(f.fd, &st) != 0) {
            int e = errno;
            if (f.fd >= 0) close(f.fd);
            closedir(d);
            return mkv_errf(err, errlen, -e, "open %s", path);
        }
        f.size = (uint64_t)st.st_size;
        if (rs->n == rs->cap) {
            size_t cap = rs->cap ? rs->cap * 2 : 32;
            struct rfile *nf = realloc(rs->f, cap * sizeof *nf);
            if (!nf) {
                close(f.fd);
                closedir(d);
                return mkv_errf(err, errlen, -ENOMEM, "recovery");
            }
            rs->f = nf;
            rs->cap = cap;
        }
        if (f.size >= WAL_HDR && wal_pread_full(f.fd, hdr, WAL_HDR, 0) == 0 &&
            mkv_get_le32(hdr) == WAL_MAGIC && mkv_get_le16(hdr + 6) > WAL_FORMAT) {
            close(f.fd);
            closedir(d);
            return mkv_errf(err, errlen, -EPROTO, "%s was written by a newer minikv (format %u)",
                            path, mkv_get_le16(hdr + 6));
        }
        if (f.size >= WAL_HDR && wal_pread_full(f.fd, hdr, WAL_HDR, 0) == 0 &&
            wal_hdr_decode(hdr, &h) == 0 && h.type == WAL_SEGHDR && h.chunk == f.id) {
            f.lo = h.lsn;
            f.hi = h.aux;
            f.flags = h.flags & WAL_F_COMPACTED ? SEG_COMPACTED | SEG_SEALED : 0;
            rs->f[rs->n++] = f;
            if (f.flags & SEG_COMPACTED) {
                /* Complete only with its SEAL at the very end. */
                int ok = f.size >= 2 * WAL_HDR && f.size % WAL_ALIGN == 0 &&
                         wal_pread_full(f.fd, hdr, WAL_HDR, f.size - WAL_HDR) == 0 &&
                         wal_hdr_decode(hdr, &h) == 0 && h.type == WAL_SEAL && h.chunk == f.id;
                if (!ok) rs->f[rs->n - 1].unsealed = 1; /* decided once the index is read */
            }
            continue;
        }
        rs->f[rs->n++] = f;
        if (first_lsn(f.fd, f.size, &rs->f[rs->n - 1].lo) == 1) {
            MKV_ERROR(COMP, "segment header unreadable, keeping its records path=%s", path);
        } else if (f.size <= WAL_HDR) {
            remove_file(s, &rs->f[rs->n - 1], "torn-at-creation");
        } else {
            /* Nothing we can read: keep the bytes for inspection, out of the way. */
            char to[4200];
            snprintf(to, sizeof to, "%s.corrupt", path);
            MKV_ERROR(COMP, "segment holds no valid record, set aside path=%s", to);
            rename(path, to);
            close(f.fd);
            rs->f[rs->n - 1].fd = -1;
            rs->f[rs->n - 1].drop = 1;
        }
    }
    closedir(d);
    return 0;
}

/* A compaction output without its SEAL is normally an unfinished
 * compaction whose inputs still exist: remove it. If the index lists it,
 * or none of the files it replaced is left, it is the only copy of its
 * records (damaged at its end): keep it. */
static void settle_unsealed(struct mkv_store *s, struct rstate *rs, int trusted)
{
    for (size_t i = 0; i < rs->n; i++) {
        struct rfile *c = &rs->f[i];
        int inputs = 0;
        if (c->drop || !c->unsealed) continue;
        for (size_t j = 0; j < rs->n && !inputs; j++) {
            const struct rfile *o = &rs->f[j];
            inputs = j != i && !o->drop && !o->unsealed && o->lo >= c->lo && o->lo <= c->hi;
        }
        if ((trusted && c->has_row) || !inputs) {
            MKV_ERROR(COMP, "compacted segment lacks its seal, keeping it segment=%016" PRIx64,
                      c->id);
            c->flags |= SEG_NOCOMPACT;
            c->hi = 0; /* do not let it replace anything */
            continue;
        }
        remove_file(s, c, "unfinished-compaction");
    }
}

static int rfile_cmp(const void *a, const void *b)
{
    const struct rfile *x = a, *y = b;
    if (x->drop != y->drop) return x->drop - y->drop;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    /* A compacted file sorts before the segments it replaced. */
    if ((x->flags & SEG_COMPACTED) != (y->flags & SEG_COMPACTED))
        return (x->flags & SEG_COMPACTED) ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Without a trusted index: a complete compacted file replaces every file
 * whose records it covers (their removal may not have reached the disk). */
static void resolve_overlaps(struct mkv_store *s, struct rstate *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        struct rfile *c = &rs->f[i];
        if (c->drop || !(c->flags & SEG_COMPACTED) || c->hi < c->lo) continue;
        for (size_t j = 0; j < rs->n; j++) {
            struct rfile *o = &rs->f[j];
            if (j == i || o->drop || o->lo < c->lo || o->lo > c->hi) continue;
            if ((o->flags & SEG_COMPACTED) && o->hi > c->hi) continue;
            if ((o->flags & SEG_COMPACTED) && o->lo == c->lo && o->hi == c->hi && o->id > c->id)
                continue;
            remove_file(s, o, "replaced-by-compaction");
        }
    }
}

static int seg_row_cb(void *arg, uint64_t id, const struct ix_segrow *row)
{
    struct rstate *rs = arg;
    for (size_t i = 0; i < rs->n; i++) {
        if (rs->f[i].id == id && !rs->f[i].drop) {
            rs->f[i].row = *row;
            rs->f[i].has_row = 1;
            return 0;
        }
    }
    MKV_WARN(COMP, "index names a segment that is missing segment=%016" PRIx64, id);
    return 1;
}

/* Checks the trusted index against the files. 0: consistent. */
static int check_index(struct mkv_store *s, struct rstate *rs, struct ix_ckpt *ck, int *has_ck)
{
    MDB_txn *t;
    uint64_t maxlo = 0;
    int rv;
    rv = ix_rd_begin(&s->ix, &t);
    if (rv) return rv;
    rv = ix_each_seg(&s->ix, t, seg_row_cb, rs);
    if (rv == 0) {
        rv = ix_get_ckpt(&s->ix, t, ck);
        *has_ck = rv == 0;
        if (rv == -ENOENT) rv = 0;
    }
    ix_rd_end(t);
    if (rv) return rv;
    for (size_t i = 0; i < rs->n; i++)
        if (rs->f[i].has_row && rs->f[i].lo > maxlo) maxlo = rs->f[i].lo;
    for (size_t i = 0; i < rs->n; i++) {
        struct rfile *f = &rs->f[i];
        if (f->drop || f->has_row) continue;
        if (f->flags & SEG_COMPACTED) {
            remove_file(s, f, "orphan-compaction-output");
            continue;
        }
        if (f->lo < maxlo) {
            /* Replaced by a compaction whose inputs were not all unlinked? */
            int replaced = 0;
            for (size_t j = 0; j < rs->n && !replaced; j++) {
                const struct rfile *c = &rs->f[j];
                replaced = c->has_row && !c->drop && (c->flags & SEG_COMPACTED) &&
                           c->lo <= c->hi && f->lo >= c->lo && f->lo <= c->hi;
            }
            if (replaced) {
                remove_file(s, f, "replaced-by-compaction");
                continue;
            }
            MKV_WARN(COMP, "segment unknown to the index segment=%016" PRIx64, f->id);
            return 1;
        }
    }
    if (*has_ck) {
        struct rfile *f = NULL;
        uint8_t *buf;
        struct wal_hdr h;
        for (size_t i = 0; i < rs->n; i++)
            if (rs->f[i].id == ck->seg && !rs->f[i].drop) f = &rs->f[i];
        if (!f || ck->off > f->size || ck->last_off + WAL_HDR > ck->off) {
            MKV_WARN(COMP, "index checkpoint is past the end of the log segment=%016" PRIx64
                     " offset=%" PRIu64, ck->seg, ck->off);
            return 1;
        }
        buf = malloc(WAL_MAX_REC);
        if (!buf) return -ENOMEM;
        rv = wal_pread_full(f->fd, buf, WAL_HDR, ck->last_off);
        if (rv == 0 && (wal_hdr_decode(buf, &h) != 0 || h.lsn != ck->lsn ||
                        ck->last_off + wal_rec_len(h.stored_len) != ck->off))
            rv = 1;
        if (rv == 0) rv = wal_pread_full(f->fd, buf + WAL_HDR, h.stored_len, ck->last_off + WAL_HDR);
        if (rv == 0 && wal_payload_check(&h, buf + WAL_HDR) != 0) rv = 1;
        free(buf);
        if (rv) {
            MKV_WARN(COMP, "the record the index checkpoint names is damaged segment=%016" PRIx64
                     " offset=%" PRIu64, ck->seg, ck->last_off);
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Replay
 * ------------------------------------------------------------------------ */
struct replay
{
    struct ix_wtx w;
    int open;
    size_t n;
    struct ix_ckpt ck;
    uint64_t max_lsn;
};

static int replay_commit(struct mkv_store *s, struct replay *rp)
{
    int rv;
    if (!rp->open) return 0;
    rp->open = 0;
    rv = store_commit(s, &rp->w, rp->n ? &rp->ck : NULL, NULL, NULL);
    rp->n = 0;
    return rv;
}

/* Replays one segment from start. Does not cut anything: *torn_at gets
 * where unreadable bytes at its end begin (0: none), *had whether it holds
 * any record past its SEGHDR. */
static int replay_seg(struct mkv_store *s, struct replay *rp, struct seg *g, uint64_t start,
                      uint64_t *torn_at, int *had)
{
    struct wal_scan sc;
    struct wal_rec r;
    int rv;

    *torn_at = 0;
    *had = 0;
    rv = wal_scan_init(&sc, g->fd, start, g->size);
    if (rv) return rv;
    for (;;) {
        rv = wal_scan_next(&sc, &r);
        if (rv <= 0) break;
        if (sc.skip_len) {
            MKV_ERROR(COMP, "skipping unreadable log bytes segment=%016" PRIx64 " offset=%" PRIu64
                      " bytes=%" PRIu64, g->id, sc.skip_from, sc.skip_len);
            mkv_counter_add(&s->st_skipped, 1);
            g->flags |= SEG_NOCOMPACT;
            g->row_dirty = 1;
        }
        if (!r.payload_ok) {
            MKV_ERROR(COMP, "log record failed its payload checksum (reads of it will fail) "
                      "segment=%016" PRIx64 " offset=%" PRIu64 " chunk=%016" PRIx64
                      " version=%u block=%u", g->id, r.off, r.h.chunk, r.h.version, r.h.arg);
        }
        if (r.h.lsn > rp->max_lsn) rp->max_lsn = r.h.lsn;
        if (r.h.type == WAL_SEGHDR || r.h.type == WAL_SEAL) continue;
        *had = 1;
        if (!rp->open) {
            rv = ix_wtx_begin(&s->ix, &rp->w);
            if (rv) break;
            rp->open = 1;
        }
        rv = ix_apply(&rp->w, &r.h, g->id, r.off, r.rec_len);
        if (rv) break;
        mkv_counter_add(&s->st_replayed, 1);
        rp->ck.seg = g->id;
        rp->ck.off = r.off + r.rec_len;
        rp->ck.lsn = r.h.lsn;
        rp->ck.last_off = r.off;
        if (++rp->n >= REPLAY_TXN_RECORDS && (rv = replay_commit(s, rp))) break;
    }
    if (rv == 0 && sc.torn) *torn_at = sc.torn_at;
    if (rv == 0 && !sc.torn && sc.pos != g->size) *torn_at = UINT64_MAX; /* padding missing */
    if (rv == 0) g->end_pos = sc.pos;
    wal_scan_free(&sc);
    return rv < 0 ? rv : 0;
}

/* Unreadable bytes at the end of a segment after which the log holds no
 * record are the torn tail of the last flush: cut them. Elsewhere they are
 * damage: kept, logged, and the segment is left out of compaction. */
static int cut_tails(struct mkv_store *s, size_t from, const uint64_t *torn, const int *had)
{
    int later = 0, rv = 0;
    for (size_t i = s->norder; i-- > from;) {
        struct seg *g = s->order[i];
        uint64_t at = torn[i - from];
        if (at == UINT64_MAX) {
            /* Only the padding of the last record is missing. */
            if (!later && ftruncate(g->fd, (off_t)g->end_pos) != 0) rv = -errno;
            if (!later) g->size = g->end_pos;
        } else if (at && !later) {
            MKV_WARN(COMP, "cutting torn log tail segment=%016" PRIx64 " offset=%" PRIu64
                     " bytes=%" PRIu64, g->id, at, g->size - at);
            mkv_counter_add(&s->st_torn, 1);
            if (ftruncate(g->fd, (off_t)at) != 0 || fdatasync(g->fd) != 0) rv = -errno;
            g->size = at;
        } else if (at) {
            MKV_ERROR(COMP, "segment ends in unreadable bytes, records follow in later segments "
                      "segment=%016" PRIx64 " offset=%" PRIu64 " bytes=%" PRIu64,
                      g->id, at, g->size - at);
            mkv_counter_add(&s->st_skipped, 1);
            g->flags |= SEG_NOCOMPACT;
        }
        g->row_dirty = 1;
        later |= had[i - from];
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * Entry
 * ------------------------------------------------------------------------ */
static int open_index(struct mkv_store *s, char *err, size_t errlen)
{
    char path[4096];
    int rv = ix_open(&s->ix, s->ix_dir, err, errlen);
    if (rv == 0) return 0;
    MKV_ERROR(COMP, "index unreadable, rebuilding it from the log err=\"%s\"", err);
    snprintf(path, sizeof path, "%s/data.mdb", s->ix_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", s->ix_dir);
    unlink(path);
    if (errlen) err[0] = '\0';
    rv = ix_open(&s->ix, s->ix_dir, err, errlen);
    return rv ? rv : 1;
}

int recover(struct mkv_store *s, char *err, size_t errlen)
{
    struct rstate rs = {0};
    struct mkv_trust st;
    struct ix_ckpt ck = {0};
    struct replay rp;
    struct stat sb;
    char path[4096];
    int trusted, has_ck = 0, rv, have_index;
    uint64_t max_id = 0, meta_next = 0;
    size_t start_i = 0;
    uint64_t *torn = NULL;
    int *had = NULL;

    memset(&rp, 0, sizeof rp);
    snprintf(path, sizeof path, "%s/data.mdb", s->ix_dir);
    have_index = stat(path, &sb) == 0;
    rv = load_files(s, &rs, err, errlen);
    if (rv) goto out;
    mkv_trust_read(s->state_path, &st);
    rv = open_index(s, err, errlen);
    if (rv < 0) goto out;
    trusted = rv == 0 && have_index && mkv_trust_ok(&st, s->boot_id, ix_last_txnid(&s->ix));
    if (!trusted && have_index)
        MKV_WARN(COMP, "index may have lost writes (unclean stop of another boot), rebuilding it");
    if (trusted) {
        rv = check_index(s, &rs, &ck, &has_ck);
        if (rv < 0) {
            MKV_ERROR(COMP, "index unreadable, rebuilding it from the log err=%d", rv);
            trusted = 0;
        } else if (rv > 0) {
            trusted = 0;
        }
        if (!trusted)
            for (size_t i = 0; i < rs.n; i++) rs.f[i].has_row = 0;
        else
            settle_unsealed(s, &rs, 1);
    }
    if (trusted) {
        MDB_txn *t;
        if (ix_rd_begin(&s->ix, &t) == 0) {
            ix_get_u64(&s->ix, t, "next_seg", &meta_next);
            ix_rd_end(t);
        }
    } else {
        rv = ix_clear(&s->ix);
        if (rv) {
            mkv_errf(err, errlen, rv, "clearing the index");
            goto out;
        }
        has_ck = 0;
        settle_unsealed(s, &rs, 0);
        resolve_overlaps(s, &rs);
    }
    if (rs.n) qsort(rs.f, rs.n, sizeof *rs.f, rfile_cmp);
    while (rs.n && rs.f[rs.n - 1].drop) rs.n--;

    /* The in-memory segment table. */
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < rs.n; i++) {
        struct rfile *f = &rs.f[i];
        struct seg *g = seg_new(f->id, f->fd);
        if (g) {
            g->lo = f->lo;
            g->hi = f->hi;
            g->size = f->size;
            g->flags = f->flags;
        }
        if (!g || seg_insert(s, g)) {
            pthread_mutex_unlock(&s->lock);
            free(g);
            rv = mkv_errf(err, errlen, -ENOMEM, "recovery");
            goto out;
        }
        f->fd = -1; /* owned by g now */
        if (f->has_row) {
            g->live = f->row.live;
            g->tomb = f->row.tomb;
            g->flags |= f->row.flags & (SEG_NOCOMPACT | SEG_SEALED);
            if (f->row.hi) g->hi = f->row.hi;
        }
        if (i + 1 < rs.n) g->flags |= SEG_SEALED;
        g->row_dirty = 1;
        if (f->id > max_id) max_id = f->id;
        if (has_ck && f->id == ck.seg) start_i = i;
    }
    pthread_mutex_unlock(&s->lock);
    s->next_seg_id = MKV_MAX(max_id, meta_next) + 1;

    /* Replay. */
    torn = calloc(s->norder + 1, sizeof *torn);
    had = calloc(s->norder + 1, sizeof *had);
    if (!torn || !had) {
        rv = mkv_errf(err, errlen, -ENOMEM, "recovery");
        goto out;
    }
    for (size_t i = start_i; i < s->norder; i++) {
        struct seg *g = s->order[i];
        uint64_t from = (has_ck && i == start_i) ? ck.off : 0;
        rv = replay_seg(s, &rp, g, from, &torn[i - start_i], &had[i - start_i]);
        if (rv) {
            if (rp.open) ix_wtx_abort(&rp.w);
            mkv_errf(err, errlen, rv, "replaying segment %016" PRIx64, g->id);
            goto out;
        }
    }
    rv = cut_tails(s, start_i, torn, had);
    if (rv == 0) rv = replay_commit(s, &rp);
    if (rv) {
        if (rp.open) ix_wtx_abort(&rp.w);
        mkv_errf(err, errlen, rv, "replay");
        goto out;
    }

    /* LSNs continue after everything seen. */
    s->next_lsn = MKV_MAX(rp.max_lsn, ck.lsn);
    for (size_t i = 0; i < s->norder; i++) {
        s->next_lsn = MKV_MAX(s->next_lsn, s->order[i]->hi);
        if (s->order[i]->lo) s->next_lsn = MKV_MAX(s->next_lsn, s->order[i]->lo - 1);
    }
    s->next_lsn++;
    s->durable_lsn = s->next_lsn - 1;

    /* The head: the last segment, unless it is a compaction output. */
    if (!s->norder || (s->order[s->norder - 1]->flags & SEG_COMPACTED)) {
        uint64_t id = s->next_seg_id++;
        struct seg *g;
        int fd = seg_create(s, id, s->next_lsn, 0, 0);
        if (fd < 0) {
            rv = mkv_errf(err, errlen, fd, "creating segment %016" PRIx64, id);
            goto out;
        }
        g = seg_new(id, fd);
        if (g) {
            g->lo = s->next_lsn;
            g->size = WAL_HDR;
            g->row_dirty = 1;
        }
        pthread_mutex_lock(&s->lock);
        if (!g || seg_insert(s, g)) {
            pthread_mutex_unlock(&s->lock);
            free(g);
            close(fd);
            rv = mkv_errf(err, errlen, -ENOMEM, "recovery");
            goto out;
        }
        pthread_mutex_unlock(&s->lock);
    }
    s->head = s->order[s->norder - 1];
    s->head->flags &= ~(uint32_t)SEG_SEALED;
    s->head->hi = 0;
    if (has_ck && !rp.ck.seg) s->ckpt_seg = ck.seg;

    /* Persist the segment rows, then mark the index in use. */
    {
        struct ix_wtx w;
        rv = ix_wtx_begin(&s->ix, &w);
        if (rv == 0) rv = store_commit(s, &w, NULL, NULL, NULL);
        if (rv) {
            mkv_errf(err, errlen, rv, "writing the index");
            goto out;
        }
    }
    s->versions = ix_count_versions(&s->ix);
    rv = ix_sync(&s->ix);
    if (rv == 0) rv = state_write(s, 0, ix_last_txnid(&s->ix));
    if (rv) mkv_errf(err, errlen, rv, "syncing the index");
out:
    free(torn);
    free(had);
    for (size_t i = 0; i < rs.n; i++) /* dropped files past rs.n are closed already */
        if (rs.f[i].fd >= 0) close(rs.f[i].fd);
    free(rs.f);
    return rv;
}
