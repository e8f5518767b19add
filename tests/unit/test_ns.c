/* Unit tests: the namespace state machine (meta/ns.h) on real LMDB in
 * temporary directories. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "meta/ns.h"
#include "minikv/err.h"
#include "minikv/names.h"
#include "minikv/vshard.h"
#include "minikv/wire.h"

#define S(x) mkv_slice_str(x)
#define NS_ROOT_INO_TEST 1 /* the namespace root: buckets are its directories */

struct t
{
    char dir[64];
    char nsdir[96];
    struct mkv_ns *ns;
    uint64_t index;
    int64_t now;
    uint64_t chunk;
    struct mkv_buf reply;
    /* When recording, every applied envelope is kept here. */
    int recording;
    struct mkv_buf rec[512];
    int nrec;
};

static void rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void t_open(struct t *t)
{
    struct mkv_ns_opts o = {t->nsdir, 1ull << 30, 1};
    char err[256];
    assert_int_equal(mkv_ns_open(&o, &t->ns, err, sizeof err), 0);
}

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof *t);
    strcpy(t->dir, "/tmp/test_ns.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->nsdir, sizeof t->nsdir, "%s/ns", t->dir);
    t->now = 1700000000000000000ll;
    t->chunk = 1000;
    t_open(t);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    /* No command may fail after writing (there are no nested txns). */
    assert_int_equal(mkv_ns_partial(t->ns), 0);
    mkv_ns_close(t->ns);
    mkv_buf_free(&t->reply);
    for (int i = 0; i < t->nrec; i++) mkv_buf_free(&t->rec[i]);
    rm_rf(t->dir);
    free(t);
    return 0;
}

/* ---- helpers ---- */

static int apply_env(struct t *t, uint16_t type, const struct mkv_msgdesc *d, const void *msg,
                     uint64_t client, uint64_t seq)
{
    struct mkv_buf pl = MKV_BUF_INIT, env = MKV_BUF_INIT;
    struct mkv_raft_cmd cmd;
    int st;
    assert_int_equal(mkv_msg_append(&pl, d, msg), 0);
    cmd.type = type;
    cmd.client_id = client;
    cmd.seq = seq;
    cmd.now_ns = (t->now += 1000);
    cmd.payload = mkv_slice_mem(pl.p, pl.len);
    assert_int_equal(mkv_msg_append(&env, &mkv_desc_raft_cmd, &cmd), 0);
    assert_int_equal(mkv_ns_apply(t->ns, ++t->index, env.p, env.len, &st, &t->reply), 0);
    if (t->recording) {
        assert_true(t->nrec < 512);
        t->rec[t->nrec++] = env;
    } else {
        mkv_buf_free(&env);
    }
    mkv_buf_free(&pl);
    return st;
}

#define APPLY(t, T, name, ...) \
    apply_env(t, MKV_MSG_##T, &mkv_desc_##name, &(struct mkv_##name){__VA_ARGS__}, 0, 0)

static int query_msg(struct t *t, uint16_t type, const struct mkv_msgdesc *d, const void *msg)
{
    struct mkv_buf pl = MKV_BUF_INIT;
    int st;
    assert_int_equal(mkv_msg_append(&pl, d, msg), 0);
    assert_int_equal(mkv_ns_query(t->ns, type, pl.p, pl.len, &st, &t->reply), 0);
    mkv_buf_free(&pl);
    return st;
}

#define QUERY(t, T, name, ...) \
    query_msg(t, MKV_MSG_##T, &mkv_desc_##name, &(struct mkv_##name){__VA_ARGS__})

static void decode_reply(struct t *t, const struct mkv_msgdesc *d, void *msg)
{
    assert_int_equal(mkv_msg_decode(d, t->reply.p, t->reply.len, msg), 0);
}

static int mkbucket(struct t *t, const char *name)
{
    return APPLY(t, BUCKET_CREATE, bucket_create_req, .name = S(name), .replicas = 1);
}

/* Extents for a file of size bytes in n pieces, on fresh chunks. */
static void make_extents(struct t *t, struct mkv_buf *b, uint64_t size, unsigned n)
{
    uint64_t off = 0;
    mkv_buf_reset(b);
    for (unsigned i = 0; i < n && off < size; i++) {
        struct mkv_extent e = {0};
        e.file_off = off;
        e.len = i + 1 == n ? size - off : size / n;
        if (e.len == 0) continue;
        e.chunk_id = ++t->chunk;
        e.version = 1;
        assert_int_equal(mkv_msg_append(b, &mkv_desc_extent, &e), 0);
        off += e.len;
    }
}

static int put_full(struct t *t, const char *bucket, const char *key, uint64_t size,
                    uint32_t flags, const char *etag, const char *if_match, uint64_t *first_chunk)
{
    struct mkv_buf ext = MKV_BUF_INIT;
    int st;
    if (first_chunk) *first_chunk = t->chunk + 1;
    if (size) make_extents(t, &ext, size, 2);
    st = APPLY(t, OBJ_PUT, obj_put_req, .bucket = S(bucket), .key = S(key), .flags = flags,
               .if_match = S(if_match ? if_match : ""), .size = size,
               .etag = S(etag ? etag : "e0"), .content_type = S("text/plain"),
               .extents = mkv_slice_mem(ext.p, ext.len));
    mkv_buf_free(&ext);
    return st;
}

static int put(struct t *t, const char *bucket, const char *key, uint64_t size)
{
    return put_full(t, bucket, key, size, 0, NULL, NULL, NULL);
}

static int del(struct t *t, const char *bucket, const char *key, uint32_t *existed)
{
    struct mkv_obj_delete_rep rep;
    int st = APPLY(t, OBJ_DELETE, obj_delete_req, .bucket = S(bucket), .key = S(key));
    if (st == 0) {
        decode_reply(t, &mkv_desc_obj_delete_rep, &rep);
        if (existed) *existed = rep.existed;
    }
    return st;
}

static int lookup(struct t *t, const char *bucket, const char *key, struct mkv_obj_info *oi)
{
    int st = QUERY(t, OBJ_LOOKUP, obj_lookup_req, .bucket = S(bucket), .key = S(key));
    if (st == 0 && oi) decode_reply(t, &mkv_desc_obj_info, oi);
    return st;
}

static int refcheck1(struct t *t, uint64_t chunk, uint32_t version)
{
    struct mkv_buf ids = MKV_BUF_INIT;
    struct mkv_chunk_ref r = {chunk, version, 0};
    struct mkv_refcheck_rep rep;
    assert_int_equal(mkv_msg_append(&ids, &mkv_desc_chunk_ref, &r), 0);
    assert_int_equal(QUERY(t, REFCHECK, refcheck_req, .ids = mkv_slice_mem(ids.p, ids.len)), 0);
    mkv_buf_free(&ids);
    decode_reply(t, &mkv_desc_refcheck_rep, &rep);
    assert_int_equal(rep.referenced.len, 1);
    return rep.referenced.p[0];
}

/* Whether (chunk, version) is in the garbage table. */
static int in_garbage(struct t *t, uint64_t chunk, uint32_t version)
{
    struct mkv_gc_list_rep rep;
    struct mkv_chunk_ref r;
    struct mkv_slice cur;
    assert_int_equal(QUERY(t, GC_LIST, gc_list_req, .max = 1000), 0);
    decode_reply(t, &mkv_desc_gc_list_rep, &rep);
    cur = rep.ids;
    while (mkv_msg_next(&mkv_desc_chunk_ref, &cur, &r) == 1)
        if (r.chunk_id == chunk && r.version == version) return 1;
    return 0;
}

/* A listing as strings: "k:key" / "p:prefix" joined with '\n', then
 * "|T:next" when truncated. */
static char *list_str(struct t *t, const char *bucket, const char *prefix, const char *delim,
                      const char *after, uint32_t max, uint32_t flags)
{
    struct mkv_obj_list_rep rep;
    struct mkv_list_entry e;
    struct mkv_key_entry ke;
    struct mkv_slice ce, cp;
    struct mkv_buf out = MKV_BUF_INIT;
    int st = QUERY(t, OBJ_LIST, obj_list_req, .bucket = S(bucket), .prefix = S(prefix),
                   .delimiter = S(delim), .start_after = S(after), .max_keys = max,
                   .flags = flags);
    assert_int_equal(st, 0);
    decode_reply(t, &mkv_desc_obj_list_rep, &rep);
    /* Merge the two lists back into one ordered stream. */
    ce = rep.entries;
    cp = rep.prefixes;
    int he = mkv_msg_next(&mkv_desc_list_entry, &ce, &e);
    int hp = mkv_msg_next(&mkv_desc_key_entry, &cp, &ke);
    while (he == 1 || hp == 1) {
        int take_e;
        if (he == 1 && hp == 1) {
            size_t n = MKV_MIN(e.key.len, ke.key.len);
            int c = memcmp(e.key.p, ke.key.p, n);
            take_e = c < 0 || (c == 0 && e.key.len < ke.key.len);
        } else {
            take_e = he == 1;
        }
        if (take_e) {
            mkv_buf_printf(&out, "k:%.*s\n", (int)e.key.len, e.key.p);
            he = mkv_msg_next(&mkv_desc_list_entry, &ce, &e);
        } else {
            mkv_buf_printf(&out, "p:%.*s\n", (int)ke.key.len, ke.key.p);
            hp = mkv_msg_next(&mkv_desc_key_entry, &cp, &ke);
        }
    }
    assert_int_equal(he, 0);
    assert_int_equal(hp, 0);
    if (rep.truncated) mkv_buf_printf(&out, "|T:%.*s", (int)rep.next.len, rep.next.p);
    mkv_buf_puts(&out, "");
    return mkv_buf_steal(&out);
}

/* ---- tests ---- */

static void names(void **state)
{
    (void)state;
/* The namespace uses the rules every front shares (lib/minikv/names.h). */
#define B(s) mkv_check_bucket((s), strlen(s))
#define K(s) mkv_check_key((s), strlen(s))
    assert_int_equal(B("abc"), 0);
    assert_int_equal(B("my-bucket.2024"), 0);
    assert_int_equal(B("1bucket"), 0);
    assert_int_equal(B("ab"), MKV_EBADNAME);
    assert_int_equal(B("Abc"), MKV_EBADNAME);
    assert_int_equal(B("abc_d"), MKV_EBADNAME);
    assert_int_equal(B("-abc"), MKV_EBADNAME);
    assert_int_equal(B("abc-"), MKV_EBADNAME);
    assert_int_equal(B("abc."), MKV_EBADNAME);
    assert_int_equal(B("a..b"), MKV_EBADNAME);
    assert_int_equal(B("192.168.5.4"), MKV_EBADNAME);
    assert_int_equal(B("192.168.5"), 0);
    assert_int_equal(B("xn--abc"), MKV_EBADNAME);
    assert_int_equal(B("abc-s3alias"), MKV_EBADNAME);
    assert_int_equal(B("a.-b"), MKV_EBADNAME);
    assert_int_equal(B("a-.b"), MKV_EBADNAME);
    assert_int_equal(B("sthree-x"), MKV_EBADNAME);
    assert_int_equal(B("abc--x-s3"), MKV_EBADNAME);
    char longb[70];
    memset(longb, 'a', 64);
    longb[64] = 0;
    assert_int_equal(B(longb), MKV_EBADNAME);
    longb[63] = 0;
    assert_int_equal(B(longb), 0);

    assert_int_equal(K("a"), 0);
    assert_int_equal(K("a/b/c.txt"), 0);
    assert_int_equal(K("dir/"), 0);
    assert_int_equal(K("caf\xc3\xa9/x"), 0);
    assert_int_equal(K(""), MKV_EBADNAME);
    assert_int_equal(K("/a"), MKV_EBADNAME);
    assert_int_equal(K("a//b"), MKV_EBADNAME);
    assert_int_equal(K("a/./b"), MKV_EBADNAME);
    assert_int_equal(K("a/.."), MKV_EBADNAME);
    assert_int_equal(K(".."), MKV_EBADNAME);
    assert_int_equal(K("a/.../b"), 0);
    assert_int_equal(K("a//"), MKV_EBADNAME);
    assert_int_equal(K("bad\xc3"), MKV_EBADNAME);
    assert_int_equal(K("bad\xc0\xaf"), MKV_EBADNAME);
    assert_int_equal(K("bad\xed\xa0\x80"), MKV_EBADNAME); /* surrogate */
    assert_int_equal(mkv_check_key("a\0b", 3), MKV_EBADNAME);
    char comp[300];
    memset(comp, 'x', 256);
    comp[256] = 0;
    assert_int_equal(K(comp), -ENAMETOOLONG);
    comp[255] = 0;
    assert_int_equal(K(comp), 0);
    char big[1100];
    for (int i = 0; i < 1025; i++) big[i] = (i % 100 == 99) ? '/' : 'k';
    big[1025] = 0;
    assert_int_equal(K(big), -ENAMETOOLONG); /* S3's KeyTooLongError */
    big[1024] = 0;
    assert_int_equal(K(big), 0);
#undef B
#undef K
}

static void buckets(void **state)
{
    struct t *t = *state;
    struct mkv_bucket_head_rep h;
    struct mkv_bucket_list_rep l;
    struct mkv_bucket_entry be;
    struct mkv_slice cur;
    struct mkv_ns_counters c;
    const char *want[] = {"alpha", "beta", "zeta"};
    int i = 0;

    assert_int_equal(mkbucket(t, "zeta"), 0);
    assert_int_equal(mkbucket(t, "alpha"), 0);
    assert_int_equal(mkbucket(t, "beta"), 0);
    assert_int_equal(mkbucket(t, "beta"), MKV_EBUCKETEXISTS);
    assert_int_equal(mkbucket(t, "Bad_Name"), MKV_EBADNAME);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("beta")), 0);
    decode_reply(t, &mkv_desc_bucket_head_rep, &h);
    assert_int_equal(h.replicas, 1);
    assert_true(h.ino > 1);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("nope")), MKV_ENOBUCKET);
    assert_int_equal(QUERY(t, BUCKET_LIST, bucket_list_req, .flags = 0), 0);
    decode_reply(t, &mkv_desc_bucket_list_rep, &l);
    cur = l.buckets;
    while (mkv_msg_next(&mkv_desc_bucket_entry, &cur, &be) == 1) {
        assert_true(i < 3);
        assert_true(mkv_slice_eq(be.name, want[i]));
        i++;
    }
    assert_int_equal(i, 3);
    mkv_ns_counters(t->ns, &c);
    assert_int_equal(c.buckets, 3);

    /* Not empty: an object, then an upload. */
    assert_int_equal(put(t, "beta", "x/y", 10), 0);
    assert_int_equal(APPLY(t, BUCKET_DELETE, bucket_delete_req, .name = S("beta")),
                     MKV_EBUCKETNOTEMPTY);
    assert_int_equal(del(t, "beta", "x/y", NULL), 0);
    assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("beta"), .key = S("k"),
                           .upload_id = S("u1")),
                     0);
    assert_int_equal(APPLY(t, BUCKET_DELETE, bucket_delete_req, .name = S("beta")),
                     MKV_EBUCKETNOTEMPTY);
    assert_int_equal(APPLY(t, MPU_ABORT, mpu_abort_req, .bucket = S("beta"), .key = S("k"),
                           .upload_id = S("u1")),
                     0);
    assert_int_equal(APPLY(t, BUCKET_DELETE, bucket_delete_req, .name = S("beta")), 0);
    assert_int_equal(APPLY(t, BUCKET_DELETE, bucket_delete_req, .name = S("beta")),
                     MKV_ENOBUCKET);
    assert_int_equal(put(t, "beta", "k", 1), MKV_ENOBUCKET);
    mkv_ns_counters(t->ns, &c);
    assert_int_equal(c.buckets, 2);
    assert_int_equal(c.objects, 0);
    assert_int_equal(c.uploads, 0);
}

