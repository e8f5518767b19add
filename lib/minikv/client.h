/* minikv: the client library — the one way to talk to a cluster.
 *
 * The S3 gateway, the FUSE client and minikvctl are thin fronts over it.
 * A client lives on one libuv loop and holds:
 *  - peers to every metadata server it knows, with the current leader
 *    remembered and followed (MKV_ENOTLEADER carries its address);
 *  - retry sessions: every state-changing request carries (client_id, seq)
 *    so that a retry after an unknown outcome applies once. A client owns
 *    MKV_CLIENT_SLOTS session slots, each with one request in flight at a
 *    time (the state machine remembers the last seq per slot);
 *  - a pool of chunk ids allocated from the meta service in batches;
 *  - peers to chunk servers;
 *  - streaming writers (bytes -> new chunks, pipelined) and readers
 *    (extents -> bytes in order, read ahead).
 *
 * Retries: transport errors, MKV_ENOTLEADER and MKV_EUNAVAILABLE are
 * retried with backoff until opts.retry_ms has passed; other statuses go to
 * the caller. Threading: every call on the client's loop.
 */
#ifndef MKV_CLIENT_H
#define MKV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "auth.h"
#include "buf.h"
#include "common.h"
#include "net.h"
#include "wire.h"

#define MKV_CLIENT_SLOTS 256

struct mkv_client;

struct mkv_client_opts
{
    const char *meta;  /* "h1:7000,h2:7000": metadata service addresses */
    const char *chunk; /* chunk server address */
    /* One attempt at a metadata call (0: 4 s): a member that does not
     * answer that long (stopped, cut off: no reset comes) is left for the
     * next one; a retry of a command is applied once (sessions). */
    uint64_t timeout_ms;
    uint64_t retry_ms;     /* keep retrying unavailable/leader changes this long (0: 15 s) */
    uint32_t write_window; /* data frames in flight per writer (0: 8) */
    uint32_t frame_bytes;  /* data bytes per write frame, multiple of MKV_BLOCK_SIZE (0: 1 MiB) */
    uint32_t read_window;  /* read requests in flight per reader (0: 8) */
    /* Durable copies a write of a chunk needs before it is acknowledged
     * (0: a majority of the chunk's factor, 2 of 3). At most the factor,
     * or the replicas there are when fewer. */
    uint32_t min_replicas;
    /* Optional shortcuts to services running in this very process (as in
     * `minikv server`). Each is called on the client's thread, answers
     * without a round trip, or returns -EAGAIN, and the request then takes
     * the network path as usual.
     * local_meta_read: a read-only meta request (its encoded payload); on
     *   0, *status and reply hold exactly what the meta service would have
     *   answered. It must only answer when that answer is linearizable
     *   (see mkv_meta_read_local).
     * local_chunk_read: len bytes at off of (chunk_id, version) into buf,
     *   checked as a CHUNK_READ would be, from memory only; any failure
     *   (not cached, a bad block) returns non-zero and the chunk server
     *   gives the authoritative answer. */
    int (*local_meta_read)(void *ctx, uint16_t type, const void *req, size_t len, int *status,
                           struct mkv_buf *reply);
    void *local_meta_ctx;
    int (*local_chunk_read)(void *ctx, uint64_t chunk_id, uint32_t version, uint64_t off, void *buf,
                            size_t len);
    void *local_chunk_ctx;
    /* Credentials (copied; NULL: none): every connection authenticates
     * first (minikv/auth.h). Without them, a service that requires
     * authentication refuses every request with -EACCES. */
    const struct mkv_cred *cred;
    /* Take the reply of a [raft] request as soon as the leader has applied
     * it, before it is durable (MKV_FRAME_EARLY): one round trip instead of
     * a Raft log fsync. mkv_client_sync then makes everything answered so
     * far durable. For fronts whose durability point is an explicit sync
     * (the FUSE mount's fsync); the S3 gateway answers after the commit. */
    int early_replies;
};

MKV_API int mkv_client_new(uv_loop_t *loop, const struct mkv_client_opts *o,
                           struct mkv_client **out, char *err, size_t errlen);
/* Fails everything pending with -ECANCELED and frees the client once its
 * handles are closed (run the loop to let that happen). Writers and
 * readers must be finished or aborted first. */
