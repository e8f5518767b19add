/* minikv FUSE client: file content (client thread).
 *
 * Open loads the committed content (INO_GETATTR: extents or inline bytes):
 * close-to-open, what another mount or S3 committed before this open is
 * what this handle reads. Writes land in the inode's buffer of dirty
 * ranges; a write-back round takes the buffer, streams its ranges back to
 * back into new chunks (the client library's writer: durable when it
 * reports), then commits them with one INO_WRITE that splices them over
 * the ranges they cover. Small files are committed inline instead. Flush
 * (each close) and fsync wait for a round that includes every write made
 * before them; a round also starts when the buffer passes dirty_max.
 * Reads overlay the buffer (and the round in flight) on the committed
 * content, so this mount reads its own writes. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define EMPTY_ETAG "\"d41d8cd98f00b204e9800998ecf8427e\""

/* A request waiting for a write-back round (flush, fsync, a write over
 * the buffer's limit, a truncation). */
struct fs_waiter
{
    struct fop *op;
    uint64_t round;
    void (*cb)(struct fop *op, int status);
    struct fs_waiter *next;
};

/* ---- the dirty buffer ---- */

static void dirty_free_list(struct dirty *d)
{
    while (d) {
        struct dirty *next = d->next;
        free(d->p);
        free(d);
        d = next;
    }
}

void fino_dirty_drop(struct fino *fi)
{
    dirty_free_list(fi->dirty);
    fi->dirty = NULL;
    fi->dirty_bytes = 0;
}

void fino_release_state(struct fino *fi)
{
    fino_names_drop(fi);
    fino_dirty_drop(fi);
    dirty_free_list(fi->wb_list);
    fi->wb_list = NULL;
    free(fi->content);
    fi->content = NULL;
    fi->loaded = 0;
    fi->extents = fi->data = mkv_slice_mem("", 0);
    if (fi->md5) EVP_MD_CTX_free(fi->md5);
    fi->md5 = NULL;
}

/* Grows d's buffer to hold at least need bytes (doubling). */
static int dirty_reserve(struct dirty *d, size_t need)
{
    size_t cap = d->cap ? d->cap : 65536;
    uint8_t *p;
    if (need <= d->cap) return 0;
    while (cap < need) cap *= 2;
    if (!(p = realloc(d->p, cap))) return -ENOMEM;
    d->p = p;
    d->cap = cap;
    return 0;
}

/* Puts data at [off, off + len) into a sorted list of non-overlapping
 * ranges: ranges that overlap or touch it become one, the new bytes
 * winning. Rewriting inside a range, or appending at its end, is done in
 * place. *bytes follows the buffered total. */
static int dirty_insert(struct dirty **head, uint64_t *bytes, uint64_t off, const uint8_t *data,
                        size_t len)
{
    struct dirty **pp = head, *d, *end, *nd, *next;
    uint64_t lo = off, hi = off + len;
    size_t n;
    uint8_t *p;
    while (*pp && (*pp)->off + (*pp)->len < lo) pp = &(*pp)->next;
    d = *pp;
    for (end = d; end && end->off <= hi; end = end->next) {
        if (end->off < lo) lo = end->off;
        if (end->off + end->len > hi) hi = end->off + end->len;
    }
    n = (size_t)(hi - lo);
    if (d && d->next == end && d->off == lo) {
        /* One range, starting where the union starts: in place. */
        if (dirty_reserve(d, n)) return -ENOMEM;
        memcpy(d->p + (off - lo), data, len);
        *bytes += n - d->len;
        d->len = n;
        return 0;
    }
    if (!(nd = calloc(1, sizeof *nd)) || !(p = malloc(n ? n : 1))) {
        free(nd);
        return -ENOMEM;
    }
    for (struct dirty *x = d; x != end; x = x->next) memcpy(p + (x->off - lo), x->p, x->len);
    memcpy(p + (off - lo), data, len);
    for (struct dirty *x = d; x != end; x = next) {
        next = x->next;
        *bytes -= x->len;
        free(x->p);
        free(x);
    }
    nd->off = lo;
    nd->len = nd->cap = n;
    nd->p = p;
    nd->next = end;
    *pp = nd;
    *bytes += n;
    return 0;
}

static int dirty_put(struct fino *fi, uint64_t off, const uint8_t *data, size_t len)
{
    return dirty_insert(&fi->dirty, &fi->dirty_bytes, off, data, len);
}

/* Puts base[0, n) at off under the ranges of list (they win). */
static int dirty_under_at(struct dirty **list, uint64_t off, const uint8_t *base, size_t n)
{
    uint64_t pos = off, end = off + n, junk = 0, (*gaps)[2] = NULL;
    size_t ng = 0, cap = 0;
    int rv = 0;
    /* The gaps first: inserting merges ranges under our feet. */
    for (struct dirty *d = *list; pos < end; d = d ? d->next : NULL) {
        uint64_t lo = pos, hi = d ? MKV_MIN(end, d->off) : end;
        if (d && d->off + d->len <= pos) continue;
        if (hi > lo) {
            if (ng == cap) {
                void *g = realloc(gaps, (cap = cap ? 2 * cap : 16) * sizeof *gaps);
                if (!g) {
                    free(gaps);
                    return -ENOMEM;
                }
                gaps = g;
            }
            gaps[ng][0] = lo;
            gaps[ng++][1] = hi;
        }
        if (!d) break;
        pos = MKV_MAX(pos, d->off + d->len);
    }
    for (size_t i = 0; i < ng && !rv; i++)
        rv = dirty_insert(list, &junk, gaps[i][0], base + (gaps[i][0] - off),
                          (size_t)(gaps[i][1] - gaps[i][0]));
    free(gaps);
    return rv;
}

void fino_truncated(struct fino *fi, uint64_t size)
{
    struct dirty **pp = &fi->dirty, *d;
    while ((d = *pp)) {
        if (d->off >= size) {
            *pp = d->next;
            fi->dirty_bytes -= d->len;
            free(d->p);
            free(d);
            continue;
        }
        if (d->off + d->len > size) {
            fi->dirty_bytes -= d->len - (size - d->off);
            d->len = (size_t)(size - d->off);
        }
        pp = &d->next;
    }
    fi->size = size;
    if (fi->content_size > size) fi->content_size = size;
    if (size == 0) {
        /* Whatever was there is gone: a fresh start for inlining and the
         * ETag. */
        fi->whole = 1;
        fi->extents = fi->data = mkv_slice_mem("", 0);
        fi->content_size = 0;
        if (fi->md5_busy) {
            fi->md5_valid = 0; /* the worker has it: no fresh start this time */
        } else if (fi->md5 && EVP_DigestInit_ex(fi->md5, EVP_md5(), NULL) == 1) {
            fi->md5_valid = 1;
            fi->md5_off = fi->md5_done = 0;
        }
    } else if (fi->md5_off > size) {
        fi->md5_valid = 0;
    }
    if (fi->data.len > size) fi->data.len = (uint32_t)size;
    fi->size_dirty = fi->dirty != NULL;
}

void fs_open_inos(struct fs *fs, struct mkv_buf *out)
{
    unsigned n = 0;
    for (struct fino *fi = fs->open_files; fi && n < MKV_KEEP_MAX; fi = fi->onext)
        if (fi->attr.type == MKV_T_FILE) {
            mkv_buf_put_le64(out, fi->ino);
            n++;
        }
}

/* ---- committed content ---- */

