/* minikv-chunk: a chunk server as its own process.
 *
 * Usage: minikv-chunk --data DIR --listen HOST:PORT [--meta H:P,...] [options] */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk.h"
#include "config.h"
#include "minikv/auth.h"
#include "minikv/buf.h"
#include "minikv/config.h"
#include "minikv/log.h"

struct settings
{
    char *data;
    char *listen;
    char *meta;
    char *advertise;
    char *zone;
    char *io;
    char *compression;
    long long compression_level;
    char *encryption_key_file;
    uint64_t reserve;
    uint64_t segment_size;
    uint64_t orphan_age_ms;
    uint64_t release_after_ms;
    uint64_t fill_rate;
    uint64_t scrub_every_ms;
    char *log_level;
    char *cluster_key;
};

#define S struct settings
static const struct mkv_option options[] = {
    MKV_OPT("data", MKV_OPT_STR, S, data, NULL, "DIR",
            "data directory (created if missing; required)", NULL),
    MKV_OPT("listen", MKV_OPT_STR, S, listen, "127.0.0.1:7100", "HOST:PORT",
            "address of the chunk service", mkv_validate_hostport),
    MKV_OPT("meta", MKV_OPT_STR, S, meta, NULL, "H:P[,H:P]",
            "metadata service: the server registers there (its id is kept in DIR/node.id), "
            "reports every few seconds, and learns what data to free (without it no data is "
            "ever freed)",
            NULL),
    MKV_OPT("advertise", MKV_OPT_STR, S, advertise, NULL, "HOST:PORT",
            "the address clients are told to use (default: --listen, with the port it got)",
            mkv_validate_hostport),
    MKV_OPT("zone", MKV_OPT_STR, S, zone, NULL, "NAME",
            "failure zone (rack, room), registered with the server (at most 64 bytes)", NULL),
    MKV_OPT("io", MKV_OPT_STR, S, io, "auto", "auto|uring|sync",
            "data path: io_uring, pread/pwrite on threads, or io_uring when available", NULL),
    MKV_OPT("compression", MKV_OPT_STR, S, compression, "none", "none|lz4|zstd",
            "per-block compression", NULL),
    MKV_OPT("compression-level", MKV_OPT_INT, S, compression_level, "0", "N",
            "level (0: library default)", NULL),
    MKV_OPT("encryption-key-file", MKV_OPT_STR, S, encryption_key_file, NULL, "FILE",
            "AES-256-GCM at rest with this key (64 hex digits)", NULL),
    MKV_OPT("reserve", MKV_OPT_SIZE, S, reserve, "64M", "SIZE",
            "refuse writes when less than this is free (room for metadata and deletes)", NULL),
    MKV_OPT("segment-size", MKV_OPT_SIZE, S, segment_size, "256M", "SIZE",
            "size of WAL segment files", NULL),
    MKV_OPT("release-after", MKV_OPT_DURATION, S, release_after_ms, "60s", "DURATION",
            "data of vshards moved off this server (rebalancing, drain) is deleted this long "
            "after it was written, once their new replicas have filled",
            NULL),
    MKV_OPT("fill-rate", MKV_OPT_SIZE, S, fill_rate, "100M", "SIZE",
            "bytes per second a fill (new replica, re-replication, rebalancing) copies at most; "
            "0: no cap (one 1 MiB piece at a time)",
            NULL),
    MKV_OPT("scrub-every", MKV_OPT_DURATION, S, scrub_every_ms, "24h", "DURATION",
            "read and check every block this often (in the background); in a cluster a bad "
            "copy is then repaired from another replica; 0: never",
            NULL),
    MKV_OPT("orphan-age", MKV_OPT_DURATION, S, orphan_age_ms, "10m", "DURATION",
            "prepared data older than this is checked with the metadata service", NULL),
    MKV_OPT("cluster-key", MKV_OPT_STR, S, cluster_key, NULL, "FILE",
            "the cluster key (as given to minikv-meta): clients must show a token of the metadata "
            "service; without it anyone who reaches the port is served",
            NULL),
    MKV_OPT("log-level", MKV_OPT_STR, S, log_level, NULL, "LEVEL",
            "error, warn, info, debug or trace (default: $MINIKV_LOG_LEVEL, else info)", NULL),
};
#undef S

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: minikv-chunk --data DIR [--listen HOST:PORT] [--meta H:P,...] [options]\n\n"
            "A minikv chunk server: block data behind a write-ahead log with group\n"
            "commit, an LMDB index and CRC32C on every block.\n\nOptions:\n");
    mkv_config_usage(out, options, MKV_ARRAY_SIZE(options));
}

