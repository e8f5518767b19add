/* Unit tests: vshard placement (meta/place.c), a pure function: what a
 * cluster's map becomes as chunk servers come, die, drain and fill. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "meta/place.h"

static struct mkv_vshard map_a[MKV_VSHARDS], map_b[MKV_VSHARDS];

static void node(struct mkv_place_node *n, uint64_t id, const char *zone)
{
    memset(n, 0, sizeof *n);
    n->id = id;
    n->up = 1;
    snprintf(n->zone, sizeof n->zone, "%s", zone);
}

static unsigned load_of(const struct mkv_vshard *m, uint64_t id)
{
    unsigned k = 0;
    for (unsigned s = 0; s < MKV_VSHARDS; s++) k += mkv_vshard_find(&m[s], id) >= 0;
    return k;
}

static unsigned filling(const struct mkv_vshard *m)
{
    unsigned k = 0;
    for (unsigned s = 0; s < MKV_VSHARDS; s++) k += m[s].filling != 0;
    return k;
}

/* Every vshard has its replicas on distinct nodes (by construction of the
 * lists) and, where zones are given and enough exist, in distinct zones. */
static void assert_zones_distinct(const struct mkv_place_node *nodes, size_t nn,
                                  const struct mkv_vshard *m)
{
    for (unsigned s = 0; s < MKV_VSHARDS; s++)
        for (unsigned i = 0; i < m[s].n; i++)
            for (unsigned j = i + 1; j < m[s].n; j++) {
                const char *zi = "", *zj = "";
                for (size_t k = 0; k < nn; k++) {
                    if (nodes[k].id == m[s].rep[i]) zi = nodes[k].zone;
                    if (nodes[k].id == m[s].rep[j]) zj = nodes[k].zone;
                }
                assert_int_not_equal(m[s].rep[i], m[s].rep[j]);
                if (*zi) assert_string_not_equal(zi, zj);
            }
}

/* Runs placement until it changes nothing, marking what fills as filled
 * in between (what the chunk servers' fills do). Returns the rounds. */
static unsigned settle(const struct mkv_place_node *nodes, size_t nn, unsigned r,
                       struct mkv_vshard *m)
{
    unsigned rounds = 0;
    for (;;) {
        unsigned ch;
        for (unsigned s = 0; s < MKV_VSHARDS; s++) m[s].filling = 0;
        ch = mkv_place(nodes, nn, r, 16, rounds + 2, m, map_b);
        memcpy(m, map_b, sizeof map_b);
        rounds++;
        assert_true(rounds < 200);
        if (ch == 0) return rounds;
    }
}

static void first_map_is_full_and_even(void **state)
{
    struct mkv_place_node n[4];
    (void)state;
    memset(map_a, 0, sizeof map_a);
    for (int i = 0; i < 4; i++) node(&n[i], (uint64_t)i + 1, "");
    assert_int_equal(mkv_place(n, 4, 3, 16, 1, map_a, map_b), MKV_VSHARDS);
    assert_int_equal(filling(map_b), 0); /* a new map holds no data yet */
    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        assert_int_equal(map_b[s].n, 3);
        assert_int_equal(map_b[s].epoch, 1);
    }
    for (uint64_t id = 1; id <= 4; id++) assert_int_equal(load_of(map_b, id), 192);
    /* The first replica (where reads go first) is spread too. */
    {
        unsigned first[5] = {0};
        for (unsigned s = 0; s < MKV_VSHARDS; s++) first[map_b[s].rep[0]]++;
        for (int id = 1; id <= 4; id++) assert_in_range(first[id], 48, 80);
    }
    /* Placing again changes nothing. */
    memcpy(map_a, map_b, sizeof map_a);
    assert_int_equal(mkv_place(n, 4, 3, 16, 2, map_a, map_b), 0);
}

static void fewer_nodes_than_replicas(void **state)
{
    struct mkv_place_node n[2];
    (void)state;
    memset(map_a, 0, sizeof map_a);
    node(&n[0], 1, "");
    node(&n[1], 2, "");
    mkv_place(n, 2, 3, 16, 1, map_a, map_b);
    for (unsigned s = 0; s < MKV_VSHARDS; s++) assert_int_equal(map_b[s].n, 2);
}

static void zones_are_spread(void **state)
{
    struct mkv_place_node n[6];
    const char *z[6] = {"a", "a", "b", "b", "c", "c"};
    (void)state;
    memset(map_a, 0, sizeof map_a);
    for (int i = 0; i < 6; i++) node(&n[i], (uint64_t)i + 1, z[i]);
    mkv_place(n, 6, 3, 16, 1, map_a, map_b);
    assert_zones_distinct(n, 6, map_b);
    for (uint64_t id = 1; id <= 6; id++) assert_int_equal(load_of(map_b, id), 128);
}

