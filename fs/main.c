/* minikv-fuse, also installed as mount.minikv: mounts a bucket (or the
 * whole namespace) of a minikv cluster.
 *
 *   mount.minikv META[,META...][/BUCKET] MOUNTPOINT [-o OPTIONS] [-f] [-d]
 *
 * It checks that the cluster answers before mounting (a dead address fails
 * at once, with a message), mounts, goes to the background (unless -f) and
 * serves until unmounted (fusermount3 -u, umount) or signalled. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_int.h"
#include "minikv/buf.h"
#include "minikv/config.h"
#include "minikv/err.h"
#include "minikv/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mount.minikv META[,META...][/BUCKET] MOUNTPOINT [-o OPTIONS] [-f] [-d]\n"
            "       minikv-fuse  (the same program)\n\n"
            "Mounts BUCKET of the minikv cluster whose metadata service answers at META\n"
            "(HOST:PORT, the --meta-listen of `minikv server`); without /BUCKET the whole\n"
            "namespace, with buckets as top-level directories (mkdir there makes a\n"
            "bucket). A file is the object whose key is its path; S3 clients see the same\n"
            "keys and bytes. Works from the command line, `mount -t minikv` and\n"
            "/etc/fstab (with _netdev).\n\n"
            "Options (-o, comma-separated):\n"
            "  ro, rw                 read-only or read-write (default rw)\n"
            "  allow_other            let other users in (needs user_allow_other for non-root)\n"
            "  attr_timeout=SECONDS   how long attributes and names are cached (default 1;\n"
            "                         0 asks the cluster every time: strict coherence)\n"
            "  entry_timeout=SECONDS  the same for names only (default: attr_timeout); in a\n"
            "                         directory the mount made, it answers lookups of\n"
            "                         missing names itself and sees names others add\n"
            "                         within this time (0: always asks the cluster)\n"
            "  timeout=SECONDS        how long an operation waits for an unreachable\n"
            "                         cluster before it fails with EIO (default 30)\n"
            "  chunk=HOST:PORT        chunk server (default: the one the cluster reports)\n"
            "  credentials=FILE       access key and secret (AWS credentials format); or\n"
            "                         MINIKV_ACCESS_KEY / MINIKV_SECRET_KEY\n"
            "  log=FILE               append the daemon's log to FILE (default: the log\n"
            "                         goes to stderr, which is closed once in the background)\n"
            "  dirty_max=SIZE         buffered writes per file before they are written\n"
            "                         back (default 64M)\n"
            "  inline_max=SIZE        files up to SIZE are stored inline (default 16K)\n"
            "  etag_max=SIZE          a file written out of order (not from offset 0\n"
            "                         onwards) is read back at close for its MD5, the S3\n"
            "                         ETag, up to SIZE (default 64M; 0: never); larger\n"
            "                         ones show a non-MD5 ETag ending in -1\n"
            "  min_replicas=N         durable copies a write needs before it is\n"
            "                         acknowledged (default: a majority of the bucket's\n"
            "                         factor, 2 of 3; at most the factor)\n"
            "  _netdev, auto, noauto, nofail, user, users, defaults: for mount(8), ignored\n\n"
            "  -f  stay in the foreground     -d  debug: foreground, log every request\n");
}

struct args
{
    char *source;
    char *mountpoint;
    int foreground, debug;
    int allow_other;
    char *credentials;
    char *log; /* -o log=FILE: where the daemon's log goes once detached */
    int log_fd;
};

static int parse_seconds(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || d < 0 || d > 86400) return -1;
    *out = d;
    return 0;
}

