/* minikv meta: applying Raft entries and answering queries.
 *
 * Every command handler checks everything before its first write, so a
 * command that fails (a precondition, a conflict) leaves no trace but the
 * applied index and its session record. (Nested LMDB transactions would do
 * the same at the cost of ~3 MiB of allocations per command.) */
#include <errno.h>
#include <string.h>

#include "meta/ns_int.h"
#include "minikv/log.h"

typedef int (*ns_handler)(struct ns_op *op, const uint8_t *p, size_t len);

static ns_handler command_handler(uint16_t type)
{
    switch (type) {
    case MKV_MSG_META_ALLOC: return ns_meta_alloc;
    case MKV_MSG_BUCKET_CREATE: return ns_bucket_create;
    case MKV_MSG_BUCKET_DELETE: return ns_bucket_delete;
    case MKV_MSG_OBJ_PUT: return ns_obj_put;
    case MKV_MSG_OBJ_DELETE: return ns_obj_delete;
    case MKV_MSG_OBJ_DELETE_MULTI: return ns_obj_delete_multi;
    case MKV_MSG_OBJ_TXN: return ns_obj_txn;
    case MKV_MSG_MPU_CREATE: return ns_mpu_create;
    case MKV_MSG_MPU_PART: return ns_mpu_part;
    case MKV_MSG_MPU_COMPLETE: return ns_mpu_complete;
    case MKV_MSG_MPU_ABORT: return ns_mpu_abort;
    case MKV_MSG_GC_DONE: return ns_gc_done;
    case MKV_MSG_KEY_PUT: return ns_key_put;
    case MKV_MSG_KEY_DELETE: return ns_key_delete;
    case MKV_MSG_INO_SETATTR: return ns_ino_setattr;
    case MKV_MSG_INO_MAKE: return ns_ino_make;
    case MKV_MSG_INO_UNLINK: return ns_ino_unlink;
    case MKV_MSG_INO_RENAME: return ns_ino_rename;
    case MKV_MSG_INO_LINK: return ns_ino_link;
    case MKV_MSG_INO_WRITE: return ns_ino_write;
    case MKV_MSG_INO_ETAG: return ns_ino_etag;
    case MKV_MSG_XATTR_SET: return ns_xattr_set;
    case MKV_MSG_XATTR_REMOVE: return ns_xattr_remove;
    case MKV_MSG_ORPHAN_DROP: return ns_orphan_drop;
    case MKV_MSG_NODE_REGISTER: return ns_node_register;
    case MKV_MSG_VSHARD_SET: return ns_vshard_set;
    case MKV_MSG_NODE_DRAIN: return ns_node_drain;
    case MKV_MSG_VSHARD_MARK: return ns_vshard_mark;
    case MKV_MSG_VSHARD_FILLED: return ns_vshard_filled;
    default: return NULL;
    }
}

static ns_handler query_handler(uint16_t type)
{
    switch (type) {
    case MKV_MSG_BUCKET_HEAD: return ns_bucket_head;
    case MKV_MSG_BUCKET_LIST: return ns_bucket_list;
    case MKV_MSG_OBJ_LOOKUP: return ns_obj_lookup;
    case MKV_MSG_OBJ_LIST: return ns_obj_list;
    case MKV_MSG_MPU_GET: return ns_mpu_get;
    case MKV_MSG_MPU_LIST_PARTS: return ns_mpu_list_parts;
    case MKV_MSG_MPU_LIST_UPLOADS: return ns_mpu_list_uploads;
    case MKV_MSG_GC_LIST: return ns_gc_list;
    case MKV_MSG_REFCHECK: return ns_refcheck;
    case MKV_MSG_KEY_GET: return ns_key_get;
    case MKV_MSG_KEY_LIST: return ns_key_list;
    case MKV_MSG_INO_LOOKUP: return ns_ino_lookup;
    case MKV_MSG_INO_GETATTR: return ns_ino_getattr;
    case MKV_MSG_INO_READDIR: return ns_ino_readdir;
    case MKV_MSG_XATTR_GET: return ns_xattr_get;
    case MKV_MSG_XATTR_LIST: return ns_xattr_list;
    case MKV_MSG_NODE_LIST: return ns_node_list;
    case MKV_MSG_VSHARD_LIST: return ns_vshard_list;
    default: return NULL;
    }
}

int mkv_ns_is_command(uint16_t type)
{
    return command_handler(type) != NULL;
}

int mkv_ns_is_query(uint16_t type)
{
    return query_handler(type) != NULL;
}

/* Drops sessions idle for longer than NS_SESSION_TTL_NS. */
static int sweep_sessions(struct ns_op *op)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc, rv;
    if ((rv = ns_cursor(op, op->ns->db_sessions, &c))) return rv;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct mkv_ns_session s;
        if (mkv_msg_decode(&ns_desc_ns_session, v.mv_data, v.mv_size, &s) ||
            s.last_ns < op->now - NS_SESSION_TTL_NS) {
            if ((rc = mdb_cursor_del(c, 0))) break;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) return ns_fail(op, rc, "sweep");
    return 0;
}

int mkv_ns_apply(struct mkv_ns *ns, uint64_t raft_index, const void *env, size_t len, int *status,
                 struct mkv_buf *reply)
{
    struct mkv_raft_cmd cmd;
    struct ns_op op;
    struct mkv_ns_session sess;
    uint8_t sk[8];
    int st = 0, rc, fresh = 1;
    uint64_t next_ino = ns->next_ino, next_chunk = ns->next_chunk;
    struct mkv_ns_counters cnt = ns->cnt;
    ns_handler h;

