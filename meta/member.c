/* minikv meta: changes to the metadata group (META_MEMBER) and the list of
 * its members for META_STATUS.
 *
 * ADD is two Raft configuration changes: raft_add makes the new member a
 * spare (it gets the log, or a snapshot and the log, but has no say), then
 * raft_assign makes it a voter (or a standby). libraft promotes a spare to
 * voter only once it has caught up (rounds of replication, each shorter
 * than an election timeout), so a new member never stalls the group's
 * commits while it copies the state. Each change is one entry; libraft
 * allows one at a time (RAFT_CANTCHANGE otherwise: -EBUSY here).
 *
 * An ADD retried after an unknown outcome is harmless: a member already in
 * the configuration at the same address is taken from where it stands (a
 * spare is promoted, a voter answers at once). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta/node.h"
#include "meta/node_int.h"
#include "minikv/err.h"
#include "minikv/log.h"

struct member_op
{
    struct raft_change change;
    struct mkv_node *n;
    struct mkv_node_req *req;
    raft_id id;
    int role;   /* ADD: the role to assign once the member is a spare */
    int added;  /* ADD: this operation made it a spare */
    int status; /* ADD: why the promotion failed (while the spare is taken out) */
};

static int raft_status(int rv)
{
    switch (rv) {
    case 0: return 0;
    case RAFT_NOTLEADER: return MKV_ENOTLEADER;
    case RAFT_LEADERSHIPLOST:
    case RAFT_SHUTDOWN: return MKV_EUNAVAILABLE;
    case RAFT_BADID:
    case RAFT_NOTFOUND: return -ENOENT;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS: return -EEXIST;
    case RAFT_CANTCHANGE: return -EBUSY;
    case RAFT_NOCONNECTION: return -EHOSTUNREACH;
    case RAFT_BADROLE: return -EINVAL;
    case RAFT_NOMEM: return -ENOMEM;
    default: return -EIO;
    }
}

static const struct raft_server *find_server(struct raft *r, raft_id id)
{
    for (unsigned i = 0; i < r->configuration.n; i++)
        if (r->configuration.servers[i].id == id) return &r->configuration.servers[i];
    return NULL;
}

/* Answers the request (status, and on success a meta_member_rep) and frees
 * the operation. */
static void op_finish(struct member_op *op, int status)
{
    struct mkv_node_req *req = op->req;
    struct mkv_meta_member_rep rep = {0};
    uint8_t out[64];
    size_t len = 0;
    const char *lead = NULL;
    raft_id lid = 0;
    raft_leader(&op->n->raft, &lid, &lead);
    rep.leader_id = lid;
    rep.voters = mkv_node_voters(&op->n->raft);
    if (status == 0 && mkv_msg_encode(&mkv_desc_meta_member_rep, &rep, out, sizeof out, &len))
        status = -EIO;
    free(op);
    req->cb(req, status, status ? NULL : out, len);
}

static void on_unadded(struct raft_change *change, int status)
{
    struct member_op *op = change->data;
    if (status)
        MKV_WARN("meta", "spare left in the group id=%llu err=\"%s\"", (unsigned long long)op->id,
                 raft_strerror(status));
    op_finish(op, op->status);
}

static void on_assigned(struct raft_change *change, int status)
{
    struct member_op *op = change->data;
    if (status) {
        MKV_WARN("meta", "member not promoted id=%llu err=\"%s\"", (unsigned long long)op->id,
                 raft_strerror(status));
        /* A spare that never caught up (unreachable, or too slow) is
         * taken out again, so that a failed ADD leaves the group as it was. */
        op->status = raft_status(status);
        /* Only when it did not catch up: on a lost leadership or a close,
         * libraft calls back while the change is still recorded. */
        if (op->added && status == RAFT_NOCONNECTION &&
            raft_remove(&op->n->raft, &op->change, op->id, on_unadded) == 0)
            return;
        op_finish(op, op->status);
        return;
    }
    MKV_INFO("meta", "member promoted id=%llu role=%s", (unsigned long long)op->id,
             op->role == RAFT_VOTER ? "voter" : "standby");
    op_finish(op, 0);
}

static void assign(struct member_op *op)
{
    struct raft *r = &op->n->raft;
    int rv;
    op->change.data = op;
    rv = raft_assign(r, &op->change, op->id, op->role, on_assigned);
    if (rv) {
        /* libraft 0.15 records the change before it appends the entry and
         * leaves it recorded when the append fails: it would call back
         * into op, freed below, at the next leadership loss. */
        if (raft_state(r) == RAFT_LEADER && r->leader_state.change == &op->change)
            r->leader_state.change = NULL;
        op_finish(op, raft_status(rv));
    }
}

static void on_added(struct raft_change *change, int status)
{
    struct member_op *op = change->data;
    if (status) {
        op_finish(op, raft_status(status));
        return;
    }
    MKV_INFO("meta", "member added as a spare, catching up id=%llu", (unsigned long long)op->id);
    op->added = 1;
    assign(op);
}

static void on_removed(struct raft_change *change, int status)
{
    struct member_op *op = change->data;
    if (!status) MKV_INFO("meta", "member removed id=%llu", (unsigned long long)op->id);
    op_finish(op, raft_status(status));
}

static void on_transferred(struct raft_transfer *t)
{
    struct member_op *op = t->data;
    struct mkv_node *n = op->n;
    raft_id lid = 0;
    const char *addr = NULL;
    /* libraft does not say whether it worked: the target leading is the
     * sign. (The transfer struct is the node's, not op's: libraft 0.15
     * may still hold its TimeoutNow send after this callback.) */
    raft_leader(&n->raft, &lid, &addr);
    n->transfer_busy = 0;
    int ok = lid != 0 && lid != n->id && (t->id == 0 || lid == t->id);
    if (ok) MKV_INFO("meta", "leadership handed over to=%llu", (unsigned long long)lid);
    op_finish(op, ok ? 0 : n->stopping ? MKV_EUNAVAILABLE : -ETIMEDOUT);
}

