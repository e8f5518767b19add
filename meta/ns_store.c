/* minikv meta: the namespace's LMDB environment: opening, the batch
 * transaction, primitive table access, snapshots and restore. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta/ns_int.h"
#include "minikv/log.h"
#include "minikv/trust.h"

#define NS_DEFAULT_MAP (16ull << 30)
#define NS_SNAP_MAGIC "MKVNSNP1"

/* Descriptors of the private records. */
#define NS_DESC_FIELD(s, t, n, max) {MKV_F_##t, offsetof(struct mkv_##s, n), (max), #n},
#define NS_DEFINE_DESC(name)                                                                     \
    static const struct mkv_field ns_fields_##name[] = {MKV_FIELDS_##name(NS_DESC_FIELD, name)}; \
    const struct mkv_msgdesc ns_desc_##name = {                                                  \
        0, #name, ns_fields_##name, MKV_ARRAY_SIZE(ns_fields_##name), sizeof(struct mkv_##name)};
NS_RECORDS(NS_DEFINE_DESC)
#undef NS_DEFINE_DESC

int ns_fail(struct ns_op *op, int mdb_rc, const char *what)
{
    if (!op->fatal) {
        op->fatal = mdb_rc ? mdb_rc : EIO;
        MKV_ERROR("meta", "lmdb failure op=%s err=\"%s\"", what, mdb_strerror(mdb_rc));
    }
    return NS_EFATAL;
}

int ns_get(struct ns_op *op, MDB_dbi db, const void *k, size_t klen, MDB_val *v)
{
    MDB_val key = {klen, (void *)k};
    int rc = mdb_get(op->txn, db, &key, v);
    if (rc == MDB_NOTFOUND) return -ENOENT;
    if (rc) return ns_fail(op, rc, "get");
    return 0;
}

int ns_put(struct ns_op *op, MDB_dbi db, const void *k, size_t klen, const void *v, size_t vlen)
{
    MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
    int rc = mdb_put(op->txn, db, &key, &val, 0);
    if (rc) return ns_fail(op, rc, "put");
    op->wrote = 1;
    return 0;
}

int ns_del(struct ns_op *op, MDB_dbi db, const void *k, size_t klen)
{
    MDB_val key = {klen, (void *)k};
    int rc = mdb_del(op->txn, db, &key, NULL);
    if (rc == MDB_NOTFOUND) return -ENOENT;
    if (rc) return ns_fail(op, rc, "del");
    op->wrote = 1;
    return 0;
}

int ns_put_msg(struct ns_op *op, MDB_dbi db, const void *k, size_t klen,
               const struct mkv_msgdesc *d, const void *msg)
{
    int rv;
    mkv_buf_reset(&op->scratch);
    rv = mkv_msg_append(&op->scratch, d, msg);
    if (rv == -ENOMEM) return ns_fail(op, ENOMEM, "encode");
    if (rv) return -EINVAL;
    return ns_put(op, db, k, klen, op->scratch.p, op->scratch.len);
}

struct ns_copy
{
    struct ns_copy *next;
    uint8_t data[];
};

void ns_op_done(struct ns_op *op)
{
    struct ns_copy *c, *next;
    mkv_buf_free(&op->scratch);
    for (c = op->copies; c; c = next) {
        next = c->next;
        free(c);
    }
    op->copies = NULL;
}

int ns_get_msg(struct ns_op *op, MDB_dbi db, const void *k, size_t klen,
               const struct mkv_msgdesc *d, void *msg)
{
    MDB_val v;
    const void *p;
    int rv = ns_get(op, db, k, klen, &v);
    if (rv) return rv;
    p = v.mv_data;
    if (op->index) { /* a command: its own writes may move the bytes */
        struct ns_copy *c = malloc(sizeof *c + v.mv_size);
        if (!c) return ns_fail(op, ENOMEM, "copy");
        memcpy(c->data, v.mv_data, v.mv_size);
        c->next = op->copies;
        op->copies = c;
        p = c->data;
    }
    if (mkv_msg_decode(d, p, v.mv_size, msg)) return ns_fail(op, MDB_CORRUPTED, d->name);
    return 0;
}

