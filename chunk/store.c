/* minikv chunk store: lifecycle, segment table, index commits, stats and
 * the public entry points (store.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "minikv/crc32c.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/trust.h"

#include "store_int.h"

#define SYNC_INTERVAL_MS 2000
#define COMPACT_INTERVAL_MS 30000
#define MIN_SEGMENT_SIZE (256u << 10)

/* ------------------------------------------------------------------------
 * Segment table
 * ------------------------------------------------------------------------ */
static size_t hslot(uint64_t id, size_t cap)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

struct seg *seg_find(struct mkv_store *s, uint64_t id)
{
    if (!s->hcap) return NULL;
    for (size_t i = hslot(id, s->hcap);; i = (i + 1) & (s->hcap - 1)) {
        if (!s->hash[i]) return NULL;
        if (s->hash[i]->id == id) return s->hash[i];
    }
}

static void hash_put(struct seg **h, size_t cap, struct seg *g)
{
    size_t i = hslot(g->id, cap);
    while (h[i]) i = (i + 1) & (cap - 1);
    h[i] = g;
}

static int hash_add(struct mkv_store *s, struct seg *g)
{
    if ((s->hcount + 1) * 2 > s->hcap) {
        size_t cap = s->hcap ? s->hcap * 2 : 64;
        struct seg **h = calloc(cap, sizeof *h);
        if (!h) return -ENOMEM;
        for (size_t i = 0; i < s->hcap; i++)
            if (s->hash[i]) hash_put(h, cap, s->hash[i]);
        free(s->hash);
        s->hash = h;
        s->hcap = cap;
    }
    hash_put(s->hash, s->hcap, g);
    s->hcount++;
    return 0;
}

void seg_forget(struct mkv_store *s, struct seg *g)
{
    size_t i, j;
    if (!s->hcap) return;
    for (i = hslot(g->id, s->hcap); s->hash[i]; i = (i + 1) & (s->hcap - 1))
        if (s->hash[i] == g) break;
    if (!s->hash[i]) return;
    s->hash[i] = NULL;
    s->hcount--;
    /* Re-insert the rest of the cluster so lookups do not stop early. */
    for (j = (i + 1) & (s->hcap - 1); s->hash[j]; j = (j + 1) & (s->hcap - 1)) {
        struct seg *m = s->hash[j];
        s->hash[j] = NULL;
        hash_put(s->hash, s->hcap, m);
    }
}

static int seg_before(const struct seg *a, const struct seg *b)
{
    return a->lo < b->lo || (a->lo == b->lo && a->id < b->id);
}

/* g->lo and g->id must be set: the table is ordered by them. */
int seg_insert(struct mkv_store *s, struct seg *g)
{
    size_t i;
    if (s->norder == s->corder) {
        size_t cap = s->corder ? s->corder * 2 : 32;
        struct seg **o = realloc(s->order, cap * sizeof *o);
        if (!o) return -ENOMEM;
        s->order = o;
        s->corder = cap;
    }
    if (!seg_find(s, g->id) && hash_add(s, g)) return -ENOMEM;
    for (i = s->norder; i > 0 && seg_before(g, s->order[i - 1]); i--) s->order[i] = s->order[i - 1];
    s->order[i] = g;
    s->norder++;
    return 0;
}

void seg_unorder(struct mkv_store *s, struct seg *g)
{
    for (size_t i = 0; i < s->norder; i++) {
        if (s->order[i] == g) {
            memmove(&s->order[i], &s->order[i + 1], (s->norder - i - 1) * sizeof *s->order);
            s->norder--;
            return;
        }
    }
}

struct seg *seg_new(uint64_t id, int fd)
{
    struct seg *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->id = id;
    g->fd = fd;
    return g;
}

void seg_path(struct mkv_store *s, uint64_t id, char *buf, size_t len)
{
    char name[32];
    wal_seg_name(name, sizeof name, id);
    snprintf(buf, len, "%s/%s", s->wal_dir, name);
}

int store_fsync_dir(struct mkv_store *s)
{
    uint64_t t0 = mkv_mono_ns();
    if (fsync(s->wal_dfd) != 0) return -errno;
    store_fsync_observe(s, mkv_mono_ns() - t0);
    return 0;
}

