/* minikv client library: streaming writes (bytes -> new chunks) and reads
 * (extents -> bytes in order), pipelined with bounded windows.
 *
 * Writer: data is copied into frame-sized buffers laid out as a
 * chunk_write_req (32 bytes of fields, then the data blob), so a full frame
 * goes to the chunk server without another copy. Frame i covers bytes
 * [i*F, (i+1)*F) of the object, which fall in chunk i*F / MKV_CHUNK_SIZE at
 * offset i*F % MKV_CHUNK_SIZE; a chunk id is allocated when its first frame
 * is ready. At most write_window frames are queued or in flight.
 *
 * Reader: up to read_window CHUNK_READ requests are in flight or delivered
 * and not yet released; replies are delivered strictly in order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define WRITE_PREFIX 40 /* chunk_write_req fields before the data bytes */
#define STALE_RETRIES 5 /* resends of a frame refused for an older map */

enum { W_OPEN, W_FINISHING, W_DONE, W_FAILED };

struct wframe;

/* One copy of a frame on its way to one replica. */
struct wsend
{
    struct mkv_call call;
    struct wframe *f;
    unsigned idx; /* in f->rt */
};

struct wframe
{
    struct mkv_writer *w;
    struct mkv_outframe *of;
    uint64_t file_off;
    uint32_t len;
    struct wframe *next;
    /* Sent to every replica of its chunk's vshard: done once all answered,
     * written once rt.need of them have it durable. */
    struct mkv_route rt;
    unsigned nsent, nanswered, nok;
    int first_err;
    int stale;        /* a replica refused it: our map is older than its */
    unsigned retries; /* resends after such refusals */
    struct wsend sends[MKV_REPLICAS_MAX];
};

struct mkv_writer
{
    struct mkv_client *c;
    struct mkv_writer_ops ops;
    void *data;
    int state;
    int aborted;
    int need_ready;
    int status;
    uint64_t size;
    struct wframe *fill;
    struct wframe *pending_head, *pending_tail;
    unsigned npending;
    unsigned inflight;
    uint64_t *chunks; /* chunk id per chunk index, 0 while unallocated */
    size_t nchunks, cap_chunks;
    int id_wanted;
    int pumping; /* writer_pump is on the stack: callbacks must not re-enter it */
    int busy;    /* entry points on the stack: a free requested meanwhile waits */
    struct mkv_id_req idreq;
    int map_wanted; /* waiting for the client's first vshard map */
    struct mkv_map_wait mapwait;
    /* Replicas that missed a frame: reported (VSHARD_MARK) before
     * on_done, so that reads avoid them until they have caught up. */
    struct mkv_buf missed; /* vshard_mark records */
    int marking;
    struct mkv_meta_req markreq;
    /* The bucket's replication factor (mkv_writer_set_bucket), carried by
     * every chunk id: known before the first id is asked for. */
    char bucket[MKV_BUCKET_MAX + 1];
    unsigned copies;
    int copies_state; /* COPIES_* */
    int discarded;    /* its chunks were dropped (writer_discard) */
    struct mkv_meta_req bucketreq;
    /* Chunks of fewer copies than the cluster's factor: the replicas each
     * chunk's first piece went to (mkv_route_narrow), per chunk index. */
    struct chunk_targets *targets;
};

enum { COPIES_KNOWN, COPIES_WANTED, COPIES_ASKING };
#define BUCKET_TTL_MS 10000

struct chunk_targets
{
    unsigned n;
    uint64_t node[MKV_REPLICAS_MAX];
};

static void writer_pump(struct mkv_writer *w);
static void writer_ask_copies(struct mkv_writer *w);
static int writer_write(struct mkv_writer *w, const void *data, size_t len);
static int writer_finish(struct mkv_writer *w);

static void wframe_free(struct wframe *f)
{
    if (f->of) mkv_outframe_free(f->of);
    free(f);
}

int mkv_writer_new(struct mkv_client *c, const struct mkv_writer_ops *ops, void *data,
                   struct mkv_writer **out)
{
    struct mkv_writer *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->c = c;
    w->ops = *ops;
    w->data = data;
    w->state = W_OPEN;
    *out = w;
    c->inflight++;
    return 0;
}

uint64_t mkv_writer_size(const struct mkv_writer *w)
{
    return w->size;
}

