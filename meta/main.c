/* minikv-meta: one member of the metadata service as its own process.
 *
 *   minikv-meta --data DIR --listen HOST:PORT [--id N --peers 1=H:P,2=H:P,3=H:P]
 *   minikv-meta --data DIR --listen HOST:PORT --id N --join
 *
 * Raft listens on PORT+1 of the same host. The first start of the members
 * listed in --peers (each given the same list) bootstraps the group; a
 * member restarted with its data directory rejoins on its own. Without
 * --peers the member is a group of one. With --join it bootstraps nothing
 * and waits for the group's leader to add it (minikvctl meta add). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "meta/meta.h"
#include "minikv/auth.h"
#include "minikv/buf.h"
#include "minikv/config.h"
#include "minikv/log.h"
#include "minikv/wire.h"

struct settings
{
    char *data;
    char *listen;
    long long id;
    char *peers;
    int join;
    char *chunk_servers;
    uint64_t chunk_heartbeat_ms;
    uint64_t chunk_dead_ms;
    long long replicas;
    long long snapshot_threshold;
    uint64_t raft_segment_size;
    long long snapshot_trailing;
    uint64_t election_ms;
    uint64_t heartbeat_ms;
    uint64_t catch_up_ms;
    uint64_t map_size;
    uint64_t reserve;
    char *log_level;
    char *log_file;
    char *cluster_key;
};

#define S struct settings
static const struct mkv_option options[] = {
    MKV_OPT("data", MKV_OPT_STR, S, data, NULL, "DIR",
            "data directory: DIR/raft (log, snapshots) and DIR/ns (LMDB); required", NULL),
    MKV_OPT("listen", MKV_OPT_STR, S, listen, "127.0.0.1:7000", "HOST:PORT",
            "metadata service address (Raft listens on PORT+1)", mkv_validate_hostport),
    MKV_OPT("id", MKV_OPT_INT, S, id, "1", "N", "this member's id in --peers", NULL),
    MKV_OPT("chunk-servers", MKV_OPT_STR, S, chunk_servers, NULL, "H:P[,H:P]",
            "chunk servers to tell clients about besides those that register themselves", NULL),
    MKV_OPT("chunk-heartbeat", MKV_OPT_DURATION, S, chunk_heartbeat_ms, "2s", "DURATION",
            "how often chunk servers report to the leader (three missed: the server is down)",
            NULL),
    MKV_OPT("chunk-dead-after", MKV_OPT_DURATION, S, chunk_dead_ms, "60s", "DURATION",
            "a chunk server silent this long is declared dead", NULL),
    MKV_OPT("replicas", MKV_OPT_INT, S, replicas, "3", "N",
            "copies of the data the vshard map aims at (1-6; fewer while fewer chunk servers "
            "are registered); a bucket may ask for fewer (minikvctl bucket create --replicas)",
            NULL),
    MKV_OPT("peers", MKV_OPT_STR, S, peers, NULL, "1=H:P,2=H:P,...",
            "every member's metadata address, this one included (none: a group of one)", NULL),
    MKV_OPT("join", MKV_OPT_BOOL, S, join, "0", NULL,
            "start a new member that waits, with an empty log, to be added to an existing group "
            "(minikvctl meta add HOST:PORT); never bootstraps",
            NULL),
    MKV_OPT("snapshot-threshold", MKV_OPT_INT, S, snapshot_threshold, "32768", "N",
            "Raft entries between snapshots", NULL),
    MKV_OPT("raft-segment-size", MKV_OPT_SIZE, S, raft_segment_size, "32M", "SIZE",
            "Raft log segment file size (1M-1G; two spares are preallocated)", NULL),
    MKV_OPT("snapshot-trailing", MKV_OPT_INT, S, snapshot_trailing, "1024", "N",
            "Raft entries kept after a snapshot (lets slow followers catch up without one)", NULL),
    MKV_OPT("election-timeout", MKV_OPT_DURATION, S, election_ms, "1s", "DURATION",
            "Raft election timeout", NULL),
    MKV_OPT("heartbeat", MKV_OPT_DURATION, S, heartbeat_ms, "100ms", "DURATION",
            "Raft heartbeat interval (shorter than the election timeout)", NULL),
    MKV_OPT("catch-up-timeout", MKV_OPT_DURATION, S, catch_up_ms, "60s", "DURATION",
            "a member being added must catch up (a snapshot, then the log) within this, or "
            "minikvctl meta add fails",
            NULL),
    MKV_OPT("reserve", MKV_OPT_SIZE, S, reserve, "64M", "SIZE",
            "refuse commands that add state when less than this is free on DIR's disk", NULL),
    MKV_OPT("map-size", MKV_OPT_SIZE, S, map_size, "16G", "SIZE",
            "largest size of the LMDB namespace (address space, not disk)", NULL),
    MKV_OPT("log-level", MKV_OPT_STR, S, log_level, NULL, "LEVEL",
            "error, warn, info, debug or trace", NULL),
    MKV_OPT("log-file", MKV_OPT_STR, S, log_file, NULL, "FILE",
            "append logs to FILE instead of stderr", NULL),
    MKV_OPT("cluster-key", MKV_OPT_STR, S, cluster_key, NULL, "FILE",
            "the cluster key (64 hex digits, shared with the gateways and chunk servers): clients "
            "must then authenticate with an access key; without it anyone who reaches the port "
            "is served",
            NULL),
};
#undef S

static void usage(FILE *out)
{
    fprintf(out, "Usage: minikv-meta --data DIR [--listen HOST:PORT] [--id N --peers 1=H:P,...] "
                 "[options]\n"
                 "       minikv-meta --data DIR --listen HOST:PORT --id N --join [options]\n\n"
                 "A minikv metadata server: the namespace (buckets, keys, multipart uploads,\n"
                 "chunk bookkeeping, access keys) as a Raft-replicated state machine over\n"
                 "LMDB. Options may also be set in a config file (--config FILE, section\n"
                 "[meta]).\n\n"
                 "The group: the first start of the members listed in --peers (each given\n"
                 "the same list) bootstraps it; without --peers a member is a group of one.\n"
                 "A member restarted with its data directory rejoins by itself, whatever its\n"
                 "flags. To grow a running group, start the new member with --join and an\n"
                 "empty DIR, then run `minikvctl meta add HOST:PORT` (it becomes a voter\n"
                 "once it has caught up); `minikvctl meta remove ID` and `minikvctl meta\n"
                 "transfer [ID]` shrink it and hand leadership over.\n\nOptions:\n");
    mkv_config_usage(out, options, MKV_ARRAY_SIZE(options));
}

static uv_signal_t sigint, sigterm;
static struct mkv_meta *service;
static int exit_code;

static void on_stopped(void *data)
{
    (void)data;
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
}

static struct mkv_meta *stopped_service; /* freed once the loop has drained */

