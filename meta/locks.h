/* minikv meta: advisory locks (fcntl record locks and flock) for FUSE
 * mounts, kept in the leader's memory.
 *
 * A lock is held by a holder (an opaque pointer: the connection it came
 * on) and an owner the client names (per process for fcntl locks, per open
 * file for flock), on a range of an inode. fcntl locks follow POSIX: a
 * holder's new lock replaces what it held in the range (splitting and
 * merging ranges), read locks share, write locks exclude. flock locks are
 * whole-file and apart from fcntl locks, as on Linux. When the holder goes
 * (its connection closes), its locks go. Nothing here is replicated: a new
 * leader starts empty. */
#ifndef MKV_META_LOCKS_H
#define MKV_META_LOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "minikv/wire.h"

struct mkv_locks;

/* max: locks held in all (beyond it new ones get -ENOLCK). */
struct mkv_locks *mkv_locks_new(size_t max);
void mkv_locks_free(struct mkv_locks *l);
/* Applies q for holder: 0 (rep filled for MKV_LOCK_TEST), -EAGAIN when a
 * lock of someone else conflicts, -EINVAL for a bad request, -ENOLCK or
 * -ENOMEM. */
int mkv_locks_apply(struct mkv_locks *l, const void *holder, const struct mkv_lock_req *q,
                    struct mkv_lock_rep *rep);
/* Drops every lock of holder. */
void mkv_locks_drop_holder(struct mkv_locks *l, const void *holder);
size_t mkv_locks_count(const struct mkv_locks *l);

#endif /* MKV_META_LOCKS_H */
