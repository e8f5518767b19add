/* minikv meta: the vshard map (VSHARD_SET, VSHARD_LIST).
 *
 * Tables: "vshards", key the vshard (2, BE), value a vshard_rec; the map's
 * epoch and factor are the vshard_map record under "vshard_map" in the
 * meta table. The leader computes placement (place.c) and proposes the
 * records that change; a proposal made from an older map is refused, so
 * two leaders' views never mix. */
#include <errno.h>
#include <string.h>

#include "meta/ns_int.h"
#include "minikv/log.h"
#include "minikv/vshard.h"

#define NS_K_VSHARD_MAP "vshard_map"

static int map_get(struct ns_op *op, struct mkv_vshard_map *map)
{
    int rv = ns_get_msg(op, op->ns->db_meta, NS_K_VSHARD_MAP, strlen(NS_K_VSHARD_MAP),
                        &mkv_desc_vshard_map, map);
    if (rv == -ENOENT) {
        memset(map, 0, sizeof *map);
        return 0;
    }
    return rv;
}

int ns_vshard_factor(struct ns_op *op, uint32_t *replicas)
{
    struct mkv_vshard_map map;
    int rv = map_get(op, &map);
    *replicas = rv == 0 && map.epoch ? map.replicas : 0;
    return rv;
}

static int node_known(struct ns_op *op, uint64_t id)
{
    uint8_t key[8];
    MDB_val v;
    mkv_put_be64(key, id);
    return ns_get(op, op->ns->db_nodes, key, sizeof key, &v);
}

static int map_put(struct ns_op *op, const struct mkv_vshard_map *map)
{
    return ns_put_msg(op, op->ns->db_meta, NS_K_VSHARD_MAP, strlen(NS_K_VSHARD_MAP),
                      &mkv_desc_vshard_map, map);
}

/* The record of one vshard, decoded; -ENOENT when it has none yet. */
static int vshard_get(struct ns_op *op, unsigned vs, struct mkv_vshard *v, const char *what)
{
    struct mkv_vshard_rec r;
    uint8_t key[2];
    int rv;
    mkv_put_be16(key, (uint16_t)vs);
    rv = ns_get_msg(op, op->ns->db_vshards, key, sizeof key, &mkv_desc_vshard_rec, &r);
    if (rv) return rv;
    if (mkv_vshard_from_rec(&r, v)) return ns_fail(op, MDB_CORRUPTED, what);
    return 0;
}

static int vshard_put(struct ns_op *op, unsigned vs, const struct mkv_vshard *v)
{
    struct mkv_vshard_rec r;
    uint8_t key[2], buf[16 * MKV_REPLICAS_MAX];
    mkv_put_be16(key, (uint16_t)vs);
    mkv_vshard_to_rec(v, vs, buf, &r);
    return ns_put_msg(op, op->ns->db_vshards, key, sizeof key, &mkv_desc_vshard_rec, &r);
}

int ns_vshard_set(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_vshard_set_req req;
    struct mkv_vshard_set_rep rep = {0};
    struct mkv_vshard_map map;
    struct mkv_vshard_rec r;
    struct mkv_vshard v;
    struct mkv_slice cur;
    unsigned n = 0;
    int rv;
    DECODE(mkv_desc_vshard_set_req, p, len, &req);
    if ((rv = map_get(op, &map))) return rv;
    if (req.epoch != map.epoch) return MKV_ESTALE; /* proposed from another map */
    if (req.replicas == 0 || req.replicas >= MKV_REPLICAS_MAX) return -EINVAL;
    /* Everything is checked before the first write. */
    cur = req.vshards;
    while ((rv = mkv_msg_next(&mkv_desc_vshard_rec, &cur, &r)) == 1) {
        if (mkv_vshard_from_rec(&r, &v)) return -EINVAL;
        for (unsigned i = 0; i < v.n; i++)
            if ((rv = node_known(op, v.rep[i]))) return rv == -ENOENT ? -EINVAL : rv;
        n++;
    }
    if (rv < 0) return -EPROTO;
    map.epoch++;
    map.replicas = req.replicas;
    cur = req.vshards;
    while (mkv_msg_next(&mkv_desc_vshard_rec, &cur, &r) == 1) {
        uint8_t key[2];
        mkv_put_be16(key, (uint16_t)r.vshard);
        r.epoch = map.epoch;
        if ((rv = ns_put_msg(op, op->ns->db_vshards, key, sizeof key, &mkv_desc_vshard_rec, &r)))
            return rv;
    }
    if ((rv = map_put(op, &map))) return rv;
    MKV_INFO("meta", "vshard map changed epoch=%llu vshards=%u replicas=%u",
             (unsigned long long)map.epoch, n, map.replicas);
    rep.epoch = map.epoch;
    return ns_reply(op, &mkv_desc_vshard_set_rep, &rep);
}

