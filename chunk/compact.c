/* minikv chunk store: compaction and the scrubber.
 *
 * Compaction rewrites a run of adjacent sealed segments into one new
 * segment that takes their place in the log order (its SEGHDR carries the
 * run's lsn range), keeping only records the index still refers to, plus
 * DELETE records while older segments exist that they may shadow. Records
 * are copied byte for byte, so the log read in order still replays to the
 * same index (docs/design-chunk.md explains why this beats copying to the
 * head). Steps, on a worker: write the output and its SEAL, fdatasync it
 * and the directory; then in one index transaction move every reference
 * that still points into the run and swap the segment rows; then (loop)
 * retire the inputs, which are unlinked once no read pins them. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minikv/err.h"
#include "minikv/log.h"

#include "store_int.h"

#define CP_MAX_IN 64
#define CP_MAX_RUNS 64
#define CP_BUF (4u << 20)
#define CP_TXN_RENEW 1024
#define CP_CORRUPT 1 /* run_work result: an input holds unreadable bytes */

struct reloc
{
    struct wal_hdr h;
    uint64_t in_id, off, noff;
    uint32_t rec_len;
};

struct compact
{
    struct mkv_store *s;
    uv_work_t work;
    int running;
    int wait_reap; /* the pass is over, waiting for its inputs to be unlinked */
    struct mkv_store_req *waiters, *pending;
    int again;
    uint64_t floor_id;
    int runs;
    int status;
    /* The run being compacted. */
    struct seg *in[CP_MAX_IN];
    int nin;
    int oldest;
    uint64_t lo, hi;
    int bad_in; /* index of an input found corrupt */
    struct seg *out;
    struct reloc *rel;
    size_t nrel, crel;
    uint8_t *buf;
};

static void next_run(struct compact *cp);

/* ------------------------------------------------------------------------
 * Selection (s->lock held)
 * ------------------------------------------------------------------------ */
static int select_run(struct compact *cp)
{
    struct mkv_store *s = cp->s;
    uint64_t pct = s->o.compact_percent, keep_sum = 0;
    int sparse = 0;
    cp->nin = 0;
    for (size_t i = 0; i + 1 < s->norder; i++) {
        struct seg *g = s->order[i];
        int ok = g != s->head && g->id != s->ckpt_seg && (g->flags & SEG_SEALED) &&
                 !(g->flags & SEG_NOCOMPACT) && g->id < cp->floor_id;
        int droppable = cp->nin ? cp->oldest : i == 0;
        uint64_t keep = g->live - (droppable ? MKV_MIN(g->tomb, g->live) : 0);
        int sp = keep * 100 < pct * g->size;
        int small = g->size <= s->o.segment_size / 2; /* worth merging with a neighbour */
        if (ok && !(sp || small)) ok = 0;
        if (ok && cp->nin && (keep_sum + keep > s->o.segment_size || cp->nin == CP_MAX_IN)) {
            if (sparse || cp->nin >= 2) return 1;
            cp->nin = 0;
            droppable = i == 0;
            keep = g->live - (droppable ? MKV_MIN(g->tomb, g->live) : 0);
            sp = keep * 100 < pct * g->size;
        }
        if (!ok) {
            if (cp->nin && (sparse || cp->nin >= 2)) return 1;
            cp->nin = 0;
            continue;
        }
        if (cp->nin == 0) {
            keep_sum = 0;
            sparse = 0;
            cp->oldest = i == 0;
            cp->lo = g->lo;
        }
        cp->in[cp->nin++] = g;
        keep_sum += keep;
        sparse |= sp;
        cp->hi = s->order[i + 1]->lo ? s->order[i + 1]->lo - 1 : g->hi;
    }
    return cp->nin && (sparse || cp->nin >= 2);
}

/* ------------------------------------------------------------------------
 * One run (worker)
 * ------------------------------------------------------------------------ */
static int flush_buf(int fd, const uint8_t *buf, size_t *len, uint64_t *at)
{
    int rv;
    if (!*len) return 0;
    rv = wal_pwrite_full(fd, buf, *len, *at);
    *at += *len;
    *len = 0;
    return rv;
}

