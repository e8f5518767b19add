/* Unit tests of the chunk store: compaction gives space back, disk full on
 * a real tmpfs, the free-space reserve, compression and encryption. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "minikv/crc32c.h"
#include "minikv/err.h"
#include "test_store_util.h"
#include "wal.h"

/* Delete most data, compact: the segment files shrink, and what is left
 * reads back, also after a reopen and after a rebuild from the log. */
static void compaction_reclaims(struct tctx *t)
{
    enum { N = 40, KEEP = 30, LEN = 256 * KB };
    uint8_t *buf = malloc(LEN);
    uint64_t before, after;
    struct mkv_store_stats st;
    t->o.segment_size = 1 << 20;
    t_open_ok(t);
    for (uint64_t c = 0; c < N; c++) {
        fill(buf, LEN, c);
        assert_int_equal(t_write(t, c, 1, 0, 0, buf, LEN), 0);
        assert_int_equal(t_commit(t, c, 1), 0);
    }
    /* Overwrites in a prepared version leave dead records too. */
    for (int i = 0; i < 20; i++) {
        fill(buf, BS, 1000 + (uint64_t)i);
        assert_int_equal(t_write(t, 500, 1, 0, 0, buf, BS), 0);
    }
    for (uint64_t c = 0; c < KEEP; c++) assert_int_equal(t_delete(t, c, 1), 0);
    before = seg_bytes(t->sdir);
    st = t_stats(t);
    assert_int_equal(st.used, before);
    /* Compact with reads in flight: the segments they read stay until they
     * are done (epoch pins). */
    {
        enum { R = 10 };
        struct t_op ops[R], cop = {0};
        uint8_t *bufs = malloc((size_t)R * LEN), *want = malloc(LEN);
        cop.req.data = &cop;
        for (int i = 0; i < R; i++) {
            memset(&ops[i], 0, sizeof ops[i]);
            ops[i].req.data = &ops[i];
            assert_int_equal(mkv_store_read(t->s, &ops[i].req, KEEP + (uint64_t)i, 1, 0,
                                             bufs + (size_t)i * LEN, LEN, t_op_cb),
                             0);
            if (i == R / 2) assert_int_equal(mkv_store_compact(t->s, &cop.req, t_op_cb), 0);
        }
        for (int i = 0; i < R; i++) {
            assert_int_equal(t_wait(t, &ops[i]), 0);
            fill(want, LEN, KEEP + (uint64_t)i);
            assert_memory_equal(bufs + (size_t)i * LEN, want, LEN);
        }
        assert_int_equal(t_wait(t, &cop), 0);
        free(bufs);
        free(want);
    }
    assert_int_equal(t_compact(t), 0);
    after = seg_bytes(t->sdir);
    st = t_stats(t);
    print_message("compaction: segment files %llu -> %llu bytes, live %llu, %llu runs\n",
                  (unsigned long long)before, (unsigned long long)after,
                  (unsigned long long)st.live, (unsigned long long)st.compactions);
    assert_true(st.compactions >= 1);
    assert_int_equal(st.used, after);
    assert_true(after < before / 2);
    /* Sealed segments end at least compact_percent (50) live; plus the head. */
    assert_true(after < 2 * st.live + (1u << 20));
    for (int round = 0; round < 3; round++) {
        uint8_t b;
        if (round == 1) t_reopen(t);
        if (round == 2) {
            t_close(t);
            drop_index(t);
            t_open_ok(t);
        }
        for (uint64_t c = 0; c < N; c++) {
            if (c < KEEP) assert_int_equal(t_read(t, c, 1, 0, &b, 1), -ENOENT);
            else check_data(t, c, 1, LEN, c);
        }
        check_data(t, 500, 1, BS, 1019);
    }
    /* Another pass finds nothing worth doing; new data still goes in. */
    before = seg_bytes(t->sdir);
    assert_int_equal(t_compact(t), 0);
    assert_true(seg_bytes(t->sdir) <= before);
    fill(buf, LEN, 7777);
    assert_int_equal(t_write(t, 7777, 1, 0, 0, buf, LEN), 0);
    t_reopen(t);
    check_data(t, 7777, 1, LEN, 7777);
    check_data(t, N - 1, 1, LEN, N - 1);
    free(buf);
}
CASE(compaction_reclaims)

