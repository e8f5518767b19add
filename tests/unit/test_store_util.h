/* Unit tests of the chunk store: shared fixture and helpers.
 *
 * Every case runs twice, with the io_uring backend and with the sync
 * backend (CASE/ENTRIES below); the io_uring run is skipped, visibly, when
 * the kernel does not allow io_uring. Each run gets its own mkdtemp
 * directory and libuv loop, removed by the teardown even when the case
 * fails. */
#ifndef TEST_STORE_UTIL_H
#define TEST_STORE_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include "minikv/wire.h"
#include "store.h"

#define KB 1024u
#define BS MKV_BLOCK_SIZE

struct tctx
{
    uv_loop_t loop;
    int loop_ok;
    int backend;
    char dir[256];  /* the test's temp dir */
    char sdir[600]; /* the store's dir inside it */
    char mnt[512];  /* a tmpfs mounted by the case, unmounted by the teardown */
    struct mkv_store_opts o;
    struct mkv_store *s;
    char err[256];
};

struct t_op
{
    struct mkv_store_req req;
    int done;
    int status;
};

extern int be_uring, be_sync;

int tc_setup(void **state);
int tc_teardown(void **state);
/* Starts a case: skips the io_uring variant when io_uring is unusable. */
struct tctx *tc_begin(void **state);

#define CASE(fn)                                        \
    static void fn##_io_uring(void **st)                \
    {                                                   \
        fn(tc_begin(st));                               \
    }                                                   \
    static void fn##_sync(void **st)                    \
    {                                                   \
        fn(tc_begin(st));                               \
    }
#define ENTRIES(fn)                                                                      \
    cmocka_unit_test_prestate_setup_teardown(fn##_io_uring, tc_setup, tc_teardown, &be_uring), \
        cmocka_unit_test_prestate_setup_teardown(fn##_sync, tc_setup, tc_teardown, &be_sync)

/* Store operations that run the loop until their callback. */
int t_open(struct tctx *t);
void t_open_ok(struct tctx *t);
void t_close(struct tctx *t);
void t_reopen(struct tctx *t);
int t_wait(struct tctx *t, struct t_op *op);
void t_op_cb(struct mkv_store_req *req, int status);
int t_write(struct tctx *t, uint64_t c, uint32_t v, uint32_t base, uint64_t off, const void *buf,
            size_t len);
int t_read(struct tctx *t, uint64_t c, uint32_t v, uint64_t off, void *buf, size_t len);
int t_commit(struct tctx *t, uint64_t c, uint32_t v);
int t_delete(struct tctx *t, uint64_t c, uint32_t v);
int t_compact(struct tctx *t);
int t_scrub(struct tctx *t, uint64_t *bad);
struct mkv_store_stats t_stats(struct tctx *t);
/* State of (c, v) from mkv_store_list_versions; 0 when absent. */
int t_version_state(struct tctx *t, uint64_t c, uint32_t v);

/* Deterministic pseudo-random bytes. */
void fill(uint8_t *buf, size_t len, uint64_t seed);
/* Writes (c, v) with fill(seed) data of len bytes and checks it reads back. */
void check_data(struct tctx *t, uint64_t c, uint32_t v, size_t len, uint64_t seed);
/* Total bytes of the segment files. */
uint64_t seg_bytes(const char *sdir);
/* Path of the segment file with the highest id (the head). */
void last_seg_path(const char *sdir, char *out, size_t len);
int rm_rf(const char *path);
/* Removes the store's index (forces a rebuild from the log at open). */
void drop_index(struct tctx *t);
/* Finds the record of (c, version, block) (a BLOCK record, or with block
 * UINT32_MAX the VERSION record) in the segment files: its file and offset.
 * Returns 0 when found. */
int find_record(const char *sdir, int type, uint64_t c, uint32_t v, uint32_t block, char *path,
                size_t plen, uint64_t *off, uint32_t *stored_len);
void flip_bit(const char *path, uint64_t off, int bit);
/* 1 when any segment file holds the bytes needle[n]. */
int segs_contain(const char *sdir, const void *needle, size_t n);
/* Counts lines of the log file holding every needle. */
int log_count(const char *path, const char *const *needles, int n);

extern const struct CMUnitTest store_basic_tests[];
extern const size_t store_basic_count;
extern const struct CMUnitTest store_fault_tests[];
extern const size_t store_fault_count;
extern const struct CMUnitTest store_space_tests[];
extern const size_t store_space_count;

#endif /* TEST_STORE_UTIL_H */