int ns_cursor(struct ns_op *op, MDB_dbi db, MDB_cursor **c)
{
    int rc = mdb_cursor_open(op->txn, db, c);
    if (rc) return ns_fail(op, rc, "cursor");
    return 0;
}

int ns_reply(struct ns_op *op, const struct mkv_msgdesc *d, const void *msg)
{
    int rv = mkv_msg_append(op->reply, d, msg);
    if (rv == -ENOMEM) return ns_fail(op, ENOMEM, "reply");
    return rv;
}

static int put_u64(MDB_txn *txn, MDB_dbi db, const char *name, uint64_t v)
{
    uint8_t b[8];
    MDB_val k = {strlen(name), (void *)name}, val = {8, b};
    mkv_put_le64(b, v);
    return mdb_put(txn, db, &k, &val, 0);
}

static int get_u64(MDB_txn *txn, MDB_dbi db, const char *name, uint64_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, val;
    int rc = mdb_get(txn, db, &k, &val);
    if (rc) return rc;
    if (val.mv_size != 8) return MDB_CORRUPTED;
    *v = mkv_get_le64(val.mv_data);
    return 0;
}

int ns_store_state(struct mkv_ns *ns, MDB_txn *txn)
{
    uint8_t c[40];
    MDB_val k = {strlen(NS_K_COUNTERS), (void *)NS_K_COUNTERS}, v = {sizeof c, c};
    int rc;
    mkv_put_le64(c, ns->cnt.buckets);
    mkv_put_le64(c + 8, ns->cnt.objects);
    mkv_put_le64(c + 16, ns->cnt.bytes);
    mkv_put_le64(c + 24, ns->cnt.uploads);
    mkv_put_le64(c + 32, ns->cnt.garbage);
    if ((rc = put_u64(txn, ns->db_meta, NS_K_APPLIED, ns->applied))) return rc;
    if ((rc = put_u64(txn, ns->db_meta, NS_K_NEXT_INO, ns->next_ino))) return rc;
    if ((rc = put_u64(txn, ns->db_meta, NS_K_NEXT_CHUNK, ns->next_chunk))) return rc;
    return mdb_put(txn, ns->db_meta, &k, &v, 0);
}

static int load_state(struct mkv_ns *ns, MDB_txn *txn)
{
    MDB_val k = {strlen(NS_K_COUNTERS), (void *)NS_K_COUNTERS}, v;
    const uint8_t *c;
    int rc;
    if ((rc = get_u64(txn, ns->db_meta, NS_K_APPLIED, &ns->applied))) return rc;
    if ((rc = get_u64(txn, ns->db_meta, NS_K_NEXT_INO, &ns->next_ino))) return rc;
    if ((rc = get_u64(txn, ns->db_meta, NS_K_NEXT_CHUNK, &ns->next_chunk))) return rc;
    if ((rc = mdb_get(txn, ns->db_meta, &k, &v))) return rc;
    if (v.mv_size != 40) return MDB_CORRUPTED;
    c = v.mv_data;
    ns->cnt.buckets = mkv_get_le64(c);
    ns->cnt.objects = mkv_get_le64(c + 8);
    ns->cnt.bytes = mkv_get_le64(c + 16);
    ns->cnt.uploads = mkv_get_le64(c + 24);
    ns->cnt.garbage = mkv_get_le64(c + 32);
    ns->applied_c = ns->applied;
    ns->next_ino_c = ns->next_ino;
    ns->next_chunk_c = ns->next_chunk;
    ns->cnt_c = ns->cnt;
    return 0;
}

/* Schema 2 added dirparent (and the empty xattrs and orphans tables):
 * every directory entry of a version-1 environment gets its row. The same
 * walk on every replica gives the same result. */