/* Takes the content of a full inode reply as the committed content. */
static int content_set(struct fino *fi, const struct mkv_obj_info *oi)
{
    size_t n = (size_t)oi->extents.len + oi->data.len;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return -ENOMEM;
    if (oi->extents.len) memcpy(p, oi->extents.p, oi->extents.len);
    if (oi->data.len) memcpy(p + oi->extents.len, oi->data.p, oi->data.len);
    free(fi->content);
    fi->content = p;
    fi->loaded = 1;
    fi->extents = mkv_slice_mem(p, oi->extents.len);
    fi->data = mkv_slice_mem(p + oi->extents.len, oi->data.len);
    fi->generation = oi->generation;
    fi->content_size = oi->size;
    fi->stored = oi->data.len;
    {
        struct mkv_slice cur = oi->extents;
        struct mkv_extent e;
        while (mkv_msg_next(&mkv_desc_extent, &cur, &e) == 1) fi->stored += e.len;
    }
    return 0;
}

static void content_forget(struct fino *fi)
{
    free(fi->content);
    fi->content = NULL;
    fi->loaded = 0;
    fi->generation = 0;
    fi->extents = fi->data = mkv_slice_mem("", 0);
}

/* The last descriptor closed and nothing left to write: the content goes
 * (the next open loads it again, as close-to-open needs anyway); its
 * generation stays, for keep_cache. */
static void content_drop(struct fino *fi)
{
    if (fi->opens || fi->dirty || fi->writing || fi->wb_list || fi->size_dirty || !fi->content)
        return;
    free(fi->content);
    fi->content = NULL;
    fi->loaded = 0;
    fi->extents = fi->data = mkv_slice_mem("", 0);
}

/* ---- write-back rounds ---- */

struct wb
{
    struct fs *fs;
    struct fino *fi;
    struct mkv_writer *w;
    struct dirty *list; /* what this round writes (fi->wb_list) */
    struct dirty *cur;  /* next range to hand the writer */
    size_t cur_off;
    uint64_t *stream; /* stream offset of each range */
    size_t nranges;
    uint64_t size;
    uint32_t flags;
    char etag[MKV_ETAG_MAX + 1];
    struct mkv_buf extents; /* file extents for INO_WRITE */
    struct mkv_buf inl;     /* inline content */
    struct mkv_buf written; /* the writer's extents (stream offsets), to commit */
    struct mkv_meta_req m;
    uint64_t round;
    size_t ext_pos; /* extents before this are committed (earlier commands) */
    int committed;  /* an INO_WRITE of this round was applied */
    /* The MD5 of the bytes written in order since the last round, hashed
     * on a worker thread while the round's data goes to the chunk server
     * (wb_hash): the commit and the end of the round wait for it. */
    uv_work_t hash_work;
    struct hash_piece
    {
        const uint8_t *p;
        size_t len;
    } * hash;
    size_t hash_n;
    int hashing, hash_ok, etag_due, commit_due, finish_due, finish_status;
    int feeding;      /* wb_feed is on the stack */
    int failed;       /* the writer failed inside wb_feed: its status */
    int stored;       /* the writer finished inside wb_feed: commit next */
    unsigned retries; /* writers started again after a chunk server failed */
};

/* A round whose data could not be stored is written again (a new writer,
 * new chunks) this many times when a chunk server failed it: the next
 * writer passes a server that failed over where the bucket's factor
 * leaves a choice (lib/route.c). */
#define WB_RETRIES 2

/* Extents per INO_WRITE: the request's extent field holds 4,096; a round
 * with more (scattered small writes) commits in several commands, in file
 * order. Only the last one carries the ETag. */
#define WB_EXTENTS_PER_CMD 4096u

static void wb_start(struct fs *fs, struct fino *fi);

static void waiters_run(struct fs *fs, struct fino *fi, int status)
{
    struct fs_waiter **pp = &fi->waiters, *w;
    while ((w = *pp)) {
        if (w->round <= fi->wb_done) {
            *pp = w->next;
            w->cb(w->op, status);
            free(w);
        } else {
            pp = &w->next;
        }
    }
    (void)fs;
}

static void wb_finish(struct wb *wb, int status)
{
    struct fs *fs = wb->fs;
    struct fino *fi = wb->fi;
    if (wb->hashing) { /* the worker still reads the round's buffers */
        wb->finish_due = 1;
        wb->finish_status = status;
        return;
    }
    free(wb->hash);
    if (status) {
        MKV_WARN("fs", "write-back failed ino=%llu err=\"%s\"", (unsigned long long)fi->ino,
                 mkv_strerror(status));
        fi->wb_error = status;
        /* The round is lost. What was buffered after it would land past a
         * gap of zeros where the round's bytes should be, and the size it
         * set would cover that gap: the file falls back to what the
         * cluster holds (what the last successful fsync or close left),
         * so that what is stored stays a prefix of what was written. The
         * writer learns of it at its next fsync or close (EIO). */
        fino_dirty_drop(fi);
        fi->size = fi->attr.size;
        fi->md5_valid = 0;
    }
    dirty_free_list(fi->wb_list);
    fi->wb_list = NULL;
    fi->writing = 0;
    fi->wb_done = wb->round;
    if (!fi->dirty && fi->size == fi->attr.size) fi->size_dirty = 0;
    mkv_buf_free(&wb->extents);
    mkv_buf_free(&wb->inl);
    mkv_buf_free(&wb->written);
    free(wb->stream);
    free(wb);
    waiters_run(fs, fi, status);
    /* More waiting (writes came during the round) or too much buffered. */
    if (fi->waiters || fi->dirty_bytes >= fs->o.dirty_max) {
        wb_start(fs, fi);
    } else {
        content_drop(fi);
        if (!fi->opens && fi->etag_gen) fs_etag_start(fs, fi); /* written after the last close */
        fino_maybe_free(fs, fi);
    }
}

static void wb_commit(struct wb *wb);

static void on_ino_write(struct mkv_meta_req *m, int status, struct mkv_frame *reply)
{
    struct wb *wb = m->data;
    struct fino *fi = wb->fi;
    struct mkv_obj_info oi;
    struct mkv_slice written =
        mkv_slice_mem(wb->written.p ? wb->written.p : (const uint8_t *)"", wb->written.len);
    if (status == 0 && reply && mkv_frame_decode(reply, &mkv_desc_obj_info, &oi) == 0) {
        wb->committed = 1;
        fino_set_attr(wb->fs, fi, &oi);
        if (content_set(fi, &oi)) {
            /* Committed, but this mount cannot hold the new content: what
             * it has is stale, so the file must be opened again. */
            content_forget(fi);
            if (written.len) mkv_client_commit_extents(wb->fs->client, written);
            wb_finish(wb, -ENOMEM);
            return;
        }
        if (wb->ext_pos < wb->extents.len) {
            wb_commit(wb); /* the next part of a large round */
            return;
        }
        if (written.len) mkv_client_commit_extents(wb->fs->client, written);
        fi->whole = 0;
        /* No ETag sent (written out of order): one is computed at close. */
        fi->etag_gen = wb->etag[0] ? 0 : oi.generation;
        wb_finish(wb, 0);
        return;
    }
    /* Chunks an applied command points into stay (what no command took is
     * reclaimed with them later); otherwise they go now. */
    if (written.len && wb->committed) mkv_client_commit_extents(wb->fs->client, written);
    else if (written.len) mkv_client_discard_extents(wb->fs->client, written);
    wb_finish(wb, status ? status : -EIO);
}

/* Sends the next INO_WRITE of the round: up to WB_EXTENTS_PER_CMD extents
 * from ext_pos. */