static int make_file(const char *path, size_t len)
{
    uint8_t buf[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    memset(buf, 0x5A, sizeof buf);
    if (fd < 0) return -errno;
    while (len) {
        size_t n = len > sizeof buf ? sizeof buf : len;
        if (write(fd, buf, n) != (ssize_t)n) {
            close(fd);
            return -ENOSPC;
        }
        len -= n;
    }
    close(fd);
    return 0;
}

static uint64_t fs_free(const char *path)
{
    struct statvfs v;
    if (statvfs(path, &v) != 0) return 0;
    return (uint64_t)v.f_bavail * v.f_frsize;
}

/* A real full disk: an 8 MiB tmpfs. Writes fail with -ENOSPC and leave no
 * partial record; reads keep working; writes work again once space is
 * freed (by removing other files, then by deleting and compacting). */
static void enospc_tmpfs(struct tctx *t)
{
    enum { LEN = 256 * KB };
    char mnt[512], b1[600], b2[600];
    uint8_t *buf = malloc(LEN);
    int n = 0, rv = 0, n2;
    struct mkv_store_stats st;
    if (geteuid() != 0) {
        print_message("not root: cannot mount a tmpfs, skipping the disk-full case\n");
        skip();
    }
    snprintf(mnt, sizeof mnt, "%s/mnt", t->dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0) {
        print_message("mount tmpfs failed (errno %d), skipping the disk-full case\n", errno);
        skip();
    }
    snprintf(t->mnt, sizeof t->mnt, "%s", mnt);
    snprintf(t->sdir, sizeof t->sdir, "%s/store", mnt);
    snprintf(b1, sizeof b1, "%s/ballast1", mnt);
    snprintf(b2, sizeof b2, "%s/ballast2", mnt);
    assert_int_equal(make_file(b1, 1536 * KB), 0);
    assert_int_equal(make_file(b2, 512 * KB), 0);
    t->o.segment_size = 1 << 20;
    t_open_ok(t);
    for (; n < 64; n++) {
        fill(buf, LEN, (uint64_t)n);
        rv = t_write(t, (uint64_t)n, 1, 0, 0, buf, LEN);
        if (rv) break;
    }
    print_message("tmpfs full after %d writes of %u KiB: %d\n", n, LEN / KB, rv);
    assert_int_equal(rv, -ENOSPC);
    assert_true(n >= 5);
    /* Still usable: reads work, writes keep failing cleanly. */
    for (int c = 0; c < n; c++) check_data(t, (uint64_t)c, 1, LEN, (uint64_t)c);
    assert_int_equal(t_write(t, 1000, 1, 0, 0, buf, LEN), -ENOSPC);
    st = t_stats(t);
    assert_true(st.free < 2 * LEN);
    /* Space comes back from elsewhere: writes work again. */
    unlink(b1);
    fill(buf, LEN, (uint64_t)n);
    assert_int_equal(t_write(t, (uint64_t)n, 1, 0, 0, buf, LEN), 0);
    n++;
    for (; n < 128; n++) {
        fill(buf, LEN, (uint64_t)n);
        rv = t_write(t, (uint64_t)n, 1, 0, 0, buf, LEN);
        if (rv) break;
    }
    assert_int_equal(rv, -ENOSPC);
    /* Space comes back from deleting and compacting. */
    unlink(b2); /* room for the delete records and the index */
    n2 = n;
    for (int c = 0; c < n2 - 2; c++) assert_int_equal(t_delete(t, (uint64_t)c, 1), 0);
    assert_int_equal(t_compact(t), 0);
    print_message("after delete + compaction: %llu bytes free on the tmpfs\n",
                  (unsigned long long)fs_free(mnt));
    assert_true(fs_free(mnt) > 4 * (uint64_t)LEN);
    for (int c = 0; c < 4; c++) {
        fill(buf, LEN, 5000 + (uint64_t)c);
        assert_int_equal(t_write(t, 5000 + (uint64_t)c, 1, 0, 0, buf, LEN), 0);
    }
    /* No half record was left anywhere. */
    t_reopen(t);
    st = t_stats(t);
    assert_int_equal(st.torn_tails, 0);
    assert_int_equal(st.skipped_regions, 0);
    for (int c = n2 - 2; c < n2; c++) check_data(t, (uint64_t)c, 1, LEN, (uint64_t)c);
    for (int c = 0; c < 4; c++) check_data(t, 5000 + (uint64_t)c, 1, LEN, 5000 + (uint64_t)c);
    t_close(t);
    free(buf);
}
CASE(enospc_tmpfs)

/* Under reserve_bytes of free space, writes are refused; commits and
 * deletes (which free space) still go through. */
static void reserve_refuses(struct tctx *t)
{
    uint8_t buf[1000];
    uint64_t avail;
    fill(buf, sizeof buf, 1);
    t_open_ok(t);
    assert_int_equal(t_write(t, 1, 1, 0, 0, buf, sizeof buf), 0);
    assert_int_equal(t_write(t, 2, 1, 0, 0, buf, sizeof buf), 0);
    t_close(t);
    avail = fs_free(t->dir);
    t->o.reserve_bytes = avail + (1ull << 30);
    t_open_ok(t);
    assert_int_equal(t_stats(t).free, 0);
    assert_int_equal(t_write(t, 3, 1, 0, 0, buf, sizeof buf), -ENOSPC);
    assert_int_equal(t_write(t, 1, 1, 0, BS, buf, sizeof buf), -ENOSPC);
    assert_int_equal(t_commit(t, 1, 1), 0);
    assert_int_equal(t_delete(t, 2, 1), 0);
    check_data(t, 1, 1, sizeof buf, 1);
    t->o.reserve_bytes = 0;
    t_reopen(t);
    assert_int_equal(t_write(t, 3, 1, 0, 0, buf, sizeof buf), 0);
    assert_int_equal(t_version_state(t, 1, 1), MKV_VER_COMMITTED);
    assert_int_equal(t_version_state(t, 2, 1), 0);
}
CASE(reserve_refuses)

static void text_fill(uint8_t *p, size_t len, int salt)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)("SECRET-minikv-chunk-store-0123456789 "[(i + (size_t)salt) % 37]);
}

