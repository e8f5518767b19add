/* minikv: the vshard map in memory. A chunk's vshard is its id modulo
 * MKV_VSHARDS; the map (Raft state, VSHARD_LIST) gives each vshard the
 * ordered chunk servers that hold it. */
#ifndef MKV_VSHARD_H
#define MKV_VSHARD_H
#include <stddef.h>
#include <stdint.h>

#include "minikv/common.h"
#include "minikv/wire.h"

struct mkv_vshard
{
    uint64_t epoch; /* the map epoch of its last change */
    unsigned n;     /* replicas */
    uint64_t rep[MKV_REPLICAS_MAX];
    uint8_t filling; /* bit i: rep[i] is still filling (MKV_REPLICAS_MAX < 8) */
};

static inline unsigned mkv_vshard_of(uint64_t chunk_id)
{
    return (unsigned)(chunk_id % MKV_VSHARDS);
}

/* How many of n replicas are filled, given the filling bits. */
static inline unsigned mkv_vshard_nfilled(uint8_t filling, unsigned n)
{
    return (unsigned)__builtin_popcount(~(unsigned)filling & ((1u << n) - 1u));
}

/* A vshard_rec into v: -EPROTO unless the ids are non-zero and distinct,
 * at most MKV_REPLICAS_MAX, and filling a subset of replicas. */
MKV_API int mkv_vshard_from_rec(const struct mkv_vshard_rec *r, struct mkv_vshard *v);
/* v (vshard number vshard) as a record whose lists point into buf, which
 * must hold 16 * MKV_REPLICAS_MAX bytes. */
MKV_API void mkv_vshard_to_rec(const struct mkv_vshard *v, unsigned vshard, uint8_t *buf,
                               struct mkv_vshard_rec *r);
/* Index of id among v's replicas, or -1. */
MKV_API int mkv_vshard_find(const struct mkv_vshard *v, uint64_t id);
#endif