static int migrate_1_to_2(struct mkv_ns *ns, MDB_txn *txn)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc;
    if ((rc = mdb_cursor_open(txn, ns->db_dentries, &c))) return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        uint8_t dk[8], dv[8 + MKV_NAME_MAX];
        MDB_val key = {8, dk}, val;
        size_t nlen;
        if (k.mv_size < 10 || kp[k.mv_size - 1] != '/') continue;
        if (v.mv_size < 10) {
            rc = MDB_CORRUPTED;
            break;
        }
        nlen = k.mv_size - 9;
        if (nlen > MKV_NAME_MAX) continue;
        mkv_put_be64(dk, mkv_get_le64(v.mv_data));
        memcpy(dv, kp, 8);
        mkv_put_le64(dv, mkv_get_be64(kp));
        memcpy(dv + 8, kp + 8, nlen);
        val.mv_size = 8 + nlen;
        val.mv_data = dv;
        if ((rc = mdb_put(txn, ns->db_dirparent, &key, &val, 0))) break;
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) rc = 0;
    if (!rc) MKV_INFO("meta", "namespace schema migrated from=1 to=2 dir=%s", ns->dir);
    return rc;
}

/* Schema 3 gave every directory entry a cookie (its readdir position) and
 * the dirseq index; entries of older environments get theirs in key order,
 * the same on every replica. */
static int migrate_2_to_3(struct mkv_ns *ns, MDB_txn *txn)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t seq = 1u << 20;
    int rc;
    if ((rc = mdb_cursor_open(txn, ns->db_dentries, &c))) return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        uint8_t nv[NS_DENT_VLEN], sk[16], key[8 + MKV_NAME_MAX + 1];
        MDB_val val = {sizeof nv, nv}, skey = {16, sk}, sval;
        size_t klen = k.mv_size;
        if (v.mv_size >= NS_DENT_VLEN) continue;
        if (v.mv_size < 10 || klen < 9 || klen > sizeof key) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(key, k.mv_data, klen);
        memcpy(nv, v.mv_data, 10);
        mkv_put_le64(nv + 10, ++seq);
        memcpy(sk, key, 8);
        mkv_put_be64(sk + 8, seq);
        sval.mv_size = klen - 8;
        sval.mv_data = key + 8;
        if ((rc = mdb_put(txn, ns->db_dirseq, &skey, &sval, 0))) break;
        k.mv_size = klen;
        k.mv_data = key;
        if ((rc = mdb_cursor_put(c, &k, &val, MDB_CURRENT))) break;
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) rc = 0;
    if (!rc) MKV_INFO("meta", "namespace schema migrated from=2 to=3 dir=%s", ns->dir);
    return rc;
}

