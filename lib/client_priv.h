/* minikv client library: state shared by client.c and stream.c. */
#ifndef MKV_CLIENT_PRIV_H
#define MKV_CLIENT_PRIV_H

#include "minikv/auth.h"
#include "minikv/client.h"

struct mkv_hello;

struct meta_node
{
    struct mkv_peer *peer;
    char addr[256];
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
    int handles;          /* retry_timer, local_idle */
    /* Authentication (client_auth.c). */
    struct mkv_cred cred;
    int have_cred;
    uint8_t token[MKV_AUTH_MAC]; /* for chunk servers */
    uint64_t token_expiry_ns;
    struct mkv_hello *hellos[17]; /* one per peer */
    unsigned nhellos;
};

/* Sets the authentication hello of a new peer (nothing without credentials). */
int mkv_client_hello(struct mkv_client *c, struct mkv_peer *p, int chunk);
void mkv_client_hellos_free(struct mkv_client *c);

#endif /* MKV_CLIENT_PRIV_H */
