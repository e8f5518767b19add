/* minikv meta: the client endpoint of the metadata service.
 *
 * For each frame: PING and META_STATUS are answered locally; META_MEMBER
 * (admin keys) changes the group through the leader (member.c); read-only
 * requests go to the state machine on the ready leader (with several
 * voters, once a barrier has shown it still leads: node.h); [raft] requests are
 * checked (they must decode), wrapped in an envelope with the session prefix
 * and the leader's clock, appended to the Raft log, and answered from the
 * state machine's result once applied and committed (or, with
 * MKV_FRAME_EARLY, once applied: META_SYNC then waits for the commit; see
 * "Applying ahead" in node.c). LOCK is answered by
 * the ready leader from its lock table (locks.h), which forgets a
 * connection's locks when it closes. With a cluster key, a connection must
 * authenticate first (AUTH_HELLO, AUTH: minikv/auth.h); until then only
 * PING and those are answered. Anything else gets an error reply; nothing
 * a client sends can stop the service. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>

#include "meta/locks.h"
#include "meta/meta.h"
#include "meta/node.h"
#include "meta/nodes.h"
#include "meta/ns.h"
#include "meta/placer.h"
#include "minikv/auth.h"
#include "minikv/config.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/net.h"

struct mkv_meta
{
    uv_loop_t *loop;
    struct mkv_node *node;
    struct mkv_server *srv;
    struct mkv_buf scratch; /* query replies */
    char *dir;
    struct mkv_buf chunk_servers; /* chunk_server_info records for META_STATUS */
    struct mkv_buf node_regs;     /* node_rec records read for META_STATUS */
    struct mkv_nodes *nodes;      /* heartbeats heard while leading (nodes.h) */
    struct mkv_placer *placer;    /* vshard placement while leading (placer.h) */
    char *static_chunks;          /* --chunk-servers */
    uint64_t reserve;
    uint64_t free_bytes;   /* last statvfs of dir */
    uint64_t free_checked; /* uv_now of that statvfs */
    uint8_t cluster_key[32];
    int auth; /* clients must authenticate */
    struct mkv_locks *locks;
    uint64_t locks_term; /* the term the lock table was built in */
    void (*on_fatal)(void *data);
    void *fatal_data;
    void (*stop_cb)(void *data);
    void *stop_data;
    int stopping;
};

/* A command waiting for Raft. */
struct pending
{
    struct mkv_node_req req;
    struct mkv_meta *m;
    struct mkv_conn *conn;
    struct mkv_frame_hdr hdr;
};

/* Replies with an error; MKV_ENOTLEADER carries the leader's address, or
 * becomes MKV_EUNAVAILABLE when there is no other member to name. */
static void reply_error(struct mkv_meta *m, struct mkv_conn *c, const struct mkv_frame_hdr *h,
                        int status, const char *msg)
{
    const char *leader = NULL;
    if (status == MKV_ENOTLEADER) {
        uint64_t lid;
        leader = mkv_node_leader(m->node, &lid);
        /* No leader known, or it is this member (elected, not yet ready):
         * the client should retry here after a pause. */
        if (!leader[0] || strcmp(leader, mkv_node_self(m->node)) == 0) {
            status = MKV_EUNAVAILABLE;
            leader = NULL;
        }
    }
    mkv_conn_reply_error(c, h, status, msg ? msg : mkv_strerror(status), leader);
}

static void command_done(struct mkv_node_req *req, int status, const uint8_t *reply, size_t len)
{
    struct pending *p = MKV_CONTAINER_OF(req, struct pending, req);
    if (mkv_conn_is_open(p->conn)) {
        /* An early reply says so: the client's next META_SYNC must find it
         * committed (a reply after the commit needs no such check). */
        if (status == 0)
            mkv_conn_reply_flags(p->conn, &p->hdr, 0, req->early ? MKV_FRAME_EARLY : 0, reply, len);
        else reply_error(p->m, p->conn, &p->hdr, status, NULL);
    }
    mkv_conn_unref(p->conn);
    free(p);
}

/* A request waiting for the node (command_done frees it), or NULL after
 * answering ENOMEM. */
