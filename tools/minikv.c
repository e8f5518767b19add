/* minikv: the embedded single-node default.
 *
 *   minikv server --data DIR [--listen 127.0.0.1:8080]
 *                 [--meta-listen 127.0.0.1:7000] [--chunk-listen 127.0.0.1:7100]
 *                 [--mount MNT [--mount-options OPTS]]
 *
 * Runs the metadata service (a Raft group of one), one chunk server and the
 * S3 gateway in one process, each on its own thread and loop, talking to
 * each other over the same wire protocol and ports a cluster uses, so
 * FUSE clients and other tools reach them exactly as they would reach a
 * cluster. With --mount it also mounts the whole namespace at MNT (a
 * mount.minikv child in the foreground, unmounted before the services stop,
 * so that what it buffered is written first). Layout of DIR: meta/ (Raft
 * log, snapshots, LMDB), chunk/ (WAL segments, index), cluster.key (seals
 * access-key secrets), credentials (the generated key pair, 0600), LOCK. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chunk/chunk.h"
#include "config.h"
#include "meta/meta.h"
#include "minikv/auth.h"
#include "minikv/buf.h"
#include "minikv/config.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "s3gw/gateway.h"

struct settings
{
    char *data;
    char *listen;
    char *meta_listen;
    char *chunk_listen;
    char *io;
    char *compression;
    long long compression_level;
    char *encryption_key_file;
    uint64_t reserve;
    uint64_t segment_size;
    long long threads;
    char *tls_cert;
    char *tls_key;
    char *region;
    char *vhost_domain;
    long long snapshot_threshold;
    uint64_t raft_segment_size;
    uint64_t max_object_size;
    uint64_t inline_max;
    char *log_level;
    char *log_file;
    char *mount;
    char *mount_options;
};

#define S struct settings
static const struct mkv_option options[] = {
    MKV_OPT("data", MKV_OPT_STR, S, data, NULL, "DIR",
            "data directory, created if missing (required)", NULL),
    MKV_OPT("listen", MKV_OPT_STR, S, listen, "127.0.0.1:8080", "HOST:PORT",
            "HTTP address: S3 (also under /s3/), /health, /metrics, /admin", mkv_validate_hostport),
    MKV_OPT("meta-listen", MKV_OPT_STR, S, meta_listen, "127.0.0.1:7000", "HOST:PORT",
            "metadata service for FUSE clients and tools (Raft uses PORT+1)",
            mkv_validate_hostport),
    MKV_OPT("chunk-listen", MKV_OPT_STR, S, chunk_listen, "127.0.0.1:7100", "HOST:PORT",
            "chunk service", mkv_validate_hostport),
    MKV_OPT("io", MKV_OPT_STR, S, io, "auto", "auto|uring|sync", "chunk data path", NULL),
    MKV_OPT("compression", MKV_OPT_STR, S, compression, "none", "none|lz4|zstd",
            "per-block compression", NULL),
    MKV_OPT("compression-level", MKV_OPT_INT, S, compression_level, "0", "N",
            "level (0: library default)", NULL),
    MKV_OPT("encryption-key-file", MKV_OPT_STR, S, encryption_key_file, NULL, "FILE",
            "encrypt chunk data at rest (AES-256-GCM) with this key (64 hex digits)", NULL),
    MKV_OPT("reserve", MKV_OPT_SIZE, S, reserve, "64M", "SIZE",
            "refuse writes (data and metadata) when less than this is free", NULL),
    MKV_OPT("segment-size", MKV_OPT_SIZE, S, segment_size, "256M", "SIZE", "WAL segment file size",
            NULL),
    MKV_OPT("threads", MKV_OPT_INT, S, threads, "0", "N",
            "gateway worker threads (0: one per core)", NULL),
    MKV_OPT("tls-cert", MKV_OPT_STR, S, tls_cert, NULL, "FILE",
            "serve HTTPS with this PEM certificate", NULL),
    MKV_OPT("tls-key", MKV_OPT_STR, S, tls_key, NULL, "FILE", "PEM private key for --tls-cert",
            NULL),
    MKV_OPT("region", MKV_OPT_STR, S, region, "us-east-1", "NAME", "region reported to S3 clients",
            NULL),
    MKV_OPT("vhost-domain", MKV_OPT_STR, S, vhost_domain, "localhost", "DOMAIN",
            "Host: BUCKET.DOMAIN selects BUCKET (virtual-host style)", NULL),
    MKV_OPT("snapshot-threshold", MKV_OPT_INT, S, snapshot_threshold, "32768", "N",
            "Raft entries between metadata snapshots", NULL),
    MKV_OPT("raft-segment-size", MKV_OPT_SIZE, S, raft_segment_size, "32M", "SIZE",
            "Raft log segment file size (1M-1G; two spares are preallocated)", NULL),
    MKV_OPT("max-object-size", MKV_OPT_SIZE, S, max_object_size, "5G", "SIZE",
            "largest single PutObject", NULL),
    MKV_OPT("inline-max", MKV_OPT_SIZE, S, inline_max, "16K", "SIZE",
            "objects up to SIZE (at most 64K) are kept in their metadata record, not in chunks; 0: "
            "never",
            mkv_gw_validate_inline_max),
    MKV_OPT("log-level", MKV_OPT_STR, S, log_level, NULL, "LEVEL",
            "error, warn, info, debug or trace (default: $MINIKV_LOG_LEVEL, else info)", NULL),
    MKV_OPT("log-file", MKV_OPT_STR, S, log_file, NULL, "FILE",
            "append logs to FILE instead of stderr", NULL),
    MKV_OPT(
        "mount", MKV_OPT_STR, S, mount, NULL, "DIR",
        "also mount the whole namespace at DIR (created if missing; buckets are its directories)",
        NULL),
    MKV_OPT("mount-options", MKV_OPT_STR, S, mount_options, NULL, "OPTS",
            "options for that mount, as for mount.minikv -o (e.g. allow_other,attr_timeout=0)",
            NULL),
};
#undef S

static void usage(FILE *out)
{
    fprintf(out, "Usage: minikv server --data DIR [options]\n"
                 "       minikv --version\n\n"
                 "Runs a single-node minikv: the metadata service (Raft group of one over\n"
                 "LMDB), a chunk server and the S3 gateway, in one process. It creates DIR\n"
                 "if needed, prints the S3 endpoint and credentials, stops cleanly on\n"
                 "SIGTERM/SIGINT and restarts from DIR with all data.\n\n"
                 "Credentials: MINIKV_ACCESS_KEY and MINIKV_SECRET_KEY in the environment, or\n"
                 "else a pair generated at first start, printed once and saved in\n"
                 "DIR/credentials (0600, AWS shared-credentials format, profile \"minikv\").\n\n"
                 "--mount DIR also mounts the whole namespace at DIR with mount.minikv (buckets\n"
                 "are its top-level directories; mkdir there makes a bucket), and unmounts it\n"
                 "first when the server stops. It needs /dev/fuse and fusermount3.\n\n"
                 "Options (also from --config FILE, section [server]):\n");
    mkv_config_usage(out, options, MKV_ARRAY_SIZE(options));
}

/* A component running on its own thread and loop. */
struct svc
{
    const char *name;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop_async;
    uv_sem_t started;
    int rv;
    char err[512];
    int (*start)(struct svc *sv);
    void (*stop)(struct svc *sv);
    void (*release)(struct svc *sv); /* after the loop drained (optional) */
    void *handle;
    void *opts;
    int running;
};

