/* minikv meta: a Raft node: lifecycle, group membership, leadership and
 * the command/read paths. The FSM adapter is in fsm.c. */
#include <assert.h>
#include <errno.h>
#include <glob.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta/node_int.h"
#include "minikv/config.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define MAX_PEERS 16
#define NODE_HANDLES 4
/* How often the namespace environment is fsynced (it is committed without
 * fsync; see mkv_ns_sync_point). */
#define NS_SYNC_MS 2000

/* ---- addresses ---- */

int mkv_node_shift_port(const char *addr, int delta, char *out, size_t outlen)
{
    char host[256];
    int port, n;
    if (mkv_parse_hostport(addr, host, sizeof host, &port)) return -EINVAL;
    port += delta;
    if (port <= 0 || port > 65535) return -EINVAL;
    if (strchr(host, ':')) n = snprintf(out, outlen, "[%s]:%d", host, port);
    else n = snprintf(out, outlen, "%s:%d", host, port);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int mkv_node_parse_peers(const char *peers, char *buf, size_t buflen, uint64_t *ids, char **addrs,
                         int max)
{
    char *save = NULL, *tok;
    int n = 0;
    if (!peers || strlen(peers) >= buflen) return -EINVAL;
    strcpy(buf, peers);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end;
        char host[256];
        int port;
        unsigned long long id;
        while (*tok == ' ') tok++;
        if (!eq || n == max) return -EINVAL;
        *eq = 0;
        errno = 0;
        id = strtoull(tok, &end, 10);
        if (errno || end == tok || *end || id == 0) return -EINVAL;
        if (mkv_parse_hostport(eq + 1, host, sizeof host, &port) || port <= 0 || port >= 65535)
            return -EINVAL;
        for (int i = 0; i < n; i++)
            if (ids[i] == id) return -EINVAL;
        ids[n] = id;
        addrs[n] = eq + 1;
        n++;
    }
    return n;
}

/* ---- the reply queue and the end-of-iteration commit ---- */

static void idle_noop(uv_idle_t *h)
{
    (void)h;
}

/* Work is queued: keep the loop from blocking in poll so that this
 * iteration reaches the check phase (and its commit) at once. */
void mkv_node_kick(struct mkv_node *n)
{
    if (n->open_handles == NODE_HANDLES && !uv_is_closing((uv_handle_t *)&n->idle))
        uv_idle_start(&n->idle, idle_noop);
}

static void enqueue(struct mkv_node *n, struct mkv_node_req *req)
{
    req->next = NULL;
    if (n->q_tail) n->q_tail->next = req;
    else n->q_head = req;
    n->q_tail = req;
}

/* Calls req's callback with status and the reply in *reply (taken out
 * first: the callback may reuse req, submit again), then frees it. */
static void answer(struct mkv_node_req *req, int status, struct mkv_buf *reply)
{
    struct mkv_buf r = *reply;
    memset(reply, 0, sizeof *reply);
    req->cb(req, status, status ? NULL : r.p, status ? 0 : r.len);
    mkv_buf_free(&r);
}

/* Answers the mkv_node_sync waiters whose index is applied (every one of
 * them when the node stops or failed). */
