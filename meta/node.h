/* minikv meta: one member of the metadata Raft group.
 *
 * A node owns a canonical/raft instance (libuv backend) and the namespace
 * state machine (meta/ns.h) on one libuv loop. Addresses: each member is
 * known by its meta client address HOST:PORT; its Raft transport listens on
 * HOST:PORT+1 (the Raft configuration holds those PORT+1 addresses, and the
 * leader's client address is derived back from them).
 *
 * Writes: mkv_node_submit wraps a [raft] request in an mkv_raft_cmd envelope
 * and appends it; the callback runs once the entry is applied AND the batch
 * transaction holding it is committed to LMDB (see fsm.c for why).
 * Reads: mkv_node_query answers on the leader once a barrier issued in its
 * current term has been applied (so the state holds every committed entry).
 *
 * Threading: everything on the node's loop, except mkv_node_read_local. */
#ifndef MKV_META_NODE_H
#define MKV_META_NODE_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <uv.h>

#include "minikv/buf.h"
#include "minikv/wire.h"

struct mkv_node;
struct mkv_node_req;

struct mkv_node_opts
{
    const char *dir;     /* data directory: DIR/raft and DIR/ns */
    uint64_t id;         /* this member's id (>= 1) */
    const char *address; /* this member's meta client address HOST:PORT */
    /* "1=H:P,2=H:P,3=H:P" (meta client addresses, this member included);
     * NULL or "" makes a group of one. Used to bootstrap a pristine data
     * directory; a restarted member reads its configuration from its log. */
    const char *peers;
    /* Never bootstrap: a new member that waits, with an empty log, for the
     * group's leader to add it (META_MEMBER ADD). */
    int join;
    unsigned snapshot_threshold; /* 0: 32768 */
    size_t segment_size;         /* Raft log segment bytes; 0: 32 MiB */
    unsigned snapshot_trailing;  /* 0: 1024 */
    unsigned election_ms;        /* 0: 1000 */
    unsigned heartbeat_ms;       /* 0: 100 */
    /* A spare being promoted must finish a catch-up round (replication up
     * to where the log stood when the round began; the first may be a
     * snapshot) within this, or the promotion fails. 0: 60 s. */
    unsigned catch_up_ms;
    uint64_t map_size; /* LMDB map size, 0: default */
    int no_sync;       /* LMDB without fsync (tests only) */
    /* Called (once, on the loop) when the state machine failed: the node
     * then refuses every request and its owner must stop it. */
    void (*on_fatal)(void *data);
    void *data;
};

typedef void (*mkv_node_cb)(struct mkv_node_req *req, int status, const uint8_t *reply, size_t len);

/* A submitted command. The struct must stay valid until cb. */
struct mkv_node_req
{
    void *data; /* for the caller */
    /* private */
    struct raft_apply apply;
    struct mkv_node *node;
    mkv_node_cb cb;
    int status;
    struct mkv_buf reply;
    uint64_t sync_index; /* mkv_node_sync: answered once this is applied */
    int early;           /* answered before its commit (applied ahead, MKV_NODE_EARLY) */
    struct mkv_node_req *next;
};

struct mkv_node_stats
{
    uint64_t start_last_index;  /* last log index found at start */
    uint64_t start_snapshot;    /* snapshot index found at start (0: none) */
    uint64_t replayed;          /* entries of the start log applied again */
    uint64_t replay_skipped;    /* of those, already in LMDB (skipped) */
    uint64_t applied;           /* entries given to the state machine since start */
    uint64_t applied_ahead;     /* of the commands submitted, applied at submit */
    uint64_t snapshots;         /* snapshots taken since start */
    uint64_t restores;          /* snapshots restored (install or start) */
    uint64_t restores_replaced; /* of those, replacing the local state */
};

/* Starts the node on loop. On failure after the Raft instance was created
 * the loop must still run for its handles to close (the memory is freed
 * then). err gets a message. */
int mkv_node_start(uv_loop_t *loop, const struct mkv_node_opts *opts, struct mkv_node **out,
                   char *err, size_t errlen);
/* Closes Raft (pending commands fail with MKV_EUNAVAILABLE), commits the
 * batch, closes the namespace; cb(data) once the node has stopped. */
void mkv_node_stop(struct mkv_node *n, void (*cb)(void *data), void *data);
/* Releases the node after its stop callback AND after the loop has run
 * until it had nothing left to do (uv_run returned): libraft 0.15 can
 * still be closing a log segment's writer after it reported itself closed,
 * and that writer refers to memory held here. */
void mkv_node_free(struct mkv_node *n);

/* Flags of mkv_node_submit. */
enum {
    /* The caller takes the reply once the command is applied, before it is
     * durable (MKV_FRAME_EARLY): mkv_node_sync makes it durable. */
    MKV_NODE_EARLY = 0x01,
};

/* Submits a [raft] request (payload without session prefix). Returns 0 and
 * later calls cb with the command's status and reply payload, or returns
 * MKV_ENOTLEADER, MKV_EUNAVAILABLE, -ENOMEM without calling cb. A status of
 * MKV_EUNAVAILABLE in cb means the outcome is unknown (leadership lost):
 * retry with the same session.
 *
 * Apply ahead: the leader of a group of one applies a command to its
 * uncommitted batch when it submits it, if everything before it in the log
 * is applied (node.c, "Applying ahead"). With MKV_NODE_EARLY cb then runs
 * inside this call (and must not submit from there); without, once the
 * command is committed. */
