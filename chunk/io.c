/* minikv chunk store: io_uring and pread/pwrite backends (io.h). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <liburing.h>

#include "minikv/err.h"
#include "minikv/log.h"

#include "io.h"
#include "store.h"

#define RING_ENTRIES 256

struct mkv_io
{
    uv_loop_t *loop;
    int uring;
    struct io_uring ring;
    int efd;
    uv_poll_t poll;
    int pending;  /* ops accepted and not completed */
    int inflight; /* ops in the kernel */
    struct io_op *wait_head, *wait_tail;
    void (*fobs)(void *arg, uint64_t ns);
    void *farg;
    void (*done)(void *data);
    void *done_data;
};

static int probe_ring(struct io_uring *r)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(r);
    int ok;
    if (!p) return 0;
    ok = io_uring_opcode_supported(p, IORING_OP_READV) &&
         io_uring_opcode_supported(p, IORING_OP_WRITEV) &&
         io_uring_opcode_supported(p, IORING_OP_FSYNC);
    io_uring_free_probe(p);
    return ok;
}

int io_uring_usable(void)
{
    struct io_uring r;
    int ok;
    if (io_uring_queue_init(8, &r, 0) != 0) return 0;
    ok = probe_ring(&r);
    io_uring_queue_exit(&r);
    return ok;
}

static void on_poll(uv_poll_t *h, int status, int events);

static int uring_setup(struct mkv_io *io, char *err, size_t errlen)
{
    int rc = io_uring_queue_init(RING_ENTRIES, &io->ring, 0);
    if (rc) return mkv_errf(err, errlen, rc, "io_uring_queue_init");
    if (!probe_ring(&io->ring)) {
        rc = mkv_errf(err, errlen, -ENOSYS, "io_uring lacks readv/writev/fsync");
        goto err_ring;
    }
    io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io->efd < 0) {
        rc = mkv_errf(err, errlen, -errno, "eventfd");
        goto err_ring;
    }
    rc = io_uring_register_eventfd(&io->ring, io->efd);
    if (rc) {
        mkv_errf(err, errlen, rc, "io_uring_register_eventfd");
        goto err_efd;
    }
    rc = uv_poll_init(io->loop, &io->poll, io->efd);
    if (rc) {
        mkv_errf(err, errlen, rc, "uv_poll_init");
        goto err_efd;
    }
    io->poll.data = io;
    uv_poll_start(&io->poll, UV_READABLE, on_poll);
    uv_unref((uv_handle_t *)&io->poll); /* referenced only while I/O is pending */
    return 0;
err_efd:
    close(io->efd);
err_ring:
    io_uring_queue_exit(&io->ring);
    return rc;
}

int io_open(uv_loop_t *loop, int backend, struct mkv_io **out, char *err, size_t errlen)
{
    struct mkv_io *io = calloc(1, sizeof *io);
    int rc;
    if (!io) return mkv_errf(err, errlen, -ENOMEM, "io");
    io->loop = loop;
    io->efd = -1;
    if (backend == MKV_IO_URING || backend == MKV_IO_AUTO) {
        rc = uring_setup(io, err, errlen);
        if (rc == 0) {
            io->uring = 1;
        } else if (backend == MKV_IO_URING) {
            free(io);
            return rc;
        } else {
            MKV_INFO("chunk", "io_uring unavailable, using the sync backend reason=\"%s\"", err);
            if (errlen) err[0] = '\0';
        }
    } else if (backend != MKV_IO_SYNC) {
        free(io);
        return mkv_errf(err, errlen, -EINVAL, "unknown io backend %d", backend);
    }
    *out = io;
    return 0;
}

static void on_close(uv_handle_t *h)
{
    struct mkv_io *io = h->data;
    void (*done)(void *) = io->done;
    void *data = io->done_data;
    io_uring_queue_exit(&io->ring);
    close(io->efd);
    free(io);
    if (done) done(data);
}

void io_close(struct mkv_io *io, void (*done)(void *data), void *data)
{
    if (!io->uring) {
        free(io);
        if (done) done(data);
        return;
    }
    io->done = done;
    io->done_data = data;
    uv_close((uv_handle_t *)&io->poll, on_close);
}

int io_is_uring(const struct mkv_io *io)
{
    return io->uring;
}

const char *io_name(const struct mkv_io *io)
{
    return io->uring ? "io_uring" : "sync";
}

int io_inflight(const struct mkv_io *io)
{
    return io->pending;
}

void io_set_fsync_observer(struct mkv_io *io, void (*fn)(void *arg, uint64_t ns), void *arg)
{
    io->fobs = fn;
    io->farg = arg;
}

static void iov_advance(struct io_op *op, size_t n)
{
    while (n && op->iovcnt) {
        if (n >= op->iov[0].iov_len) {
            n -= op->iov[0].iov_len;
            op->iov++;
            op->iovcnt--;
        } else {
            op->iov[0].iov_base = (char *)op->iov[0].iov_base + n;
            op->iov[0].iov_len -= n;
            n = 0;
        }
    }
}