static struct pending *pending_new(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p) {
        reply_error(m, c, &f->hdr, -ENOMEM, NULL);
        return NULL;
    }
    p->m = m;
    p->conn = c;
    p->hdr = f->hdr;
    mkv_conn_ref(c);
    return p;
}

/* The node refused p before taking it: answer rv, free p. */
static void pending_fail(struct pending *p, struct mkv_frame *f, int rv)
{
    reply_error(p->m, p->conn, &f->hdr, rv, NULL);
    mkv_conn_unref(p->conn);
    free(p);
}

/* Commands that make the state bigger; the others (deletes, aborts, gc,
 * completing an upload) must go on when the disk is full so that space can
 * be freed. */
static int grows_state(uint16_t type)
{
    switch (type) {
    case MKV_MSG_OBJ_PUT:
    case MKV_MSG_MPU_CREATE:
    case MKV_MSG_MPU_PART:
    case MKV_MSG_BUCKET_CREATE:
    case MKV_MSG_KEY_PUT:
    case MKV_MSG_META_ALLOC:
    case MKV_MSG_INO_MAKE:
    case MKV_MSG_INO_LINK:
    case MKV_MSG_INO_WRITE:
    case MKV_MSG_XATTR_SET: return 1;
    default: return 0;
    }
}

/* 1 when the metadata disk is under the reserve (statvfs at most every
 * 100 ms). */
static int disk_full(struct mkv_meta *m)
{
    uint64_t now = uv_now(m->loop);
    struct statvfs sv;
    if (!m->reserve) return 0;
    if (!m->free_checked || now - m->free_checked >= 100) {
        if (statvfs(m->dir, &sv) == 0) m->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
        m->free_checked = now ? now : 1;
    }
    return m->free_bytes < m->reserve;
}

static void handle_command(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    const struct mkv_msgdesc *d = mkv_msg_request_desc(f->hdr.type);
    const uint8_t *payload = f->payload;
    size_t len = f->hdr.length;
    uint64_t client_id = 0, seq = 0;
    struct pending *p;
    int rv;
    if (f->hdr.flags & MKV_FRAME_SESSION) {
        if (len < MKV_SESSION_PREFIX) {
            reply_error(m, c, &f->hdr, -EPROTO, "short session prefix");
            return;
        }
        client_id = mkv_get_le64(payload);
        seq = mkv_get_le64(payload + 8);
        payload += MKV_SESSION_PREFIX;
        len -= MKV_SESSION_PREFIX;
    }
    /* A command that does not decode would only fail on every replica. */
    {
        union
        {
            uint64_t align;
            uint8_t any[1024]; /* larger than any request struct */
        } msg;
        if (!d || d->size > sizeof msg || mkv_msg_decode(d, payload, len, &msg)) {
            reply_error(m, c, &f->hdr, -EPROTO, "malformed request");
            return;
        }
    }
    if (grows_state(f->hdr.type) && disk_full(m)) {
        reply_error(m, c, &f->hdr, -ENOSPC, "the metadata disk is under its free-space reserve");
        return;
    }
    if (!(p = pending_new(m, c, f))) return;
    rv = mkv_node_submit(m->node, &p->req, f->hdr.type, client_id, seq, mkv_now_ns(), payload, len,
                         (f->hdr.flags & MKV_FRAME_EARLY) ? MKV_NODE_EARLY : 0, command_done);
    if (rv) pending_fail(p, f, rv);
}

/* META_SYNC: the reply waits until every command answered so far is
 * durable (commands answered early included). */
static void handle_sync(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_meta_sync_req req;
    struct pending *p;
    int rv;
    if (mkv_frame_decode(f, &mkv_desc_meta_sync_req, &req)) {
        reply_error(m, c, &f->hdr, -EPROTO, "malformed sync request");
        return;
    }
    if (!(p = pending_new(m, c, f))) return;
    if ((rv = mkv_node_sync(m->node, &p->req, command_done))) pending_fail(p, f, rv);
}