static void wb_commit(struct wb *wb)
{
    struct mkv_ino_write_req q = {0};
    if (wb->hashing) { /* the ETag, which the last command carries, is due */
        wb->commit_due = 1;
        return;
    }
    struct mkv_slice all =
        mkv_slice_mem(wb->extents.p ? wb->extents.p : (const uint8_t *)"", wb->extents.len);
    struct mkv_slice cur = mkv_slice_mem(all.p + wb->ext_pos, all.len - wb->ext_pos);
    struct mkv_extent e;
    unsigned n = 0;
    size_t start = wb->ext_pos;
    int rv = 0;
    while (n < WB_EXTENTS_PER_CMD && (rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1) n++;
    if (rv < 0) {
        wb_finish(wb, -EPROTO);
        return;
    }
    wb->ext_pos = all.len - cur.len;
    q.ino = wb->fi->ino;
    q.size = wb->size;
    q.flags = wb->flags;
    if (start) q.flags &= ~(uint32_t)MKV_WRITE_REPLACE; /* the first command replaced */
    q.extents = mkv_slice_mem(all.p + start, wb->ext_pos - start);
    q.data = mkv_slice_mem(wb->inl.p ? wb->inl.p : (const uint8_t *)"", wb->inl.len);
    q.etag = mkv_slice_str(wb->ext_pos < all.len ? "" : wb->etag);
    wb->m.data = wb;
    if ((rv = mkv_meta_call(wb->fs->client, &wb->m, MKV_MSG_INO_WRITE, &mkv_desc_ino_write_req, &q,
                            on_ino_write)))
        wb_finish(wb, rv);
}

/* The writer's extents are in stream offsets (the ranges back to back):
 * each range becomes file extents at its own offsets. */
static int wb_map_extents(struct wb *wb, struct mkv_slice ext)
{
    size_t i = 0;
    struct mkv_slice cur = ext;
    struct mkv_extent e;
    struct dirty *d = wb->list;
    int rv;
    while ((rv = mkv_msg_next(&mkv_desc_extent, &cur, &e)) == 1) {
        uint64_t s = e.file_off, end = e.file_off + e.len;
        while (s < end && d) {
            uint64_t rs = wb->stream[i], re = rs + d->len;
            if (s >= re) {
                d = d->next;
                i++;
                continue;
            }
            {
                uint64_t take = MKV_MIN(end, re) - s;
                struct mkv_extent fe = e;
                fe.file_off = d->off + (s - rs);
                fe.len = take;
                fe.chunk_off = e.chunk_off + (s - e.file_off);
                if (mkv_msg_append(&wb->extents, &mkv_desc_extent, &fe)) return -ENOMEM;
                s += take;
            }
        }
    }
    return rv < 0 ? -EPROTO : 0;
}

static void wb_feed(struct wb *wb);
static int wb_writer_start(struct wb *wb);

/* Failures of the chunk servers (not of this mount, nor of the request). */
static int wb_retryable(int status)
{
    switch (status) {
    case -EIO:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -EPIPE:
    case -ENOTCONN:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case MKV_EUNAVAILABLE:
    case MKV_ESTALE: return 1;
    default: return 0;
    }
}

static void on_wb_ready(struct mkv_writer *w, void *data)
{
    (void)w;
    wb_feed(data);
}

/* The round's writer failed with status: written again by a new writer
 * when a chunk server failed it (WB_RETRIES), else the round fails. */
static void wb_writer_failed(struct wb *wb, int status)
{
    if (wb_retryable(status) && wb->retries < WB_RETRIES) {
        wb->retries++;
        MKV_WARN("fs", "write-back ino=%llu: storing the data failed err=\"%s\", writing it again",
                 (unsigned long long)wb->fi->ino, mkv_strerror(status));
        if (wb_writer_start(wb) == 0) {
            wb_feed(wb);
            return;
        }
    }
    wb_finish(wb, status);
}

static void on_wb_done(struct mkv_writer *w, void *data, int status, struct mkv_slice extents)
{
    struct wb *wb = data;
    int rv = status;
    if (!rv && mkv_buf_append(&wb->written, extents.p, extents.len)) rv = -ENOMEM;
    if (!rv) rv = wb_map_extents(wb, extents);
    mkv_writer_free(w);
    wb->w = NULL;
    if (rv && !status) {
        mkv_client_discard_extents(wb->fs->client, extents);
        status = rv;
    }
    if (wb->feeding) { /* inside wb_feed's call: it takes over */
        if (status) wb->failed = status;
        else wb->stored = 1;
        return;
    }
    if (status) {
        wb_writer_failed(wb, status);
        return;
    }
    wb_commit(wb);
}

static const struct mkv_writer_ops wb_writer_ops = {on_wb_ready, on_wb_done};

/* Hands the writer the ranges, as far as its window allows. */
static void wb_feed(struct wb *wb)
{
    int rv = 0;
    /* The writer may end inside a call made here: on_wb_done then frees
     * it and leaves its outcome in wb->failed or wb->stored, for below. */
    wb->feeding = 1;
    wb->failed = wb->stored = 0;
    while (wb->cur && !wb->failed) {
        struct dirty *d = wb->cur;
        size_t n = d->len - wb->cur_off;
        rv = mkv_writer_write(wb->w, d->p + wb->cur_off, n);
        if (rv < 0 || wb->failed) break;
        wb->cur = d->next;
        wb->cur_off = 0;
        if (rv == 1) break; /* resumed by on_wb_ready */
    }
    if (rv == 0 && !wb->failed && wb->w && !wb->cur) {
        wb->cur_off = (size_t)-1; /* finishing: feed no more */
        rv = mkv_writer_finish(wb->w);
    }
    wb->feeding = 0;
    /* Each branch hands wb on (it may be freed): nothing after. */
    if (wb->stored) {
        wb->stored = 0;
        wb_commit(wb);
    } else if (wb->failed) {
        rv = wb->failed;
        wb->failed = 0;
        wb_writer_failed(wb, rv);
    } else if (rv < 0) {
        mkv_writer_abort(wb->w);
        wb->w = NULL;
        wb_finish(wb, rv);
    }
}

void fs_md5_etag(EVP_MD_CTX *src, char *out, size_t len)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (!c) return;
    if (EVP_MD_CTX_copy_ex(c, src) == 1 && EVP_DigestFinal_ex(c, md, &n) == 1 && n == 16) {
        size_t o = 0;
        o += (size_t)snprintf(out + o, len - o, "\"");
        for (unsigned i = 0; i < n; i++) o += (size_t)snprintf(out + o, len - o, "%02x", md[i]);
        snprintf(out + o, len - o, "\"");
    }
    EVP_MD_CTX_free(c);
}

static int inline_etag(const uint8_t *p, size_t n, char *out, size_t len)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int rv = -ENOMEM;
    if (c && EVP_DigestInit_ex(c, EVP_md5(), NULL) == 1 && EVP_DigestUpdate(c, p, n) == 1) {
        fs_md5_etag(c, out, len);
        rv = 0;
    }
    EVP_MD_CTX_free(c);
    return rv;
}

/* Starts a round with what the buffer holds now. */
/* ---- compaction ----
 *
 * Each write-back range becomes an extent, and an inode holds at most
 * MKV_EXTENTS_MAX of them: random small writes into a large file would
 * reach that and fail. When a round could take the file past COMPACT_AT
 * extents, it first reads the most fragmented COMPACT_WIN windows of the
 * committed content and puts their bytes under its own ranges, so that it
 * writes each such window whole, as one extent: the file goes back under
 * COMPACT_AT / 2 (at most COMPACT_MAX_WINS windows per round). */