static void stop(void)
{
    uv_signal_stop(&sigint);
    uv_signal_stop(&sigterm);
    if (service) mkv_meta_stop(service, on_stopped, NULL);
    stopped_service = service;
    service = NULL;
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    MKV_INFO("meta", "stopping signal=%d", signum);
    stop();
}

static void on_fatal(void *data)
{
    (void)data;
    MKV_ERROR("meta", "stopping after a state machine failure (restart to replay the log)");
    exit_code = 1;
    stop();
}

int main(int argc, char **argv)
{
    struct settings s = {0};
    struct mkv_meta_opts o = {0};
    uint8_t cluster_key[32];
    char err[512] = "";
    uv_loop_t *loop = uv_default_loop();
    int first, rv;
    mkv_log_init();
    mkv_malloc_tune();
    if (mkv_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (mkv_wants_version(argc, argv)) {
        printf("minikv-meta %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (mkv_config_load(options, MKV_ARRAY_SIZE(options), &s, "meta", argc, argv, &first, err,
                        sizeof err)) {
        fprintf(stderr, "minikv-meta: %s\n", err);
        return 2;
    }
    if (first < argc || !s.data) {
        fprintf(stderr, "minikv-meta: %s (see --help)\n",
                first < argc ? "unexpected argument" : "--data is required");
        goto usage_error;
    }
    if (s.log_level && mkv_log_set_level(s.log_level)) {
        fprintf(stderr, "minikv-meta: unknown log level '%s'\n", s.log_level);
        goto usage_error;
    }
    if (s.log_file && mkv_log_set_file(s.log_file)) {
        fprintf(stderr, "minikv-meta: cannot open log file '%s'\n", s.log_file);
        goto usage_error;
    }
    if (s.chunk_heartbeat_ms < 100 || s.chunk_heartbeat_ms > 600000 ||
        s.chunk_dead_ms < 3 * s.chunk_heartbeat_ms || s.chunk_dead_ms > 86400000) {
        fprintf(stderr, "minikv-meta: --chunk-heartbeat must be 100ms-10m and --chunk-dead-after "
                        "at least three heartbeats (and at most a day)\n");
        goto usage_error;
    }
    if (s.replicas < 1 || s.replicas >= MKV_REPLICAS_MAX) {
        fprintf(stderr, "minikv-meta: --replicas must be 1-%d\n", MKV_REPLICAS_MAX - 1);
        goto usage_error;
    }
    if (s.join && s.peers) {
        fprintf(stderr, "minikv-meta: --join and --peers exclude each other: --peers bootstraps "
                        "a new group, --join waits to be added to a running one\n");
        goto usage_error;
    }
    if (s.id < 1 || s.snapshot_threshold < 1 || s.snapshot_threshold > 1000000000 ||
        s.snapshot_trailing < 0 || s.snapshot_trailing > 1000000000 || s.heartbeat_ms < 1 ||
        s.heartbeat_ms >= s.election_ms || s.election_ms > 600000) {
        fprintf(stderr, "minikv-meta: --id must be >= 1, the snapshot settings positive and "
                        "--heartbeat shorter than --election-timeout\n");
        goto usage_error;
    }
    o.dir = s.data;
    o.id = (uint64_t)s.id;
    o.listen = s.listen;
    o.peers = s.peers;
    o.join = s.join;
    o.chunk_servers = s.chunk_servers;
    o.chunk_heartbeat_ms = (unsigned)s.chunk_heartbeat_ms;
    o.chunk_dead_ms = (unsigned)s.chunk_dead_ms;
    o.replicas = (unsigned)s.replicas;
    o.snapshot_threshold = (unsigned)s.snapshot_threshold;
    o.segment_size = (size_t)s.raft_segment_size;
    o.snapshot_trailing = (unsigned)s.snapshot_trailing;
    o.election_ms = (unsigned)s.election_ms;
    o.heartbeat_ms = (unsigned)s.heartbeat_ms;
    o.catch_up_ms = (unsigned)s.catch_up_ms;
    o.map_size = s.map_size;
    o.reserve_bytes = s.reserve;
    o.on_fatal = on_fatal;
    if (s.cluster_key) {
        if (mkv_cluster_key_read(s.cluster_key, cluster_key, err, sizeof err)) {
            fprintf(stderr, "minikv-meta: --cluster-key: %s\n", err[0] ? err : "cannot read it");
            goto usage_error;
        }
        o.cluster_key = cluster_key;
    } else {
        MKV_WARN("meta", "no --cluster-key: clients are not authenticated; keep %s private",
                 s.listen);
    }
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    rv = mkv_meta_start(loop, &o, &service, err, sizeof err);
    if (rv) {
        fprintf(stderr, "minikv-meta: %s\n", err);
        MKV_ERROR("meta", "start failed err=\"%s\"", err);
        uv_close((uv_handle_t *)&sigint, NULL);
        uv_close((uv_handle_t *)&sigterm, NULL);
        uv_run(loop, UV_RUN_DEFAULT); /* let what was opened close */
        uv_loop_close(loop);
        mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
        return 1;
    }
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    mkv_meta_free(stopped_service); /* the loop has drained: libraft is done */
    uv_loop_close(loop);
    mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
    return exit_code;

usage_error:
    mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
    return 2;
}