static int copy_run(struct compact *cp, int fd, uint64_t *out_size)
{
    struct mkv_store *s = cp->s;
    MDB_txn *t = NULL;
    size_t blen = 0, ntx = 0;
    uint64_t bat = WAL_HDR, opos = WAL_HDR;
    int rv = ix_rd_begin(&s->ix, &t);
    if (rv) return rv;
    for (int i = 0; i < cp->nin && rv == 0; i++) {
        struct seg *g = cp->in[i];
        struct wal_scan sc;
        struct wal_rec r;
        rv = wal_scan_init(&sc, g->fd, 0, g->size);
        while (rv == 0) {
            uint32_t kv;
            int live;
            rv = wal_scan_next(&sc, &r);
            if (rv < 0) break;
            if (sc.skip_len || (rv == 0 && sc.torn)) {
                /* Bytes we cannot attribute: the index may still point
                 * there. Leave the segment alone. */
                cp->bad_in = i;
                rv = CP_CORRUPT;
                break;
            }
            if (rv == 0) break;
            rv = 0;
            if (r.h.type == WAL_SEGHDR || r.h.type == WAL_SEAL) continue;
            if (__atomic_load_n(&s->closing, __ATOMIC_RELAXED)) {
                rv = -ECANCELED;
                break;
            }
            if (++ntx % CP_TXN_RENEW == 0) { /* no long-lived read transactions */
                mdb_txn_reset(t);
                if ((rv = ix_err(mdb_txn_renew(t)))) break;
            }
            if (r.h.type == WAL_DELETE) {
                live = !cp->oldest;
            } else {
                live = ix_locate(&s->ix, t, &r.h, g->id, r.off, &kv);
                if (live < 0) {
                    rv = live;
                    break;
                }
            }
            if (!live) continue;
            if (cp->nrel == cp->crel) {
                size_t cap = cp->crel ? cp->crel * 2 : 1024;
                struct reloc *n = realloc(cp->rel, cap * sizeof *n);
                if (!n) {
                    rv = -ENOMEM;
                    break;
                }
                cp->rel = n;
                cp->crel = cap;
            }
            cp->rel[cp->nrel].h = r.h;
            cp->rel[cp->nrel].in_id = g->id;
            cp->rel[cp->nrel].off = r.off;
            cp->rel[cp->nrel].noff = opos;
            cp->rel[cp->nrel].rec_len = r.rec_len;
            cp->nrel++;
            if (blen + r.rec_len > CP_BUF && (rv = flush_buf(fd, cp->buf, &blen, &bat))) break;
            memcpy(cp->buf + blen, r.raw, WAL_HDR + r.h.stored_len);
            memset(cp->buf + blen + WAL_HDR + r.h.stored_len, 0, r.rec_len - WAL_HDR - r.h.stored_len);
            blen += r.rec_len;
            opos += r.rec_len;
        }
        wal_scan_free(&sc);
    }
    ix_rd_end(t);
    if (rv) return rv;
    if (cp->nrel) {
        struct wal_hdr h = {0};
        h.type = WAL_SEAL;
        h.lsn = cp->hi;
        h.chunk = cp->out->id;
        h.aux = cp->nrel;
        if (blen + WAL_HDR > CP_BUF && (rv = flush_buf(fd, cp->buf, &blen, &bat))) return rv;
        wal_hdr_encode(&h, cp->buf + blen);
        blen += WAL_HDR;
        opos += WAL_HDR;
    }
    rv = flush_buf(fd, cp->buf, &blen, &bat);
    *out_size = opos;
    return rv;
}

static void swap_segments(struct mkv_store *s, void *arg)
{
    struct compact *cp = arg;
    for (int i = 0; i < cp->nin; i++) {
        seg_unorder(s, cp->in[i]);
        cp->in[i]->retired = 1; /* no index row for it any more; unlinked when unpinned */
    }
}