int mkv_node_submit(struct mkv_node *n, struct mkv_node_req *req, uint16_t type, uint64_t client_id,
                    uint64_t seq, int64_t now_ns, const void *payload, size_t len, unsigned flags,
                    mkv_node_cb cb);
/* Calls cb (status 0, reply an encoded meta_sync_rep) once every command
 * submitted so far is committed and durable; returns MKV_ENOTLEADER or
 * MKV_EUNAVAILABLE without calling it. */
int mkv_node_sync(struct mkv_node *n, struct mkv_node_req *req, mkv_node_cb cb);
/* Answers a read-only request if this node is the ready leader, else
 * *status = MKV_ENOTLEADER (or MKV_EUNAVAILABLE). Returns non-zero only on
 * a state machine failure. */
int mkv_node_query(struct mkv_node *n, uint16_t type, const void *req, size_t len, int *status,
                   struct mkv_buf *reply);

/* Linearizable reads with several voters. A leader that has lost its
 * majority (partitioned, or stopped for a while) may not know it yet, and
 * its state can miss writes a new leader has acknowledged; so before such
 * a read is answered, a barrier issued after it arrived must be applied:
 * only a leader still holding a majority gets there, and its state then
 * holds every write acknowledged before the read began. Reads arriving
 * while one barrier is out share the next one. */
struct mkv_node_read
{
    void *data; /* for the caller */
    /* private */
    void (*cb)(struct mkv_node_read *r, int status);
    struct mkv_node_read *next;
};
/* 1 when a read may be answered at once with mkv_node_query: the ready
 * leader of a group of one (no other leader can exist), or a member that
 * is not the ready leader (mkv_node_query then refuses it). */
int mkv_node_read_direct(struct mkv_node *n);
/* Queues r: cb(r, 0) once a read that began now may be answered with
 * mkv_node_query, or cb(r, MKV_ENOTLEADER / MKV_EUNAVAILABLE), possibly
 * inside this call. Returns 0, or one of those without calling cb. */
int mkv_node_read_wait(struct mkv_node *n, struct mkv_node_read *r,
                       void (*cb)(struct mkv_node_read *r, int status));
/* Any thread, until mkv_node_stop: answers a read-only request from the
 * committed state when that is linearizable without a round trip (this
 * member is the ready leader of a group of one), else -EAGAIN. */
int mkv_node_read_local(struct mkv_node *n, uint16_t type, const void *req, size_t len, int *status,
                        struct mkv_buf *reply);

/* On the loop: answers a read-only request from this member's committed
 * state, on the leader or on a follower that has heard from the leader
 * within an election timeout (else *status = MKV_ENOTLEADER); a
 * follower's may lag the leader's by what it has not applied yet. Only
 * for what may be that stale (the access-key lookup of authentication). */
int mkv_node_read_stale(struct mkv_node *n, uint16_t type, const void *req, size_t len, int *status,
                        struct mkv_buf *reply);
/* 1 when leader and ready for reads. */
int mkv_node_ready(const struct mkv_node *n);
/* The leader's meta client address ("" when unknown) and id (0). */
const char *mkv_node_leader(struct mkv_node *n, uint64_t *id);
/* This member's advertised meta client address (its --peers entry). */
const char *mkv_node_self(const struct mkv_node *n);
/* Fills the Raft and counter fields of a META_STATUS reply (chunk_servers
 * is left empty). String fields point into the node. */
void mkv_node_status(struct mkv_node *n, struct mkv_meta_status_rep *st);
/* META_MEMBER (member.c): changes the group on the ready leader. Returns 0
 * and later calls cb (status, and an encoded meta_member_rep), or returns
 * an error without calling it (err then says why, for -EINVAL, -EEXIST,
 * -ENOENT, -EBUSY; MKV_ENOTLEADER when this member does not lead). */
int mkv_node_member(struct mkv_node *n, struct mkv_node_req *req,
                    const struct mkv_meta_member_req *m, mkv_node_cb cb, char *err, size_t errlen);
/* The Raft configuration as member_info records (replacing out's content). */
int mkv_node_members(struct mkv_node *n, struct mkv_buf *out);
/* The Raft term this member is in. */
uint64_t mkv_node_term(struct mkv_node *n);
void mkv_node_get_stats(const struct mkv_node *n, struct mkv_node_stats *st);
/* The state machine, for tests and tools that read it directly. */
struct mkv_ns *mkv_node_ns(struct mkv_node *n);

/* Parses "1=H:P,2=H:P" into ids/addresses (at most max); returns the count
 * or -EINVAL. addrs[i] point into buf (a copy of the text). */
int mkv_node_parse_peers(const char *peers, char *buf, size_t buflen, uint64_t *ids, char **addrs,
                         int max);
/* "HOST:PORT" -> "HOST:PORT+delta" into out. */
int mkv_node_shift_port(const char *addr, int delta, char *out, size_t outlen);

#endif /* MKV_META_NODE_H */
