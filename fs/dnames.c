/* minikv FUSE client: the names of directories this mount knows whole, so
 * that a lookup of a name that is not there needs no round trip.
 *
 * Every file a program creates is first looked up by the kernel, and that
 * lookup is negative: a round trip to the metadata service, one of the
 * three a small file costs (LOOKUP, CREATE, the write-back at close). A
 * directory this mount made itself starts empty and known whole; from then
 * on the mount adds and removes the names its own commands change. What
 * other clients (another mount, S3) add is learnt by a refresh: a listing
 * of the entries made since the largest cookie seen (cookies only grow, so
 * every entry made since has a larger one), at most once per entry_timeout.
 * A name absent from a set refreshed less than entry_timeout ago is
 * answered "no such entry" locally, with the same entry_timeout the kernel
 * would cache a negative answer of the cluster for: a name made elsewhere
 * shows within entry_timeout, as before. entry_timeout=0 turns this off.
 *
 * Names removed elsewhere stay in the set: their lookups go to the cluster,
 * which answers. A name the cluster says exists (EEXIST, a lookup) joins
 * the set. The sets are dropped when the connection to the metadata
 * service is made again: the service may have restarted without changes
 * it had answered early, and reuse cookies beyond the largest one seen. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"
#include "minikv/log.h"

/* Past this many names a directory is not tracked (memory). */
#define DN_MAX (1u << 20)
/* Entries per refresh page. */
#define DN_PAGE 1024

struct dnames
{
    char **tab; /* open addressing; NULL empty, DN_GONE removed */
    size_t cap, used, n;
    uint64_t cookie;      /* every entry with a larger cookie is new to us */
    uint64_t valid_until; /* loop ms: negative answers until then */
    uint64_t epoch;       /* mkv_client_meta_epoch when made */
    int refreshing;
};

static char dn_gone_mark;
#define DN_GONE (&dn_gone_mark)

static uint64_t dn_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* Rebuilds the table: twice the size, or the same when removed names (the
 * slots they leave) are what fills it. */
static int dn_grow(struct dnames *d)
{
    size_t cap = !d->cap ? 64 : d->n * 2 < d->cap ? d->cap : d->cap * 2;
    char **tab = calloc(cap, sizeof *tab);
    if (!tab) return -ENOMEM;
    for (size_t i = 0; i < d->cap; i++) {
        char *s = d->tab[i];
        if (!s || s == DN_GONE) continue;
        size_t j = dn_hash(s, strlen(s)) & (cap - 1);
        while (tab[j]) j = (j + 1) & (cap - 1);
        tab[j] = s;
    }
    free(d->tab);
    d->tab = tab;
    d->cap = cap;
    d->used = d->n;
    return 0;
}

/* The slot of name, or of where it would go (-1: table full). */
static long dn_slot(const struct dnames *d, const char *name, size_t len, int *found)
{
    size_t j, first_gone = SIZE_MAX;
    *found = 0;
    if (!d->cap) return -1;
    j = dn_hash(name, len) & (d->cap - 1);
    for (size_t k = 0; k < d->cap; k++, j = (j + 1) & (d->cap - 1)) {
        char *s = d->tab[j];
        if (!s) return (long)(first_gone != SIZE_MAX ? first_gone : j);
        if (s == DN_GONE) {
            if (first_gone == SIZE_MAX) first_gone = j;
        } else if (strlen(s) == len && !memcmp(s, name, len)) {
            *found = 1;
            return (long)j;
        }
    }
    return first_gone != SIZE_MAX ? (long)first_gone : -1;
}

static void dn_free(struct dnames *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->cap; i++)
        if (d->tab[i] && d->tab[i] != DN_GONE) free(d->tab[i]);
    free(d->tab);
    free(d);
}

void fino_names_drop(struct fino *fi)
{
    if (!fi->names) return;
    if (fi->names->refreshing) {
        fi->names->refreshing = 2; /* the refresh frees it when it returns */
        fi->names = NULL;
        return;
    }
    dn_free(fi->names);
    fi->names = NULL;
}

/* Adds name (len bytes) to fi's set; on failure the set goes. */
static void dn_put(struct fino *fi, const char *name, size_t len)
{
    struct dnames *d = fi->names;
    int found;
    long j;
    char *s;
    if (!d) return;
    if ((d->used + 1) * 4 >= d->cap * 3 && (d->n >= DN_MAX || dn_grow(d))) goto drop;
    j = dn_slot(d, name, len, &found);
    if (found) return;
    if (j < 0 || !(s = malloc(len + 1))) goto drop;
    memcpy(s, name, len);
    s[len] = '\0';
    if (!d->tab[j]) d->used++;
    d->tab[j] = s;
    d->n++;
    return;
drop:
    fino_names_drop(fi);
}