MKV_API void mkv_client_close(struct mkv_client *c);
MKV_API uv_loop_t *mkv_client_loop(const struct mkv_client *c);
/* Address of the meta server believed to be the leader. */
MKV_API const char *mkv_client_leader(const struct mkv_client *c);

/* ---- metadata requests ---- */

struct mkv_meta_req;
/* status: 0 or negative. On 0, reply holds the reply layout of the request
 * type (decode with mkv_frame_decode); it is released after the callback
 * unless the callee takes a reference. On error, req->errmsg says more. */
typedef void (*mkv_meta_cb)(struct mkv_meta_req *req, int status, struct mkv_frame *reply);

struct mkv_meta_req
{
    void *data; /* for the caller */
    char errmsg[256];
    /* private */
    struct mkv_client *client;
    struct mkv_call call;
    mkv_meta_cb cb;
    struct mkv_buf payload; /* session prefix room + encoded message */
    uint16_t type;
    int slot;
    uint64_t seq;
    uint64_t deadline_ns;
    uint64_t due_ns;
    unsigned attempts;
    unsigned peer;                 /* meta[] index it was last sent to */
    uint64_t sync_upto;            /* mkv_client_sync: early replies it covers */
    struct mkv_frame *local_reply; /* answered locally, delivered on the next loop turn */
    int local_status;
    struct mkv_meta_req *next;
};

/* Encodes msg with d (the request layout of type) and sends it to the
 * leader, retrying as described above. req must stay valid until cb. */
MKV_API int mkv_meta_call(struct mkv_client *c, struct mkv_meta_req *req, uint16_t type,
                          const struct mkv_msgdesc *d, const void *msg, mkv_meta_cb cb);

/* Makes every command answered so far durable (META_SYNC), then cb. With
 * early_replies, cb gets -EIO (once, and req->errmsg says why) when a
 * command was answered early over a connection that has since been lost:
 * the service may have restarted without it. req must stay valid until cb. */
MKV_API int mkv_client_sync(struct mkv_client *c, struct mkv_meta_req *req, mkv_meta_cb cb);

/* Grows each time a connection to a metadata service is (re)made: state
 * learnt over an earlier one (answers given early, above) may since have
 * been lost by a restart. */
MKV_API uint64_t mkv_client_meta_epoch(const struct mkv_client *c);

/* ---- chunk servers ---- */

/* The peer of the chunk server holding chunk_id. */
MKV_API struct mkv_peer *mkv_client_chunk_peer(struct mkv_client *c, uint64_t chunk_id);

/* A vshard as the client's map has it (for chunk servers' fills). */
struct mkv_vshard_view
{
    uint64_t epoch;  /* the map epoch of its last change */
    unsigned n;      /* replicas, in order */
    uint8_t filling; /* bit i: replica i is still filling */
    unsigned replicas; /* the cluster's factor */
    uint64_t node[MKV_REPLICAS_MAX];
    struct mkv_peer *peer[MKV_REPLICAS_MAX];
};
/* 0 with *v filled from the map; -EAGAIN while none is loaded (a load
 * starts); MKV_EUNAVAILABLE when the cluster has none. The map is loaded
 * again once it is 10 s old, or after mkv_client_map_refresh. */
MKV_API int mkv_client_vshard(struct mkv_client *c, unsigned vshard, struct mkv_vshard_view *v);
MKV_API void mkv_client_map_refresh(struct mkv_client *c);
/* Reports that node's copy of vshard is not to be trusted (it missed a
 * write, or a block of it failed its checksum): the group puts it back to
 * filling, so that reads avoid it and it copies again what it lacks. */
MKV_API void mkv_client_mark_missed(struct mkv_client *c, unsigned vshard, uint64_t node);
/* The epoch of the map the client holds (0: none yet). */
MKV_API uint64_t mkv_client_map_epoch(const struct mkv_client *c);

struct mkv_id_req;
typedef void (*mkv_id_cb)(struct mkv_id_req *r, int status, uint64_t chunk_id);
struct mkv_id_req
{
    void *data;
    mkv_id_cb cb;
    struct mkv_id_req *next;
};
/* A fresh chunk id from the local pool (refilled from the meta service in
 * batches). cb may run before this returns. */
MKV_API int mkv_client_alloc_chunk(struct mkv_client *c, struct mkv_id_req *r, mkv_id_cb cb);

/* Sends CHUNK_COMMIT for the chunks of an extent list, without waiting
 * (the chunk servers' orphan collector resolves any that get lost). */
