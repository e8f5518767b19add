/* minikv meta: advisory locks (see locks.h).
 *
 * Locks live in a hash of inodes (chained); an inode's locks are a short
 * unsorted list, scanned for conflicts. A holder's own locks on an inode
 * never overlap (a new lock first cuts what it covers), and touching ones
 * of the same type are merged, as POSIX describes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta/locks.h"

#define NBUCKETS 4096u

struct lk
{
    uint64_t ino, owner, start, end;
    const void *holder;
    uint32_t pid;
    uint8_t type, flock;
    struct lk *next;
};

struct mkv_locks
{
    struct lk *b[NBUCKETS];
    size_t count, max;
};

struct mkv_locks *mkv_locks_new(size_t max)
{
    struct mkv_locks *l = calloc(1, sizeof *l);
    if (l) l->max = max;
    return l;
}

void mkv_locks_free(struct mkv_locks *l)
{
    if (!l) return;
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct lk *k = l->b[i], *next;
        for (; k; k = next) {
            next = k->next;
            free(k);
        }
    }
    free(l);
}

size_t mkv_locks_count(const struct mkv_locks *l)
{
    return l->count;
}

static struct lk **bucket(struct mkv_locks *l, uint64_t ino)
{
    return &l->b[(ino * 0x9E3779B97F4A7C15ull) >> 52 & (NBUCKETS - 1)];
}

static int mine(const struct lk *k, const void *holder, const struct mkv_lock_req *q, int flock)
{
    return k->ino == q->ino && k->flock == flock && k->holder == holder && k->owner == q->owner;
}

static int overlaps(const struct lk *k, uint64_t start, uint64_t end)
{
    return k->start <= end && start <= k->end;
}

/* The first lock of someone else that a lock of type on [start, end] would
 * conflict with. */
static const struct lk *conflict(struct mkv_locks *l, const void *holder,
                                 const struct mkv_lock_req *q, int flock, uint8_t type)
{
    for (const struct lk *k = *bucket(l, q->ino); k; k = k->next) {
        if (k->ino != q->ino || k->flock != flock || mine(k, holder, q, flock)) continue;
        if (!overlaps(k, q->start, q->end)) continue;
        if (type == MKV_LOCK_WRITE || k->type == MKV_LOCK_WRITE) return k;
    }
    return NULL;
}

static void unlink_free(struct mkv_locks *l, struct lk **pp)
{
    struct lk *k = *pp;
    *pp = k->next;
    free(k);
    l->count--;
}

int mkv_locks_apply(struct mkv_locks *l, const void *holder, const struct mkv_lock_req *q0,
                    struct mkv_lock_rep *rep)
{
    struct mkv_lock_req q = *q0;
    int flock = (q.flags & MKV_LOCK_FLOCK) != 0;
    struct lk **head = bucket(l, q.ino), **pp, *spare[2] = {NULL, NULL}, *nk;
    const struct lk *c;
    memset(rep, 0, sizeof *rep);
    if (q.type > MKV_LOCK_WRITE || q.ino == 0) return -EINVAL;
    if (flock) {
        q.start = 0;
        q.end = UINT64_MAX;
    }
    if (q.start > q.end) return -EINVAL;
    if (q.flags & MKV_LOCK_TEST) {
        rep->type = MKV_LOCK_UNLOCK;
        if (q.type != MKV_LOCK_UNLOCK && (c = conflict(l, holder, &q, flock, q.type))) {
            rep->type = c->type;
            rep->start = c->start;
            rep->end = c->end;
            rep->pid = c->pid;
        }
        return 0;
    }
    if (q.type != MKV_LOCK_UNLOCK) {
        if (conflict(l, holder, &q, flock, q.type)) return -EAGAIN;
        if (l->count + 2 > l->max) return -ENOLCK;
    }
    /* Room for the worst case first (one lock split in two, and the new
     * one), so that nothing fails half-way. */
    if (!(spare[0] = malloc(sizeof *spare[0])) || !(spare[1] = malloc(sizeof *spare[1]))) {
        free(spare[0]);
        return -ENOMEM;
    }
    /* Cut the holder's own locks out of the range. */
    for (pp = head; *pp;) {
        struct lk *k = *pp;
        if (!mine(k, holder, &q, flock) || !overlaps(k, q.start, q.end)) {
            pp = &k->next;
            continue;
        }
        if (k->start < q.start && k->end > q.end) { /* the range is inside: split */
            nk = spare[0];
            spare[0] = NULL;
            *nk = *k;
            nk->start = q.end + 1;
            k->end = q.start - 1;
            nk->next = k->next;
            k->next = nk;
            l->count++;
            pp = &nk->next;
        } else if (k->start < q.start) {
            k->end = q.start - 1;
            pp = &k->next;
        } else if (k->end > q.end) {
            k->start = q.end + 1;
            pp = &k->next;
        } else {
            unlink_free(l, pp);
        }
    }
    if (q.type != MKV_LOCK_UNLOCK) {
        /* Merge the holder's touching locks of the same type into it. */
        uint64_t start = q.start, end = q.end;
        for (pp = head; *pp;) {
            struct lk *k = *pp;
            if (mine(k, holder, &q, flock) && k->type == q.type &&
                ((start > 0 && k->end == start - 1) || (end < UINT64_MAX && k->start == end + 1))) {
                if (k->start < start) start = k->start;
                if (k->end > end) end = k->end;
                unlink_free(l, pp);
                pp = head; /* the grown range may now touch another */
                continue;
            }
            pp = &k->next;
        }
        nk = spare[1];
        spare[1] = NULL;
        memset(nk, 0, sizeof *nk);
        nk->ino = q.ino;
        nk->owner = q.owner;
        nk->holder = holder;
        nk->start = start;
        nk->end = end;
        nk->type = q.type;
        nk->flock = (uint8_t)flock;
        nk->pid = q.pid;
        nk->next = *head;
        *head = nk;
        l->count++;
    }
    free(spare[0]);
    free(spare[1]);
    return 0;
}

void mkv_locks_drop_holder(struct mkv_locks *l, const void *holder)
{
    if (!l->count) return;
    for (size_t i = 0; i < NBUCKETS; i++)
        for (struct lk **pp = &l->b[i]; *pp;) {
            if ((*pp)->holder == holder) unlink_free(l, pp);
            else pp = &(*pp)->next;
        }
}