int ns_vshard_mark(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_vshard_mark_req req;
    struct mkv_vshard_mark_rep rep = {0};
    struct mkv_vshard_map map;
    struct mkv_vshard_mark mk;
    struct mkv_slice cur;
    unsigned changed = 0;
    int rv;
    DECODE(mkv_desc_vshard_mark_req, p, len, &req);
    cur = req.marks;
    while ((rv = mkv_msg_next(&mkv_desc_vshard_mark, &cur, &mk)) == 1)
        if (mk.vshard >= MKV_VSHARDS) return -EINVAL;
    if (rv < 0) return -EPROTO;
    if ((rv = map_get(op, &map))) return rv;
    cur = req.marks;
    while (mkv_msg_next(&mkv_desc_vshard_mark, &cur, &mk) == 1) {
        struct mkv_vshard v;
        int i;
        rv = vshard_get(op, mk.vshard, &v, "vshard_mark");
        if (rv == -ENOENT) continue;
        if (rv) return rv;
        if ((i = mkv_vshard_find(&v, mk.node)) < 0 || (v.filling & (1u << i))) continue;
        /* The last filled replica stays filled: fills need a source, and
         * its copy is still the best there is. */
        if (mkv_vshard_nfilled(v.filling, v.n) <= 1) {
            MKV_WARN("meta", "mark of the last filled replica ignored vshard=%u node=%llu",
                     mk.vshard, (unsigned long long)mk.node);
            continue;
        }
        if (!changed++) map.epoch++;
        v.filling |= (uint8_t)(1u << i);
        v.epoch = map.epoch;
        if ((rv = vshard_put(op, mk.vshard, &v))) return rv;
        MKV_WARN("meta", "replica missed writes: back to filling vshard=%u node=%llu", mk.vshard,
                 (unsigned long long)mk.node);
    }
    if (changed && (rv = map_put(op, &map))) return rv;
    rep.epoch = map.epoch;
    return ns_reply(op, &mkv_desc_vshard_mark_rep, &rep);
}

int ns_vshard_filled(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_vshard_filled_req req;
    struct mkv_vshard_filled_rep rep = {0};
    struct mkv_vshard_map map;
    struct mkv_vshard v;
    int i, rv;
    DECODE(mkv_desc_vshard_filled_req, p, len, &req);
    if (req.vshard >= MKV_VSHARDS) return -EINVAL;
    if ((rv = map_get(op, &map))) return rv;
    rv = vshard_get(op, req.vshard, &v, "vshard_filled");
    if (rv) return rv == -ENOENT ? MKV_ESTALE : rv;
    /* Changed since the fill started (a mark, a move): start over. */
    if (v.epoch != req.epoch || (i = mkv_vshard_find(&v, req.node)) < 0 || !(v.filling & (1u << i)))
        return MKV_ESTALE;
    map.epoch++;
    v.filling &= (uint8_t) ~(1u << i);
    v.epoch = map.epoch;
    if ((rv = vshard_put(op, req.vshard, &v)) || (rv = map_put(op, &map))) return rv;
    MKV_INFO("meta", "replica filled vshard=%u node=%llu epoch=%llu", req.vshard,
             (unsigned long long)req.node, (unsigned long long)map.epoch);
    rep.epoch = map.epoch;
    return ns_reply(op, &mkv_desc_vshard_filled_rep, &rep);
}

/* Appends every value of db (in key order) to out, up to 1 MiB. */
static int table_values(struct ns_op *op, MDB_dbi db, struct mkv_buf *out, const char *what)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc, rv;
    if ((rv = ns_cursor(op, db, &c))) return rv;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (out->len + v.mv_size > (1u << 20)) break; /* reply bound */
        if (mkv_buf_append(out, v.mv_data, v.mv_size)) {
            rc = ENOMEM;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) return ns_fail(op, rc, what);
    return 0;
}

int ns_node_list(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_node_list_req req;
    struct mkv_node_list_rep rep;
    struct mkv_buf list = MKV_BUF_INIT;
    int rv;
    DECODE(mkv_desc_node_list_req, p, len, &req);
    if ((rv = table_values(op, op->ns->db_nodes, &list, "node_list")) == 0) {
        rep.nodes = mkv_slice_mem(list.p ? list.p : (const uint8_t *)"", list.len);
        rv = ns_reply(op, &mkv_desc_node_list_rep, &rep);
    }
    mkv_buf_free(&list);
    return rv;
}

int ns_vshard_list(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_vshard_list_req req;
    struct mkv_vshard_list_rep rep = {0};
    struct mkv_vshard_map map;
    struct mkv_buf shards = MKV_BUF_INIT, nodes = MKV_BUF_INIT;
    int rv;
    DECODE(mkv_desc_vshard_list_req, p, len, &req);
    rv = map_get(op, &map);
    if (rv == 0 && !(req.flags & MKV_VSHARD_LIST_HEADER) &&
        !(rv = table_values(op, op->ns->db_vshards, &shards, "vshards")))
        rv = table_values(op, op->ns->db_nodes, &nodes, "nodes");
    if (rv == 0) {
        rep.epoch = map.epoch;
        rep.replicas = map.replicas;
        rep.vshards = mkv_slice_mem(shards.p ? shards.p : (const uint8_t *)"", shards.len);
        rep.nodes = mkv_slice_mem(nodes.p ? nodes.p : (const uint8_t *)"", nodes.len);
        rv = ns_reply(op, &mkv_desc_vshard_list_rep, &rep);
    }
    mkv_buf_free(&shards);
    mkv_buf_free(&nodes);
    return rv;
}

int ns_node_drain(struct ns_op *op, const uint8_t *p, size_t len)
{
    struct mkv_node_drain_req req;
    struct mkv_node_drain_rep rep = {0};
    struct mkv_node_rec rec;
    uint8_t key[8];
    int rv;
    DECODE(mkv_desc_node_drain_req, p, len, &req);
    mkv_put_be64(key, req.id);
    if ((rv = ns_get_msg(op, op->ns->db_nodes, key, sizeof key, &mkv_desc_node_rec, &rec)))
        return rv; /* -ENOENT: no such chunk server */
    if (req.undo) rec.flags &= ~(uint32_t)MKV_NODEF_DRAIN;
    else rec.flags |= MKV_NODEF_DRAIN;
    if ((rv = ns_put_msg(op, op->ns->db_nodes, key, sizeof key, &mkv_desc_node_rec, &rec)))
        return rv;
    MKV_INFO("meta", "chunk server %s id=%llu", req.undo ? "no longer draining" : "draining",
             (unsigned long long)req.id);
    rep.flags = rec.flags;
    return ns_reply(op, &mkv_desc_node_drain_rep, &rep);
}