static void compression_for(struct tctx *t, int comp, uint64_t c0)
{
    uint8_t *text = malloc(4 * BS), *rnd = malloc(2 * BS), *got = malloc(4 * BS);
    char seg[1024];
    uint64_t off, before;
    uint32_t stored;
    t->o.compression = comp;
    t->o.compression_level = comp == MKV_COMP_ZSTD ? 3 : 0;
    t_open_ok(t);
    text_fill(text, 4 * BS, 0);
    fill(rnd, 2 * BS, c0);
    before = seg_bytes(t->sdir);
    assert_int_equal(t_write(t, c0, 1, 0, 0, text, 4 * BS), 0);
    print_message("compression %d: %u bytes of text stored in %llu bytes\n", comp, 4 * BS,
                  (unsigned long long)(seg_bytes(t->sdir) - before));
    assert_true(seg_bytes(t->sdir) - before < BS);
    assert_int_equal(t_write(t, c0 + 1, 1, 0, 0, rnd, 2 * BS), 0);
    assert_int_equal(t_write(t, c0 + 2, 1, 0, 0, text, 1000), 0);
    assert_int_equal(t_read(t, c0, 1, 0, got, 4 * BS), 0);
    assert_memory_equal(got, text, 4 * BS);
    assert_int_equal(t_read(t, c0, 1, BS - 10, got, BS + 20), 0);
    assert_memory_equal(got, text + BS - 10, BS + 20);
    assert_int_equal(t_read(t, c0 + 1, 1, 0, got, 2 * BS), 0);
    assert_memory_equal(got, rnd, 2 * BS);
    assert_int_equal(t_read(t, c0 + 2, 1, 0, got, 1000), 0);
    assert_memory_equal(got, text, 1000);
    /* Random data is stored as is; text compressed. */
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, c0 + 1, 1, 0, seg, sizeof seg, &off, &stored), 0);
    assert_int_equal(stored, BS);
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, c0, 1, 1, seg, sizeof seg, &off, &stored), 0);
    assert_true(stored < BS / 4);
    /* Damage in a compressed block is detected. */
    flip_bit(seg, off + WAL_HDR + stored / 2, 1);
    assert_int_equal(t_read(t, c0, 1, BS, got, 10), MKV_ECHECKSUM);
    assert_int_equal(t_read(t, c0, 1, 0, got, BS), 0);
    assert_memory_equal(got, text, BS);
    /* Compression is per block: a store opened without it reads it all. */
    t->o.compression = MKV_COMP_NONE;
    t_reopen(t);
    assert_int_equal(t_read(t, c0, 1, 2 * BS, got, 2 * BS), 0);
    assert_memory_equal(got, text + 2 * BS, 2 * BS);
    assert_int_equal(t_read(t, c0 + 1, 1, 0, got, 2 * BS), 0);
    assert_memory_equal(got, rnd, 2 * BS);
    t_close(t);
    free(text);
    free(rnd);
    free(got);
}

