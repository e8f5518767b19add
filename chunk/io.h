/* minikv chunk store, private: data-path I/O backends.
 *
 * A batch is a set of vectored reads, writes and fdatasyncs that complete
 * together. The io_uring backend submits a batch from the loop thread and
 * completes it there (the ring's eventfd is watched by a uv_poll handle);
 * short transfers are resubmitted. The sync backend has no ring: its
 * batches run with io_run_sync on a worker thread (the flush and read paths
 * call it from inside their uv_queue_work jobs), never on the loop. */
#ifndef MKV_CHUNK_IO_H
#define MKV_CHUNK_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <uv.h>

enum io_opcode { IO_READV = 1, IO_WRITEV = 2, IO_FSYNC = 3 };

struct io_batch;

struct io_op
{
    int opcode;
    int fd;
    uint64_t off;
    struct iovec *iov; /* advanced in place on short transfers */
    int iovcnt;
    size_t len;        /* total bytes of iov */
    size_t done;
    int res;           /* 0 or a negative errno */
    uint64_t start_ns;
    struct io_batch *b;
    struct io_op *next; /* waiting for a submission slot */
};

typedef void (*io_batch_cb)(struct io_batch *b);

struct io_batch
{
    struct io_op *ops;
    int nops;
    int pending;
    int status; /* first error of any op */
    io_batch_cb cb;
    void *data;
};

struct mkv_io;

/* backend: MKV_IO_AUTO, MKV_IO_URING or MKV_IO_SYNC. With MKV_IO_URING an
 * unusable io_uring is an error; with AUTO it selects the sync backend. */
int io_open(uv_loop_t *loop, int backend, struct mkv_io **out, char *err, size_t errlen);
/* Closes the poll handle (when the ring is idle) and frees; done(data) runs
 * after the handle's close callback. */
void io_close(struct mkv_io *io, void (*done)(void *data), void *data);
int io_is_uring(const struct mkv_io *io);
const char *io_name(const struct mkv_io *io);
int io_inflight(const struct mkv_io *io);
/* Called with the latency of every completed fsync op. */
void io_set_fsync_observer(struct mkv_io *io, void (*fn)(void *arg, uint64_t ns), void *arg);

/* io_uring only, loop thread: submits every op; b->cb runs on the loop when
 * all have completed. */
void io_submit(struct mkv_io *io, struct io_batch *b);
/* Runs b's ops one by one on the calling thread (a worker); sets each res
 * and b->status. Does not call b->cb. */
void io_run_sync(struct io_batch *b, void (*fsync_obs)(void *arg, uint64_t ns), void *arg);

/* 1 when io_uring with readv, writev and fsync works on this kernel. */
int io_uring_usable(void);

#endif /* MKV_CHUNK_IO_H */