int mkv_node_member(struct mkv_node *n, struct mkv_node_req *req,
                    const struct mkv_meta_member_req *m, mkv_node_cb cb, char *err, size_t errlen)
{
    struct raft *r = &n->raft;
    const struct raft_server *s;
    struct member_op *op;
    char addr[288], raddr[288];
    int rv;
    if (!mkv_node_ready(n)) return MKV_ENOTLEADER;
    if (m->op != MKV_MEMBER_TRANSFER && m->id == 0)
        return mkv_errf(err, errlen, -EINVAL, "a member id is at least 1");
    if (!(op = calloc(1, sizeof *op))) return -ENOMEM;
    op->n = n;
    op->req = req;
    op->id = m->id;
    req->cb = cb;
    req->node = n;
    switch (m->op) {
    case MKV_MEMBER_ADD:
        if (!m->address.len || m->address.len >= sizeof addr) {
            rv = mkv_errf(err, errlen, -EINVAL, "ADD needs the member's address");
            break;
        }
        memcpy(addr, m->address.p, m->address.len);
        addr[m->address.len] = 0;
        if (mkv_node_shift_port(addr, 1, raddr, sizeof raddr)) {
            rv = mkv_errf(err, errlen, -EINVAL, "bad address \"%s\" (HOST:PORT)", addr);
            break;
        }
        op->role = (m->flags & MKV_MEMBER_F_STANDBY) ? RAFT_STANDBY : RAFT_VOTER;
        s = find_server(r, m->id);
        if (s && strcmp(s->address, raddr) != 0) {
            rv = mkv_errf(err, errlen, -EEXIST, "member %llu is already in the group at %s",
                          (unsigned long long)m->id, s->address);
            break;
        }
        for (unsigned i = 0; !s && i < r->configuration.n; i++)
            if (!strcmp(r->configuration.servers[i].address, raddr)) {
                rv = mkv_errf(err, errlen, -EEXIST, "%s is already member %llu", addr,
                              (unsigned long long)r->configuration.servers[i].id);
                goto fail;
            }
        if (s && s->role == op->role) { /* a retry that already succeeded */
            op_finish(op, 0);
            return 0;
        }
        if (s && s->role == RAFT_VOTER) {
            rv = mkv_errf(err, errlen, -EEXIST, "member %llu is already a voter",
                          (unsigned long long)m->id);
            break;
        }
        if (s) {
            assign(op);
            return 0;
        }
        op->change.data = op;
        if ((rv = raft_add(r, &op->change, m->id, raddr, on_added))) {
            rv = mkv_errf(err, errlen, raft_status(rv), "%s", raft_errmsg(r));
            break;
        }
        MKV_INFO("meta", "adding member id=%llu address=%s", (unsigned long long)m->id, addr);
        return 0;
    case MKV_MEMBER_REMOVE:
        if (m->id == n->id) {
            rv = mkv_errf(err, errlen, -EBUSY,
                          "member %llu leads the group: hand leadership over first",
                          (unsigned long long)m->id);
            break;
        }
        if (!find_server(r, m->id)) {
            rv = mkv_errf(err, errlen, -ENOENT, "no member %llu", (unsigned long long)m->id);
            break;
        }
        op->change.data = op;
        if ((rv = raft_remove(r, &op->change, m->id, on_removed))) {
            rv = mkv_errf(err, errlen, raft_status(rv), "%s", raft_errmsg(r));
            break;
        }
        MKV_INFO("meta", "removing member id=%llu", (unsigned long long)m->id);
        return 0;
    case MKV_MEMBER_TRANSFER:
        if (m->id == n->id) { /* already there */
            op_finish(op, 0);
            return 0;
        }
        if (n->transfer_busy) {
            rv = mkv_errf(err, errlen, -EBUSY, "a leadership transfer is under way");
            break;
        }
        memset(&n->transfer, 0, sizeof n->transfer);
        n->transfer.data = op;
        if ((rv = raft_transfer(r, &n->transfer, m->id, on_transferred))) {
            if (rv == RAFT_NOTFOUND)
                rv = mkv_errf(err, errlen, -ENOENT, "no other voter to hand leadership to");
            else if (rv == RAFT_BADID)
                rv = mkv_errf(err, errlen, -ENOENT, "member %llu is not a voter of the group",
                              (unsigned long long)m->id);
            else rv = mkv_errf(err, errlen, raft_status(rv), "%s", raft_errmsg(r));
            break;
        }
        n->transfer_busy = 1;
        MKV_INFO("meta", "handing leadership over to=%llu", (unsigned long long)m->id);
        return 0;
    default: rv = mkv_errf(err, errlen, -EINVAL, "unknown member operation %u", m->op);
    }
fail:
    free(op);
    return rv;
}

int mkv_node_members(struct mkv_node *n, struct mkv_buf *out)
{
    struct raft *r = &n->raft;
    int leading = raft_state(r) == RAFT_LEADER;
    out->len = 0;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        struct mkv_member_info mi = {0};
        char addr[288];
        if (mkv_node_shift_port(s->address, -1, addr, sizeof addr)) addr[0] = 0;
        mi.id = s->id;
        mi.address = mkv_slice_str(addr);
        mi.role = (uint8_t)s->role;
        if (s->id == n->id) mi.match_index = raft_last_index(r);
        else if (leading && r->leader_state.progress)
            mi.match_index = r->leader_state.progress[i].match_index;
        if (mkv_msg_append(out, &mkv_desc_member_info, &mi)) return -ENOMEM;
    }
    return 0;
}
