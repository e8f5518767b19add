/* Unit tests: the metadata leader's advisory lock table (meta/locks.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "meta/locks.h"

#define EOF_ UINT64_MAX
static const int A = 1, B = 2; /* two holders (connections) */

static int lk(struct mkv_locks *l, const int *holder, uint64_t owner, uint8_t type, uint64_t start,
              uint64_t end, uint8_t flags)
{
    struct mkv_lock_req q = {.ino = 7,
                             .owner = owner,
                             .start = start,
                             .end = end,
                             .type = type,
                             .flags = flags,
                             .pid = (uint32_t)owner};
    struct mkv_lock_rep rep;
    return mkv_locks_apply(l, holder, &q, &rep);
}

/* F_GETLK from holder/owner: the conflicting lock's type and range. */
static uint8_t test(struct mkv_locks *l, const int *holder, uint64_t owner, uint8_t type,
                    uint64_t start, uint64_t end, struct mkv_lock_rep *rep)
{
    struct mkv_lock_req q = {
        .ino = 7, .owner = owner, .start = start, .end = end, .type = type, .flags = MKV_LOCK_TEST};
    assert_int_equal(mkv_locks_apply(l, holder, &q, rep), 0);
    return rep->type;
}

static void shared_and_exclusive(void **state)
{
    struct mkv_locks *l = mkv_locks_new(100);
    struct mkv_lock_rep rep;
    (void)state;
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_READ, 0, 99, 0), 0);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_READ, 50, 150, 0), 0); /* reads share */
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_WRITE, 50, 150, 0), -EAGAIN);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_WRITE, 100, 150, 0), 0); /* past A's range */
    assert_int_equal(test(l, &A, 1, MKV_LOCK_WRITE, 120, 130, &rep), MKV_LOCK_WRITE);
    assert_int_equal(rep.start, 100);
    assert_int_equal(rep.end, 150);
    assert_int_equal(rep.pid, 1);
    /* Same holder, another owner (another process on that mount): conflicts. */
    assert_int_equal(lk(l, &A, 2, MKV_LOCK_WRITE, 0, 10, 0), -EAGAIN);
    /* Its own lock never conflicts: an upgrade in place. */
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_WRITE, 0, 10, 0), 0);
    assert_int_equal(test(l, &B, 1, MKV_LOCK_READ, 5, 5, &rep), MKV_LOCK_WRITE);
    assert_int_equal(test(l, &B, 1, MKV_LOCK_READ, 11, 20, &rep), MKV_LOCK_UNLOCK);
    mkv_locks_free(l);
}

static void split_and_merge(void **state)
{
    struct mkv_locks *l = mkv_locks_new(100);
    struct mkv_lock_rep rep;
    (void)state;
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_WRITE, 0, EOF_, 0), 0);
    assert_int_equal(mkv_locks_count(l), 1);
    /* Unlocking the middle splits it in two. */
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_UNLOCK, 100, 199, 0), 0);
    assert_int_equal(mkv_locks_count(l), 2);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_WRITE, 100, 199, 0), 0);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_UNLOCK, 0, EOF_, 0), 0);
    assert_int_equal(test(l, &B, 1, MKV_LOCK_WRITE, 200, 200, &rep), MKV_LOCK_WRITE);
    assert_int_equal(rep.start, 200);
    assert_int_equal(rep.end, EOF_);
    /* Filling the hole merges the three into one. */
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_WRITE, 100, 199, 0), 0);
    assert_int_equal(mkv_locks_count(l), 1);
    /* A read lock inside a write lock of the same owner: three pieces. */
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_READ, 10, 19, 0), 0);
    assert_int_equal(mkv_locks_count(l), 3);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_READ, 10, 19, 0), 0);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_READ, 10, 20, 0), -EAGAIN);
    mkv_locks_free(l);
}

static void flock_apart(void **state)
{
    struct mkv_locks *l = mkv_locks_new(100);
    (void)state;
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_WRITE, 0, EOF_, 0), 0);
    /* flock and fcntl locks do not see each other (as on Linux). */
    assert_int_equal(lk(l, &B, 9, MKV_LOCK_WRITE, 0, 0, MKV_LOCK_FLOCK), 0);
    assert_int_equal(lk(l, &A, 3, MKV_LOCK_READ, 0, 0, MKV_LOCK_FLOCK), -EAGAIN);
    /* flock converts in place: shared now, then another shared joins. */
    assert_int_equal(lk(l, &B, 9, MKV_LOCK_READ, 0, 0, MKV_LOCK_FLOCK), 0);
    assert_int_equal(lk(l, &A, 3, MKV_LOCK_READ, 0, 0, MKV_LOCK_FLOCK), 0);
    assert_int_equal(lk(l, &A, 3, MKV_LOCK_WRITE, 0, 0, MKV_LOCK_FLOCK), -EAGAIN);
    assert_int_equal(lk(l, &B, 9, MKV_LOCK_UNLOCK, 0, 0, MKV_LOCK_FLOCK), 0);
    assert_int_equal(lk(l, &A, 3, MKV_LOCK_WRITE, 0, 0, MKV_LOCK_FLOCK), 0);
    mkv_locks_free(l);
}

static void holder_goes(void **state)
{
    struct mkv_locks *l = mkv_locks_new(100);
    (void)state;
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_WRITE, 0, 9, 0), 0);
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_WRITE, 20, 29, 0), 0);
    assert_int_equal(lk(l, &A, 5, MKV_LOCK_WRITE, 0, 0, MKV_LOCK_FLOCK), 0);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_WRITE, 0, EOF_, 0), -EAGAIN);
    mkv_locks_drop_holder(l, &A);
    assert_int_equal(mkv_locks_count(l), 0);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_WRITE, 0, EOF_, 0), 0);
    assert_int_equal(lk(l, &B, 1, MKV_LOCK_WRITE, 0, 0, MKV_LOCK_FLOCK), 0);
    mkv_locks_free(l);
}

static void limits_and_bad_input(void **state)
{
    struct mkv_locks *l = mkv_locks_new(3);
    (void)state;
    assert_int_equal(lk(l, &A, 1, 3, 0, 9, 0), -EINVAL);
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_READ, 10, 9, 0), -EINVAL);
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_READ, 0, 0, 0), 0);
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_READ, 2, 2, 0), 0);
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_READ, 4, 4, 0), -ENOLCK);
    /* Unlocking is always possible. */
    assert_int_equal(lk(l, &A, 1, MKV_LOCK_UNLOCK, 0, EOF_, 0), 0);
    assert_int_equal(mkv_locks_count(l), 0);
    mkv_locks_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared_and_exclusive), cmocka_unit_test(split_and_merge),
        cmocka_unit_test(flock_apart),          cmocka_unit_test(holder_goes),
        cmocka_unit_test(limits_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