/* ------------------------------------------------------------------------
 * io_uring
 * ------------------------------------------------------------------------ */
static void wait_push(struct mkv_io *io, struct io_op *op)
{
    op->next = NULL;
    if (io->wait_tail) io->wait_tail->next = op;
    else io->wait_head = op;
    io->wait_tail = op;
}

static void pump(struct mkv_io *io)
{
    int n = 0, rc;
    /* Never more in flight than the completion queue holds. */
    while (io->wait_head && io->inflight + n < (int)io->ring.cq.ring_entries) {
        struct io_op *op = io->wait_head;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
        if (!sqe) break;
        io->wait_head = op->next;
        if (!io->wait_head) io->wait_tail = NULL;
        switch (op->opcode) {
        case IO_READV:
            io_uring_prep_readv(sqe, op->fd, op->iov, (unsigned)op->iovcnt, op->off + op->done);
            break;
        case IO_WRITEV:
            io_uring_prep_writev(sqe, op->fd, op->iov, (unsigned)op->iovcnt, op->off + op->done);
            break;
        default:
            io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
            op->start_ns = mkv_mono_ns();
            break;
        }
        io_uring_sqe_set_data(sqe, op);
        n++;
    }
    if (n == 0) return;
    do {
        rc = io_uring_submit(&io->ring);
    } while (rc == -EINTR);
    if (rc >= 0) {
        io->inflight += n;
    } else {
        /* The SQEs stay queued in the ring; the next pump submits them. */
        MKV_WARN("chunk", "io_uring_submit failed err=%d", rc);
        io->inflight += n;
    }
}

static void op_complete(struct mkv_io *io, struct io_op *op)
{
    struct io_batch *b = op->b;
    io->pending--;
    if (io->pending == 0) uv_unref((uv_handle_t *)&io->poll);
    if (op->res && !b->status) b->status = op->res;
    if (--b->pending == 0 && b->cb) b->cb(b);
}

static void on_cqe(struct mkv_io *io, struct io_op *op, int res)
{
    if (res == -EINTR || res == -EAGAIN) {
        wait_push(io, op);
        return;
    }
    if (res < 0) {
        op->res = res;
    } else if (op->opcode == IO_FSYNC) {
        uint64_t ns = mkv_mono_ns() - op->start_ns;
        if (io->fobs) io->fobs(io->farg, ns);
    } else if (res == 0) {
        op->res = -EIO; /* end of file on a read; no progress on a write */
    } else {
        op->done += (size_t)res;
        if (op->done < op->len) {
            iov_advance(op, (size_t)res);
            wait_push(io, op);
            return;
        }
    }
    op_complete(io, op);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct mkv_io *io = h->data;
    struct io_uring_cqe *cqe;
    uint64_t v;
    ssize_t r MKV_UNUSED;
    (void)status;
    (void)events;
    r = read(io->efd, &v, sizeof v);
    while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
        struct io_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&io->ring, cqe);
        io->inflight--;
        on_cqe(io, op, res);
    }
    pump(io);
}

void io_submit(struct mkv_io *io, struct io_batch *b)
{
    b->pending = b->nops;
    b->status = 0;
    if (b->nops == 0) {
        if (b->cb) b->cb(b);
        return;
    }
    for (int i = 0; i < b->nops; i++) {
        struct io_op *op = &b->ops[i];
        op->b = b;
        op->done = 0;
        op->res = 0;
        if (io->pending++ == 0) uv_ref((uv_handle_t *)&io->poll);
        wait_push(io, op);
    }
    pump(io);
}

/* ------------------------------------------------------------------------
 * Synchronous execution on a worker thread
 * ------------------------------------------------------------------------ */
void io_run_sync(struct io_batch *b, void (*fsync_obs)(void *arg, uint64_t ns), void *arg)
{
    b->status = 0;
    for (int i = 0; i < b->nops; i++) {
        struct io_op *op = &b->ops[i];
        op->b = b;
        op->done = 0;
        op->res = 0;
        if (op->opcode == IO_FSYNC) {
            uint64_t t0 = mkv_mono_ns();
            if (fdatasync(op->fd) != 0) op->res = -errno;
            else if (fsync_obs) fsync_obs(arg, mkv_mono_ns() - t0);
        } else {
            while (op->done < op->len) {
                int cnt = op->iovcnt > IOV_MAX ? IOV_MAX : op->iovcnt;
                ssize_t n = op->opcode == IO_READV
                                ? preadv(op->fd, op->iov, cnt, (off_t)(op->off + op->done))
                                : pwritev(op->fd, op->iov, cnt, (off_t)(op->off + op->done));
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) {
                    op->res = -errno;
                    break;
                }
                if (n == 0) {
                    op->res = -EIO;
                    break;
                }
                op->done += (size_t)n;
                iov_advance(op, (size_t)n);
            }
        }
        if (op->res && !b->status) b->status = op->res;
        if (b->status) { /* later ops (an fsync after a failed write) are pointless */
            for (int j = i + 1; j < b->nops; j++) b->ops[j].res = -ECANCELED;
            break;
        }
    }
}
