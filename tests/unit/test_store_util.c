/* Unit tests of the chunk store: fixture and helpers (test_store_util.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "test_store_util.h"
#include "wal.h"

int be_uring = MKV_IO_URING, be_sync = MKV_IO_SYNC;

int tc_setup(void **state)
{
    int backend = *(int *)*state;
    struct tctx *t = calloc(1, sizeof *t);
    const char *tmp = getenv("TMPDIR");
    if (!t) return -1;
    t->backend = backend;
    snprintf(t->dir, sizeof t->dir, "%s/mkv-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    snprintf(t->sdir, sizeof t->sdir, "%s/store", t->dir);
    if (uv_loop_init(&t->loop) != 0) {
        rm_rf(t->dir);
        free(t);
        return -1;
    }
    t->loop_ok = 1;
    t->o.dir = t->sdir;
    t->o.io_backend = backend;
    *state = t;
    return 0;
}

int tc_teardown(void **state)
{
    struct tctx *t = *state;
    if (!t) return 0;
    if (t->s) t_close(t);
    if (t->mnt[0]) umount2(t->mnt, MNT_DETACH);
    if (t->loop_ok) {
        uv_run(&t->loop, UV_RUN_DEFAULT);
        uv_loop_close(&t->loop);
    }
    if (getenv("MKV_TEST_KEEP")) print_message("kept %s\n", t->dir); /* for debugging */
    else rm_rf(t->dir);
    free(t);
    return 0;
}

struct tctx *tc_begin(void **state)
{
    struct tctx *t = *state;
    if (t->backend == MKV_IO_URING && !io_uring_usable()) {
        print_message("io_uring is not usable here: skipping the io_uring variant\n");
        skip();
    }
    return t;
}

int t_open(struct tctx *t)
{
    t->err[0] = '\0';
    return mkv_store_open(&t->loop, &t->o, &t->s, t->err, sizeof t->err);
}

void t_open_ok(struct tctx *t)
{
    int rv = t_open(t);
    if (rv) print_error("mkv_store_open: %d %s\n", rv, t->err);
    assert_int_equal(rv, 0);
    assert_string_equal(t_stats(t).io_backend, t->backend == MKV_IO_URING ? "io_uring" : "sync");
}

static void close_cb(void *data)
{
    *(int *)data = 1;
}

void t_close(struct tctx *t)
{
    int done = 0;
    mkv_store_close(t->s, close_cb, &done);
    while (!done) uv_run(&t->loop, UV_RUN_ONCE);
    t->s = NULL;
}

void t_reopen(struct tctx *t)
{
    t_close(t);
    t_open_ok(t);
}

void t_op_cb(struct mkv_store_req *req, int status)
{
    struct t_op *op = req->data;
    op->done = 1;
    op->status = status;
}

int t_wait(struct tctx *t, struct t_op *op)
{
    while (!op->done) uv_run(&t->loop, UV_RUN_ONCE);
    return op->status;
}

int t_write(struct tctx *t, uint64_t c, uint32_t v, uint32_t base, uint64_t off, const void *buf,
            size_t len)
{
    struct t_op op = {0};
    int rv;
    op.req.data = &op;
    rv = mkv_store_write(t->s, &op.req, c, v, base, off, buf, len, t_op_cb);
    return rv ? rv : t_wait(t, &op);
}

int t_read(struct tctx *t, uint64_t c, uint32_t v, uint64_t off, void *buf, size_t len)
{
    struct t_op op = {0};
    int rv;
    op.req.data = &op;
    rv = mkv_store_read(t->s, &op.req, c, v, off, buf, len, t_op_cb);
    return rv ? rv : t_wait(t, &op);
}

int t_commit(struct tctx *t, uint64_t c, uint32_t v)
{
    struct t_op op = {0};
    int rv;
    op.req.data = &op;
    rv = mkv_store_commit(t->s, &op.req, c, v, t_op_cb);
    return rv ? rv : t_wait(t, &op);
}

int t_delete(struct tctx *t, uint64_t c, uint32_t v)
{
    struct t_op op = {0};
    int rv;
    op.req.data = &op;
    rv = mkv_store_delete(t->s, &op.req, c, v, t_op_cb);
    return rv ? rv : t_wait(t, &op);
}

int t_compact(struct tctx *t)
{
    struct t_op op = {0};
    int rv;
    op.req.data = &op;
    rv = mkv_store_compact(t->s, &op.req, t_op_cb);
    return rv ? rv : t_wait(t, &op);
}

int t_scrub(struct tctx *t, uint64_t *bad)
{
    struct t_op op = {0};
    int rv;
    op.req.data = &op;
    rv = mkv_store_scrub(t->s, &op.req, bad, t_op_cb);
    return rv ? rv : t_wait(t, &op);
}

struct mkv_store_stats t_stats(struct tctx *t)
{
    struct mkv_store_stats st;
    mkv_store_get_stats(t->s, &st);
    return st;
}

