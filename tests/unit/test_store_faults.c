/* Unit tests of the chunk store: torn tails, corruption in the middle of
 * the log, flipped bits, and kill -9 at random moments. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "minikv/err.h"
#include "minikv/log.h"
#include "test_store_util.h"
#include "store_int.h"
#include "wal.h"

static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    int a = open(from, O_RDONLY), b = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    ssize_t n;
    assert_true(a >= 0 && b >= 0);
    while ((n = read(a, buf, sizeof buf)) > 0) assert_int_equal(write(b, buf, (size_t)n), n);
    close(a);
    close(b);
}

/* Cut the last record of the log at many byte offsets, with and without
 * garbage after the cut: older data stays, the torn record is gone, new
 * writes work and survive another reopen. */
static void torn_tail(struct tctx *t)
{
    uint8_t big[3 * BS], last[1000], got[3 * BS];
    char seg[1024], saved[1024];
    uint64_t off = 0;
    uint32_t stored = 0;
    struct stat st;
    int torn_seen = 0;
    t_open_ok(t);
    for (int c = 1; c <= 3; c++) {
        fill(big, sizeof big, (uint64_t)c);
        assert_int_equal(t_write(t, (uint64_t)c, 1, 0, 0, big, sizeof big), 0);
    }
    fill(last, sizeof last, 99);
    assert_int_equal(t_write(t, 3, 1, 0, 3 * BS, last, sizeof last), 0); /* the last record */
    t_close(t);
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, 3, 1, 3, seg, sizeof seg, &off, &stored), 0);
    assert_int_equal(stored, sizeof last);
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal((uint64_t)st.st_size, off + wal_rec_len(stored));
    snprintf(saved, sizeof saved, "%s/saved.seg", t->dir);
    copy_file(seg, saved);

    for (uint32_t cut = 0; cut < wal_rec_len(stored); cut += cut < 70 ? 7 : 97) {
        for (int garbage = 0; garbage < 2; garbage++) {
            copy_file(saved, seg);
            assert_int_equal(truncate(seg, (off_t)(off + cut)), 0);
            if (garbage) {
                uint8_t junk[333];
                int fd = open(seg, O_WRONLY | O_APPEND);
                fill(junk, sizeof junk, cut);
                assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
                close(fd);
            }
            t_open_ok(t);
            torn_seen += t_stats(t).torn_tails > 0;
            for (int c = 1; c <= 3; c++) {
                fill(big, sizeof big, (uint64_t)c);
                assert_int_equal(t_read(t, (uint64_t)c, 1, 0, got, sizeof big), 0);
                assert_memory_equal(got, big, sizeof big);
            }
            /* The torn block is gone: never served. */
            assert_int_equal(t_read(t, 3, 1, 3 * BS, got, 1), -ENODATA);
            /* New writes work, and survive a reopen. */
            assert_int_equal(t_write(t, 3, 1, 0, 3 * BS, last, 500), 0);
            assert_int_equal(t_write(t, 4, 1, 0, 0, last, sizeof last), 0);
            t_reopen(t);
            assert_int_equal(t_stats(t).torn_tails, 0);
            assert_int_equal(t_read(t, 3, 1, 3 * BS, got, 500), 0);
            assert_memory_equal(got, last, 500);
            check_data(t, 4, 1, sizeof last, 99);
            t_close(t);
        }
    }
    assert_true(torn_seen > 0);
}
CASE(torn_tail)

/* A damaged record in the middle of the log, with valid records after it,
 * is skipped (and logged) during a rebuild, not taken for the end. */
