/* Fuzz target: chunk store recovery. The input becomes the only segment
 * file of a fresh store directory; the store is opened (which scans and
 * replays it, cutting torn tails and skipping damage), then everything the
 * rebuilt index holds is read back and scrubbed, and the store is closed.
 * Nothing may crash, hang or leak.
 *
 * When the first input byte is odd, the harness first makes every
 * record-looking structure in the rest of the input checksum-correct, so
 * that the fuzzer also explores what the index does with valid records of
 * odd content (versions, folds, deletes, compression flags), not only the
 * CRC checks. */
#include "config.h"

#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "minikv/crc32c.h"
#include "minikv/log.h"
#include "store.h"
#include "wal.h"

#define MAX_VERSIONS 16
#define MAX_READ (256u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fix_crcs(uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off + WAL_HDR <= len) {
        uint8_t *h = p + off;
        uint32_t stored;
        size_t avail;
        if (mkv_get_le32(h) != WAL_MAGIC) {
            off += WAL_ALIGN;
            continue;
        }
        stored = mkv_get_le32(h + 32);
        avail = len - off - WAL_HDR;
        if (stored > avail) stored = (uint32_t)avail;
        mkv_put_le16(h + 6, WAL_FORMAT);
        mkv_put_le32(h + 44, stored ? mkv_crc32c(0, h + WAL_HDR, stored) : 0);
        if (h[5] == 0 && h[4] == WAL_BLOCK) mkv_put_le32(h + 40, mkv_get_le32(h + 44));
        mkv_put_le32(h + 56, 0);
        mkv_put_le32(h + 60, mkv_crc32c(0, h, 60));
        off += wal_rec_len(stored);
    }
}

struct ver
{
    uint64_t c;
    uint32_t v;
    uint64_t size;
};

struct vers
{
    struct ver v[MAX_VERSIONS];
    int n;
};

static int collect(void *arg, const struct mkv_store_version_info *vi)
{
    struct vers *vs = arg;
    vs->v[vs->n].c = vi->chunk_id;
    vs->v[vs->n].v = vi->version;
    vs->v[vs->n].size = vi->size;
    return ++vs->n == MAX_VERSIONS;
}

static void on_done(struct mkv_store_req *req, int status)
{
    (void)status;
    *(int *)req->data = 1;
}

static void on_closed(void *data)
{
    *(int *)data = 1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static void run(uv_loop_t *loop, int *flag)
{
    while (!*flag) uv_run(loop, UV_RUN_ONCE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[256], path[512], err[256];
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    struct mkv_store_opts o;
    struct mkv_store *s = NULL;
    struct vers vs;
    uv_loop_t loop;
    uint8_t *buf, *seg;
    int fd, done;

    mkv_log_threshold = -1; /* damage is the point here: keep the logs quiet */
    if (size < 1) return 0;
    snprintf(dir, sizeof dir, "%s/fuzz-wal-XXXXXX", base);
    if (!mkdtemp(dir)) return 0;
    snprintf(path, sizeof path, "%s/wal", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/wal/0000000000000001.seg", dir);
    seg = malloc(size);
    if (!seg) goto out_dir;
    memcpy(seg, data + 1, size - 1);
    if (data[0] & 1) fix_crcs(seg, size - 1);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        if (size > 1 && write(fd, seg, size - 1) != (ssize_t)(size - 1)) {
            /* a short file is an input like any other */
        }
        close(fd);
    }
    free(seg);

    if (uv_loop_init(&loop) != 0) goto out_dir;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.io_backend = MKV_IO_SYNC;
    o.segment_size = 1 << 20;
    if (mkv_store_open(&loop, &o, &s, err, sizeof err) == 0) {
        memset(&vs, 0, sizeof vs);
        mkv_store_list_versions(s, collect, &vs);
        buf = malloc(MAX_READ);
        for (int i = 0; buf && i < vs.n; i++) {
            struct mkv_store_req req;
            size_t len = vs.v[i].size < MAX_READ ? (size_t)vs.v[i].size : MAX_READ;
            done = 0;
            memset(&req, 0, sizeof req);
            req.data = &done;
            if (mkv_store_read(s, &req, vs.v[i].c, vs.v[i].v, 0, buf, len, on_done) == 0)
                run(&loop, &done);
        }
        free(buf);
        {
            struct mkv_store_req req;
            uint64_t bad = 0;
            done = 0;
            memset(&req, 0, sizeof req);
            req.data = &done;
            if (mkv_store_scrub(s, &req, &bad, on_done) == 0) run(&loop, &done);
        }
        done = 0;
        mkv_store_close(s, on_closed, &done);
        run(&loop, &done);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
out_dir:
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