#define COMPACT_AT 16384u
#define COMPACT_WIN (1ull << 20)
#define COMPACT_MAX_WINS 512u

static void wb_stream(struct wb *wb);

struct compact
{
    struct wb *wb;
    uint8_t *extents; /* a copy of the committed extents, read from */
    size_t extents_len;
    uint64_t content_size;
    uint64_t *wins; /* window indexes to rewrite, ascending */
    size_t nwins, next;
    uint8_t *buf; /* the window being read */
    uint64_t off;
    size_t len, got;
};

static size_t count_extents(struct mkv_slice ext)
{
    struct mkv_extent e;
    size_t n = 0;
    while (mkv_msg_next(&mkv_desc_extent, &ext, &e) == 1) n++;
    return n;
}

/* Worst case after the round: each range may add an extent and split one
 * in two. */
static int compact_needed(struct fino *fi)
{
    size_t ranges = 0;
    if (fi->extents.len < COMPACT_AT * 4) return 0; /* an encoded extent takes more */
    for (struct dirty *d = fi->wb_list; d; d = d->next) ranges++;
    return count_extents(fi->extents) + 2 * ranges > COMPACT_AT;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_count_desc(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b; /* {window, count} */
    return x[1] < y[1] ? 1 : x[1] > y[1] ? -1 : 0;
}

/* The windows holding the most extents and ranges, enough of them to get
 * under COMPACT_AT / 2. */
static int compact_pick(struct compact *c, struct fino *fi)
{
    struct mkv_slice cur = mkv_slice_mem(c->extents, c->extents_len);
    struct mkv_extent e;
    size_t n = 0, cap = count_extents(cur), runs = 0, total;
    uint64_t *w, *pairs;
    for (struct dirty *d = fi->wb_list; d; d = d->next) cap++;
    if (!(w = malloc((cap ? cap : 1) * sizeof *w))) return -ENOMEM;
    while (mkv_msg_next(&mkv_desc_extent, &cur, &e) == 1 && n < cap)
        w[n++] = e.file_off / COMPACT_WIN;
    for (struct dirty *d = fi->wb_list; d && n < cap; d = d->next) w[n++] = d->off / COMPACT_WIN;
    total = n;
    qsort(w, n, sizeof *w, cmp_u64);
    if (!(pairs = malloc((n ? n : 1) * 2 * sizeof *pairs))) {
        free(w);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && w[j] == w[i]) j++;
        pairs[2 * runs] = w[i];
        pairs[2 * runs + 1] = j - i;
        runs++;
        i = j;
    }
    qsort(pairs, runs, 2 * sizeof *pairs, cmp_count_desc);
    c->nwins = 0;
    for (size_t i = 0; i < runs && c->nwins < COMPACT_MAX_WINS && total > COMPACT_AT / 2; i++) {
        if (pairs[2 * i + 1] < 2) break; /* one extent there already */
        w[c->nwins++] = pairs[2 * i];
        total -= pairs[2 * i + 1] - 1;
    }
    free(pairs);
    qsort(w, c->nwins, sizeof *w, cmp_u64);
    c->wins = w;
    return 0;
}

static void compact_next(struct compact *c);

static void compact_done(struct compact *c)
{
    struct wb *wb = c->wb;
    free(c->extents);
    free(c->wins);
    free(c->buf);
    free(c);
    wb->list = wb->fi->wb_list;
    wb_stream(wb);
}

static void on_compact_data(struct mkv_reader *r, void *data, struct mkv_frame *frame,
                            const uint8_t *p, size_t n)
{
    struct compact *c = data;
    (void)frame;
    n = MKV_MIN(n, c->len - c->got);
    if (p) memcpy(c->buf + c->got, p, n); /* a hole's zeros are there already */
    c->got += n;
    mkv_reader_release(r);
}

static void on_compact_end(struct mkv_reader *r, void *data, int status)
{
    struct compact *c = data;
    struct fino *fi = c->wb->fi;
    mkv_reader_free(r);
    /* A window that could not be read is left as it is: the round goes on
     * (and may fail, fragmented, with EFBIG). */
    if (status || dirty_under_at(&fi->wb_list, c->off, c->buf, c->len)) {
        MKV_WARN("fs", "compaction stopped ino=%llu err=\"%s\"", (unsigned long long)fi->ino,
                 mkv_strerror(status ? status : -ENOMEM));
        compact_done(c);
        return;
    }
    compact_next(c);
}

static const struct mkv_reader_ops compact_ops = {on_compact_data, on_compact_end};

static void compact_next(struct compact *c)
{
    struct mkv_reader *r;
    uint64_t limit = MKV_MIN(c->content_size, c->wb->size);
    while (c->next < c->nwins) {
        uint64_t off = c->wins[c->next++] * COMPACT_WIN;
        if (off >= limit) continue;
        c->off = off;
        c->len = (size_t)MKV_MIN(COMPACT_WIN, limit - off);
        c->got = 0;
        memset(c->buf, 0, c->len);
        if (mkv_reader_new(c->wb->fs->client, mkv_slice_mem(c->extents, c->extents_len),
                           c->content_size, c->off, c->len, &compact_ops, c, &r))
            break;
        return;
    }
    compact_done(c);
}

static void compact_start(struct wb *wb)
{
    struct fino *fi = wb->fi;
    struct compact *c = calloc(1, sizeof *c);
    if (!c || !(c->extents = malloc(fi->extents.len)) || !(c->buf = malloc(COMPACT_WIN))) {
        if (c) free(c->extents);
        free(c);
        wb_stream(wb); /* without: it may fail with EFBIG */
        return;
    }
    c->wb = wb;
    memcpy(c->extents, fi->extents.p, fi->extents.len);
    c->extents_len = fi->extents.len;
    c->content_size = fi->content_size;
    if (compact_pick(c, fi)) {
        free(c->extents);
        free(c->buf);
        free(c);
        wb_stream(wb);
        return;
    }
    MKV_INFO("fs", "compacting ino=%llu windows=%zu", (unsigned long long)fi->ino, c->nwins);
    compact_next(c);
}

/* ---- the MD5 (the S3 ETag) of a file written in order ---- */

static void hash_run(uv_work_t *w)
{
    struct wb *wb = MKV_CONTAINER_OF(w, struct wb, hash_work);
    for (size_t i = 0; i < wb->hash_n && wb->hash_ok; i++)
        if (EVP_DigestUpdate(wb->fi->md5, wb->hash[i].p, wb->hash[i].len) != 1) wb->hash_ok = 0;
}

/* The hash of the round is done (ok or not): the MD5 goes on, or ends;
 * the round's ETag when due. */
static void hash_end(struct wb *wb, int ok)
{
    struct fino *fi = wb->fi;
    if (!ok) fi->md5_valid = 0;
    else if (wb->etag_due) fs_md5_etag(fi->md5, wb->etag, sizeof wb->etag);
}

static void hash_after(uv_work_t *w, int status)
{
    struct wb *wb = MKV_CONTAINER_OF(w, struct wb, hash_work);
    wb->hashing = 0;
    wb->fi->md5_busy = 0;
    hash_end(wb, !status && wb->hash_ok);
    if (wb->finish_due) wb_finish(wb, wb->finish_status);
    else if (!wb->fs->client) wb_finish(wb, -ECANCELED); /* unmounted, drain over */
    else if (wb->commit_due) wb_commit(wb);
}