/* Creates the tables and, in a new environment, the root directory. */
static int init_tables(struct mkv_ns *ns, MDB_txn *txn)
{
    static const struct
    {
        const char *name;
        size_t off;
    } tables[] = {
        {"meta", offsetof(struct mkv_ns, db_meta)},
        {"inodes", offsetof(struct mkv_ns, db_inodes)},
        {"dentries", offsetof(struct mkv_ns, db_dentries)},
        {"buckets", offsetof(struct mkv_ns, db_buckets)},
        {"uploads", offsetof(struct mkv_ns, db_uploads)},
        {"upidx", offsetof(struct mkv_ns, db_upidx)},
        {"parts", offsetof(struct mkv_ns, db_parts)},
        {"refs", offsetof(struct mkv_ns, db_refs)},
        {"garbage", offsetof(struct mkv_ns, db_garbage)},
        {"sessions", offsetof(struct mkv_ns, db_sessions)},
        {"keys", offsetof(struct mkv_ns, db_keys)},
        {"dirparent", offsetof(struct mkv_ns, db_dirparent)},
        {"xattrs", offsetof(struct mkv_ns, db_xattrs)},
        {"orphans", offsetof(struct mkv_ns, db_orphans)},
        {"dirseq", offsetof(struct mkv_ns, db_dirseq)},
        {"nodes", offsetof(struct mkv_ns, db_nodes)}, /* chunk servers: id (be64) -> node_rec */
        {"vshards", offsetof(struct mkv_ns, db_vshards)}, /* vshard (be16) -> vshard_rec */
    };
    uint64_t schema;
    int rc;
    for (size_t i = 0; i < MKV_ARRAY_SIZE(tables); i++) {
        MDB_dbi *dbi = (MDB_dbi *)(void *)((char *)ns + tables[i].off);
        if ((rc = mdb_dbi_open(txn, tables[i].name, MDB_CREATE, dbi))) return rc;
    }
    rc = get_u64(txn, ns->db_meta, NS_K_SCHEMA, &schema);
    if (rc == 0 && (schema == 1 || schema == 2)) {
        if (schema == 1 && (rc = migrate_1_to_2(ns, txn))) return rc;
        if ((rc = migrate_2_to_3(ns, txn))) return rc;
        return put_u64(txn, ns->db_meta, NS_K_SCHEMA, NS_SCHEMA_VERSION);
    }
    if (rc == 0) {
        if (schema != NS_SCHEMA_VERSION) return MDB_INCOMPATIBLE;
        return 0;
    }
    if (rc != MDB_NOTFOUND) return rc;
    {
        /* A new environment: the root directory, inode 1. Every replica
         * starts from this same state, so it needs no log entry. */
        struct ns_op op = {.ns = ns, .txn = txn};
        struct mkv_obj_info root = {0};
        root.ino = NS_ROOT_INO;
        root.type = MKV_T_DIR;
        root.mode = S_IFDIR | 0755;
        root.nlink = 1;
        root.generation = 1;
        memset(&ns->cnt, 0, sizeof ns->cnt);
        ns->applied = 0;
        ns->next_ino = NS_ROOT_INO + 1;
        ns->next_chunk = 1;
        rc = ns_ino_put(&op, &root);
        ns_op_done(&op);
        if (rc) return op.fatal ? op.fatal : EIO;
        if ((rc = put_u64(txn, ns->db_meta, NS_K_SCHEMA, NS_SCHEMA_VERSION))) return rc;
        return ns_store_state(ns, txn);
    }
}

static void env_close(struct mkv_ns *ns)
{
    if (ns->batch) {
        mdb_txn_abort(ns->batch);
        ns->batch = NULL;
    }
    if (ns->env) {
        mdb_env_close(ns->env);
        ns->env = NULL;
    }
}

static uint64_t env_last_txn(struct mkv_ns *ns)
{
    MDB_envinfo info;
    if (!ns->env || mdb_env_info(ns->env, &info)) return 0;
    return (uint64_t)info.me_last_txnid;
}

/* Makes the environment durable up to txn and records it. */
static int env_sync(struct mkv_ns *ns, uint64_t txn, int clean)
{
    int rc;
    if (ns->no_sync) return 0;
    if ((rc = mdb_env_sync(ns->env, 1))) return rc == EIO ? -EIO : -rc;
    return mkv_trust_write(ns->state_path, ns->boot_id, clean, txn);
}

/* Commits never fsync (MDB_NOSYNC): see mkv_ns_sync_point in ns.h. */
static int env_open(struct mkv_ns *ns, char *err, size_t errlen)
{
    unsigned flags = MDB_NOTLS | MDB_NOSYNC;
    MDB_txn *txn;
    int rc;
    if ((rc = mdb_env_create(&ns->env))) goto fail;
    if ((rc = mdb_env_set_maxdbs(ns->env, 32))) goto fail;
    if ((rc = mdb_env_set_mapsize(ns->env, ns->map_size))) goto fail;
    if ((rc = mdb_env_open(ns->env, ns->dir, flags, 0640))) goto fail;
    if ((rc = mdb_txn_begin(ns->env, NULL, 0, &txn))) goto fail;
    if ((rc = init_tables(ns, txn)) || (rc = load_state(ns, txn))) {
        mdb_txn_abort(txn);
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn))) goto fail;
    ns->synced_txn = env_last_txn(ns);
    if ((rc = -env_sync(ns, ns->synced_txn, 0))) goto fail;
    return 0;
fail:
    if (err) snprintf(err, errlen, "lmdb %s: %s", ns->dir, mdb_strerror(rc));
    env_close(ns);
    return rc == ENOMEM ? -ENOMEM : -EIO;
}

/* The last transaction id of the environment on disk, opened read-only
 * without touching it. */