static void mid_log_corruption(struct tctx *t)
{
    uint8_t buf[2000], got[2000];
    char seg[1024], logp[512];
    uint64_t off;
    uint32_t stored;
    struct mkv_store_stats st;
    const char *needles[] = {"skipping unreadable log bytes", "segment="};
    t_open_ok(t);
    for (uint64_t c = 1; c <= 3; c++) {
        fill(buf, sizeof buf, c);
        assert_int_equal(t_write(t, c, 1, 0, 0, buf, sizeof buf), 0);
    }
    t_close(t);
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, 2, 1, 0, seg, sizeof seg, &off, &stored), 0);
    flip_bit(seg, off + 20, 3); /* in the header: the record cannot be parsed */
    drop_index(t);
    snprintf(logp, sizeof logp, "%s/log", t->dir);
    mkv_log_set_file(logp);
    t_open_ok(t);
    mkv_log_set_file(NULL);
    st = t_stats(t);
    assert_int_equal(st.torn_tails, 0);
    assert_int_equal(st.skipped_regions, 1);
    assert_int_equal(log_count(logp, needles, 2), 1);
    check_data(t, 1, 1, sizeof buf, 1);
    check_data(t, 3, 1, sizeof buf, 3);
    assert_int_equal(t_read(t, 2, 1, 0, got, 1), -ENODATA);
    /* Writes go on after the skipped bytes. */
    assert_int_equal(t_write(t, 4, 1, 0, 0, buf, sizeof buf), 0);
    t_reopen(t);
    check_data(t, 3, 1, sizeof buf, 3);
    check_data(t, 4, 1, sizeof buf, 3);
}
CASE(mid_log_corruption)

/* A flipped bit in a stored block: MKV_ECHECKSUM with a log line naming
 * chunk, version, block, segment and offset, the rest of the chunk reads
 * fine, the scrubber counts it; the same after reopen and after a rebuild. */
static void flipped_bit(struct tctx *t)
{
    uint8_t *data = malloc(4 * BS), *got = malloc(4 * BS), zero[BS];
    char seg[1024], logp[512], n_chunk[64], n_off[64];
    uint64_t off, bad = 0;
    uint32_t stored;
    t_open_ok(t);
    fill(data, 4 * BS, 5);
    assert_int_equal(t_write(t, 0x77, 3, 0, 0, data, 4 * BS), 0);
    assert_int_equal(t_write(t, 0x78, 1, 0, 0, data, 100), 0); /* not the last record */
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, 0x77, 3, 2, seg, sizeof seg, &off, &stored), 0);
    flip_bit(seg, off + WAL_HDR + 4321, 5);
    memset(zero, 0, sizeof zero);
    snprintf(logp, sizeof logp, "%s/log", t->dir);
    snprintf(n_chunk, sizeof n_chunk, "chunk=%016x", 0x77);
    snprintf(n_off, sizeof n_off, "offset=%" PRIu64, off);
    for (int round = 0; round < 3; round++) {
        const char *needles[] = {n_chunk, "version=3", "block=2", "segment=", n_off};
        struct mkv_store_stats st;
        if (round == 1) t_reopen(t);
        if (round == 2) {
            t_close(t);
            drop_index(t);
            t_open_ok(t);
        }
        unlink(logp);
        mkv_log_set_file(logp);
        memset(got, 0xEE, 4 * BS);
        assert_int_equal(t_read(t, 0x77, 3, 0, got, 4 * BS), MKV_ECHECKSUM);
        mkv_log_set_file(NULL);
        assert_int_equal(log_count(logp, needles, 5), 1);
        assert_memory_equal(got, data, 2 * BS);
        assert_memory_equal(got + 2 * BS, zero, BS); /* nothing from the bad block */
        assert_memory_equal(got + 3 * BS, data + 3 * BS, BS);
        for (int b = 0; b < 4; b++) {
            int rv = t_read(t, 0x77, 3, (uint64_t)b * BS + 10, got, 100);
            assert_int_equal(rv, b == 2 ? MKV_ECHECKSUM : 0);
            if (!rv) assert_memory_equal(got, data + (size_t)b * BS + 10, 100);
        }
        assert_int_equal(t_scrub(t, &bad), 0);
        assert_int_equal(bad, 1);
        st = t_stats(t);
        assert_true(st.corrupt_blocks >= 3);
    }
    /* A flipped bit in a header is caught as well. */
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, 0x77, 3, 0, seg, sizeof seg, &off, &stored), 0);
    flip_bit(seg, off + 30, 0);
    assert_int_equal(t_read(t, 0x77, 3, 0, got, 100), MKV_ECHECKSUM);
    assert_int_equal(t_read(t, 0x77, 3, BS, got, 100), 0);
    assert_int_equal(t_scrub(t, &bad), 0);
    assert_int_equal(bad, 2);
    free(data);
    free(got);
}
CASE(flipped_bit)