static int writer_extents(struct mkv_writer *w, struct mkv_buf *b)
{
    for (size_t i = 0; i < w->nchunks; i++) {
        struct mkv_extent e = {0};
        e.file_off = (uint64_t)i * MKV_CHUNK_SIZE;
        e.len = MKV_MIN(MKV_CHUNK_SIZE, w->size - e.file_off);
        e.chunk_id = w->chunks[i];
        e.version = 1;
        if (mkv_msg_append(b, &mkv_desc_extent, &e)) return -ENOMEM;
    }
    return 0;
}

/* Drops what was written, once (CHUNK_DELETE, best effort: anything
 * missed is an orphan the chunk servers' collector removes). */
static void writer_discard(struct mkv_writer *w)
{
    struct mkv_buf b = MKV_BUF_INIT;
    if (w->discarded) return;
    w->discarded = 1;
    if (w->state == W_DONE || !w->nchunks) return;
    if (writer_extents(w, &b) == 0) mkv_client_discard_extents(w->c, mkv_slice_mem(b.p, b.len));
    mkv_buf_free(&b);
}

static void writer_release(struct mkv_writer *w)
{
    struct wframe *f;
    /* Failed on its own: what some replicas took is of no use. Sent now
     * that no write of it is on the wire. */
    if (w->state == W_FAILED && !w->c->closing) writer_discard(w);
    while ((f = w->pending_head)) {
        w->pending_head = f->next;
        wframe_free(f);
    }
    if (w->fill) wframe_free(w->fill);
    w->fill = NULL;
    w->c->inflight--;
    mkv_buf_free(&w->missed);
    free(w->chunks);
    free(w->targets);
    free(w);
}

/* Frees an aborted writer once nothing references it: no call on the wire,
 * no id request pending, and no writer function on the stack (callbacks
 * may free the writer; the function that called them must still be able to
 * return through it). */
static void writer_maybe_reap(struct mkv_writer *w)
{
    if (w->aborted && w->inflight == 0 && !w->id_wanted && !w->map_wanted && !w->marking &&
        w->copies_state != COPIES_ASKING && w->busy == 0)
        writer_release(w);
}

static void writer_enter(struct mkv_writer *w)
{
    w->busy++;
}

static void writer_leave(struct mkv_writer *w)
{
    w->busy--;
    writer_maybe_reap(w);
}

static void writer_fail(struct mkv_writer *w, int status)
{
    struct mkv_slice none = {NULL, 0};
    if (w->state == W_DONE || w->state == W_FAILED) return;
    w->state = W_FAILED;
    w->status = status;
    if (!w->aborted) w->ops.on_done(w, w->data, status, none);
}

static void writer_check_done(struct mkv_writer *w);

static void on_marked(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_writer *w = req->data;
    (void)reply;
    w->marking = 0;
    writer_enter(w);
    if (w->aborted) {
        /* reaped by writer_leave */
    } else if (status) {
        /* Nothing may say the copies are complete: fail rather than
         * acknowledge data that reads could miss. */
        MKV_WARN("client", "cannot report replicas that missed a write status=%d", status);
        writer_fail(w, status);
    } else {
        w->missed.len = 0;
        writer_check_done(w);
    }
    writer_leave(w);
}

static void writer_check_done(struct mkv_writer *w)
{
    struct mkv_buf b = MKV_BUF_INIT;
    int rv;
    if (w->state != W_FINISHING || w->inflight || w->npending || w->fill || w->marking) return;
    if (w->missed.len) {
        struct mkv_vshard_mark_req q;
        q.marks = mkv_slice_mem(w->missed.p, w->missed.len);
        w->marking = 1;
        w->markreq.data = w;
        if ((rv = mkv_meta_call(w->c, &w->markreq, MKV_MSG_VSHARD_MARK, &mkv_desc_vshard_mark_req,
                                &q, on_marked))) {
            w->marking = 0;
            writer_fail(w, rv);
        }
        return;
    }
    rv = writer_extents(w, &b);
    if (rv) {
        writer_fail(w, rv);
        mkv_buf_free(&b);
        return;
    }
    w->state = W_DONE;
    w->ops.on_done(w, w->data, 0, mkv_slice_mem(b.p, b.len));
    mkv_buf_free(&b);
}

/* Remembers that replica idx of f's route missed it. */
static void writer_missed(struct mkv_writer *w, struct wframe *f, unsigned idx)
{
    struct mkv_vshard_mark mk;
    struct mkv_slice cur;
    if (!f->rt.node[idx]) return; /* the configured chunk server: no map */
    mk.vshard = mkv_vshard_of(w->chunks[f->file_off / MKV_CHUNK_SIZE]);
    mk.node = f->rt.node[idx];
    cur = mkv_slice_mem(w->missed.p, w->missed.len);
    {
        struct mkv_vshard_mark o;
        while (mkv_msg_next(&mkv_desc_vshard_mark, &cur, &o) == 1)
            if (o.vshard == mk.vshard && o.node == mk.node) return;
    }
    if (mkv_msg_append(&w->missed, &mkv_desc_vshard_mark, &mk)) w->status = -ENOMEM;
}