static uv_signal_t sigint, sigterm;
static struct mkv_chunk_server *server;

static void on_stopped(void *data)
{
    (void)data;
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    MKV_INFO("chunk", "stopping signal=%d", signum);
    uv_signal_stop(&sigint);
    uv_signal_stop(&sigterm);
    if (server) mkv_chunk_server_stop(server, on_stopped, NULL);
    server = NULL;
}

int main(int argc, char **argv)
{
    struct settings s = {0};
    struct mkv_chunk_server_opts o = {0};
    uint8_t key[32], cluster_key[32];
    char err[512] = "", dir[4096];
    uv_loop_t *loop = uv_default_loop();
    int first, rv;
    mkv_log_init();
    mkv_malloc_tune();
    if (mkv_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (mkv_wants_version(argc, argv)) {
        printf("minikv-chunk %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (mkv_config_load(options, MKV_ARRAY_SIZE(options), &s, "chunk", argc, argv, &first, err,
                        sizeof err)) {
        fprintf(stderr, "minikv-chunk: %s\n", err);
        return 2;
    }
    if (first < argc || !s.data) {
        fprintf(stderr, "minikv-chunk: %s (see --help)\n",
                first < argc ? "unexpected argument" : "--data is required");
        return 2;
    }
    if (s.log_level && mkv_log_set_level(s.log_level)) {
        fprintf(stderr, "minikv-chunk: unknown log level '%s'\n", s.log_level);
        return 2;
    }
    if (mkv_chunk_parse_store_opts(s.io, s.compression, s.compression_level, s.encryption_key_file,
                                   key, &o.store, err, sizeof err)) {
        fprintf(stderr, "minikv-chunk: %s\n", err);
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", s.data);
    o.store.dir = dir;
    o.store.reserve_bytes = s.reserve;
    o.store.segment_size = s.segment_size;
    o.listen = s.listen;
    o.meta = s.meta;
    o.advertise = s.advertise;
    o.zone = s.zone;
    if (s.zone && strlen(s.zone) > 64) {
        fprintf(stderr, "minikv-chunk: --zone is at most 64 bytes\n");
        return 2;
    }
    o.orphan_age_ms = s.orphan_age_ms;
    o.release_after_ms = s.release_after_ms;
    o.fill_rate = s.fill_rate;
    o.scrub_every_ms = s.scrub_every_ms;
    if (s.cluster_key) {
        if (mkv_cluster_key_read(s.cluster_key, cluster_key, err, sizeof err)) {
            fprintf(stderr, "minikv-chunk: --cluster-key: %s\n", err[0] ? err : "cannot read it");
            return 2;
        }
        o.cluster_key = cluster_key;
    } else {
        MKV_WARN("chunk", "no --cluster-key: clients are not authenticated; keep %s private",
                 s.listen);
    }
    signal(SIGPIPE, SIG_IGN);
    rv = mkv_chunk_server_start(loop, &o, &server, err, sizeof err);
    if (rv) {
        fprintf(stderr, "minikv-chunk: %s\n", err);
        return 1;
    }
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
    memset(key, 0, sizeof key);
    memset(cluster_key, 0, sizeof cluster_key);
    return 0;
}