static void run_work(uv_work_t *w)
{
    struct compact *cp = MKV_CONTAINER_OF(w, struct compact, work);
    struct mkv_store *s = cp->s;
    struct ix_wtx tx;
    struct ix_segrow row;
    char path[4096];
    uint64_t id, size = WAL_HDR, live = 0, tomb = 0;
    int fd, rv;

    cp->nrel = 0;
    cp->bad_in = -1;
    pthread_mutex_lock(&s->lock);
    id = s->next_seg_id++;
    pthread_mutex_unlock(&s->lock);
    fd = seg_create(s, id, cp->lo, cp->hi, WAL_F_COMPACTED);
    if (fd < 0) {
        cp->status = fd;
        return;
    }
    seg_path(s, id, path, sizeof path);
    cp->out = seg_new(id, fd);
    if (!cp->out) {
        rv = -ENOMEM;
        goto err_file;
    }
    rv = copy_run(cp, fd, &size);
    if (rv) goto err_file;
    if (cp->nrel) {
        uint64_t t0 = mkv_mono_ns();
        if (!s->o.no_fsync && fdatasync(fd) != 0) {
            rv = -errno;
            goto err_file;
        }
        store_fsync_observe(s, mkv_mono_ns() - t0);
        if ((rv = store_fsync_dir(s))) goto err_file;
    } else {
        /* Nothing lives here any more: the inputs just go. */
        close(fd);
        unlink(path);
        fd = -1;
        free(cp->out);
        cp->out = NULL;
    }
    rv = ix_wtx_begin(&s->ix, &tx);
    if (rv) goto err_file;
    for (size_t i = 0; i < cp->nrel && rv == 0; i++) {
        struct reloc *r = &cp->rel[i];
        if (r->h.type == WAL_DELETE) {
            live += r->rec_len;
            tomb += r->rec_len;
            continue;
        }
        rv = ix_relocate(&tx, &r->h, r->in_id, r->off, id, r->noff);
        if (rv == 1) live += r->rec_len;
        if (rv > 0) rv = 0;
    }
    for (int i = 0; i < cp->nin && rv == 0; i++) rv = ix_del_seg(&tx, cp->in[i]->id);
    if (rv == 0 && cp->out) {
        row.lo = cp->lo;
        row.hi = cp->hi;
        row.size = size;
        row.live = live;
        row.tomb = tomb;
        row.flags = SEG_COMPACTED | SEG_SEALED;
        rv = ix_put_seg(&tx, id, &row);
    }
    if (rv) {
        ix_wtx_abort(&tx);
        goto err_file;
    }
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < cp->nin; i++) cp->in[i]->row_dirty = 0;
    if (cp->out) {
        cp->out->lo = cp->lo;
        cp->out->hi = cp->hi;
        cp->out->size = size;
        cp->out->live = live;
        cp->out->tomb = tomb;
        cp->out->flags = SEG_COMPACTED | SEG_SEALED;
        rv = seg_insert(s, cp->out);
    }
    pthread_mutex_unlock(&s->lock);
    if (rv) {
        ix_wtx_abort(&tx);
        goto err_file;
    }
    rv = store_commit(s, &tx, NULL, swap_segments, cp);
    if (rv) {
        pthread_mutex_lock(&s->lock);
        if (cp->out) {
            seg_unorder(s, cp->out);
            seg_forget(s, cp->out);
        }
        pthread_mutex_unlock(&s->lock);
        goto err_file;
    }
    cp->status = 0;
    return;
err_file:
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(cp->out);
    cp->out = NULL;
    cp->status = rv;
}

static void end_pass(struct compact *cp)
{
    struct mkv_store *s = cp->s;
    struct mkv_store_req *r;
    int status = cp->status == -ECANCELED ? 0 : cp->status;
    /* Complete once the replaced files are gone, unless reads pin them. */
    store_maybe_reap(s);
    if (s->reaping) {
        cp->wait_reap = 1;
        return;
    }
    cp->wait_reap = 0;
    r = cp->waiters;
    cp->waiters = NULL;
    cp->running = 0;
    while (r) {
        struct mkv_store_req *next = r->next;
        r->next = NULL;
        r->cb(r, status);
        r = next;
    }
    if ((cp->pending || cp->again) && !s->closing) {
        cp->again = 0;
        compact_start(s, NULL);
    }
    store_maybe_close(s);
}