int seg_create(struct mkv_store *s, uint64_t id, uint64_t lo, uint64_t hi, uint32_t flags)
{
    char path[4096];
    uint8_t hdr[WAL_HDR];
    struct wal_hdr h = {0};
    int fd, rv;
    seg_path(s, id, path, sizeof path);
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) return -errno;
    h.type = WAL_SEGHDR;
    h.flags = (uint8_t)flags;
    h.lsn = lo;
    h.chunk = id;
    h.aux = hi;
    wal_hdr_encode(&h, hdr);
    rv = wal_pwrite_full(fd, hdr, sizeof hdr, 0);
    if (rv == 0) rv = store_fsync_dir(s);
    if (rv) {
        close(fd);
        unlink(path);
        return rv;
    }
    return fd;
}

/* ------------------------------------------------------------------------
 * Index commits
 * ------------------------------------------------------------------------ */
static struct ix_segrow row_of(const struct seg *g, int64_t dlive, int64_t dtomb)
{
    struct ix_segrow r;
    int64_t live = (int64_t)g->live + dlive, tomb = (int64_t)g->tomb + dtomb;
    r.lo = g->lo;
    r.hi = g->hi;
    r.size = g->size;
    r.live = live > 0 ? (uint64_t)live : 0;
    r.tomb = tomb > 0 ? (uint64_t)tomb : 0;
    r.flags = g->flags;
    return r;
}

int store_commit(struct mkv_store *s, struct ix_wtx *w, const struct ix_ckpt *ck,
                 void (*extra)(struct mkv_store *s, void *arg), void *arg)
{
    int rv = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < w->nd && rv == 0; i++) {
        struct seg *g = seg_find(s, w->d[i].seg);
        struct ix_segrow r;
        if (!g || g->retired) continue;
        r = row_of(g, w->d[i].live, w->d[i].tomb);
        rv = ix_put_seg(w, g->id, &r);
    }
    for (size_t i = 0; i < s->norder && rv == 0; i++) {
        struct seg *g = s->order[i];
        struct ix_segrow r;
        if (!g->row_dirty) continue;
        r = row_of(g, 0, 0);
        for (size_t k = 0; k < w->nd; k++)
            if (w->d[k].seg == g->id) r = row_of(g, w->d[k].live, w->d[k].tomb);
        rv = ix_put_seg(w, g->id, &r);
    }
    if (rv == 0 && ck) rv = ix_put_ckpt(w, ck);
    if (rv == 0) rv = ix_put_u64(w, "next_seg", s->next_seg_id);
    if (rv) {
        pthread_mutex_unlock(&s->lock);
        ix_wtx_abort(w);
        return rv;
    }
    {
        struct ix_delta *d = w->d;
        size_t nd = w->nd;
        int64_t dv = w->dversions;
        w->d = NULL; /* keep the deltas past the commit, which frees w's memory */
        rv = ix_wtx_commit(w);
        if (rv == 0) {
            for (size_t i = 0; i < nd; i++) {
                struct seg *g = seg_find(s, d[i].seg);
                struct ix_segrow r;
                if (!g || g->retired) continue;
                r = row_of(g, d[i].live, d[i].tomb);
                g->live = r.live;
                g->tomb = r.tomb;
            }
            for (size_t i = 0; i < s->norder; i++) s->order[i]->row_dirty = 0;
            s->versions += dv;
            if (ck) s->ckpt_seg = ck->seg;
            if (extra) extra(s, arg);
            s->txns++;
        }
        free(d);
    }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

void store_fault_set(struct mkv_store *s, int where, int nth, int err)
{
    s->fault.where = where;
    s->fault.nth = nth;
    s->fault.err = err;
}

void store_fsync_observe(void *arg, uint64_t ns)
{
    struct mkv_store *s = arg;
    mkv_hist_observe(&s->fsync_hist, ns);
    mkv_counter_add(&s->st_fsyncs, 1);
}

/* ------------------------------------------------------------------------
 * Epoch pins and removal of retired segments
 * ------------------------------------------------------------------------ */