/* Hashes the bytes written in order that no round hashed yet, all in this
 * round's ranges, into fi->md5: on a worker thread when async (MD5 is the
 * costliest step of a sequential write; the round's data goes to the chunk
 * server meanwhile), else at once. Sets the round's ETag when those bytes
 * reach its size. A gap (not written in order after all) ends the MD5. */
static void wb_hash(struct wb *wb, int async)
{
    struct fino *fi = wb->fi;
    uint64_t pos = fi->md5_done, to = fi->md5_off;
    size_t n = 0;
    if (!fi->md5 || !fi->md5_valid || fi->md5_busy) return;
    for (struct dirty *d = wb->list; d; d = d->next)
        if (d->off < to && d->off + d->len > pos) n++;
    if (n && !(wb->hash = calloc(n, sizeof *wb->hash))) {
        fi->md5_valid = 0;
        return;
    }
    for (struct dirty *d = wb->list; d && pos < to; d = d->next) {
        if (d->off + d->len <= pos) continue;
        if (d->off > pos) break; /* a gap */
        wb->hash[wb->hash_n].p = d->p + (pos - d->off);
        wb->hash[wb->hash_n].len = (size_t)(MKV_MIN(d->off + d->len, to) - pos);
        pos += wb->hash[wb->hash_n++].len;
    }
    if (pos < to) {
        fi->md5_valid = 0;
        return;
    }
    wb->hash_ok = 1;
    wb->etag_due = to == wb->size;
    fi->md5_done = to;
    if (async && wb->hash_n &&
        uv_queue_work(&wb->fs->loop, &wb->hash_work, hash_run, hash_after) == 0) {
        wb->hashing = 1;
        fi->md5_busy = 1;
        return;
    }
    hash_run(&wb->hash_work);
    hash_end(wb, wb->hash_ok);
}

static void wb_start(struct fs *fs, struct fino *fi)
{
    struct wb *wb;
    int rv, inl;
    if (fi->writing) return;
    if (!(wb = calloc(1, sizeof *wb))) {
        fi->wb_error = -ENOMEM;
        fi->wb_done = fi->wb_started;
        waiters_run(fs, fi, -ENOMEM);
        return;
    }
    wb->fs = fs;
    wb->fi = fi;
    wb->round = ++fi->wb_started;
    fi->writing = 1;
    fi->wb_list = fi->dirty;
    fi->dirty = NULL;
    fi->dirty_bytes = 0;
    wb->list = fi->wb_list;
    wb->size = fi->size;
    /* Inline when small and nothing is in chunks: the whole content from
     * the inline bytes, zeros, and the ranges. */
    inl = wb->size <= fs->o.inline_max && fi->extents.len == 0;
    if (inl) {
        if (mkv_buf_reserve(&wb->inl, (size_t)wb->size)) {
            wb_finish(wb, -ENOMEM);
            return;
        }
        wb->inl.len = (size_t)wb->size;
        if (wb->size) {
            memset(wb->inl.p, 0, (size_t)wb->size);
            if (fi->data.len)
                memcpy(wb->inl.p, fi->data.p, MKV_MIN((size_t)fi->data.len, (size_t)wb->size));
        }
        for (struct dirty *d = wb->list; d; d = d->next)
            if (d->off < wb->size)
                memcpy(wb->inl.p + d->off, d->p, (size_t)MKV_MIN(d->len, wb->size - d->off));
        wb_hash(wb, 0); /* small: at once, only to keep the MD5 going */
        if (inline_etag(wb->inl.p, wb->inl.len, wb->etag, sizeof wb->etag)) {
            wb_finish(wb, -ENOMEM);
            return;
        }
        wb->flags = MKV_WRITE_INLINE;
        wb_commit(wb);
        return;
    }
    if (fi->data.len) {
        /* Inline bytes cannot stay beside chunks: they are written again
         * (under the ranges, which win) and the content replaced. */
        if ((rv = dirty_under_at(&fi->wb_list, 0, fi->data.p,
                                 MKV_MIN((size_t)fi->data.len, (size_t)wb->size)))) {
            wb_finish(wb, rv);
            return;
        }
        wb->list = fi->wb_list;
        wb->flags = MKV_WRITE_REPLACE;
    } else if (compact_needed(fi)) {
        wb_hash(wb, 0); /* compaction changes the round's ranges */
        compact_start(wb);
        return;
    }
    wb_hash(wb, 1);
    wb_stream(wb);
}

/* The round's ranges, back to back, to the chunk writer. */
static void wb_stream(struct wb *wb)
{
    size_t n = 0;
    uint64_t s = 0;
    int rv;
    for (struct dirty *d = wb->list; d; d = d->next) n++;
    if (n == 0) {
        wb_commit(wb); /* a size change alone */
        return;
    }
    if (!(wb->stream = calloc(n, sizeof *wb->stream))) {
        wb_finish(wb, -ENOMEM);
        return;
    }
    n = 0;
    for (struct dirty *d = wb->list; d; d = d->next) {
        wb->stream[n++] = s;
        s += d->len;
    }
    wb->nranges = n;
    if ((rv = wb_writer_start(wb))) {
        wb_finish(wb, rv);
        return;
    }
    wb_feed(wb);
}

/* A writer for the round, from its first range. */
static int wb_writer_start(struct wb *wb)
{
    const char *bucket;
    int rv;
    if ((rv = mkv_writer_new(wb->fs->client, &wb_writer_ops, wb, &wb->w))) return rv;
    /* The bucket's replication factor; a file this mount cannot place (it
     * was reached without a lookup through its bucket) gets the cluster's,
     * which is never fewer copies than a bucket's. */
    if ((bucket = fino_bucket(wb->fs, wb->fi))) {
        rv = mkv_writer_set_bucket(wb->w, bucket);
    } else {
        MKV_DEBUG("fs", "write-back of inode %llu: bucket not known, the cluster's factor",
                  (unsigned long long)wb->fi->ino);
    }
    if (rv) {
        mkv_writer_abort(wb->w);
        wb->w = NULL;
        return rv;
    }
    wb->cur = wb->list;
    wb->cur_off = 0;
    return 0;
}

void fs_writeback(struct fs *fs, struct fino *fi)
{
    wb_start(fs, fi);
}

/* Waits for a round that includes every write made until now, starting
 * one if none runs; cb(op, status) then. */
static int wait_round(struct fs *fs, struct fino *fi, struct fop *op,
                      void (*cb)(struct fop *op, int status))
{
    struct fs_waiter *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->op = op;
    w->cb = cb;
    /* A running round holds writes older than the buffer: the buffer goes
     * in the next one. */
    w->round = fi->wb_started + 1;
    w->next = fi->waiters;
    fi->waiters = w;
    if (!fi->writing) wb_start(fs, fi);
    return 0;
}

static struct fino *file_of(struct fop *op)
{
    return fino_find(op->fs, fs_ns_ino(op->fs, op->ino));
}

/* ---- open, create ---- */

static int md5_setup(struct fino *fi)
{
    if (fi->md5) return 0;
    if (!(fi->md5 = EVP_MD_CTX_new())) return -ENOMEM;
    if (EVP_DigestInit_ex(fi->md5, EVP_md5(), NULL) != 1) return -ENOMEM;
    fi->md5_valid = fi->size == 0;
    fi->md5_off = fi->md5_done = 0;
    return 0;
}

