/* minikv chunk server: the chunk store served over the wire protocol.
 *
 * Requests: CHUNK_WRITE, CHUNK_READ, CHUNK_COMMIT, CHUNK_DELETE, CHUNK_STAT
 * and PING (lib/minikv/wire.h). With meta addresses configured, the server
 * also runs two collectors:
 *  - garbage: asks the meta leader for chunk versions no longer referenced
 *    (GC_LIST), deletes them, and confirms (GC_DONE);
 *  - orphans: prepared versions older than orphan_age (data written by a
 *    client that never committed it, or whose commit message was lost) are
 *    checked with the meta service (REFCHECK): referenced ones are
 *    committed, the rest deleted. This closes the two-phase commit. */
#ifndef MKV_CHUNK_CHUNK_H
#define MKV_CHUNK_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "minikv/common.h"
#include "store.h"

struct mkv_chunk_server_opts
{
    struct mkv_store_opts store;
    const char *listen; /* HOST:PORT of the chunk service */
    /* Meta addresses: the collectors, registration and heartbeats; NULL:
     * none (a chunk server on its own). */
    const char *meta;
    /* Registered as this address (NULL: listen, with the port it got) and
     * failure zone (NULL: none); the id the group gives is kept in the
     * store's directory (node.id). */
    const char *advertise;
    const char *zone;
    uint64_t gc_interval_ms;     /* 0: 2 s between garbage polls */
    uint64_t orphan_age_ms;      /* 0: 10 min */
    uint64_t orphan_interval_ms; /* 0: 60 s */
    uint64_t release_after_ms;   /* data of vshards moved away kept this long; 0: 60 s */
    uint64_t fill_rate;          /* bytes/s a fill copies at most; 0: no cap */
    uint64_t scrub_every_ms;     /* a scrub of every block this often; 0: never */
    /* The cluster key (32 bytes; copied): clients must show a token of the
     * metadata service (AUTH_TOKEN, minikv/auth.h) first, and the
     * collectors authenticate to it as the cluster. NULL: everyone is
     * served (a trusted network only). */
    const uint8_t *cluster_key;
};

struct mkv_chunk_server;

MKV_API int mkv_chunk_server_start(uv_loop_t *loop, const struct mkv_chunk_server_opts *o,
                                   struct mkv_chunk_server **out, char *err, size_t errlen);
MKV_API int mkv_chunk_server_port(const struct mkv_chunk_server *s);
/* For a reader in the same process (mkv_client_opts.local_chunk_read):
 * mkv_store_read_cached on this server's store. Any thread, between a
 * successful start and mkv_chunk_server_stop. */
MKV_API int mkv_chunk_read_local(void *server, uint64_t chunk_id, uint32_t version, uint64_t off,
                                 void *buf, size_t len);
/* Runs both collectors once now (tests). */
MKV_API void mkv_chunk_server_collect(struct mkv_chunk_server *s);
/* Stops serving, closes the store, then cb(data). */
MKV_API void mkv_chunk_server_stop(struct mkv_chunk_server *s, void (*cb)(void *data), void *data);

/* Fills so->io_backend, compression and enc_key (pointing at key, which
 * must outlive so) from option text: io "auto|uring|sync", compression
 * "none|lz4|zstd", key_file holding 64 hex digits (NULL: no encryption).
 * Returns 0 or -EINVAL with a message naming the option. */
MKV_API int mkv_chunk_parse_store_opts(const char *io, const char *compression, long long level,
                                       const char *key_file, uint8_t key[32],
                                       struct mkv_store_opts *so, char *err, size_t errlen);

#endif /* MKV_CHUNK_CHUNK_H */
