/* minikv meta: vshard placement (place.h). Deterministic: the same nodes
 * and map give the same result, ties going to the lower node id. */
#include <stdlib.h>
#include <string.h>

#include "meta/place.h"

struct placer
{
    const struct mkv_place_node *nodes;
    size_t nn;
    unsigned *load; /* replicas per node, by index in nodes */
};

static int node_index(const struct placer *pl, uint64_t id)
{
    for (size_t i = 0; i < pl->nn; i++)
        if (pl->nodes[i].id == id) return (int)i;
    return -1;
}

static const struct mkv_place_node *node_of(const struct placer *pl, uint64_t id)
{
    int i = node_index(pl, id);
    return i < 0 ? NULL : &pl->nodes[i];
}

static int is_filling(const struct mkv_vshard *v, unsigned i)
{
    return (v->filling >> i) & 1u;
}

/* Counts towards the factor: neither gone, dead nor draining. */
static int counts(const struct mkv_place_node *nd)
{
    return nd && !nd->dead && !nd->draining;
}

static int candidate(const struct mkv_place_node *nd)
{
    return counts(nd) && nd->up;
}

static void drop(struct mkv_vshard *v, unsigned i)
{
    uint8_t low = (uint8_t)(v->filling & ((1u << i) - 1u));
    uint8_t high = (uint8_t)(v->filling >> (i + 1));
    memmove(&v->rep[i], &v->rep[i + 1], (v->n - i - 1) * sizeof v->rep[0]);
    v->n--;
    v->rep[v->n] = 0;
    v->filling = (uint8_t)(low | (high << i));
}

static void add(struct mkv_vshard *v, uint64_t id, int filling)
{
    if (filling) v->filling |= (uint8_t)(1u << v->n);
    v->rep[v->n++] = id;
}

/* Whether another replica than i (not filling, on a node not dead) would
 * still hold v's data. */
static int held_elsewhere(const struct placer *pl, const struct mkv_vshard *v, unsigned i)
{
    for (unsigned j = 0; j < v->n; j++) {
        const struct mkv_place_node *nd = node_of(pl, v->rep[j]);
        if (j != i && !is_filling(v, j) && nd && !nd->dead) return 1;
    }
    return 0;
}

static int zone_used(const struct placer *pl, const struct mkv_vshard *v, const char *zone,
                     uint64_t except)
{
    if (!*zone) return 0;
    for (unsigned j = 0; j < v->n; j++) {
        const struct mkv_place_node *nd = node_of(pl, v->rep[j]);
        if (v->rep[j] != except && counts(nd) && strcmp(nd->zone, zone) == 0) return 1;
    }
    return 0;
}

/* The best node to add to v: a candidate v lacks, in a zone v does not
 * use if possible, then the least loaded, then the lowest id. -1: none. */
static int best_new(const struct placer *pl, const struct mkv_vshard *v)
{
    int best = -1, best_zone = 0;
    for (size_t i = 0; i < pl->nn; i++) {
        const struct mkv_place_node *nd = &pl->nodes[i];
        int zu;
        if (!candidate(nd) || mkv_vshard_find(v, nd->id) >= 0) continue;
        zu = zone_used(pl, v, nd->zone, 0);
        if (best >= 0) {
            if (zu != best_zone) {
                if (zu > best_zone) continue;
            } else if (pl->load[i] > pl->load[best] ||
                       (pl->load[i] == pl->load[best] && nd->id > pl->nodes[best].id)) {
                continue;
            }
        }
        best = (int)i;
        best_zone = zu;
    }
    return best;
}

static unsigned count_where(const struct placer *pl, const struct mkv_vshard *v,
                            int (*pred)(const struct mkv_place_node *))
{
    unsigned k = 0;
    for (unsigned j = 0; j < v->n; j++) k += (unsigned)pred(node_of(pl, v->rep[j]));
    return k;
}

/* Which replica of v to drop first: dead or gone, draining, down, then the
 * most loaded (the later one on a tie). */
static unsigned victim(const struct placer *pl, const struct mkv_vshard *v)
{
    unsigned best = 0;
    int best_rank = -1;
    unsigned best_load = 0;
    for (unsigned j = 0; j < v->n; j++) {
        int idx = node_index(pl, v->rep[j]);
        const struct mkv_place_node *nd = idx < 0 ? NULL : &pl->nodes[idx];
        int rank = !nd || nd->dead ? 3 : nd->draining ? 2 : !nd->up ? 1 : 0;
        unsigned ld = idx < 0 ? 0 : pl->load[idx];
        if (rank > best_rank || (rank == best_rank && ld >= best_load)) {
            best = j;
            best_rank = rank;
            best_load = ld;
        }
    }
    return best;
}

