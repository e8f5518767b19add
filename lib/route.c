/* minikv client library: routing chunk data by the vshard map.
 *
 * The client loads the map (VSHARD_LIST, from the leader) the first time
 * it needs it, and again once it is older than MAP_MAX_AGE_MS or a chunk
 * server failed a call (the map may have changed). Until the first load
 * answers, writers and readers wait for it; later ones use the map they
 * have while the next loads. A cluster without a map and without
 * registered chunk servers (`minikv server`) is served by the chunk server
 * given in mkv_client_opts.chunk; one whose chunk servers have registered
 * but have no map yet (or one without any chunk server, when the client
 * was given none) makes writers wait for a map, up to 15 s, then answers
 * MKV_EUNAVAILABLE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define MAP_MAX_AGE_MS 10000
#define MAP_NONE_AGE_MS 1000 /* while the cluster has no map: look again soon */
#define MAP_WAIT_MS 200      /* registered chunk servers, no map yet: ask again */
#define MAP_WAIT_TRIES 75    /* for 15 s, then MKV_EUNAVAILABLE */

static struct chunk_node *node_find(struct mkv_client *c, uint64_t id)
{
    /* The newest entry for id: an address change appends one. */
    for (size_t i = c->ncnodes; i-- > 0;)
        if (c->cnodes[i].id == id) return &c->cnodes[i];
    return NULL;
}

/* The node id at address, making its peer if it is new (or moved). */
static int node_learn(struct mkv_client *c, uint64_t id, struct mkv_slice address)
{
    struct chunk_node *n = node_find(c, id);
    char addr[256];
    int rv;
    if (n && mkv_slice_eq(address, n->addr)) return 0;
    if (address.len == 0 || address.len >= sizeof addr) return -EINVAL;
    memcpy(addr, address.p, address.len);
    addr[address.len] = 0;
    if (c->ncnodes == c->cap_cnodes) {
        size_t cap = c->cap_cnodes ? 2 * c->cap_cnodes : 8;
        struct chunk_node *v = realloc(c->cnodes, cap * sizeof *v);
        if (!v) return -ENOMEM;
        c->cnodes = v;
        c->cap_cnodes = cap;
    }
    n = &c->cnodes[c->ncnodes];
    memset(n, 0, sizeof *n);
    n->id = id;
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    if ((rv = mkv_peer_new(c->loop, addr, &n->peer))) return rv;
    if ((rv = mkv_client_hello(c, n->peer, 1))) {
        mkv_peer_close(n->peer);
        return rv;
    }
    c->ncnodes++; /* kept until the client closes (its hello lives as long) */
    return 0;
}

static void map_serve(struct mkv_client *c, int status)
{
    struct mkv_map_wait *w;
    while ((w = c->map_wait_head)) {
        c->map_wait_head = w->next;
        w->cb(w, status);
    }
    c->map_wait_tail = NULL;
}

static int map_take(struct mkv_client *c, struct mkv_frame *reply)
{
    struct mkv_vshard_list_rep rep;
    struct mkv_vshard_rec r;
    struct mkv_node_rec nr;
    struct mkv_slice cur;
    struct mkv_vshard *map;
    int rv;
    if (mkv_frame_decode(reply, &mkv_desc_vshard_list_rep, &rep)) return -EPROTO;
    cur = rep.nodes;
    while ((rv = mkv_msg_next(&mkv_desc_node_rec, &cur, &nr)) == 1)
        if ((rv = node_learn(c, nr.id, nr.address))) return rv;
    if (rv < 0) return rv;
    if (!(map = calloc(MKV_VSHARDS, sizeof *map))) return -ENOMEM;
    cur = rep.vshards;
    while ((rv = mkv_msg_next(&mkv_desc_vshard_rec, &cur, &r)) == 1)
        if ((rv = mkv_vshard_from_rec(&r, &map[r.vshard % MKV_VSHARDS]))) break;
    if (rv < 0) {
        free(map);
        return rv;
    }
    free(c->vmap);
    c->vmap = map;
    c->vmap_nodes = rep.nodes.len != 0;
    c->vmap_epoch = rep.epoch;
    c->vmap_replicas = rep.replicas ? rep.replicas : 1;
    return 0;
}