struct vfind
{
    uint64_t c;
    uint32_t v;
    int state;
};

static int vfind_cb(void *arg, const struct mkv_store_version_info *vi)
{
    struct vfind *f = arg;
    if (vi->chunk_id == f->c && vi->version == f->v) {
        f->state = vi->state;
        return 1;
    }
    return 0;
}

int t_version_state(struct tctx *t, uint64_t c, uint32_t v)
{
    struct vfind f = {c, v, 0};
    assert_int_equal(mkv_store_list_versions(t->s, vfind_cb, &f), 0);
    return f.state;
}

void fill(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    for (size_t i = 0; i < len; i++) {
        if ((i & 7) == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        buf[i] = (uint8_t)(x >> ((i & 7) * 8));
    }
}

void check_data(struct tctx *t, uint64_t c, uint32_t v, size_t len, uint64_t seed)
{
    uint8_t *want = malloc(len ? len : 1), *got = malloc(len ? len : 1);
    int rv;
    assert_non_null(want);
    assert_non_null(got);
    fill(want, len, seed);
    rv = t_read(t, c, v, 0, got, len);
    if (rv) print_error("read chunk=%llu version=%u len=%zu: %d\n", (unsigned long long)c, v, len, rv);
    assert_int_equal(rv, 0);
    assert_memory_equal(got, want, len);
    free(want);
    free(got);
}

uint64_t seg_bytes(const char *sdir)
{
    char wal[700], path[1024];
    DIR *d;
    struct dirent *de;
    uint64_t total = 0;
    snprintf(wal, sizeof wal, "%s/wal", sdir);
    d = opendir(wal);
    if (!d) return 0;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        uint64_t id;
        if (wal_seg_parse(de->d_name, &id) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", wal, de->d_name);
        if (stat(path, &st) == 0) total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

void last_seg_path(const char *sdir, char *out, size_t len)
{
    char wal[700];
    DIR *d;
    struct dirent *de;
    uint64_t best = 0;
    int found = 0;
    snprintf(wal, sizeof wal, "%s/wal", sdir);
    d = opendir(wal);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (wal_seg_parse(de->d_name, &id) != 0) continue;
        if (!found || id > best) {
            best = id;
            found = 1;
            snprintf(out, len, "%s/%s", wal, de->d_name);
        }
    }
    closedir(d);
    assert_true(found);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

int rm_rf(const char *path)
{
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void drop_index(struct tctx *t)
{
    char p[700];
    snprintf(p, sizeof p, "%s/index", t->sdir);
    rm_rf(p);
}

int find_record(const char *sdir, int type, uint64_t c, uint32_t v, uint32_t block, char *path,
                size_t plen, uint64_t *off, uint32_t *stored_len)
{
    char wal[700];
    DIR *d;
    struct dirent *de;
    int found = 0;
    snprintf(wal, sizeof wal, "%s/wal", sdir);
    d = opendir(wal);
    if (!d) return -1;
    while (!found && (de = readdir(d)) != NULL) {
        struct wal_scan sc;
        struct wal_rec r;
        struct stat st;
        uint64_t id;
        int fd;
        if (wal_seg_parse(de->d_name, &id) != 0) continue;
        snprintf(path, plen, "%s/%s", wal, de->d_name);
        fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        fstat(fd, &st);
        if (wal_scan_init(&sc, fd, 0, (uint64_t)st.st_size) == 0) {
            while (wal_scan_next(&sc, &r) == 1) {
                if (r.h.type == type && r.h.chunk == c && r.h.version == v &&
                    (type != WAL_BLOCK || r.h.arg == block)) {
                    *off = r.off;
                    *stored_len = r.h.stored_len;
                    found = 1;
                    break;
                }
            }
            wal_scan_free(&sc);
        }
        close(fd);
    }
    closedir(d);
    return found ? 0 : -1;
}

void flip_bit(const char *path, uint64_t off, int bit)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= (uint8_t)(1u << bit);
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

int segs_contain(const char *sdir, const void *needle, size_t n)
{
    char wal[700], path[1024];
    DIR *d;
    struct dirent *de;
    int found = 0;
    snprintf(wal, sizeof wal, "%s/wal", sdir);
    d = opendir(wal);
    if (!d) return 0;
    while (!found && (de = readdir(d)) != NULL) {
        struct stat st;
        uint8_t *buf;
        uint64_t id;
        int fd;
        if (wal_seg_parse(de->d_name, &id) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", wal, de->d_name);
        fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) != NULL) {
            ssize_t len = read(fd, buf, (size_t)st.st_size);
            if (len > 0) found = memmem(buf, (size_t)len, needle, n) != NULL;
            free(buf);
        }
        close(fd);
    }
    closedir(d);
    return found;
}

int log_count(const char *path, const char *const *needles, int n)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int count = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        int all = 1;
        for (int i = 0; i < n && all; i++) all = strstr(line, needles[i]) != NULL;
        count += all;
    }
    fclose(f);
    return count;
}