uint64_t store_pin(struct mkv_store *s)
{
    if (s->pin_n && s->pins[(s->pin_first + s->pin_n - 1) % s->pin_cap].epoch == s->epoch) {
        s->pins[(s->pin_first + s->pin_n - 1) % s->pin_cap].count++;
        return s->epoch;
    }
    if (s->pin_n == s->pin_cap) {
        size_t cap = s->pin_cap ? s->pin_cap * 2 : 16;
        struct pin *p = malloc(cap * sizeof *p);
        if (!p) {
            /* Fall back to pinning the oldest entry: safe, only delays removal. */
            s->pins[s->pin_first].count++;
            return s->pins[s->pin_first].epoch;
        }
        for (size_t i = 0; i < s->pin_n; i++) p[i] = s->pins[(s->pin_first + i) % s->pin_cap];
        free(s->pins);
        s->pins = p;
        s->pin_cap = cap;
        s->pin_first = 0;
    }
    s->pins[(s->pin_first + s->pin_n) % s->pin_cap].epoch = s->epoch;
    s->pins[(s->pin_first + s->pin_n) % s->pin_cap].count = 1;
    s->pin_n++;
    return s->epoch;
}

void store_unpin(struct mkv_store *s, uint64_t epoch)
{
    for (size_t i = 0; i < s->pin_n; i++) {
        struct pin *p = &s->pins[(s->pin_first + i) % s->pin_cap];
        if (p->epoch == epoch && p->count) {
            p->count--;
            break;
        }
    }
    while (s->pin_n && s->pins[s->pin_first].count == 0) {
        s->pin_first = (s->pin_first + 1) % s->pin_cap;
        s->pin_n--;
    }
    store_maybe_reap(s);
}

void store_retire(struct mkv_store *s, struct seg *g)
{
    if (s->nretired == s->cretired) {
        size_t cap = s->cretired ? s->cretired * 2 : 16;
        struct seg **r = realloc(s->retired, cap * sizeof *r);
        if (!r) return; /* stays in the hash; removed at close */
        s->retired = r;
        s->cretired = cap;
    }
    g->retired = 1;
    g->retire_epoch = s->epoch++;
    s->retired[s->nretired++] = g;
}

struct reap
{
    struct mkv_store *s;
    uv_work_t work;
    struct seg **g;
    size_t n;
};

static void reap_work(uv_work_t *w)
{
    struct reap *r = MKV_CONTAINER_OF(w, struct reap, work);
    char path[4096];
    pthread_rwlock_wrlock(&r->s->fd_lock);
    for (size_t i = 0; i < r->n; i++) {
        if (r->g[i]->fd >= 0) close(r->g[i]->fd);
        r->g[i]->fd = -1;
    }
    pthread_rwlock_unlock(&r->s->fd_lock);
    for (size_t i = 0; i < r->n; i++) {
        seg_path(r->s, r->g[i]->id, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT)
            MKV_ERROR(COMP, "cannot remove compacted segment path=%s err=%d", path, errno);
    }
    if (r->n) store_fsync_dir(r->s);
}

static void reap_after(uv_work_t *w, int status)
{
    struct reap *r = MKV_CONTAINER_OF(w, struct reap, work);
    struct mkv_store *s = r->s;
    (void)status;
    for (size_t i = 0; i < r->n; i++) free(r->g[i]);
    free(r->g);
    free(r);
    s->reaping = 0;
    store_maybe_reap(s);
    compact_reaped(s);
    store_maybe_close(s);
}

void store_maybe_reap(struct mkv_store *s)
{
    uint64_t min = s->pin_n ? s->pins[s->pin_first].epoch : UINT64_MAX;
    struct reap *r;
    size_t k = 0;
    if (s->reaping || !s->nretired) return;
    r = calloc(1, sizeof *r);
    if (!r) return;
    r->g = calloc(s->nretired, sizeof *r->g);
    if (!r->g) {
        free(r);
        return;
    }
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nretired; i++) {
        struct seg *g = s->retired[i];
        if (g->retire_epoch < min) {
            seg_forget(s, g);
            r->g[r->n++] = g;
        } else {
            s->retired[k++] = g;
        }
    }
    s->nretired = k;
    pthread_mutex_unlock(&s->lock);
    if (!r->n) {
        free(r->g);
        free(r);
        return;
    }
    r->s = s;
    s->reaping = 1;
    uv_queue_work(s->loop, &r->work, reap_work, reap_after);
}

