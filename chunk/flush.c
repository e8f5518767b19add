/* minikv chunk store: the write path with group commit.
 *
 * Writes, commits and deletes queue up; one flush at a time takes a batch
 * of them through these states:
 *
 *   BUILD  (worker) validate each request against the index plus the
 *          batch's own earlier requests, encode records (CRC, compression,
 *          encryption), assign LSNs and offsets, roll segments
 *   WRITE  one writev per run of records in a segment (io_uring), or
 *   SYNC   one fdatasync per segment touched
 *   APPLY  (worker) one LMDB transaction: ix_apply for every record plus
 *          the checkpoint
 *   UNDO   (worker, only after a failure) truncate what was appended, so no
 *          half record stays in a segment
 *   DONE   (loop) every request's callback
 *
 * With the sync backend BUILD, WRITE, SYNC and APPLY run in one worker job.
 * Requests queued while a flush runs form the next batch: that is the group
 * commit, one fdatasync for all of them. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "minikv/err.h"
#include "minikv/log.h"

#include "store_int.h"

#define FLUSH_MAX_REQS 4096
#define MAX_CHAIN 64

enum fl_stage { FL_IDLE = 0, FL_BUILD, FL_WRITE, FL_SYNC, FL_APPLY, FL_UNDO };

struct frec
{
    struct wal_hdr h;
    uint8_t hdr[WAL_HDR];
    const uint8_t *payload;
    void *pbuf;
    struct seg *seg;
    uint64_t off;
    uint32_t rec_len;
};

struct fspan
{
    struct seg *seg;
    uint64_t start, end;
};

/* What the batch has already done to a version: state 0 = deleted;
 * v = 0 with state 0 = the whole chunk deleted. */
struct ovl
{
    uint64_t c;
    uint32_t v;
    uint32_t base;
    uint8_t state;
};

struct flush
{
    struct mkv_store *s;
    uv_work_t work;
    int stage;
    struct mkv_store_req *reqs, *reqs_tail;
    size_t nreqs;
    uint64_t bytes;
    struct frec *recs;
    size_t nrecs, crecs;
    struct iovec *iov;
    size_t ciov;
    struct io_op *ops;
    size_t cops;
    struct fspan *spans;
    size_t nspans, cspans;
    struct ovl *ovl;
    size_t novl, covl;
    struct io_batch wb, sb;
    int status;
};

static const uint8_t zeros[WAL_ALIGN];

static void flush_start(struct mkv_store *s);

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t n;
    void *np;
    if (need <= *cap) return 0;
    n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    np = realloc(*p, n * elem);
    if (!np) return -ENOMEM;
    *p = np;
    *cap = n;
    return 0;
}

/* ------------------------------------------------------------------------
 * BUILD
 * ------------------------------------------------------------------------ */
static int ovl_push(struct flush *fl, uint64_t c, uint32_t v, uint8_t state, uint32_t base)
{
    if (grow((void **)&fl->ovl, &fl->covl, fl->novl + 1, sizeof *fl->ovl)) return -ENOMEM;
    fl->ovl[fl->novl].c = c;
    fl->ovl[fl->novl].v = v;
    fl->ovl[fl->novl].state = state;
    fl->ovl[fl->novl].base = base;
    fl->novl++;
    return 0;
}

/* The state of (c, v) as of the end of the batch so far: 0 with *st and
 * *base, or -ENOENT. */
static int ver_state(struct flush *fl, MDB_txn *t, uint64_t c, uint32_t v, int *st, uint32_t *base)
{
    struct ix_ver vi;
    int rv;
    for (size_t i = fl->novl; i-- > 0;) {
        const struct ovl *o = &fl->ovl[i];
        if (o->c != c) continue;
        if (o->v == v) {
            if (o->state == 0) return -ENOENT;
            *st = o->state;
            *base = o->base;
            return 0;
        }
        if (o->v == 0 && o->state == 0) return -ENOENT;
    }
    rv = ix_get_ver(&fl->s->ix, t, c, v, &vi);
    if (rv) return rv;
    *st = vi.state;
    *base = vi.base;
    return 0;
}