    *status = 0;
    mkv_buf_reset(reply);
    if (ns->failed) return -EIO;
    if (raft_index <= ns->applied) {
        ns->skipped++;
        return 0;
    }
    if (!ns->batch && (rc = mdb_txn_begin(ns->env, NULL, 0, &ns->batch))) {
        ns->batch = NULL;
        MKV_ERROR("meta", "batch begin failed err=\"%s\"", mdb_strerror(rc));
        return -EIO;
    }
    memset(&op, 0, sizeof op);
    op.ns = ns;
    op.txn = ns->batch;
    op.index = raft_index;
    op.reply = reply;

    if (mkv_msg_decode(&mkv_desc_raft_cmd, env, len, &cmd)) {
        st = -EPROTO;
        memset(&cmd, 0, sizeof cmd);
        goto done;
    }
    op.now = cmd.now_ns;
    if (cmd.client_id) {
        mkv_put_be64(sk, cmd.client_id);
        rc = ns_get_msg(&op, ns->db_sessions, sk, 8, &ns_desc_ns_session, &sess);
        if (rc && rc != -ENOENT) goto fatal;
        if (rc == 0 && cmd.seq <= sess.seq) {
            fresh = 0;
            if (cmd.seq == sess.seq) {
                /* A retry: the remembered outcome, not a second apply. */
                st = (int)sess.status;
                if (mkv_buf_append(reply, sess.reply.p, sess.reply.len)) {
                    ns_fail(&op, ENOMEM, "session");
                    goto fatal;
                }
            } else {
                st = -EALREADY; /* older than the last one: outcome forgotten */
            }
            goto done;
        }
    }
    h = command_handler(cmd.type);
    if (!h) {
        st = -ENOTSUP;
        goto done;
    }
    st = h(&op, cmd.payload.p, cmd.payload.len);
    if (op.fatal) goto fatal;
    if (st < 0) {
        mkv_buf_reset(reply);
        if (op.wrote) {
            /* Handlers check everything before their first write; a
             * failure after one is a bug. The writes stay (every replica
             * makes the same ones), but say so loudly. */
            ns->partial++;
            MKV_ERROR("meta", "command failed after writing index=%llu type=0x%04x status=%d",
                      (unsigned long long)raft_index, cmd.type, st);
        } else {
            ns->next_ino = next_ino;
            ns->next_chunk = next_chunk;
            ns->cnt = cnt;
        }
    }
done:
    if (cmd.client_id && fresh) {
        sess.seq = cmd.seq;
        sess.last_ns = cmd.now_ns;
        sess.status = st;
        sess.reply = mkv_slice_mem(reply->p ? reply->p : (const uint8_t *)"", reply->len);
        if (ns_put_msg(&op, ns->db_sessions, sk, 8, &ns_desc_ns_session, &sess)) goto fatal;
    }
    if (raft_index % NS_SESSION_SWEEP == 0 && op.now && sweep_sessions(&op)) goto fatal;
    ns->applied = raft_index;
    if ((rc = ns_store_state(ns, ns->batch))) {
        ns_fail(&op, rc, "state");
        goto fatal;
    }
    ns_op_done(&op);
    *status = st;
    return 0;

fatal:
    /* The batch cannot be trusted any more: drop it and stop. Raft will
     * replay the dropped entries after a restart. */
    ns_op_done(&op);
    mkv_ns_discard(ns);
    ns->failed = 1;
    mkv_buf_reset(reply);
    MKV_ERROR("meta", "state machine failed index=%llu type=0x%04x", (unsigned long long)raft_index,
              cmd.type);
    return -EIO;
}

/* Runs a query handler in txn (the pending batch, or a read transaction
 * of its own when txn is NULL). */
static int run_query(struct mkv_ns *ns, MDB_txn *txn, ns_handler h, const void *req, size_t len,
                     int *status, struct mkv_buf *reply)
{
    struct ns_op op;
    MDB_txn *own = NULL;
    int rc, st;
    if (!txn && (rc = mdb_txn_begin(ns->env, NULL, MDB_RDONLY, &own))) {
        MKV_ERROR("meta", "read txn failed err=\"%s\"", mdb_strerror(rc));
        return -EIO;
    }
    memset(&op, 0, sizeof op);
    op.ns = ns;
    op.txn = txn ? txn : own;
    op.reply = reply;
    st = h(&op, req, len);
    if (own) mdb_txn_abort(own);
    ns_op_done(&op);
    if (op.fatal) {
        mkv_buf_reset(reply);
        /* A read failing is not a reason to stop the node unless it is
         * corruption; report it as unavailable. */
        *status = MKV_EUNAVAILABLE;
        return op.fatal == MDB_CORRUPTED ? -EIO : 0;
    }
    if (st < 0) mkv_buf_reset(reply);
    *status = st;
    return 0;
}

int mkv_ns_query(struct mkv_ns *ns, uint16_t type, const void *req, size_t len, int *status,
                 struct mkv_buf *reply)
{
    ns_handler h = query_handler(type);
    *status = 0;
    mkv_buf_reset(reply);
    if (ns->failed) return -EIO;
    if (!h) {
        *status = -ENOTSUP;
        return 0;
    }
    return run_query(ns, ns->batch, h, req, len, status, reply); /* sees the pending batch */
}

int mkv_ns_read(struct mkv_ns *ns, uint16_t type, const void *req, size_t len, int *status,
                struct mkv_buf *reply)
{
    ns_handler h = query_handler(type);
    int rv;
    *status = 0;
    mkv_buf_reset(reply);
    if (!h) {
        *status = -ENOTSUP;
        return 0;
    }
    pthread_rwlock_rdlock(&ns->env_lock);
    rv = ns->env ? run_query(ns, NULL, h, req, len, status, reply) : -EIO;
    pthread_rwlock_unlock(&ns->env_lock);
    return rv;
}