static void compression(struct tctx *t)
{
    compression_for(t, MKV_COMP_LZ4, 100);
    compression_for(t, MKV_COMP_ZSTD, 200);
}
CASE(compression)

/* Rewrites the stored record at off with one ciphertext bit flipped and
 * every CRC made valid again: only the GCM tag can catch it. */
static void tamper_ciphertext(const char *seg, uint64_t off)
{
    uint8_t *rec = malloc(WAL_MAX_REC);
    struct wal_hdr h;
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, rec, WAL_HDR, (off_t)off), WAL_HDR);
    assert_int_equal(wal_hdr_decode(rec, &h), 0);
    assert_true(h.flags & WAL_F_ENC);
    assert_int_equal(pread(fd, rec + WAL_HDR, h.stored_len, (off_t)(off + WAL_HDR)),
                     (ssize_t)h.stored_len);
    rec[WAL_HDR + 12 + 100] ^= 0x10;
    h.payload_crc = mkv_crc32c(0, rec + WAL_HDR, h.stored_len);
    wal_hdr_encode(&h, rec);
    assert_int_equal(pwrite(fd, rec, WAL_HDR + h.stored_len, (off_t)off),
                     (ssize_t)(WAL_HDR + h.stored_len));
    close(fd);
    free(rec);
}

static void encryption(struct tctx *t)
{
    uint8_t key[32], key2[32], *text = malloc(3 * BS), *got = malloc(3 * BS);
    char seg[1024];
    uint64_t off;
    uint32_t stored;
    fill(key, sizeof key, 42);
    fill(key2, sizeof key2, 43);
    text_fill(text, 3 * BS, 5);
    t->o.enc_key = key;
    t_open_ok(t);
    assert_int_equal(t_write(t, 1, 1, 0, 0, text, 3 * BS), 0);
    assert_int_equal(t_read(t, 1, 1, 0, got, 3 * BS), 0);
    assert_memory_equal(got, text, 3 * BS);
    assert_int_equal(t_read(t, 1, 1, 100, got, BS), 0);
    assert_memory_equal(got, text + 100, BS);
    assert_false(segs_contain(t->sdir, "SECRET-minikv", 13));
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, 1, 1, 0, seg, sizeof seg, &off, &stored), 0);
    assert_int_equal(stored, BS + WAL_ENC_OVERHEAD);
    /* With compression too: compressed, then encrypted. */
    t->o.compression = MKV_COMP_ZSTD;
    t_reopen(t);
    assert_int_equal(t_write(t, 2, 1, 0, 0, text, 3 * BS), 0);
    assert_int_equal(t_read(t, 2, 1, 0, got, 3 * BS), 0);
    assert_memory_equal(got, text, 3 * BS);
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, 2, 1, 1, seg, sizeof seg, &off, &stored), 0);
    assert_true(stored < BS / 4);
    assert_false(segs_contain(t->sdir, "SECRET-minikv", 13));
    /* Tampered ciphertext with valid CRCs: the tag catches it. */
    assert_int_equal(find_record(t->sdir, WAL_BLOCK, 1, 1, 1, seg, sizeof seg, &off, &stored), 0);
    tamper_ciphertext(seg, off);
    assert_int_equal(t_read(t, 1, 1, BS, got, 10), MKV_ECHECKSUM);
    assert_int_equal(t_read(t, 1, 1, 0, got, BS), 0);
    assert_memory_equal(got, text, BS);
    /* The wrong key, and no key. */
    t->o.enc_key = key2;
    t_reopen(t);
    assert_int_equal(t_read(t, 1, 1, 0, got, 10), MKV_ECHECKSUM);
    t->o.enc_key = NULL;
    t->o.compression = MKV_COMP_NONE;
    t_reopen(t);
    assert_int_equal(t_read(t, 2, 1, 0, got, 10), -ENOKEY);
    t->o.enc_key = key;
    t_reopen(t);
    assert_int_equal(t_read(t, 2, 1, 0, got, 3 * BS), 0);
    assert_memory_equal(got, text, 3 * BS);
    t_close(t);
    free(text);
    free(got);
}
CASE(encryption)

const struct CMUnitTest store_space_tests[] = {
    ENTRIES(compaction_reclaims), ENTRIES(enospc_tmpfs), ENTRIES(reserve_refuses),
    ENTRIES(compression), ENTRIES(encryption),
};
const size_t store_space_count = MKV_ARRAY_SIZE(store_space_tests);
