/* minikv meta: what the leader knows of the chunk servers (nodes.h).
 *
 * Registration is Raft state (NODE_REGISTER, the "nodes" table); liveness
 * is not: a heartbeat every few seconds from every chunk server would
 * fill the log with nothing. The leader keeps the last heartbeat of each
 * node in memory, and a new leader starts knowing none: a node it has not
 * heard from yet is UNKNOWN until a down period has passed since it took
 * over, then DOWN, then DEAD. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/nodes.h"
#include "minikv/log.h"
#include "minikv/vshard.h"

struct heard
{
    uint64_t id;
    int64_t at_ns; /* mkv_mono_ns of the last heartbeat */
    struct mkv_node_heartbeat_req hb;
};

struct mkv_nodes
{
    struct heard *v;
    size_t n, cap;
    unsigned interval_ms, dead_ms;
    uint64_t term; /* the term this table is for (0: not leading) */
    int64_t leading_since_ns;
};

struct mkv_nodes *mkv_nodes_new(unsigned interval_ms, unsigned dead_ms)
{
    struct mkv_nodes *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->interval_ms = interval_ms ? interval_ms : 2000;
    t->dead_ms = dead_ms ? dead_ms : 60000;
    return t;
}

void mkv_nodes_free(struct mkv_nodes *t)
{
    if (!t) return;
    free(t->v);
    free(t);
}

unsigned mkv_nodes_interval_ms(const struct mkv_nodes *t)
{
    return t->interval_ms;
}

/* A node is down once it missed three heartbeats. */
static int64_t down_ns(const struct mkv_nodes *t)
{
    return 3ll * t->interval_ms * 1000000ll;
}

/* term: the term this member leads (0: it does not). */
static void track(struct mkv_nodes *t, uint64_t term, int64_t now)
{
    if (term && term != t->term) {
        /* What an earlier term heard may be stale by now: start over. */
        t->n = 0;
        t->leading_since_ns = now;
    }
    t->term = term;
}

int mkv_nodes_heard(struct mkv_nodes *t, uint64_t term, const struct mkv_node_heartbeat_req *hb)
{
    int64_t now = (int64_t)mkv_mono_ns();
    size_t i;
    track(t, term, now);
    for (i = 0; i < t->n && t->v[i].id != hb->id; i++) {
    }
    if (i == t->n) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 16;
            struct heard *v = realloc(t->v, cap * sizeof *v);
            if (!v) return -ENOMEM;
            t->v = v;
            t->cap = cap;
        }
        t->n++;
        t->v[i].id = hb->id;
    }
    t->v[i].at_ns = now;
    t->v[i].hb = *hb;
    return 0;
}

static const struct heard *find(const struct mkv_nodes *t, uint64_t id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].id == id) return &t->v[i];
    return NULL;
}

/* The state of a node while leading: h its last heartbeat (NULL: none
 * heard since this member took over). */
static uint32_t state_of(const struct mkv_nodes *t, const struct heard *h, int64_t now)
{
    int64_t age = now - (h ? h->at_ns : t->leading_since_ns);
    if (age > (int64_t)t->dead_ms * 1000000ll) return MKV_NODE_DEAD;
    if (age > down_ns(t)) return MKV_NODE_DOWN;
    return h ? MKV_NODE_UP : MKV_NODE_UNKNOWN;
}

uint32_t mkv_nodes_state(struct mkv_nodes *t, uint64_t term, uint64_t id)
{
    int64_t now = (int64_t)mkv_mono_ns();
    track(t, term, now);
    return term ? state_of(t, find(t, id), now) : MKV_NODE_UNKNOWN;
}

/* How many vshards id holds a replica of, and fills. */
static void share_of(struct mkv_slice vshards, uint64_t id, uint32_t *held, uint32_t *filling)
{
    struct mkv_vshard_rec r;
    struct mkv_vshard v;
    *held = *filling = 0;
    while (mkv_msg_next(&mkv_desc_vshard_rec, &vshards, &r) == 1) {
        int i;
        if (mkv_vshard_from_rec(&r, &v) || (i = mkv_vshard_find(&v, id)) < 0) continue;
        (*held)++;
        if (v.filling & (1u << i)) (*filling)++;
    }
}

uint32_t mkv_vshards_degraded(struct mkv_slice vshards, uint32_t replicas)
{
    struct mkv_vshard_rec r;
    struct mkv_vshard v;
    uint32_t n = 0;
    while (mkv_msg_next(&mkv_desc_vshard_rec, &vshards, &r) == 1)
        if (mkv_vshard_from_rec(&r, &v) || v.filling || v.n < replicas) n++;
    return n;
}

int mkv_nodes_info(struct mkv_nodes *t, struct mkv_slice registered, struct mkv_slice vshards,
                   uint64_t term, const char *static_list, struct mkv_buf *out)
{
    int64_t now = (int64_t)mkv_mono_ns();
    struct mkv_slice cur = registered;
    struct mkv_node_rec rec;
    int leading = term != 0, rv;
    track(t, term, now);
    out->len = 0;
    while ((rv = mkv_msg_next(&mkv_desc_node_rec, &cur, &rec)) == 1) {
        struct mkv_chunk_server_info ci = {0};
        const struct heard *h = leading ? find(t, rec.id) : NULL;
        ci.id = rec.id;
        ci.address = rec.address;
        ci.zone = rec.zone;
        ci.flags = rec.flags;
        share_of(vshards, rec.id, &ci.vshards, &ci.filling);
        ci.heard_ms = UINT64_MAX;
        if (h) {
            ci.heard_ms = (uint64_t)((now - h->at_ns) / 1000000);
            ci.capacity = h->hb.capacity;
            ci.free = h->hb.free;
            ci.used = h->hb.used;
            ci.chunks = h->hb.chunks;
        }
        if (leading) ci.state = state_of(t, h, now);
        if ((rv = mkv_msg_append(out, &mkv_desc_chunk_server_info, &ci))) return rv;
    }
    if (rv < 0) return rv;
    /* Configured addresses (--chunk-servers) not registered: reported as
     * up, as before chunk servers registered themselves. */
    if (static_list && *static_list) {
        char list[1024], *tok, *save = NULL;
        snprintf(list, sizeof list, "%s", static_list);
        for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            struct mkv_chunk_server_info ci = {0};
            int known = 0;
            cur = registered;
            while (!known && mkv_msg_next(&mkv_desc_node_rec, &cur, &rec) == 1)
                known = mkv_slice_eq(rec.address, tok);
            if (known) continue;
            ci.address = mkv_slice_str(tok);
            ci.state = MKV_NODE_UP;
            ci.heard_ms = UINT64_MAX;
            if ((rv = mkv_msg_append(out, &mkv_desc_chunk_server_info, &ci))) return rv;
        }
    }
    return 0;
}