/* ------------------------------------------------------------------------
 * Failed flushes (injected): no half record stays, the store goes on
 * ------------------------------------------------------------------------ */
static void flush_faults(struct tctx *t)
{
    static const struct { int where, err; } faults[] = {
        {FAULT_WRITE, -EIO}, {FAULT_WRITE, -ENOSPC}, {FAULT_FSYNC, -EIO}, {FAULT_APPLY, -EIO},
    };
    uint8_t *buf = malloc(3 * BS), b;
    char head[1024];
    struct stat st0, st1;
    struct mkv_store_stats st;
    t_open_ok(t);
    fill(buf, 3 * BS, 1);
    assert_int_equal(t_write(t, 1, 1, 0, 0, buf, 3 * BS), 0);
    for (size_t i = 0; i < MKV_ARRAY_SIZE(faults); i++) {
        struct t_op w = {0}, c = {0};
        last_seg_path(t->sdir, head, sizeof head);
        assert_int_equal(stat(head, &st0), 0);
        store_fault_set(t->s, faults[i].where, 1, faults[i].err);
        /* A write and a commit in one batch share its fate. */
        w.req.data = &w;
        c.req.data = &c;
        assert_int_equal(mkv_store_write(t->s, &w.req, 10 + i, 1, 0, 0, buf, 3 * BS, t_op_cb), 0);
        assert_int_equal(mkv_store_commit(t->s, &c.req, 10 + i, 1, t_op_cb), 0);
        assert_int_equal(t_wait(t, &w), faults[i].err);
        assert_int_equal(t_wait(t, &c), faults[i].err);
        assert_int_equal(stat(head, &st1), 0);
        assert_int_equal(st1.st_size, st0.st_size); /* cut back: no half record */
        assert_int_equal(t_read(t, 10 + i, 1, 0, &b, 1), -ENOENT);
        check_data(t, 1, 1, 3 * BS, 1);
        assert_int_equal(t_write(t, 20 + i, 1, 0, 0, buf, 3 * BS), 0); /* and goes on */
    }
    t_reopen(t);
    st = t_stats(t);
    assert_int_equal(st.torn_tails, 0);
    assert_int_equal(st.skipped_regions, 0);
    check_data(t, 1, 1, 3 * BS, 1);
    for (size_t i = 0; i < MKV_ARRAY_SIZE(faults); i++) {
        assert_int_equal(t_read(t, 10 + i, 1, 0, &b, 1), -ENOENT);
        check_data(t, 20 + i, 1, 3 * BS, 1);
    }
    free(buf);
}
CASE(flush_faults)

/* ------------------------------------------------------------------------
 * Odd files in wal/ at open
 * ------------------------------------------------------------------------ */
static void write_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Finds a compacted segment: 0 when found. */
static int compacted_seg(const char *sdir, char *path, size_t len, uint64_t *size)
{
    char wal[700];
    DIR *d;
    struct dirent *de;
    int found = -1;
    snprintf(wal, sizeof wal, "%s/wal", sdir);
    d = opendir(wal);
    assert_non_null(d);
    while (found && (de = readdir(d)) != NULL) {
        uint8_t hdr[WAL_HDR];
        struct wal_hdr h;
        struct stat st;
        uint64_t id;
        int fd;
        if (wal_seg_parse(de->d_name, &id) != 0) continue;
        snprintf(path, len, "%s/%s", wal, de->d_name);
        fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        if (pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr && wal_hdr_decode(hdr, &h) == 0 &&
            (h.flags & WAL_F_COMPACTED) && fstat(fd, &st) == 0) {
            *size = (uint64_t)st.st_size;
            found = 0;
        }
        close(fd);
    }
    closedir(d);
    return found;
}