static void writer_queue_front(struct mkv_writer *w, struct wframe *f);

static void on_frame_written(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct wsend *ws = MKV_CONTAINER_OF(call, struct wsend, call);
    struct wframe *f = ws->f;
    struct mkv_writer *w = f->w;
    (void)reply;
    f->nanswered++;
    if (status == 0) {
        f->nok++;
    } else if (status == MKV_ESTALE) {
        /* A fill has started on this vshard since our map: not a failed
         * replica, a map to reload. */
        f->stale = 1;
        if (!f->first_err) f->first_err = status;
    } else {
        MKV_DEBUG("client", "chunk write failed status=%d replica=%u", status, ws->idx);
        if (!f->first_err) f->first_err = status;
        mkv_client_map_stale(w->c);
        mkv_client_node_failed(w->c, f->rt.node[ws->idx]);
        if (!w->aborted) writer_missed(w, f, ws->idx);
    }
    if (f->nanswered < f->nsent) return;
    /* Every replica has answered. */
    w->inflight--;
    status = f->nok >= f->rt.need ? 0 : f->first_err ? f->first_err : -EIO;
    writer_enter(w);
    if (status && f->stale && f->retries < STALE_RETRIES && !w->aborted && w->state != W_FAILED) {
        /* Again, with the map the chunk servers know. */
        f->retries++;
        f->stale = 0;
        mkv_client_map_outdated(w->c);
        writer_queue_front(w, f);
        status = 0;
        f = NULL;
    }
    if (f) wframe_free(f);
    if (w->aborted) {
        /* nothing to do but let writer_leave reap it */
    } else if (status) {
        writer_fail(w, status);
    } else if (w->status == -ENOMEM) {
        writer_fail(w, -ENOMEM);
    } else {
        writer_pump(w);
        if (!w->aborted && w->state == W_OPEN && w->need_ready &&
            w->inflight + w->npending < w->c->write_window) {
            w->need_ready = 0;
            w->ops.on_ready(w, w->data);
        }
        if (!w->aborted) writer_check_done(w);
    }
    writer_leave(w);
}

static void on_map(struct mkv_map_wait *mw, int status)
{
    struct mkv_writer *w = MKV_CONTAINER_OF(mw, struct mkv_writer, mapwait);
    w->map_wanted = 0;
    writer_enter(w);
    if (w->aborted) {
        /* reaped by writer_leave */
    } else if (status) {
        writer_fail(w, status);
    } else {
        writer_pump(w);
        if (!w->aborted) writer_check_done(w);
    }
    writer_leave(w);
}

static void on_chunk_id(struct mkv_id_req *r, int status, uint64_t id)
{
    struct mkv_writer *w = MKV_CONTAINER_OF(r, struct mkv_writer, idreq);
    w->id_wanted = 0;
    writer_enter(w);
    if (w->aborted) {
        /* reaped by writer_leave */
    } else if (status) {
        writer_fail(w, status);
    } else {
        w->chunks[w->nchunks - 1] = mkv_chunk_with_copies(id, w->copies);
        writer_pump(w);
        if (!w->aborted) writer_check_done(w);
    }
    writer_leave(w);
}

/* ---- the bucket's replication factor ---- */

static struct bucket_copies *bcache_find(struct mkv_client *c, const char *name)
{
    for (unsigned i = 0; i < MKV_ARRAY_SIZE(c->bcache); i++)
        if (c->bcache[i].at_ms && uv_now(c->loop) + 1 - c->bcache[i].at_ms < BUCKET_TTL_MS &&
            !strcmp(c->bcache[i].name, name))
            return &c->bcache[i];
    return NULL;
}

static void bcache_put(struct mkv_client *c, const char *name, unsigned copies)
{
    struct bucket_copies *b = bcache_find(c, name);
    if (!b) {
        b = &c->bcache[c->bcache_next++ % MKV_ARRAY_SIZE(c->bcache)];
        snprintf(b->name, sizeof b->name, "%s", name);
    }
    b->copies = copies;
    b->at_ms = uv_now(c->loop) + 1;
}