static void release_syncs(struct mkv_node *n)
{
    struct mkv_node_req **pp = &n->sync_head, *r;
    raft_index applied = raft_last_applied(&n->raft);
    while ((r = *pp)) {
        if (n->fatal || n->stopping || n->ahead_lost) {
            r->status = MKV_EUNAVAILABLE;
        } else if (r->sync_index <= applied) {
            struct mkv_meta_sync_rep rep = {.index = applied};
            r->status = mkv_msg_append(&r->reply, &mkv_desc_meta_sync_rep, &rep);
        } else {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        enqueue(n, r);
    }
}

/* The lazy commit. Committing the batch to LMDB is not what makes a
 * command durable (the Raft log is), nor what makes it visible to the
 * loop's readers (they read the batch; local reads from other threads are
 * off while it is dirty). It has to come before a reply that waits for it
 * (queued replies: S3, minikvctl, whose next read may be a local one) and
 * before a snapshot (which commits it itself). Otherwise it waits, up to
 * these bounds, so that a stream of early-answered commands (a FUSE mount
 * creating or removing files one by one) shares one commit and its dozen
 * page writes, instead of paying for one after each Raft commit while its
 * next request waits on the loop. */
#define LAZY_MAX_NS (4 * 1000 * 1000)
#define LAZY_MAX_ENTRIES 256

static int commit_due(struct mkv_node *n, int64_t now)
{
    return n->q_head || n->stopping || mkv_ns_batch_entries(n->ns) >= LAZY_MAX_ENTRIES ||
           now - n->batch_since_ns >= LAZY_MAX_NS;
}

static void on_lazy_timer(uv_timer_t *t)
{
    mkv_node_kick(t->data);
}

/* Commits the batch (unless it holds entries applied ahead that are not
 * committed yet, or may wait: commit_due), then answers every queued
 * command. */
static void deliver(struct mkv_node *n)
{
    struct mkv_node_req *req, *next;
    int hold = mkv_node_holding(n);
    int64_t now = (int64_t)mkv_mono_ns();
    if (!mkv_ns_dirty(n->ns)) n->batch_since_ns = 0;
    else if (!n->batch_since_ns) n->batch_since_ns = now;
    if (n->ahead_lost) mkv_ns_discard(n->ns);
    else if (!n->fatal && !hold && mkv_ns_dirty(n->ns) && commit_due(n, now) && mkv_ns_flush(n->ns))
        mkv_node_fail(n, "commit");
    if (!mkv_ns_dirty(n->ns)) n->batch_since_ns = 0;
    if (!hold) n->hold_count = 0;
    release_syncs(n);
    req = n->q_head;
    n->q_head = n->q_tail = NULL;
    for (; req; req = next) {
        next = req->next;
        /* After a failure the batch holding the result is gone: the
         * outcome is unknown to the client. */
        answer(req, n->fatal ? MKV_EUNAVAILABLE : req->status, &req->reply);
    }
}

unsigned mkv_node_voters(const struct raft *r)
{
    unsigned voters = 0;
    for (unsigned i = 0; i < r->configuration.n; i++)
        if (r->configuration.servers[i].role == RAFT_VOTER) voters++;
    return voters;
}

static void bump_cb(struct mkv_node_req *req, int status, const uint8_t *reply, size_t len)
{
    struct mkv_node *n = req->node;
    (void)reply;
    (void)len;
    n->bump_inflight = 0;
    if (status) MKV_WARN("meta", "inode skip at start failed err=\"%s\"", mkv_strerror(status));
}

/* A leader that may apply ahead first skips inode numbers (a committed
 * META_ALLOC): a crash may have lost creates it had answered early, and
 * their numbers, which a mount may still hold in its kernel's inode cache,
 * must not name new files. Submitted before any command can be applied
 * ahead in this term, so it is in the log before any of them. Chunk ids
 * need no such skip: META_ALLOC is never answered early. */
static void skip_inodes(struct mkv_node *n)
{
    struct mkv_meta_alloc_req q = {.count = 1u << 16, .flags = MKV_ALLOC_INODES};
    uint8_t pl[16];
    size_t len;
    if (n->bump_inflight || mkv_node_voters(&n->raft) != 1) return;
    if (mkv_msg_encode(&mkv_desc_meta_alloc_req, &q, pl, sizeof pl, &len)) return;
    if (mkv_node_submit(n, &n->bump_req, MKV_MSG_META_ALLOC, 0, 0, mkv_now_ns(), pl, len, 0,
                        bump_cb) == 0)
        n->bump_inflight = 1;
}

static void barrier_cb(struct raft_barrier *b, int status)
{
    struct mkv_node *n = b->data;
    n->barrier_inflight = 0;
    if (status == 0 && !n->stopping && raft_state(&n->raft) == RAFT_LEADER &&
        n->raft.current_term == n->barrier_term) {
        n->ready = 1;
        n->ready_term = n->barrier_term;
        MKV_INFO("meta", "leader ready id=%llu term=%llu applied=%llu", (unsigned long long)n->id,
                 (unsigned long long)n->raft.current_term,
                 (unsigned long long)raft_last_applied(&n->raft));
        skip_inodes(n);
    }
    mkv_node_kick(n);
}

/* Notices leadership changes; a new leader issues a barrier and serves
 * reads once it is applied. */
static void track_leadership(struct mkv_node *n)
{
    struct raft *r = &n->raft;
    if (n->stopping || n->fatal) {
        n->ready = 0;
        return;
    }
    if (raft_state(r) != RAFT_LEADER) {
        if (n->ready) MKV_INFO("meta", "no longer leader id=%llu", (unsigned long long)n->id);
        n->ready = 0;
        return;
    }
    if (n->ready && n->ready_term == r->current_term) return;
    n->ready = 0;
    if (n->barrier_inflight) return;
    n->barrier.data = n;
    n->barrier_term = r->current_term;
    if (raft_barrier(r, &n->barrier, barrier_cb) == 0) n->barrier_inflight = 1;
    else mkv_node_kick(n); /* try again next iteration */
}

/* ---- linearizable reads (node.h) ---- */

static void reads_fail(struct mkv_node_read *list, int status)
{
    while (list) {
        struct mkv_node_read *r = list;
        list = r->next;
        r->cb(r, status);
    }
}

static void read_barrier_start(struct mkv_node *n);

static void read_barrier_cb(struct raft_barrier *b, int status)
{
    struct mkv_node *n = b->data;
    struct mkv_node_read *list = n->reads_flight;
    n->reads_flight = NULL;
    n->read_barrier_inflight = 0;
    /* Applied: this member led with a majority after every read of the
     * list arrived. Else it may have been deposed: the client asks again,
     * following the leader. */
    if (status == 0 && !mkv_node_ready(n)) status = RAFT_LEADERSHIPLOST;
    reads_fail(list, status == 0 ? 0 : n->stopping ? MKV_EUNAVAILABLE : MKV_ENOTLEADER);
    /* The reads that came meanwhile get theirs from check_cb, outside
     * raft's apply loop. */
}

static void read_barrier_start(struct mkv_node *n)
{
    int rv;
    if (n->read_barrier_inflight) return;
    if (n->stopping || !mkv_node_ready(n)) {
        struct mkv_node_read *list = n->reads_next;
        n->reads_next = NULL;
        reads_fail(list, n->stopping ? MKV_EUNAVAILABLE : MKV_ENOTLEADER);
        return;
    }
    n->reads_flight = n->reads_next;
    n->reads_next = NULL;
    n->read_barrier.data = n;
    rv = raft_barrier(&n->raft, &n->read_barrier, read_barrier_cb);
    if (rv) {
        struct mkv_node_read *list = n->reads_flight;
        n->reads_flight = NULL;
        reads_fail(list, rv == RAFT_NOTLEADER ? MKV_ENOTLEADER : MKV_EUNAVAILABLE);
        return;
    }
    n->read_barrier_inflight = 1;
}

int mkv_node_read_direct(struct mkv_node *n)
{
    return !mkv_node_ready(n) || mkv_node_voters(&n->raft) == 1;
}

int mkv_node_read_wait(struct mkv_node *n, struct mkv_node_read *r,
                       void (*cb)(struct mkv_node_read *r, int status))
{
    if (n->fatal || n->stopping) return MKV_EUNAVAILABLE;
    if (!mkv_node_ready(n)) return MKV_ENOTLEADER;
    r->cb = cb;
    r->next = n->reads_next;
    n->reads_next = r;
    read_barrier_start(n);
    return 0;
}

static void log_replay(struct mkv_node *n)
{
    if (n->replay_logged) return;
    if (raft_last_applied(&n->raft) < n->stats.start_last_index && !n->ready) return;
    n->replay_logged = 1;
    MKV_INFO(
        "meta", "replay done snapshot=%llu log_last=%llu replayed=%llu skipped=%llu applied=%llu",
        (unsigned long long)n->stats.start_snapshot, (unsigned long long)n->stats.start_last_index,
        (unsigned long long)n->stats.replayed, (unsigned long long)n->stats.replay_skipped,
        (unsigned long long)raft_last_applied(&n->raft));
}

static void update_local_reads(struct mkv_node *n);

static void check_cb(uv_check_t *h)
{
    struct mkv_node *n = h->data;
    deliver(n);
    if (n->fatal && !n->fatal_reported) {
        n->fatal_reported = 1;
        if (n->on_fatal) n->on_fatal(n->data);
    }
    track_leadership(n);
    if (n->reads_next) read_barrier_start(n);
    update_local_reads(n);
    log_replay(n);
    /* While the batch is held, nothing is due before raft's next write
     * completes (its own I/O wakes the loop); a batch left for the lazy
     * commit is due at its deadline (the timer): do not spin. */
    if (!n->q_head) uv_idle_stop(&n->idle);
    if (mkv_ns_dirty(n->ns) && !mkv_node_holding(n) && n->open_handles == NODE_HANDLES &&
        !uv_is_closing((uv_handle_t *)&n->lazy_timer)) {
        int64_t left = n->batch_since_ns + LAZY_MAX_NS - (int64_t)mkv_mono_ns();
        uv_timer_start(&n->lazy_timer, on_lazy_timer,
                       left > 0 ? (uint64_t)(left + 999999) / 1000000 : 0, 0);
    }
}

/* ---- periodic namespace sync ---- */

static void sync_work(uv_work_t *w)
{
    struct mkv_node *n = MKV_CONTAINER_OF(w, struct mkv_node, sync_work);
    mkv_ns_sync_to(n->ns, n->sync_txn);
}

static void sync_after(uv_work_t *w, int status)
{
    struct mkv_node *n = MKV_CONTAINER_OF(w, struct mkv_node, sync_work);
    (void)status;
    n->sync_inflight = 0;
}

static void on_sync_timer(uv_timer_t *t)
{
    struct mkv_node *n = t->data;
    if (n->sync_inflight || n->stopping || n->fatal) return;
    n->sync_txn = mkv_ns_sync_point(n->ns);
    if (!n->sync_txn) return;
    if (uv_queue_work(n->loop, &n->sync_work, sync_work, sync_after) == 0) n->sync_inflight = 1;
}

void mkv_node_fail(struct mkv_node *n, const char *why)
{
    if (!n->fatal) MKV_ERROR("meta", "state machine failed: node stops serving op=%s", why);
    n->fatal = 1;
    n->ready = 0;
    __atomic_store_n(&n->local_reads, 0, __ATOMIC_RELEASE);
    mkv_node_kick(n);
}

/* ---- commands and reads ---- */

static void apply_cb(struct raft_apply *a, int status, void *result)
{
    struct mkv_node_req *req = a->data;
    struct mkv_node *n = req->node;
    if (status == 0 && result == n) {
        struct mkv_buf tmp = req->reply;
        req->status = n->res_status;
        req->reply = n->res_reply;
        n->res_reply = tmp;
        mkv_buf_reset(&n->res_reply);
    } else {
        /* RAFT_LEADERSHIPLOST, RAFT_SHUTDOWN, an FSM error: unknown. */
        req->status = MKV_EUNAVAILABLE;
    }
    enqueue(n, req);
    mkv_node_kick(n);
}

/* ---- applying ahead ----
 *
 * A command's reply normally waits for its commit: one fdatasync of the
 * Raft log (a few hundred microseconds here), during which a client that
 * works one request at a time (a FUSE mount under cp, tar, rm) waits.
 *
 * The leader of a group of one can instead apply the command to its
 * uncommitted batch as it submits it, because the log order is known: the
 * entry goes right after the last one, and every earlier entry is already
 * applied (ahead_ok). Raft later applies the same entry, which the state
 * machine skips (its index is already applied) and only then counts as
 * committed.
 *
 * What keeps this safe:
 * - The batch holding an entry applied ahead is not committed to LMDB
 *   until raft has committed that entry (deliver, "hold"). LMDB therefore
 *   never holds state the log would not rebuild after kill -9 or a power
 *   loss, and snapshots wait for the hold to end (fsm_snapshot).
 * - Readers see the batch meanwhile: queries on the loop read it
 *   (mkv_ns_query), and reads from other threads (mkv_node_read_local)
 *   are turned off for the hold, so no reader sees older state after a
 *   reply announced newer.
 * - If raft fails to commit such an entry (I/O error, shutdown), the batch
 *   is dropped and the node stops serving: a restart rebuilds from the log.
 * - A hold is bounded (HOLD_MAX_*): past it, commands wait for their commit
 *   as usual until the batch has been committed.
 *
 * The reply goes out at the end of the iteration when the client asked
 * for it early (MKV_NODE_EARLY: what it announces may be lost if the
 * leader dies before the commit; mkv_node_sync tells when it is durable),
 * and after the commit otherwise. With more than one voter nothing is
 * applied ahead: a new leader could truncate the entry. */
#define HOLD_MAX_NS (5 * 1000 * 1000)
#define HOLD_MAX_ENTRIES 512

struct ahead
{
    struct raft_apply apply;
    struct mkv_node *n;
    struct mkv_node_req *req; /* answered at the commit (NULL: answered early) */
    int status;
    struct mkv_buf reply;
};

static int ahead_ok(struct mkv_node *n)
{
    struct raft *r = &n->raft;
    raft_index last = raft_last_index(r);
    if (n->starting || n->snap_busy || n->ahead_lost || !mkv_node_ready(n)) return 0;
    if (mkv_node_voters(r) != 1) return 0;
    /* A snapshot is due: let the hold drain so that raft can take it at its
     * next commit (fsm_snapshot refuses while the batch is held), or a
     * steady stream of commands would keep the log growing. */
    if (raft_last_applied(r) - r->log.snapshot.last_index >= r->snapshot.threshold) return 0;
    /* Every entry in the log is applied, by raft or ahead. */
    if (last != raft_last_applied(r) && last != n->ahead_last) return 0;
    if (mkv_node_holding(n) &&
        (n->hold_count >= HOLD_MAX_ENTRIES || mkv_now_ns() - n->hold_since_ns > HOLD_MAX_NS))
        return 0;
    return 1;
}

static void ahead_cb(struct raft_apply *a, int status, void *result)
{
    struct ahead *h = a->data;
    struct mkv_node *n = h->n;
    (void)result; /* raft's apply of it was skipped: the result is ours */
    if (status != 0) {
        n->ahead_lost = 1;
        if (!n->stopping) mkv_node_fail(n, "an entry applied ahead was not committed");
    }
    if (h->req) {
        h->req->status = status ? MKV_EUNAVAILABLE : h->status;
        h->req->reply = h->reply;
        enqueue(n, h->req);
    } else {
        mkv_buf_free(&h->reply);
    }
    free(h);
    mkv_node_kick(n);
}

/* Applies b ahead and appends it. Returns 0 (b is raft's), 1 when it
 * cannot (b is still the caller's, nothing done), or an error (b still the
 * caller's, nothing appended). An early reply goes out before the append:
 * raft starts the log write inside raft_apply, and the client need not
 * wait for that system call. */
static int submit_ahead(struct mkv_node *n, struct mkv_node_req *req, struct raft_buffer *b,
                        unsigned flags)
{
    raft_index idx = raft_last_index(&n->raft) + 1;
    struct ahead *h;
    int rv, hold = mkv_node_holding(n);
    if (mkv_ns_applied(n->ns) >= idx) return 1;
    h = calloc(1, sizeof *h);
    if (!h) return 1;
    h->n = n;
    h->apply.data = h;
    if (mkv_ns_apply(n->ns, idx, b->base, b->len, &h->status, &h->reply)) {
        /* The state machine failed (it dropped its batch): nothing is
         * appended, the node stops. */
        mkv_buf_free(&h->reply);
        free(h);
        mkv_node_fail(n, "apply ahead");
        return MKV_EUNAVAILABLE;
    }
    if (!hold) n->hold_since_ns = mkv_now_ns();
    n->hold_count++;
    n->ahead_last = idx;
    n->stats.applied_ahead++;
    __atomic_store_n(&n->local_reads, 0, __ATOMIC_RELEASE);
    if (flags & MKV_NODE_EARLY) {
        req->early = 1;
        answer(req, h->status, &h->reply);
    } else {
        h->req = req;
    }
    rv = raft_apply(&n->raft, &h->apply, b, 1, ahead_cb);
    if (rv || raft_last_index(&n->raft) != idx) {
        /* Applied but not in the log: the batch must go. */
        n->ahead_lost = 1;
        mkv_node_fail(n, "append after applying ahead");
        if (rv) {
            if (h->req) {
                h->req->status = MKV_EUNAVAILABLE;
                enqueue(n, h->req);
            }
            mkv_buf_free(&h->reply);
            free(h);
            raft_free(b->base);
        }
    }
    mkv_node_kick(n);
    return 0;
}

int mkv_node_submit(struct mkv_node *n, struct mkv_node_req *req, uint16_t type, uint64_t client_id,
                    uint64_t seq, int64_t now_ns, const void *payload, size_t len, unsigned flags,
                    mkv_node_cb cb)
{
    struct mkv_raft_cmd cmd;
    struct raft_buffer b;
    size_t used;
    int rv;
    if (n->fatal || n->stopping) return MKV_EUNAVAILABLE;
    if (raft_state(&n->raft) != RAFT_LEADER) return MKV_ENOTLEADER;
    if (len > MKV_FRAME_MAX) return -EINVAL;
    cmd.type = type;
    cmd.client_id = client_id;
    cmd.seq = seq;
    cmd.now_ns = now_ns;
    cmd.payload = mkv_slice_mem(payload ? payload : "", len);
    /* raft's uv log format needs entry sizes that are multiples of 8 (its
     * segment reader does not skip padding otherwise); the envelope decoder
     * ignores trailing bytes. */
    used = mkv_msg_size(&mkv_desc_raft_cmd, &cmd);
    b.len = (used + 7) & ~(size_t)7;
    b.base = raft_calloc(1, b.len);
    if (!b.base) return -ENOMEM;
    if ((rv = mkv_msg_encode(&mkv_desc_raft_cmd, &cmd, b.base, b.len, &used))) {
        raft_free(b.base);
        return rv;
    }
    req->node = n;
    req->cb = cb;
    req->status = 0;
    req->next = NULL;
    memset(&req->reply, 0, sizeof req->reply);
    rv = ahead_ok(n) ? submit_ahead(n, req, &b, flags) : 1;
    if (rv == 1) {
        req->apply.data = req;
        rv = raft_apply(&n->raft, &req->apply, &b, 1, apply_cb);
    }
    if (rv) {
        raft_free(b.base);
        if (rv == RAFT_NOTLEADER) return MKV_ENOTLEADER;
        if (rv == RAFT_NOMEM) return -ENOMEM;
        MKV_WARN("meta", "raft_apply failed err=\"%s\"", raft_strerror(rv));
        return MKV_EUNAVAILABLE;
    }
    return 0;
}

int mkv_node_sync(struct mkv_node *n, struct mkv_node_req *req, mkv_node_cb cb)
{
    if (n->fatal || n->stopping || n->ahead_lost) return MKV_EUNAVAILABLE;
    if (!mkv_node_ready(n)) return MKV_ENOTLEADER;
    req->node = n;
    req->cb = cb;
    req->status = 0;
    memset(&req->reply, 0, sizeof req->reply);
    req->sync_index = raft_last_index(&n->raft);
    req->next = n->sync_head;
    n->sync_head = req;
    mkv_node_kick(n);
    return 0;
}

int mkv_node_query(struct mkv_node *n, uint16_t type, const void *req, size_t len, int *status,
                   struct mkv_buf *reply)
{
    mkv_buf_reset(reply);
    if (n->fatal || n->stopping) {
        *status = MKV_EUNAVAILABLE;
        return 0;
    }
    if (!mkv_node_ready(n)) {
        *status = MKV_ENOTLEADER;
        return 0;
    }
    /* The batch is uncommitted only while held (deliver commits it every
     * iteration otherwise): then it holds what replies announced. */
    if (mkv_ns_dirty(n->ns) ? mkv_ns_query(n->ns, type, req, len, status, reply)
                            : mkv_ns_read(n->ns, type, req, len, status, reply)) {
        mkv_node_fail(n, "query");
        *status = MKV_EUNAVAILABLE;
        return -EIO;
    }
    return 0;
}

/* Whether another thread may read the committed state and call it
 * linearizable: this member leads, has applied (and committed) everything
 * of its term's barrier, and is the only voter, so that no other leader
 * can exist. With more voters a read needs a round of heartbeats (or a
 * lease) first: they go through the loop. Updated on the loop. */
static void update_local_reads(struct mkv_node *n)
{
    /* Not while the batch is dirty: it may hold what an early reply (or a
     * query on the loop) announced, and LMDB does not have it yet. */
    int ok = mkv_node_ready(n) && mkv_node_voters(&n->raft) == 1 && !mkv_ns_dirty(n->ns);
    if (ok != __atomic_load_n(&n->local_reads, __ATOMIC_RELAXED))
        __atomic_store_n(&n->local_reads, ok, __ATOMIC_RELEASE);
}

int mkv_node_read_local(struct mkv_node *n, uint16_t type, const void *req, size_t len, int *status,
                        struct mkv_buf *reply)
{
    if (!__atomic_load_n(&n->local_reads, __ATOMIC_ACQUIRE)) return -EAGAIN;
    if (mkv_ns_read(n->ns, type, req, len, status, reply)) return -EAGAIN;
    return 0;
}

int mkv_node_read_stale(struct mkv_node *n, uint16_t type, const void *req, size_t len, int *status,
                        struct mkv_buf *reply)
{
    mkv_buf_reset(reply);
    if (n->fatal || n->stopping || mkv_ns_read(n->ns, type, req, len, status, reply)) {
        *status = MKV_EUNAVAILABLE;
        return -EAGAIN;
    }
    return 0;
}

int mkv_node_ready(const struct mkv_node *n)
{
    return n->ready && !n->fatal && !n->stopping &&
           raft_state((struct raft *)&n->raft) == RAFT_LEADER &&
           n->raft.current_term == n->ready_term;
}

const char *mkv_node_leader(struct mkv_node *n, uint64_t *id)
{
    raft_id lid = 0;
    const char *addr = NULL;
    raft_leader(&n->raft, &lid, &addr);
    if (id) *id = lid;
    if (!lid || !addr || mkv_node_shift_port(addr, -1, n->leader_buf, sizeof n->leader_buf))
        n->leader_buf[0] = 0;
    return n->leader_buf;
}

uint64_t mkv_node_term(struct mkv_node *n)
{
    return n->raft.current_term;
}

void mkv_node_status(struct mkv_node *n, struct mkv_meta_status_rep *st)
{
    struct raft *r = &n->raft;
    struct mkv_ns_counters c;
    uint64_t lid;
    const char *leader = mkv_node_leader(n, &lid);
    memset(st, 0, sizeof *st);
    mkv_ns_counters(n->ns, &c);
    st->id = n->id;
    st->role = (uint8_t)raft_state(r);
    st->ready = (uint8_t)mkv_node_ready(n);
    st->term = r->current_term;
    st->commit_index = r->commit_index;
    st->applied_index = raft_last_applied(r);
    st->last_index = raft_last_index(r);
    st->snapshot_index = r->log.snapshot.last_index;
    st->leader_id = lid;
    st->leader = mkv_slice_str(leader);
    st->address = mkv_slice_str(n->self_address);
    st->voters = mkv_node_voters(r);
    st->buckets = c.buckets;
    st->objects = c.objects;
    st->bytes = c.bytes;
    st->uploads = c.uploads;
    st->garbage = c.garbage;
    st->chunk_servers = mkv_slice_mem("", 0);
    st->members = mkv_slice_mem("", 0);
}

const char *mkv_node_self(const struct mkv_node *n)
{
    return n->self_address;
}

void mkv_node_get_stats(const struct mkv_node *n, struct mkv_node_stats *st)
{
    *st = n->stats;
}

struct mkv_ns *mkv_node_ns(struct mkv_node *n)
{
    return n->ns;
}

/* ---- start and stop ---- */

static void node_free(struct mkv_node *n)
{
    mkv_node_fsm_cleanup(n);
    mkv_ns_close(n->ns);
    mkv_buf_free(&n->res_reply);
    free(n->dir);
    free(n->address);
    free(n);
}

static void handle_closed(uv_handle_t *h)
{
    struct mkv_node *n = h->data;
    void (*cb)(void *) = n->stop_cb;
    void *data = n->stop_data;
    if (--n->open_handles > 0) return;
    n->closed = 1;
    if (n->free_on_close) {
        /* Start failed before anything was written: no segment writer can
         * still be closing, and nobody else will free the node. */
        raft_uv_close(&n->io);
        raft_uv_tcp_close(&n->transport);
        node_free(n);
    }
    if (cb) cb(data);
}

void mkv_node_free(struct mkv_node *n)
{
    if (!n) return;
    assert(n->closed);
    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->transport);
    node_free(n);
}

