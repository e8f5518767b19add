/* minikv client library: state shared by client.c and stream.c. */
#ifndef MKV_CLIENT_PRIV_H
#define MKV_CLIENT_PRIV_H

#include "minikv/auth.h"
#include "minikv/client.h"
#include "minikv/vshard.h"

struct mkv_hello;

struct meta_node
{
    struct mkv_peer *peer;
    char addr[256];
    /* A call to it timed out (stopped, cut off): until then, leader hints
     * naming it are not followed while another member is left to ask. */
    uint64_t suspect_until_ns;
};

/* A chunk server of the vshard map (route.c). */
struct chunk_node
{
    uint64_t id;
    char addr[256];
    struct mkv_peer *peer;
    uint64_t failed_ms; /* loop time of its last failed write (0: none) */
};

/* Where a chunk's data goes (route.c): the vshard's replicas in order. */
struct mkv_route
{
    unsigned n;
    unsigned need;   /* durable copies a write needs */
    uint64_t epoch;  /* the vshard's epoch in the map used (chunk_write_req.vepoch) */
    uint8_t filling; /* bit i: replica i may lack older data */
    unsigned replicas;               /* the cluster's factor (the map's) */
    uint64_t node[MKV_REPLICAS_MAX]; /* 0: the configured chunk server */
    struct mkv_peer *peer[MKV_REPLICAS_MAX];
};

/* Waiting for the first map. */
struct mkv_map_wait
{
    void (*cb)(struct mkv_map_wait *w, int status);
    struct mkv_map_wait *next;
};

struct mkv_client
{
    uv_loop_t *loop;
    uint64_t timeout_ms;
    uint64_t retry_ms;
    uint32_t write_window;
    uint32_t frame_bytes;
    uint32_t read_window;
    struct meta_node meta[16];
    unsigned nmeta;
    unsigned leader;
    struct mkv_peer *chunk;
    char *chunk_addr;
    /* sessions */
    uint64_t client_base;
    uint64_t slot_seq[MKV_CLIENT_SLOTS];
    uint8_t slot_busy[MKV_CLIENT_SLOTS];
    unsigned slot_hint;
    struct mkv_meta_req *slot_wait_head, *slot_wait_tail;
    /* retries */
    struct mkv_meta_req *retry_head;
    uv_timer_t retry_timer;
    int retry_active;
    /* chunk ids */
    uint64_t id_next, id_end;
    struct mkv_id_req *id_wait_head, *id_wait_tail;
    int id_inflight;
    struct mkv_meta_req id_req;
    int closing;
    unsigned inflight;
    /* Early replies (opts.early_replies): how many came, how many a
     * META_SYNC has covered, and the connection the oldest uncovered one
     * came over (meta[] index, that peer's connection count). */
    int early;
    uint64_t early_seen, early_synced;
    unsigned early_peer;
    uint64_t early_connects;
    int early_broken; /* one came over another connection: cannot tell */
    /* Shortcuts to services in this process (mkv_client_opts). */
    int (*local_meta_read)(void *ctx, uint16_t type, const void *req, size_t len, int *status,
                           struct mkv_buf *reply);
    void *local_meta_ctx;
    int (*local_chunk_read)(void *ctx, uint64_t chunk_id, uint32_t version, uint64_t off, void *buf,
                            size_t len);
    void *local_chunk_ctx;
    struct mkv_buf local_buf;        /* scratch for local meta replies */
    struct mkv_meta_req *local_head; /* answered locally, callbacks not yet run */
    struct mkv_meta_req *local_tail;
    uv_idle_t local_idle; /* runs them on the next loop turn */
    int handles;          /* retry_timer, local_idle, vmap_timer */
    /* Authentication (client_auth.c). */
    struct mkv_cred cred;
    int have_cred;
    uint8_t token[MKV_AUTH_MAC]; /* for chunk servers */
    uint64_t token_expiry_ns;
    struct mkv_hello **hellos; /* one per peer */
    unsigned nhellos, cap_hellos;
    /* The vshard map (route.c). */
    struct mkv_vshard *vmap; /* MKV_VSHARDS entries once loaded */
    uint64_t vmap_epoch;     /* 0: the cluster has none */
    int vmap_nodes;          /* chunk servers have registered */
    uint32_t vmap_replicas;
    uint32_t min_replicas; /* mkv_client_opts.min_replicas */
    int vmap_have, vmap_loading, vmap_stale;
    int vmap_must; /* a chunk server knows a newer map: routes wait for one */
    unsigned vmap_retries;
    uv_timer_t vmap_timer; /* the next load while the cluster has no map */
    uint64_t vmap_loaded_ms;
    struct mkv_meta_req vmap_req;
    struct mkv_map_wait *map_wait_head, *map_wait_tail;
    struct chunk_node *cnodes;
    size_t ncnodes, cap_cnodes;
    /* Buckets' replication factors, as writers looked them up (stream.c):
     * a few recent ones, each trusted for BUCKET_TTL_MS. */
    struct bucket_copies
    {
        char name[MKV_BUCKET_MAX + 1];
        unsigned copies;
        uint64_t at_ms; /* loop time it was learnt (0: empty) */
    } bcache[16];
    unsigned bcache_next;
};