static void dead_node_is_replaced(void **state)
{
    struct mkv_place_node n[4];
    (void)state;
    memset(map_a, 0, sizeof map_a);
    for (int i = 0; i < 4; i++) node(&n[i], (uint64_t)i + 1, "");
    mkv_place(n, 4, 3, 16, 1, map_a, map_b);
    memcpy(map_a, map_b, sizeof map_a);
    /* Down, not dead: nothing moves yet. */
    n[3].up = 0;
    assert_int_equal(mkv_place(n, 4, 3, 16, 2, map_a, map_b), 0);
    /* Dead: its 192 vshards get a new, filling replica on the others. */
    n[3].dead = 1;
    assert_int_equal(mkv_place(n, 4, 3, 16, 2, map_a, map_b), 192);
    assert_int_equal(load_of(map_b, 4), 0);
    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        assert_int_equal(map_b[s].n, 3);
        if (map_b[s].epoch == 2) assert_int_not_equal(map_b[s].filling, 0);
    }
    for (uint64_t id = 1; id <= 3; id++) assert_int_equal(load_of(map_b, id), 256);
}

static void last_copy_is_kept(void **state)
{
    struct mkv_place_node n[2];
    (void)state;
    memset(map_a, 0, sizeof map_a);
    node(&n[0], 1, "");
    node(&n[1], 2, "");
    mkv_place(n, 1, 1, 16, 1, map_a, map_b); /* only node 1 at first */
    memcpy(map_a, map_b, sizeof map_a);
    n[0].dead = 1;
    /* Node 2 is added (filling), and node 1 stays: nothing else has the
     * data. */
    mkv_place(n, 2, 1, 16, 2, map_a, map_b);
    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        assert_int_equal(map_b[s].n, 2);
        assert_int_equal(map_b[s].rep[0], 1);
        assert_int_equal(map_b[s].filling, 2);
    }
    /* Once node 2 has filled, node 1 is given up. */
    memcpy(map_a, map_b, sizeof map_a);
    for (unsigned s = 0; s < MKV_VSHARDS; s++) map_a[s].filling = 0;
    mkv_place(n, 2, 1, 16, 3, map_a, map_b);
    for (unsigned s = 0; s < MKV_VSHARDS; s++) {
        assert_int_equal(map_b[s].n, 1);
        assert_int_equal(map_b[s].rep[0], 2);
    }
}

static void new_node_gets_its_share_bounded(void **state)
{
    struct mkv_place_node n[4];
    (void)state;
    memset(map_a, 0, sizeof map_a);
    for (int i = 0; i < 4; i++) node(&n[i], (uint64_t)i + 1, "");
    mkv_place(n, 3, 3, 16, 1, map_a, map_b);
    memcpy(map_a, map_b, sizeof map_a);
    /* A fourth server: at most 16 vshards move at a time, each filling
     * before the old replica is dropped. */
    mkv_place(n, 4, 3, 16, 2, map_a, map_b);
    assert_int_equal(filling(map_b), 16);
    assert_int_equal(load_of(map_b, 4), 16);
    memcpy(map_a, map_b, sizeof map_a);
    settle(n, 4, 3, map_a);
    for (uint64_t id = 1; id <= 4; id++) assert_int_equal(load_of(map_a, id), 192);
    for (unsigned s = 0; s < MKV_VSHARDS; s++) assert_int_equal(map_a[s].n, 3);
}

static void drain_empties_a_node(void **state)
{
    struct mkv_place_node n[4];
    (void)state;
    memset(map_a, 0, sizeof map_a);
    for (int i = 0; i < 4; i++) node(&n[i], (uint64_t)i + 1, "");
    mkv_place(n, 4, 3, 16, 1, map_a, map_b);
    memcpy(map_a, map_b, sizeof map_a);
    n[1].draining = 1;
    mkv_place(n, 4, 3, 16, 2, map_a, map_b);
    /* Its vshards gain a replica first; it keeps them until they fill. */
    assert_int_equal(load_of(map_b, 2), 192);
    memcpy(map_a, map_b, sizeof map_a);
    settle(n, 4, 3, map_a);
    assert_int_equal(load_of(map_a, 2), 0);
    for (uint64_t id = 1; id <= 4; id++)
        if (id != 2) assert_int_equal(load_of(map_a, id), 256);
}

static void records_round_trip(void **state)
{
    struct mkv_vshard v = {.epoch = 9, .n = 3, .rep = {5, 7, 2}, .filling = 4}, w;
    struct mkv_vshard_rec r;
    uint8_t buf[16 * MKV_REPLICAS_MAX];
    (void)state;
    mkv_vshard_to_rec(&v, 17, buf, &r);
    assert_int_equal(r.vshard, 17);
    assert_int_equal(mkv_vshard_from_rec(&r, &w), 0);
    assert_memory_equal(&v, &w, sizeof v);
    /* A repeated id is refused. */
    mkv_put_le64(buf + 8, 5);
    assert_int_equal(mkv_vshard_from_rec(&r, &w), -EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_map_is_full_and_even),
        cmocka_unit_test(fewer_nodes_than_replicas),
        cmocka_unit_test(zones_are_spread),
        cmocka_unit_test(dead_node_is_replaced),
        cmocka_unit_test(last_copy_is_kept),
        cmocka_unit_test(new_node_gets_its_share_bounded),
        cmocka_unit_test(drain_empties_a_node),
        cmocka_unit_test(records_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