static int chunk_exists(struct flush *fl, MDB_txn *t, uint64_t c)
{
    for (size_t i = fl->novl; i-- > 0;) {
        const struct ovl *o = &fl->ovl[i];
        if (o->c != c) continue;
        if (o->state != 0) return 1;
        if (o->v == 0) return 0;
    }
    return ix_chunk_any(&fl->s->ix, t, c);
}

static struct frec *add_rec(struct flush *fl, int type, uint64_t c, uint32_t v, uint32_t arg)
{
    struct frec *r;
    if (grow((void **)&fl->recs, &fl->crecs, fl->nrecs + 1, sizeof *fl->recs)) return NULL;
    r = &fl->recs[fl->nrecs++];
    memset(r, 0, sizeof *r);
    r->h.type = (uint8_t)type;
    r->h.lsn = fl->s->next_lsn++;
    r->h.chunk = c;
    r->h.version = v;
    r->h.arg = arg;
    return r;
}

static void drop_recs(struct flush *fl, size_t mark)
{
    while (fl->nrecs > mark) {
        struct frec *r = &fl->recs[--fl->nrecs];
        xf_pool_put(&fl->s->pool, r->pbuf);
    }
}

static void emit_write(struct flush *fl, MDB_txn *t, struct mkv_store_req *req, int enospc)
{
    struct mkv_store *s = fl->s;
    size_t mark = fl->nrecs, omark = fl->novl;
    const uint8_t *data = req->buf;
    uint32_t base, bbase, first = (uint32_t)(req->offset / MKV_BLOCK_SIZE);
    int st, bst, rv;
    size_t nb = (req->len + MKV_BLOCK_SIZE - 1) / MKV_BLOCK_SIZE;

    if (enospc) {
        req->status = -ENOSPC;
        return;
    }
    rv = ver_state(fl, t, req->chunk_id, req->version, &st, &base);
    if (rv == 0) {
        if (st == IX_COMMITTED) rv = -EEXIST;
        else if (st == IX_FOLDED) rv = MKV_ESTALE;
        else if (base != req->base_version) rv = -EINVAL;
    } else if (rv == -ENOENT) {
        struct frec *r;
        rv = 0;
        if (req->base_version) {
            rv = ver_state(fl, t, req->chunk_id, req->base_version, &bst, &bbase);
            if (rv == 0 && bst == IX_FOLDED) rv = MKV_ESTALE;
        }
        if (rv == 0) {
            r = add_rec(fl, WAL_VERSION, req->chunk_id, req->version, req->base_version);
            if (!r || ovl_push(fl, req->chunk_id, req->version, IX_PREPARED, req->base_version))
                rv = -ENOMEM;
            else r->h.aux = (uint64_t)mkv_now_ns();
        }
    }
    for (size_t i = 0; rv == 0 && i < nb; i++) {
        size_t pos = i * MKV_BLOCK_SIZE;
        struct frec *r = add_rec(fl, WAL_BLOCK, req->chunk_id, req->version, first + (uint32_t)i);
        if (!r) {
            rv = -ENOMEM;
            break;
        }
        r->h.data_len = (uint32_t)MKV_MIN((size_t)MKV_BLOCK_SIZE, req->len - pos);
        if (xf_active(&s->xf)) {
            r->pbuf = xf_pool_get(&s->pool);
            if (!r->pbuf) {
                rv = -ENOMEM;
                break;
            }
        }
        rv = xf_encode(&s->xf, &r->h, data + pos, r->pbuf, &r->payload);
        if (rv == 0 && r->payload != r->pbuf) {
            xf_pool_put(&s->pool, r->pbuf);
            r->pbuf = NULL;
        }
    }
    if (rv) {
        drop_recs(fl, mark);
        fl->novl = omark;
        req->status = rv;
    }
}