static void check_kept(struct tctx *t)
{
    uint8_t b;
    for (uint64_t c = 0; c < 8; c++) {
        if (c % 4 == 3) check_data(t, c, 1, 256 * KB, c);
        else assert_int_equal(t_read(t, c, 1, 0, &b, 1), -ENOENT);
    }
}

static void odd_files(struct tctx *t)
{
    uint8_t *buf = malloc(256 * KB), hdr[WAL_HDR];
    char comp[1024], path[1024], aside[1100];
    uint64_t csize = 0;
    struct wal_hdr h = {0};
    t->o.segment_size = 1 << 20;
    t_open_ok(t);
    for (uint64_t c = 0; c < 8; c++) {
        fill(buf, 256 * KB, c);
        assert_int_equal(t_write(t, c, 1, 0, 0, buf, 256 * KB), 0);
    }
    for (uint64_t c = 0; c < 8; c++)
        if (c % 4 != 3) assert_int_equal(t_delete(t, c, 1), 0);
    assert_int_equal(t_compact(t), 0);
    t_close(t);
    assert_int_equal(compacted_seg(t->sdir, comp, sizeof comp, &csize), 0);

    /* An unfinished compaction (no SEAL) whose inputs are still there: removed,
     * with a trusted index and on a rebuild. */
    for (int rebuild = 0; rebuild < 2; rebuild++) {
        snprintf(path, sizeof path, "%s/wal/00000000000000f0.seg", t->sdir);
        h.type = WAL_SEGHDR;
        h.flags = WAL_F_COMPACTED;
        h.lsn = 1;
        h.chunk = 0xf0;
        h.aux = 1000000;
        wal_hdr_encode(&h, hdr);
        write_bytes(path, hdr, sizeof hdr);
        if (rebuild) drop_index(t);
        t_open_ok(t);
        assert_false(exists(path));
        check_kept(t);
        t_close(t);
    }
    /* A compacted segment whose SEAL was damaged after its inputs were
     * removed: the only copy of its records, kept. */
    flip_bit(comp, csize - 30, 2);
    for (int rebuild = 0; rebuild < 2; rebuild++) {
        if (rebuild) drop_index(t);
        t_open_ok(t);
        assert_true(exists(comp));
        check_kept(t);
        t_close(t);
    }
    /* Garbage is set aside, a file torn at creation removed. */
    fill(buf, 10000, 3);
    snprintf(path, sizeof path, "%s/wal/00000000000000f1.seg", t->sdir);
    snprintf(aside, sizeof aside, "%s.corrupt", path);
    write_bytes(path, buf, 10000);
    t_open_ok(t);
    assert_false(exists(path));
    assert_true(exists(aside));
    check_kept(t);
    t_close(t);
    write_bytes(path, buf, 10);
    t_open_ok(t);
    assert_false(exists(path));
    t_close(t);
    /* A segment from a newer format is refused, not touched. */
    write_bytes(path, hdr, sizeof hdr);
    {
        uint8_t newer[WAL_HDR];
        memcpy(newer, hdr, sizeof newer);
        newer[6] = 2;
        write_bytes(path, newer, sizeof newer);
    }
    assert_int_equal(t_open(t), -EPROTO);
    assert_true(exists(path));
    unlink(path);
    t_open_ok(t);
    check_kept(t);
    free(buf);
}
CASE(odd_files)

/* ------------------------------------------------------------------------
 * kill -9
 * ------------------------------------------------------------------------ */