/* ------------------------------------------------------------------------
 * Block verification (read path and scrubber)
 * ------------------------------------------------------------------------ */
/* Remembers (c, v) as holding a bad block (the first MKV_STORE_BAD_MAX). */
void mkv_store_bad_note(struct mkv_store *s, uint64_t c, uint32_t v)
{
    pthread_mutex_lock(&s->bad_lock);
    for (unsigned i = 0; i < s->nbad; i++)
        if (s->bad[i].chunk_id == c && s->bad[i].version == v) goto out;
    if (s->nbad < MKV_STORE_BAD_MAX) {
        s->bad[s->nbad].chunk_id = c;
        s->bad[s->nbad++].version = v;
        s->bad_gen++;
    }
out:
    pthread_mutex_unlock(&s->bad_lock);
}

int mkv_store_bad(struct mkv_store *s, uint64_t chunk_id, uint32_t version)
{
    int found = 0;
    pthread_mutex_lock(&s->bad_lock);
    for (unsigned i = 0; i < s->nbad && !found; i++)
        found = s->bad[i].chunk_id == chunk_id && s->bad[i].version == version;
    pthread_mutex_unlock(&s->bad_lock);
    return found;
}

void mkv_store_bad_clear(struct mkv_store *s, uint64_t chunk_id, uint32_t version)
{
    pthread_mutex_lock(&s->bad_lock);
    for (unsigned i = 0; i < s->nbad;) {
        if (s->bad[i].chunk_id == chunk_id && (!version || s->bad[i].version == version))
            s->bad[i] = s->bad[--s->nbad];
        else i++;
    }
    pthread_mutex_unlock(&s->bad_lock);
}

uint64_t mkv_store_bad_list(struct mkv_store *s, struct mkv_store_bad *out, unsigned max,
                            unsigned *n)
{
    uint64_t gen;
    pthread_mutex_lock(&s->bad_lock);
    *n = 0;
    for (unsigned i = 0; i < s->nbad && *n < max; i++) out[(*n)++] = s->bad[i];
    gen = s->bad_gen;
    pthread_mutex_unlock(&s->bad_lock);
    return gen;
}

int store_check_block(struct mkv_store *s, uint64_t c, uint32_t v, uint32_t b,
                      const struct ix_blk *e, const uint8_t *hdr, uint8_t *payload, uint8_t *plain)
{
    struct wal_hdr h;
    const char *why;
    int rv;
    if (wal_hdr_decode(hdr, &h) != 0) {
        rv = MKV_ECHECKSUM;
        why = "header";
    } else if (h.type != WAL_BLOCK || h.chunk != c || h.version != e->rec_version || h.arg != b ||
               h.lsn != e->lsn || h.stored_len != e->stored_len ||
               h.data_len != e->data_len || h.flags != e->flags) {
        rv = -EIO;
        why = "index-mismatch";
    } else if ((rv = wal_payload_check(&h, payload)) != 0) {
        why = "payload";
    } else if (h.flags && (rv = xf_decode(&s->xf, &h, hdr, payload, plain)) != 0) {
        why = rv == -ENOKEY ? "no-key" : "decode";
    } else {
        return 0;
    }
    mkv_counter_add(&s->st_corrupt, 1);
    mkv_store_bad_note(s, c, v);
    MKV_ERROR(COMP,
              "block failed verification chunk=%016" PRIx64 " version=%u block=%u segment=%016" PRIx64
              " offset=%" PRIu64 " reason=%s",
              c, e->rec_version, b, e->seg, e->off, why);
    return rv;
}

/* ------------------------------------------------------------------------
 * Periodic index sync
 * ------------------------------------------------------------------------ */
static void sync_work(uv_work_t *w)
{
    struct mkv_store *s = MKV_CONTAINER_OF(w, struct mkv_store, sync_work);
    uint64_t txnid = ix_last_txnid(&s->ix);
    int closing = s->close_stage == 1; /* set on the loop before this job was queued */
    if (closing) {
        /* Nothing pins retired segments any more: remove them now. */
        for (size_t i = 0; i < s->nretired; i++) {
            char path[4096];
            seg_path(s, s->retired[i]->id, path, sizeof path);
            unlink(path);
        }
        if (s->nretired) store_fsync_dir(s);
    }
    s->sync_rc = ix_sync(&s->ix);
    if (s->sync_rc == 0) s->sync_rc = state_write(s, closing, txnid);
}