/* Answers a read-only request from the state as it is now. */
static void answer_query(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    const uint8_t *payload = f->payload;
    size_t len = f->hdr.length;
    int status;
    if (f->hdr.flags & MKV_FRAME_SESSION) { /* harmless on a read: ignored */
        payload += MKV_SESSION_PREFIX;
        len -= MKV_SESSION_PREFIX;
    }
    mkv_node_query(m->node, f->hdr.type, payload, len, &status, &m->scratch);
    if (status == 0) mkv_conn_reply_raw(c, &f->hdr, 0, m->scratch.p, m->scratch.len);
    else reply_error(m, c, &f->hdr, status, status == -EPROTO ? "malformed request" : NULL);
    if (m->scratch.cap > (1u << 20)) mkv_buf_free(&m->scratch); /* do not keep big lists */
}

/* A read waiting for the leader to prove it still leads (node.h). */
struct pending_read
{
    struct mkv_node_read r;
    struct mkv_meta *m;
    struct mkv_conn *conn;
    struct mkv_frame *frame;
};

static void read_ready(struct mkv_node_read *r, int status)
{
    struct pending_read *p = MKV_CONTAINER_OF(r, struct pending_read, r);
    if (mkv_conn_is_open(p->conn)) {
        if (status == 0) answer_query(p->m, p->conn, p->frame);
        else reply_error(p->m, p->conn, &p->frame->hdr, status, NULL);
    }
    mkv_frame_unref(p->frame);
    mkv_conn_unref(p->conn);
    free(p);
}

static void handle_query(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct pending_read *p;
    int rv;
    if ((f->hdr.flags & MKV_FRAME_SESSION) && f->hdr.length < MKV_SESSION_PREFIX) {
        reply_error(m, c, &f->hdr, -EPROTO, "short session prefix");
        return;
    }
    if (mkv_node_read_direct(m->node)) {
        answer_query(m, c, f);
        return;
    }
    if (!(p = calloc(1, sizeof *p))) {
        reply_error(m, c, &f->hdr, -ENOMEM, NULL);
        return;
    }
    p->m = m;
    p->conn = c;
    p->frame = f;
    mkv_conn_ref(c);
    mkv_frame_ref(f);
    /* read_ready may run inside the call (raft refused the barrier). */
    if ((rv = mkv_node_read_wait(m->node, &p->r, read_ready))) read_ready(&p->r, rv);
}

/* ---- chunk servers ---- */

/* The vshard map as this member has applied it (MKV_VSHARD_LIST_* flags),
 * decoded from m->node_regs; all zero when it cannot be read. */
static void read_map(struct mkv_meta *m, uint32_t flags, struct mkv_vshard_list_rep *rep)
{
    struct mkv_vshard_list_req q = {flags};
    uint8_t pl[16];
    size_t len = 0;
    int status = -EIO;
    if (mkv_msg_encode(&mkv_desc_vshard_list_req, &q, pl, sizeof pl, &len) == 0)
        mkv_node_read_stale(m->node, MKV_MSG_VSHARD_LIST, pl, len, &status, &m->node_regs);
    if (status || mkv_msg_decode(&mkv_desc_vshard_list_rep, m->node_regs.p, m->node_regs.len, rep))
        memset(rep, 0, sizeof *rep);
}

/* m->chunk_servers: the registered chunk servers (this member's replica of
 * the table), with what the leader has heard, and the configured ones;
 * st (if not NULL) gets the map's epoch, factor and degraded vshards. */
static void chunk_servers(struct mkv_meta *m, struct mkv_meta_status_rep *st)
{
    struct mkv_vshard_list_rep rep;
    read_map(m, 0, &rep);
    if (mkv_nodes_info(m->nodes, rep.nodes, rep.vshards,
                       mkv_node_ready(m->node) ? mkv_node_term(m->node) : 0, m->static_chunks,
                       &m->chunk_servers))
        m->chunk_servers.len = 0;
    if (st) {
        st->vshard_epoch = rep.epoch;
        st->replicas = rep.replicas;
        st->vshards_degraded = mkv_vshards_degraded(rep.vshards, rep.replicas);
    }
}

/* The vshard map's epoch as this member has applied it (0: none). */
static uint64_t map_epoch(struct mkv_meta *m)
{
    struct mkv_vshard_list_rep rep;
    read_map(m, MKV_VSHARD_LIST_HEADER, &rep);
    return rep.epoch;
}

