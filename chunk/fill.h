/* minikv chunk server: the fill of vshards this server was given as a
 * filling replica (fill.c): their older data copied from the filled
 * replicas, then reported (VSHARD_FILLED). On the server's loop. */
#ifndef MKV_CHUNK_FILL_H
#define MKV_CHUNK_FILL_H
#include <stdint.h>

#include <uv.h>

#include "minikv/client.h"
#include "store.h"

struct mkv_fill;
/* node_id: this server's id (0 until registered; read at each tick).
 * Data of vshards this server is no longer a replica of is deleted once
 * release_after_ms old (0: 60 s), when a filled replica is elsewhere.
 * A fill copies at most rate bytes per second (0: no cap). */
struct mkv_fill *mkv_fill_new(uv_loop_t *loop, struct mkv_store *store, struct mkv_client *meta,
                              const uint64_t *node_id, uint64_t release_after_ms, uint64_t rate);
/* Starts the next fill if none is running, else (every 10 s at most)
 * releases data this server no longer needs (after each heartbeat). */
void mkv_fill_tick(struct mkv_fill *f);
/* Ends the fill in progress (its calls answer -ECANCELED once the meta
 * client is closed), then cb(data); the store must stay open until then. */
void mkv_fill_stop(struct mkv_fill *f, void (*cb)(void *data), void *data);
void mkv_fill_free(struct mkv_fill *f);
/* Versions and bytes copied since start. */
void mkv_fill_totals(const struct mkv_fill *f, uint64_t *versions, uint64_t *bytes);
#endif