static void close_step(struct mkv_store *s);

static void sync_after(uv_work_t *w, int status)
{
    struct mkv_store *s = MKV_CONTAINER_OF(w, struct mkv_store, sync_work);
    (void)status;
    s->syncing = 0;
    if (s->sync_rc) MKV_WARN(COMP, "index sync failed err=%d", s->sync_rc);
    if (s->close_stage == 1) {
        s->close_stage = 2;
        close_step(s);
        return;
    }
    store_maybe_close(s);
}

static void start_sync(struct mkv_store *s)
{
    if (s->syncing) return;
    s->syncing = 1;
    pthread_mutex_lock(&s->lock);
    s->txns_synced = s->txns;
    pthread_mutex_unlock(&s->lock);
    uv_queue_work(s->loop, &s->sync_work, sync_work, sync_after);
}

static void on_sync_timer(uv_timer_t *t)
{
    struct mkv_store *s = t->data;
    uint64_t txns;
    pthread_mutex_lock(&s->lock);
    txns = s->txns;
    pthread_mutex_unlock(&s->lock);
    if (!s->closing && txns != s->txns_synced) start_sync(s);
}

static void on_compact_timer(uv_timer_t *t)
{
    struct mkv_store *s = t->data;
    if (!s->closing) compact_start(s, NULL);
}

/* ------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------ */
static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

static void store_free(struct mkv_store *s)
{
    pthread_rwlock_wrlock(&s->fd_lock);
    pthread_rwlock_unlock(&s->fd_lock); /* no cached read is left in flight */
    for (size_t i = 0; i < s->hcap; i++) {
        struct seg *g = s->hash ? s->hash[i] : NULL;
        if (!g) continue;
        if (g->fd >= 0) close(g->fd);
        free(g);
    }
    free(s->hash);
    free(s->order);
    free(s->retired);
    free(s->pins);
    if (s->ix.open) ix_close(&s->ix);
    xf_pool_free(&s->pool);
    xf_free(&s->xf);
    if (s->wal_dfd >= 0) close(s->wal_dfd);
    if (s->lock_fd >= 0) close(s->lock_fd);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->bad_lock);
    pthread_rwlock_destroy(&s->fd_lock);
    free(s->dir);
    free(s->wal_dir);
    free(s->ix_dir);
    free(s->state_path);
    free(s);
}