static int is_admin(struct mkv_meta *m, struct mkv_conn *c);

/* NODE_HEARTBEAT: kept in the leader's memory, never in the log. */
static void handle_heartbeat(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_node_heartbeat_req req;
    struct mkv_node_heartbeat_rep rep = {0};
    if (mkv_frame_decode(f, &mkv_desc_node_heartbeat_req, &req)) {
        reply_error(m, c, &f->hdr, -EPROTO, "malformed heartbeat");
        return;
    }
    if (!is_admin(m, c)) {
        reply_error(m, c, &f->hdr, -EACCES, "only the cluster's own services send heartbeats");
        return;
    }
    if (!mkv_node_ready(m->node)) {
        reply_error(m, c, &f->hdr, MKV_ENOTLEADER, NULL);
        return;
    }
    if (mkv_nodes_heard(m->nodes, mkv_node_term(m->node), &req)) {
        reply_error(m, c, &f->hdr, -ENOMEM, NULL);
        return;
    }
    mkv_placer_tick(m->placer, m->node);
    rep.interval_ms = mkv_nodes_interval_ms(m->nodes);
    rep.vshard_epoch = map_epoch(m);
    mkv_conn_reply(c, &f->hdr, &mkv_desc_node_heartbeat_rep, &rep);
}

/* ---- group membership ---- */

static void handle_member(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_meta_member_req req;
    struct pending *p;
    char err[256] = "";
    int rv;
    if (mkv_frame_decode(f, &mkv_desc_meta_member_req, &req)) {
        reply_error(m, c, &f->hdr, -EPROTO, "malformed member request");
        return;
    }
    if (!is_admin(m, c)) {
        reply_error(m, c, &f->hdr, -EACCES, "changing the metadata group needs an admin key");
        return;
    }
    if (!(p = pending_new(m, c, f))) return;
    rv = mkv_node_member(m->node, &p->req, &req, command_done, err, sizeof err);
    if (rv) {
        reply_error(m, c, &f->hdr, rv, err[0] ? err : NULL);
        mkv_conn_unref(p->conn);
        free(p);
    }
}

/* ---- authentication ---- */

struct conn_auth
{
    uint8_t nonce[MKV_AUTH_NONCE];
    int have_nonce;
    int authed;
    uint32_t flags;
    char principal[MKV_ACCESS_KEY_MAX + 1];
};

static struct conn_auth *conn_auth(struct mkv_conn *c)
{
    struct conn_auth *a = mkv_conn_data(c);
    if (!a && (a = calloc(1, sizeof *a))) mkv_conn_set_data(c, a, free);
    return a;
}

static int authed(struct mkv_conn *c)
{
    struct conn_auth *a = mkv_conn_data(c);
    return a && a->authed;
}

static void handle_auth_hello(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_auth_hello_req req;
    struct mkv_auth_hello_rep rep;
    struct conn_auth *a = conn_auth(c);
    if (mkv_frame_decode(f, &mkv_desc_auth_hello_req, &req)) {
        reply_error(m, c, &f->hdr, -EPROTO, "malformed AUTH_HELLO");
        return;
    }
    if (!a || getrandom(a->nonce, sizeof a->nonce, 0) != sizeof a->nonce) {
        reply_error(m, c, &f->hdr, -ENOMEM, NULL);
        return;
    }
    a->have_nonce = 1;
    rep.nonce = mkv_slice_mem(a->nonce, sizeof a->nonce);
    mkv_conn_reply(c, &f->hdr, &mkv_desc_auth_hello_rep, &rep);
}

/* Without a cluster key everyone is; else the key must be an admin's. */
static int is_admin(struct mkv_meta *m, struct mkv_conn *c)
{
    struct conn_auth *a;
    if (!m->auth) return 1;
    a = conn_auth(c);
    return a && a->authed && (a->flags & MKV_KEYF_ADMIN);
}

/* Access keys are managed by admins (the gateways, as the cluster, and
 * admin keys): any other key may only read its own record. */