static void put_lookup(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    struct mkv_obj_put_rep pr;
    struct mkv_ns_counters c;
    uint64_t first, first2, ino;

    assert_int_equal(mkbucket(t, "bkt"), 0);
    assert_int_equal(put_full(t, "bkt", "a/b/c.txt", 1000, 0, "etag1", NULL, &first), 0);
    decode_reply(t, &mkv_desc_obj_put_rep, &pr);
    assert_int_equal(pr.mtime, t->now);
    ino = pr.ino;
    assert_int_equal(lookup(t, "bkt", "a/b/c.txt", &oi), 0);
    assert_int_equal(oi.ino, ino);
    assert_int_equal(oi.type, MKV_T_FILE);
    assert_int_equal(oi.size, 1000);
    assert_true(mkv_slice_eq(oi.etag, "etag1"));
    assert_true(mkv_slice_eq(oi.content_type, "text/plain"));
    assert_int_equal(oi.extents.len, 2 * 40);
    assert_int_equal(oi.mode, S_IFREG | 0644);
    /* Parents are implicit directories. */
    assert_int_equal(lookup(t, "bkt", "a/", &oi), 0);
    assert_int_equal(oi.type, MKV_T_DIR);
    assert_int_equal(oi.dflags, MKV_DF_IMPLICIT);
    assert_int_equal(lookup(t, "bkt", "a/b", &oi), 0);
    assert_int_equal(oi.type, MKV_T_DIR);
    assert_int_equal(lookup(t, "bkt", "a/b/c.txt/", NULL), MKV_ENOTFOUND);
    assert_int_equal(lookup(t, "bkt", "a/x", NULL), MKV_ENOTFOUND);
    assert_int_equal(lookup(t, "bkt", "a//x", NULL), MKV_EBADNAME);
    assert_int_equal(lookup(t, "nob", "a", NULL), MKV_ENOBUCKET);
    assert_int_equal(refcheck1(t, first, 1), 1);
    assert_int_equal(refcheck1(t, first + 1, 1), 1);
    assert_int_equal(refcheck1(t, first, 2), 0);

    /* Conflicts. */
    assert_int_equal(put(t, "bkt", "a/b", 5), MKV_EKEYCONFLICT);
    assert_int_equal(put(t, "bkt", "a/b/c.txt/d", 5), MKV_EKEYCONFLICT);
    assert_int_equal(put_full(t, "bkt", "a/b/c.txt/", 0, MKV_PUT_DIR, NULL, NULL, NULL),
                     MKV_EKEYCONFLICT);
    assert_int_equal(lookup(t, "bkt", "a/b/c.txt/d", NULL), MKV_ENOTFOUND);
    assert_int_equal(put(t, "bkt", "a//b", 5), MKV_EBADNAME);
    assert_int_equal(put(t, "bkt", "./b", 5), MKV_EBADNAME);

    /* Preconditions. */
    assert_int_equal(put_full(t, "bkt", "a/b/c.txt", 10, MKV_PUT_IF_NONE_MATCH, NULL, NULL,
                              NULL),
                     MKV_EPRECONDITION);
    assert_int_equal(put_full(t, "bkt", "a/b/c.txt", 10, 0, NULL, "\"wrong\"", NULL),
                     MKV_EPRECONDITION);
    assert_int_equal(put_full(t, "bkt", "new", 10, 0, NULL, "etag1", NULL), MKV_EPRECONDITION);
    assert_int_equal(put_full(t, "bkt", "new", 10, MKV_PUT_IF_NONE_MATCH, NULL, NULL, NULL), 0);

    /* Replace: same inode, new data, old extents become garbage. */
    assert_int_equal(put_full(t, "bkt", "a/b/c.txt", 20, 0, "etag2", "\"etag1\"", &first2), 0);
    decode_reply(t, &mkv_desc_obj_put_rep, &pr);
    assert_int_equal(pr.ino, ino);
    assert_int_equal(lookup(t, "bkt", "a/b/c.txt", &oi), 0);
    assert_int_equal(oi.size, 20);
    assert_true(mkv_slice_eq(oi.etag, "etag2"));
    assert_int_equal(refcheck1(t, first, 1), 0);
    assert_int_equal(in_garbage(t, first, 1), 1);
    assert_int_equal(in_garbage(t, first + 1, 1), 1);
    assert_int_equal(refcheck1(t, first2, 1), 1);

    /* KEEP_DATA: metadata only. */
    assert_int_equal(APPLY(t, OBJ_PUT, obj_put_req, .bucket = S("bkt"), .key = S("a/b/c.txt"),
                           .flags = MKV_PUT_KEEP_DATA, .content_type = S("image/png")),
                     0);
    assert_int_equal(lookup(t, "bkt", "a/b/c.txt", &oi), 0);
    assert_int_equal(oi.size, 20);
    assert_true(mkv_slice_eq(oi.etag, "etag2"));
    assert_true(mkv_slice_eq(oi.content_type, "image/png"));
    assert_int_equal(oi.extents.len, 80);
    assert_int_equal(refcheck1(t, first2, 1), 1);
    assert_int_equal(APPLY(t, OBJ_PUT, obj_put_req, .bucket = S("bkt"), .key = S("zz"),
                           .flags = MKV_PUT_KEEP_DATA),
                     MKV_ENOTFOUND);

    /* Bad extents: past the size, overlapping. */
    {
        struct mkv_buf ext = MKV_BUF_INIT;
        make_extents(t, &ext, 100, 2);
        assert_int_equal(APPLY(t, OBJ_PUT, obj_put_req, .bucket = S("bkt"), .key = S("bad"),
                               .size = 50, .extents = mkv_slice_mem(ext.p, ext.len)),
                         -EINVAL);
        mkv_buf_free(&ext);
    }

    /* Directories: explicit, implicit made explicit. */
    assert_int_equal(put_full(t, "bkt", "a/", 0, 0, NULL, NULL, NULL), 0);
    assert_int_equal(lookup(t, "bkt", "a/", &oi), 0);
    assert_int_equal(oi.dflags, 0);
    assert_int_equal(put_full(t, "bkt", "a/", 0, MKV_PUT_IF_NONE_MATCH, NULL, NULL, NULL),
                     MKV_EPRECONDITION);
    assert_int_equal(put_full(t, "bkt", "m/n", 0, MKV_PUT_DIR, NULL, NULL, NULL), 0);
    assert_int_equal(lookup(t, "bkt", "m/n/", &oi), 0);
    assert_int_equal(oi.type, MKV_T_DIR);
    assert_int_equal(oi.dflags, 0);
    assert_int_equal(put(t, "bkt", "m/n", 3), MKV_EKEYCONFLICT);
    assert_int_equal(put(t, "bkt", "dir/", 3), -EINVAL);

    mkv_ns_counters(t->ns, &c);
    /* a/b/c.txt, new, a/, m/n/ */
    assert_int_equal(c.objects, 4);
    assert_int_equal(c.bytes, 30);
    assert_int_equal(c.garbage, 2);
}

static void delete_ops(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    struct mkv_ns_counters c;
    uint32_t existed;
    uint64_t first;

    assert_int_equal(mkbucket(t, "bkt"), 0);
    assert_int_equal(put_full(t, "bkt", "a/b/c/d", 10, 0, NULL, NULL, &first), 0);
    assert_int_equal(put(t, "bkt", "a/x", 10), 0);
    assert_int_equal(del(t, "bkt", "a/b/c/d", &existed), 0);
    assert_int_equal(existed, 1);
    /* Empty implicit parents are gone up to a non-empty one. */
    assert_int_equal(lookup(t, "bkt", "a/b/", NULL), MKV_ENOTFOUND);
    assert_int_equal(lookup(t, "bkt", "a/", NULL), 0);
    assert_int_equal(in_garbage(t, first, 1), 1);
    assert_int_equal(refcheck1(t, first, 1), 0);
    assert_int_equal(del(t, "bkt", "a/b/c/d", &existed), 0);
    assert_int_equal(existed, 0);
    assert_int_equal(del(t, "bkt", "a", &existed), 0); /* a directory, not an object */
    assert_int_equal(existed, 0);
    assert_int_equal(del(t, "bkt", "a/", &existed), 0); /* implicit: no such object */
    assert_int_equal(existed, 0);
    assert_int_equal(del(t, "bkt", "a/x/", &existed), 0); /* a file, not a directory */
    assert_int_equal(existed, 0);
    assert_int_equal(del(t, "bkt", "a//x", NULL), MKV_EBADNAME);
    assert_int_equal(del(t, "nob", "a", NULL), MKV_ENOBUCKET);

    /* An explicit directory stays while it has children, as implicit. */
    assert_int_equal(put_full(t, "bkt", "e/", 0, 0, NULL, NULL, NULL), 0);
    assert_int_equal(put(t, "bkt", "e/f/g", 1), 0);
    assert_int_equal(del(t, "bkt", "e/", &existed), 0);
    assert_int_equal(existed, 1);
    assert_int_equal(lookup(t, "bkt", "e/", &oi), 0);
    assert_int_equal(oi.dflags, MKV_DF_IMPLICIT);
    assert_int_equal(del(t, "bkt", "e/f/g", &existed), 0);
    assert_int_equal(lookup(t, "bkt", "e/", NULL), MKV_ENOTFOUND);
    /* An empty explicit one is removed, and its empty implicit parents. */
    assert_int_equal(put_full(t, "bkt", "p/q/r/", 0, 0, NULL, NULL, NULL), 0);
    assert_int_equal(del(t, "bkt", "p/q/r/", &existed), 0);
    assert_int_equal(existed, 1);
    assert_int_equal(lookup(t, "bkt", "p/", NULL), MKV_ENOTFOUND);

    assert_int_equal(del(t, "bkt", "a/x", &existed), 0);
    mkv_ns_counters(t->ns, &c);
    assert_int_equal(c.objects, 0);
    assert_int_equal(c.bytes, 0);
    assert_int_equal(APPLY(t, BUCKET_DELETE, bucket_delete_req, .name = S("bkt")), 0);
}

static void delete_multi(void **state)
{
    struct t *t = *state;
    struct mkv_buf keys = MKV_BUF_INIT;
    struct mkv_obj_delete_multi_rep rep;
    struct mkv_status_entry se;
    struct mkv_slice cur;
    int64_t want_ok[] = {1, 0, 1}, want_bad[] = {-ECANCELED, MKV_EBADNAME, -ECANCELED};
    const char *ok[] = {"a/1", "nope", "b"}, *bad[] = {"a/2", "x//y", "c"};
    int i;

    assert_int_equal(mkbucket(t, "bkt"), 0);
    assert_int_equal(put(t, "bkt", "a/1", 1), 0);
    assert_int_equal(put(t, "bkt", "a/2", 1), 0);
    assert_int_equal(put(t, "bkt", "b", 1), 0);
    assert_int_equal(put(t, "bkt", "c", 1), 0);
    for (i = 0; i < 3; i++) {
        struct mkv_key_entry ke = {S(ok[i])};
        mkv_msg_append(&keys, &mkv_desc_key_entry, &ke);
    }
    assert_int_equal(APPLY(t, OBJ_DELETE_MULTI, obj_delete_multi_req, .bucket = S("bkt"),
                           .keys = mkv_slice_mem(keys.p, keys.len)),
                     0);
    decode_reply(t, &mkv_desc_obj_delete_multi_rep, &rep);
    cur = rep.results;
    for (i = 0; mkv_msg_next(&mkv_desc_status_entry, &cur, &se) == 1; i++)
        assert_int_equal(se.status, want_ok[i]);
    assert_int_equal(i, 3);
    assert_int_equal(lookup(t, "bkt", "a/1", NULL), MKV_ENOTFOUND);
    assert_int_equal(lookup(t, "bkt", "b", NULL), MKV_ENOTFOUND);

    /* One bad key: nothing is deleted. */
    mkv_buf_reset(&keys);
    for (i = 0; i < 3; i++) {
        struct mkv_key_entry ke = {S(bad[i])};
        mkv_msg_append(&keys, &mkv_desc_key_entry, &ke);
    }
    assert_int_equal(APPLY(t, OBJ_DELETE_MULTI, obj_delete_multi_req, .bucket = S("bkt"),
                           .keys = mkv_slice_mem(keys.p, keys.len)),
                     0);
    decode_reply(t, &mkv_desc_obj_delete_multi_rep, &rep);
    cur = rep.results;
    for (i = 0; mkv_msg_next(&mkv_desc_status_entry, &cur, &se) == 1; i++)
        assert_int_equal(se.status, want_bad[i]);
    assert_int_equal(i, 3);
    assert_int_equal(lookup(t, "bkt", "a/2", NULL), 0);
    assert_int_equal(lookup(t, "bkt", "c", NULL), 0);
    mkv_buf_free(&keys);
}

static void txn_add(struct mkv_buf *b, uint8_t kind, const char *bucket, const char *key,
                    const char *data, uint32_t flags, const char *if_match)
{
    struct mkv_txn_op o = {0};
    o.kind = kind;
    o.bucket = S(bucket);
    o.key = S(key);
    o.flags = flags;
    o.if_match = S(if_match ? if_match : "");
    o.etag = S("\"e1\"");
    o.data = S(data ? data : "");
    assert_int_equal(mkv_msg_append(b, &mkv_desc_txn_op, &o), 0);
}

static void txn_run(struct t *t, struct mkv_buf *ops, struct mkv_obj_txn_rep *rep)
{
    assert_int_equal(APPLY(t, OBJ_TXN, obj_txn_req, .ops = mkv_slice_mem(ops->p, ops->len)), 0);
    decode_reply(t, &mkv_desc_obj_txn_rep, rep);
    mkv_buf_reset(ops);
}