int mkv_store_open(uv_loop_t *loop, const struct mkv_store_opts *o, struct mkv_store **out,
                   char *err, size_t errlen)
{
    struct mkv_store *s;
    int rv;

    if (!loop || !o || !o->dir || !out) return mkv_errf(err, errlen, -EINVAL, "missing argument");
    if (o->compact_percent > 100) return mkv_errf(err, errlen, -EINVAL, "compact_percent over 100");
    if (o->segment_size && o->segment_size < MIN_SEGMENT_SIZE)
        return mkv_errf(err, errlen, -EINVAL, "segment_size under %u", MIN_SEGMENT_SIZE);
    s = calloc(1, sizeof *s);
    if (!s) return mkv_errf(err, errlen, -ENOMEM, "store");
    s->loop = loop;
    s->o = *o;
    s->o.enc_key = NULL; /* copied into s->xf; the caller's buffer is not kept */
    if (!s->o.segment_size) s->o.segment_size = 256ull << 20;
    if (!s->o.group_commit_bytes) s->o.group_commit_bytes = 16ull << 20;
    if (!s->o.compact_percent) s->o.compact_percent = 50;
    s->lock_fd = s->wal_dfd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->bad_lock, NULL);
    pthread_rwlock_init(&s->fd_lock, NULL);
    s->dir = strdup(o->dir);
    s->wal_dir = path_join(o->dir, "wal");
    s->ix_dir = path_join(o->dir, "index");
    s->state_path = path_join(o->dir, "index.state");
    s->o.dir = s->dir;
    if (!s->dir || !s->wal_dir || !s->ix_dir || !s->state_path) {
        rv = mkv_errf(err, errlen, -ENOMEM, "store");
        goto err_free;
    }
    mkv_crc32c(0, "", 0); /* initialise the tables before worker threads use them */
    if ((mkdir(s->dir, 0750) != 0 && errno != EEXIST) ||
        (mkdir(s->wal_dir, 0750) != 0 && errno != EEXIST)) {
        rv = mkv_errf(err, errlen, -errno, "mkdir %s", s->wal_dir);
        goto err_free;
    }
    {
        char *lp = path_join(s->dir, "LOCK");
        if (!lp) {
            rv = mkv_errf(err, errlen, -ENOMEM, "store");
            goto err_free;
        }
        s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        free(lp);
    }
    if (s->lock_fd < 0) {
        rv = mkv_errf(err, errlen, -errno, "open %s/LOCK", s->dir);
        goto err_free;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rv = mkv_errf(err, errlen, errno == EWOULDBLOCK ? -EBUSY : -errno,
                      "store %s is in use", s->dir);
        goto err_free;
    }
    s->wal_dfd = open(s->wal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->wal_dfd < 0) {
        rv = mkv_errf(err, errlen, -errno, "open %s", s->wal_dir);
        goto err_free;
    }
    rv = xf_init(&s->xf, o->compression, o->compression_level, o->enc_key, err, errlen);
    if (rv) goto err_free;
    rv = xf_pool_init(&s->pool, 512);
    if (rv) {
        mkv_errf(err, errlen, rv, "buffer pool");
        goto err_free;
    }
    mkv_boot_id(s->boot_id, sizeof s->boot_id);
    rv = recover(s, err, errlen); /* before io_open: recovery uses plain pread/pwrite */
    if (rv) goto err_free;
    rv = io_open(loop, o->io_backend, &s->io, err, errlen);
    if (rv) goto err_free;
    io_set_fsync_observer(s->io, store_fsync_observe, s);
    rv = flush_init(s);
    if (rv) {
        mkv_errf(err, errlen, rv, "flush");
        goto err_io;
    }
    rv = compact_init(s);
    if (rv) {
        mkv_errf(err, errlen, rv, "compaction");
        goto err_flush;
    }
    uv_timer_init(loop, &s->flush_timer);
    uv_timer_init(loop, &s->sync_timer);
    uv_timer_init(loop, &s->compact_timer);
    s->flush_timer.data = s->sync_timer.data = s->compact_timer.data = s;
    uv_timer_start(&s->sync_timer, on_sync_timer, SYNC_INTERVAL_MS, SYNC_INTERVAL_MS);
    uv_timer_start(&s->compact_timer, on_compact_timer, COMPACT_INTERVAL_MS, COMPACT_INTERVAL_MS);
    uv_unref((uv_handle_t *)&s->sync_timer);
    uv_unref((uv_handle_t *)&s->compact_timer);
    MKV_INFO(COMP, "store open dir=%s backend=%s segments=%zu versions=%" PRId64 " lsn=%" PRIu64,
             s->dir, io_name(s->io), s->norder, s->versions, s->durable_lsn);
    *out = s;
    return 0;
err_flush:
    flush_free(s);
err_io:
    io_close(s->io, NULL, NULL); /* an io_uring poll handle finishes closing on the next loop turn */
err_free:
    store_free(s);
    return rv;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct mkv_store *s = h->data;
    close_step(s);
}

static void on_io_closed(void *data)
{
    close_step(data);
}

/* close_stage: 1 final index sync running; 2 closing handles; 3 done. */
static void close_step(struct mkv_store *s)
{
    if (s->close_stage == 2) {
        s->close_stage = 3;
        s->handles = 4;
        uv_close((uv_handle_t *)&s->flush_timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->sync_timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->compact_timer, on_handle_closed);
        io_close(s->io, on_io_closed, s);
        return;
    }
    if (s->close_stage == 3 && --s->handles == 0) {
        void (*cb)(void *) = s->close_cb;
        void *data = s->close_data;
        flush_free(s);
        compact_free(s);
        MKV_INFO(COMP, "store closed dir=%s", s->dir);
        store_free(s);
        if (cb) cb(data);
    }
}