static int key_op_denied(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_key_get_req q;
    struct conn_auth *a;
    const uint8_t *p = f->payload;
    size_t len = f->hdr.length;
    uint16_t t = f->hdr.type;
    if (t != MKV_MSG_KEY_PUT && t != MKV_MSG_KEY_DELETE && t != MKV_MSG_KEY_LIST &&
        t != MKV_MSG_KEY_GET)
        return 0;
    if (is_admin(m, c)) return 0;
    if (t != MKV_MSG_KEY_GET) return 1;
    if (f->hdr.flags & MKV_FRAME_SESSION) {
        if (len < MKV_SESSION_PREFIX) return 1;
        p += MKV_SESSION_PREFIX;
        len -= MKV_SESSION_PREFIX;
    }
    a = conn_auth(c);
    return !a || mkv_msg_decode(&mkv_desc_key_get_req, p, len, &q) ||
           !mkv_slice_eq(q.access_key, a->principal);
}

/* The secret of access_key: the cluster key for the cluster principal,
 * else the key store's, unsealed. Returns its length or a negative code. */
static int key_secret(struct mkv_meta *m, const char *access_key, uint8_t *out, size_t cap,
                      uint32_t *flags)
{
    struct mkv_key_get_req q = {0};
    struct mkv_key_get_rep rep;
    uint8_t payload[200];
    size_t len = 0;
    int status = 0;
    if (!strcmp(access_key, MKV_CLUSTER_PRINCIPAL)) {
        memcpy(out, m->cluster_key, 32);
        *flags = MKV_KEYF_ADMIN;
        return 32;
    }
    q.access_key = mkv_slice_str(access_key);
    if (mkv_msg_encode(&mkv_desc_key_get_req, &q, payload, sizeof payload, &len)) return -EINVAL;
    mkv_node_query(m->node, MKV_MSG_KEY_GET, payload, len, &status, &m->scratch);
    /* A follower checks keys against its own replica of the key store (a
     * key made a moment ago may not be there yet: the client is then sent
     * to the leader), so that clients may authenticate with any member. */
    if (status == MKV_ENOTLEADER) {
        mkv_node_read_stale(m->node, MKV_MSG_KEY_GET, payload, len, &status, &m->scratch);
        if (status == MKV_ENOKEY || status == MKV_EUNAVAILABLE) status = MKV_ENOTLEADER;
    }
    if (status) return status == MKV_ENOKEY ? -EACCES : status;
    if (mkv_msg_decode(&mkv_desc_key_get_rep, m->scratch.p, m->scratch.len, &rep)) return -EIO;
    if (rep.flags & MKV_KEYF_DISABLED) return -EACCES;
    *flags = rep.flags;
    if (mkv_secret_unseal(m->cluster_key, access_key, rep.sealed_secret.p, rep.sealed_secret.len,
                          (char *)out, cap))
        return -EACCES; /* sealed with another cluster key */
    return (int)strlen((char *)out);
}

static void handle_auth(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_auth_req req;
    struct mkv_auth_rep rep = {0};
    struct conn_auth *a = conn_auth(c);
    char ak[MKV_ACCESS_KEY_MAX + 1];
    uint8_t secret[256], mac[MKV_AUTH_MAC];
    uint32_t flags = 0;
    int n;
    if (mkv_frame_decode(f, &mkv_desc_auth_req, &req) || req.nonce.len != MKV_AUTH_NONCE ||
        req.mac.len != MKV_AUTH_MAC || !req.access_key.len) {
        reply_error(m, c, &f->hdr, -EPROTO, "malformed AUTH");
        return;
    }
    if (!a || !a->have_nonce) {
        reply_error(m, c, &f->hdr, -EPROTO, "AUTH without AUTH_HELLO first");
        return;
    }
    a->have_nonce = 0; /* one attempt per nonce */
    snprintf(ak, sizeof ak, "%.*s", (int)req.access_key.len, (const char *)req.access_key.p);
    if (!m->auth) { /* nothing to check against: everyone is in */
        a->authed = 1;
        snprintf(a->principal, sizeof a->principal, "%s", ak);
        mkv_conn_reply(c, &f->hdr, &mkv_desc_auth_rep, &rep);
        return;
    }
    n = key_secret(m, ak, secret, sizeof secret, &flags);
    if (n == MKV_ENOTLEADER || n == MKV_EUNAVAILABLE) {
        reply_error(m, c, &f->hdr, n, NULL);
        return;
    }
    if (n > 0) mkv_auth_mac(secret, (size_t)n, a->nonce, req.nonce.p, ak, mac);
    memset(secret, 0, sizeof secret);
    if (n <= 0 || !mkv_auth_mac_equal(mac, req.mac.p, MKV_AUTH_MAC)) {
        MKV_WARN("meta", "authentication failed peer=%s key=%s", mkv_conn_peer_name(c), ak);
        reply_error(m, c, &f->hdr, -EACCES, "unknown access key or wrong secret");
        return;
    }
    a->authed = 1;
    a->flags = flags;
    snprintf(a->principal, sizeof a->principal, "%s", ak);
    MKV_DEBUG("meta", "authenticated peer=%s key=%s", mkv_conn_peer_name(c), ak);
    rep.flags = flags;
    mkv_conn_reply(c, &f->hdr, &mkv_desc_auth_rep, &rep);
}