static void svc_stopped(void *data)
{
    struct svc *sv = data;
    uv_close((uv_handle_t *)&sv->stop_async, NULL);
}

static void on_stop_async(uv_async_t *a)
{
    struct svc *sv = a->data;
    sv->stop(sv);
}

static void svc_main(void *arg)
{
    struct svc *sv = arg;
    uv_async_init(&sv->loop, &sv->stop_async, on_stop_async);
    sv->stop_async.data = sv;
    sv->rv = sv->start(sv);
    if (sv->rv) uv_close((uv_handle_t *)&sv->stop_async, NULL);
    uv_sem_post(&sv->started);
    uv_run(&sv->loop, UV_RUN_DEFAULT);
    if (sv->rv == 0 && sv->release) sv->release(sv);
}

static int svc_run(struct svc *sv)
{
    uv_loop_init(&sv->loop);
    uv_sem_init(&sv->started, 0);
    if (uv_thread_create(&sv->thread, svc_main, sv)) {
        snprintf(sv->err, sizeof sv->err, "cannot start the %s thread", sv->name);
        return -EAGAIN;
    }
    uv_sem_wait(&sv->started);
    if (sv->rv) {
        uv_thread_join(&sv->thread);
        uv_loop_close(&sv->loop);
        return sv->rv;
    }
    sv->running = 1;
    return 0;
}

static void svc_shutdown(struct svc *sv)
{
    if (!sv->running) return;
    uv_async_send(&sv->stop_async);
    uv_thread_join(&sv->thread);
    uv_loop_close(&sv->loop);
    sv->running = 0;
}