static int peek_last_txn(struct mkv_ns *ns, uint64_t *txn)
{
    MDB_env *e;
    MDB_envinfo info;
    int rc;
    if ((rc = mdb_env_create(&e))) return rc;
    mdb_env_set_maxdbs(e, 32);
    mdb_env_set_mapsize(e, ns->map_size);
    rc = mdb_env_open(e, ns->dir, MDB_RDONLY | MDB_NOLOCK, 0640);
    if (!rc) rc = mdb_env_info(e, &info);
    if (!rc) *txn = (uint64_t)info.me_last_txnid;
    mdb_env_close(e);
    return rc;
}

/* Decides, before opening, whether the environment on disk may be used
 * (lib/minikv/trust.h). One that may not is removed: Raft then restores
 * its last snapshot (fsynced) and replays the log after it, which holds
 * every committed command. */
static int check_trust(struct mkv_ns *ns, char *err, size_t errlen)
{
    char data[PATH_MAX], lock[PATH_MAX];
    struct mkv_trust st;
    uint64_t last = 0;
    int rc;
    snprintf(data, sizeof data, "%s/data.mdb", ns->dir);
    snprintf(lock, sizeof lock, "%s/lock.mdb", ns->dir);
    if (access(data, F_OK) != 0) {
        if (errno != ENOENT) return mkv_errf(err, errlen, -errno, "%s", data);
        /* A new environment: the state file comes first, so that an
         * environment without one predates it (and was synced at every
         * commit, as minikv did before). */
        if (ns->no_sync) return 0;
        rc = mkv_trust_write(ns->state_path, ns->boot_id, 0, 0);
        return rc ? mkv_errf(err, errlen, rc, "%s", ns->state_path) : 0;
    }
    mkv_trust_read(ns->state_path, &st);
    if (!st.ok && access(ns->state_path, F_OK) != 0) return 0;
    rc = peek_last_txn(ns, &last);
    if (rc == 0 && mkv_trust_ok(&st, ns->boot_id, last)) return 0;
    MKV_WARN(
        "meta",
        "namespace state may have lost writes (the system stopped without syncing it): "
        "rebuilding it from the last Raft snapshot and log dir=%s last_txn=%llu synced_txn=%llu",
        ns->dir, (unsigned long long)last, (unsigned long long)st.txn);
    if (unlink(data) && errno != ENOENT) return mkv_errf(err, errlen, -errno, "unlink %s", data);
    if (unlink(lock) && errno != ENOENT) return mkv_errf(err, errlen, -errno, "unlink %s", lock);
    rc = mkv_trust_write(ns->state_path, ns->boot_id, 0, 0);
    return rc ? mkv_errf(err, errlen, rc, "%s", ns->state_path) : 0;
}

int mkv_ns_open(const struct mkv_ns_opts *opts, struct mkv_ns **out, char *err, size_t errlen)
{
    struct mkv_ns *ns;
    int rv;
    if (!opts || !opts->dir || !*opts->dir) return mkv_errf(err, errlen, -EINVAL, "ns dir");
    if (mkdir(opts->dir, 0750) && errno != EEXIST)
        return mkv_errf(err, errlen, -errno, "mkdir %s", opts->dir);
    ns = calloc(1, sizeof *ns);
    if (!ns) return -ENOMEM;
    ns->dir = strdup(opts->dir);
    if (!ns->dir) {
        free(ns);
        return -ENOMEM;
    }
    ns->map_size = opts->map_size ? opts->map_size : NS_DEFAULT_MAP;
    ns->no_sync = opts->no_sync;
    pthread_rwlock_init(&ns->env_lock, NULL);
    mkv_boot_id(ns->boot_id, sizeof ns->boot_id);
    ns->state_path = malloc(strlen(ns->dir) + sizeof "/state");
    if (!ns->state_path) {
        rv = -ENOMEM;
        goto err_after_dir;
    }
    sprintf(ns->state_path, "%s/state", ns->dir);
    if ((rv = check_trust(ns, err, errlen))) goto err_after_state;
    rv = env_open(ns, err, errlen);
    if (rv) goto err_after_state;
    MKV_INFO("meta", "namespace open dir=%s applied=%llu", ns->dir,
             (unsigned long long)ns->applied);
    *out = ns;
    return 0;

err_after_state:
    free(ns->state_path);
err_after_dir:
    pthread_rwlock_destroy(&ns->env_lock);
    free(ns->dir);
    free(ns);
    return rv;
}