/* libraft 0.15 (and upstream through 0.17) can fire the io close callback
 * twice: uvAliveSegmentFinalize takes a finalizing segment off the queue
 * that close waits on before its writer has closed, so close completes
 * early, and when the writer's close finishes it calls uvMaybeFireCloseCb
 * again. The second call would re-run raft's close (double frees) on
 * memory we may already have freed. Wrap the io's close so the callback
 * runs once; the memory stays until mkv_node_free. */
static void node_io_closed(struct raft_io *io)
{
    struct mkv_node *n = MKV_CONTAINER_OF(io, struct mkv_node, io);
    if (n->io_close_fired) {
        MKV_DEBUG("meta", "ignored a repeated raft io close callback");
        return;
    }
    n->io_close_fired = 1;
    n->raft_io_closed_cb(io);
}

static void node_io_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct mkv_node *n = MKV_CONTAINER_OF(io, struct mkv_node, io);
    n->raft_io_closed_cb = cb;
    n->raft_io_close(io, node_io_closed);
}

static void raft_closed(struct raft *r)
{
    struct mkv_node *n = r->data;
    /* Pending commands failed with RAFT_LEADERSHIPLOST and are queued with
     * the applied ones: commit, then answer them all. A batch holding
     * entries applied ahead that raft did not commit is dropped instead
     * (the log has whatever was committed). */
    if (mkv_node_holding(n)) n->ahead_lost = 1;
    deliver(n);
    uv_close((uv_handle_t *)&n->check, handle_closed);
    uv_close((uv_handle_t *)&n->idle, handle_closed);
    uv_close((uv_handle_t *)&n->sync_timer, handle_closed);
    uv_close((uv_handle_t *)&n->lazy_timer, handle_closed);
}