static int meta_start(struct svc *sv)
{
    return mkv_meta_start(&sv->loop, sv->opts, (struct mkv_meta **)&sv->handle, sv->err,
                          sizeof sv->err);
}

static void meta_stop(struct svc *sv)
{
    mkv_meta_stop(sv->handle, svc_stopped, sv);
}

static void meta_release(struct svc *sv)
{
    mkv_meta_free(sv->handle);
}

static int chunk_start(struct svc *sv)
{
    return mkv_chunk_server_start(&sv->loop, sv->opts, (struct mkv_chunk_server **)&sv->handle,
                                  sv->err, sizeof sv->err);
}

static void chunk_stop(struct svc *sv)
{
    mkv_chunk_server_stop(sv->handle, svc_stopped, sv);
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof tmp) return mkv_errf(err, errlen, -ENAMETOOLONG, "%s", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0750) && errno != EEXIST)
            return mkv_errf(err, errlen, -errno, "creating %s", tmp);
        *p = '/';
    }
    if (mkdir(tmp, 0750) && errno != EEXIST)
        return mkv_errf(err, errlen, -errno, "creating %s", tmp);
    return 0;
}

/* ---- --mount: a mount.minikv child ---- */

extern char **environ;

/* mount.minikv beside this program (the build tree: tools/minikv and
 * fs/mount.minikv), then the installed one, then $PATH. */