static void emit_commit(struct flush *fl, MDB_txn *t, struct mkv_store_req *req)
{
    uint32_t base, cur, b2;
    int st, st2, rv;
    rv = ver_state(fl, t, req->chunk_id, req->version, &st, &base);
    if (rv) {
        req->status = rv;
        return;
    }
    if (st == IX_FOLDED) {
        req->status = MKV_ESTALE;
        return;
    }
    if (st == IX_COMMITTED) return; /* committing twice is not an error */
    if (!add_rec(fl, WAL_COMMIT, req->chunk_id, req->version, 0) ||
        ovl_push(fl, req->chunk_id, req->version, IX_COMMITTED, base)) {
        req->status = -ENOMEM;
        return;
    }
    /* The bases this commit folds, as ix_apply will. */
    cur = base;
    for (int hops = 0; cur && cur != req->version && hops < MAX_CHAIN; hops++) {
        if (ver_state(fl, t, req->chunk_id, cur, &st2, &b2) != 0 || st2 == IX_FOLDED) break;
        if (ovl_push(fl, req->chunk_id, cur, IX_FOLDED, b2)) break;
        if (st2 == IX_COMMITTED) break;
        cur = b2;
    }
}

static void emit_delete(struct flush *fl, MDB_txn *t, struct mkv_store_req *req)
{
    int st, rv;
    uint32_t base;
    if (req->version) {
        rv = ver_state(fl, t, req->chunk_id, req->version, &st, &base);
        if (rv == -ENOENT) return; /* nothing to delete */
    } else {
        rv = chunk_exists(fl, t, req->chunk_id);
        if (rv == 0) return;
        if (rv > 0) rv = 0;
    }
    if (rv) {
        req->status = rv;
        return;
    }
    if (!add_rec(fl, WAL_DELETE, req->chunk_id, req->version, 0) ||
        ovl_push(fl, req->chunk_id, req->version, 0, 0))
        req->status = -ENOMEM;
}

/* Assigns segments and offsets, rolling to a new segment when one is
 * full. Returns 0 or a negative code (nothing written yet either way). */