/* How long a set answers after it was made or refreshed, in loop ms. */
static uint64_t valid_ms(const struct fs *fs)
{
    return (uint64_t)(fs->o.entry_timeout * 1000.0);
}

void fs_names_new_dir(struct fs *fs, struct fino *fi)
{
    if (fs->o.entry_timeout <= 0 || fi->attr.type != MKV_T_DIR || fi->names) return;
    if (!(fi->names = calloc(1, sizeof *fi->names))) return;
    fi->names->valid_until = uv_now(&fs->loop) + valid_ms(fs);
    fi->names->epoch = mkv_client_meta_epoch(fs->client);
}

void fs_names_add(struct fs *fs, uint64_t dir, const char *name)
{
    struct fino *fi = fino_find(fs, dir);
    if (fi && fi->names) dn_put(fi, name, strlen(name));
}

void fs_names_del(struct fs *fs, uint64_t dir, const char *name)
{
    struct fino *fi = fino_find(fs, dir);
    int found;
    long j;
    if (!fi || !fi->names) return;
    j = dn_slot(fi->names, name, strlen(name), &found);
    if (!found) return;
    free(fi->names->tab[j]);
    fi->names->tab[j] = DN_GONE;
    fi->names->n--;
}

/* ---- refresh ---- */

struct dn_refresh
{
    struct fop op; /* only for fs_meta: never answered */
    struct dnames *d;
    uint64_t dir;
    uint64_t sent; /* loop ms at the first page */
};

static void refresh_page(struct dn_refresh *r, uint64_t cookie);

static void on_refresh(struct fop *op, int status, struct mkv_frame *reply)
{
    struct dn_refresh *r = MKV_CONTAINER_OF(op, struct dn_refresh, op);
    struct fs *fs = op->fs;
    struct dnames *d = r->d;
    struct fino *fi = fino_find(fs, r->dir);
    struct mkv_ino_readdir_rep rep;
    struct mkv_dirent de;
    struct mkv_slice cur;
    uint64_t last = d->cookie;
    if (d->refreshing == 2 || !fi || fi->names != d) {
        /* Dropped meanwhile. */
        d->refreshing = 0;
        if (!fi || fi->names != d) dn_free(d);
        free(r);
        return;
    }
    if (status || mkv_frame_decode(reply, &mkv_desc_ino_readdir_rep, &rep)) {
        MKV_DEBUG("fs", "name refresh failed dir=%llu status=%d", (unsigned long long)r->dir,
                  status);
        d->refreshing = 0;
        fino_names_drop(fi);
        free(r);
        return;
    }
    cur = rep.entries;
    while (mkv_msg_next(&mkv_desc_dirent, &cur, &de) == 1) {
        dn_put(fi, (const char *)de.name.p, de.name.len);
        if (fi->names != d) { /* dropped: too many, or no memory */
            d->refreshing = 0;
            dn_free(d);
            free(r);
            return;
        }
        if (de.cookie > last) last = de.cookie;
    }
    d->cookie = last;
    if (!rep.eof) {
        refresh_page(r, last);
        return;
    }
    d->refreshing = 0;
    d->valid_until = r->sent + valid_ms(fs);
    free(r);
}

static void refresh_page(struct dn_refresh *r, uint64_t cookie)
{
    struct mkv_ino_readdir_req q = {0};
    q.ino = r->dir;
    q.cookie = cookie;
    q.max = DN_PAGE;
    if (fs_meta(&r->op, MKV_MSG_INO_READDIR, &mkv_desc_ino_readdir_req, &q, on_refresh))
        on_refresh(&r->op, -EIO, NULL);
}

static void refresh_start(struct fs *fs, struct fino *fi)
{
    struct dn_refresh *r = calloc(1, sizeof *r);
    if (!r) return;
    r->op.fs = fs;
    r->d = fi->names;
    r->dir = fi->ino;
    r->sent = uv_now(&fs->loop);
    fi->names->refreshing = 1;
    refresh_page(r, fi->names->cookie);
}

double fs_names_absent(struct fs *fs, uint64_t dir, const char *name)
{
    struct fino *fi = fino_find(fs, dir);
    uint64_t now = uv_now(&fs->loop);
    int found;
    if (!fi || !fi->names || fi->dir_gone) return 0;
    if (fi->names->epoch != mkv_client_meta_epoch(fs->client)) {
        fino_names_drop(fi);
        return 0;
    }
    if (now >= fi->names->valid_until) {
        if (!fi->names->refreshing) refresh_start(fs, fi);
        return 0;
    }
    dn_slot(fi->names, name, strlen(name), &found);
    /* The kernel keeps the answer only as long as the set is good for. */
    return found ? 0 : (double)(fi->names->valid_until - now) / 1000.0;
}