/* A token for the chunk servers, for the connection's principal. */
static void handle_token_get(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_token_get_rep rep = {0};
    struct conn_auth *a = mkv_conn_data(c);
    uint8_t token[MKV_AUTH_MAC];
    if (!m->auth || !a) {
        reply_error(m, c, &f->hdr, -ENOTSUP, "this metadata service has no cluster key");
        return;
    }
    rep.access_key = mkv_slice_str(a->principal);
    rep.expiry_ns = mkv_now_ns() + MKV_TOKEN_TTL_NS;
    mkv_auth_token(m->cluster_key, a->principal, rep.expiry_ns, token);
    rep.token = mkv_slice_mem(token, sizeof token);
    mkv_conn_reply(c, &f->hdr, &mkv_desc_token_get_rep, &rep);
}

#define LOCKS_MAX (1u << 20)

/* Locks are the leader's: one that lost leadership and won it again
 * starts afresh, as a new leader would. */
static void handle_lock(struct mkv_meta *m, struct mkv_conn *c, struct mkv_frame *f)
{
    struct mkv_lock_req req;
    struct mkv_lock_rep rep;
    int rv;
    if (mkv_frame_decode(f, &mkv_desc_lock_req, &req)) {
        reply_error(m, c, &f->hdr, -EPROTO, "malformed lock request");
        return;
    }
    if (!mkv_node_ready(m->node)) {
        reply_error(m, c, &f->hdr, MKV_ENOTLEADER, NULL);
        return;
    }
    if (!m->locks || m->locks_term != mkv_node_term(m->node)) {
        mkv_locks_free(m->locks);
        m->locks = mkv_locks_new(LOCKS_MAX);
        m->locks_term = mkv_node_term(m->node);
        if (!m->locks) {
            reply_error(m, c, &f->hdr, -ENOMEM, NULL);
            return;
        }
    }
    rv = mkv_locks_apply(m->locks, c, &req, &rep);
    if (rv) reply_error(m, c, &f->hdr, rv, rv == -ENOLCK ? "too many locks" : NULL);
    else mkv_conn_reply(c, &f->hdr, &mkv_desc_lock_rep, &rep);
}

static void on_close(struct mkv_conn *c, void *ctx)
{
    struct mkv_meta *m = ctx;
    if (m->locks) mkv_locks_drop_holder(m->locks, c);
}

