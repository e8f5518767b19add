/* minikv-s3gw: the S3 gateway as its own process.
 *
 * Usage: minikv-s3gw --meta H:P[,H:P...] [--chunk H:P] [options]
 * Options come from one table (see --help), a config file ([s3gw]
 * section) and flags. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gateway.h"
#include "minikv/buf.h"
#include "minikv/config.h"
#include "minikv/log.h"
#include "minikv/wire.h"

struct settings
{
    char *listen;
    char *meta;
    char *chunk;
    char *tls_cert;
    char *tls_key;
    char *cluster_key_file;
    char *credentials_file;
    char *region;
    char *vhost_domain;
    long long threads;
    uint64_t max_object_size;
    uint64_t inline_max;
    long long min_replicas;
    char *log_level;
};

#define S struct settings
static const struct mkv_option options[] = {
    MKV_OPT("listen", MKV_OPT_STR, S, listen, "127.0.0.1:8080", "HOST:PORT",
            "address for S3, health, metrics and admin requests", mkv_validate_hostport),
    MKV_OPT("meta", MKV_OPT_STR, S, meta, NULL, "H:P[,H:P]",
            "metadata service addresses (required)", NULL),
    MKV_OPT("chunk", MKV_OPT_STR, S, chunk, NULL, "HOST:PORT",
            "chunk server for a cluster whose chunk servers do not register (minikv server); "
            "otherwise data goes where the vshard map says",
            mkv_validate_hostport),
    MKV_OPT("tls-cert", MKV_OPT_STR, S, tls_cert, NULL, "FILE",
            "PEM certificate chain: serve HTTPS", NULL),
    MKV_OPT("tls-key", MKV_OPT_STR, S, tls_key, NULL, "FILE", "PEM private key for --tls-cert",
            NULL),
    MKV_OPT("cluster-key-file", MKV_OPT_STR, S, cluster_key_file, NULL, "FILE",
            "256-bit key (64 hex digits) sealing access-key secrets; created if missing (required)",
            NULL),
    MKV_OPT("credentials-file", MKV_OPT_STR, S, credentials_file, NULL, "FILE",
            "where to save a generated first key pair (0600, AWS credentials format)", NULL),
    MKV_OPT("region", MKV_OPT_STR, S, region, "us-east-1", "NAME", "region reported to clients",
            NULL),
    MKV_OPT("vhost-domain", MKV_OPT_STR, S, vhost_domain, "localhost", "DOMAIN",
            "Host: BUCKET.DOMAIN selects BUCKET (virtual-host style)", NULL),
    MKV_OPT("threads", MKV_OPT_INT, S, threads, "0", "N", "worker threads (0: one per core)", NULL),
    MKV_OPT("max-object-size", MKV_OPT_SIZE, S, max_object_size, "5G", "SIZE",
            "largest single PutObject body", NULL),
    MKV_OPT("inline-max", MKV_OPT_SIZE, S, inline_max, "16K", "SIZE",
            "objects up to SIZE (at most 64K) are kept in their metadata record, not in chunks; 0: "
            "never",
            mkv_gw_validate_inline_max),
    MKV_OPT("min-replicas", MKV_OPT_INT, S, min_replicas, "0", "N",
            "durable copies a write needs before it is acknowledged; 0: a majority of the "
            "bucket's factor (2 of 3); at most the factor",
            NULL),
    MKV_OPT("log-level", MKV_OPT_STR, S, log_level, NULL, "LEVEL",
            "error, warn, info, debug or trace (default: $MINIKV_LOG_LEVEL, else info)", NULL),
};
#undef S

static void usage(FILE *out)
{
    fprintf(out, "Usage: minikv-s3gw --meta H:P[,H:P...] --cluster-key-file FILE [options]\n\n"
                 "The minikv S3 gateway: S3 (also under /s3/), multi-key transactions\n"
                 "(POST /transaction, POST /batch), /health/live, /health/ready, /metrics and\n"
                 "/admin/status over HTTP/1.1 (HTTPS with --tls-cert).\n"
                 "Credentials: MINIKV_ACCESS_KEY and MINIKV_SECRET_KEY in the environment are\n"
                 "registered at start; with neither and no key yet, a pair is generated,\n"
                 "printed once and saved to --credentials-file.\n\nOptions:\n");
    mkv_config_usage(out, options, MKV_ARRAY_SIZE(options));
}

int main(int argc, char **argv)
{
    struct settings s = {0};
    struct mkv_gw_opts o = {0};
    struct mkv_gw *gw;
    char err[512] = "";
    sigset_t set;
    int sig, first, rv;
    mkv_log_init();
    mkv_malloc_tune();
    if (mkv_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (mkv_wants_version(argc, argv)) {
        printf("minikv-s3gw %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (mkv_config_load(options, MKV_ARRAY_SIZE(options), &s, "s3gw", argc, argv, &first, err, sizeof err)) {
        fprintf(stderr, "minikv-s3gw: %s\n", err);
        return 2;
    }
    if (first < argc) {
        fprintf(stderr, "minikv-s3gw: unexpected argument '%s' (see --help)\n", argv[first]);
        return 2;
    }
    if (!s.meta || !s.cluster_key_file) {
        fprintf(stderr, "minikv-s3gw: --meta and --cluster-key-file are required (see --help)\n");
        return 2;
    }
    if (s.log_level && mkv_log_set_level(s.log_level)) {
        fprintf(stderr, "minikv-s3gw: unknown log level '%s'\n", s.log_level);
        return 2;
    }
    if (s.min_replicas < 0 || s.min_replicas >= MKV_REPLICAS_MAX) {
        fprintf(stderr, "minikv-s3gw: --min-replicas must be 0-%d\n", MKV_REPLICAS_MAX - 1);
        return 2;
    }
    if ((s.tls_cert != NULL) != (s.tls_key != NULL)) {
        fprintf(stderr, "minikv-s3gw: --tls-cert and --tls-key go together\n");
        return 2;
    }
    o.listen = s.listen;
    o.meta = s.meta;
    o.chunk = s.chunk;
    o.tls_cert = s.tls_cert;
    o.tls_key = s.tls_key;
    o.cluster_key_file = s.cluster_key_file;
    o.credentials_file = s.credentials_file;
    o.region = s.region;
    o.vhost_domain = s.vhost_domain;
    o.threads = (int)s.threads;
    o.max_object_size = s.max_object_size;
    o.inline_max = s.inline_max;
    o.min_replicas = (unsigned)s.min_replicas;
    /* Signals are taken synchronously below; worker threads inherit the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    rv = mkv_gw_start(&o, &gw, err, sizeof err);
    if (rv) {
        fprintf(stderr, "minikv-s3gw: %s\n", err);
        mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
        return 1;
    }
    MKV_INFO("s3gw", "serving listen=%s port=%d", s.listen, mkv_gw_port(gw));
    sigwait(&set, &sig);
    MKV_INFO("s3gw", "stopping signal=%d", sig);
    mkv_gw_stop(gw);
    mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
    return 0;
}