static void on_bucket(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_writer *w = req->data;
    struct mkv_bucket_head_rep rep;
    w->copies_state = COPIES_WANTED;
    writer_enter(w);
    if (status == 0 && mkv_frame_decode(reply, &mkv_desc_bucket_head_rep, &rep)) status = -EPROTO;
    if (w->aborted) {
        /* reaped by writer_leave */
    } else if (status) {
        writer_fail(w, status);
    } else {
        bcache_put(w->c, w->bucket, rep.replicas);
        w->copies = rep.replicas;
        w->copies_state = COPIES_KNOWN;
        writer_pump(w);
        if (!w->aborted) writer_check_done(w);
    }
    writer_leave(w);
}

/* Looks the bucket's factor up (BUCKET_HEAD) unless the client knows it. */
static void writer_ask_copies(struct mkv_writer *w)
{
    struct mkv_bucket_head_req q = {mkv_slice_str(w->bucket)};
    struct bucket_copies *b = bcache_find(w->c, w->bucket);
    int rv;
    if (b) {
        w->copies = b->copies;
        w->copies_state = COPIES_KNOWN;
        writer_pump(w);
        return;
    }
    w->copies_state = COPIES_ASKING;
    w->bucketreq.data = w;
    if ((rv = mkv_meta_call(w->c, &w->bucketreq, MKV_MSG_BUCKET_HEAD, &mkv_desc_bucket_head_req, &q,
                            on_bucket))) {
        w->copies_state = COPIES_WANTED;
        writer_fail(w, rv);
    }
}

int mkv_writer_set_bucket(struct mkv_writer *w, const char *bucket)
{
    if (w->nchunks || w->pending_head || w->state != W_OPEN) return -EBUSY;
    if (!bucket || !*bucket) {
        w->copies_state = COPIES_KNOWN;
        w->copies = 0;
        return 0;
    }
    if (strlen(bucket) > MKV_BUCKET_MAX) return -EINVAL;
    snprintf(w->bucket, sizeof w->bucket, "%s", bucket);
    w->copies_state = COPIES_WANTED;
    return 0;
}

/* Makes sure chunk index idx has (or is getting) an id. Returns 1 when the
 * id is known. */
static int writer_chunk_ready(struct mkv_writer *w, size_t idx)
{
    if (idx < w->nchunks) return w->chunks[idx] != 0;
    if (w->id_wanted) return 0;
    if (idx >= w->cap_chunks) {
        size_t cap = w->cap_chunks ? w->cap_chunks * 2 : 4;
        uint64_t *p = realloc(w->chunks, cap * sizeof *p);
        struct chunk_targets *t;
        if (p) w->chunks = p;
        t = p ? realloc(w->targets, cap * sizeof *t) : NULL;
        if (!t) {
            writer_fail(w, -ENOMEM);
            return 0;
        }
        w->targets = t;
        w->cap_chunks = cap;
    }
    w->targets[w->nchunks].n = 0;
    w->chunks[w->nchunks++] = 0;
    w->id_wanted = 1;
    if (mkv_client_alloc_chunk(w->c, &w->idreq, on_chunk_id)) {
        w->id_wanted = 0;
        writer_fail(w, -ECANCELED);
    }
    return idx < w->nchunks && w->chunks[idx] != 0;
}

/* Sends pending frames while the window has room. A chunk id may arrive
 * synchronously from the pool inside writer_chunk_ready (its callback calls
 * writer_pump again): the guard makes that inner call return at once, and
 * this loop re-reads the queue head every time round. */