static void count_loads(struct placer *pl, const struct mkv_vshard *map)
{
    memset(pl->load, 0, pl->nn * sizeof pl->load[0]);
    for (unsigned s = 0; s < MKV_VSHARDS; s++)
        for (unsigned j = 0; j < map[s].n; j++) {
            int idx = node_index(pl, map[s].rep[j]);
            if (idx >= 0) pl->load[idx]++;
        }
}

/* One move towards an even spread: a replica from the most to the least
 * loaded candidate. Returns 0 when there is none worth making. */
static int move_one(struct placer *pl, struct mkv_vshard *map, unsigned replicas)
{
    int hi = -1, lo = -1;
    for (size_t i = 0; i < pl->nn; i++) {
        if (!counts(&pl->nodes[i])) continue;
        if (hi < 0 || pl->load[i] > pl->load[hi]) hi = (int)i;
        if (candidate(&pl->nodes[i]) && (lo < 0 || pl->load[i] < pl->load[lo])) lo = (int)i;
    }
    if (hi < 0 || lo < 0 || pl->load[hi] <= pl->load[lo] + 1) return 0;
    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        struct mkv_vshard *v = &map[s];
        uint64_t from = pl->nodes[hi].id, to = pl->nodes[lo].id;
        if (v->filling || v->n != replicas || v->n >= MKV_REPLICAS_MAX ||
            mkv_vshard_find(v, from) < 0 || mkv_vshard_find(v, to) >= 0 ||
            zone_used(pl, v, pl->nodes[lo].zone, from))
            continue;
        add(v, to, 1);
        pl->load[lo]++;
        pl->load[hi]--; /* dropped once the new replica has filled */
        return 1;
    }
    return 0;
}

unsigned mkv_place(const struct mkv_place_node *nodes, size_t nn, unsigned replicas,
                   unsigned max_moves, uint64_t epoch, const struct mkv_vshard *in,
                   struct mkv_vshard *out)
{
    struct placer pl = {nodes, nn, NULL};
    unsigned changed = 0, busy = 0;
    int fresh = 1;
    memcpy(out, in, MKV_VSHARDS * sizeof *out);
    if (replicas == 0) replicas = 1;
    if (replicas > MKV_REPLICAS_MAX - 1) replicas = MKV_REPLICAS_MAX - 1;
    if (nn == 0 || !(pl.load = calloc(nn, sizeof *pl.load))) return 0;
    for (unsigned s = 0; s < MKV_VSHARDS && fresh; s++) fresh = in[s].n == 0;

    /* Give up replicas on dead or vanished nodes, where the data is held
     * elsewhere. */
    for (unsigned s = 0; s < MKV_VSHARDS; s++)
        for (unsigned j = out[s].n; j-- > 0;) {
            const struct mkv_place_node *nd = node_of(&pl, out[s].rep[j]);
            if ((!nd || nd->dead) && held_elsewhere(&pl, &out[s], j)) drop(&out[s], j);
        }
    count_loads(&pl, out);

    /* Bring every vshard up to the factor. */
    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        struct mkv_vshard *v = &out[s];
        while (count_where(&pl, v, counts) < replicas && v->n < MKV_REPLICAS_MAX) {
            int b = best_new(&pl, v);
            if (b < 0) break;
            add(v, nodes[b].id, !fresh);
            pl.load[b]++;
        }
    }

    /* Drop the surplus of vshards that have filled. */
    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        struct mkv_vshard *v = &out[s];
        while (v->n > replicas && !v->filling && count_where(&pl, v, candidate) >= replicas) {
            unsigned j = victim(&pl, v);
            int idx = node_index(&pl, v->rep[j]);
            if (idx >= 0 && candidate(&nodes[idx]) && count_where(&pl, v, candidate) - 1 < replicas)
                break;
            if (idx >= 0) pl.load[idx]--;
            drop(v, j);
        }
        if (v->filling || v->n > replicas) busy++;
    }

    /* Even the spread, a few vshards at a time. */
    while (busy < max_moves && move_one(&pl, out, replicas)) busy++;

    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        if (out[s].n == in[s].n && out[s].filling == in[s].filling &&
            memcmp(out[s].rep, in[s].rep, sizeof out[s].rep) == 0)
            continue;
        out[s].epoch = epoch;
        changed++;
    }
    free(pl.load);
    return changed;
}