static void map_load(struct mkv_client *c);

static void on_map_timer(uv_timer_t *t)
{
    map_load(t->data);
}

static void on_map(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mkv_client *c = req->data;
    c->vmap_loading = 0;
    c->inflight--;
    if (status == 0) status = map_take(c, reply);
    if (status == 0) {
        c->vmap_have = 1;
        c->vmap_stale = 0;
        c->vmap_must = 0;
        c->vmap_loaded_ms = uv_now(c->loop);
        /* Chunk servers registered but no map yet, or none registered and
         * none configured: waiters wait for a map (a new cluster's first
         * seconds), within reason. */
        if (c->vmap_epoch == 0 && (c->vmap_nodes || !c->chunk) && c->map_wait_head && !c->closing &&
            ++c->vmap_retries < MAP_WAIT_TRIES) {
            uv_timer_start(&c->vmap_timer, on_map_timer, MAP_WAIT_MS, 0);
            return;
        }
        if (c->vmap_epoch == 0 && (c->vmap_nodes || !c->chunk)) status = MKV_EUNAVAILABLE;
    } else {
        MKV_WARN("client", "cannot load the vshard map status=%d err=\"%s\"", status, req->errmsg);
    }
    c->vmap_retries = 0;
    map_serve(c, status);
}

static void map_load(struct mkv_client *c)
{
    struct mkv_vshard_list_req q = {0};
    if (c->vmap_loading || c->closing) return;
    c->vmap_loading = 1;
    c->inflight++;
    c->vmap_req.data = c;
    if (mkv_meta_call(c, &c->vmap_req, MKV_MSG_VSHARD_LIST, &mkv_desc_vshard_list_req, &q,
                      on_map)) {
        c->vmap_loading = 0;
        c->inflight--;
        map_serve(c, -ENOMEM);
    }
}

void mkv_client_map_stale(struct mkv_client *c)
{
    c->vmap_stale = 1;
}

void mkv_client_map_outdated(struct mkv_client *c)
{
    c->vmap_must = 1;
}

/* Durable copies a write needs: min_replicas, or a majority of the
 * copies asked for, plus the replicas a move will drop; at most n. */
static unsigned route_need(const struct mkv_client *c, unsigned copies, unsigned surplus,
                           unsigned n)
{
    unsigned need = c->min_replicas ? MKV_MIN(c->min_replicas, copies) : copies / 2 + 1;
    return MKV_MIN(need + surplus, n);
}

int mkv_client_route(struct mkv_client *c, uint64_t chunk_id, struct mkv_route *rt,
                     struct mkv_map_wait *w)
{
    const struct mkv_vshard *v;
    memset(rt, 0, sizeof *rt);
    if (c->closing) return -ECANCELED;
    /* Without a map, or with one that says the cluster had none a moment
     * ago (chunk servers may have registered since: data must not go to
     * the configured server then), w waits for a fresh one (its callback
     * may run inside this call, when the request cannot even be sent). */
    if (!c->vmap_have || (c->vmap_must && w) ||
        (c->vmap_epoch == 0 &&
         (c->vmap_nodes || !c->chunk || uv_now(c->loop) - c->vmap_loaded_ms > MAP_NONE_AGE_MS))) {
        if (w) {
            w->next = NULL;
            if (c->map_wait_tail) c->map_wait_tail->next = w;
            else c->map_wait_head = w;
            c->map_wait_tail = w;
        }
        if (!uv_is_active((uv_handle_t *)&c->vmap_timer)) map_load(c);
        return w ? 1 : -EAGAIN;
    }
    if (c->vmap_stale || uv_now(c->loop) - c->vmap_loaded_ms > MAP_MAX_AGE_MS) map_load(c);
    if (c->vmap_epoch == 0) {
        /* No map and no chunk server registered: the configured one. */
        if (!c->chunk) return -ENOTCONN;
        rt->n = rt->need = rt->replicas = 1;
        rt->peer[0] = c->chunk;
        return 0;
    }
    v = &c->vmap[mkv_vshard_of(chunk_id)];
    for (unsigned i = 0; i < v->n; i++) {
        struct chunk_node *n = node_find(c, v->rep[i]);
        if (!n) continue;
        if (v->filling & (1u << i)) rt->filling |= (uint8_t)(1u << rt->n);
        rt->node[rt->n] = n->id;
        rt->peer[rt->n++] = n->peer;
    }
    if (rt->n == 0) return MKV_EUNAVAILABLE; /* no chunk server holds this vshard */
    rt->need = route_need(c, c->vmap_replicas, 0, rt->n);
    rt->replicas = c->vmap_replicas;
    rt->epoch = v->epoch;
    return 0;
}

