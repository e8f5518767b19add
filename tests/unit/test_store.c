/* Unit tests of the chunk store (chunk/store.h): real files, real LMDB,
 * real io_uring. This file: round trips, group commit, reopen, base
 * versions and folding, listings; and main(). Faults (torn tails, bit
 * flips, kill -9) are in test_store_faults.c; space (compaction, ENOSPC,
 * compression, encryption) in test_store_space.c. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minikv/err.h"
#include "minikv/log.h"
#include "test_store_util.h"

/* Write, read back at every kind of offset, overwrite, commit, delete. */
static void round_trip(struct tctx *t)
{
    size_t len = 3 * BS + 12345;
    uint8_t *data = malloc(len), *got = malloc(len), *blk = malloc(BS);
    static const struct
    {
        uint64_t off, len;
    } ranges[] = {
        {0, 1},
        {1000, 130000},
        {BS - 1, 2},
        {BS, BS},
        {2 * BS + 7, BS + 100},
        {0, 3 * BS + 12345},
        {3 * BS + 12344, 1},
        {12345, 0},
    };
    t_open_ok(t);
    fill(data, len, 1);
    assert_int_equal(t_write(t, 10, 1, 0, 0, data, len), 0);
    for (size_t i = 0; i < MKV_ARRAY_SIZE(ranges); i++) {
        memset(got, 0xAA, len);
        assert_int_equal(t_read(t, 10, 1, ranges[i].off, got, ranges[i].len), 0);
        assert_memory_equal(got, data + ranges[i].off, ranges[i].len);
    }
    /* Past the end of the data, or a block never written. */
    assert_int_equal(t_read(t, 10, 1, len - 10, got, 11), -ENODATA);
    assert_int_equal(t_read(t, 10, 1, 5 * BS, got, 10), -ENODATA);
    assert_int_equal(t_read(t, 10, 2, 0, got, 10), -ENOENT);
    assert_int_equal(t_read(t, 11, 1, 0, got, 10), -ENOENT);
    /* A block written twice keeps the last write; a hole reads as ENODATA. */
    fill(blk, BS, 2);
    assert_int_equal(t_write(t, 10, 1, 0, BS, blk, BS), 0);
    memcpy(data + BS, blk, BS);
    assert_int_equal(t_read(t, 10, 1, 0, got, len), 0);
    assert_memory_equal(got, data, len);
    assert_int_equal(t_write(t, 12, 1, 0, 2 * BS, blk, 100), 0);
    assert_int_equal(t_read(t, 12, 1, 2 * BS, got, 100), 0);
    assert_memory_equal(got, blk, 100);
    assert_int_equal(t_read(t, 12, 1, 0, got, 100), -ENODATA);
    assert_int_equal(t_read(t, 12, 1, 2 * BS, got, 101), -ENODATA);
    /* Bad arguments fail at once. */
    assert_int_equal(
        mkv_store_write(t->s, &(struct mkv_store_req){0}, 10, 1, 0, 100, data, 10, t_op_cb),
        -EINVAL);
    assert_int_equal(
        mkv_store_write(t->s, &(struct mkv_store_req){0}, 10, 0, 0, 0, data, 10, t_op_cb), -EINVAL);
    assert_int_equal(
        mkv_store_read(t->s, &(struct mkv_store_req){0}, 10, 1, MKV_CHUNK_SIZE, got, 1, t_op_cb),
        -EINVAL);
    /* Commit: immutable afterwards; committing twice is fine. */
    assert_int_equal(t_commit(t, 10, 1), 0);
    assert_int_equal(t_commit(t, 10, 1), 0);
    assert_int_equal(t_version_state(t, 10, 1), MKV_VER_COMMITTED);
    assert_int_equal(t_write(t, 10, 1, 0, 0, blk, 10), -EEXIST);
    assert_int_equal(t_commit(t, 10, 9), -ENOENT);
    assert_int_equal(t_read(t, 10, 1, 0, got, len), 0);
    assert_memory_equal(got, data, len);
    /* Delete, twice, and of what never existed. */
    assert_int_equal(t_delete(t, 10, 1), 0);
    assert_int_equal(t_delete(t, 10, 1), 0);
    assert_int_equal(t_delete(t, 999, 0), 0);
    assert_int_equal(t_read(t, 10, 1, 0, got, 10), -ENOENT);
    /* A deleted version can be written again from scratch. */
    assert_int_equal(t_write(t, 10, 1, 0, 0, blk, 500), 0);
    assert_int_equal(t_read(t, 10, 1, 0, got, 500), 0);
    assert_memory_equal(got, blk, 500);
    assert_int_equal(t_read(t, 10, 1, 0, got, 501), -ENODATA);
    assert_int_equal(t_version_state(t, 10, 1), MKV_VER_PREPARED);
    /* Delete of every version of a chunk. */
    assert_int_equal(t_write(t, 10, 2, 0, 0, blk, 500), 0);
    assert_int_equal(t_delete(t, 10, 0), 0);
    assert_int_equal(t_read(t, 10, 1, 0, got, 1), -ENOENT);
    assert_int_equal(t_read(t, 10, 2, 0, got, 1), -ENOENT);
    assert_int_equal(t_read(t, 12, 1, 2 * BS, got, 100), 0);
    free(data);
    free(got);
    free(blk);
}
CASE(round_trip)