static void on_frame(struct mkv_conn *c, struct mkv_frame *f, void *ctx)
{
    struct mkv_meta *m = ctx;
    uint16_t type = f->hdr.type;
    if (f->hdr.flags & MKV_FRAME_REPLY) {
        /* Nobody here asked. */
    } else if (m->stopping) {
        reply_error(m, c, &f->hdr, MKV_EUNAVAILABLE, "shutting down");
    } else if (type == MKV_MSG_AUTH_HELLO) {
        handle_auth_hello(m, c, f);
    } else if (type == MKV_MSG_AUTH) {
        handle_auth(m, c, f);
    } else if (m->auth && !authed(c) && type != MKV_MSG_PING) {
        reply_error(m, c, &f->hdr, -EACCES,
                    "authenticate first: this metadata service requires an access key");
    } else if (type == MKV_MSG_TOKEN_GET) {
        handle_token_get(m, c, f);
    } else if (type == MKV_MSG_PING) {
        struct mkv_ping_req req;
        struct mkv_ping_rep rep;
        if (mkv_frame_decode(f, &mkv_desc_ping_req, &req)) {
            reply_error(m, c, &f->hdr, -EPROTO, "malformed ping");
        } else {
            rep.sent_ns = req.sent_ns;
            rep.now_ns = mkv_now_ns();
            rep.node = mkv_slice_str(mkv_node_self(m->node));
            mkv_conn_reply(c, &f->hdr, &mkv_desc_ping_rep, &rep);
        }
    } else if (type == MKV_MSG_META_STATUS) {
        struct mkv_meta_status_req req;
        struct mkv_meta_status_rep rep;
        if (mkv_frame_decode(f, &mkv_desc_meta_status_req, &req)) {
            reply_error(m, c, &f->hdr, -EPROTO, "malformed status request");
        } else {
            mkv_node_status(m->node, &rep);
            chunk_servers(m, &rep);
            rep.chunk_servers =
                mkv_slice_mem(m->chunk_servers.p ? m->chunk_servers.p : (const uint8_t *)"",
                              m->chunk_servers.len);
            if (mkv_node_members(m->node, &m->scratch)) m->scratch.len = 0;
            rep.members =
                mkv_slice_mem(m->scratch.p ? m->scratch.p : (const uint8_t *)"", m->scratch.len);
            mkv_conn_reply(c, &f->hdr, &mkv_desc_meta_status_rep, &rep);
        }
    } else if (type == MKV_MSG_META_SYNC) {
        handle_sync(m, c, f);
    } else if (type == MKV_MSG_META_MEMBER) {
        handle_member(m, c, f);
    } else if (type == MKV_MSG_NODE_HEARTBEAT) {
        handle_heartbeat(m, c, f);
    } else if (key_op_denied(m, c, f)) {
        reply_error(m, c, &f->hdr, -EACCES, "managing access keys needs an admin key");
    } else if (type == MKV_MSG_NODE_REGISTER && !is_admin(m, c)) {
        reply_error(m, c, &f->hdr, -EACCES, "only the cluster's own services register");
    } else if ((type == MKV_MSG_VSHARD_SET || type == MKV_MSG_NODE_DRAIN ||
                type == MKV_MSG_VSHARD_FILLED) &&
               !is_admin(m, c)) {
        reply_error(m, c, &f->hdr, -EACCES, "changing where data is placed needs an admin key");
    } else if (type == MKV_MSG_LOCK) {
        handle_lock(m, c, f);
    } else if (mkv_ns_is_command(type)) {
        handle_command(m, c, f);
    } else if (mkv_ns_is_query(type)) {
        handle_query(m, c, f);
    } else {
        reply_error(m, c, &f->hdr, -ENOTSUP, "not a metadata request");
    }
    mkv_frame_unref(f);
}

static const struct mkv_server_ops server_ops = {on_frame, on_close};

static void on_fatal(void *data)
{
    struct mkv_meta *m = data;
    MKV_ERROR("meta", "metadata service failed; it answers MKV_EUNAVAILABLE until restarted");
    if (m->on_fatal) m->on_fatal(m->fatal_data);
}