static void transaction(void **state)
{
    struct t *t = *state;
    struct mkv_buf ops = MKV_BUF_INIT;
    struct mkv_obj_txn_rep rep;
    struct mkv_ns_counters before, after;
    struct mkv_obj_info oi;

    assert_int_equal(mkbucket(t, "tx1"), 0);
    assert_int_equal(mkbucket(t, "tx2"), 0);
    assert_int_equal(put(t, "tx1", "old", 5), 0);

    /* Puts in two buckets and a delete, all applied. */
    txn_add(&ops, MKV_TXN_PUT, "tx1", "dir/x", "hello", 0, NULL);
    txn_add(&ops, MKV_TXN_PUT, "tx2", "y", "world!", MKV_PUT_IF_NONE_MATCH, NULL);
    txn_add(&ops, MKV_TXN_DELETE, "tx1", "old", NULL, MKV_TXN_MUST_EXIST, NULL);
    txn_run(t, &ops, &rep);
    assert_int_equal(rep.failed, 0);
    assert_int_equal(lookup(t, "tx1", "dir/x", &oi), 0);
    assert_int_equal(oi.size, 5);
    assert_memory_equal(oi.data.p, "hello", 5);
    assert_int_equal(lookup(t, "tx2", "y", &oi), 0);
    assert_int_equal(oi.size, 6);
    assert_int_equal(lookup(t, "tx1", "old", NULL), MKV_ENOTFOUND);

    /* The third operation fails: the first two leave no trace, in the
     * tables or in the counters. */
    mkv_ns_counters(t->ns, &before);
    txn_add(&ops, MKV_TXN_PUT, "tx1", "new/deep/key", "abc", 0, NULL);
    txn_add(&ops, MKV_TXN_DELETE, "tx1", "dir/x", NULL, 0, NULL);
    txn_add(&ops, MKV_TXN_PUT, "tx2", "y", "again", MKV_PUT_IF_NONE_MATCH, NULL);
    txn_run(t, &ops, &rep);
    assert_int_equal(rep.failed, 3);
    assert_int_equal(rep.status, MKV_EPRECONDITION);
    mkv_ns_counters(t->ns, &after);
    assert_memory_equal(&before, &after, sizeof before);
    assert_int_equal(lookup(t, "tx1", "new/deep/key", NULL), MKV_ENOTFOUND);
    assert_int_equal(lookup(t, "tx1", "new/", NULL), MKV_ENOTFOUND);
    assert_int_equal(lookup(t, "tx1", "dir/x", NULL), 0);

    /* A missing bucket, a delete that must find its key, a matching etag. */
    txn_add(&ops, MKV_TXN_PUT, "nope", "k", "v", 0, NULL);
    txn_run(t, &ops, &rep);
    assert_int_equal(rep.failed, 1);
    assert_int_equal(rep.status, MKV_ENOBUCKET);
    txn_add(&ops, MKV_TXN_DELETE, "tx1", "absent", NULL, MKV_TXN_MUST_EXIST, NULL);
    txn_run(t, &ops, &rep);
    assert_int_equal(rep.failed, 1);
    assert_int_equal(rep.status, MKV_ENOTFOUND);
    txn_add(&ops, MKV_TXN_PUT, "tx2", "y", "third", 0, "\"e1\"");
    txn_add(&ops, MKV_TXN_DELETE, "tx1", "dir/x", NULL, MKV_TXN_MUST_EXIST, NULL);
    txn_run(t, &ops, &rep);
    assert_int_equal(rep.failed, 0);
    assert_int_equal(lookup(t, "tx2", "y", &oi), 0);
    assert_memory_equal(oi.data.p, "third", 5);
    assert_int_equal(lookup(t, "tx1", "dir/x", NULL), MKV_ENOTFOUND);
    assert_int_equal(lookup(t, "tx1", "dir/", NULL), MKV_ENOTFOUND); /* implicit dir gone */

    /* Malformed: no operations, an unknown kind, a bad key. */
    assert_int_equal(APPLY(t, OBJ_TXN, obj_txn_req, .ops = S("")), -EINVAL);
    txn_add(&ops, 7, "tx1", "k", "v", 0, NULL);
    assert_int_equal(APPLY(t, OBJ_TXN, obj_txn_req, .ops = mkv_slice_mem(ops.p, ops.len)), -EINVAL);
    mkv_buf_reset(&ops);
    txn_add(&ops, MKV_TXN_PUT, "tx1", "a//b", "v", 0, NULL);
    assert_int_equal(APPLY(t, OBJ_TXN, obj_txn_req, .ops = mkv_slice_mem(ops.p, ops.len)), -EINVAL);
    mkv_buf_free(&ops);
}

/* The vshard 0's record as the group has it. */
static void vshard0(struct t *t, struct mkv_vshard *v)
{
    struct mkv_vshard_list_rep rep;
    struct mkv_vshard_rec r;
    struct mkv_slice cur;
    assert_int_equal(QUERY(t, VSHARD_LIST, vshard_list_req, .flags = 0), 0);
    decode_reply(t, &mkv_desc_vshard_list_rep, &rep);
    cur = rep.vshards;
    assert_int_equal(mkv_msg_next(&mkv_desc_vshard_rec, &cur, &r), 1);
    assert_int_equal(r.vshard, 0);
    assert_int_equal(mkv_vshard_from_rec(&r, v), 0);
}

static int mark(struct t *t, uint64_t node)
{
    struct mkv_vshard_mark mk = {0, node};
    uint8_t buf[16];
    size_t len;
    assert_int_equal(mkv_msg_encode(&mkv_desc_vshard_mark, &mk, buf, sizeof buf, &len), 0);
    return APPLY(t, VSHARD_MARK, vshard_mark_req, .marks = mkv_slice_mem(buf, len));
}

/* VSHARD_MARK puts a replica back to filling, but never the last filled
 * one (a fill needs a source; a bad copy is still the best there is). */
static void vshard_marks(void **state)
{
    struct t *t = *state;
    struct mkv_vshard v = {0};
    struct mkv_vshard_rec r;
    uint8_t buf[16 * MKV_REPLICAS_MAX];
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            APPLY(t, NODE_REGISTER, node_register_req, .address = S("127.0.0.1:1"), .zone = S("z")),
            0);
    v.n = 3;
    v.rep[0] = 1;
    v.rep[1] = 2;
    v.rep[2] = 3;
    mkv_vshard_to_rec(&v, 0, buf, &r);
    {
        struct mkv_buf recs = MKV_BUF_INIT;
        assert_int_equal(mkv_msg_append(&recs, &mkv_desc_vshard_rec, &r), 0);
        assert_int_equal(APPLY(t, VSHARD_SET, vshard_set_req, .epoch = 0, .replicas = 3,
                               .vshards = mkv_slice_mem(recs.p, recs.len)),
                         0);
        mkv_buf_free(&recs);
    }
    assert_int_equal(mark(t, 2), 0);
    vshard0(t, &v);
    assert_int_equal(v.filling, 0x2);
    assert_int_equal(mark(t, 1), 0);
    vshard0(t, &v);
    assert_int_equal(v.filling, 0x3);
    /* Node 3 holds the only filled copy: it stays filled. */
    assert_int_equal(mark(t, 3), 0);
    vshard0(t, &v);
    assert_int_equal(v.filling, 0x3);
    /* A node that is no replica: nothing changes. */
    assert_int_equal(mark(t, 9), 0);
    vshard0(t, &v);
    assert_int_equal(v.filling, 0x3);
    /* With a map of factor 3, a bucket may ask for 1 to 3 copies. */
    assert_int_equal(APPLY(t, BUCKET_CREATE, bucket_create_req, .name = S("two"), .replicas = 2),
                     0);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("two")), 0);
    {
        struct mkv_bucket_head_rep h;
        decode_reply(t, &mkv_desc_bucket_head_rep, &h);
        assert_int_equal(h.replicas, 2);
    }
    assert_int_equal(APPLY(t, BUCKET_CREATE, bucket_create_req, .name = S("three"), .replicas = 3),
                     0);
    assert_int_equal(APPLY(t, BUCKET_CREATE, bucket_create_req, .name = S("four"), .replicas = 4),
                     -ERANGE);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("four")), MKV_ENOBUCKET);
}

/* Without a vshard map (a single server), a bucket's own factor is 1. */
static void bucket_factor_no_map(void **state)
{
    struct t *t = *state;
    assert_int_equal(APPLY(t, BUCKET_CREATE, bucket_create_req, .name = S("one"), .replicas = 1),
                     0);
    assert_int_equal(APPLY(t, BUCKET_CREATE, bucket_create_req, .name = S("two"), .replicas = 2),
                     -ERANGE);
    assert_int_equal(APPLY(t, BUCKET_CREATE, bucket_create_req, .name = S("dflt")), 0);
}

static void list_basic(void **state)
{
    struct t *t = *state;
    char *s;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    assert_int_equal(put(t, "bkt", "a/b", 1), 0);
    assert_int_equal(put(t, "bkt", "a!", 1), 0);
    assert_int_equal(put(t, "bkt", "a0", 1), 0);
    assert_int_equal(put(t, "bkt", "a/c/d", 1), 0);
    assert_int_equal(put_full(t, "bkt", "d/", 0, 0, NULL, NULL, NULL), 0);
    assert_int_equal(put(t, "bkt", "d/e", 1), 0);
    assert_int_equal(put(t, "bkt", "caf\xc3\xa9", 1), 0);
    assert_int_equal(put(t, "bkt", "cafe", 1), 0);

    s = list_str(t, "bkt", "", "", "", 1000, 0);
    assert_string_equal(s, "k:a!\nk:a/b\nk:a/c/d\nk:a0\nk:cafe\nk:caf\xc3\xa9\nk:d/\nk:d/e\n");
    free(s);
    s = list_str(t, "bkt", "", "/", "", 1000, 0);
    assert_string_equal(s, "k:a!\np:a/\nk:a0\nk:cafe\nk:caf\xc3\xa9\np:d/\n");
    free(s);
    s = list_str(t, "bkt", "d/", "/", "", 1000, 0);
    assert_string_equal(s, "k:d/\nk:d/e\n");
    free(s);
    s = list_str(t, "bkt", "d/", "/", "", 1000, MKV_LIST_NO_DIRS);
    assert_string_equal(s, "k:d/e\n");
    free(s);
    s = list_str(t, "bkt", "a", "/", "", 2, 0);
    assert_string_equal(s, "k:a!\np:a/\n|T:a/");
    free(s);
    /* The next page starts after the common prefix. */
    s = list_str(t, "bkt", "a", "/", "a/", 2, 0);
    assert_string_equal(s, "k:a0\n");
    free(s);
    s = list_str(t, "bkt", "a/", "/", "", 1000, 0);
    assert_string_equal(s, "k:a/b\np:a/c/\n");
    free(s);
    s = list_str(t, "bkt", "", "", "a/b", 3, 0);
    assert_string_equal(s, "k:a/c/d\nk:a0\nk:cafe\n|T:cafe");
    free(s);
    s = list_str(t, "bkt", "", "/", "", 0, 0);
    assert_string_equal(s, "");
    free(s);
    s = list_str(t, "bkt", "zz", "/", "", 10, 0);
    assert_string_equal(s, "");
    free(s);
    s = list_str(t, "bkt", "a/b/", "/", "", 10, 0); /* a/b is a file */
    assert_string_equal(s, "");
    free(s);
    s = list_str(t, "bkt", "", "c", "", 10, 0);
    assert_string_equal(s, "k:a!\nk:a/b\np:a/c\nk:a0\np:c\nk:d/\nk:d/e\n");
    free(s);
    assert_int_equal(QUERY(t, OBJ_LIST, obj_list_req, .bucket = S("zzz"), .max_keys = 5),
                     MKV_ENOBUCKET);
}

/* ---- listing against a brute-force model ---- */

struct model
{
    char *keys[4096];
    int n;
};

static int model_find(struct model *m, const char *k)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], k) == 0) return i;
    return -1;
}

static void model_add(struct model *m, const char *k)
{
    if (model_find(m, k) >= 0) return;
    assert_true(m->n < 4096);
    m->keys[m->n++] = strdup(k);
}

static void model_del(struct model *m, const char *k)
{
    int i = model_find(m, k);
    if (i < 0) return;
    free(m->keys[i]);
    m->keys[i] = m->keys[--m->n];
}

