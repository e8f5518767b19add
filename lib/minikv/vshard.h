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

/* A chunk id's top MKV_COPIES_BITS bits carry the copies its bucket asks
 * for (its replication factor), 0 meaning the cluster's factor; the
 * metadata service hands out ids below 1 << MKV_COPIES_SHIFT. A chunk of c
 * copies, c below the cluster's factor, is written to c of its vshard's
 * replicas only (mkv_route_narrow), and reads fail over to the others. */
#define MKV_COPIES_SHIFT 60
#define MKV_COPIES_BITS 4
#define MKV_CHUNK_ID_LIMIT (1ull << MKV_COPIES_SHIFT)
static inline unsigned mkv_chunk_copies(uint64_t chunk_id)
{
    return (unsigned)(chunk_id >> MKV_COPIES_SHIFT);
}
static inline uint64_t mkv_chunk_with_copies(uint64_t chunk_id, unsigned copies)
{
    if (copies >= (1u << MKV_COPIES_BITS)) copies = 0;
    return (chunk_id & (MKV_CHUNK_ID_LIMIT - 1)) | ((uint64_t)copies << MKV_COPIES_SHIFT);
}
/* The copies chunk_id asks for, when fewer than the cluster's factor
 * replicas; 0 when it goes to every replica. */
static inline unsigned mkv_chunk_reduced(uint64_t chunk_id, unsigned replicas)
{
    unsigned c = mkv_chunk_copies(chunk_id);
    return c && c < replicas ? c : 0;
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