MKV_API void mkv_client_commit_extents(struct mkv_client *c, struct mkv_slice extents);
/* Sends CHUNK_DELETE for them, without waiting (for aborted writes). */
MKV_API void mkv_client_discard_extents(struct mkv_client *c, struct mkv_slice extents);

/* ---- streaming writes ---- */

struct mkv_writer;
struct mkv_writer_ops
{
    /* The window has room again after mkv_writer_write returned 1. */
    void (*on_ready)(struct mkv_writer *w, void *data);
    /* finish: status 0 and the extent list (valid during the call), or an
     * error. Also called with an error after a failure when no finish was
     * requested yet (the writer is then dead: only abort/free remain). The
     * callee may free the writer right there (mkv_writer_free). */
    void (*on_done)(struct mkv_writer *w, void *data, int status, struct mkv_slice extents);
};

MKV_API int mkv_writer_new(struct mkv_client *c, const struct mkv_writer_ops *ops, void *data,
                           struct mkv_writer **out);
/* The bucket the data is for: its chunks get that bucket's replication
 * factor (BUCKET_HEAD, remembered by the client for 10 s; a bucket of
 * fewer copies than the cluster's factor has its chunks written to that
 * many replicas of their vshard). Call before the first write. Without
 * it, the cluster's factor. -EBUSY once data was written. */
MKV_API int mkv_writer_set_bucket(struct mkv_writer *w, const char *bucket);
/* Appends data (copied). Returns 0, 1 when the caller should stop writing
 * until on_ready, or a negative code when the writer has failed. */
MKV_API int mkv_writer_write(struct mkv_writer *w, const void *data, size_t len);
/* Sends what is buffered and calls on_done once every write is durable. */
MKV_API int mkv_writer_finish(struct mkv_writer *w);
/* Bytes accepted so far. */
MKV_API uint64_t mkv_writer_size(const struct mkv_writer *w);
/* Stops, discards what was written (best effort) and frees the writer.
 * No callback runs after this. */
MKV_API void mkv_writer_abort(struct mkv_writer *w);
/* Frees a writer after on_done. */
MKV_API void mkv_writer_free(struct mkv_writer *w);

/* ---- streaming reads ---- */

struct mkv_reader;
struct mkv_reader_ops
{
    /* The next piece, in order. It lives in frame (NULL for a hole's zeros,
     * which are static): take a reference to keep it past the call. Call
     * mkv_reader_release once per piece when done with it: pieces not yet
     * released count against the read window. */
    void (*on_data)(struct mkv_reader *r, void *data, struct mkv_frame *frame, const uint8_t *p,
                    size_t n);
    /* All delivered (0), or an error. Called once; the callee may free the
     * reader right there (mkv_reader_free). */
    void (*on_end)(struct mkv_reader *r, void *data, int status);
};

/* Reads [off, off + len) of an object whose extent list is extents (copied)
 * and whose size is size. */
MKV_API int mkv_reader_new(struct mkv_client *c, struct mkv_slice extents, uint64_t size,
                           uint64_t off, uint64_t len, const struct mkv_reader_ops *ops, void *data,
                           struct mkv_reader **out);
MKV_API void mkv_reader_release(struct mkv_reader *r);
/* Stops early; no callback runs after this. Frees the reader. */
MKV_API void mkv_reader_abort(struct mkv_reader *r);
MKV_API void mkv_reader_free(struct mkv_reader *r);

/* ---- for single-threaded tools ---- */

/* The chunk server to use from a META_STATUS list (chunk_server_info
 * records): the first UP, else the first the answering member could not
 * judge (UNKNOWN), else the first. Returns 1 with its address in out, or
 * 0 when the list is empty. */
MKV_API int mkv_chunk_server_pick(struct mkv_slice list, char *out, size_t outlen);

/* Runs loop until *done is non-zero or timeout_ms passes (-ETIMEDOUT). */
MKV_API int mkv_run_until(uv_loop_t *loop, const int *done, uint64_t timeout_ms);
/* A blocking meta call for tools: on 0, *reply holds a referenced frame the
 * caller must unref. */
MKV_API int mkv_meta_call_sync(struct mkv_client *c, uint16_t type, const struct mkv_msgdesc *d,
                               const void *msg, struct mkv_frame **reply, char *err, size_t errlen);

#endif /* MKV_CLIENT_H */