void mkv_node_stop(struct mkv_node *n, void (*cb)(void *data), void *data)
{
    MKV_INFO("meta", "node stopping id=%llu applied=%llu", (unsigned long long)n->id,
             (unsigned long long)raft_last_applied(&n->raft));
    n->stopping = 1;
    n->ready = 0;
    __atomic_store_n(&n->local_reads, 0, __ATOMIC_RELEASE);
    n->stop_cb = cb;
    n->stop_data = data;
    {
        struct mkv_node_read *list = n->reads_next; /* the one out fails with raft */
        n->reads_next = NULL;
        reads_fail(list, MKV_EUNAVAILABLE);
    }
    raft_close(&n->raft, raft_closed);
}

/* Snapshot images left by a crash while raft was writing them. */
static void remove_stale_snapshots(const char *dir)
{
    char pattern[PATH_MAX];
    glob_t g;
    snprintf(pattern, sizeof pattern, "%s/snap-*.tmp", dir);
    if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0) return;
    for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
}

static int mkdir_p(const char *path)
{
    if (mkdir(path, 0750) && errno != EEXIST) return -errno;
    return 0;
}

/* Builds the bootstrap configuration from the peers (or this node alone)
 * and finds this member's Raft address. */
static int build_config(struct mkv_node *n, const struct mkv_node_opts *o,
                        struct raft_configuration *conf, char *err, size_t errlen)
{
    char buf[4096], raddr[288], *addrs[MAX_PEERS];
    uint64_t ids[MAX_PEERS];
    int np, self = -1, rv;
    if (o->peers && *o->peers) {
        np = mkv_node_parse_peers(o->peers, buf, sizeof buf, ids, addrs, MAX_PEERS);
        if (np < 0) return mkv_errf(err, errlen, -EINVAL, "bad --peers \"%s\"", o->peers);
    } else {
        ids[0] = o->id;
        addrs[0] = (char *)o->address;
        np = 1;
    }
    for (int i = 0; i < np; i++)
        if (ids[i] == o->id) self = i;
    if (self < 0)
        return mkv_errf(err, errlen, -EINVAL, "id %llu is not in the peers",
                        (unsigned long long)o->id);
    if (mkv_node_shift_port(addrs[self], 1, n->raft_address, sizeof n->raft_address) ||
        mkv_node_shift_port(addrs[self], 0, n->self_address, sizeof n->self_address))
        return mkv_errf(err, errlen, -EINVAL, "bad address \"%s\"", addrs[self]);
    raft_configuration_init(conf);
    for (int i = 0; i < np; i++) {
        if (mkv_node_shift_port(addrs[i], 1, raddr, sizeof raddr)) {
            raft_configuration_close(conf);
            return mkv_errf(err, errlen, -EINVAL, "bad address \"%s\"", addrs[i]);
        }
        if ((rv = raft_configuration_add(conf, ids[i], raddr, RAFT_VOTER))) {
            raft_configuration_close(conf);
            return mkv_errf(err, errlen, -EINVAL, "configuration: %s", raft_strerror(rv));
        }
    }
    return 0;
}