static void run_after(uv_work_t *w, int status)
{
    struct compact *cp = MKV_CONTAINER_OF(w, struct compact, work);
    struct mkv_store *s = cp->s;
    (void)status;
    if (cp->status == CP_CORRUPT) {
        struct seg *g = cp->in[cp->bad_in];
        MKV_ERROR(COMP, "segment holds unreadable bytes, not compacting it segment=%016" PRIx64,
                  g->id);
        pthread_mutex_lock(&s->lock);
        g->flags |= SEG_NOCOMPACT;
        g->row_dirty = 1;
        pthread_mutex_unlock(&s->lock);
        cp->status = 0;
    } else if (cp->status) {
        MKV_WARN(COMP, "compaction failed err=%d", cp->status);
        end_pass(cp);
        return;
    } else {
        uint64_t freed = 0;
        for (int i = 0; i < cp->nin; i++) {
            freed += cp->in[i]->size;
            store_retire(s, cp->in[i]);
        }
        MKV_INFO(COMP, "compacted segments=%d records=%zu bytes_in=%" PRIu64 " bytes_out=%" PRIu64,
                 cp->nin, cp->nrel, freed, cp->out ? cp->out->size : 0);
        cp->out = NULL;
        mkv_counter_add(&s->st_compactions, 1);
        store_maybe_reap(s);
    }
    next_run(cp);
}

static void next_run(struct compact *cp)
{
    struct mkv_store *s = cp->s;
    int found;
    if (s->closing || cp->runs++ >= CP_MAX_RUNS) {
        end_pass(cp);
        return;
    }
    pthread_mutex_lock(&s->lock);
    found = select_run(cp);
    pthread_mutex_unlock(&s->lock);
    if (!found) {
        end_pass(cp);
        return;
    }
    uv_queue_work(s->loop, &cp->work, run_work, run_after);
}

void compact_start(struct mkv_store *s, struct mkv_store_req *req)
{
    struct compact *cp = s->cp;
    if (req) {
        req->next = cp->pending;
        cp->pending = req;
    }
    if (cp->running) {
        cp->again = 1;
        return;
    }
    cp->running = 1;
    cp->waiters = cp->pending;
    cp->pending = NULL;
    cp->status = 0;
    cp->runs = 0;
    pthread_mutex_lock(&s->lock);
    cp->floor_id = s->next_seg_id;
    pthread_mutex_unlock(&s->lock);
    next_run(cp);
}

void compact_reaped(struct mkv_store *s)
{
    if (s->cp && s->cp->wait_reap) end_pass(s->cp);
}

int compact_idle(struct mkv_store *s)
{
    return !s->cp || !s->cp->running;
}

int compact_init(struct mkv_store *s)
{
    struct compact *cp = calloc(1, sizeof *cp);
    if (!cp) return -ENOMEM;
    cp->buf = malloc(CP_BUF + WAL_MAX_REC);
    if (!cp->buf) {
        free(cp);
        return -ENOMEM;
    }
    cp->s = s;
    s->cp = cp;
    return 0;
}

void compact_free(struct mkv_store *s)
{
    if (!s->cp) return;
    free(s->cp->rel);
    free(s->cp->buf);
    free(s->cp);
    s->cp = NULL;
}

/* ------------------------------------------------------------------------
 * Scrubber: steps of at most SCRUB_STEP blocks, one worker job each, so a
 * long scrub neither holds a pool thread nor pins segments for long.
 * ------------------------------------------------------------------------ */
#define SCRUB_BATCH 256
#define SCRUB_STEP 1024