/* Sets the authentication hello of a new peer (nothing without credentials). */
int mkv_client_hello(struct mkv_client *c, struct mkv_peer *p, int chunk);
void mkv_client_hellos_free(struct mkv_client *c);

/* Routing (route.c). mkv_client_route: 0 with rt filled; 1 when the map
 * is being loaded (w->cb runs once it is, with its status); a negative
 * code (w NULL and no map yet: -EAGAIN). */
int mkv_client_route(struct mkv_client *c, uint64_t chunk_id, struct mkv_route *rt,
                     struct mkv_map_wait *w);
/* The order to read rt's replicas in (indexes into rt); returns how many. */
unsigned mkv_route_read_order(const struct mkv_route *rt, uint64_t chunk_id, unsigned *order);
/* Narrows rt (from mkv_client_route) to the replicas a write of chunk_id
 * goes to. Unchanged unless the chunk asks for fewer copies than the
 * cluster's factor (mkv_chunk_reduced). Then, for the chunk's first piece
 * (*nkeep 0): the first `copies` filled replicas in map order, passing
 * over those that failed a write in the last seconds while enough others
 * remain, topped up with filling ones when too few are filled; or every
 * replica while the vshard has more than the factor (a move). Their node
 * ids go to keep, their count to *nkeep. For later pieces (*nkeep > 0):
 * those of keep still in the vshard. rt->need becomes a majority of the
 * copies (plus the replicas a move will drop). Returns 0, or
 * MKV_EUNAVAILABLE when the chunk cannot be completed where it began (a
 * move began meanwhile, or too few of its replicas are left): the writer
 * fails, and its client writes again. */
int mkv_route_narrow(struct mkv_client *c, struct mkv_route *rt, uint64_t chunk_id, uint64_t *keep,
                     unsigned *nkeep);
/* Remembers that node failed a write (mkv_route_narrow passes it over). */
void mkv_client_node_failed(struct mkv_client *c, uint64_t node);
/* A chunk server failed a call: reload the map at the next use. */
void mkv_client_map_stale(struct mkv_client *c);
/* A chunk server refused a write made with an older map (MKV_ESTALE):
 * routes wait for a fresh one. */
void mkv_client_map_outdated(struct mkv_client *c);
/* Reports (fire and forget) that node's copy of vshard failed: it goes
 * back to filling (VSHARD_MARK). */
void mkv_client_route_close(struct mkv_client *c);
void mkv_client_route_free(struct mkv_client *c);

#endif /* MKV_CLIENT_PRIV_H */