static void writer_pump(struct mkv_writer *w)
{
    struct wframe *f;
    if (w->pumping) return;
    if (w->copies_state != COPIES_KNOWN) {
        if (w->copies_state == COPIES_WANTED && w->pending_head) writer_ask_copies(w);
        return;
    }
    w->pumping = 1;
    while (!w->aborted && w->state != W_FAILED && (f = w->pending_head) &&
           w->inflight < w->c->write_window) {
        size_t idx = (size_t)(f->file_off / MKV_CHUNK_SIZE);
        uint8_t *p;
        unsigned n;
        int rv;
        if (!writer_chunk_ready(w, idx)) break;
        if (f != w->pending_head) continue;
        if (w->map_wanted) break;
        w->map_wanted = 1;
        w->mapwait.cb = on_map;
        rv = mkv_client_route(w->c, w->chunks[idx], &f->rt, &w->mapwait);
        /* 1: a map is on its way (or its failure already came: on_map has
         * run, cleared map_wanted, and failed the writer). */
        if (rv == 1) break;
        w->map_wanted = 0;
        if (rv) {
            writer_fail(w, rv);
            break;
        }
        /* (unchanged unless the chunk has fewer copies than replicas) */
        if ((rv = mkv_route_narrow(w->c, &f->rt, w->chunks[idx], w->targets[idx].node,
                                   &w->targets[idx].n))) {
            writer_fail(w, rv);
            break;
        }
        w->pending_head = f->next;
        if (!w->pending_head) w->pending_tail = NULL;
        w->npending--;
        p = mkv_outframe_payload(f->of);
        mkv_put_le64(p, w->chunks[idx]);
        mkv_put_le32(p + 8, 1);  /* version */
        mkv_put_le32(p + 12, 0); /* base_version */
        mkv_put_le64(p + 16, f->file_off % MKV_CHUNK_SIZE);
        mkv_put_le32(p + 24, MKV_CHUNK_SYNC);
        mkv_put_le64(p + 28, f->rt.epoch);
        mkv_put_le32(p + 36, f->len);
        w->inflight++;
        /* One copy per replica; the frame keeps its own until every
         * replica has answered, to send it again should they refuse it
         * for an older map. A send that fails at once is answered at
         * once, as the replica would have been: the frame may then
         * complete (and be freed, or queued again), so the loop keeps n
         * and reads nothing of f after the last send. */
        n = f->nsent = f->rt.n;
        f->nanswered = f->nok = 0;
        f->first_err = 0;
        for (unsigned i = 0; i < n; i++) {
            struct mkv_outframe *of = mkv_outframe_new(WRITE_PREFIX + f->len);
            if (of) memcpy(mkv_outframe_payload(of), p, WRITE_PREFIX + f->len);
            f->sends[i].f = f;
            f->sends[i].idx = i;
            rv = of ? mkv_peer_call_frame(f->rt.peer[i], &f->sends[i].call, MKV_MSG_CHUNK_WRITE, of,
                                          WRITE_PREFIX + f->len, 0, 0, on_frame_written)
                    : -ENOMEM;
            if (rv) on_frame_written(&f->sends[i].call, rv, NULL);
        }
    }
    w->pumping = 0;
}

/* Puts f back at the head of the queue (sent again after a refusal). */
static void writer_queue_front(struct mkv_writer *w, struct wframe *f)
{
    f->next = w->pending_head;
    w->pending_head = f;
    if (!w->pending_tail) w->pending_tail = f;
    w->npending++;
}

static void writer_queue(struct mkv_writer *w, struct wframe *f)
{
    f->next = NULL;
    if (w->pending_tail) w->pending_tail->next = f;
    else w->pending_head = f;
    w->pending_tail = f;
    w->npending++;
}

int mkv_writer_write(struct mkv_writer *w, const void *data, size_t len)
{
    int rv;
    writer_enter(w);
    rv = writer_write(w, data, len);
    writer_leave(w);
    return rv;
}

static int writer_write(struct mkv_writer *w, const void *data, size_t len)
{
    const uint8_t *src = data;
    uint32_t fb = w->c->frame_bytes;
    if (w->state == W_FAILED) return w->status;
    if (w->state != W_OPEN) return -EINVAL;
    while (len > 0) {
        size_t take;
        if (!w->fill) {
            struct wframe *f = calloc(1, sizeof *f);
            if (!f || !(f->of = mkv_outframe_new(WRITE_PREFIX + fb))) {
                free(f);
                writer_fail(w, -ENOMEM);
                return -ENOMEM;
            }
            f->w = w;
            f->file_off = w->size;
            w->fill = f;
        }
        take = MKV_MIN(len, (size_t)(fb - w->fill->len));
        memcpy(mkv_outframe_payload(w->fill->of) + WRITE_PREFIX + w->fill->len, src, take);
        w->fill->len += (uint32_t)take;
        w->size += take;
        src += take;
        len -= take;
        if (w->fill->len == fb) {
            writer_queue(w, w->fill);
            w->fill = NULL;
        }
    }
    writer_pump(w);
    if (w->state == W_FAILED) return w->status;
    if (w->inflight + w->npending >= w->c->write_window) {
        w->need_ready = 1;
        return 1;
    }
    return 0;
}

int mkv_writer_finish(struct mkv_writer *w)
{
    int rv;
    writer_enter(w);
    rv = writer_finish(w);
    writer_leave(w);
    return rv;
}