static int layout(struct flush *fl)
{
    struct mkv_store *s = fl->s;
    struct seg *g;
    uint64_t total = 0;
    int rv = 0, fresh;

    for (size_t i = 0; i < fl->nrecs; i++) {
        fl->recs[i].rec_len = wal_rec_len(fl->recs[i].h.stored_len);
        total += fl->recs[i].rec_len;
    }
    pthread_mutex_lock(&s->lock);
    g = s->head;
    /* A batch that fits in one segment goes into one segment: a crash in
     * the middle of it then leaves a torn tail only at the end of the log. */
    fresh = g->size + total > s->o.segment_size && WAL_HDR + total <= s->o.segment_size;
    fl->nspans = 0;
    for (size_t i = 0; i < fl->nrecs; i++) {
        struct frec *r = &fl->recs[i];
        int roll = (i == 0 && fresh) || g->size + r->rec_len > s->o.segment_size;
        if (roll && g->size > WAL_HDR) {
            uint64_t id = s->next_seg_id++;
            struct seg *ng;
            int fd;
            pthread_mutex_unlock(&s->lock);
            fd = seg_create(s, id, r->h.lsn, 0, 0);
            pthread_mutex_lock(&s->lock);
            if (fd < 0) {
                rv = fd;
                break;
            }
            ng = seg_new(id, fd);
            if (ng) { /* the table is ordered by lo: set it before inserting */
                ng->lo = r->h.lsn;
                ng->size = WAL_HDR;
                ng->row_dirty = 1;
            }
            if (!ng || seg_insert(s, ng)) {
                free(ng);
                close(fd);
                rv = -ENOMEM;
                break;
            }
            g->flags |= SEG_SEALED;
            g->hi = r->h.lsn - 1;
            g->row_dirty = 1;
            s->head = g = ng;
        }
        if (fl->nspans == 0 || fl->spans[fl->nspans - 1].seg != g) {
            if (grow((void **)&fl->spans, &fl->cspans, fl->nspans + 1, sizeof *fl->spans)) {
                rv = -ENOMEM;
                break;
            }
            fl->spans[fl->nspans].seg = g;
            fl->spans[fl->nspans].start = g->size;
            fl->spans[fl->nspans].end = g->size;
            fl->nspans++;
        }
        r->seg = g;
        r->off = g->size;
        g->size += r->rec_len;
        g->row_dirty = 1;
        fl->spans[fl->nspans - 1].end = g->size;
        wal_hdr_encode(&r->h, r->hdr);
    }
    if (rv) {
        for (size_t i = 0; i < fl->nspans; i++) fl->spans[i].seg->size = fl->spans[i].start;
        fl->nspans = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

/* Builds the write ops (at most IOV_MAX iovecs each) and one fsync per
 * segment. */
static int make_ops(struct flush *fl)
{
    size_t niov = 0, nops = 0, r = 0;
    if (grow((void **)&fl->iov, &fl->ciov, fl->nrecs * 3, sizeof *fl->iov) ||
        grow((void **)&fl->ops, &fl->cops, fl->nrecs * 3 / IOV_MAX + 2 * fl->nspans + 2,
             sizeof *fl->ops))
        return -ENOMEM;
    for (size_t sp = 0; sp < fl->nspans; sp++) {
        struct io_op *op = NULL;
        for (; r < fl->nrecs && fl->recs[r].seg == fl->spans[sp].seg; r++) {
            struct frec *rec = &fl->recs[r];
            uint32_t pad = wal_pad(rec->h.stored_len);
            if (!op || op->iovcnt + 3 > IOV_MAX) {
                op = &fl->ops[nops++];
                memset(op, 0, sizeof *op);
                op->opcode = IO_WRITEV;
                op->fd = rec->seg->fd;
                op->off = rec->off;
                op->iov = &fl->iov[niov];
            }
            fl->iov[niov].iov_base = rec->hdr;
            fl->iov[niov++].iov_len = WAL_HDR;
            op->iovcnt++;
            if (rec->h.stored_len) {
                fl->iov[niov].iov_base = (void *)rec->payload;
                fl->iov[niov++].iov_len = rec->h.stored_len;
                op->iovcnt++;
            }
            if (pad) {
                fl->iov[niov].iov_base = (void *)zeros;
                fl->iov[niov++].iov_len = pad;
                op->iovcnt++;
            }
            op->len += rec->rec_len;
        }
    }
    fl->wb.ops = fl->ops;
    fl->wb.nops = (int)nops;
    for (size_t sp = 0; sp < fl->nspans; sp++) {
        struct io_op *op = &fl->ops[nops + sp];
        memset(op, 0, sizeof *op);
        op->opcode = IO_FSYNC;
        op->fd = fl->spans[sp].seg->fd;
    }
    fl->sb.ops = fl->ops + nops;
    fl->sb.nops = (int)fl->nspans;
    if (fl->s->o.no_fsync) fl->sb.nops = 0;
    return 0;
}

static void on_applied(struct mkv_store *s, void *arg)
{
    struct flush *fl = arg;
    s->durable_lsn = fl->recs[fl->nrecs - 1].h.lsn;
}

static int apply(struct flush *fl)
{
    struct mkv_store *s = fl->s;
    struct ix_wtx w;
    struct ix_ckpt ck;
    const struct frec *last = &fl->recs[fl->nrecs - 1];
    int rv = fault_hit(s, FAULT_APPLY);
    if (rv) return rv;
    rv = ix_wtx_begin(&s->ix, &w);
    if (rv) return rv;
    for (size_t i = 0; i < fl->nrecs; i++) {
        const struct frec *r = &fl->recs[i];
        rv = ix_apply(&w, &r->h, r->seg->id, r->off, r->rec_len);
        if (rv) {
            ix_wtx_abort(&w);
            return rv;
        }
    }
    ck.seg = last->seg->id;
    ck.off = last->off + last->rec_len;
    ck.lsn = last->h.lsn;
    ck.last_off = last->off;
    return store_commit(s, &w, &ck, on_applied, fl);
}

/* Cuts every segment back to where this batch started writing. */
static void undo(struct flush *fl)
{
    struct mkv_store *s = fl->s;
    for (size_t i = fl->nspans; i-- > 0;) {
        struct fspan *sp = &fl->spans[i];
        if (ftruncate(sp->seg->fd, (off_t)sp->start) != 0 || fdatasync(sp->seg->fd) != 0) {
            MKV_ERROR(COMP,
                      "cannot cut back a failed flush, refusing further writes segment=%016" PRIx64
                      " offset=%" PRIu64 " err=%d",
                      sp->seg->id, sp->start, errno);
            s->fatal = -EIO;
        }
        pthread_mutex_lock(&s->lock);
        sp->seg->size = sp->start;
        sp->seg->row_dirty = 1;
        pthread_mutex_unlock(&s->lock);
    }
    MKV_WARN(COMP, "flush failed, appended records cut back err=%d records=%zu", fl->status,
             fl->nrecs);
}

static void build_work(uv_work_t *w)
{
    struct flush *fl = MKV_CONTAINER_OF(w, struct flush, work);
    struct mkv_store *s = fl->s;
    MDB_txn *t = NULL;
    int enospc = 0, rv;

    fl->status = 0;
    if (s->fatal) {
        fl->status = s->fatal;
        return;
    }
    if (s->o.reserve_bytes) {
        struct statvfs v;
        if (statvfs(s->wal_dir, &v) == 0 &&
            (uint64_t)v.f_bavail * v.f_frsize < s->o.reserve_bytes + fl->bytes)
            enospc = 1;
    }
    rv = ix_rd_begin(&s->ix, &t);
    if (rv) {
        fl->status = rv;
        return;
    }
    for (struct mkv_store_req *r = fl->reqs; r; r = r->next) {
        switch (r->kind) {
        case RQ_WRITE: emit_write(fl, t, r, enospc); break;
        case RQ_COMMIT: emit_commit(fl, t, r); break;
        case RQ_DELETE: emit_delete(fl, t, r); break;
        }
    }
    ix_rd_end(t);
    if (fl->nrecs == 0) return;
    rv = layout(fl);
    if (rv == 0) rv = make_ops(fl);
    if (rv) {
        fl->status = rv;
        return;
    }
    if (io_is_uring(s->io)) return; /* the loop submits WRITE and SYNC */
    io_run_sync(&fl->wb, store_fsync_observe, s);
    rv = fl->wb.status ? fl->wb.status : fault_hit(s, FAULT_WRITE);
    if (rv == 0) {
        io_run_sync(&fl->sb, store_fsync_observe, s);
        rv = fl->sb.status ? fl->sb.status : fault_hit(s, FAULT_FSYNC);
    }
    if (rv == 0) rv = apply(fl);
    if (rv) {
        fl->status = rv;
        undo(fl);
    }
}

/* ------------------------------------------------------------------------
 * DONE
 * ------------------------------------------------------------------------ */
static void finish(struct flush *fl)
{
    struct mkv_store *s = fl->s;
    struct mkv_store_req *r = fl->reqs;
    if (fl->status == 0) {
        uint64_t bytes = 0;
        for (size_t i = 0; i < fl->nrecs; i++) bytes += fl->recs[i].rec_len;
        mkv_counter_add(&s->st_bytes_written, bytes);
    }
    drop_recs(fl, 0);
    fl->reqs = fl->reqs_tail = NULL;
    fl->stage = FL_IDLE;
    s->flushing = 0;
    while (r) {
        struct mkv_store_req *next = r->next;
        int st = r->status ? r->status : fl->status;
        r->next = NULL;
        r->cb(r, st);
        r = next;
    }
    if (s->q_head && !s->flushing) flush_start(s);
    store_maybe_close(s);
}

static void undo_work(uv_work_t *w)
{
    undo(MKV_CONTAINER_OF(w, struct flush, work));
}

static void apply_work(uv_work_t *w)
{
    struct flush *fl = MKV_CONTAINER_OF(w, struct flush, work);
    int rv = apply(fl);
    if (rv) {
        fl->status = rv;
        undo(fl);
    }
}

static void work_after(uv_work_t *w, int status)
{
    (void)status;
    finish(MKV_CONTAINER_OF(w, struct flush, work));
}

static void fail_io(struct flush *fl, int status)
{
    fl->status = status;
    fl->stage = FL_UNDO;
    uv_queue_work(fl->s->loop, &fl->work, undo_work, work_after);
}

static void sync_done(struct io_batch *b)
{
    struct flush *fl = b->data;
    int st = b->status ? b->status : fault_hit(fl->s, FAULT_FSYNC);
    if (st) {
        fail_io(fl, st);
        return;
    }
    fl->stage = FL_APPLY;
    uv_queue_work(fl->s->loop, &fl->work, apply_work, work_after);
}

static void write_done(struct io_batch *b)
{
    struct flush *fl = b->data;
    int st = b->status ? b->status : fault_hit(fl->s, FAULT_WRITE);
    if (st) {
        fail_io(fl, st);
        return;
    }
    fl->stage = FL_SYNC;
    io_submit(fl->s->io, &fl->sb);
}

static void build_after(uv_work_t *w, int status)
{
    struct flush *fl = MKV_CONTAINER_OF(w, struct flush, work);
    (void)status;
    if (!io_is_uring(fl->s->io) || fl->status || fl->nrecs == 0) {
        finish(fl);
        return;
    }
    fl->stage = FL_WRITE;
    io_submit(fl->s->io, &fl->wb);
}

/* ------------------------------------------------------------------------
 * Queue
 * ------------------------------------------------------------------------ */
static size_t req_cost(const struct mkv_store_req *r)
{
    return WAL_HDR + (r->kind == RQ_WRITE ? r->len : 0);
}

static void flush_start(struct mkv_store *s)
{
    struct flush *fl = s->fl;
    fl->reqs = fl->reqs_tail = NULL;
    fl->nreqs = 0;
    fl->bytes = 0;
    fl->nrecs = fl->nspans = fl->novl = 0;
    fl->status = 0;
    while (s->q_head) {
        struct mkv_store_req *r = s->q_head;
        size_t cost = req_cost(r);
        if (fl->nreqs && (fl->bytes + cost > s->o.group_commit_bytes || fl->nreqs >= FLUSH_MAX_REQS))
            break;
        s->q_head = r->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        r->next = NULL;
        if (fl->reqs_tail) fl->reqs_tail->next = r;
        else fl->reqs = r;
        fl->reqs_tail = r;
        fl->nreqs++;
        fl->bytes += cost;
    }
    if (!fl->reqs) return;
    s->flushing = 1;
    fl->stage = FL_BUILD;
    uv_queue_work(s->loop, &fl->work, build_work, build_after);
}

static void on_flush_timer(uv_timer_t *t)
{
    struct mkv_store *s = t->data;
    if (!s->flushing && s->q_head) flush_start(s);
}

void flush_enqueue(struct mkv_store *s, struct mkv_store_req *req)
{
    req->next = NULL;
    if (s->q_tail) s->q_tail->next = req;
    else s->q_head = req;
    s->q_tail = req;
    s->q_len++;
    /* Start at the end of this loop turn, so that requests issued together
     * share one flush. */
    if (!s->flushing && !uv_is_active((uv_handle_t *)&s->flush_timer))
        uv_timer_start(&s->flush_timer, on_flush_timer, 0, 0);
}

int flush_idle(struct mkv_store *s)
{
    return !s->flushing && !s->q_head;
}

int flush_init(struct mkv_store *s)
{
    struct flush *fl = calloc(1, sizeof *fl);
    if (!fl) return -ENOMEM;
    fl->s = s;
    fl->wb.cb = write_done;
    fl->wb.data = fl;
    fl->sb.cb = sync_done;
    fl->sb.data = fl;
    s->fl = fl;
    return 0;
}

void flush_free(struct mkv_store *s)
{
    struct flush *fl = s->fl;
    if (!fl) return;
    drop_recs(fl, 0);
    free(fl->recs);
    free(fl->iov);
    free(fl->ops);
    free(fl->spans);
    free(fl->ovl);
    free(fl);
    s->fl = NULL;
}