static int apply_option(struct fs_opts *o, struct args *a, char *opt, int *entry_set)
{
    char *v = strchr(opt, '=');
    uint64_t size;
    double secs;
    if (v) *v++ = '\0';
    if (!strcmp(opt, "ro")) o->read_only = 1;
    else if (!strcmp(opt, "rw")) o->read_only = 0;
    else if (!strcmp(opt, "allow_other")) a->allow_other = 1;
    else if (!strcmp(opt, "attr_timeout") && v && !parse_seconds(v, &secs)) {
        o->attr_timeout = secs;
        if (!*entry_set) o->entry_timeout = secs;
    } else if (!strcmp(opt, "entry_timeout") && v && !parse_seconds(v, &secs)) {
        o->entry_timeout = secs;
        *entry_set = 1;
    } else if (!strcmp(opt, "timeout") && v && !parse_seconds(v, &secs) && secs >= 1) {
        o->op_timeout_ms = (uint64_t)(secs * 1000);
    } else if (!strcmp(opt, "chunk") && v) {
        free(o->chunk);
        o->chunk = strdup(v);
    } else if (!strcmp(opt, "credentials") && v) {
        free(a->credentials);
        a->credentials = strdup(v);
    } else if (!strcmp(opt, "log") && v && *v) {
        free(a->log);
        a->log = strdup(v);
    } else if (!strcmp(opt, "dirty_max") && v && !mkv_parse_size(v, &size) && size >= (1u << 20)) {
        o->dirty_max = size;
    } else if (!strcmp(opt, "inline_max") && v && !mkv_parse_size(v, &size) &&
               size <= MKV_INLINE_MAX) {
        o->inline_max = size;
    } else if (!strcmp(opt, "etag_max") && v && !mkv_parse_size(v, &size)) {
        o->etag_max = size;
    } else if (!strcmp(opt, "min_replicas") && v && !mkv_parse_size(v, &size) && size >= 1 &&
               size < MKV_REPLICAS_MAX) {
        o->min_replicas = (uint32_t)size;
    } else if (!strcmp(opt, "_netdev") || !strcmp(opt, "auto") || !strcmp(opt, "noauto") ||
               !strcmp(opt, "nofail") || !strcmp(opt, "user") || !strcmp(opt, "users") ||
               !strcmp(opt, "nouser") || !strcmp(opt, "defaults") || !strcmp(opt, "exec") ||
               !strcmp(opt, "noexec") || !strcmp(opt, "suid") || !strcmp(opt, "nosuid") ||
               !strcmp(opt, "dev") || !strcmp(opt, "nodev") || !strcmp(opt, "atime") ||
               !strcmp(opt, "noatime") || !strcmp(opt, "relatime") || !strcmp(opt, "async") ||
               !strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8)) {
        /* mount(8)'s business; nosuid/nodev are what FUSE does anyway */
    } else {
        fprintf(stderr, "mount.minikv: unknown or malformed option '%s%s%s'\n", opt, v ? "=" : "",
                v ? v : "");
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct fs_opts *o, struct args *a)
{
    int entry_set = 0;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(arg, "-V") || !strcmp(arg, "--version")) {
            printf("mount.minikv %s\n", PACKAGE_VERSION);
            exit(0);
        } else if (!strcmp(arg, "-f")) {
            a->foreground = 1;
        } else if (!strcmp(arg, "-d")) {
            a->foreground = a->debug = 1;
        } else if (!strcmp(arg, "-s") || !strcmp(arg, "-n") || !strcmp(arg, "-v")) {
            /* mount(8) helper flags: sloppy, no mtab, verbose */
        } else if (!strcmp(arg, "-o") && i + 1 < argc) {
            char *list = strdup(argv[++i]), *tok, *save = NULL;
            if (!list) return -1;
            for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                if (apply_option(o, a, tok, &entry_set)) {
                    free(list);
                    return -1;
                }
            free(list);
        } else if (arg[0] == '-') {
            fprintf(stderr, "mount.minikv: unknown flag '%s' (see --help)\n", arg);
            return -1;
        } else if (!a->source) {
            a->source = arg;
        } else if (!a->mountpoint) {
            a->mountpoint = arg;
        } else {
            fprintf(stderr, "mount.minikv: unexpected argument '%s'\n", arg);
            return -1;
        }
    }
    if (!a->source || !a->mountpoint) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* "h1:7000,h2:7000/bucket" -> meta list and bucket. */
