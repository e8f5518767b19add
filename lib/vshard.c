/* minikv: vshard_rec records <-> struct mkv_vshard (minikv/vshard.h). */
#include <errno.h>
#include <string.h>

#include "minikv/vshard.h"

int mkv_vshard_find(const struct mkv_vshard *v, uint64_t id)
{
    for (unsigned i = 0; i < v->n; i++)
        if (v->rep[i] == id) return (int)i;
    return -1;
}

int mkv_vshard_from_rec(const struct mkv_vshard_rec *r, struct mkv_vshard *v)
{
    memset(v, 0, sizeof *v);
    if (r->vshard >= MKV_VSHARDS || r->replicas.len % 8 || r->filling.len % 8 ||
        r->replicas.len > 8 * MKV_REPLICAS_MAX)
        return -EPROTO;
    v->epoch = r->epoch;
    for (uint32_t off = 0; off < r->replicas.len; off += 8) {
        uint64_t id = mkv_get_le64(r->replicas.p + off);
        if (id == 0 || mkv_vshard_find(v, id) >= 0) return -EPROTO;
        v->rep[v->n++] = id;
    }
    for (uint32_t off = 0; off < r->filling.len; off += 8) {
        int i = mkv_vshard_find(v, mkv_get_le64(r->filling.p + off));
        if (i < 0 || (v->filling & (1u << i))) return -EPROTO;
        v->filling |= (uint8_t)(1u << i);
    }
    return 0;
}

void mkv_vshard_to_rec(const struct mkv_vshard *v, unsigned vshard, uint8_t *buf,
                       struct mkv_vshard_rec *r)
{
    size_t nf = 0;
    uint8_t *fill = buf + 8 * MKV_REPLICAS_MAX;
    memset(r, 0, sizeof *r);
    r->vshard = vshard;
    r->epoch = v->epoch;
    for (unsigned i = 0; i < v->n; i++) {
        mkv_put_le64(buf + 8 * i, v->rep[i]);
        if (v->filling & (1u << i)) mkv_put_le64(fill + 8 * nf++, v->rep[i]);
    }
    r->replicas = mkv_slice_mem(buf, 8 * v->n);
    r->filling = mkv_slice_mem(fill, 8 * nf);
}