int mkv_meta_start(uv_loop_t *loop, const struct mkv_meta_opts *o, struct mkv_meta **out, char *err,
                   size_t errlen)
{
    struct mkv_node_opts no;
    struct mkv_meta *m;
    char host[256];
    int port, rv;
    if (!o->dir || !o->listen) return mkv_errf(err, errlen, -EINVAL, "meta needs dir and listen");
    if (o->segment_size && (o->segment_size < (1u << 20) || o->segment_size > (1u << 30)))
        return mkv_errf(err, errlen, -EINVAL, "raft segment size %zu is not between 1M and 1G",
                        o->segment_size);
    if (mkv_parse_hostport(o->listen, host, sizeof host, &port) || port <= 0 || port >= 65535)
        return mkv_errf(err, errlen, -EINVAL,
                        "listen \"%s\": HOST:PORT with a fixed port "
                        "(Raft uses PORT+1)",
                        o->listen);
    m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->loop = loop;
    m->reserve = o->reserve_bytes;
    m->dir = strdup(o->dir);
    if (!m->dir) {
        free(m);
        return -ENOMEM;
    }
    m->on_fatal = o->on_fatal;
    if (o->cluster_key) {
        memcpy(m->cluster_key, o->cluster_key, 32);
        m->auth = 1;
    }
    m->nodes = mkv_nodes_new(o->chunk_heartbeat_ms, o->chunk_dead_ms);
    m->placer = mkv_placer_new(m->nodes, o->replicas);
    if (o->chunk_servers && *o->chunk_servers) m->static_chunks = strdup(o->chunk_servers);
    if (!m->nodes || !m->placer || (o->chunk_servers && *o->chunk_servers && !m->static_chunks)) {
        rv = -ENOMEM;
        goto err_after_alloc;
    }
    m->fatal_data = o->fatal_data;
    memset(&no, 0, sizeof no);
    no.dir = o->dir;
    no.id = o->id ? o->id : 1;
    no.address = o->listen;
    no.peers = o->peers;
    no.join = o->join;
    no.snapshot_threshold = o->snapshot_threshold;
    no.snapshot_trailing = o->snapshot_trailing;
    no.segment_size = o->segment_size;
    no.election_ms = o->election_ms;
    no.heartbeat_ms = o->heartbeat_ms;
    no.catch_up_ms = o->catch_up_ms;
    no.map_size = o->map_size;
    no.on_fatal = on_fatal;
    no.data = m;
    /* The client endpoint first: a taken port fails before Raft starts. */
    rv = mkv_server_listen(loop, o->listen, &server_ops, m, &m->srv, err, errlen);
    if (rv) goto err_after_alloc;
    rv = mkv_node_start(loop, &no, &m->node, err, errlen);
    if (rv) goto err_after_listen;

    MKV_INFO("meta", "metadata service listening address=%s id=%llu", o->listen,
             (unsigned long long)no.id);
    *out = m;
    return 0;

err_after_listen:
    mkv_server_close(m->srv, NULL, NULL);
err_after_alloc:
    mkv_placer_free(m->placer);
    mkv_nodes_free(m->nodes);
    free(m->static_chunks);
    free(m->dir);
    free(m);
    return rv;
}

int mkv_meta_port(const struct mkv_meta *m)
{
    return mkv_server_port(m->srv);
}

int mkv_meta_read_local(void *meta, uint16_t type, const void *req, size_t len, int *status,
                        struct mkv_buf *reply)
{
    struct mkv_meta *m = meta;
    if (!mkv_ns_is_query(type)) return -EAGAIN;
    return mkv_node_read_local(m->node, type, req, len, status, reply);
}

static void node_stopped(void *data)
{
    struct mkv_meta *m = data;
    MKV_INFO("meta", "metadata service stopped");
    if (m->stop_cb) m->stop_cb(m->stop_data);
}

void mkv_meta_free(struct mkv_meta *m)
{
    if (!m) return;
    mkv_placer_free(m->placer);
    mkv_node_free(m->node);
    mkv_locks_free(m->locks);
    memset(m->cluster_key, 0, sizeof m->cluster_key);
    mkv_buf_free(&m->scratch);
    mkv_buf_free(&m->chunk_servers);
    mkv_buf_free(&m->node_regs);
    mkv_nodes_free(m->nodes);
    free(m->static_chunks);
    free(m->dir);
    free(m);
}

static void server_closed(void *data)
{
    struct mkv_meta *m = data;
    /* Commands still in Raft are answered (on closed connections: dropped)
     * while the node closes. */
    mkv_node_stop(m->node, node_stopped, m);
}

void mkv_meta_stop(struct mkv_meta *m, void (*cb)(void *data), void *data)
{
    m->stopping = 1;
    m->stop_cb = cb;
    m->stop_data = data;
    mkv_server_close(m->srv, server_closed, m);
}