static int split_source(const char *src, struct fs_opts *o)
{
    const char *slash = strchr(src, '/');
    size_t n = slash ? (size_t)(slash - src) : strlen(src);
    if (n == 0) return -1;
    o->meta = strndup(src, n);
    if (slash && slash[1]) {
        o->bucket = strdup(slash + 1);
        if (o->bucket[strlen(o->bucket) - 1] == '/') o->bucket[strlen(o->bucket) - 1] = '\0';
        if (strchr(o->bucket, '/')) return -1;
    }
    return o->meta ? 0 : -1;
}

/* ---- before mounting: is the cluster there, where are the data? ---- */

struct probe
{
    int done, status;
    uint64_t root;
    char chunk[256];
    char err[600];
};

static int probe_cluster(struct fs_opts *o, const struct mkv_cred *cred, struct probe *pr)
{
    uv_loop_t loop;
    struct mkv_client *c;
    struct mkv_client_opts co = {0};
    struct mkv_frame *reply = NULL;
    char err[256];
    int rv;
    uv_loop_init(&loop);
    co.meta = o->meta;
    /* Fail fast when nothing answers (a mount at boot is retried by
     * systemd's _netdev ordering, not here); 2 s still rides out a
     * metadata leader change. */
    co.timeout_ms = 2000;
    co.retry_ms = 2000;
    co.cred = cred;
    rv = mkv_client_new(&loop, &co, &c, err, sizeof err);
    if (rv) {
        snprintf(pr->err, sizeof pr->err, "%s", err);
        uv_loop_close(&loop);
        return rv;
    }
    {
        struct mkv_meta_status_req q = {0};
        struct mkv_meta_status_rep st;
        rv = mkv_meta_call_sync(c, MKV_MSG_META_STATUS, &mkv_desc_meta_status_req, &q, &reply, err,
                                sizeof err);
        if (rv == -EACCES) {
            snprintf(pr->err, sizeof pr->err,
                     "metadata service %s: access denied (%s): give -o credentials=FILE or "
                     "MINIKV_ACCESS_KEY and MINIKV_SECRET_KEY of a valid access key",
                     o->meta, cred ? "that access key was refused" : "no credentials given");
        } else if (rv) {
            snprintf(pr->err, sizeof pr->err, "metadata service %s: %s", o->meta, err);
        } else if (mkv_frame_decode(reply, &mkv_desc_meta_status_rep, &st)) {
            rv = -EPROTO;
            snprintf(pr->err, sizeof pr->err, "metadata service %s: malformed status", o->meta);
        } else {
            mkv_chunk_server_pick(st.chunk_servers, pr->chunk, sizeof pr->chunk);
        }
        if (reply) mkv_frame_unref(reply);
        reply = NULL;
    }
    pr->root = 1;
    if (!rv && o->bucket) {
        struct mkv_bucket_head_req q = {mkv_slice_str(o->bucket)};
        struct mkv_bucket_head_rep b;
        rv = mkv_meta_call_sync(c, MKV_MSG_BUCKET_HEAD, &mkv_desc_bucket_head_req, &q, &reply, err,
                                sizeof err);
        if (rv) snprintf(pr->err, sizeof pr->err, "bucket %s: %s", o->bucket, err);
        else if (mkv_frame_decode(reply, &mkv_desc_bucket_head_rep, &b)) rv = -EPROTO;
        else pr->root = b.ino;
        if (reply) mkv_frame_unref(reply);
    }
    mkv_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rv;
}

/* ---- stopping ---- */

static void handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* At unmount: what is still buffered is written back (bounded), then the
 * client and the loop close. */
static void on_drain_tick(uv_timer_t *t)
{
    struct fs *fs = t->data;
    int busy = 0;
    for (size_t i = 0; i < fs->hcap; i++)
        for (struct fino *fi = fs->htab[i]; fi; fi = fi->hnext) {
            if ((fi->dirty || fi->size_dirty) && !fi->writing) fs_writeback(fs, fi);
            if (fi->writing) busy = 1;
        }
    if (busy && mkv_now_ns() < fs->drain_deadline) return;
    if (busy) MKV_WARN("fs", "unmount: write-back did not finish in time, dropped");
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, handle_closed);
    /* Kept until now: a second SIGINT/SIGTERM must not cut the drain. */
    for (int i = 0; i < 3; i++)
        if (fs->sigs[i].data) uv_close((uv_handle_t *)&fs->sigs[i], handle_closed);
    mkv_client_close(fs->client);
    fs->client = NULL;
}