void store_maybe_close(struct mkv_store *s)
{
    if (!s->closing || s->close_stage != 0) return;
    if (!flush_idle(s) || s->reads || s->scrubs || !compact_idle(s) || s->syncing ||
        s->reaping || io_inflight(s->io))
        return;
    s->close_stage = 1;
    start_sync(s);
}

void mkv_store_close(struct mkv_store *s, void (*cb)(void *data), void *data)
{
    if (s->closing) return;
    __atomic_store_n(&s->closing, 1, __ATOMIC_RELAXED); /* workers poll it */
    s->close_cb = cb;
    s->close_data = data;
    uv_timer_stop(&s->sync_timer);
    uv_timer_stop(&s->compact_timer);
    store_maybe_close(s);
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */
static void req_init(struct mkv_store *s, struct mkv_store_req *req, int kind, uint64_t c,
                     uint32_t v, mkv_store_cb cb)
{
    req->store = s;
    req->cb = cb;
    req->next = NULL;
    req->kind = kind;
    req->chunk_id = c;
    req->version = v;
    req->base_version = 0;
    req->buf = NULL;
    req->len = 0;
    req->done = 0;
    req->offset = 0;
    req->status = 0;
    req->pending = 0;
    req->priv = NULL;
    req->start_ns = mkv_mono_ns();
}

int mkv_store_write(struct mkv_store *s, struct mkv_store_req *req, uint64_t chunk_id,
                    uint32_t version, uint32_t base_version, uint64_t offset, const void *buf,
                    size_t len, mkv_store_cb cb)
{
    if (!s || !req || !cb || version == 0 || base_version == version) return -EINVAL;
    if (offset % MKV_BLOCK_SIZE || offset > MKV_CHUNK_SIZE || len > MKV_CHUNK_SIZE - offset ||
        (len && !buf))
        return -EINVAL;
    if (s->closing) return -ECANCELED;
    req_init(s, req, RQ_WRITE, chunk_id, version, cb);
    req->base_version = base_version;
    req->offset = offset;
    req->buf = (void *)buf;
    req->len = len;
    flush_enqueue(s, req);
    return 0;
}

int mkv_store_read(struct mkv_store *s, struct mkv_store_req *req, uint64_t chunk_id,
                   uint32_t version, uint64_t offset, void *buf, size_t len, mkv_store_cb cb)
{
    if (!s || !req || !cb || version == 0) return -EINVAL;
    if (offset > MKV_CHUNK_SIZE || len > MKV_CHUNK_SIZE - offset || (len && !buf)) return -EINVAL;
    if (s->closing) return -ECANCELED;
    req_init(s, req, RQ_READ, chunk_id, version, cb);
    req->offset = offset;
    req->buf = buf;
    req->len = len;
    return read_start(s, req);
}

int mkv_store_commit(struct mkv_store *s, struct mkv_store_req *req, uint64_t chunk_id,
                     uint32_t version, mkv_store_cb cb)
{
    if (!s || !req || !cb || version == 0) return -EINVAL;
    if (s->closing) return -ECANCELED;
    req_init(s, req, RQ_COMMIT, chunk_id, version, cb);
    flush_enqueue(s, req);
    return 0;
}

int mkv_store_delete(struct mkv_store *s, struct mkv_store_req *req, uint64_t chunk_id,
                     uint32_t version, mkv_store_cb cb)
{
    if (!s || !req || !cb) return -EINVAL;
    if (s->closing) return -ECANCELED;
    mkv_store_bad_clear(s, chunk_id, version);
    req_init(s, req, RQ_DELETE, chunk_id, version, cb);
    flush_enqueue(s, req);
    return 0;
}

int mkv_store_compact(struct mkv_store *s, struct mkv_store_req *req, mkv_store_cb cb)
{
    if (!s || !req || !cb) return -EINVAL;
    if (s->closing) return -ECANCELED;
    req_init(s, req, RQ_COMPACT, 0, 0, cb);
    compact_start(s, req);
    return 0;
}

int mkv_store_scrub(struct mkv_store *s, struct mkv_store_req *req, uint64_t *bad, mkv_store_cb cb)
{
    if (!s || !req || !cb || !bad) return -EINVAL;
    if (s->closing) return -ECANCELED;
    req_init(s, req, RQ_SCRUB, 0, 0, cb);
    return scrub_start(s, req, bad);
}

/* ------------------------------------------------------------------------
 * Listings and stats
 * ------------------------------------------------------------------------ */
struct list_prep
{
    int64_t cutoff;
    int (*fn)(void *arg, uint64_t chunk_id, uint32_t version);
    void *arg;
};

static int list_prep_cb(void *arg, uint64_t c, uint32_t v, const struct ix_ver *vi)
{
    struct list_prep *lp = arg;
    if (vi->state != IX_PREPARED || vi->ctime > lp->cutoff) return 0;
    return lp->fn(lp->arg, c, v);
}

int mkv_store_list_prepared(struct mkv_store *s, uint64_t age_ms,
                            int (*fn)(void *arg, uint64_t chunk_id, uint32_t version), void *arg)
{
    struct list_prep lp = {mkv_now_ns() - (int64_t)(age_ms * 1000000ull), fn, arg};
    MDB_txn *t;
    int rv;
    if (!s || !fn) return -EINVAL;
    rv = ix_rd_begin(&s->ix, &t);
    if (rv) return rv;
    rv = ix_each_ver(&s->ix, t, list_prep_cb, &lp);
    ix_rd_end(t);
    return rv < 0 ? rv : 0;
}

struct list_all
{
    struct mkv_store *s;
    MDB_txn *t;
    int (*fn)(void *arg, const struct mkv_store_version_info *vi);
    void *arg;
};

static int list_all_cb(void *arg, uint64_t c, uint32_t v, const struct ix_ver *vi)
{
    struct list_all *la = arg;
    struct mkv_store_version_info info;
    info.chunk_id = c;
    info.version = v;
    info.base_version = vi->base;
    info.state = vi->state == IX_PREPARED    ? MKV_VER_PREPARED
                 : vi->state == IX_COMMITTED ? MKV_VER_COMMITTED
                                             : MKV_VER_FOLDED;
    info.ctime_ns = vi->ctime;
    info.size = vi->state == IX_FOLDED ? 0 : ix_ver_size(&la->s->ix, la->t, c, v);
    return la->fn(la->arg, &info);
}

int mkv_store_list_versions(struct mkv_store *s,
                            int (*fn)(void *arg, const struct mkv_store_version_info *vi),
                            void *arg)
{
    struct list_all la = {s, NULL, fn, arg};
    int rv;
    if (!s || !fn) return -EINVAL;
    rv = ix_rd_begin(&s->ix, &la.t);
    if (rv) return rv;
    rv = ix_each_ver(&s->ix, la.t, list_all_cb, &la);
    ix_rd_end(la.t);
    return rv < 0 ? rv : 0;
}

void mkv_store_get_stats(struct mkv_store *s, struct mkv_store_stats *out)
{
    struct statvfs vfs;
    memset(out, 0, sizeof *out);
    if (statvfs(s->dir, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        out->capacity = (uint64_t)vfs.f_blocks * vfs.f_frsize;
        out->free = avail > s->o.reserve_bytes ? avail - s->o.reserve_bytes : 0;
    }
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->norder; i++) {
        out->used += s->order[i]->size;
        out->live += s->order[i]->live;
    }
    out->segments = s->norder;
    out->chunks = s->versions > 0 ? (uint64_t)s->versions : 0;
    out->lsn = s->durable_lsn;
    pthread_mutex_unlock(&s->lock);
    out->fsyncs = mkv_counter_get(&s->st_fsyncs);
    out->bytes_written = mkv_counter_get(&s->st_bytes_written);
    out->bytes_read = mkv_counter_get(&s->st_bytes_read);
    out->corrupt_blocks = mkv_counter_get(&s->st_corrupt);
    out->compactions = mkv_counter_get(&s->st_compactions);
    out->torn_tails = mkv_counter_get(&s->st_torn);
    out->skipped_regions = mkv_counter_get(&s->st_skipped);
    out->replayed_records = mkv_counter_get(&s->st_replayed);
    out->io_backend = io_name(s->io);
    mkv_hist_read(&s->fsync_hist, &out->fsync_latency);
}