/* 64 writes issued together complete with a handful of fsyncs. */
static void group_commit(struct tctx *t)
{
    enum { N = 64 };
    struct t_op ops[N];
    uint8_t *bufs = malloc((size_t)N * BS);
    struct mkv_store_stats a, b;
    t_open_ok(t);
    a = t_stats(t);
    for (int i = 0; i < N; i++) {
        fill(bufs + (size_t)i * BS, BS, 100 + (uint64_t)i);
        memset(&ops[i], 0, sizeof ops[i]);
        ops[i].req.data = &ops[i];
        assert_int_equal(mkv_store_write(t->s, &ops[i].req, 1000 + (uint64_t)i, 1, 0, 0,
                                         bufs + (size_t)i * BS, BS, t_op_cb),
                         0);
    }
    for (int i = 0; i < N; i++) assert_int_equal(t_wait(t, &ops[i]), 0);
    b = t_stats(t);
    print_message("group commit: %d writes, %llu fsyncs (%s)\n", N,
                  (unsigned long long)(b.fsyncs - a.fsyncs), b.io_backend);
    assert_true(b.fsyncs - a.fsyncs >= 1);
    assert_true(b.fsyncs - a.fsyncs <= 4);
    assert_true(b.fsync_latency.count > a.fsync_latency.count);
    assert_true(b.bytes_written >= (uint64_t)N * BS);
    assert_true(b.lsn > a.lsn);
    for (int i = 0; i < N; i++) check_data(t, 1000 + (uint64_t)i, 1, BS, 100 + (uint64_t)i);
    /* Reads issued together too. */
    {
        uint8_t *got = malloc((size_t)N * BS), *want = malloc(BS);
        for (int i = 0; i < N; i++) {
            memset(&ops[i], 0, sizeof ops[i]);
            ops[i].req.data = &ops[i];
            assert_int_equal(mkv_store_read(t->s, &ops[i].req, 1000 + (uint64_t)i, 1, 0,
                                            got + (size_t)i * BS, BS, t_op_cb),
                             0);
        }
        for (int i = 0; i < N; i++) {
            assert_int_equal(t_wait(t, &ops[i]), 0);
            fill(want, BS, 100 + (uint64_t)i);
            assert_memory_equal(got + (size_t)i * BS, want, BS);
        }
        free(got);
        free(want);
    }
    free(bufs);
}
CASE(group_commit)

/* A mixed population that reopen must preserve. */
static void populate(struct tctx *t)
{
    uint8_t *buf = malloc(4 * BS);
    for (uint64_t c = 1; c <= 12; c++) {
        size_t len = (size_t)(c * 37 * KB) % (4 * BS) + 1;
        fill(buf, len, c);
        assert_int_equal(t_write(t, c, 1, 0, 0, buf, len), 0);
        if (c % 3 == 0) assert_int_equal(t_commit(t, c, 1), 0);
        if (c % 4 == 0) assert_int_equal(t_delete(t, c, 1), 0);
    }
    free(buf);
}