static int starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* Would putting k conflict in the model? */
static int model_conflict(struct model *m, const char *k)
{
    size_t kl = strlen(k);
    int is_dir = kl && k[kl - 1] == '/';
    char path[1100];
    /* An ancestor component is a file. */
    for (size_t i = 0; i < kl; i++) {
        if (k[i] != '/' || i + 1 == kl) continue;
        memcpy(path, k, i);
        path[i] = 0;
        if (model_find(m, path) >= 0) return 1;
    }
    if (is_dir) {
        memcpy(path, k, kl - 1);
        path[kl - 1] = 0;
        return model_find(m, path) >= 0;
    }
    memcpy(path, k, kl);
    path[kl] = '/';
    path[kl + 1] = 0;
    for (int i = 0; i < m->n; i++)
        if (starts(m->keys[i], path)) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *model_list(struct model *m, const char *prefix, const char *delim, const char *after,
                        uint32_t max, int no_dirs)
{
    struct mkv_buf out = MKV_BUF_INIT;
    char *sorted[4096], last_cp[1100] = "", last[1100] = "";
    int have_cp = 0, count = 0, truncated = 0;
    size_t pl = strlen(prefix), dl = strlen(delim);
    if (max > 1000) max = 1000;
    memcpy(sorted, m->keys, sizeof(char *) * (size_t)m->n);
    qsort(sorted, (size_t)m->n, sizeof(char *), cmp_str);
    for (int i = 0; i < m->n && max; i++) {
        const char *k = sorted[i];
        char item[1100];
        int is_p = 0;
        if (!starts(k, prefix)) continue;
        const char *d = dl ? strstr(k + pl, delim) : NULL;
        if (d) {
            size_t n = (size_t)(d - k) + dl;
            memcpy(item, k, n);
            item[n] = 0;
            is_p = 1;
        } else {
            if (no_dirs && k[strlen(k) - 1] == '/') continue;
            strcpy(item, k);
        }
        if (strcmp(item, after) <= 0) continue;
        if (is_p) {
            if (have_cp && strcmp(item, last_cp) == 0) continue;
            strcpy(last_cp, item);
            have_cp = 1;
        }
        if ((uint32_t)count == max) {
            truncated = 1;
            break;
        }
        mkv_buf_printf(&out, "%s:%s\n", is_p ? "p" : "k", item);
        strcpy(last, item);
        count++;
    }
    if (truncated) mkv_buf_printf(&out, "|T:%s", last);
    mkv_buf_puts(&out, "");
    return mkv_buf_steal(&out);
}

static void random_name(char *out, unsigned *seed)
{
    static const char *const parts[] = {"a", "b", "!", "-", "0", "\xc3\xa9", "ab", "a-b"};
    int depth = 1 + rand_r(seed) % 4, len = 0;
    for (int d = 0; d < depth; d++) {
        int nc = 1 + rand_r(seed) % 2;
        for (int c = 0; c < nc; c++) {
            const char *p = parts[rand_r(seed) % MKV_ARRAY_SIZE(parts)];
            memcpy(out + len, p, strlen(p));
            len += (int)strlen(p);
        }
        if (d + 1 < depth) out[len++] = '/';
    }
    if (rand_r(seed) % 8 == 0) out[len++] = '/';
    out[len] = 0;
}

static void random_probe(struct model *m, char *out, unsigned *seed)
{
    int r = rand_r(seed) % 10;
    if (r < 3 || m->n == 0) {
        out[0] = 0;
    } else if (r < 7) {
        const char *k = m->keys[rand_r(seed) % m->n];
        size_t n = (size_t)(rand_r(seed) % (int)(strlen(k) + 1));
        /* Do not cut a UTF-8 sequence: keys are compared as bytes anyway, but
         * a valid prefix is the common case. */
        memcpy(out, k, n);
        out[n] = 0;
    } else {
        random_name(out, seed);
        out[rand_r(seed) % (strlen(out) + 1)] = 0;
    }
}

static void list_random(void **state)
{
    struct t *t = *state;
    struct model *m = calloc(1, sizeof *m);
    static const char *const delims[] = {"", "/", "/", "/", "-", "!", "a/", "\xc3\xa9", "b"};
    static const uint32_t maxes[] = {0, 1, 2, 3, 7, 1000};
    unsigned seed = 12345;
    char key[1100], prefix[1100], after[1100];
    int nonempty = 0, truncs = 0, cps = 0;
    assert_int_equal(mkbucket(t, "rnd"), 0);
    for (int i = 0; i < 2000; i++) {
        int st, conflict;
        random_name(key, &seed);
        if (rand_r(&seed) % 5 == 0 && m->n) {
            /* Delete an existing key. */
            uint32_t existed = 0;
            strcpy(key, m->keys[rand_r(&seed) % m->n]);
            assert_int_equal(del(t, "rnd", key, &existed), 0);
            assert_int_equal(existed, 1);
            model_del(m, key);
            continue;
        }
        conflict = model_conflict(m, key);
        st = put(t, "rnd", key, key[strlen(key) - 1] == '/' ? 0 : 7);
        if (conflict) {
            assert_int_equal(st, MKV_EKEYCONFLICT);
        } else {
            assert_int_equal(st, 0);
            model_add(m, key);
        }
        if (i % 97 == 0) assert_int_equal(mkv_ns_flush(t->ns), 0);
    }
    for (int q = 0; q < 3000; q++) {
        const char *delim = delims[rand_r(&seed) % MKV_ARRAY_SIZE(delims)];
        uint32_t max = maxes[rand_r(&seed) % MKV_ARRAY_SIZE(maxes)];
        int no_dirs = rand_r(&seed) % 5 == 0;
        random_probe(m, prefix, &seed);
        random_probe(m, after, &seed);
        if (rand_r(&seed) % 3 == 0) after[0] = 0;
        char *want = model_list(m, prefix, delim, after, max, no_dirs);
        char *got = list_str(t, "rnd", prefix, delim, after, max, no_dirs ? MKV_LIST_NO_DIRS : 0);
        if (strcmp(want, got) != 0) {
            fprintf(stderr, "prefix='%s' delim='%s' after='%s' max=%u nodirs=%d\nwant:\n%s\ngot:\n%s\n",
                    prefix, delim, after, max, no_dirs, want, got);
            fail();
        }
        nonempty += want[0] != 0 && want[0] != '|';
        truncs += strstr(want, "|T:") != NULL;
        cps += strstr(want, "p:") != NULL;
        free(want);
        free(got);
    }
    print_message("list_random: keys=%d nonempty=%d truncated=%d with-prefixes=%d of 3000\n",
                  m->n, nonempty, truncs, cps);
    /* Paging with next as start_after gives the whole listing. */
    for (int q = 0; q < 200; q++) {
        const char *delim = delims[rand_r(&seed) % MKV_ARRAY_SIZE(delims)];
        struct mkv_buf all = MKV_BUF_INIT;
        random_probe(m, prefix, &seed);
        after[0] = 0;
        for (int page = 0; page < 2000; page++) {
            char *got = list_str(t, "rnd", prefix, delim, after, 1 + (unsigned)q % 4, 0);
            char *bar = strstr(got, "|T:");
            if (bar) *bar = 0;
            mkv_buf_puts(&all, got);
            if (!bar) {
                free(got);
                break;
            }
            strcpy(after, bar + 3);
            free(got);
        }
        mkv_buf_puts(&all, "");
        char *want = model_list(m, prefix, delim, "", 1000, 0);
        assert_string_equal(all.p ? (char *)all.p : "", want);
        free(want);
        mkv_buf_free(&all);
    }
    for (int i = 0; i < m->n; i++) free(m->keys[i]);
    free(m);
}

/* ---- multipart ---- */

static const char *const part_etags[] = {
    "0123456789abcdef0123456789abcdef",
    "fedcba9876543210fedcba9876543210",
    "00112233445566778899aabbccddeeff",
};

static int part_put(struct t *t, const char *id, uint32_t no, uint64_t size, const char *etag,
                    uint64_t *first)
{
    struct mkv_buf ext = MKV_BUF_INIT;
    int st;
    if (first) *first = t->chunk + 1;
    make_extents(t, &ext, size, 2);
    st = APPLY(t, MPU_PART, mpu_part_req, .upload_id = S(id), .part_no = no, .size = size,
               .etag = S(etag), .extents = mkv_slice_mem(ext.p, ext.len));
    mkv_buf_free(&ext);
    return st;
}

static int complete(struct t *t, const char *bucket, const char *key, const char *id,
                    const uint32_t *nos, const char *const *etags, int n)
{
    struct mkv_buf parts = MKV_BUF_INIT;
    int st;
    for (int i = 0; i < n; i++) {
        struct mkv_part_ref pr = {nos[i], S(etags[i])};
        mkv_msg_append(&parts, &mkv_desc_part_ref, &pr);
    }
    st = APPLY(t, MPU_COMPLETE, mpu_complete_req, .bucket = S(bucket), .key = S(key),
               .upload_id = S(id), .parts = mkv_slice_mem(parts.p, parts.len));
    mkv_buf_free(&parts);
    return st;
}

static void multipart(void **state)
{
    struct t *t = *state;
    const uint64_t MiB = 1 << 20;
    struct mkv_mpu_get_rep g;
    struct mkv_mpu_complete_rep cr;
    struct mkv_mpu_list_parts_rep lp;
    struct mkv_part_entry pe;
    struct mkv_obj_info oi;
    struct mkv_slice cur;
    struct mkv_ns_counters c;
    uint64_t p1, p1b, p2, p3;
    uint8_t bin[48], dg[16];
    unsigned dlen;
    char want[64];

    assert_int_equal(mkbucket(t, "mpb"), 0);
    assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("mpb"), .key = S("big/obj"),
                           .upload_id = S("up1"), .content_type = S("video/mp4")),
                     0);
    assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("mpb"), .key = S("big/obj"),
                           .upload_id = S("up1")),
                     -EEXIST);
    assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("nob"), .key = S("k"),
                           .upload_id = S("x")),
                     MKV_ENOBUCKET);
    assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("mpb"), .key = S("a//b"),
                           .upload_id = S("x")),
                     MKV_EBADNAME);
    assert_int_equal(QUERY(t, MPU_GET, mpu_get_req, .upload_id = S("up1")), 0);
    decode_reply(t, &mkv_desc_mpu_get_rep, &g);
    assert_true(mkv_slice_eq(g.key, "big/obj"));
    assert_true(mkv_slice_eq(g.content_type, "video/mp4"));
    assert_int_equal(QUERY(t, MPU_GET, mpu_get_req, .upload_id = S("nope")), MKV_ENOUPLOAD);

    assert_int_equal(part_put(t, "up1", 1, 5 * MiB, "11111111111111111111111111111111", &p1), 0);
    /* Replacing a part: its old chunks are garbage. */
    assert_int_equal(part_put(t, "up1", 1, 5 * MiB, part_etags[0], &p1b), 0);
    assert_int_equal(in_garbage(t, p1, 1), 1);
    assert_int_equal(refcheck1(t, p1b, 1), 1);
    assert_int_equal(part_put(t, "up1", 2, 3 * MiB, part_etags[1], &p2), 0);
    assert_int_equal(part_put(t, "up1", 3, 1 * MiB, part_etags[2], &p3), 0);
    assert_int_equal(part_put(t, "up1", 0, 1, part_etags[2], NULL), -EINVAL);
    assert_int_equal(part_put(t, "up1", 10001, 1, part_etags[2], NULL), -EINVAL);
    assert_int_equal(part_put(t, "nope", 1, 1, part_etags[2], NULL), MKV_ENOUPLOAD);

    /* List parts, two at a time. */
    assert_int_equal(QUERY(t, MPU_LIST_PARTS, mpu_list_parts_req, .upload_id = S("up1"),
                           .max_parts = 2),
                     0);
    decode_reply(t, &mkv_desc_mpu_list_parts_rep, &lp);
    assert_int_equal(lp.truncated, 1);
    assert_int_equal(lp.next_marker, 2);
    cur = lp.parts;
    assert_int_equal(mkv_msg_next(&mkv_desc_part_entry, &cur, &pe), 1);
    assert_int_equal(pe.part_no, 1);
    assert_true(mkv_slice_eq(pe.etag, part_etags[0]));
    assert_int_equal(QUERY(t, MPU_LIST_PARTS, mpu_list_parts_req, .upload_id = S("up1"),
                           .marker = 2, .max_parts = 2),
                     0);
    decode_reply(t, &mkv_desc_mpu_list_parts_rep, &lp);
    assert_int_equal(lp.truncated, 0);
    cur = lp.parts;
    assert_int_equal(mkv_msg_next(&mkv_desc_part_entry, &cur, &pe), 1);
    assert_int_equal(pe.part_no, 3);
    assert_int_equal(mkv_msg_next(&mkv_desc_part_entry, &cur, &pe), 0);

    /* Completion rules. */
    {
        uint32_t nos[] = {2, 1};
        const char *e[] = {part_etags[1], part_etags[0]};
        assert_int_equal(complete(t, "mpb", "big/obj", "up1", nos, e, 2), MKV_EPARTORDER);
    }
    {
        uint32_t nos[] = {1, 1};
        const char *e[] = {part_etags[0], part_etags[0]};
        assert_int_equal(complete(t, "mpb", "big/obj", "up1", nos, e, 2), MKV_EPARTORDER);
    }
    {
        uint32_t nos[] = {1, 4};
        const char *e[] = {part_etags[0], part_etags[0]};
        assert_int_equal(complete(t, "mpb", "big/obj", "up1", nos, e, 2), MKV_EINVALIDPART);
    }
    {
        uint32_t nos[] = {1, 2};
        const char *e[] = {part_etags[0], part_etags[0]};
        assert_int_equal(complete(t, "mpb", "big/obj", "up1", nos, e, 2), MKV_EINVALIDPART);
    }
    {
        uint32_t nos[] = {2, 3};
        const char *e[] = {part_etags[1], part_etags[2]};
        assert_int_equal(complete(t, "mpb", "big/obj", "up1", nos, e, 2), MKV_ETOOSMALL);
    }
    {
        uint32_t nos[] = {1};
        const char *e[] = {part_etags[0]};
        assert_int_equal(complete(t, "mpb", "other", "up1", nos, e, 1), MKV_ENOUPLOAD);
    }
    assert_int_equal(complete(t, "mpb", "big/obj", "up1", NULL, NULL, 0), -EINVAL);
    /* A file where the key's parent must be a directory: conflict, and the
     * upload survives it. */
    assert_int_equal(put(t, "mpb", "big", 1), 0);
    {
        uint32_t nos[] = {1, 3};
        const char *e[] = {"\"0123456789abcdef0123456789abcdef\"", part_etags[2]};
        assert_int_equal(complete(t, "mpb", "big/obj", "up1", nos, e, 2), MKV_EKEYCONFLICT);
    }
    assert_int_equal(del(t, "mpb", "big", NULL), 0);
    {
        /* Parts 1 and 3 (quoted ETag accepted); part 2 is left out. */
        uint32_t nos[] = {1, 3};
        const char *e[] = {"\"0123456789abcdef0123456789abcdef\"", part_etags[2]};
        assert_int_equal(complete(t, "mpb", "big/obj", "up1", nos, e, 2), 0);
    }
    decode_reply(t, &mkv_desc_mpu_complete_rep, &cr);
    /* Expected ETag: "<MD5 of the binary part MD5s>-2". */
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(part_etags[0] + 2 * i, "%2x", &v);
        bin[i] = (uint8_t)v;
        sscanf(part_etags[2] + 2 * i, "%2x", &v);
        bin[16 + i] = (uint8_t)v;
    }
    assert_int_equal(EVP_Digest(bin, 32, dg, &dlen, EVP_md5(), NULL), 1);
    /* Quoted, as S3 sends it. */
    want[0] = '"';
    for (int i = 0; i < 16; i++) sprintf(want + 1 + 2 * i, "%02x", dg[i]);
    strcat(want, "-2\"");
    assert_true(mkv_slice_eq(cr.etag, want));
    assert_int_equal(cr.size, 6 * MiB);
    assert_int_equal(lookup(t, "mpb", "big/obj", &oi), 0);
    assert_true(mkv_slice_eq(oi.etag, want));
    assert_true(mkv_slice_eq(oi.content_type, "video/mp4"));
    assert_int_equal(oi.size, 6 * MiB);
    {
        /* Extents: part 1's, then part 3's shifted by 5 MiB. */
        struct mkv_extent e;
        struct mkv_slice ec = oi.extents;
        uint64_t want_off[] = {0, 5 * MiB / 2, 5 * MiB, 5 * MiB + MiB / 2};
        uint64_t want_chunk[] = {p1b, p1b + 1, p3, p3 + 1};
        for (int i = 0; i < 4; i++) {
            assert_int_equal(mkv_msg_next(&mkv_desc_extent, &ec, &e), 1);
            assert_int_equal(e.file_off, want_off[i]);
            assert_int_equal(e.chunk_id, want_chunk[i]);
        }
        assert_int_equal(mkv_msg_next(&mkv_desc_extent, &ec, &e), 0);
    }
    assert_int_equal(refcheck1(t, p1b, 1), 1);
    assert_int_equal(refcheck1(t, p3 + 1, 1), 1);
    assert_int_equal(refcheck1(t, p2, 1), 0);
    assert_int_equal(in_garbage(t, p2, 1), 1);
    assert_int_equal(in_garbage(t, p2 + 1, 1), 1);
    assert_int_equal(in_garbage(t, p1b, 1), 0);
    assert_int_equal(QUERY(t, MPU_GET, mpu_get_req, .upload_id = S("up1")), MKV_ENOUPLOAD);

    /* Abort: every part becomes garbage. */
    assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("mpb"), .key = S("k2"),
                           .upload_id = S("up2")),
                     0);
    assert_int_equal(part_put(t, "up2", 7, 100, part_etags[0], &p1), 0);
    assert_int_equal(APPLY(t, MPU_ABORT, mpu_abort_req, .bucket = S("mpb"), .key = S("k2"),
                           .upload_id = S("up2")),
                     0);
    assert_int_equal(in_garbage(t, p1, 1), 1);
    assert_int_equal(APPLY(t, MPU_ABORT, mpu_abort_req, .bucket = S("mpb"), .key = S("k2"),
                           .upload_id = S("up2")),
                     MKV_ENOUPLOAD);
    mkv_ns_counters(t->ns, &c);
    assert_int_equal(c.uploads, 0);
    assert_int_equal(c.objects, 1);
    assert_int_equal(c.bytes, 6 * MiB);
}

static char *uploads_str(struct t *t, const char *prefix, const char *km, const char *im,
                         uint32_t max)
{
    struct mkv_mpu_list_uploads_rep rep;
    struct mkv_upload_entry ue;
    struct mkv_slice cur;
    struct mkv_buf out = MKV_BUF_INIT;
    assert_int_equal(QUERY(t, MPU_LIST_UPLOADS, mpu_list_uploads_req, .bucket = S("upb"),
                           .prefix = S(prefix), .key_marker = S(km), .upload_id_marker = S(im),
                           .max_uploads = max),
                     0);
    decode_reply(t, &mkv_desc_mpu_list_uploads_rep, &rep);
    cur = rep.uploads;
    while (mkv_msg_next(&mkv_desc_upload_entry, &cur, &ue) == 1) {
        /* Long keys print as their length and last byte. */
        if (ue.key.len > 40)
            mkv_buf_printf(&out, "L%u%c/%.*s ", ue.key.len, ue.key.p[ue.key.len - 1],
                           (int)ue.upload_id.len, ue.upload_id.p);
        else
            mkv_buf_printf(&out, "%.*s/%.*s ", (int)ue.key.len, ue.key.p, (int)ue.upload_id.len,
                           ue.upload_id.p);
    }
    if (rep.truncated)
        mkv_buf_printf(&out, "|%u/%.*s", rep.next_key.len, (int)rep.next_upload_id.len,
                       rep.next_upload_id.p);
    mkv_buf_puts(&out, "");
    return mkv_buf_steal(&out);
}

