/* minikv chunk store: the read path.
 *
 *   RESOLVE look every block of the range up in the index, following the
 *           base chain of a prepared version; map segment ids to open
 *           files. With io_uring this runs on the loop (a few microseconds
 *           of LMDB reads: cheaper than two thread hops per read); the sync
 *           backend does it in its worker job, with the I/O
 *   IO      one batch: a readv per run of adjacent records (io_uring on the
 *           loop; the sync backend runs it inside the RESOLVE job)
 *   VERIFY  header cross-check, payload CRC, decryption/decompression and
 *           plaintext CRC; on the loop for plain blocks read by io_uring,
 *           on a worker when a transform is involved
 *   DONE    (loop) the callback
 *
 * A block stored as is and wanted whole is read straight into the caller's
 * buffer (zeroed again if it fails its checks); others go through a pooled
 * buffer. The read pins the segment epoch so compaction cannot remove a
 * segment it is reading. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "minikv/err.h"
#include "minikv/log.h"

#include "store_int.h"

#define MAX_CHAIN 64

struct rblk
{
    struct ix_blk e;
    uint32_t block;
    uint32_t from, to; /* wanted bytes within the block */
    uint8_t *dst;      /* where byte `from` goes */
    int fd;
    int direct;
    uint8_t *pbuf;
    uint8_t hdr[WAL_HDR + WAL_ALIGN]; /* header, then room for padding */
};

struct rctx
{
    struct mkv_store *s;
    struct mkv_store_req *req;
    uv_work_t work;
    struct io_batch batch;
    uint64_t epoch;
    int status;
    int transformed;
    int cached; /* mkv_store_read_cached: racing compaction is no error */
    uint32_t n;
    struct rblk *b;
    struct io_op *ops;
    struct iovec *iov;
};

static void rctx_free(struct rctx *x)
{
    for (uint32_t i = 0; i < x->n; i++) xf_pool_put(&x->s->pool, x->b[i].pbuf);
    free(x);
}

static int set_status(struct rctx *x, int rv)
{
    if (rv && !x->status) x->status = rv;
    return rv;
}