static void reply_open(struct fop *op, struct fino *fi, int keep_cache)
{
    struct fuse_file_info ffi;
    memset(&ffi, 0, sizeof ffi);
    ffi.fh = fi->ino;
    ffi.keep_cache = keep_cache ? 1 : 0;
    fino_open_ref(op->fs, fi);
    if (fuse_reply_open(op->req, &ffi) != 0) {
        fino_open_unref(fi);
        fino_maybe_free(op->fs, fi);
    }
    fop_free(op);
}

/* A create without O_EXCL that found the file there (made by another
 * mount or S3 since the kernel looked): it opens that file. reply is its
 * full inode (after the truncation O_TRUNC asked for). */
void op_create_existing(struct fop *op, struct mkv_frame *reply)
{
    struct mkv_obj_info oi;
    struct fuse_entry_param e;
    struct fuse_file_info ffi;
    struct fino *fi;
    if (!reply || mkv_frame_decode(reply, &mkv_desc_obj_info, &oi)) {
        fop_error(op, -EIO);
        return;
    }
    if (oi.type == MKV_T_DIR) {
        fop_error(op, -EISDIR);
        return;
    }
    if (oi.type != MKV_T_FILE) {
        fop_error(op, -EEXIST); /* a symlink or FIFO put there meanwhile */
        return;
    }
    if (!(fi = fino_get(op->fs, oi.ino))) {
        fop_error(op, -ENOMEM);
        return;
    }
    fino_place(op->fs, fi, op->ino, op->name);
    if (!fi->dirty && !fi->writing) {
        if (content_set(fi, &oi)) {
            fino_maybe_free(op->fs, fi);
            fop_error(op, -ENOMEM);
            return;
        }
        fino_set_attr(op->fs, fi, &oi);
    }
    if (md5_setup(fi)) {
        fino_maybe_free(op->fs, fi);
        fop_error(op, -ENOMEM);
        return;
    }
    fi->nlookup++;
    fs_entry(op->fs, fi, &e);
    memset(&ffi, 0, sizeof ffi);
    ffi.fh = fi->ino;
    fino_open_ref(op->fs, fi);
    if (fuse_reply_create(op->req, &e, &ffi) != 0) {
        fino_open_unref(fi);
        fino_forget(op->fs, fi, 1);
    }
    fop_free(op);
}

static void on_open(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_obj_info oi;
    struct fino *fi;
    int keep;
    if (status) {
        /* A name that led here was replaced or removed meanwhile: ESTALE
         * makes the kernel look it up again (and find the new file). */
        fop_error(op, status == -ENOENT ? -ESTALE : status);
        return;
    }
    if (!reply || mkv_frame_decode(reply, &mkv_desc_obj_info, &oi) ||
        !(fi = fino_get(op->fs, oi.ino))) {
        fop_error(op, -EIO);
        return;
    }
    if (oi.type == MKV_T_DIR) {
        fop_error(op, -EISDIR);
        return;
    }
    /* Unchanged since this mount last loaded it: the kernel's cached pages
     * are still right. */
    keep = fi->generation && fi->generation == oi.generation;
    /* With writes of this mount not yet committed, its own view is the
     * newer one. */
    if (!fi->dirty && !fi->writing) {
        if (content_set(fi, &oi)) {
            fop_error(op, -ENOMEM);
            return;
        }
        fino_set_attr(op->fs, fi, &oi);
    }
    if (md5_setup(fi)) {
        fop_error(op, -ENOMEM);
        return;
    }
    /* Changed since this mount last read it (close-to-open): the kernel's
     * attributes go too, or it would read only up to the size it has in
     * cache. Attributes only: no page lock involved, safe from here. */
    if (!keep) fuse_lowlevel_notify_inval_inode(op->fs->se, op->ino, -1, 0);
    reply_open(op, fi, keep);
}

void op_open(struct fop *op)
{
    struct mkv_ino_getattr_req q = {0};
    int rv;
    if (op->fs->o.read_only && (op->flags & O_ACCMODE) != O_RDONLY) {
        fop_error(op, -EROFS);
        return;
    }
    q.ino = fs_ns_ino(op->fs, op->ino);
    if ((rv = fs_meta(op, MKV_MSG_INO_GETATTR, &mkv_desc_ino_getattr_req, &q, on_open)))
        fop_error(op, rv);
}

void op_create_done(struct fop *op, struct fino *fi)
{
    struct fuse_entry_param e;
    struct fuse_file_info ffi;
    fi->whole = 1;
    fi->size = 0;
    fi->content_size = 0;
    if (md5_setup(fi)) {
        fino_forget(op->fs, fi, 1);
        fop_error(op, -ENOMEM);
        return;
    }
    fi->md5_valid = !fi->md5_busy && EVP_DigestInit_ex(fi->md5, EVP_md5(), NULL) == 1;
    fi->md5_off = fi->md5_done = 0;
    fs_entry(op->fs, fi, &e);
    memset(&ffi, 0, sizeof ffi);
    ffi.fh = fi->ino;
    fino_open_ref(op->fs, fi);
    if (fuse_reply_create(op->req, &e, &ffi) != 0) {
        fino_open_unref(fi);
        fino_forget(op->fs, fi, 1);
    }
    fop_free(op);
}

/* ---- read ---- */

struct rd
{
    struct fop *op;
    struct fino *fi;
    uint8_t *buf;
    uint64_t off;
    size_t len, got;
};

static void overlay(const struct dirty *d, uint64_t off, uint8_t *buf, size_t len)
{
    for (; d; d = d->next) {
        uint64_t lo = MKV_MAX(off, d->off), hi = MKV_MIN(off + len, d->off + d->len);
        if (lo < hi) memcpy(buf + (lo - off), d->p + (lo - d->off), (size_t)(hi - lo));
    }
}

static void rd_finish(struct rd *rd, int status)
{
    struct fop *op = rd->op;
    struct fs *fs = op->fs;
    if (status) {
        fop_error(op, status);
    } else {
        /* Writes not yet committed win: the round in flight, then the buffer. */
        overlay(rd->fi->wb_list, rd->off, rd->buf, rd->len);
        overlay(rd->fi->dirty, rd->off, rd->buf, rd->len);
        fuse_reply_buf(op->req, (const char *)rd->buf, rd->len);
        fop_free(op);
    }
    fino_open_unref(rd->fi);
    fino_maybe_free(fs, rd->fi);
    free(rd->buf);
    free(rd);
}

static void on_rd_data(struct mkv_reader *r, void *data, struct mkv_frame *frame, const uint8_t *p,
                       size_t n)
{
    struct rd *rd = data;
    (void)frame;
    if (rd->got + n <= rd->len) memcpy(rd->buf + rd->got, p, n);
    rd->got += n;
    mkv_reader_release(r);
}

static void on_rd_end(struct mkv_reader *r, void *data, int status)
{
    struct rd *rd = data;
    mkv_reader_free(r);
    rd_finish(rd, status);
}

static const struct mkv_reader_ops rd_ops = {on_rd_data, on_rd_end};