/* "qqq.../qqq..." with a '/' every 100 bytes, ending in last. */
static void long_key(char *k, int len, char last)
{
    for (int i = 0; i < len; i++) k[i] = i % 100 == 99 ? '/' : 'q';
    k[len - 1] = last;
    k[len] = 0;
}

static void multipart_list(void **state)
{
    struct t *t = *state;
    char lk[600], *s;
    static const struct
    {
        char last;
        int len;
        const char *id;
    } longs[] = {{'b', 500, "z1"}, {'a', 500, "z2"}, {'a', 500, "a9"}, {'c', 480, "m"}};
    assert_int_equal(mkbucket(t, "upb"), 0);
    const char *keys[] = {"b", "a", "a", "a/x", "c"}, *ids[] = {"u2", "u3", "u1", "u4", "u5"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("upb"),
                               .key = S(keys[i]), .upload_id = S(ids[i])),
                         0);
    s = uploads_str(t, "", "", "", 0);
    assert_string_equal(s, "a/u1 a/u3 a/x/u4 b/u2 c/u5 ");
    free(s);
    s = uploads_str(t, "", "", "", 2);
    assert_string_equal(s, "a/u1 a/u3 |1/u3");
    free(s);
    s = uploads_str(t, "", "a", "u1", 2);
    assert_string_equal(s, "a/u3 a/x/u4 |3/u4");
    free(s);
    s = uploads_str(t, "", "a", "", 10);
    assert_string_equal(s, "a/x/u4 b/u2 c/u5 ");
    free(s);
    s = uploads_str(t, "a/", "", "", 10);
    assert_string_equal(s, "a/x/u4 ");
    free(s);
    /* Keys longer than the index prefix, sharing it: sorted by key, id. */
    for (unsigned i = 0; i < MKV_ARRAY_SIZE(longs); i++) {
        long_key(lk, longs[i].len, longs[i].last);
        assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("upb"), .key = S(lk),
                               .upload_id = S(longs[i].id)),
                         0);
    }
    s = uploads_str(t, "q", "", "", 10);
    assert_string_equal(s, "L480c/m L500a/a9 L500a/z2 L500b/z1 ");
    free(s);
    long_key(lk, 500, 'a');
    s = uploads_str(t, "q", lk, "a9", 2);
    assert_string_equal(s, "L500a/z2 L500b/z1 ");
    free(s);
    s = uploads_str(t, "q", "", "", 2);
    assert_string_equal(s, "L480c/m L500a/a9 |500/a9");
    free(s);
}

/* ---- chunk ids, garbage, keys, sessions ---- */

static void alloc_gc(void **state)
{
    struct t *t = *state;
    struct mkv_meta_alloc_rep ar;
    struct mkv_gc_done_rep gd;
    struct mkv_buf ids = MKV_BUF_INIT;
    struct mkv_ns_counters c;
    uint64_t first;

    assert_int_equal(APPLY(t, META_ALLOC, meta_alloc_req, .count = 10), 0);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, 1); /* id 0 is never handed out */
    assert_int_equal(ar.count, 10);
    assert_int_equal(APPLY(t, META_ALLOC, meta_alloc_req, .count = 5), 0);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, 11);
    assert_int_equal(APPLY(t, META_ALLOC, meta_alloc_req, .count = 0), -EINVAL);
    assert_int_equal(APPLY(t, META_ALLOC, meta_alloc_req, .count = 1), 0);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, 16);

    assert_int_equal(mkbucket(t, "gc1"), 0);
    assert_int_equal(put_full(t, "gc1", "f", 100, 0, NULL, NULL, &first), 0);
    assert_int_equal(del(t, "gc1", "f", NULL), 0);
    mkv_ns_counters(t->ns, &c);
    assert_int_equal(c.garbage, 2);
    /* Two references to one pair: only garbage when both are gone. */
    {
        struct mkv_buf ext = MKV_BUF_INIT;
        struct mkv_extent e = {0, 10, 777, 3, 0, 0};
        mkv_msg_append(&ext, &mkv_desc_extent, &e);
        e.file_off = 10;
        e.chunk_off = 10;
        mkv_msg_append(&ext, &mkv_desc_extent, &e);
        assert_int_equal(APPLY(t, OBJ_PUT, obj_put_req, .bucket = S("gc1"), .key = S("x"),
                               .size = 20, .extents = mkv_slice_mem(ext.p, ext.len)),
                         0);
        assert_int_equal(APPLY(t, OBJ_PUT, obj_put_req, .bucket = S("gc1"), .key = S("y"),
                               .size = 20, .extents = mkv_slice_mem(ext.p, ext.len)),
                         0);
        mkv_buf_free(&ext);
    }
    assert_int_equal(refcheck1(t, 777, 3), 1);
    assert_int_equal(del(t, "gc1", "x", NULL), 0);
    assert_int_equal(refcheck1(t, 777, 3), 1);
    assert_int_equal(in_garbage(t, 777, 3), 0);
    assert_int_equal(del(t, "gc1", "y", NULL), 0);
    assert_int_equal(refcheck1(t, 777, 3), 0);
    assert_int_equal(in_garbage(t, 777, 3), 1);

    /* gc_done removes what it names; unknown pairs do not count. */
    {
        struct mkv_chunk_ref r[] = {{first, 1, 0}, {first + 1, 1, 0}, {999999, 1, 0}};
        for (int i = 0; i < 3; i++) mkv_msg_append(&ids, &mkv_desc_chunk_ref, &r[i]);
    }
    assert_int_equal(APPLY(t, GC_DONE, gc_done_req, .ids = mkv_slice_mem(ids.p, ids.len)), 0);
    decode_reply(t, &mkv_desc_gc_done_rep, &gd);
    assert_int_equal(gd.count, 2);
    assert_int_equal(in_garbage(t, first, 1), 0);
    mkv_ns_counters(t->ns, &c);
    assert_int_equal(c.garbage, 1);
    mkv_buf_free(&ids);
}

static void access_keys(void **state)
{
    struct t *t = *state;
    struct mkv_key_put_rep kp;
    struct mkv_key_get_rep kg;
    struct mkv_key_list_rep kl;
    struct mkv_key_info ki;
    struct mkv_slice cur;
    int64_t created;
    int n = 0;
    static const uint8_t sealed[] = {0, 1, 2, 255, 254, 0};

    assert_int_equal(APPLY(t, KEY_PUT, key_put_req, .access_key = S("AKIB"),
                           .sealed_secret = mkv_slice_mem(sealed, sizeof sealed),
                           .flags = MKV_KEYF_ADMIN),
                     0);
    decode_reply(t, &mkv_desc_key_put_rep, &kp);
    created = kp.created;
    assert_int_equal(APPLY(t, KEY_PUT, key_put_req, .access_key = S("AKIA"),
                           .sealed_secret = mkv_slice_mem(sealed, 3)),
                     0);
    assert_int_equal(QUERY(t, KEY_GET, key_get_req, .access_key = S("AKIB")), 0);
    decode_reply(t, &mkv_desc_key_get_rep, &kg);
    assert_int_equal(kg.sealed_secret.len, sizeof sealed);
    assert_memory_equal(kg.sealed_secret.p, sealed, sizeof sealed);
    assert_int_equal(kg.flags, MKV_KEYF_ADMIN);
    assert_int_equal(kg.created, created);
    /* Replacing keeps the creation time. */
    assert_int_equal(APPLY(t, KEY_PUT, key_put_req, .access_key = S("AKIB"),
                           .sealed_secret = mkv_slice_mem(sealed, 2),
                           .flags = MKV_KEYF_DISABLED),
                     0);
    decode_reply(t, &mkv_desc_key_put_rep, &kp);
    assert_int_equal(kp.created, created);
    assert_int_equal(QUERY(t, KEY_LIST, key_list_req, .flags = 0), 0);
    decode_reply(t, &mkv_desc_key_list_rep, &kl);
    cur = kl.keys;
    while (mkv_msg_next(&mkv_desc_key_info, &cur, &ki) == 1) {
        assert_true(mkv_slice_eq(ki.access_key, n == 0 ? "AKIA" : "AKIB"));
        n++;
    }
    assert_int_equal(n, 2);
    assert_int_equal(APPLY(t, KEY_DELETE, key_delete_req, .access_key = S("AKIB")), 0);
    assert_int_equal(APPLY(t, KEY_DELETE, key_delete_req, .access_key = S("AKIB")), MKV_ENOKEY);
    assert_int_equal(QUERY(t, KEY_GET, key_get_req, .access_key = S("AKIB")), MKV_ENOKEY);
}

static void sessions(void **state)
{
    struct t *t = *state;
    struct mkv_meta_alloc_rep ar;
    struct mkv_meta_alloc_req req = {.count = 5, .flags = 0};
    uint64_t first;
    int st;

    st = apply_env(t, MKV_MSG_META_ALLOC, &mkv_desc_meta_alloc_req, &req, 42, 1);
    assert_int_equal(st, 0);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    first = ar.first;
    /* The same (client, seq) again, as a new log entry: remembered. */
    st = apply_env(t, MKV_MSG_META_ALLOC, &mkv_desc_meta_alloc_req, &req, 42, 1);
    assert_int_equal(st, 0);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, first);
    /* A new seq applies. */
    st = apply_env(t, MKV_MSG_META_ALLOC, &mkv_desc_meta_alloc_req, &req, 42, 2);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, first + 5);
    /* An older seq is refused. */
    st = apply_env(t, MKV_MSG_META_ALLOC, &mkv_desc_meta_alloc_req, &req, 42, 1);
    assert_int_equal(st, -EALREADY);
    /* Another client is independent; client 0 has no session. */
    st = apply_env(t, MKV_MSG_META_ALLOC, &mkv_desc_meta_alloc_req, &req, 7, 1);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, first + 10);
    /* Failures are remembered too. */
    struct mkv_bucket_create_req bc = {S("BAD"), 1, 0};
    assert_int_equal(apply_env(t, MKV_MSG_BUCKET_CREATE, &mkv_desc_bucket_create_req, &bc, 7, 2),
                     MKV_EBADNAME);
    bc.name = S("good");
    assert_int_equal(apply_env(t, MKV_MSG_BUCKET_CREATE, &mkv_desc_bucket_create_req, &bc, 7, 2),
                     MKV_EBADNAME);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("good")), MKV_ENOBUCKET);
    /* Sessions survive a restart. */
    mkv_ns_close(t->ns);
    t_open(t);
    st = apply_env(t, MKV_MSG_META_ALLOC, &mkv_desc_meta_alloc_req, &req, 42, 2);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, first + 5);
}

static void replay_and_errors(void **state)
{
    struct t *t = *state;
    struct mkv_buf env = MKV_BUF_INIT, pl = MKV_BUF_INIT;
    struct mkv_bucket_create_req bc = {S("rep"), 1, 0};
    struct mkv_raft_cmd cmd = {MKV_MSG_BUCKET_CREATE, 0, 0, 5, {0}};
    int st;

    mkv_msg_append(&pl, &mkv_desc_bucket_create_req, &bc);
    cmd.payload = mkv_slice_mem(pl.p, pl.len);
    mkv_msg_append(&env, &mkv_desc_raft_cmd, &cmd);
    assert_int_equal(mkv_ns_apply(t->ns, 10, env.p, env.len, &st, &t->reply), 0);
    assert_int_equal(st, 0);
    assert_int_equal(mkv_ns_applied(t->ns), 10);
    /* Replayed entries (index <= applied) are skipped, not re-applied. */
    assert_int_equal(mkv_ns_apply(t->ns, 10, env.p, env.len, &st, &t->reply), 0);
    assert_int_equal(st, 0);
    assert_int_equal(t->reply.len, 0);
    assert_int_equal(mkv_ns_apply(t->ns, 3, env.p, env.len, &st, &t->reply), 0);
    assert_int_equal(mkv_ns_skipped(t->ns), 2);
    /* The next index applies (and fails: the bucket exists). */
    assert_int_equal(mkv_ns_apply(t->ns, 11, env.p, env.len, &st, &t->reply), 0);
    assert_int_equal(st, MKV_EBUCKETEXISTS);
    /* A garbled envelope or payload, an unknown type: statuses, not
     * failures of the state machine, and the index still advances. */
    assert_int_equal(mkv_ns_apply(t->ns, 12, "xx", 2, &st, &t->reply), 0);
    assert_int_equal(st, -EPROTO);
    cmd.payload = mkv_slice_mem("\x05", 1);
    mkv_buf_reset(&env);
    mkv_msg_append(&env, &mkv_desc_raft_cmd, &cmd);
    assert_int_equal(mkv_ns_apply(t->ns, 13, env.p, env.len, &st, &t->reply), 0);
    assert_int_equal(st, -EPROTO);
    cmd.type = 0x7777;
    mkv_buf_reset(&env);
    mkv_msg_append(&env, &mkv_desc_raft_cmd, &cmd);
    assert_int_equal(mkv_ns_apply(t->ns, 14, env.p, env.len, &st, &t->reply), 0);
    assert_int_equal(st, -ENOTSUP);
    assert_int_equal(mkv_ns_applied(t->ns), 14);
    assert_int_equal(mkv_ns_query(t->ns, 0x7777, NULL, 0, &st, &t->reply), 0);
    assert_int_equal(st, -ENOTSUP);
    assert_int_equal(mkv_ns_query(t->ns, MKV_MSG_OBJ_LIST, "\x01", 1, &st, &t->reply), 0);
    assert_int_equal(st, -EPROTO);
    /* Reads see the pending batch. */
    assert_int_equal(mkv_ns_dirty(t->ns), 1);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("rep")), 0);
    assert_int_equal(mkv_ns_flush(t->ns), 0);
    assert_int_equal(mkv_ns_dirty(t->ns), 0);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("rep")), 0);
    mkv_buf_free(&env);
    mkv_buf_free(&pl);
}

