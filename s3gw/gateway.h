/* minikv gateway: S3 + health + metrics + admin over HTTP/1.1.
 *
 * A thin front over the client library: every request turns into calls to
 * the meta service and the chunk servers. Runs one worker thread (libuv
 * loop + HTTP server + client) per core on one port. */
#ifndef MKV_S3GW_GATEWAY_H
#define MKV_S3GW_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "minikv/common.h"

struct mkv_buf;

struct mkv_gw_opts
{
    const char *listen;           /* HOST:PORT for HTTP (S3, health, metrics, admin) */
    const char *meta;             /* meta service addresses, comma-separated */
    const char *chunk;            /* chunk server address */
    const char *tls_cert;         /* PEM certificate: serve HTTPS */
    const char *tls_key;          /* PEM private key */
    const char *cluster_key_file; /* 32-byte key sealing access-key secrets */
    const char *credentials_file; /* where a generated key pair is saved (0600) */
    const char *region;           /* reported by GetBucketLocation (us-east-1) */
    const char *vhost_domain;     /* base domain for virtual-host style (localhost) */
    int threads;                  /* workers; 0: one per core */
    uint64_t max_object_size;     /* largest single PUT; 0: 5 GiB (S3's limit) */
    uint64_t inline_max;          /* objects up to this size live in their inode (no chunks);
                                   * at most MKV_INLINE_MAX; 0: never */
    unsigned min_replicas;        /* durable copies a write needs (0: a majority) */
    int quiet;                    /* do not print generated credentials */
    /* Services in this same process (minikv server), handed to every
     * worker's client: see mkv_client_opts. NULL: network only. */
    int (*local_meta_read)(void *ctx, uint16_t type, const void *req, size_t len, int *status,
                           struct mkv_buf *reply);
    void *local_meta_ctx;
    int (*local_chunk_read)(void *ctx, uint64_t chunk_id, uint32_t version, uint64_t off,
                            void *buf, size_t len);
    void *local_chunk_ctx;
};

struct mkv_gw;

/* Validator of --inline-max values for option tables (lib/minikv/config.h). */
MKV_API int mkv_gw_validate_inline_max(const char *value, char *err, size_t errlen);

/* Starts the workers; returns once every worker listens (or failed). */
MKV_API int mkv_gw_start(const struct mkv_gw_opts *o, struct mkv_gw **out, char *err,
                         size_t errlen);
MKV_API int mkv_gw_port(const struct mkv_gw *g);
/* Stops the workers (in-flight requests are aborted) and frees g. */
MKV_API void mkv_gw_stop(struct mkv_gw *g);

#endif /* MKV_S3GW_GATEWAY_H */