static int writer_finish(struct mkv_writer *w)
{
    if (w->state == W_FAILED) return w->status;
    if (w->state != W_OPEN) return -EINVAL;
    if (w->fill) {
        if (w->fill->len) writer_queue(w, w->fill);
        else wframe_free(w->fill);
        w->fill = NULL;
    }
    w->state = W_FINISHING;
    writer_pump(w);
    if (!w->aborted) writer_check_done(w);
    return 0;
}

void mkv_writer_abort(struct mkv_writer *w)
{
    w->aborted = 1;
    writer_discard(w);
    w->state = W_FAILED;
    writer_maybe_reap(w);
}

void mkv_writer_free(struct mkv_writer *w)
{
    w->aborted = 1;
    writer_maybe_reap(w);
}

/* ---- reader ---- */

static const uint8_t zeros[1u << 20];

struct rpiece
{
    struct mkv_call call;
    struct mkv_reader *r;
    uint64_t chunk_id, offset;
    /* The replicas to try, in order, and the request to send them. */
    struct mkv_route rt;
    unsigned order[MKV_REPLICAS_MAX], norder, tries;
    int remapped; /* every replica failed once: tried again with a fresh map */
    struct mkv_map_wait mw;
    struct mkv_chunk_read_req q;
    struct mkv_frame *frame;
    const uint8_t *p;
    size_t n;
    int done;
    int status;
    int zero;
    struct rpiece *next;
};

struct mkv_reader
{
    struct mkv_client *c;
    struct mkv_reader_ops ops;
    void *data;
    struct mkv_extent *ext;
    size_t next_ext, n_ext;
    uint64_t pos, end;
    struct rpiece *head, *tail;
    unsigned queued;     /* pieces requested and not yet delivered */
    unsigned unreleased; /* delivered, not yet released */
    unsigned inflight;   /* calls on the wire */
    int delivering;
    int ended;
    int aborted;
    int busy;       /* entry points on the stack: a free requested meanwhile waits */
    int map_wanted; /* waiting for the client's first vshard map */
    struct mkv_map_wait mapwait;
};

static void reader_request(struct mkv_reader *r);
static void reader_release_all(struct mkv_reader *r);

/* Frees an aborted reader once no call is on the wire and no reader
 * function is on the stack (on_end may free the reader from inside). */
static void reader_maybe_reap(struct mkv_reader *r)
{
    if (!r->aborted || r->inflight || r->busy || r->map_wanted) return;
    reader_release_all(r);
    r->c->inflight--;
    free(r->ext);
    free(r);
}

int mkv_reader_new(struct mkv_client *c, struct mkv_slice extents, uint64_t size, uint64_t off,
                   uint64_t len, const struct mkv_reader_ops *ops, void *data,
                   struct mkv_reader **out)
{
    struct mkv_reader *r;
    struct mkv_slice cur = extents;
    struct mkv_extent e;
    size_t n = 0, cap = 0;
    int rv;
    if (off > size || len > size - off) return -EINVAL;
    r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1) {
        if (n == cap) {
            struct mkv_extent *p;
            cap = cap ? cap * 2 : 8;
            p = realloc(r->ext, cap * sizeof *p);
            if (!p) {
                rv = -ENOMEM;
                break;
            }
            r->ext = p;
        }
        if (n && e.file_off < r->ext[n - 1].file_off + r->ext[n - 1].len) {
            rv = -EPROTO; /* overlapping or unsorted: refuse rather than guess */
            break;
        }
        r->ext[n++] = e;
    }
    if (rv < 0) {
        free(r->ext);
        free(r);
        return rv;
    }
    r->n_ext = n;
    r->c = c;
    r->ops = *ops;
    r->data = data;
    r->pos = off;
    r->end = off + len;
    c->inflight++;
    *out = r;
    r->busy++;
    reader_request(r);
    r->busy--;
    reader_maybe_reap(r);
    return 0;
}

static void reader_release_all(struct mkv_reader *r)
{
    struct rpiece *p;
    while ((p = r->head)) {
        r->head = p->next;
        if (p->frame) mkv_frame_unref(p->frame);
        if (!p->done) {
            p->r = NULL; /* its call completes later and frees it */
            continue;
        }
        free(p);
    }
    r->tail = NULL;
}

static void reader_end(struct mkv_reader *r, int status)
{
    if (r->ended) return;
    r->ended = 1;
    if (!r->aborted) r->ops.on_end(r, r->data, status);
}