/* A canonical dump of everything the queries can see. */
static char *dump(struct t *t)
{
    struct mkv_buf out = MKV_BUF_INIT;
    struct mkv_bucket_list_rep bl;
    struct mkv_bucket_entry be;
    struct mkv_ns_counters c;
    struct mkv_slice cur;
    char names[64][70];
    int nb = 0;
    mkv_ns_counters(t->ns, &c);
    mkv_buf_printf(&out, "applied=%llu b=%llu o=%llu bytes=%llu u=%llu g=%llu\n",
                   (unsigned long long)mkv_ns_applied(t->ns), (unsigned long long)c.buckets,
                   (unsigned long long)c.objects, (unsigned long long)c.bytes,
                   (unsigned long long)c.uploads, (unsigned long long)c.garbage);
    assert_int_equal(QUERY(t, BUCKET_LIST, bucket_list_req, .flags = 0), 0);
    mkv_buf_append(&out, t->reply.p, t->reply.len);
    decode_reply(t, &mkv_desc_bucket_list_rep, &bl);
    cur = bl.buckets;
    while (mkv_msg_next(&mkv_desc_bucket_entry, &cur, &be) == 1 && nb < 64) {
        snprintf(names[nb++], 70, "%.*s", (int)be.name.len, be.name.p);
    }
    for (int i = 0; i < nb; i++) {
        char after[1100] = "";
        for (;;) {
            struct mkv_obj_list_rep lr;
            struct mkv_list_entry le;
            static char keys[1000][1100];
            int nk = 0;
            assert_int_equal(QUERY(t, OBJ_LIST, obj_list_req, .bucket = S(names[i]),
                                   .start_after = S(after), .max_keys = 1000),
                             0);
            mkv_buf_append(&out, t->reply.p, t->reply.len);
            decode_reply(t, &mkv_desc_obj_list_rep, &lr);
            cur = lr.entries;
            while (mkv_msg_next(&mkv_desc_list_entry, &cur, &le) == 1)
                snprintf(keys[nk++], 1100, "%.*s", (int)le.key.len, le.key.p);
            int trunc = lr.truncated;
            if (trunc) snprintf(after, sizeof after, "%.*s", (int)lr.next.len, lr.next.p);
            for (int k = 0; k < nk; k++) {
                assert_int_equal(lookup(t, names[i], keys[k], NULL), 0);
                mkv_buf_append(&out, t->reply.p, t->reply.len);
            }
            if (!trunc) break;
        }
        assert_int_equal(QUERY(t, MPU_LIST_UPLOADS, mpu_list_uploads_req, .bucket = S(names[i])),
                         0);
        mkv_buf_append(&out, t->reply.p, t->reply.len);
    }
    assert_int_equal(QUERY(t, GC_LIST, gc_list_req, .max = 1000), 0);
    mkv_buf_append(&out, t->reply.p, t->reply.len);
    assert_int_equal(QUERY(t, KEY_LIST, key_list_req, .flags = 0), 0);
    mkv_buf_append(&out, t->reply.p, t->reply.len);
    /* Binary bytes to hex so that strings compare whole. */
    struct mkv_buf hex = MKV_BUF_INIT;
    for (size_t i = 0; i < out.len; i++) mkv_buf_printf(&hex, "%02x", out.p[i]);
    mkv_buf_free(&out);
    mkv_buf_puts(&hex, "");
    return mkv_buf_steal(&hex);
}

static void populate(struct t *t, int n)
{
    char key[64];
    assert_int_equal(mkbucket(t, "snap"), 0);
    assert_int_equal(mkbucket(t, "other"), 0);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "d%d/f%d", i % 7, i);
        assert_int_equal(put(t, i % 3 ? "snap" : "other", key, (uint64_t)i + 1), 0);
        if (i % 5 == 0) assert_int_equal(del(t, "snap", key, NULL), 0);
    }
    assert_int_equal(APPLY(t, MPU_CREATE, mpu_create_req, .bucket = S("snap"), .key = S("mk"),
                           .upload_id = S("U")),
                     0);
    assert_int_equal(APPLY(t, KEY_PUT, key_put_req, .access_key = S("K1"),
                           .sealed_secret = S("sealed")),
                     0);
}

static void read_file(const char *path, struct mkv_buf *b)
{
    char buf[65536];
    ssize_t n;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    while ((n = read(fd, buf, sizeof buf)) > 0) mkv_buf_append(b, buf, (size_t)n);
    close(fd);
}

static void snapshot_restore(void **state)
{
    struct t *t = *state;
    struct t t2;
    struct mkv_buf snap = MKV_BUF_INIT;
    uint8_t hdr[MKV_NS_SNAP_HDR];
    uint64_t applied, ilen;
    char path[160], *d1, *d2, *d3;
    int replaced;

    populate(t, 300);
    assert_int_equal(mkv_ns_snapshot_prepare(t->ns, &applied), 0);
    assert_int_equal(applied, t->index);
    snprintf(path, sizeof path, "%s/snap.mdb", t->dir);
    assert_int_equal(mkv_ns_snapshot_copy(t->ns, path, hdr, &ilen), 0);
    assert_int_equal(mkv_ns_snapshot_copy(t->ns, path, hdr, &ilen), -EEXIST);
    assert_int_equal(mkv_get_le64(hdr + 8), applied);
    mkv_buf_append(&snap, hdr, sizeof hdr);
    read_file(path, &snap);
    assert_int_equal(snap.len, MKV_NS_SNAP_HDR + ilen);

    /* A fresh node restores it and sees the same state. */
    memset(&t2, 0, sizeof t2);
    strcpy(t2.dir, t->dir);
    snprintf(t2.nsdir, sizeof t2.nsdir, "%s/ns2", t->dir);
    t2.now = t->now;
    t2.chunk = t->chunk;
    t_open(&t2);
    assert_int_equal(mkv_ns_restore(t2.ns, snap.p, 10, &replaced), -EINVAL);
    assert_int_equal(mkv_ns_restore(t2.ns, snap.p, snap.len, &replaced), 0);
    assert_int_equal(replaced, 1);
    t2.index = mkv_ns_applied(t2.ns);
    d1 = dump(t);
    d2 = dump(&t2);
    assert_string_equal(d1, d2);
    free(d2);
    /* Both apply the same next entries and stay equal. */
    assert_int_equal(put(t, "snap", "after/x", 3), 0);
    assert_int_equal(put(&t2, "snap", "after/x", 3), 0);
    free(d1);
    d1 = dump(t);
    d2 = dump(&t2);
    assert_string_equal(d1, d2);
    /* An older snapshot does not roll a node back. */
    assert_int_equal(mkv_ns_restore(t2.ns, snap.p, snap.len, &replaced), 0);
    assert_int_equal(replaced, 0);
    d3 = dump(&t2);
    assert_string_equal(d2, d3);
    free(d3);
    /* Reopen: the same state from disk. */
    mkv_ns_close(t2.ns);
    t_open(&t2);
    d3 = dump(&t2);
    assert_string_equal(d2, d3);
    free(d1);
    free(d2);
    free(d3);
    mkv_ns_close(t2.ns);
    mkv_buf_free(&t2.reply);
    mkv_buf_free(&snap);
}

/* A process that dies with a batch open loses it; replaying the log (every
 * entry, as Raft may) rebuilds the same state, skipping what was committed. */
static void crash_replay(void **state)
{
    struct t *t = *state;
    const int K = 40;
    pid_t pid;
    int wst, st;
    char *want, *got;

    /* The reference: the log applied and committed in this process. */
    t->recording = 1;
    populate(t, 60);
    t->recording = 0;
    assert_true(t->nrec > K + 5);
    want = dump(t);
    mkv_ns_close(t->ns);
    rm_rf(t->nsdir);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        t_open(t);
        for (int i = 0; i < K + 5; i++) {
            if (mkv_ns_apply(t->ns, (uint64_t)i + 1, t->rec[i].p, t->rec[i].len, &st, &t->reply))
                _exit(2);
            if (i + 1 == K && mkv_ns_flush(t->ns)) _exit(3);
        }
        _exit(0); /* entries K+1..K+5 are in an open batch: lost */
    }
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    t_open(t);
    assert_int_equal(mkv_ns_applied(t->ns), K);
    for (int i = 0; i < t->nrec; i++)
        assert_int_equal(
            mkv_ns_apply(t->ns, (uint64_t)i + 1, t->rec[i].p, t->rec[i].len, &st, &t->reply), 0);
    assert_int_equal(mkv_ns_skipped(t->ns), K);
    got = dump(t);
    assert_string_equal(got, want);
    free(got);
    free(want);
}

/* Small objects kept in the inode: stored and returned with the lookup,
 * never referencing chunks; replacing either way moves chunk references
 * to garbage correctly. */
static int put_inline(struct t *t, const char *bucket, const char *key, const char *data,
                      uint32_t flags)
{
    return APPLY(t, OBJ_PUT, obj_put_req, .bucket = S(bucket), .key = S(key), .flags = flags,
                 .if_match = S(""), .size = strlen(data), .etag = S("ei"),
                 .content_type = S("text/plain"), .data = S(data));
}

static void inline_data(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    struct mkv_ns_counters c;
    struct mkv_buf ext = MKV_BUF_INIT;
    uint64_t first;
    char big[MKV_INLINE_MAX + 2];

    assert_int_equal(mkbucket(t, "bkt"), 0);
    assert_int_equal(put_inline(t, "bkt", "small/a.txt", "hello inline", 0), 0);
    assert_int_equal(lookup(t, "bkt", "small/a.txt", &oi), 0);
    assert_int_equal(oi.size, 12);
    assert_int_equal(oi.extents.len, 0);
    assert_int_equal(oi.data.len, 12);
    assert_memory_equal(oi.data.p, "hello inline", 12);
    mkv_ns_counters(t->ns, &c);
    assert_int_equal(c.bytes, 12);

    /* Chunks -> inline: the old chunks become garbage. */
    assert_int_equal(put_full(t, "bkt", "obj", 1000, 0, "e1", NULL, &first), 0);
    assert_int_equal(refcheck1(t, first, 1), 1);
    assert_int_equal(put_inline(t, "bkt", "obj", "now small", 0), 0);
    assert_int_equal(refcheck1(t, first, 1), 0);
    assert_true(in_garbage(t, first, 1));
    assert_true(in_garbage(t, first + 1, 1));
    assert_int_equal(lookup(t, "bkt", "obj", &oi), 0);
    assert_int_equal(oi.size, 9);
    assert_int_equal(oi.extents.len, 0);
    assert_memory_equal(oi.data.p, "now small", 9);

    /* Metadata-only replace keeps the inline bytes. */
    assert_int_equal(APPLY(t, OBJ_PUT, obj_put_req, .bucket = S("bkt"), .key = S("obj"),
                           .flags = MKV_PUT_KEEP_DATA, .etag = S(""), .content_type = S("a/b")),
                     0);
    assert_int_equal(lookup(t, "bkt", "obj", &oi), 0);
    assert_int_equal(oi.size, 9);
    assert_memory_equal(oi.data.p, "now small", 9);
    assert_true(mkv_slice_eq(oi.etag, "ei"));
    assert_true(mkv_slice_eq(oi.content_type, "a/b"));

    /* Inline -> chunks: no inline bytes are left behind. */
    assert_int_equal(put_full(t, "bkt", "obj", 2000, 0, "e2", NULL, &first), 0);
    assert_int_equal(lookup(t, "bkt", "obj", &oi), 0);
    assert_int_equal(oi.data.len, 0);
    assert_int_equal(oi.size, 2000);
    assert_int_equal(refcheck1(t, first, 1), 1);

    /* Refused: data with extents, a size that is not the data's, data on
     * a directory, keeping data that is not there. (Data over
     * MKV_INLINE_MAX cannot even be encoded: the codec's bound.) */
    make_extents(t, &ext, 5, 1);
    assert_int_equal(APPLY(t, OBJ_PUT, obj_put_req, .bucket = S("bkt"), .key = S("x"),
                           .size = 5, .etag = S("e"), .data = S("12345"),
                           .extents = mkv_slice_mem(ext.p, ext.len)),
                     -EINVAL);
    assert_int_equal(APPLY(t, OBJ_PUT, obj_put_req, .bucket = S("bkt"), .key = S("x"),
                           .size = 4, .etag = S("e"), .data = S("12345")),
                     -EINVAL);
    assert_int_equal(put_inline(t, "bkt", "d/", "12345", 0), -EINVAL);
    assert_int_equal(put_inline(t, "bkt", "d", "12345", MKV_PUT_DIR), -EINVAL);
    assert_int_equal(put_inline(t, "bkt", "x", "12345", MKV_PUT_KEEP_DATA), -EINVAL);
    assert_int_equal(lookup(t, "bkt", "x", NULL), MKV_ENOTFOUND);
    memset(big, 'b', sizeof big - 1);
    big[MKV_INLINE_MAX] = '\0';
    assert_int_equal(put_inline(t, "bkt", "x", big, 0), 0);
    assert_int_equal(lookup(t, "bkt", "x", &oi), 0);
    assert_int_equal(oi.data.len, MKV_INLINE_MAX);
    mkv_buf_free(&ext);
}


/* ---- the POSIX front (meta/ns_ino.c) ---- */

static uint64_t bucket_ino(struct t *t, const char *name)
{
    struct mkv_bucket_head_rep r;
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S(name)), 0);
    decode_reply(t, &mkv_desc_bucket_head_rep, &r);
    return r.ino;
}

/* Makes an entry; returns its inode (0 on error, with *st set). */
static uint64_t imake(struct t *t, uint64_t parent, const char *name, int type, uint32_t mode,
                      const char *target, int *st)
{
    struct mkv_obj_info oi;
    int rv = APPLY(t, INO_MAKE, ino_make_req, .parent = parent, .name = S(name), .type = (uint8_t)type,
                   .mode = mode, .uid = 1000, .gid = 100, .symlink = S(target ? target : ""));
    if (st) *st = rv;
    if (rv) return 0;
    decode_reply(t, &mkv_desc_obj_info, &oi);
    return oi.ino;
}

/* META_ALLOC with MKV_ALLOC_INODES skips inode numbers (what a leader
 * that answers early does at start): the next entry is made past them. */
static void inode_skip(void **state)
{
    struct t *t = *state;
    struct mkv_meta_alloc_rep ar;
    uint64_t b, a1, a2;
    assert_int_equal(mkbucket(t, "skip"), 0);
    b = bucket_ino(t, "skip");
    a1 = imake(t, b, "a1", MKV_T_FILE, 0644, NULL, NULL);
    assert_true(a1 != 0);
    assert_int_equal(APPLY(t, META_ALLOC, meta_alloc_req, .count = 1000, .flags = MKV_ALLOC_INODES),
                     0);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, a1 + 1);
    assert_int_equal(ar.count, 1000);
    a2 = imake(t, b, "a2", MKV_T_FILE, 0644, NULL, NULL);
    assert_int_equal(a2, a1 + 1001);
    /* Chunk ids are not touched by it. */
    assert_int_equal(APPLY(t, META_ALLOC, meta_alloc_req, .count = 1), 0);
    decode_reply(t, &mkv_desc_meta_alloc_rep, &ar);
    assert_int_equal(ar.first, 1);
}

static int ilookup(struct t *t, uint64_t parent, const char *name, struct mkv_obj_info *oi)
{
    int st = QUERY(t, INO_LOOKUP, ino_lookup_req, .parent = parent, .name = S(name));
    if (st == 0 && oi) decode_reply(t, &mkv_desc_obj_info, oi);
    return st;
}

static int igetattr(struct t *t, uint64_t ino, struct mkv_obj_info *oi)
{
    int st = QUERY(t, INO_GETATTR, ino_getattr_req, .ino = ino);
    if (st == 0 && oi) decode_reply(t, &mkv_desc_obj_info, oi);
    return st;
}

static int iunlink(struct t *t, uint64_t parent, const char *name, uint32_t flags)
{
    return APPLY(t, INO_UNLINK, ino_unlink_req, .parent = parent, .name = S(name), .flags = flags);
}

static int irename(struct t *t, uint64_t p1, const char *n1, uint64_t p2, const char *n2,
                   uint32_t flags)
{
    return APPLY(t, INO_RENAME, ino_rename_req, .parent = p1, .name = S(n1), .newparent = p2,
                 .newname = S(n2), .flags = flags);
}

