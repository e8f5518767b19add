/* minikv meta: the metadata service (public API).
 *
 * One member of the metadata Raft group and its client endpoint: a framed
 * TCP server (lib/minikv/net.h) on `listen` answering the meta messages of
 * lib/minikv/wire.h. Requests marked [raft] are appended to the Raft log and
 * answered once applied and committed to LMDB; read-only requests are
 * answered by the leader once it is ready (a barrier of its term applied);
 * other members answer MKV_ENOTLEADER with the leader's address, or
 * MKV_EUNAVAILABLE when no leader is known.
 *
 * Addresses: `listen` and the addresses in `peers` are meta client
 * addresses HOST:PORT; each member's Raft transport uses HOST:PORT+1.
 *
 * Threading: the service runs on the loop given to mkv_meta_start; every
 * call must be made on that loop's thread. The embedding program ignores
 * SIGPIPE (libuv writes to sockets that peers may have closed). */
#ifndef MKV_META_H
#define MKV_META_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct mkv_meta;
struct mkv_buf;

struct mkv_meta_opts
{
    const char *dir;    /* data directory (DIR/raft, DIR/ns); created if missing */
    uint64_t id;        /* this member's id; 0 means 1 */
    const char *listen; /* meta client address HOST:PORT (PORT+1 is Raft's) */
    /* "1=H:P,2=H:P,3=H:P": every member's meta client address, this one
     * included. Used when DIR is new to bootstrap the group (every member
     * must be given the same list); a restarted member reads its
     * configuration from its own log. NULL or "": a group of one. */
    const char *peers;
    int join;                    /* never bootstrap: wait to be added (mkv_node_opts.join) */
    unsigned snapshot_threshold; /* Raft entries between snapshots; 0: 32768 */
    size_t segment_size;         /* Raft log segment file size; 0: 32 MiB */
    unsigned snapshot_trailing;  /* entries kept after a snapshot; 0: 1024 */
    unsigned election_ms;        /* 0: 1000 */
    unsigned heartbeat_ms;       /* 0: 100 */
    unsigned catch_up_ms;        /* mkv_node_opts.catch_up_ms; 0: 60 s */
    uint64_t map_size;           /* LMDB map size; 0: 16 GiB */
    /* Commands that add state (puts, uploads, buckets, keys, chunk id
     * allocation) are refused with -ENOSPC while the file system of dir
     * has less than this free; deletes and garbage collection go on, so
     * that space can be freed. 0: no reserve. */
    uint64_t reserve_bytes;
    /* Chunk server addresses ("h:p[,h:p]") META_STATUS reports besides
     * the chunk servers that registered themselves (NODE_REGISTER), so that
     * clients given only the meta address (mounts) find the data. */
    const char *chunk_servers;
    unsigned chunk_heartbeat_ms; /* period asked of chunk servers; 0: 2 s */
    unsigned chunk_dead_ms;      /* silent this long: DEAD; 0: 60 s */
    unsigned replicas;           /* copies of each vshard placement aims at; 0: 3 */
    /* The cluster key (32 bytes; copied): clients must authenticate
     * (minikv/auth.h) with an access key of the key store or the key
     * itself. NULL: every client is served (a trusted network only). */
    const uint8_t *cluster_key;
    /* Optional: the state machine failed (LMDB error); the service refuses
     * every request from then on and should be stopped. */
    void (*on_fatal)(void *data);
    void *fatal_data;
};

/* Starts the service on loop. Returns 0 or a negative code with a message
 * in err. After a failure the loop must still be run so that the handles
 * opened so far can close. */
int mkv_meta_start(uv_loop_t *loop, const struct mkv_meta_opts *opts, struct mkv_meta **out,
                   char *err, size_t errlen);
/* Stops accepting requests, closes connections, closes Raft (commands in
 * flight get MKV_EUNAVAILABLE), commits and closes LMDB; cb(data) once the
 * service has stopped. */
void mkv_meta_stop(struct mkv_meta *m, void (*cb)(void *data), void *data);
/* Releases the service after its stop callback, once the loop has run
 * until it had nothing left to do (uv_run returned): libraft may still be
 * closing log files for a moment after it reports itself closed. */
void mkv_meta_free(struct mkv_meta *m);
/* The port the client endpoint listens on. */
int mkv_meta_port(const struct mkv_meta *m);
/* For a gateway in the same process (mkv_client_opts.local_meta_read):
 * answers a read-only request (its encoded payload) in the caller's
 * thread, exactly as the service would, when this member is the ready
 * leader of a group of one: no other member can then hold newer state, and
 * commands are answered only once committed. Otherwise -EAGAIN. Safe on
 * any thread between a successful start and mkv_meta_stop. */
int mkv_meta_read_local(void *meta, uint16_t type, const void *req, size_t len, int *status,
                        struct mkv_buf *reply);

#endif /* MKV_META_H */