#define FAILED_AVOID_MS 10000 /* how long a failed write steers writes away */

void mkv_client_node_failed(struct mkv_client *c, uint64_t node)
{
    struct chunk_node *n = node ? node_find(c, node) : NULL;
    if (n) n->failed_ms = uv_now(c->loop) + 1;
}

static int node_avoided(struct mkv_client *c, uint64_t node)
{
    struct chunk_node *n = node_find(c, node);
    return n && n->failed_ms && uv_now(c->loop) + 1 - n->failed_ms < FAILED_AVOID_MS;
}

int mkv_route_narrow(struct mkv_client *c, struct mkv_route *rt, uint64_t chunk_id, uint64_t *keep,
                     unsigned *nkeep)
{
    unsigned copies = mkv_chunk_reduced(chunk_id, rt->replicas), k = 0, pick[MKV_REPLICAS_MAX];
    unsigned surplus;
    uint8_t chosen = 0, filling = 0;
    struct mkv_route in;
    if (!copies) return 0;
    in = *rt;
    /* A move: the vshard has more replicas than the factor until the one
     * that leaves is dropped (filling or not: a filled newcomer and the
     * drop are two map changes), and any of them may be that one. */
    surplus = in.n > in.replicas ? in.n - in.replicas : 0;
    if (*nkeep == 0) {
        if (surplus) {
            /* Every replica: whichever leaves, the others hold it. */
            for (unsigned i = 0; i < in.n; i++) pick[k++] = i;
        } else {
            /* The first `copies` filled replicas in map order, those that
             * failed a write lately last; filling ones if too few are
             * filled (a fill copies a committed chunk held by fewer than
             * `copies` filled replicas). */
            for (int pass = 0; pass < 3 && k < copies; pass++)
                for (unsigned i = 0; i < in.n && k < copies; i++) {
                    int fill = (in.filling >> i) & 1;
                    if ((chosen >> i) & 1) continue;
                    if (pass < 2 ? fill || (pass == 0 && node_avoided(c, in.node[i])) : !fill)
                        continue;
                    chosen |= (uint8_t)(1u << i);
                    pick[k++] = i;
                }
        }
        for (unsigned j = 0; j < k; j++) keep[j] = in.node[pick[j]];
        *nkeep = k;
    } else {
        /* The replicas the chunk's first piece went to that are still in
         * the vshard: a chunk is never split over different replicas. One
         * that joined since (a move began) would miss the earlier pieces
         * and a fill would not complete them: the write is given up (the
         * client writes the object again, with the new map). */
        for (unsigned i = 0; i < in.n; i++) {
            unsigned j = 0;
            while (j < *nkeep && keep[j] != in.node[i]) j++;
            if (j < *nkeep) pick[k++] = i;
            else if (surplus) return MKV_EUNAVAILABLE;
        }
    }
    if (k == 0) return MKV_EUNAVAILABLE; /* every chosen replica left the vshard */
    rt->n = 0;
    for (unsigned j = 0; j < k; j++) {
        unsigned i = pick[j];
        if (in.filling & (1u << i)) filling |= (uint8_t)(1u << rt->n);
        rt->node[rt->n] = in.node[i];
        rt->peer[rt->n++] = in.peer[i];
    }
    rt->filling = filling;
    /* min_replicas or a majority of the copies, and during a move that
     * many more than may leave; at most the replicas first chosen. Fewer
     * left than that: the write cannot be acknowledged. */
    rt->need = route_need(c, copies, surplus, *nkeep);
    if (rt->n < rt->need) return MKV_EUNAVAILABLE;
    return 0;
}