/* "name:type" of a directory, joined with ' ', read max entries at a time. */
static char *ireaddir(struct t *t, uint64_t dir, uint32_t max)
{
    struct mkv_buf out = MKV_BUF_INIT;
    uint64_t cookie = 0;
    for (;;) {
        struct mkv_ino_readdir_rep rep;
        struct mkv_dirent d;
        struct mkv_slice cur;
        assert_int_equal(QUERY(t, INO_READDIR, ino_readdir_req, .ino = dir, .cookie = cookie,
                               .max = max, .flags = MKV_INO_PLUS),
                         0);
        decode_reply(t, &mkv_desc_ino_readdir_rep, &rep);
        cur = rep.entries;
        while (mkv_msg_next(&mkv_desc_dirent, &cur, &d) == 1) {
            struct mkv_obj_info a;
            assert_int_equal(mkv_msg_decode(&mkv_desc_obj_info, d.attr.p, d.attr.len, &a), 0);
            assert_int_equal(a.ino, d.ino);
            mkv_buf_printf(&out, "%s%.*s:%u", out.len ? " " : "", (int)d.name.len, d.name.p, d.type);
            assert_true(d.cookie > cookie);
            cookie = d.cookie;
        }
        if (rep.eof) break;
    }
    mkv_buf_puts(&out, "");
    return mkv_buf_steal(&out);
}

static void ext1(struct mkv_buf *b, uint64_t file_off, uint64_t len, uint64_t chunk,
                 uint64_t chunk_off)
{
    struct mkv_extent e = {file_off, len, chunk, 1, 0, chunk_off};
    assert_int_equal(mkv_msg_append(b, &mkv_desc_extent, &e), 0);
}

static char *extents_str(struct t *t, uint64_t ino)
{
    struct mkv_obj_info oi;
    struct mkv_buf out = MKV_BUF_INIT;
    struct mkv_slice cur;
    struct mkv_extent e;
    assert_int_equal(igetattr(t, ino, &oi), 0);
    cur = oi.extents;
    while (mkv_msg_next(&mkv_desc_extent, &cur, &e) == 1)
        mkv_buf_printf(&out, "%s%llu+%llu@%llu:%llu", out.len ? " " : "",
                       (unsigned long long)e.file_off, (unsigned long long)e.len,
                       (unsigned long long)e.chunk_id, (unsigned long long)e.chunk_off);
    mkv_buf_puts(&out, "");
    return mkv_buf_steal(&out);
}

static void posix_entries(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    uint64_t b, f, d, sub, sl, fifo;
    char *s;
    int st;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    b = bucket_ino(t, "bkt");
    f = imake(t, b, "f", MKV_T_FILE, 0640, NULL, &st);
    assert_int_equal(st, 0);
    assert_int_equal(ilookup(t, b, "f", &oi), 0);
    assert_int_equal(oi.ino, f);
    assert_int_equal(oi.mode, S_IFREG | 0640);
    assert_int_equal(oi.uid, 1000);
    assert_int_equal(oi.gid, 100);
    assert_int_equal(oi.nlink, 1);
    /* The same file through the S3 front. */
    assert_int_equal(lookup(t, "bkt", "f", &oi), 0);
    assert_int_equal(oi.ino, f);
    assert_true(mkv_slice_eq(oi.etag, "\"d41d8cd98f00b204e9800998ecf8427e\""));
    d = imake(t, b, "d", MKV_T_DIR, 0750, NULL, &st);
    assert_int_equal(st, 0);
    assert_int_equal(lookup(t, "bkt", "d/", &oi), 0); /* an explicit directory: "d/" */
    assert_int_equal(oi.dflags, 0);
    sub = imake(t, d, "sub", MKV_T_DIR, 0755, NULL, &st);
    sl = imake(t, b, "s", MKV_T_SYMLINK, 0, "d/sub", &st);
    assert_int_equal(st, 0);
    assert_int_equal(igetattr(t, sl, &oi), 0);
    assert_int_equal(oi.mode & S_IFMT, S_IFLNK);
    assert_true(mkv_slice_eq(oi.symlink, "d/sub"));
    assert_int_equal(oi.size, 5);
    fifo = imake(t, b, "p", MKV_T_FIFO, 0600, NULL, &st);
    assert_int_equal(st, 0);
    (void)fifo;
    /* Errors. */
    imake(t, b, "f", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(st, -EEXIST);
    imake(t, b, "d", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(st, -EEXIST);
    imake(t, f, "x", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(st, -ENOTDIR);
    imake(t, b, "a/b", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(st, -EINVAL);
    imake(t, b, "..", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(st, -EINVAL);
    {
        /* 255 bytes is a name; longer ones the codec does not even carry
         * (the client answers ENAMETOOLONG itself). */
        char name[300];
        memset(name, 'n', 255);
        name[255] = '\0';
        assert_true(imake(t, b, name, MKV_T_FILE, 0644, NULL, &st) != 0);
        assert_int_equal(iunlink(t, b, name, 0), 0);
    }
    imake(t, 999999, "x", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(st, -ENOENT);
    imake(t, NS_ROOT_INO_TEST, "x", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(st, -EPERM); /* the root holds buckets only */
    assert_int_equal(ilookup(t, b, "nope", NULL), -ENOENT);
    assert_int_equal(ilookup(t, f, "x", NULL), -ENOTDIR);
    /* Listing: every entry once, in key order, with attributes; paged. */
    s = ireaddir(t, b, 1000);
    assert_string_equal(s, "f:1 d:2 s:3 p:4"); /* creation (cookie) order */
    free(s);
    s = ireaddir(t, b, 1);
    assert_string_equal(s, "f:1 d:2 s:3 p:4"); /* creation (cookie) order */
    free(s);
    /* S3 lists files and directory markers, not symlinks or FIFOs. */
    s = list_str(t, "bkt", "", "", "", 100, 0);
    assert_string_equal(s, "k:d/\nk:d/sub/\nk:f\n");
    free(s);
    /* rmdir / unlink errors. */
    assert_int_equal(iunlink(t, b, "d", MKV_UNLINK_DIR), -ENOTEMPTY);
    assert_int_equal(iunlink(t, b, "f", MKV_UNLINK_DIR), -ENOTDIR);
    assert_int_equal(iunlink(t, b, "d", 0), -EISDIR);
    assert_int_equal(iunlink(t, b, "zz", 0), -ENOENT);
    assert_int_equal(iunlink(t, d, "sub", MKV_UNLINK_DIR), 0);
    assert_int_equal(igetattr(t, sub, NULL), -ENOENT);
    assert_int_equal(iunlink(t, b, "d", MKV_UNLINK_DIR), 0);
    assert_int_equal(lookup(t, "bkt", "d/", NULL), MKV_ENOTFOUND);
    assert_int_equal(iunlink(t, b, "s", 0), 0);
    assert_int_equal(iunlink(t, b, "p", 0), 0);
    /* Buckets from the root: mkdir makes one, rmdir removes an empty one. */
    assert_int_equal(imake(t, NS_ROOT_INO_TEST, "made-by-mkdir", MKV_T_DIR, 0755, NULL, &st) != 0, 1);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("made-by-mkdir")), 0);
    imake(t, NS_ROOT_INO_TEST, "Bad_Name", MKV_T_DIR, 0755, NULL, &st);
    assert_int_equal(st, -EINVAL);
    assert_int_equal(iunlink(t, NS_ROOT_INO_TEST, "bkt", MKV_UNLINK_DIR), -ENOTEMPTY);
    assert_int_equal(iunlink(t, NS_ROOT_INO_TEST, "made-by-mkdir", MKV_UNLINK_DIR), 0);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("made-by-mkdir")),
                     MKV_ENOBUCKET);
}

static void posix_links_orphans(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    struct mkv_buf eb = MKV_BUF_INIT;
    struct mkv_ino_unlink_rep ur;
    uint64_t b, f;
    int st;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    b = bucket_ino(t, "bkt");
    f = imake(t, b, "f", MKV_T_FILE, 0644, NULL, &st);
    ext1(&eb, 0, 1000, 77, 0);
    assert_int_equal(APPLY(t, INO_WRITE, ino_write_req, .ino = f, .size = 1000,
                           .extents = mkv_slice_mem(eb.p, eb.len), .etag = S("\"e\"")),
                     0);
    assert_int_equal(refcheck1(t, 77, 1), 1);
    /* Hard link: two names, one inode. */
    assert_int_equal(APPLY(t, INO_LINK, ino_link_req, .ino = f, .newparent = b, .newname = S("g")), 0);
    decode_reply(t, &mkv_desc_obj_info, &oi);
    assert_int_equal(oi.nlink, 2);
    assert_int_equal(APPLY(t, INO_LINK, ino_link_req, .ino = f, .newparent = b, .newname = S("g")),
                     -EEXIST);
    assert_int_equal(APPLY(t, INO_LINK, ino_link_req, .ino = b, .newparent = b, .newname = S("h")),
                     -EPERM);
    assert_int_equal(lookup(t, "bkt", "g", &oi), 0);
    assert_int_equal(oi.ino, f);
    assert_int_equal(iunlink(t, b, "f", 0), 0);
    decode_reply(t, &mkv_desc_ino_unlink_rep, &ur);
    assert_int_equal(ur.nlink, 1);
    assert_int_equal(refcheck1(t, 77, 1), 1);
    /* Unlinked while open: kept as an orphan until dropped. */
    assert_int_equal(iunlink(t, b, "g", MKV_UNLINK_KEEP), 0);
    decode_reply(t, &mkv_desc_ino_unlink_rep, &ur);
    assert_int_equal(ur.nlink, 0);
    assert_int_equal(ilookup(t, b, "g", NULL), -ENOENT);
    assert_int_equal(lookup(t, "bkt", "g", NULL), MKV_ENOTFOUND);
    assert_int_equal(igetattr(t, f, &oi), 0);
    assert_int_equal(oi.nlink, 0);
    assert_int_equal(oi.size, 1000);
    assert_int_equal(refcheck1(t, 77, 1), 1);
    assert_int_equal(APPLY(t, INO_LINK, ino_link_req, .ino = f, .newparent = b, .newname = S("z")),
                     -ENOENT);
    assert_int_equal(APPLY(t, ORPHAN_DROP, orphan_drop_req, .ino = f), 0);
    assert_int_equal(igetattr(t, f, NULL), -ENOENT);
    assert_int_equal(refcheck1(t, 77, 1), 0);
    assert_true(in_garbage(t, 77, 1));
    assert_int_equal(APPLY(t, ORPHAN_DROP, orphan_drop_req, .ino = f), 0); /* twice: nothing */
    mkv_buf_free(&eb);
}

static void posix_write_setattr(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    struct mkv_buf eb = MKV_BUF_INIT;
    uint64_t b, f;
    char *s;
    int st;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    b = bucket_ino(t, "bkt");
    f = imake(t, b, "f", MKV_T_FILE, 0644, NULL, &st);
    /* Splicing: new extents cut the old ones. */
    ext1(&eb, 0, 100, 10, 0);
    assert_int_equal(APPLY(t, INO_WRITE, ino_write_req, .ino = f, .size = 100,
                           .extents = mkv_slice_mem(eb.p, eb.len)),
                     0);
    mkv_buf_reset(&eb);
    ext1(&eb, 50, 10, 11, 65536);
    ext1(&eb, 90, 30, 12, 0);
    assert_int_equal(APPLY(t, INO_WRITE, ino_write_req, .ino = f, .size = 120,
                           .extents = mkv_slice_mem(eb.p, eb.len), .etag = S("")),
                     0);
    s = extents_str(t, f);
    assert_string_equal(s, "0+50@10:0 50+10@11:65536 60+30@10:60 90+30@12:0");
    free(s);
    assert_int_equal(refcheck1(t, 10, 1), 1);
    /* Truncate down and up: extents cut, size kept. */
    assert_int_equal(APPLY(t, INO_SETATTR, ino_setattr_req, .ino = f, .valid = MKV_SET_SIZE,
                           .size = 55),
                     0);
    decode_reply(t, &mkv_desc_obj_info, &oi);
    assert_int_equal(oi.size, 55);
    s = extents_str(t, f);
    assert_string_equal(s, "0+50@10:0 50+5@11:65536");
    free(s);
    assert_int_equal(refcheck1(t, 12, 1), 0);
    assert_true(in_garbage(t, 12, 1));
    assert_int_equal(APPLY(t, INO_SETATTR, ino_setattr_req, .ino = f, .valid = MKV_SET_SIZE,
                           .size = 1ull << 33),
                     0);
    assert_int_equal(igetattr(t, f, &oi), 0);
    assert_int_equal(oi.size, 1ull << 33);
    /* Inline content, and extents over it only as a whole rewrite. */
    assert_int_equal(APPLY(t, INO_WRITE, ino_write_req, .ino = f, .size = 5,
                           .flags = MKV_WRITE_INLINE, .data = S("hello"), .etag = S("\"x\"")),
                     0);
    assert_true(in_garbage(t, 10, 1));
    assert_int_equal(igetattr(t, f, &oi), 0);
    assert_true(mkv_slice_eq(oi.data, "hello"));
    assert_int_equal(oi.extents.len, 0);
    assert_int_equal(APPLY(t, INO_WRITE, ino_write_req, .ino = f, .size = 100,
                           .extents = mkv_slice_mem(eb.p, eb.len)),
                     -EINVAL);
    assert_int_equal(APPLY(t, INO_SETATTR, ino_setattr_req, .ino = f, .valid = MKV_SET_SIZE,
                           .size = 3),
                     0);
    assert_int_equal(igetattr(t, f, &oi), 0);
    assert_true(mkv_slice_eq(oi.data, "hel"));
    assert_int_equal(APPLY(t, INO_WRITE, ino_write_req, .ino = f, .size = 120,
                           .flags = MKV_WRITE_REPLACE, .extents = mkv_slice_mem(eb.p, eb.len)),
                     0);
    assert_int_equal(igetattr(t, f, &oi), 0);
    assert_int_equal(oi.data.len, 0);
    s = extents_str(t, f);
    assert_string_equal(s, "50+10@11:65536 90+30@12:0");
    free(s);
    /* Attributes. */
    assert_int_equal(APPLY(t, INO_SETATTR, ino_setattr_req, .ino = f,
                           .valid = MKV_SET_MODE | MKV_SET_UID | MKV_SET_GID | MKV_SET_ATIME |
                                    MKV_SET_MTIME,
                           .mode = 04711, .uid = 7, .gid = 8, .atime = 123, .mtime = 456),
                     0);
    assert_int_equal(igetattr(t, f, &oi), 0);
    assert_int_equal(oi.mode, S_IFREG | 04711);
    assert_int_equal(oi.uid, 7);
    assert_int_equal(oi.gid, 8);
    assert_int_equal(oi.atime, 123);
    assert_int_equal(oi.mtime, 456);
    assert_int_equal(oi.ctime, t->now);
    assert_int_equal(APPLY(t, INO_SETATTR, ino_setattr_req, .ino = b, .valid = MKV_SET_SIZE), -EISDIR);
    /* Extended attributes. */
    assert_int_equal(APPLY(t, XATTR_SET, xattr_set_req, .ino = f, .name = S("user.a"),
                           .value = S("1"), .flags = MKV_XATTR_CREATE),
                     0);
    assert_int_equal(APPLY(t, XATTR_SET, xattr_set_req, .ino = f, .name = S("user.a"),
                           .value = S("2"), .flags = MKV_XATTR_CREATE),
                     -EEXIST);
    assert_int_equal(APPLY(t, XATTR_SET, xattr_set_req, .ino = f, .name = S("user.b"),
                           .value = S("2"), .flags = MKV_XATTR_REPLACE),
                     -ENODATA);
    assert_int_equal(APPLY(t, XATTR_SET, xattr_set_req, .ino = f, .name = S("security.c"),
                           .value = S("")),
                     0);
    {
        struct mkv_xattr_get_rep g;
        struct mkv_xattr_list_rep l;
        struct mkv_key_entry ke;
        struct mkv_slice cur;
        int n = 0;
        assert_int_equal(QUERY(t, XATTR_GET, xattr_get_req, .ino = f, .name = S("user.a")), 0);
        decode_reply(t, &mkv_desc_xattr_get_rep, &g);
        assert_true(mkv_slice_eq(g.value, "1"));
        assert_int_equal(QUERY(t, XATTR_GET, xattr_get_req, .ino = f, .name = S("user.zz")), -ENODATA);
        assert_int_equal(QUERY(t, XATTR_LIST, xattr_list_req, .ino = f), 0);
        decode_reply(t, &mkv_desc_xattr_list_rep, &l);
        cur = l.names;
        while (mkv_msg_next(&mkv_desc_key_entry, &cur, &ke) == 1) n++;
        assert_int_equal(n, 2);
    }
    assert_int_equal(APPLY(t, XATTR_REMOVE, xattr_remove_req, .ino = f, .name = S("user.a")), 0);
    assert_int_equal(APPLY(t, XATTR_REMOVE, xattr_remove_req, .ino = f, .name = S("user.a")),
                     -ENODATA);
    /* They go with the inode. */
    assert_int_equal(iunlink(t, b, "f", 0), 0);
    assert_int_equal(QUERY(t, XATTR_LIST, xattr_list_req, .ino = f), -ENOENT);
    mkv_buf_free(&eb);
}

/* A write with no ETag (out of order) shows a placeholder that is not an
 * MD5; INO_ETAG names the content, but only the generation it was
 * computed from. */
static void posix_etag(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    struct mkv_ino_etag_rep er;
    struct mkv_buf eb = MKV_BUF_INIT;
    uint64_t b, f, gen;
    char want[64];
    int st;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    b = bucket_ino(t, "bkt");
    f = imake(t, b, "f", MKV_T_FILE, 0644, NULL, &st);
    ext1(&eb, 0, 1000, 77, 0);
    assert_int_equal(APPLY(t, INO_WRITE, ino_write_req, .ino = f, .size = 1000,
                           .extents = mkv_slice_mem(eb.p, eb.len)),
                     0);
    decode_reply(t, &mkv_desc_obj_info, &oi);
    gen = oi.generation;
    snprintf(want, sizeof want, "\"%016llx%016llx-1\"", (unsigned long long)f,
             (unsigned long long)gen);
    assert_int_equal(lookup(t, "bkt", "f", &oi), 0);
    assert_int_equal(oi.etag.len, strlen(want));
    assert_memory_equal(oi.etag.p, want, oi.etag.len);
    /* Named for the generation it was read at: applied. */
    assert_int_equal(APPLY(t, INO_ETAG, ino_etag_req, .ino = f, .generation = gen,
                           .etag = S("\"0123456789abcdef0123456789abcdef\"")),
                     0);
    decode_reply(t, &mkv_desc_ino_etag_rep, &er);
    assert_int_equal(er.applied, 1);
    assert_int_equal(lookup(t, "bkt", "f", &oi), 0);
    assert_memory_equal(oi.etag.p, "\"0123456789abcdef0123456789abcdef\"", oi.etag.len);
    assert_int_equal(oi.generation, gen);
    /* Truncated since: the old MD5 must not come back. */
    assert_int_equal(APPLY(t, INO_SETATTR, ino_setattr_req, .ino = f, .valid = MKV_SET_SIZE,
                           .size = 500),
                     0);
    decode_reply(t, &mkv_desc_obj_info, &oi);
    assert_true(oi.generation != gen);
    assert_int_equal(APPLY(t, INO_ETAG, ino_etag_req, .ino = f, .generation = gen,
                           .etag = S("\"0123456789abcdef0123456789abcdef\"")),
                     0);
    decode_reply(t, &mkv_desc_ino_etag_rep, &er);
    assert_int_equal(er.applied, 0);
    assert_int_equal(lookup(t, "bkt", "f", &oi), 0);
    assert_true(oi.etag.len > 4 && memcmp(oi.etag.p + oi.etag.len - 3, "-1\"", 3) == 0);
    /* Not a file, or no ETag at all: refused. */
    assert_int_equal(APPLY(t, INO_ETAG, ino_etag_req, .ino = b, .generation = 1, .etag = S("\"x\"")),
                     -EINVAL);
    assert_int_equal(APPLY(t, INO_ETAG, ino_etag_req, .ino = f, .generation = oi.generation,
                           .etag = S("")),
                     -EINVAL);
    mkv_buf_free(&eb);
}

static void posix_rename(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    uint64_t b, b2, d1, d2, d3, f1, f2, e;
    int st;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    assert_int_equal(mkbucket(t, "bkt2"), 0);
    b = bucket_ino(t, "bkt");
    b2 = bucket_ino(t, "bkt2");
    d1 = imake(t, b, "d1", MKV_T_DIR, 0755, NULL, &st);
    d2 = imake(t, b, "d2", MKV_T_DIR, 0755, NULL, &st);
    d3 = imake(t, d1, "d3", MKV_T_DIR, 0755, NULL, &st);
    f1 = imake(t, d1, "f1", MKV_T_FILE, 0644, NULL, &st);
    f2 = imake(t, d2, "f2", MKV_T_FILE, 0644, NULL, &st);
    /* A move across directories; S3 sees the new key. */
    assert_int_equal(irename(t, d1, "f1", d2, "g1", 0), 0);
    assert_int_equal(lookup(t, "bkt", "d2/g1", &oi), 0);
    assert_int_equal(oi.ino, f1);
    assert_int_equal(lookup(t, "bkt", "d1/f1", NULL), MKV_ENOTFOUND);
    /* Replace: the old target goes. */
    assert_int_equal(irename(t, d2, "g1", d2, "f2", 0), 0);
    assert_int_equal(igetattr(t, f2, NULL), -ENOENT);
    assert_int_equal(ilookup(t, d2, "f2", &oi), 0);
    assert_int_equal(oi.ino, f1);
    /* NOREPLACE, EXCHANGE. */
    e = imake(t, d2, "e", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(irename(t, d2, "e", d2, "f2", MKV_RENAME_NOREPLACE), -EEXIST);
    assert_int_equal(irename(t, d2, "e", d2, "f2", MKV_RENAME_EXCHANGE), 0);
    assert_int_equal(ilookup(t, d2, "f2", &oi), 0);
    assert_int_equal(oi.ino, e);
    assert_int_equal(ilookup(t, d2, "e", &oi), 0);
    assert_int_equal(oi.ino, f1);
    assert_int_equal(irename(t, d2, "e", d2, "nope", MKV_RENAME_EXCHANGE), -ENOENT);
    /* Exchange a file and a directory. */
    assert_int_equal(irename(t, d2, "e", d1, "d3", MKV_RENAME_EXCHANGE), 0);
    assert_int_equal(ilookup(t, d2, "e", &oi), 0);
    assert_int_equal(oi.ino, d3);
    assert_int_equal(lookup(t, "bkt", "d2/e/", NULL), 0);
    assert_int_equal(irename(t, d2, "e", d1, "d3", MKV_RENAME_EXCHANGE), 0);
    /* Directory rules. */
    assert_int_equal(irename(t, b, "d1", d3, "x", 0), -EINVAL); /* into itself */
    assert_int_equal(irename(t, b, "d1", d1, "x", 0), -EINVAL);
    assert_int_equal(irename(t, b, "d2", b, "d1", 0), -ENOTEMPTY);
    assert_int_equal(irename(t, d2, "f2", b, "d1", 0), -EISDIR);
    assert_int_equal(irename(t, b, "d1", d2, "f2", 0), -ENOTDIR);
    assert_int_equal(irename(t, d2, "f2", b2, "x", 0), -EXDEV);
    assert_int_equal(irename(t, NS_ROOT_INO_TEST, "bkt2", NS_ROOT_INO_TEST, "bkt3", 0), -EPERM);
    assert_int_equal(irename(t, d2, "zz", b, "x", 0), -ENOENT);
    /* A directory rename moves its whole subtree at once. */
    assert_int_equal(irename(t, b, "d1", b, "renamed", 0), 0);
    assert_int_equal(lookup(t, "bkt", "renamed/d3/", &oi), 0);
    assert_int_equal(oi.ino, d3);
    assert_int_equal(imake(t, d3, "deep", MKV_T_FILE, 0644, NULL, &st) != 0, 1);
    assert_int_equal(lookup(t, "bkt", "renamed/d3/deep", NULL), 0);
    /* An empty directory onto an empty one replaces it. */
    assert_int_equal(imake(t, b, "empty1", MKV_T_DIR, 0755, NULL, &st) != 0, 1);
    assert_int_equal(imake(t, b, "empty2", MKV_T_DIR, 0755, NULL, &st) != 0, 1);
    assert_int_equal(irename(t, b, "empty1", b, "empty2", 0), 0);
    assert_int_equal(ilookup(t, b, "empty1", NULL), -ENOENT);
}

/* S3 keys and the POSIX front: implicit directories, key length. */
static void posix_s3_mix(void **state)
{
    struct t *t = *state;
    struct mkv_obj_info oi;
    uint64_t b, a, ab, cur;
    char name[120];
    int st;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    b = bucket_ino(t, "bkt");
    assert_int_equal(put(t, "bkt", "a/b/c", 10), 0);
    assert_int_equal(ilookup(t, b, "a", &oi), 0);
    a = oi.ino;
    assert_int_equal(oi.type, MKV_T_DIR);
    assert_int_equal(ilookup(t, a, "b", &oi), 0);
    ab = oi.ino;
    /* Removing the last entry of an implicit directory through the mount
     * keeps it, now as an explicit directory that S3 lists. */
    assert_int_equal(iunlink(t, ab, "c", 0), 0);
    assert_int_equal(lookup(t, "bkt", "a/b/", &oi), 0);
    assert_int_equal(oi.dflags, 0);
    {
        char *s = list_str(t, "bkt", "", "", "", 100, 0);
        assert_string_equal(s, "k:a/b/\n");
        free(s);
    }
    /* A key may not exceed 1024 bytes: deep paths stop there. */
    memset(name, 'x', 100);
    name[100] = '\0';
    cur = b;
    for (int i = 0; i < 20; i++) {
        uint64_t n = imake(t, cur, name, MKV_T_DIR, 0755, NULL, &st);
        if (st) {
            assert_int_equal(st, -ENAMETOOLONG);
            assert_int_equal(i, 10); /* 10 x 101 bytes fit, the 11th not */
            break;
        }
        cur = n;
    }
    assert_int_equal(st, -ENAMETOOLONG);
    imake(t, cur, "f", MKV_T_FILE, 0644, NULL, &st);
    assert_int_equal(st, 0); /* 1010 + 1 */
}

/* The environment is committed without fsync; its state file decides at
 * open whether it survived (lib/minikv/trust.h). */
static void write_state(const char *nsdir, const char *boot, int clean, uint64_t txn)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof path, "%s/state", nsdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "boot=%s\nclean=%d\ntxn=%llu\n", boot, clean, (unsigned long long)txn);
    fclose(f);
}

static uint64_t state_txn(const char *nsdir, int *clean)
{
    char path[256], line[128];
    unsigned long long txn = 0;
    FILE *f;
    snprintf(path, sizeof path, "%s/state", nsdir);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "txn=%llu", &txn);
        sscanf(line, "clean=%d", clean);
    }
    fclose(f);
    return txn;
}