void op_read(struct fop *op)
{
    struct fino *fi = file_of(op);
    struct rd *rd;
    struct mkv_reader *r;
    uint64_t off = (uint64_t)op->off, end;
    int rv;
    if (!fi) {
        fop_error(op, -EBADF);
        return;
    }
    if (off >= fi->size || op->size == 0) {
        fuse_reply_buf(op->req, NULL, 0);
        fop_free(op);
        return;
    }
    if (!(rd = calloc(1, sizeof *rd))) {
        fop_error(op, -ENOMEM);
        return;
    }
    rd->op = op;
    rd->fi = fi;
    rd->off = off;
    rd->len = (size_t)MKV_MIN((uint64_t)op->size, fi->size - off);
    if (!(rd->buf = calloc(1, rd->len))) {
        free(rd);
        fop_error(op, -ENOMEM);
        return;
    }
    fino_open_ref(op->fs, fi); /* keeps the inode while the read runs */
    /* The committed content: inline bytes, or extents read through the
     * chunk servers (holes and bytes past them are zeros). */
    if (fi->data.len > off)
        memcpy(rd->buf, fi->data.p + off, (size_t)MKV_MIN((uint64_t)rd->len, fi->data.len - off));
    end = MKV_MIN(off + rd->len, fi->content_size);
    if (fi->extents.len == 0 || end <= off) {
        rd_finish(rd, 0);
        return;
    }
    rv = mkv_reader_new(op->fs->client, fi->extents, fi->content_size, off, end - off, &rd_ops, rd,
                        &r);
    if (rv) rd_finish(rd, rv);
}

/* ---- write ---- */

static void on_write_room(struct fop *op, int status)
{
    (void)status; /* the write itself is buffered: errors come at flush/fsync */
    fuse_reply_write(op->req, op->size);
    fop_free(op);
}

void op_write(struct fop *op)
{
    struct fs *fs = op->fs;
    struct fino *fi = file_of(op);
    uint64_t off = (uint64_t)op->off;
    int rv;
    if (!fi) {
        fop_error(op, -EBADF);
        return;
    }
    /* O_APPEND: at the end this mount knows, which open (and a lock)
     * brought up to date; the kernel's may be older. */
    if (op->flags & O_APPEND) off = fi->size;
    if (off + op->size < off || off + op->size > (1ull << 62)) {
        fop_error(op, -EFBIG);
        return;
    }
    if (fi->md5_valid) {
        /* In order: hashed by the write-back (wb_hash), off this thread. */
        if (off == fi->md5_off) fi->md5_off += op->size;
        else fi->md5_valid = 0; /* not in order: the ETag is worked out later */
    }
    if ((rv = dirty_put(fi, off, op->data, op->size))) {
        fop_error(op, rv);
        return;
    }
    op->data = NULL; /* copied: the request buffer is read into again */
    if (off + op->size > fi->size) fi->size = off + op->size;
    fi->size_dirty = 1;
    fi->attr.mtime = fi->attr.ctime = mkv_now_ns();
    if (fi->dirty_bytes >= fs->o.dirty_max) {
        /* Far over the limit with a round already running: the writer
         * waits for it (back-pressure); else a round starts. */
        if (fi->writing && fi->dirty_bytes >= 2 * fs->o.dirty_max &&
            wait_round(fs, fi, op, on_write_room) == 0)
            return;
        wb_start(fs, fi);
    }
    fuse_reply_write(op->req, op->size);
    fop_free(op);
}

/* ---- flush, fsync, release ---- */

static void reply_ok(struct fop *op, int status)
{
    (void)status;
    fuse_reply_err(op->req, 0);
    fop_free(op);
}

/* A close, once its data is committed and its process's locks dropped:
 * S3 sees the file's real ETag once it returns. */
static void flush_done(struct fop *op)
{
    struct fino *fi = file_of(op);
    if (op->status) {
        fop_error(op, op->status);
        return;
    }
    if (fi && fi->etag_gen && fs_etag_wait(op->fs, fi, op, reply_ok) == 0) return;
    reply_ok(op, 0);
}

static void on_durable(struct fop *op, int status, struct mkv_frame *reply)
{
    (void)reply;
    if (status) {
        MKV_WARN("fs", "fsync failed err=\"%s\"", op->m.errmsg);
        fop_error(op, status);
        return;
    }
    reply_ok(op, 0);
}

void op_fsyncdir(struct fop *op)
{
    int rv = fs_meta_sync(op, on_durable);
    if (rv) fop_error(op, rv);
}

static void on_synced(struct fop *op, int status)
{
    struct fino *fi = file_of(op);
    if (!status && fi && fi->wb_error) status = fi->wb_error;
    if (fi) fi->wb_error = 0;
    if (op->kind == FOP_FLUSH) {
        /* The data first, then the locks: whoever locks next sees it. */
        op->status = status;
        fs_unlock_on_close(op, 0, flush_done);
        return;
    }
    if (status) {
        fop_error(op, status);
        return;
    }
    /* fsync: the data is committed (answered early); make it, and every
     * namespace change before it, durable. */
    if ((status = fs_meta_sync(op, on_durable))) fop_error(op, status);
}

int fs_sync_then(struct fop *op, void (*cb)(struct fop *op, int status))
{
    struct fino *fi = file_of(op);
    if (!fi || (!fi->dirty && !fi->writing && !fi->size_dirty)) {
        cb(op, 0);
        return 0;
    }
    return wait_round(op->fs, fi, op, cb);
}

int fs_file_reload(struct fs *fs, struct fino *fi, const struct mkv_obj_info *oi)
{
    int rv;
    if (fi->dirty || fi->writing || oi->type != MKV_T_FILE) return 0; /* its own view is newer */
    if ((rv = content_set(fi, oi))) return rv;
    fino_set_attr(fs, fi, oi);
    return 0;
}

/* flush (each close) and fsync: every write so far committed. */
static void sync_file(struct fop *op)
{
    struct fino *fi = file_of(op);
    int rv;
    if (!fi) {
        fop_error(op, -EBADF);
        return;
    }
    if (!fi->dirty && !fi->writing && !fi->size_dirty) {
        on_synced(op, 0);
        return;
    }
    if ((rv = wait_round(op->fs, fi, op, on_synced))) fop_error(op, rv);
}

void op_flush(struct fop *op)
{
    sync_file(op); /* then this process's fcntl locks, which end with any close */
}

void op_fsync(struct fop *op)
{
    sync_file(op);
}

static void on_orphan_dropped(struct fop *op, int status, struct mkv_frame *reply)
{
    (void)reply;
    if (status)
        MKV_WARN("fs", "dropping an unlinked file failed ino=%llu err=\"%s\"",
                 (unsigned long long)fs_ns_ino(op->fs, op->ino), mkv_strerror(status));
    fop_free(op);
}

static void release_file(struct fop *op);

void op_release(struct fop *op)
{
    if (op->flock_release) fs_unlock_on_close(op, 1, release_file); /* the open file's flock */
    else release_file(op);
}

static void release_file(struct fop *op)
{
    struct fs *fs = op->fs;
    struct fino *fi = file_of(op);
    fuse_reply_err(op->req, 0);
    op->req = NULL;
    if (!fi) {
        fop_free(op);
        return;
    }
    fino_open_unref(fi);
    if (fi->opens == 0 && fi->orphan) {
        /* The last descriptor of an unlinked file: it goes now. */
        struct mkv_orphan_drop_req q = {fi->ino};
        fi->orphan = 0;
        fino_dirty_drop(fi);
        if (fs_meta(op, MKV_MSG_ORPHAN_DROP, &mkv_desc_orphan_drop_req, &q, on_orphan_dropped))
            fop_free(op);
        fino_maybe_free(fs, fi);
        return;
    }
    /* Writes after the last flush (rare: mmap) are committed now. */
    if (fi->opens == 0 && (fi->dirty || fi->size_dirty) && !fi->writing) wb_start(fs, fi);
    if (fi->opens == 0 && !fi->writing && fi->etag_gen) fs_etag_start(fs, fi);
    content_drop(fi);
    fino_maybe_free(fs, fi);
    fop_free(op);
}