struct scrub
{
    struct mkv_store *s;
    struct mkv_store_req *req;
    uv_work_t work;
    uint64_t *bad;
    uint64_t nbad;
    uint64_t epoch;
    int status;
    int finished;
    /* Resume after this key. */
    uint64_t c;
    uint32_t v, b;
    int after;
    uint64_t kc[SCRUB_BATCH];
    uint32_t kv[SCRUB_BATCH], kb[SCRUB_BATCH];
    struct ix_blk e[SCRUB_BATCH];
};

static void scrub_work(uv_work_t *w)
{
    struct scrub *sc = MKV_CONTAINER_OF(w, struct scrub, work);
    struct mkv_store *s = sc->s;
    uint8_t *rec = xf_pool_get(&s->pool), *plain = xf_pool_get(&s->pool);
    int n, done = 0;

    if (!rec || !plain) {
        sc->status = -ENOMEM;
        sc->finished = 1;
        goto out;
    }
    while (done < SCRUB_STEP && !__atomic_load_n(&s->closing, __ATOMIC_RELAXED)) {
        MDB_txn *t;
        sc->status = ix_rd_begin(&s->ix, &t);
        if (sc->status) break;
        n = ix_blk_batch(&s->ix, t, sc->c, sc->v, sc->b, sc->after, sc->kc, sc->kv, sc->kb, sc->e,
                         SCRUB_BATCH);
        ix_rd_end(t);
        if (n <= 0) {
            sc->status = n < 0 ? n : 0;
            sc->finished = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct ix_blk *e = &sc->e[i];
            struct seg *g;
            int fd, rv;
            pthread_mutex_lock(&s->lock);
            g = seg_find(s, e->seg);
            fd = g ? g->fd : -1;
            pthread_mutex_unlock(&s->lock);
            rv = fd < 0 ? -EIO : wal_pread_full(fd, rec, WAL_HDR + e->stored_len, e->off);
            if (rv) {
                MKV_ERROR(COMP, "scrub cannot read block chunk=%016" PRIx64 " version=%u block=%u"
                          " segment=%016" PRIx64 " offset=%" PRIu64 " err=%d",
                          sc->kc[i], sc->kv[i], sc->kb[i], e->seg, e->off, rv);
                mkv_counter_add(&s->st_corrupt, 1);
                sc->nbad++;
                continue;
            }
            if (store_check_block(s, sc->kc[i], sc->kv[i], sc->kb[i], e, rec, rec + WAL_HDR, plain))
                sc->nbad++;
        }
        done += n;
        sc->c = sc->kc[n - 1];
        sc->v = sc->kv[n - 1];
        sc->b = sc->kb[n - 1];
        sc->after = 1;
    }
    if (sc->status) sc->finished = 1;
out:
    xf_pool_put(&s->pool, rec);
    xf_pool_put(&s->pool, plain);
}

static void scrub_after(uv_work_t *w, int status)
{
    struct scrub *sc = MKV_CONTAINER_OF(w, struct scrub, work);
    struct mkv_store *s = sc->s;
    struct mkv_store_req *req = sc->req;
    int st = sc->status;
    (void)status;
    store_unpin(s, sc->epoch);
    if (!sc->finished && !s->closing) {
        sc->epoch = store_pin(s);
        uv_queue_work(s->loop, &sc->work, scrub_work, scrub_after);
        return;
    }
    *sc->bad = sc->nbad;
    if (sc->nbad) MKV_WARN(COMP, "scrub found bad blocks count=%" PRIu64, sc->nbad);
    s->scrubs--;
    free(sc);
    req->cb(req, st);
    store_maybe_close(s);
}

int scrub_start(struct mkv_store *s, struct mkv_store_req *req, uint64_t *bad)
{
    struct scrub *sc = calloc(1, sizeof *sc);
    if (!sc) return -ENOMEM;
    sc->s = s;
    sc->req = req;
    sc->bad = bad;
    sc->epoch = store_pin(s);
    s->scrubs++;
    uv_queue_work(s->loop, &sc->work, scrub_work, scrub_after);
    return 0;
}