uint64_t mkv_ns_sync_point(struct mkv_ns *ns)
{
    uint64_t txn;
    if (ns->failed || ns->no_sync) return 0;
    txn = env_last_txn(ns);
    return txn != ns->synced_txn ? txn : 0;
}

int mkv_ns_sync_to(struct mkv_ns *ns, uint64_t txn)
{
    int rv;
    pthread_rwlock_rdlock(&ns->env_lock);
    rv = ns->env ? env_sync(ns, txn, 0) : -EIO;
    if (rv == 0) ns->synced_txn = txn;
    pthread_rwlock_unlock(&ns->env_lock);
    if (rv) MKV_WARN("meta", "namespace sync failed err=\"%s\"", strerror(-rv));
    return rv;
}

void mkv_ns_close(struct mkv_ns *ns)
{
    int rv;
    if (!ns) return;
    if (!ns->failed && ns->batch && mkv_ns_flush(ns))
        MKV_ERROR("meta", "final commit failed dir=%s", ns->dir);
    if (!ns->failed && ns->env && (rv = env_sync(ns, env_last_txn(ns), 1)))
        MKV_ERROR("meta", "final sync failed dir=%s err=\"%s\"", ns->dir, strerror(-rv));
    pthread_rwlock_wrlock(&ns->env_lock);
    env_close(ns);
    pthread_rwlock_unlock(&ns->env_lock);
    pthread_rwlock_destroy(&ns->env_lock);
    free(ns->state_path);
    free(ns->dir);
    free(ns);
}

int mkv_ns_flush(struct mkv_ns *ns)
{
    int rc;
    if (ns->failed) return -EIO;
    if (!ns->batch) return 0;
    rc = mdb_txn_commit(ns->batch);
    ns->batch = NULL;
    if (rc) {
        MKV_ERROR("meta", "batch commit failed err=\"%s\"", mdb_strerror(rc));
        ns->failed = 1;
        return -EIO;
    }
    ns->applied_c = ns->applied;
    ns->next_ino_c = ns->next_ino;
    ns->next_chunk_c = ns->next_chunk;
    ns->cnt_c = ns->cnt;
    return 0;
}

void mkv_ns_discard(struct mkv_ns *ns)
{
    if (!ns->batch) return;
    mdb_txn_abort(ns->batch);
    ns->batch = NULL;
    ns->applied = ns->applied_c;
    ns->next_ino = ns->next_ino_c;
    ns->next_chunk = ns->next_chunk_c;
    ns->cnt = ns->cnt_c;
}

int mkv_ns_dirty(const struct mkv_ns *ns)
{
    return ns->batch != NULL;
}

uint64_t mkv_ns_applied(const struct mkv_ns *ns)
{
    return ns->applied;
}

uint64_t mkv_ns_batch_entries(const struct mkv_ns *ns)
{
    return ns->batch ? ns->applied - ns->applied_c : 0;
}

void mkv_ns_counters(const struct mkv_ns *ns, struct mkv_ns_counters *out)
{
    *out = ns->cnt;
}

uint64_t mkv_ns_skipped(const struct mkv_ns *ns)
{
    return ns->skipped;
}

uint64_t mkv_ns_partial(const struct mkv_ns *ns)
{
    return ns->partial;
}

/* ---- snapshots ---- */

int mkv_ns_snapshot_prepare(struct mkv_ns *ns, uint64_t *applied)
{
    int rv = mkv_ns_flush(ns);
    if (rv) return rv;
    *applied = ns->applied;
    return 0;
}