enum { REP_WRITE = 1, REP_COMMIT, REP_DEL_INTENT, REP_DEL };

struct report
{
    uint32_t op;
    uint32_t version;
    uint64_t chunk;
    uint64_t len;
    uint64_t seed;
};

struct child
{
    uv_loop_t loop;
    struct mkv_store *s;
    int fd;
    uint64_t next;
    int round;
    struct cop
    {
        struct mkv_store_req req;
        struct child *ch;
        uint64_t chunk;
        uint32_t version;
        uint64_t len, seed;
        int stage;
        uint8_t *buf;
    } ops[16];
    struct mkv_store_req creq;
    int compacting;
};

static void report(struct child *ch, uint32_t op, const struct cop *o)
{
    struct report r = {op, o->version, o->chunk, o->len, o->seed};
    if (write(ch->fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(3);
}

static void child_next(struct cop *o);

static void child_compact_cb(struct mkv_store_req *req, int status)
{
    struct child *ch = req->data;
    (void)status;
    ch->compacting = 0;
}

static void child_cb(struct mkv_store_req *req, int status)
{
    struct cop *o = req->data;
    struct child *ch = o->ch;
    if (status) _exit(4); /* the parent sees a short report stream and fails */
    /* Each version: write, commit when the chunk is even, delete when it
     * is a multiple of 3 (so compaction has garbage to collect). */
    if (o->stage == 0) report(ch, REP_WRITE, o);
    if (o->stage == 1) report(ch, REP_COMMIT, o);
    if (o->stage == 2) report(ch, REP_DEL, o);
    if (o->stage == 0 && o->chunk % 2 == 0) {
        o->stage = 1;
        if (mkv_store_commit(ch->s, &o->req, o->chunk, o->version, child_cb)) _exit(5);
        return;
    }
    if (o->stage < 2 && o->chunk % 3 == 0) {
        o->stage = 2;
        report(ch, REP_DEL_INTENT, o);
        if (mkv_store_delete(ch->s, &o->req, o->chunk, o->version, child_cb)) _exit(6);
        return;
    }
    if (!ch->compacting && ch->next % 20 == 0) {
        ch->compacting = 1;
        ch->creq.data = ch;
        mkv_store_compact(ch->s, &ch->creq, child_compact_cb);
    }
    child_next(o);
}

static void child_next(struct cop *o)
{
    struct child *ch = o->ch;
    uint64_t i = ch->next++;
    o->chunk = (uint64_t)ch->round * 1000000 + i;
    o->version = 1 + (uint32_t)(i % 3);
    o->seed = o->chunk * 31 + o->version;
    o->len = 1 + (o->seed * 7919) % (200 * KB);
    o->stage = 0;
    fill(o->buf, o->len, o->seed);
    o->req.data = o;
    if (mkv_store_write(ch->s, &o->req, o->chunk, o->version, 0, 0, o->buf, o->len, child_cb))
        _exit(7);
}

static void child_main(struct tctx *t, int round, int fd)
{
    struct child *ch = calloc(1, sizeof *ch);
    char err[256];
    struct mkv_store_opts o = t->o;
    if (!ch || uv_loop_init(&ch->loop)) _exit(1);
    ch->fd = fd;
    ch->round = round;
    o.segment_size = 1 << 20;
    o.compact_percent = 75;
    if (mkv_store_open(&ch->loop, &o, &ch->s, err, sizeof err)) _exit(2);
    for (int i = 0; i < 16; i++) {
        ch->ops[i].ch = ch;
        ch->ops[i].buf = malloc(200 * KB);
        child_next(&ch->ops[i]);
    }
    uv_run(&ch->loop, UV_RUN_DEFAULT);
    _exit(0);
}

static int count_compacted(const char *sdir)
{
    char wal[700], path[1024];
    DIR *d;
    struct dirent *de;
    int n = 0;
    snprintf(wal, sizeof wal, "%s/wal", sdir);
    d = opendir(wal);
    if (!d) return 0;
    while ((de = readdir(d)) != NULL) {
        uint8_t hdr[WAL_HDR];
        struct wal_hdr h;
        uint64_t id;
        int fd;
        if (wal_seg_parse(de->d_name, &id) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", wal, de->d_name);
        fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        if (pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr && wal_hdr_decode(hdr, &h) == 0 &&
            (h.flags & WAL_F_COMPACTED))
            n++;
        close(fd);
    }
    closedir(d);
    return n;
}

struct vstate
{
    struct report w;
    int write, commit, del_intent, del;
};

static void crash_kill9(struct tctx *t)
{
    enum { ROUNDS = 4, MAXV = 20000 };
    struct vstate *vs = calloc(MAXV, sizeof *vs);
    size_t nv = 0;
    uint8_t *got = malloc(200 * KB), *want = malloc(200 * KB);
    unsigned seed = (unsigned)time(NULL);
    print_message("kill -9 test seed %u\n", seed);
    srand(seed);
    for (int round = 0; round < ROUNDS; round++) {
        int p[2], status;
        pid_t pid;
        struct report r;
        size_t acked = 0, checked = 0;
        assert_int_equal(pipe(p), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_main(t, round, p[1]);
        }
        close(p[1]);
        usleep((useconds_t)(80000 + rand() % 250000));
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        while (read(p[0], &r, sizeof r) == (ssize_t)sizeof r) {
            struct vstate *v = NULL;
            for (size_t i = nv; i-- > 0;)
                if (vs[i].w.chunk == r.chunk && vs[i].w.version == r.version) {
                    v = &vs[i];
                    break;
                }
            if (!v) {
                assert_true(nv < MAXV);
                v = &vs[nv++];
                v->w = r;
            }
            if (r.op == REP_WRITE) v->write = 1, acked++;
            if (r.op == REP_COMMIT) v->commit = 1;
            if (r.op == REP_DEL_INTENT) v->del_intent = 1;
            if (r.op == REP_DEL) v->del = 1;
        }
        close(p[0]);
        /* Reopen: every acknowledged operation is there. */
        t_open_ok(t);
        for (size_t i = 0; i < nv; i++) {
            struct vstate *v = &vs[i];
            int rv;
            if (!v->write) continue;
            rv = t_read(t, v->w.chunk, v->w.version, 0, got, v->w.len);
            if (v->del) {
                assert_int_equal(rv, -ENOENT);
                continue;
            }
            if (v->del_intent && rv == -ENOENT) continue;
            if (rv) print_error("chunk %" PRIu64 " v%u: %d\n", v->w.chunk, v->w.version, rv);
            assert_int_equal(rv, 0);
            fill(want, v->w.len, v->w.seed);
            assert_memory_equal(got, want, v->w.len);
            if (v->commit && t_version_state(t, v->w.chunk, v->w.version) != MKV_VER_COMMITTED) {
                print_error("chunk %" PRIu64 " v%u: commit acknowledged, not committed\n",
                            v->w.chunk, v->w.version);
                fail();
            }
            checked++;
        }
        print_message("round %d: %zu writes acknowledged before kill -9, %zu versions verified, "
                      "%" PRIu64 " segments (%d from compaction)\n",
                      round, acked, checked, t_stats(t).segments, count_compacted(t->sdir));
        assert_true(acked > 0);
        t_close(t);
    }
    free(vs);
    free(got);
    free(want);
}
CASE(crash_kill9)

const struct CMUnitTest store_fault_tests[] = {
    ENTRIES(torn_tail), ENTRIES(mid_log_corruption), ENTRIES(flipped_bit), ENTRIES(flush_faults),
    ENTRIES(odd_files),
    ENTRIES(crash_kill9),
};
const size_t store_fault_count = MKV_ARRAY_SIZE(store_fault_tests);