unsigned mkv_route_read_order(const struct mkv_route *rt, uint64_t chunk_id, unsigned *order)
{
    unsigned k = 0, filled = mkv_vshard_nfilled(rt->filling, rt->n), start, spread = filled;
    unsigned copies = mkv_chunk_reduced(chunk_id, rt->replicas);
    /* Filled replicas first, starting at one chosen by a hash of the chunk
     * id so that reads spread over them whatever the replicas' order,
     * then the filling ones. A chunk of fewer copies was written to the
     * first filled ones in map order: the spread stays among those, and
     * the others follow in map order (a move may have left it there). */
    if (copies && copies < filled) spread = copies;
    start = spread ? (unsigned)(((chunk_id * 0x9E3779B97F4A7C15ull) >> 32) % spread) : 0;
    for (unsigned j = 0; j < filled; j++) {
        unsigned want = j < spread ? (start + j) % spread : j, seen = 0;
        for (unsigned i = 0; i < rt->n; i++) {
            if (rt->filling & (1u << i)) continue;
            if (seen++ == want) order[k++] = i;
        }
    }
    for (unsigned i = 0; i < rt->n; i++)
        if (rt->filling & (1u << i)) order[k++] = i;
    return k;
}

struct mark_call
{
    struct mkv_meta_req req;
    struct mkv_client *c;
};

static void on_marked(struct mkv_meta_req *req, int status, struct mkv_frame *reply)
{
    struct mark_call *m = MKV_CONTAINER_OF(req, struct mark_call, req);
    (void)reply;
    if (status) MKV_WARN("client", "cannot report a bad replica status=%d", status);
    m->c->inflight--;
    free(m);
}

void mkv_client_mark_missed(struct mkv_client *c, unsigned vshard, uint64_t node)
{
    struct mkv_vshard_mark mk = {vshard, node};
    struct mkv_vshard_mark_req q;
    struct mark_call *m;
    uint8_t buf[16];
    size_t len;
    if (c->closing || !(m = calloc(1, sizeof *m))) return;
    if (mkv_msg_encode(&mkv_desc_vshard_mark, &mk, buf, sizeof buf, &len)) {
        free(m);
        return;
    }
    q.marks = mkv_slice_mem(buf, len);
    m->c = c;
    c->inflight++;
    if (mkv_meta_call(c, &m->req, MKV_MSG_VSHARD_MARK, &mkv_desc_vshard_mark_req, &q, on_marked)) {
        c->inflight--;
        free(m);
    }
}

struct mkv_peer *mkv_client_chunk_peer(struct mkv_client *c, uint64_t chunk_id)
{
    struct mkv_route rt;
    if (mkv_client_route(c, chunk_id, &rt, NULL) == 0 && rt.n) return rt.peer[0];
    if (c->chunk) return c->chunk;
    return c->ncnodes ? c->cnodes[c->ncnodes - 1].peer : NULL;
}

void mkv_client_route_close(struct mkv_client *c)
{
    uv_timer_stop(&c->vmap_timer);
    for (size_t i = 0; i < c->ncnodes; i++) mkv_peer_close(c->cnodes[i].peer);
    map_serve(c, -ECANCELED);
}

void mkv_client_route_free(struct mkv_client *c)
{
    free(c->vmap);
    free(c->cnodes);
    c->vmap = NULL;
    c->cnodes = NULL;
    c->ncnodes = c->cap_cnodes = 0;
}

int mkv_client_vshard(struct mkv_client *c, unsigned vshard, struct mkv_vshard_view *v)
{
    struct mkv_route rt;
    int rv;
    memset(v, 0, sizeof *v);
    if (vshard >= MKV_VSHARDS) return -EINVAL;
    if ((rv = mkv_client_route(c, vshard, &rt, NULL))) return rv;
    if (c->vmap_epoch == 0) return MKV_EUNAVAILABLE;
    v->epoch = rt.epoch;
    v->n = rt.n;
    v->filling = rt.filling;
    v->replicas = rt.replicas;
    memcpy(v->node, rt.node, sizeof v->node);
    memcpy(v->peer, rt.peer, sizeof v->peer);
    return 0;
}

void mkv_client_map_refresh(struct mkv_client *c)
{
    map_load(c);
}

uint64_t mkv_client_map_epoch(const struct mkv_client *c)
{
    return c->vmap_have ? c->vmap_epoch : 0;
}
