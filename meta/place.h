/* minikv meta: vshard placement, a pure function of the chunk servers, what
 * the leader knows of them, and the current map (no I/O, no clock): the
 * leader runs it and proposes what changed (VSHARD_SET). */
#ifndef MKV_META_PLACE_H
#define MKV_META_PLACE_H
#include <stddef.h>
#include <stdint.h>

#include "minikv/vshard.h"

struct mkv_place_node
{
    uint64_t id;
    char zone[65];
    int up;       /* heard from lately: may be given new replicas */
    int draining; /* being emptied (minikvctl drain): gets none */
    int dead;     /* declared dead: its replicas are given up */
};

/* Fills out[] from in[] (both MKV_VSHARDS long, distinct):
 *  - a replica whose node is dead or no longer listed is dropped, unless
 *    no other replica that is not filling would remain (the data would
 *    then be nowhere);
 *  - a vshard with fewer than `replicas` replicas on nodes that are
 *    neither dead nor draining (a node down for a while still counts)
 *    gets the least loaded up nodes it lacks, in a zone it does not use yet while one is
 *    left; they are filling unless the map is new (no vshard placed yet);
 *  - a vshard with more replicas than asked and none filling drops the
 *    surplus, if that leaves `replicas` up ones: dead, draining and down
 *    ones first, then the most loaded;
 *  - while fewer than max_moves vshards have a filling replica, a vshard
 *    with a replica on a node above the mean gets one on a node below it
 *    (the surplus is dropped once the new one has filled).
 * epoch: the epoch to give vshards that change. Returns how many
 * changed. */
unsigned mkv_place(const struct mkv_place_node *nodes, size_t nn, unsigned replicas,
                   unsigned max_moves, uint64_t epoch, const struct mkv_vshard *in,
                   struct mkv_vshard *out);
#endif