static void durable_open(struct t *t)
{
    struct mkv_ns_opts o = {t->nsdir, 1ull << 30, 0};
    char err[256];
    assert_int_equal(mkv_ns_open(&o, &t->ns, err, sizeof err), 0);
}

static void trust_state(void **state)
{
    struct t *t = *state;
    uint64_t txn, point;
    int clean = -1;
    /* The fixture's environment never syncs (no_sync): start again with a
     * durable one. */
    mkv_ns_close(t->ns);
    rm_rf(t->nsdir);
    durable_open(t);
    t->index = 0;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    assert_int_equal(mkv_ns_flush(t->ns), 0);
    /* Synced on demand, through the last commit. */
    point = mkv_ns_sync_point(t->ns);
    assert_true(point > 0);
    assert_int_equal(mkv_ns_sync_to(t->ns, point), 0);
    assert_int_equal(state_txn(t->nsdir, &clean), point);
    assert_int_equal(clean, 0);
    assert_int_equal(mkv_ns_sync_point(t->ns), 0); /* nothing new */
    mkv_ns_close(t->ns);
    txn = state_txn(t->nsdir, &clean);
    assert_int_equal(clean, 1);

    /* Another boot, clean close: trusted. */
    write_state(t->nsdir, "other-boot", 1, 1);
    durable_open(t);
    assert_int_equal(mkv_ns_applied(t->ns), 1);
    mkv_ns_close(t->ns);
    txn = state_txn(t->nsdir, &clean);

    /* Another boot, unclean, but synced through the last transaction:
     * trusted. */
    write_state(t->nsdir, "other-boot", 0, txn);
    durable_open(t);
    assert_int_equal(mkv_ns_applied(t->ns), 1);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("bkt")), 0);
    mkv_ns_close(t->ns);
    txn = state_txn(t->nsdir, &clean);

    /* Another boot, unclean, last transaction not known to be synced: the
     * environment is discarded (Raft rebuilds it from snapshot + log). */
    write_state(t->nsdir, "other-boot", 0, txn - 1);
    durable_open(t);
    assert_int_equal(mkv_ns_applied(t->ns), 0);
    assert_int_equal(QUERY(t, BUCKET_HEAD, bucket_head_req, .name = S("bkt")), MKV_ENOBUCKET);
    t->index = 0;
    assert_int_equal(mkbucket(t, "bkt"), 0);
    mkv_ns_close(t->ns);

    /* The same boot (only the process died): trusted whatever was synced. */
    {
        char boot[64] = "";
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
        if (f) {
            if (fgets(boot, sizeof boot, f)) boot[strcspn(boot, "\n")] = '\0';
            fclose(f);
        }
        if (boot[0]) {
            write_state(t->nsdir, boot, 0, 0);
            durable_open(t);
            assert_int_equal(mkv_ns_applied(t->ns), 1);
            mkv_ns_close(t->ns);
        }
    }

    /* No state file at all: an environment of the format that synced every
     * commit, trusted. */
    {
        char path[256];
        snprintf(path, sizeof path, "%s/state", t->nsdir);
        assert_int_equal(unlink(path), 0);
    }
    durable_open(t);
    assert_int_equal(mkv_ns_applied(t->ns), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test_setup_teardown(buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(put_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(inline_data, setup, teardown),
        cmocka_unit_test_setup_teardown(posix_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(inode_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(posix_links_orphans, setup, teardown),
        cmocka_unit_test_setup_teardown(posix_write_setattr, setup, teardown),
        cmocka_unit_test_setup_teardown(posix_etag, setup, teardown),
        cmocka_unit_test_setup_teardown(posix_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(posix_s3_mix, setup, teardown),
        cmocka_unit_test_setup_teardown(trust_state, setup, teardown),
        cmocka_unit_test_setup_teardown(delete_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(delete_multi, setup, teardown),
        cmocka_unit_test_setup_teardown(transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(vshard_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(bucket_factor_no_map, setup, teardown),
        cmocka_unit_test_setup_teardown(list_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(list_random, setup, teardown),
        cmocka_unit_test_setup_teardown(multipart, setup, teardown),
        cmocka_unit_test_setup_teardown(multipart_list, setup, teardown),
        cmocka_unit_test_setup_teardown(alloc_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(access_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(replay_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(crash_replay, setup, teardown),
    };
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