static void find_mount_helper(char *out, size_t len)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    const char *env = getenv("MINIKV_MOUNT_HELPER");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    if (n > 0) {
        char *slash;
        self[n] = '\0';
        if ((slash = strrchr(self, '/'))) {
            *slash = '\0';
            if ((size_t)snprintf(out, len, "%s/../fs/mount.minikv", self) < len &&
                access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, len, "%s/mount.minikv", MKV_SBINDIR);
    if (access(out, X_OK) == 0) return;
    snprintf(out, len, "mount.minikv");
}

/* Children start with no signal blocked (this thread blocks the ones it
 * waits for) and SIGPIPE back to its default. */
static int spawn(pid_t *pid, char *const argv[])
{
    posix_spawnattr_t at;
    sigset_t none, def;
    int rv;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rv = posix_spawnp(pid, argv[0], NULL, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    return rv;
}

/* Whether path is a minikv FUSE mount now (FUSE_SUPER_MAGIC, and it answers). */
static int is_mounted(const char *path)
{
    struct statfs st;
    return statfs(path, &st) == 0 && st.f_type == 0x65735546;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts mount.minikv HOST:PORT MNT -f: returns its pid once the mount
 * answers (10 s at most), or -1 with a message. */
static pid_t mount_start(const struct settings *s, const char *cred_file, char *err, size_t errlen)
{
    char helper[4096], src[300], host[256], opts[8192], *argv[8];
    int port, argc = 0, st;
    pid_t pid;
    if (mkv_parse_hostport(s->meta_listen, host, sizeof host, &port)) {
        snprintf(err, errlen, "--meta-listen %s is not HOST:PORT", s->meta_listen);
        return -1;
    }
    /* A wildcard listen address is reached on loopback. */
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !*host)
        snprintf(host, sizeof host, "127.0.0.1");
    snprintf(src, sizeof src, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (mkdir(s->mount, 0755) && errno != EEXIST) {
        snprintf(err, errlen, "creating %s: %s", s->mount, strerror(errno));
        return -1;
    }
    if (is_mounted(s->mount)) {
        snprintf(err, errlen, "%s is already a FUSE mount (unmount it: fusermount3 -u %s)",
                 s->mount, s->mount);
        return -1;
    }
    find_mount_helper(helper, sizeof helper);
    argv[argc++] = helper;
    argv[argc++] = src;
    argv[argc++] = s->mount;
    argv[argc++] = "-f";
    /* The mount authenticates with the server's access key (from the
     * environment, which the child inherits, or the credentials file). */
    snprintf(opts, sizeof opts, "%s%s%s%s", s->mount_options ? s->mount_options : "",
             s->mount_options && !getenv("MINIKV_ACCESS_KEY") ? "," : "",
             getenv("MINIKV_ACCESS_KEY") ? "" : "credentials=",
             getenv("MINIKV_ACCESS_KEY") ? "" : cred_file);
    if (opts[0]) {
        argv[argc++] = "-o";
        argv[argc++] = opts;
    }
    argv[argc] = NULL;
    if ((st = spawn(&pid, argv))) {
        snprintf(err, errlen, "cannot run %.200s: %s", helper, strerror(st));
        return -1;
    }
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            snprintf(err, errlen, "mount.minikv exited with status %d (its message is above)",
                     WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            return -1;
        }
        if (is_mounted(s->mount)) return pid;
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    snprintf(err, errlen, "the mount at %s did not become ready in 10 s", s->mount);
    return -1;
}

static int run_wait(char *const argv[])
{
    pid_t pid;
    int st;
    if (spawn(&pid, argv)) return -1;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Stops the mount: SIGTERM makes the daemon unmount (detached if files are
 * still open there) and write back what it buffered while the services
 * still run; 35 s at most, then it is killed. */
static void mount_stop(const char *mnt, pid_t pid)
{
    char *lazy[] = {"fusermount3", "-uz", (char *)mnt, NULL};
    int st;
    kill(pid, SIGTERM);
    for (int i = 0; i < 700; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            MKV_INFO("server", "unmounted mountpoint=%s", mnt);
            return;
        }
        sleep_ms(50);
    }
    MKV_WARN("server", "the FUSE daemon did not exit in time; killed mountpoint=%s", mnt);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    if (is_mounted(mnt)) run_wait(lazy);
}

static int cmd_server(int argc, char **argv)
{
    struct settings s = {0};
    struct mkv_meta_opts mo = {0};
    struct mkv_chunk_server_opts co = {0};
    struct mkv_gw_opts go = {0};
    struct svc meta = {0}, chunk = {0};
    struct mkv_gw *gw = NULL;
    char err[512] = "", meta_dir[4096], chunk_dir[4096], key_file[4096], cred_file[4096],
         lock_file[4096];
    uint8_t enc_key[32], cluster_key[32];
    sigset_t set;
    pid_t mount_pid = -1;
    int first, rv, sig, lock_fd = -1, status = 1;

    if (mkv_config_load(options, MKV_ARRAY_SIZE(options), &s, "server", argc, argv, &first, err,
                        sizeof err)) {
        fprintf(stderr, "minikv server: %s\n", err);
        return 2;
    }
    if (first < argc || !s.data) {
        fprintf(stderr, "minikv server: %s (see minikv server --help)\n",
                first < argc ? "unexpected argument" : "--data DIR is required");
        mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
        return 2;
    }
    if ((s.log_level && mkv_log_set_level(s.log_level)) ||
        (s.log_file && mkv_log_set_file(s.log_file))) {
        fprintf(stderr, "minikv server: bad --log-level or cannot open --log-file\n");
        mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
        return 2;
    }
    if ((s.tls_cert != NULL) != (s.tls_key != NULL)) {
        fprintf(stderr, "minikv server: --tls-cert and --tls-key go together\n");
        mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
        return 2;
    }
    if (mkv_chunk_parse_store_opts(s.io, s.compression, s.compression_level, s.encryption_key_file,
                                   enc_key, &co.store, err, sizeof err)) {
        fprintf(stderr, "minikv server: %s\n", err);
        mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
        return 2;
    }
    snprintf(meta_dir, sizeof meta_dir, "%s/meta", s.data);
    snprintf(chunk_dir, sizeof chunk_dir, "%s/chunk", s.data);
    snprintf(key_file, sizeof key_file, "%s/cluster.key", s.data);
    snprintf(cred_file, sizeof cred_file, "%s/credentials", s.data);
    snprintf(lock_file, sizeof lock_file, "%s/LOCK", s.data);
    if (make_dir(s.data, err, sizeof err) || make_dir(meta_dir, err, sizeof err) ||
        make_dir(chunk_dir, err, sizeof err)) {
        fprintf(stderr, "minikv server: %s\n", err);
        goto out;
    }
    lock_fd = open(lock_file, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB)) {
        fprintf(stderr, "minikv server: %s is in use by another minikv process (%s)\n", s.data,
                lock_fd < 0 ? strerror(errno) : "lock held");
        goto out;
    }

    /* The cluster key seals access-key secrets and authenticates every
     * connection to the metadata and chunk services. */
    if (mkv_cluster_key_load(key_file, cluster_key, err, sizeof err)) {
        fprintf(stderr, "minikv server: cluster key: %s\n", err);
        goto out;
    }

    /* Signals are handled by this thread only. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    mo.dir = meta_dir;
    mo.id = 1;
    mo.listen = s.meta_listen;
    mo.snapshot_threshold = (unsigned)s.snapshot_threshold;
    mo.segment_size = (size_t)s.raft_segment_size;
    mo.reserve_bytes = s.reserve;
    mo.chunk_servers = s.chunk_listen;
    mo.cluster_key = cluster_key;
    meta.name = "metadata";
    meta.opts = &mo;
    meta.start = meta_start;
    meta.stop = meta_stop;
    meta.release = meta_release;
    rv = svc_run(&meta);
    if (rv) {
        fprintf(stderr, "minikv server: metadata service: %s\n", meta.err);
        goto out;
    }

    co.store.dir = chunk_dir;
    co.store.reserve_bytes = s.reserve;
    co.store.segment_size = s.segment_size;
    co.listen = s.chunk_listen;
    co.meta = s.meta_listen;
    co.cluster_key = cluster_key;
    co.scrub_every_ms = 24ull * 3600 * 1000; /* minikv-chunk's defaults */
    co.fill_rate = 100ull << 20;
    chunk.name = "chunk";
    chunk.opts = &co;
    chunk.start = chunk_start;
    chunk.stop = chunk_stop;
    rv = svc_run(&chunk);
    if (rv) {
        fprintf(stderr, "minikv server: chunk server: %s\n", chunk.err);
        goto out_meta;
    }

    go.listen = s.listen;
    go.meta = s.meta_listen;
    go.chunk = s.chunk_listen;
    go.tls_cert = s.tls_cert;
    go.tls_key = s.tls_key;
    go.cluster_key_file = key_file;
    go.credentials_file = cred_file;
    go.region = s.region;
    go.vhost_domain = s.vhost_domain;
    go.threads = (int)s.threads;
    go.max_object_size = s.max_object_size;
    go.inline_max = s.inline_max;
    /* The gateway reads metadata in its own threads while this member is
     * the ready leader of its group of one (no loopback round trip). */
    go.local_meta_read = mkv_meta_read_local;
    go.local_meta_ctx = meta.handle;
    /* ... and chunk data that is in the page cache. */
    go.local_chunk_read = mkv_chunk_read_local;
    go.local_chunk_ctx = chunk.handle;
    rv = mkv_gw_start(&go, &gw, err, sizeof err);
    if (rv) {
        fprintf(stderr, "minikv server: S3 gateway: %s\n", err);
        goto out_chunk;
    }
    printf("minikv %s serving from %s\n"
           "  S3 endpoint     %s://%s (also under /s3/)\n"
           "  metadata        %s (Raft on port +1)\n"
           "  chunk service   %s\n"
           "  health          %s://%s/health/ready\n",
           PACKAGE_VERSION, s.data, s.tls_cert ? "https" : "http", s.listen, s.meta_listen,
           s.chunk_listen, s.tls_cert ? "https" : "http", s.listen);
    if (getenv("MINIKV_ACCESS_KEY"))
        printf("  credentials     MINIKV_ACCESS_KEY / MINIKV_SECRET_KEY from the environment\n");
    else printf("  credentials     %s (profile minikv)\n", cred_file);
    fflush(stdout);
    if (s.mount) {
        if ((mount_pid = mount_start(&s, cred_file, err, sizeof err)) < 0) {
            fprintf(stderr, "minikv server: --mount: %s\n", err);
            mkv_gw_stop(gw);
            goto out_chunk;
        }
        printf("  mounted         %s (the whole namespace: one directory per bucket)\n", s.mount);
        fflush(stdout);
    }

    for (;;) {
        int st;
        sigwait(&set, &sig);
        if (sig != SIGCHLD) break;
        if (mount_pid > 0 && waitpid(mount_pid, &st, WNOHANG) == mount_pid) {
            MKV_WARN("server", "the mount ended on its own mountpoint=%s status=%d", s.mount,
                     WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            mount_pid = -1;
        }
    }
    MKV_INFO("server", "stopping signal=%d", sig);
    status = 0;
    if (mount_pid > 0) mount_stop(s.mount, mount_pid);
    mkv_gw_stop(gw);
out_chunk:
    svc_shutdown(&chunk);
out_meta:
    svc_shutdown(&meta);
out:
    if (lock_fd >= 0) close(lock_fd);
    memset(enc_key, 0, sizeof enc_key);
    memset(cluster_key, 0, sizeof cluster_key);
    mkv_config_free(options, MKV_ARRAY_SIZE(options), &s);
    if (status == 0) MKV_INFO("server", "stopped cleanly");
    return status;
}

int main(int argc, char **argv)
{
    mkv_log_init();
    mkv_malloc_tune();
    if (argc >= 2 && !strcmp(argv[1], "server")) {
        if (mkv_wants_help(argc - 1, argv + 1)) {
            usage(stdout);
            return 0;
        }
        return cmd_server(argc - 1, argv + 1);
    }
    if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
        printf("minikv %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (argc >= 2 &&
        (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