static const int stop_signals[3] = {SIGINT, SIGTERM, SIGHUP};

void fs_stop(struct fs *fs)
{
    if (fs->stopping) return;
    fs->stopping = 1;
    MKV_INFO("fs", "unmounting mountpoint=%s", fs->mountpoint);
    if (fs->session.data) {
        uv_poll_stop(&fs->session);
        uv_close((uv_handle_t *)&fs->session, handle_closed);
    }
    /* Lazy when the kernel still has the mount; closes the session's fd. */
    fuse_session_unmount(fs->se);
    fs->drain_deadline = mkv_now_ns() + 30 * 1000000000LL;
    uv_timer_init(&fs->loop, &fs->drain);
    fs->drain.data = fs;
    uv_timer_start(&fs->drain, on_drain_tick, 0, 50);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    MKV_INFO("fs", "signal=%d", signum);
    fs_stop(sig->data);
}

static int start_signals(struct fs *fs)
{
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&fs->loop, &fs->sigs[i]);
        fs->sigs[i].data = fs;
        if (uv_signal_start(&fs->sigs[i], on_signal, stop_signals[i])) return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct fs *fs = calloc(1, sizeof *fs);
    struct args a = {0};
    struct probe pr = {0};
    struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
    struct mkv_client_opts co = {0};
    char err[256], opts[1024];
    struct mkv_cred cred;
    int rv, status = 1, have_cred = 0;

    mkv_log_init();
    mkv_malloc_tune();
    a.log_fd = -1;
    if (!fs) return 1;
    fs->o.attr_timeout = fs->o.entry_timeout = 1.0;
    fs->o.op_timeout_ms = 30000;
    fs->o.dirty_max = 64u << 20;
    fs->o.inline_max = 16u << 10;
    fs->o.etag_max = 64u << 20;
    status = 2; /* usage errors */
    if (parse_args(argc, argv, &fs->o, &a)) goto out;
    if (split_source(a.source, &fs->o)) {
        fprintf(stderr, "mount.minikv: source '%s' is not META[,META...][/BUCKET]\n", a.source);
        goto out;
    }
    if (a.log && (a.log_fd = open(a.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0) {
        fprintf(stderr, "mount.minikv: log %s: %s\n", a.log, strerror(errno));
        goto out;
    }
    fs->o.source = a.source;
    /* Credentials: -o credentials=FILE, else the environment (as for S3). */
    if (a.credentials) {
        if (mkv_cred_from_file(&cred, a.credentials, NULL, err, sizeof err)) {
            fprintf(stderr, "mount.minikv: %s\n", err);
            goto out;
        }
        have_cred = 1;
    } else {
        have_cred = mkv_cred_from_env(&cred);
    }
    signal(SIGPIPE, SIG_IGN);

    /* The cluster must answer now: a mount of nothing would only hang. */
    status = 32; /* mount(8): mount failure */
    if ((rv = probe_cluster(&fs->o, have_cred ? &cred : NULL, &pr))) {
        fprintf(stderr, "mount.minikv: cannot mount %s: %s\n", a.source, pr.err);
        goto out;
    }
    fs->root = pr.root;
    fs->mounted_ns = mkv_now_ns();
    if (!fs->o.chunk && pr.chunk[0]) fs->o.chunk = strdup(pr.chunk);
    if (!fs->o.chunk) {
        fprintf(stderr,
                "mount.minikv: the cluster reports no chunk server; give -o chunk=HOST:PORT\n");
        goto out;
    }

    /* fsname and subtype make df -T and findmnt show "minikv" and SRC. */
    {
        /* libfuse splits options at commas: those of SRC (several
         * metadata addresses) are escaped. */
        char esc[512];
        size_t n = 0;
        for (const char *p = a.source; *p && n + 2 < sizeof esc; p++) {
            if (*p == ',' || *p == '\\') esc[n++] = '\\';
            esc[n++] = *p;
        }
        esc[n] = '\0';
        snprintf(opts, sizeof opts, "fsname=%s,subtype=minikv,default_permissions%s%s", esc,
                 a.allow_other ? ",allow_other" : "", fs->o.read_only ? ",ro" : "");
    }
    status = 1;
    if (fuse_opt_add_arg(&fargs, argv[0]) || fuse_opt_add_arg(&fargs, "-o") ||
        fuse_opt_add_arg(&fargs, opts) || (a.debug && fuse_opt_add_arg(&fargs, "-d")))
        goto out;
    fs->se = fuse_session_new(&fargs, &fs_ops, sizeof fs_ops, fs);
    if (!fs->se) {
        fprintf(stderr, "mount.minikv: cannot start a FUSE session\n");
        goto out;
    }
    if (fuse_set_signal_handlers(fs->se)) goto out_session;
    if (fuse_session_mount(fs->se, a.mountpoint)) {
        fprintf(stderr, "mount.minikv: cannot mount on %s\n", a.mountpoint);
        status = 32;
        goto out_signals;
    }
    /* Into the background; threads start only after the fork. */
    status = 1;
    if (fuse_daemonize(a.foreground)) goto out_unmount;
    if (a.log_fd >= 0) dup2(a.log_fd, STDERR_FILENO); /* after daemonize closed it */

    if (uv_loop_init(&fs->loop)) goto out_unmount;
    fs->mountpoint = a.mountpoint;
    co.meta = fs->o.meta;
    co.chunk = fs->o.chunk;
    co.timeout_ms = fs->o.op_timeout_ms < 4000 ? fs->o.op_timeout_ms : 4000;
    co.retry_ms = fs->o.op_timeout_ms;
    co.early_replies = 1; /* fsync and fsyncdir are the durability points */
    /* 32 MiB of a file's write-back on the wire, not the library's 8: the
     * chunk server acknowledges a frame once its WAL is synced, so the
     * window bounds what one group commit can carry. A sequential 1 GiB
     * write went from about 0.76 to 0.87 of the passthrough (A/B, 5-8
     * runs each). One writer per file being written back. */
    co.write_window = 32;
    co.min_replicas = fs->o.min_replicas;
    co.cred = have_cred ? &cred : NULL;
    rv = mkv_client_new(&fs->loop, &co, &fs->client, err, sizeof err);
    memset(&cred, 0, sizeof cred);
    if (rv) {
        MKV_ERROR("fs", "client failed err=\"%s\"", err);
        goto out_unmount;
    }
    MKV_INFO("fs", "mounted source=%s mountpoint=%s root=%llu chunk=%s", a.source, a.mountpoint,
             (unsigned long long)fs->root, fs->o.chunk);
    if (fs_inval_start(fs)) goto out_client;
    /* Signal handlers of the loop's own from here (libfuse's, set before
     * the mount, would only flag an exit the loop never looks at). */
    if (start_signals(fs) || fs_session_start(fs)) {
        MKV_ERROR("fs", "cannot poll the FUSE session");
        fs_stop(fs);
    }
    status = uv_run(&fs->loop, UV_RUN_DEFAULT) < 0 ? 1 : 0;
    fs_inval_stop(fs);
    uv_loop_close(&fs->loop);
    free(fs->fbuf.mem);
    fs_inodes_free(fs);
    fuse_remove_signal_handlers(fs->se);
    fuse_session_destroy(fs->se);
    goto out;

out_client:
    mkv_client_close(fs->client);
    uv_run(&fs->loop, UV_RUN_DEFAULT);
out_unmount:
    fuse_session_unmount(fs->se);
out_signals:
    fuse_remove_signal_handlers(fs->se);
out_session:
    fuse_session_destroy(fs->se);
out:
    memset(&cred, 0, sizeof cred);
    fuse_opt_free_args(&fargs);
    if (a.log_fd >= 0) close(a.log_fd);
    free(a.log);
    free(a.credentials);
    free(fs->o.meta);
    free(fs->o.bucket);
    free(fs->o.chunk);
    free(fs);
    return status;
}