static void reader_deliver(struct mkv_reader *r)
{
    struct rpiece *p;
    if (r->delivering) return;
    r->delivering = 1;
    r->busy++;
    while (!r->ended && !r->aborted && (p = r->head) && p->done) {
        r->head = p->next;
        if (!r->head) r->tail = NULL;
        r->queued--;
        if (p->status) {
            int st = p->status;
            free(p);
            reader_end(r, st);
            break;
        }
        r->unreleased++;
        r->ops.on_data(r, r->data, p->frame, p->p, p->n);
        if (p->frame) mkv_frame_unref(p->frame);
        free(p);
    }
    r->delivering = 0;
    if (!r->ended && !r->aborted && !r->head && r->pos == r->end && r->unreleased == 0)
        reader_end(r, 0);
    r->busy--;
}

static int piece_send(struct mkv_reader *r, struct rpiece *p);
static int piece_remap(struct mkv_reader *r, struct rpiece *p);

static void on_piece(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct rpiece *p = MKV_CONTAINER_OF(call, struct rpiece, call);
    struct mkv_reader *r = p->r;
    struct mkv_chunk_read_rep rep;
    if (!r) { /* the reader was aborted */
        free(p);
        return;
    }
    r->busy++;
    r->inflight--;
    if (status == 0 &&
        (mkv_frame_decode(reply, &mkv_desc_chunk_read_rep, &rep) || rep.data.len != p->n))
        status = -EIO;
    if (status) {
        unsigned i = p->order[p->tries];
        MKV_DEBUG("client", "chunk read failed chunk=%llx offset=%llu length=%zu status=%d",
                  (unsigned long long)p->chunk_id, (unsigned long long)p->offset, p->n, status);
        /* A chunk of fewer copies than replicas is missing from some of
         * them by design: no reason to doubt the map. */
        if (status != -ENOENT || !mkv_chunk_reduced(p->chunk_id, p->rt.replicas))
            mkv_client_map_stale(r->c);
        /* A replica whose copy fails its checksum goes back to filling. */
        if (status == MKV_ECHECKSUM && p->rt.node[i])
            mkv_client_mark_missed(r->c, mkv_vshard_of(p->chunk_id), p->rt.node[i]);
        /* The next replica, if any; when none is left, once more with a
         * fresh map (ours may predate the replica that has the data). */
        if (!r->aborted && ++p->tries < p->norder && piece_send(r, p) == 0) {
            r->busy--;
            return;
        }
        if (!r->aborted && !p->remapped && piece_remap(r, p) == 0) {
            r->busy--;
            return;
        }
        p->status = status;
    } else {
        mkv_frame_ref(reply);
        p->frame = reply;
        p->p = rep.data.p;
    }
    p->done = 1;
    if (!r->aborted) reader_deliver(r);
    r->busy--;
    reader_maybe_reap(r);
}

/* Sends p's request to its next replica; 0 or a negative code. */
static int piece_send(struct mkv_reader *r, struct rpiece *p)
{
    while (p->tries < p->norder) {
        r->inflight++;
        if (mkv_peer_call(p->rt.peer[p->order[p->tries]], &p->call, MKV_MSG_CHUNK_READ,
                          &mkv_desc_chunk_read_req, &p->q, 0, on_piece) == 0)
            return 0;
        r->inflight--;
        p->tries++;
    }
    return -ENOTCONN;
}

static void on_piece_map(struct mkv_map_wait *mw, int status)
{
    struct rpiece *p = MKV_CONTAINER_OF(mw, struct rpiece, mw);
    struct mkv_reader *r = p->r;
    if (!r) { /* the reader was aborted */
        free(p);
        return;
    }
    r->busy++;
    r->inflight--;
    if (status == 0) status = mkv_client_route(r->c, p->chunk_id, &p->rt, NULL);
    if (status == 0) {
        p->norder = mkv_route_read_order(&p->rt, p->chunk_id, p->order);
        p->tries = 0;
        status = piece_send(r, p);
    }
    if (status) {
        p->done = 1;
        p->status = status;
        if (!r->aborted) reader_deliver(r);
    }
    r->busy--;
    reader_maybe_reap(r);
}

/* Waits for a fresh map, then tries p's replicas again. 0: waiting. */
static int piece_remap(struct mkv_reader *r, struct rpiece *p)
{
    int rv;
    p->remapped = 1;
    mkv_client_map_outdated(r->c);
    p->mw.cb = on_piece_map;
    r->inflight++;
    rv = mkv_client_route(r->c, p->chunk_id, &p->rt, &p->mw);
    if (rv == 1) return 0; /* on_piece_map (perhaps already run) goes on */
    r->inflight--;
    if (rv) return rv;
    p->norder = mkv_route_read_order(&p->rt, p->chunk_id, p->order);
    p->tries = 0;
    return piece_send(r, p);
}