static void check_population(struct tctx *t)
{
    uint8_t b;
    for (uint64_t c = 1; c <= 12; c++) {
        size_t len = (size_t)(c * 37 * KB) % (4 * BS) + 1;
        if (c % 4 == 0) {
            assert_int_equal(t_read(t, c, 1, 0, &b, 1), -ENOENT);
            assert_int_equal(t_version_state(t, c, 1), 0);
            continue;
        }
        check_data(t, c, 1, len, c);
        assert_int_equal(t_version_state(t, c, 1),
                         c % 3 == 0 ? MKV_VER_COMMITTED : MKV_VER_PREPARED);
    }
}

static void reopen_preserves(struct tctx *t)
{
    struct mkv_store_stats st;
    uint64_t chunks;
    t_open_ok(t);
    populate(t);
    chunks = t_stats(t).chunks;
    assert_int_equal(chunks, 9);
    t_reopen(t); /* clean close: the index is trusted */
    check_population(t);
    st = t_stats(t);
    assert_int_equal(st.chunks, chunks);
    assert_int_equal(st.torn_tails, 0);
    /* Without the index: rebuilt from the segments. */
    t_close(t);
    drop_index(t);
    t_open_ok(t);
    st = t_stats(t);
    assert_true(st.replayed_records > 0);
    assert_int_equal(st.chunks, chunks);
    check_population(t);
    /* An unclean stop in another boot (power loss): the index, synced only
     * lazily, is not trusted and is rebuilt from the log. */
    t_close(t);
    {
        char path[700];
        FILE *f;
        snprintf(path, sizeof path, "%s/index.state", t->sdir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("boot=another-boot\nclean=0\ntxn=1\n", f);
        fclose(f);
    }
    t_open_ok(t);
    assert_true(t_stats(t).replayed_records > 0);
    assert_int_equal(t_stats(t).chunks, chunks);
    check_population(t);
    /* MKV_IO_AUTO picks io_uring where it works. */
    if (t->backend == MKV_IO_URING) {
        t_close(t);
        t->o.io_backend = MKV_IO_AUTO;
        assert_int_equal(t_open(t), 0);
        assert_string_equal(t_stats(t).io_backend, "io_uring");
        t_close(t);
        t->o.io_backend = MKV_IO_URING;
        t_open_ok(t);
    }
    /* New writes after the rebuild continue the log. */
    {
        uint8_t buf[100];
        fill(buf, sizeof buf, 77);
        assert_int_equal(t_write(t, 77, 1, 0, 0, buf, sizeof buf), 0);
        t_reopen(t);
        check_data(t, 77, 1, sizeof buf, 77);
        check_population(t);
    }
}
CASE(reopen_preserves)

/* Base versions: copy-on-write per block, prepared chains, and folding at
 * commit. */
static void base_chain(struct tctx *t)
{
    uint8_t *v1 = malloc(4 * BS), *want = malloc(4 * BS), *got = malloc(4 * BS), *blk = malloc(BS);
    struct mkv_store_stats a, b;
    t_open_ok(t);
    fill(v1, 4 * BS, 1);
    assert_int_equal(t_write(t, 5, 1, 0, 0, v1, 4 * BS), 0);
    assert_int_equal(t_commit(t, 5, 1), 0);
    /* v2 on v1 overwrites block 1. */
    fill(blk, BS, 2);
    assert_int_equal(t_write(t, 5, 2, 9, BS, blk, BS), -ENOENT); /* base missing */
    assert_int_equal(t_write(t, 5, 2, 1, BS, blk, BS), 0);
    assert_int_equal(t_write(t, 5, 2, 3, BS, blk, BS), -EINVAL); /* another base */
    memcpy(want, v1, 4 * BS);
    memcpy(want + BS, blk, BS);
    assert_int_equal(t_read(t, 5, 2, 0, got, 4 * BS), 0);
    assert_memory_equal(got, want, 4 * BS);
    /* v3 on prepared v2 overwrites part of block 2 (the block then holds 1000 bytes). */
    fill(blk, BS, 3);
    assert_int_equal(t_write(t, 5, 3, 2, 2 * BS, blk, 1000), 0);
    assert_int_equal(t_read(t, 5, 3, 0, got, 2 * BS + 1000), 0);
    memcpy(want + 2 * BS, blk, 1000);
    assert_memory_equal(got, want, 2 * BS + 1000);
    assert_int_equal(t_read(t, 5, 3, 0, got, 2 * BS + 1001), -ENODATA);
    assert_int_equal(t_read(t, 5, 3, 3 * BS, got, BS), 0);
    assert_memory_equal(got, v1 + 3 * BS, BS);
    /* The base still reads as itself. */
    assert_int_equal(t_read(t, 5, 1, 0, got, 4 * BS), 0);
    assert_memory_equal(got, v1, 4 * BS);
    /* Commit v3: v2 and v1 fold into it. */
    a = t_stats(t);
    assert_int_equal(t_commit(t, 5, 3), 0);
    b = t_stats(t);
    assert_true(b.live < a.live); /* the shadowed blocks of v1 and v2 are dead now */
    assert_int_equal(t_read(t, 5, 1, 0, got, 10), MKV_ESTALE);
    assert_int_equal(t_read(t, 5, 2, 0, got, 10), MKV_ESTALE);
    assert_int_equal(t_version_state(t, 5, 1), MKV_VER_FOLDED);
    assert_int_equal(t_version_state(t, 5, 2), MKV_VER_FOLDED);
    assert_int_equal(t_version_state(t, 5, 3), MKV_VER_COMMITTED);
    assert_int_equal(t_read(t, 5, 3, 0, got, 2 * BS + 1000), 0);
    assert_memory_equal(got, want, 2 * BS + 1000);
    assert_int_equal(t_read(t, 5, 3, 3 * BS, got, BS), 0);
    assert_memory_equal(got, v1 + 3 * BS, BS);
    assert_int_equal(t_write(t, 5, 2, 1, 0, blk, 10), MKV_ESTALE);
    assert_int_equal(t_write(t, 5, 4, 1, 0, blk, 10), MKV_ESTALE);
    assert_int_equal(t_commit(t, 5, 2), MKV_ESTALE);
    /* The same after reopen and after a rebuild from the log. */
    for (int round = 0; round < 2; round++) {
        t_close(t);
        if (round) drop_index(t);
        t_open_ok(t);
        assert_int_equal(t_read(t, 5, 1, 0, got, 10), MKV_ESTALE);
        assert_int_equal(t_read(t, 5, 3, 0, got, 2 * BS + 1000), 0);
        assert_memory_equal(got, want, 2 * BS + 1000);
        assert_int_equal(t_read(t, 5, 3, 3 * BS, got, BS), 0);
        assert_memory_equal(got, v1 + 3 * BS, BS);
        assert_int_equal(t_version_state(t, 5, 2), MKV_VER_FOLDED);
    }
    /* A new version on the committed one, then delete of v3: its folded
     * tombstones go with it. */
    assert_int_equal(t_write(t, 5, 6, 3, 0, blk, 10), 0);
    assert_int_equal(t_delete(t, 5, 3), 0);
    assert_int_equal(t_read(t, 5, 1, 0, got, 10), -ENOENT);
    assert_int_equal(t_read(t, 5, 3, 0, got, 10), -ENOENT);
    assert_int_equal(t_version_state(t, 5, 2), 0);
    assert_int_equal(t_read(t, 5, 6, 0, got, 10), 0);
    assert_int_equal(t_read(t, 5, 6, BS, got, 10), MKV_ESTALE); /* its base is gone */
    free(v1);
    free(want);
    free(got);
    free(blk);
}
CASE(base_chain)

struct plist
{
    uint64_t c[16];
    uint32_t v[16];
    int n;
};

static int plist_cb(void *arg, uint64_t c, uint32_t v)
{
    struct plist *p = arg;
    if (p->n < 16) {
        p->c[p->n] = c;
        p->v[p->n] = v;
        p->n++;
    }
    return 0;
}

static void list_prepared(struct tctx *t)
{
    struct plist p = {0};
    uint8_t b[10] = {0};
    t_open_ok(t);
    assert_int_equal(t_write(t, 3, 2, 0, 0, b, 10), 0);
    assert_int_equal(t_write(t, 3, 1, 0, 0, b, 10), 0);
    assert_int_equal(t_write(t, 1, 7, 0, 0, b, 0), 0); /* len 0 creates the version */
    assert_int_equal(t_write(t, 2, 1, 0, 0, b, 10), 0);
    assert_int_equal(t_commit(t, 2, 1), 0);
    assert_int_equal(mkv_store_list_prepared(t->s, 0, plist_cb, &p), 0);
    assert_int_equal(p.n, 3);
    assert_true(p.c[0] == 1 && p.v[0] == 7);
    assert_true(p.c[1] == 3 && p.v[1] == 1);
    assert_true(p.c[2] == 3 && p.v[2] == 2);
    p.n = 0;
    assert_int_equal(mkv_store_list_prepared(t->s, 3600 * 1000, plist_cb, &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(t_read(t, 1, 7, 0, b, 0), 0);
    assert_int_equal(t_read(t, 1, 7, 0, b, 1), -ENODATA);
}
CASE(list_prepared)

/* mkv_store_read_cached: the read of a co-located reader, in its own
 * thread, from the page cache only. */
static int evict(const char *sdir)
{
    char cmd[1024];
    /* posix_fadvise(DONTNEED) on every segment: their pages are clean
     * (fsynced), so they leave the page cache. */
    snprintf(cmd, sizeof cmd,
             "for f in '%s'/wal/*.seg; do dd if=\"$f\" iflag=nocache count=0 status=none; done",
             sdir);
    return system(cmd);
}

struct cached_reader
{
    struct mkv_store *s;
    volatile int stop;
    unsigned long ok, again, gone, bad;
};

enum { CR_N = 40, CR_KEEP = 20, CR_LEN = 192 * KB };

/* Reads chunks in a loop while the loop thread deletes half of them and
 * compacts: each read is the right bytes, -EAGAIN or, for a deleted chunk,
 * -ENOENT; never other bytes, never a crash. */
static void *cached_reader_main(void *arg)
{
    struct cached_reader *cr = arg;
    uint8_t *got = malloc(CR_LEN), *want = malloc(CR_LEN);
    uint64_t seed = 1;
    while (!cr->stop) {
        uint64_t c;
        int rv;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        c = (seed >> 33) % CR_N;
        rv = mkv_store_read_cached(cr->s, c, 1, 1000, got, CR_LEN - 1000);
        if (rv == 0) {
            fill(want, CR_LEN, c);
            if (memcmp(got, want + 1000, CR_LEN - 1000)) { /* deleted ones may still be read */
                print_message("wrong bytes from a cached read chunk=%llu\n", (unsigned long long)c);
                cr->bad++;
            } else cr->ok++;
        } else if (rv == -EAGAIN) {
            cr->again++;
        } else if (rv == -ENOENT && c < CR_N - CR_KEEP) {
            cr->gone++;
        } else {
            print_message("unexpected cached read chunk=%llu rv=%d\n", (unsigned long long)c, rv);
            cr->bad++;
        }
    }
    free(got);
    free(want);
    return NULL;
}

static void cached_reads(struct tctx *t)
{
    size_t len = 3 * BS + 777;
    uint8_t *data = malloc(len), *got = malloc(len), *buf = malloc(CR_LEN);
    struct cached_reader cr = {0};
    pthread_t th;
    t->o.segment_size = 1 << 20;
    t_open_ok(t);
    fill(data, len, 5);
    assert_int_equal(t_write(t, 7, 1, 0, 0, data, len), 0);
    /* Just written: in the page cache. Aligned, unaligned, whole. */
    assert_int_equal(mkv_store_read_cached(t->s, 7, 1, 0, got, len), 0);
    assert_memory_equal(got, data, len);
    assert_int_equal(mkv_store_read_cached(t->s, 7, 1, BS - 3, got, BS + 10), 0);
    assert_memory_equal(got, data + BS - 3, BS + 10);
    assert_int_equal(mkv_store_read_cached(t->s, 7, 2, 0, got, 10), -ENOENT);
    assert_int_equal(mkv_store_read_cached(t->s, 7, 1, len - 1, got, 2), -ENODATA);
    assert_int_equal(mkv_store_read_cached(t->s, 7, 1, MKV_CHUNK_SIZE, got, 1), -EINVAL);
    /* Evicted: -EAGAIN, the normal read works, and brings it back. The
     * kernel may keep a page a moment (writeback of the index beside it,
     * another reader): evict again a few times before giving up on it. */
    {
        int rv = 0;
        for (int i = 0; i < 20 && rv != -EAGAIN; i++) {
            if (i) usleep(50 * 1000);
            assert_int_equal(evict(t->sdir), 0);
            rv = mkv_store_read_cached(t->s, 7, 1, 0, got, len);
            assert_true(rv == 0 || rv == -EAGAIN);
        }
        if (rv != -EAGAIN) print_message("the page cache kept the segment: -EAGAIN not seen\n");
    }
    assert_int_equal(t_read(t, 7, 1, 0, got, len), 0);
    assert_memory_equal(got, data, len);
    assert_int_equal(mkv_store_read_cached(t->s, 7, 1, 0, got, len), 0);
    assert_memory_equal(got, data, len);

    /* Against compaction removing the segments being read. */
    for (uint64_t c = 0; c < CR_N; c++) {
        fill(buf, CR_LEN, c);
        assert_int_equal(t_write(t, c, 1, 0, 0, buf, CR_LEN), 0);
        assert_int_equal(t_commit(t, c, 1), 0);
    }
    cr.s = t->s;
    assert_int_equal(pthread_create(&th, NULL, cached_reader_main, &cr), 0);
    for (uint64_t c = 0; c < CR_N - CR_KEEP; c++) assert_int_equal(t_delete(t, c, 1), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(t_compact(t), 0);
    usleep(100 * 1000);
    cr.stop = 1;
    pthread_join(th, NULL);
    print_message("cached reads during compaction: %lu right, %lu not cached, %lu deleted\n", cr.ok,
                  cr.again, cr.gone);
    assert_int_equal(cr.bad, 0);
    assert_true(cr.ok > 0);
    assert_true(t_stats(t).compactions >= 1);
    for (uint64_t c = CR_N - CR_KEEP; c < CR_N; c++) check_data(t, c, 1, CR_LEN, c);

    /* Compressed blocks are decoded by the store's workers: -EAGAIN. */
    t_close(t);
    t->o.compression = MKV_COMP_LZ4;
    t_open_ok(t);
    memset(data, 'z', len);
    assert_int_equal(t_write(t, 8, 1, 0, 0, data, len), 0);
    assert_int_equal(mkv_store_read_cached(t->s, 8, 1, 0, got, len), -EAGAIN);
    assert_int_equal(t_read(t, 8, 1, 0, got, len), 0);
    assert_memory_equal(got, data, len);
    free(data);
    free(got);
    free(buf);
}
CASE(cached_reads)

const struct CMUnitTest store_basic_tests[] = {
    ENTRIES(round_trip), ENTRIES(group_commit),  ENTRIES(reopen_preserves),
    ENTRIES(base_chain), ENTRIES(list_prepared), ENTRIES(cached_reads),
};
const size_t store_basic_count = MKV_ARRAY_SIZE(store_basic_tests);

int main(void)
{
    int fails = 0;
    mkv_log_init();
    if (!getenv("MINIKV_LOG_LEVEL") && !getenv("MINIKV_TRACE")) mkv_log_set_level("error");
    signal(SIGPIPE, SIG_IGN);
    alarm(300); /* a hung loop fails the run instead of blocking CI */
    fails += _cmocka_run_group_tests("store", store_basic_tests, store_basic_count, NULL, NULL);
    fails +=
        _cmocka_run_group_tests("store_faults", store_fault_tests, store_fault_count, NULL, NULL);
    fails +=
        _cmocka_run_group_tests("store_space", store_space_tests, store_space_count, NULL, NULL);
    return fails ? 1 : 0;
}