/* Looks the range up. */
static void resolve(struct rctx *x)
{
    struct mkv_store *s = x->s;
    struct mkv_store_req *req = x->req;
    uint32_t chain[MAX_CHAIN];
    int nchain = 0, broken = 0, rv;
    struct ix_ver vi;
    MDB_txn *t;

    rv = ix_rd_begin(&s->ix, &t);
    if (set_status(x, rv)) return;
    rv = ix_get_ver(&s->ix, t, req->chunk_id, req->version, &vi);
    if (rv == 0 && vi.state == IX_FOLDED) rv = MKV_ESTALE;
    if (set_status(x, rv)) goto out;
    chain[nchain++] = req->version;
    if (vi.state == IX_PREPARED) {
        uint32_t cur = vi.base;
        while (cur && nchain < MAX_CHAIN) {
            struct ix_ver bv;
            rv = ix_get_ver(&s->ix, t, req->chunk_id, cur, &bv);
            if (rv == -ENOENT || (rv == 0 && bv.state == IX_FOLDED)) {
                broken = MKV_ESTALE; /* the base is gone: the chunk map is stale */
                break;
            }
            if (set_status(x, rv)) goto out;
            chain[nchain++] = cur;
            if (bv.state == IX_COMMITTED) break;
            cur = bv.base;
        }
    }
    for (uint32_t i = 0; i < x->n; i++) {
        struct rblk *b = &x->b[i];
        rv = -ENOENT;
        for (int k = 0; k < nchain && rv == -ENOENT; k++)
            rv = ix_get_blk(&s->ix, t, req->chunk_id, chain[k], b->block, &b->e);
        if (rv == -ENOENT) rv = broken ? broken : -ENODATA;
        if (rv == 0 && b->to > b->e.data_len) rv = -ENODATA;
        if (set_status(x, rv)) goto out;
    }
out:
    ix_rd_end(t);
    if (x->status) return;
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < x->n; i++) {
        struct seg *g = seg_find(s, x->b[i].e.seg);
        x->b[i].fd = g ? g->fd : -1;
        if ((!g || g->fd < 0) && x->cached) {
            /* An unpinned reader's index snapshot may predate a compaction
             * whose inputs are gone by now: the pinned path reads it. */
            x->status = -EAGAIN;
        } else if (!g || g->fd < 0) {
            MKV_ERROR(COMP, "index names a missing segment segment=%016" PRIx64, x->b[i].e.seg);
            x->status = -EIO;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

/* One readv per run of records adjacent in one segment. */
static int make_ops(struct rctx *x)
{
    int nops = 0, niov = 0;
    struct io_op *op = NULL;
    for (uint32_t i = 0; i < x->n; i++) {
        struct rblk *b = &x->b[i];
        b->direct = b->e.flags == 0 && b->e.stored_len == b->e.data_len && b->from == 0 &&
                    b->to == b->e.data_len;
        if (!b->direct) {
            b->pbuf = xf_pool_get(&x->s->pool);
            if (!b->pbuf) return -ENOMEM;
        }
        if (b->e.flags) x->transformed = 1;
        if (op && i > 0 && x->b[i - 1].fd == b->fd &&
            x->b[i - 1].e.off + x->b[i - 1].e.rec_len == b->e.off && op->iovcnt + 4 <= IOV_MAX) {
            /* Adjacent: read the previous record's padding too. */
            struct rblk *p = &x->b[i - 1];
            uint32_t pad = p->e.rec_len - WAL_HDR - p->e.stored_len;
            if (pad) {
                x->iov[niov].iov_base = p->hdr + WAL_HDR;
                x->iov[niov++].iov_len = pad;
                op->iovcnt++;
                op->len += pad;
            }
        } else {
            op = &x->ops[nops++];
            memset(op, 0, sizeof *op);
            op->opcode = IO_READV;
            op->fd = b->fd;
            op->off = b->e.off;
            op->iov = &x->iov[niov];
        }
        if (b->direct) {
            x->iov[niov].iov_base = b->hdr;
            x->iov[niov++].iov_len = WAL_HDR;
            x->iov[niov].iov_base = b->dst;
            x->iov[niov++].iov_len = b->e.stored_len;
            op->iovcnt += 2;
        } else {
            x->iov[niov].iov_base = b->pbuf;
            x->iov[niov++].iov_len = WAL_HDR + b->e.stored_len;
            op->iovcnt++;
        }
        op->len += WAL_HDR + b->e.stored_len;
    }
    x->batch.ops = x->ops;
    x->batch.nops = nops;
    return 0;
}

static void verify(struct rctx *x)
{
    struct mkv_store *s = x->s;
    uint8_t *plain = NULL;
    if (x->transformed) {
        plain = xf_pool_get(&s->pool);
        if (!plain) {
            set_status(x, -ENOMEM);
            return;
        }
    }
    for (uint32_t i = 0; i < x->n; i++) {
        struct rblk *b = &x->b[i];
        const uint8_t *hdr = b->direct ? b->hdr : b->pbuf;
        uint8_t *payload = b->direct ? b->dst : b->pbuf + WAL_HDR;
        int rv = store_check_block(s, x->req->chunk_id, x->req->version, b->block, &b->e, hdr,
                                   payload, plain);
        if (rv) {
            memset(b->dst, 0, b->to - b->from); /* nothing from a bad block */
            set_status(x, rv);
            continue;
        }
        if (b->direct) continue;
        memcpy(b->dst, (b->e.flags ? plain : payload) + b->from, b->to - b->from);
    }
    xf_pool_put(&s->pool, plain);
}

static void done(struct rctx *x)
{
    struct mkv_store *s = x->s;
    struct mkv_store_req *req = x->req;
    int status = x->status;
    if (status == 0) mkv_counter_add(&s->st_bytes_read, req->len);
    store_unpin(s, x->epoch);
    s->reads--;
    rctx_free(x);
    req->priv = NULL;
    req->cb(req, status);
    store_maybe_close(s);
}

static void resolve_work(uv_work_t *w)
{
    struct rctx *x = MKV_CONTAINER_OF(w, struct rctx, work);
    resolve(x);
    if (x->status || x->n == 0) return;
    if (set_status(x, make_ops(x))) return;
    if (io_is_uring(x->s->io)) return;
    io_run_sync(&x->batch, NULL, NULL);
    if (set_status(x, x->batch.status)) return;
    verify(x);
}

static void noop_work(uv_work_t *w)
{
    (void)w;
}

static void verify_work(uv_work_t *w)
{
    verify(MKV_CONTAINER_OF(w, struct rctx, work));
}

static void verify_after(uv_work_t *w, int status)
{
    (void)status;
    done(MKV_CONTAINER_OF(w, struct rctx, work));
}

static void io_done(struct io_batch *b)
{
    struct rctx *x = b->data;
    if (b->status) {
        MKV_ERROR(COMP, "read failed chunk=%016" PRIx64 " version=%u err=%d", x->req->chunk_id,
                  x->req->version, b->status);
        set_status(x, b->status == -EIO ? -EIO : b->status);
        done(x);
        return;
    }
    if (x->transformed) {
        uv_queue_work(x->s->loop, &x->work, verify_work, verify_after);
        return;
    }
    verify(x);
    done(x);
}

static void resolve_after(uv_work_t *w, int status)
{
    struct rctx *x = MKV_CONTAINER_OF(w, struct rctx, work);
    (void)status;
    if (x->status || x->n == 0 || !io_is_uring(x->s->io)) {
        done(x);
        return;
    }
    io_submit(x->s->io, &x->batch);
}

int read_start(struct mkv_store *s, struct mkv_store_req *req)
{
    uint64_t first = req->offset / MKV_BLOCK_SIZE;
    uint64_t end = req->offset + req->len;
    uint32_t n = req->len ? (uint32_t)((end + MKV_BLOCK_SIZE - 1) / MKV_BLOCK_SIZE - first) : 0;
    size_t sz = sizeof(struct rctx) + n * (sizeof(struct rblk) + sizeof(struct io_op) +
                                           4 * sizeof(struct iovec));
    struct rctx *x = malloc(sz);
    uint8_t *dst = req->buf;
    if (!x) return -ENOMEM;
    memset(x, 0, sizeof *x);
    x->s = s;
    x->req = req;
    x->n = n;
    x->b = (struct rblk *)(x + 1);
    x->ops = (struct io_op *)(x->b + n);
    x->iov = (struct iovec *)(x->ops + n);
    for (uint32_t i = 0; i < n; i++) {
        struct rblk *b = &x->b[i];
        uint64_t bs = (first + i) * MKV_BLOCK_SIZE;
        uint64_t from = MKV_MAX(bs, req->offset), to = MKV_MIN(bs + MKV_BLOCK_SIZE, end);
        memset(b, 0, sizeof *b);
        b->block = (uint32_t)(first + i);
        b->from = (uint32_t)(from - bs);
        b->to = (uint32_t)(to - bs);
        b->dst = dst + (from - req->offset);
        b->fd = -1;
    }
    x->batch.data = x;
    x->batch.cb = io_done;
    req->priv = x;
    x->epoch = store_pin(s);
    s->reads++;
    if (io_is_uring(s->io)) {
        resolve(x);
        if (!x->status && x->n) set_status(x, make_ops(x));
        if (!x->status && x->n) {
            io_submit(s->io, &x->batch);
            return 0;
        }
        /* Nothing to read or a failed lookup: answer from a worker job so
         * the callback never runs inside mkv_store_read. */
        uv_queue_work(s->loop, &x->work, noop_work, resolve_after);
        return 0;
    }
    uv_queue_work(s->loop, &x->work, resolve_work, resolve_after);
    return 0;
}

/* ---- reads from the page cache, in the caller's thread ---- */

/* preadv2 with RWF_NOWAIT: the whole op from the page cache, or -EAGAIN. */
static int read_nowait(const struct io_op *op)
{
    ssize_t n;
    do
        n = preadv2(op->fd, op->iov, op->iovcnt, (off_t)op->off, RWF_NOWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN || errno == EOPNOTSUPP ? -EAGAIN : -errno;
    return (size_t)n == op->len ? 0 : -EAGAIN; /* a short read: part was not cached */
}

int mkv_store_read_cached(struct mkv_store *s, uint64_t chunk_id, uint32_t version,
                          uint64_t offset, void *buf, size_t len)
{
    struct mkv_store_req req;
    struct rctx *x;
    uint64_t first = offset / MKV_BLOCK_SIZE, end = offset + len;
    uint32_t n;
    size_t sz;
    int rv = 0;
    if (len == 0 || len > MKV_CHUNK_SIZE || offset > MKV_CHUNK_SIZE - len) return -EINVAL;
    n = (uint32_t)((end + MKV_BLOCK_SIZE - 1) / MKV_BLOCK_SIZE - first);
    sz = sizeof(struct rctx) +
         n * (sizeof(struct rblk) + sizeof(struct io_op) + 4 * sizeof(struct iovec));
    if (!(x = malloc(sz))) return -ENOMEM;
    memset(x, 0, sizeof *x);
    memset(&req, 0, sizeof req);
    req.chunk_id = chunk_id;
    req.version = version;
    req.offset = offset;
    req.len = len;
    req.buf = buf;
    x->s = s;
    x->req = &req;
    x->cached = 1;
    x->n = n;
    x->b = (struct rblk *)(x + 1);
    x->ops = (struct io_op *)(x->b + n);
    x->iov = (struct iovec *)(x->ops + n);
    for (uint32_t i = 0; i < n; i++) {
        struct rblk *b = &x->b[i];
        uint64_t bs = (first + i) * MKV_BLOCK_SIZE;
        uint64_t from = MKV_MAX(bs, offset), to = MKV_MIN(bs + MKV_BLOCK_SIZE, end);
        memset(b, 0, sizeof *b);
        b->block = (uint32_t)(first + i);
        b->from = (uint32_t)(from - bs);
        b->to = (uint32_t)(to - bs);
        b->dst = (uint8_t *)buf + (from - offset);
        b->fd = -1;
    }
    pthread_rwlock_rdlock(&s->fd_lock);
    resolve(x);
    rv = x->status;
    /* Compressed or encrypted blocks are decoded by the store's workers. */
    for (uint32_t i = 0; !rv && i < n; i++)
        if (x->b[i].e.flags) rv = -EAGAIN;
    if (!rv) rv = make_ops(x);
    for (uint32_t i = 0; !rv && i < (uint32_t)x->batch.nops; i++) rv = read_nowait(&x->ops[i]);
    if (!rv) {
        verify(x);
        rv = x->status;
    }
    pthread_rwlock_unlock(&s->fd_lock);
    if (rv == 0) mkv_counter_add(&s->st_bytes_read, len);
    rctx_free(x);
    return rv;
}
