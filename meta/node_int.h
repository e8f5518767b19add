/* minikv meta: private state of a Raft node (node.c, fsm.c). */
#ifndef MKV_META_NODE_INT_H
#define MKV_META_NODE_INT_H

#include <limits.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "meta/node.h"
#include "meta/ns.h"

struct mkv_node
{
    uv_loop_t *loop;
    char *dir;
    char *address; /* meta client address of this member */
    char raft_address[288];
    char self_address[288]; /* advertised meta address (raft_address, port - 1) */
    char leader_buf[288];
    uint64_t id;
    void (*on_fatal)(void *data);
    void *data;

    struct mkv_ns *ns;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;

    uv_check_t check;      /* end of each loop iteration: commit, then reply */
    uv_idle_t idle;        /* keeps the loop from blocking while work is queued */
    uv_timer_t sync_timer; /* makes the namespace durable every few seconds */
    uv_timer_t lazy_timer; /* commits a batch nobody waits for (deliver) */
    int open_handles;      /* of the four above, until they are closed */

    /* Periodic namespace sync on a worker thread (mkv_ns_sync_to). */
    uv_work_t sync_work;
    uint64_t sync_txn;
    int sync_inflight;

    /* Leadership: a barrier in the current term before reads. */
    struct raft_barrier barrier;
    int barrier_inflight;
    raft_term barrier_term;
    raft_term ready_term;
    int ready;
    int local_reads; /* atomic: mkv_node_read_local may answer (node.c) */

    /* Reads waiting for a barrier (mkv_node_read_wait): those that came
     * while one was out wait for the next. */
    struct raft_barrier read_barrier;
    int read_barrier_inflight;
    struct mkv_node_read *reads_next;   /* for the next barrier */
    struct mkv_node_read *reads_flight; /* covered by the one out */

    /* A leadership transfer (member.c): one at a time, and kept here for
     * the node's life (libraft 0.15 can use it after its callback). */
    struct raft_transfer transfer;
    int transfer_busy;

    int fatal, fatal_reported, stopping;
    void (*stop_cb)(void *data);
    /* libraft 0.15 may call the io close callback again after it fired
     * (a segment writer still closing): see node_io_close in node.c. */
    void (*raft_io_close)(struct raft_io *io, raft_io_close_cb cb);
    raft_io_close_cb raft_io_closed_cb;
    int io_close_fired;
    int closed;        /* stop finished: mkv_node_free may run after the loop drains */
    int free_on_close; /* start failed: nobody will call mkv_node_free */
    void *stop_data;

    /* Result of the last fsm apply, picked up by the apply callback. */
    int res_status;
    struct mkv_buf res_reply;

    /* Applied commands waiting for the batch commit before their reply. */
    struct mkv_node_req *q_head, *q_tail;
    /* When the batch was first seen dirty (mkv_mono_ns; 0: clean), for the
     * lazy commit. */
    int64_t batch_since_ns;

    /* Applying ahead (node.c): the last entry applied at submit time, and
     * the hold it started (the batch is not committed while an entry
     * applied ahead is not yet committed itself). */
    uint64_t ahead_last;
    int64_t hold_since_ns;
    unsigned hold_count;
    int ahead_lost;                 /* one never committed: the batch must be dropped */
    struct mkv_node_req *sync_head; /* mkv_node_sync waiters */
    struct mkv_node_req bump_req;   /* the inode skip at leader start */
    int bump_inflight;

    /* The snapshot being taken (snapshot -> snapshot_async -> finalize). */
    int snap_busy;
    unsigned snap_seq;
    char snap_path[PATH_MAX];
    void *snap_map;
    size_t snap_len;
    uint8_t snap_hdr[MKV_NS_SNAP_HDR];
    struct raft_buffer *snap_bufs;

    struct mkv_node_stats stats;
    int starting; /* inside raft_start: everything applied is a replay */
    int replay_logged;
};

/* An entry applied ahead (at submit) is not committed yet: the batch
 * holding it must not be committed (node.c, "Applying ahead"). */
static inline int mkv_node_holding(struct mkv_node *n)
{
    return n->ahead_last > raft_last_applied(&n->raft);
}

/* fsm.c */
void mkv_node_fsm_init(struct mkv_node *n);
void mkv_node_fsm_cleanup(struct mkv_node *n);
/* node.c */
void mkv_node_fail(struct mkv_node *n, const char *why);
void mkv_node_kick(struct mkv_node *n);
/* Voters in the current configuration. */
unsigned mkv_node_voters(const struct raft *r);

#endif /* MKV_META_NODE_INT_H */