/* ---- fallocate ---- */

static void on_falloc_synced(struct fop *op, int status);

static void on_falloc_done(struct fop *op, int status, struct mkv_frame *reply)
{
    struct mkv_obj_info oi;
    struct fino *fi = file_of(op);
    if (status) {
        fop_error(op, status);
        return;
    }
    if (fi && reply && mkv_frame_decode(reply, &mkv_desc_obj_info, &oi) == 0) {
        /* The reply is the whole new content: no extents left means the
         * punch cut them all (the file is one hole now). */
        if (content_set(fi, &oi)) content_forget(fi);
        fino_set_attr(op->fs, fi, &oi);
    }
    fuse_reply_err(op->req, 0);
    fop_free(op);
}

/* After the buffer is committed (so the punch cuts committed extents
 * only), punch: an INO_WRITE of one hole extent. */
static void on_falloc_synced(struct fop *op, int status)
{
    struct fino *fi = file_of(op);
    struct mkv_ino_write_req q = {0};
    struct mkv_extent hole = {0};
    uint8_t rec[64];
    size_t n;
    int rv;
    if (!status && fi && fi->wb_error) status = fi->wb_error;
    if (fi) fi->wb_error = 0;
    if (status || !fi) {
        fop_error(op, status ? status : -EBADF);
        return;
    }
    hole.file_off = (uint64_t)op->off;
    hole.len = MKV_MIN((uint64_t)op->size, fi->size > hole.file_off ? fi->size - hole.file_off : 0);
    if (hole.len == 0) {
        fuse_reply_err(op->req, 0);
        fop_free(op);
        return;
    }
    if (fi->data.len) {
        /* Inline content: punch by rewriting the bytes as zeros. */
        uint8_t *z = calloc(1, (size_t)hole.len);
        if (!z || dirty_put(fi, hole.file_off, z, (size_t)hole.len)) {
            free(z);
            fop_error(op, -ENOMEM);
            return;
        }
        free(z);
        fi->size_dirty = 1;
        fi->md5_valid = 0;
        if ((rv = wait_round(op->fs, fi, op, on_synced))) fop_error(op, rv);
        return;
    }
    mkv_msg_encode(&mkv_desc_extent, &hole, rec, sizeof rec, &n);
    q.ino = fi->ino;
    q.size = fi->size;
    q.extents = mkv_slice_mem(rec, n);
    q.etag = mkv_slice_str("");
    fi->md5_valid = 0;
    if ((rv = fs_meta(op, MKV_MSG_INO_WRITE, &mkv_desc_ino_write_req, &q, on_falloc_done)))
        fop_error(op, rv);
}

/* Allocation: minikv reserves no space ahead (a later write can still meet
 * a full cluster), but a request for more than the cluster has free now is
 * refused with ENOSPC, as a local file system would. What counts is the
 * part of the range past the end of the file. */
static void falloc_extend(struct fop *op, struct fino *fi)
{
    uint64_t end = (uint64_t)op->off + op->size;
    int rv;
    if (!(op->flags & FALLOC_FL_KEEP_SIZE) && end > fi->size) {
        fi->size = end;
        fi->size_dirty = 1;
        if ((rv = wait_round(op->fs, fi, op, on_synced))) fop_error(op, rv);
        return;
    }
    fuse_reply_err(op->req, 0);
    fop_free(op);
}

static void on_falloc_space(struct mkv_call *call, int status, struct mkv_frame *reply)
{
    struct fop *op = call->data;
    struct fino *fi = file_of(op);
    struct mkv_chunk_stat_rep rep;
    uint64_t end = (uint64_t)op->off + op->size, from;
    free(call);
    if (!fi) {
        fop_error(op, -EBADF);
        return;
    }
    from = MKV_MAX((uint64_t)op->off, fi->size);
    /* Without an answer the allocation goes ahead: the writes will tell. */
    if (status == 0 && reply && mkv_frame_decode(reply, &mkv_desc_chunk_stat_rep, &rep) == 0 &&
        end > from && end - from > rep.free) {
        fop_error(op, -ENOSPC);
        return;
    }
    falloc_extend(op, fi);
}

static void falloc_go(struct fop *op);

static void on_falloc_killpriv(struct fop *op, int status, struct mkv_frame *reply)
{
    struct fino *fi = file_of(op);
    struct mkv_obj_info oi;
    if (status) {
        fop_error(op, status);
        return;
    }
    if (fi && reply && mkv_frame_decode(reply, &mkv_desc_obj_info, &oi) == 0)
        fino_set_attr(op->fs, fi, &oi);
    /* The kernel keeps the mode it saw: its attributes (not its pages)
     * are dropped so that the next stat asks. */
    if (fi) fuse_lowlevel_notify_inval_inode(op->fs->se, fs_fuse_ino(op->fs, fi->ino), -1, 0);
    falloc_go(op);
}

/* As a write does (the kernel asks for it there), fallocate by a user
 * other than root clears the setuid and setgid bits first. */
void op_fallocate(struct fop *op)
{
    struct fino *fi = file_of(op);
    struct mkv_ino_setattr_req q = {0};
    int rv;
    if (!fi) {
        fop_error(op, -EBADF);
        return;
    }
    if (op->uid == 0 || !(fi->attr.mode & (S_ISUID | S_ISGID)) ||
        (op->flags & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))) {
        falloc_go(op);
        return;
    }
    q.ino = fi->ino;
    q.valid = MKV_SET_MODE;
    q.mode = fi->attr.mode & 07777 & ~(uint32_t)(S_ISUID | S_ISGID);
    if ((rv = fs_meta(op, MKV_MSG_INO_SETATTR, &mkv_desc_ino_setattr_req, &q, on_falloc_killpriv)))
        fop_error(op, rv);
}

static void falloc_go(struct fop *op)
{
    struct fino *fi = file_of(op);
    int mode = op->flags, rv;
    uint64_t end = (uint64_t)op->off + op->size;
    if (!fi) {
        fop_error(op, -EBADF);
        return;
    }
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) {
        fop_error(op, -EOPNOTSUPP);
        return;
    }
    if (mode & FALLOC_FL_PUNCH_HOLE) {
        if (!(mode & FALLOC_FL_KEEP_SIZE)) {
            fop_error(op, -EOPNOTSUPP); /* as Linux: punching needs KEEP_SIZE */
            return;
        }
        /* The buffer may hold bytes in the range: they are zeros now too. */
        for (struct dirty *d = fi->dirty; d; d = d->next) {
            uint64_t lo = MKV_MAX((uint64_t)op->off, d->off), hi = MKV_MIN(end, d->off + d->len);
            if (lo < hi) memset(d->p + (lo - d->off), 0, (size_t)(hi - lo));
        }
        if ((rv = wait_round(op->fs, fi, op, on_falloc_synced))) fop_error(op, rv);
        return;
    }
    if (end > fi->size) {
        struct mkv_chunk_stat_req q = {0};
        struct mkv_call *call = calloc(1, sizeof *call);
        struct mkv_peer *p = mkv_client_chunk_peer(op->fs->client, 0);
        if (!call || !p) {
            free(call);
            fop_error(op, p ? -ENOMEM : -EIO);
            return;
        }
        call->data = op;
        if ((rv = mkv_peer_call(p, call, MKV_MSG_CHUNK_STAT, &mkv_desc_chunk_stat_req, &q,
                                op->fs->o.op_timeout_ms, on_falloc_space))) {
            free(call);
            fop_error(op, rv);
        }
        return;
    }
    falloc_extend(op, fi);
}