static void on_reader_map(struct mkv_map_wait *mw, int status)
{
    struct mkv_reader *r = MKV_CONTAINER_OF(mw, struct mkv_reader, mapwait);
    r->map_wanted = 0;
    r->busy++;
    if (status) reader_end(r, status);
    else if (!r->aborted) reader_request(r);
    r->busy--;
    reader_maybe_reap(r);
}

/* A piece read from a chunk store in this process, when it is in memory
 * (mkv_client_opts.local_chunk_read). Returns 1 when p is done. */
static int piece_local(struct mkv_reader *r, struct rpiece *p, uint32_t version)
{
    struct mkv_client *c = r->c;
    struct mkv_frame *f;
    uint8_t *buf;
    if (!c->local_chunk_read || !(buf = malloc(p->n))) return 0;
    if (c->local_chunk_read(c->local_chunk_ctx, p->chunk_id, version, p->offset, buf, p->n)) {
        free(buf);
        return 0;
    }
    f = mkv_frame_new(MKV_MSG_CHUNK_READ, MKV_FRAME_REPLY, 0, buf, p->n);
    if (!f) return 0;
    p->frame = f;
    p->p = f->payload;
    p->done = 1;
    return 1;
}

static void reader_request(struct mkv_reader *r)
{
    uint32_t fb = r->c->frame_bytes;
    if (r->map_wanted) return;
    while (!r->ended && r->pos < r->end && r->queued + r->unreleased < r->c->read_window) {
        struct rpiece *p = calloc(1, sizeof *p);
        struct mkv_extent *e;
        uint64_t n;
        if (!p) {
            reader_end(r, -ENOMEM);
            return;
        }
        p->r = r;
        while (r->next_ext < r->n_ext &&
               r->ext[r->next_ext].file_off + r->ext[r->next_ext].len <= r->pos)
            r->next_ext++;
        e = r->next_ext < r->n_ext ? &r->ext[r->next_ext] : NULL;
        if (!e || e->file_off > r->pos) {
            /* A hole up to the next extent (or the end): zeros. */
            uint64_t stop = e ? MKV_MIN(e->file_off, r->end) : r->end;
            n = MKV_MIN(stop - r->pos, (uint64_t)sizeof zeros);
            p->zero = 1;
            p->done = 1;
            p->p = zeros;
            p->n = (size_t)n;
        } else {
            struct mkv_chunk_read_req q = {0};
            uint64_t in_ext = r->pos - e->file_off;
            n = MKV_MIN(MKV_MIN((uint64_t)fb, e->len - in_ext), r->end - r->pos);
            q.chunk_id = e->chunk_id;
            q.version = e->version;
            q.offset = e->chunk_off + in_ext;
            q.length = (uint32_t)n;
            p->n = (size_t)n;
            p->chunk_id = q.chunk_id;
            p->offset = q.offset;
            p->q = q;
            if (!piece_local(r, p, q.version)) {
                int rv;
                /* The first vshard map first: nothing is asked before it. */
                r->map_wanted = 1;
                r->mapwait.cb = on_reader_map;
                rv = mkv_client_route(r->c, e->chunk_id, &p->rt, &r->mapwait);
                if (rv == 1) {
                    free(p);
                    return; /* on_reader_map (perhaps already run) goes on */
                }
                r->map_wanted = 0;
                if (rv == 0) {
                    p->norder = mkv_route_read_order(&p->rt, e->chunk_id, p->order);
                    rv = piece_send(r, p);
                }
                if (rv) {
                    p->done = 1;
                    p->status = rv;
                }
            }
        }
        r->pos += n;
        if (r->tail) r->tail->next = p;
        else r->head = p;
        r->tail = p;
        r->queued++;
    }
    reader_deliver(r);
}

void mkv_reader_release(struct mkv_reader *r)
{
    if (r->unreleased) r->unreleased--;
    if (r->aborted) return;
    r->busy++;
    reader_request(r); /* ends the reader when this was the last piece */
    r->busy--;
    reader_maybe_reap(r);
}

void mkv_reader_abort(struct mkv_reader *r)
{
    r->aborted = 1;
    reader_maybe_reap(r);
}

void mkv_reader_free(struct mkv_reader *r)
{
    mkv_reader_abort(r);
}
