/* minikv meta: the leader's placement loop (placer.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta/place.h"
#include "meta/placer.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define MAX_MOVES 16 /* vshards filling at once: bounds the copying */

struct mkv_placer
{
    struct mkv_node *node;
    struct mkv_nodes *nodes;
    unsigned replicas;
    int64_t last_ns;
    int inflight;
    int freed; /* freed while a proposal was out: the callback frees */
    struct mkv_node_req req;
    struct mkv_buf list, prop;
    struct mkv_place_node *pn;
    size_t npn, cap_pn;
    struct mkv_vshard cur[MKV_VSHARDS], next[MKV_VSHARDS];
};

struct mkv_placer *mkv_placer_new(struct mkv_nodes *nodes, unsigned replicas)
{
    struct mkv_placer *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->nodes = nodes;
    p->replicas = replicas ? replicas : 3;
    if (p->replicas >= MKV_REPLICAS_MAX) p->replicas = MKV_REPLICAS_MAX - 1;
    return p;
}

static void placer_release(struct mkv_placer *p)
{
    mkv_buf_free(&p->list);
    mkv_buf_free(&p->prop);
    free(p->pn);
    free(p);
}

void mkv_placer_free(struct mkv_placer *p)
{
    if (!p) return;
    if (p->inflight) p->freed = 1;
    else placer_release(p);
}

static void proposed(struct mkv_node_req *req, int status, const uint8_t *reply, size_t len)
{
    struct mkv_placer *p = req->data;
    (void)reply;
    (void)len;
    p->inflight = 0;
    if (p->freed) {
        placer_release(p);
        return;
    }
    if (status && status != MKV_ENOTLEADER && status != MKV_EUNAVAILABLE)
        MKV_WARN("meta", "vshard map proposal refused status=%d", status);
}

/* Reads the map into p->cur and the nodes into p->pn, *epoch the map's;
 * *settled: every node's state is known and none registered just now.
 * Returns 0 or a negative code. */
static int load(struct mkv_placer *p, uint64_t term, uint64_t *epoch, int *settled)
{
    struct mkv_vshard_list_req q = {0};
    struct mkv_vshard_list_rep rep;
    struct mkv_vshard_rec r;
    struct mkv_node_rec nr;
    struct mkv_slice cur;
    int64_t now = mkv_now_ns();
    uint8_t req[64];
    size_t qlen;
    int status = 0, rv;
    if (mkv_msg_encode(&mkv_desc_vshard_list_req, &q, req, sizeof req, &qlen)) return -EINVAL;
    if ((rv = mkv_node_query(p->node, MKV_MSG_VSHARD_LIST, req, qlen, &status, &p->list)))
        return rv;
    if (status) return status;
    if (mkv_msg_decode(&mkv_desc_vshard_list_rep, p->list.p, p->list.len, &rep)) return -EPROTO;
    memset(p->cur, 0, sizeof p->cur);
    cur = rep.vshards;
    while ((rv = mkv_msg_next(&mkv_desc_vshard_rec, &cur, &r)) == 1)
        if (mkv_vshard_from_rec(&r, &p->cur[r.vshard % MKV_VSHARDS])) return -EPROTO;
    if (rv < 0) return rv;
    p->npn = 0;
    *settled = 1;
    cur = rep.nodes;
    while ((rv = mkv_msg_next(&mkv_desc_node_rec, &cur, &nr)) == 1) {
        struct mkv_place_node *pn;
        uint32_t st = mkv_nodes_state(p->nodes, term, nr.id);
        if (p->npn == p->cap_pn) {
            size_t cap = p->cap_pn ? 2 * p->cap_pn : 16;
            struct mkv_place_node *v = realloc(p->pn, cap * sizeof *v);
            if (!v) return -ENOMEM;
            p->pn = v;
            p->cap_pn = cap;
        }
        pn = &p->pn[p->npn++];
        memset(pn, 0, sizeof *pn);
        pn->id = nr.id;
        memcpy(pn->zone, nr.zone.p, MKV_MIN(nr.zone.len, sizeof pn->zone - 1));
        pn->up = st == MKV_NODE_UP;
        pn->dead = st == MKV_NODE_DEAD;
        pn->draining = (nr.flags & MKV_NODEF_DRAIN) != 0;
        /* Not settled while a node's state is not known yet, or one
         * registered within the last period (servers started together
         * register a moment apart: the first map should have them all,
         * since a replica added later starts filling). */
        if (st == MKV_NODE_UNKNOWN ||
            now - nr.registered < (int64_t)mkv_nodes_interval_ms(p->nodes) * 1000000ll)
            *settled = 0;
    }
    if (rv < 0) return rv;
    *epoch = rep.epoch;
    return 0;
}

void mkv_placer_tick(struct mkv_placer *p, struct mkv_node *node)
{
    int64_t now = (int64_t)mkv_mono_ns();
    uint64_t term = mkv_node_term(node), epoch = 0;
    unsigned changed;
    struct mkv_vshard_set_req q = {0};
    int settled = 0, rv;
    p->node = node;
    if (p->inflight || !term || !mkv_node_ready(p->node)) return;
    if (now - p->last_ns < (int64_t)mkv_nodes_interval_ms(p->nodes) * 1000000ll) return;
    p->last_ns = now;
    if ((rv = load(p, term, &epoch, &settled))) {
        MKV_WARN("meta", "placement: cannot read the vshard map status=%d", rv);
        return;
    }
    /* A first map waits until every registered node is known and up. */
    if (epoch == 0 && !settled) return;
    changed = mkv_place(p->pn, p->npn, p->replicas, MAX_MOVES, epoch + 1, p->cur, p->next);
    if (changed == 0) return;
    p->prop.len = 0;
    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        struct mkv_vshard_rec r;
        uint8_t buf[16 * MKV_REPLICAS_MAX];
        if (p->next[s].epoch != epoch + 1) continue;
        mkv_vshard_to_rec(&p->next[s], s, buf, &r);
        if (mkv_msg_append(&p->prop, &mkv_desc_vshard_rec, &r)) return;
    }
    q.epoch = epoch;
    q.replicas = p->replicas;
    q.vshards = mkv_slice_mem(p->prop.p, p->prop.len);
    {
        struct mkv_buf enc = MKV_BUF_INIT;
        if (mkv_msg_append(&enc, &mkv_desc_vshard_set_req, &q) == 0) {
            p->req.data = p;
            p->inflight = 1;
            rv = mkv_node_submit(p->node, &p->req, MKV_MSG_VSHARD_SET, 0, 0, mkv_now_ns(), enc.p,
                                 enc.len, 0, proposed);
            if (rv) p->inflight = 0;
            else
                MKV_INFO("meta", "placement proposes a new vshard map epoch=%llu changed=%u",
                         (unsigned long long)epoch + 1, changed);
        }
        mkv_buf_free(&enc);
    }
}