/* Why Raft could not listen on hostport, if binding it fails now (libraft
 * 0.15 reports a failed listen with an empty message); 0 when it binds. */
static int bind_error(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints = {0}, *ai = NULL;
    int fd, one = 1, rv = 0;
    if (!colon || (size_t)(colon - hostport) >= sizeof host) return 0;
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, colon + 1, &hints, &ai) || !ai) return 0;
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen)) rv = errno;
        close(fd);
    }
    freeaddrinfo(ai);
    return rv;
}

int mkv_node_start(uv_loop_t *loop, const struct mkv_node_opts *o, struct mkv_node **out, char *err,
                   size_t errlen)
{
    struct mkv_ns_opts nso = {0};
    struct raft_configuration conf;
    struct mkv_node *n;
    char path[PATH_MAX], bind[288] = "";
    unsigned election = o->election_ms ? o->election_ms : 1000;
    unsigned heartbeat = o->heartbeat_ms ? o->heartbeat_ms : 100;
    int rv;

    if (!o->dir || !o->address || o->id == 0)
        return mkv_errf(err, errlen, -EINVAL, "meta node needs dir, address and id");
    if (heartbeat >= election)
        return mkv_errf(err, errlen, -EINVAL, "heartbeat must be shorter than election timeout");
    n = calloc(1, sizeof *n);
    if (!n) return -ENOMEM;
    n->loop = loop;
    n->id = o->id;
    n->on_fatal = o->on_fatal;
    n->data = o->data;
    n->dir = strdup(o->dir);
    n->address = strdup(o->address);
    if (!n->dir || !n->address) {
        rv = -ENOMEM;
        goto err_after_alloc;
    }
    if ((rv = build_config(n, o, &conf, err, errlen))) goto err_after_alloc;
    snprintf(path, sizeof path, "%s/raft", o->dir);
    if ((rv = mkdir_p(o->dir)) || (rv = mkdir_p(path))) {
        mkv_errf(err, errlen, rv, "mkdir %s", path);
        goto err_after_conf;
    }
    remove_stale_snapshots(o->dir);
    snprintf(path, sizeof path, "%s/ns", o->dir);
    nso.dir = path;
    nso.map_size = o->map_size;
    nso.no_sync = o->no_sync;
    if ((rv = mkv_ns_open(&nso, &n->ns, err, errlen))) goto err_after_conf;

    if ((rv = raft_uv_tcp_init(&n->transport, loop))) {
        rv = mkv_errf(err, errlen, -ENOMEM, "raft transport: %s", raft_strerror(rv));
        goto err_after_ns;
    }
    /* Listening on a wildcard (or another) host than the advertised one. */
    if (mkv_node_shift_port(o->address, 1, bind, sizeof bind) == 0 &&
        strcmp(bind, n->raft_address) != 0 &&
        (rv = raft_uv_tcp_set_bind_address(&n->transport, bind))) {
        rv = mkv_errf(err, errlen, -EINVAL, "raft bind %s: %s", bind, raft_strerror(rv));
        goto err_after_transport;
    }
    snprintf(path, sizeof path, "%s/raft", o->dir);
    if ((rv = raft_uv_init(&n->io, loop, path, &n->transport))) {
        mkv_errf(err, errlen, -EIO, "raft io %s: %s (%s)", path, raft_strerror(rv), n->io.errmsg);
        rv = -EIO;
        goto err_after_transport;
    }
    /* libraft 0.15's uv backend implements async_work but still reports
     * io->version 1, which raft_init refuses for an FSM with snapshot_async
     * (fixed upstream by commit 269e541 "uv: set io version to 2"). */
    if (n->io.version < 2 && n->io.async_work) n->io.version = 2;
    n->raft_io_close = n->io.close;
    n->io.close = node_io_close;
    raft_uv_set_connect_retry_delay(&n->io, heartbeat * 2);
    /* Closing a segment stalls the loop for an io_destroy (~30 ms on
     * kernels that wait a full RCU grace period there): fewer, larger
     * segments. Raft keeps two spare segments preallocated. */
    raft_uv_set_segment_size(&n->io, o->segment_size ? o->segment_size : 32u << 20);
    mkv_node_fsm_init(n);
    if ((rv = raft_init(&n->raft, &n->io, &n->fsm, o->id, n->raft_address))) {
        mkv_errf(err, errlen, -EIO, "raft init: %s", raft_errmsg(&n->raft));
        rv = -EIO;
        goto err_after_io;
    }
    n->raft.data = n;
    uv_check_init(loop, &n->check);
    uv_idle_init(loop, &n->idle);
    uv_timer_init(loop, &n->sync_timer);
    uv_timer_init(loop, &n->lazy_timer);
    n->check.data = n->idle.data = n->sync_timer.data = n->lazy_timer.data = n;
    n->open_handles = NODE_HANDLES;
    uv_check_start(&n->check, check_cb);
    uv_timer_start(&n->sync_timer, on_sync_timer, NS_SYNC_MS, NS_SYNC_MS);

    /* A joining member waits with an empty log for the leader to add it:
     * bootstrapping would make entry 1 of a group of its own, and an entry
     * 1 of the same term but another content than the group's would pass
     * Raft's log matching once it is added. */
    rv = o->join ? RAFT_CANTBOOTSTRAP : raft_bootstrap(&n->raft, &conf);
    if (o->join && raft_last_index(&n->raft) == 0)
        MKV_INFO("meta", "waiting to be added to a group id=%llu address=%s",
                 (unsigned long long)o->id, n->self_address);
    if (rv == 0) {
        MKV_INFO("meta", "raft group bootstrapped id=%llu voters=%u", (unsigned long long)o->id,
                 conf.n);
    } else if (rv != RAFT_CANTBOOTSTRAP) {
        mkv_errf(err, errlen, -EIO, "raft bootstrap: %s", raft_errmsg(&n->raft));
        rv = -EIO;
        goto err_after_raft;
    }
    raft_configuration_close(&conf);
    raft_set_election_timeout(&n->raft, election);
    raft_set_heartbeat_timeout(&n->raft, heartbeat);
    raft_set_snapshot_threshold(&n->raft, o->snapshot_threshold ? o->snapshot_threshold : 32768);
    raft_set_snapshot_trailing(&n->raft, o->snapshot_trailing ? o->snapshot_trailing : 1024);
    raft_set_pre_vote(&n->raft, true);
    /* A new member's first catch-up round copies a snapshot of the whole
     * namespace: libraft's 5 s would give up on a large one. */
    raft_set_max_catch_up_round_duration(&n->raft, o->catch_up_ms ? o->catch_up_ms : 60000);
    n->starting = 1;
    rv = raft_start(&n->raft);
    n->starting = 0;
    if (rv) {
        int be = bind_error(bind[0] ? bind : n->raft_address);
        if (be)
            mkv_errf(err, errlen, -be, "Raft cannot listen on %s (the metadata port + 1)",
                     bind[0] ? bind : n->raft_address);
        else mkv_errf(err, errlen, -EIO, "raft start: %s", raft_errmsg(&n->raft));
        rv = -EIO;
        goto err_after_raft_conf_closed;
    }
    n->stats.start_last_index = raft_last_index(&n->raft);
    n->stats.start_snapshot = n->raft.log.snapshot.last_index;
    MKV_INFO(
        "meta",
        "raft started id=%llu address=%s raft=%s snapshot=%llu log_last=%llu state_applied=%llu",
        (unsigned long long)o->id, n->address, n->raft_address,
        (unsigned long long)n->stats.start_snapshot, (unsigned long long)n->stats.start_last_index,
        (unsigned long long)mkv_ns_applied(n->ns));
    mkv_node_kick(n);
    *out = n;
    return 0;

err_after_raft:
    raft_configuration_close(&conf);
err_after_raft_conf_closed:
    /* raft_close is asynchronous: the rest is released once it is done. */
    n->stopping = 1;
    n->free_on_close = 1;
    raft_close(&n->raft, raft_closed);
    return rv;
err_after_io:
    raft_uv_close(&n->io);
err_after_transport:
    raft_uv_tcp_close(&n->transport);
err_after_ns:
    mkv_ns_close(n->ns);
    n->ns = NULL;
err_after_conf:
    raft_configuration_close(&conf);
err_after_alloc:
    free(n->dir);
    free(n->address);
    free(n);
    return rv;
}