/* Reads the applied index stored in the LMDB image at path. */
static int image_applied(const char *path, uint64_t size, uint64_t *applied)
{
    MDB_env *e;
    MDB_txn *txn;
    MDB_dbi db;
    int rc;
    if ((rc = mdb_env_create(&e))) return rc;
    mdb_env_set_maxdbs(e, 32);
    mdb_env_set_mapsize(e, size + (1u << 20));
    rc = mdb_env_open(e, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0600);
    if (!rc) rc = mdb_txn_begin(e, NULL, MDB_RDONLY, &txn);
    if (!rc) {
        rc = mdb_dbi_open(txn, "meta", 0, &db);
        if (!rc) rc = get_u64(txn, db, NS_K_APPLIED, applied);
        mdb_txn_abort(txn);
    }
    mdb_env_close(e);
    return rc;
}

int mkv_ns_snapshot_copy(struct mkv_ns *ns, const char *path, uint8_t hdr[MKV_NS_SNAP_HDR],
                         uint64_t *image_len)
{
    struct stat st;
    uint64_t applied = 0;
    int fd, rc;
    if (ns->failed) return -EIO;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    rc = mdb_env_copyfd2(ns->env, fd, MDB_CP_COMPACT);
    if (!rc && fstat(fd, &st)) rc = errno;
    close(fd);
    if (!rc) rc = image_applied(path, (uint64_t)st.st_size, &applied);
    if (rc) {
        MKV_ERROR("meta", "snapshot copy failed path=%s err=\"%s\"", path, mdb_strerror(rc));
        unlink(path);
        return -EIO;
    }
    memcpy(hdr, NS_SNAP_MAGIC, 8);
    mkv_put_le64(hdr + 8, applied);
    mkv_put_le64(hdr + 16, (uint64_t)st.st_size);
    *image_len = (uint64_t)st.st_size;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mkv_ns_restore(struct mkv_ns *ns, const void *snap, size_t len, int *replaced)
{
    const uint8_t *h = snap;
    uint64_t applied, ilen;
    char tmp[PATH_MAX], data[PATH_MAX], err[256];
    int fd, rv;
    *replaced = 0;
    if (ns->failed) return -EIO;
    if (len < MKV_NS_SNAP_HDR || memcmp(h, NS_SNAP_MAGIC, 8)) return -EINVAL;
    applied = mkv_get_le64(h + 8);
    ilen = mkv_get_le64(h + 16);
    if (ilen != len - MKV_NS_SNAP_HDR) return -EINVAL;
    if ((rv = mkv_ns_flush(ns))) return rv;
    if (applied <= ns->applied) {
        MKV_INFO("meta", "snapshot not newer: local state kept snapshot=%llu applied=%llu",
                 (unsigned long long)applied, (unsigned long long)ns->applied);
        return 0;
    }
    snprintf(tmp, sizeof tmp, "%s/data.mdb.restore", ns->dir);
    snprintf(data, sizeof data, "%s/data.mdb", ns->dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return -errno;
    rv = write_all(fd, h + MKV_NS_SNAP_HDR, (size_t)ilen);
    if (!rv && fsync(fd)) rv = -errno;
    close(fd);
    if (rv) {
        unlink(tmp);
        return rv;
    }
    pthread_rwlock_wrlock(&ns->env_lock);
    env_close(ns);
    if (rename(tmp, data)) {
        rv = -errno;
        pthread_rwlock_unlock(&ns->env_lock);
        ns->failed = 1;
        MKV_ERROR("meta", "restore rename failed err=\"%s\"", strerror(-rv));
        return rv;
    }
    fd = open(ns->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    rv = env_open(ns, err, sizeof err);
    pthread_rwlock_unlock(&ns->env_lock);
    if (rv) {
        ns->failed = 1;
        MKV_ERROR("meta", "restore reopen failed err=\"%s\"", err);
        return rv;
    }
    if (ns->applied != applied) {
        MKV_ERROR("meta", "restored image index mismatch header=%llu image=%llu",
                  (unsigned long long)applied, (unsigned long long)ns->applied);
        ns->failed = 1;
        return -EINVAL;
    }
    MKV_INFO("meta", "namespace restored from snapshot applied=%llu", (unsigned long long)applied);
    *replaced = 1;
    return 0;
}
