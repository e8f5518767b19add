/* minikv s3gw: multi-key transactions over REST.
 *
 * POST /transaction and POST /batch (the seed's calls) take a JSON list of
 * put and delete operations on "bucket/key" names and apply them all or
 * nothing, as one Raft command (MKV_MSG_OBJ_TXN). The two differ only in
 * the shape of their answer, which follows the seed: /transaction reports
 * "success" per operation, /batch "ok". Values are stored inline in the
 * metadata (at most MKV_INLINE_MAX bytes each), so a transaction writes no
 * chunk and has nothing to clean up when it fails. See docs/s3.md. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "gw.h"
#include "minikv/err.h"
#include "minikv/names.h"

/* A JSON body holds base64 values, a third larger than the bytes. */
#define TXN_BODY_MAX (4u << 20)

struct txn_state
{
    json_t *ops; /* the request's operation array (owned by doc) */
    json_t *doc;
    struct mkv_buf encoded; /* txn_op records */
    unsigned n;
};

static void txn_state_free(void *p)
{
    struct txn_state *ts = p;
    if (!ts) return;
    json_decref(ts->doc);
    mkv_buf_free(&ts->encoded);
    free(ts);
}

static void respond_json(struct s3req *r, int status, json_t *root)
{
    struct mkv_buf b = MKV_BUF_INIT;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text || mkv_buf_puts(&b, text) || mkv_buf_puts(&b, "\n")) {
        free(text);
        mkv_buf_free(&b);
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    free(text);
    s3_respond_body(r, status, "application/json", &b, NULL, 0);
}

/* An error of the request as a whole: {"error": {...}}; operation is the
 * 1-based index of the operation at fault, or 0. */
static void txn_error(struct s3req *r, enum mkv_s3_error e, unsigned operation, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
static void txn_error(struct s3req *r, enum mkv_s3_error e, unsigned operation, const char *fmt,
                      ...)
{
    char msg[512];
    va_list ap;
    json_t *err, *root;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof msg) {
        /* Cut at a character boundary: the message may quote the request. */
        size_t len = strlen(msg);
        while (len && ((unsigned char)msg[len - 1] & 0xC0) == 0x80) len--;
        if (len && ((unsigned char)msg[len - 1] & 0x80)) len--;
        msg[len] = '\0';
    }
    err = json_pack("{s:s, s:s, s:s}", "code", mkv_s3_error_code(e), "message", msg, "request_id",
                    r->request_id);
    if (err && operation) json_object_set_new(err, "operation", json_integer(operation));
    root = err ? json_pack("{s:b, s:O}", "committed", 0, "error", err) : NULL;
    json_decref(err);
    if (!root) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    respond_json(r, mkv_s3_error_status(e), root);
}

/* Splits "bucket/key" and checks both names. */
static int split_name(const char *name, size_t len, struct mkv_slice *bucket, struct mkv_slice *key)
{
    const char *slash = memchr(name, '/', len);
    if (!slash || slash == name) return -EINVAL;
    *bucket = mkv_slice_mem(name, (size_t)(slash - name));
    *key = mkv_slice_mem(slash + 1, len - (size_t)(slash - name) - 1);
    if (mkv_check_bucket(name, bucket->len)) return -EINVAL;
    return mkv_check_key((const char *)key->p, key->len) ? -EINVAL : 0;
}

static int known_field(const char *f)
{
    static const char *const fields[] = {
        "op",           "key",      "value",         "value_base64",
        "content_type", "if_match", "if_none_match", "must_exist"};
    for (size_t i = 0; i < MKV_ARRAY_SIZE(fields); i++)
        if (!strcmp(f, fields[i])) return 1;
    return 0;
}

/* Turns operation i (1-based) into a txn_op record. Returns 0, or answers
 * the request with the reason and returns -1. */
static int encode_op(struct s3req *r, struct txn_state *ts, unsigned i, json_t *o, uint8_t *data)
{
    struct mkv_txn_op t = {0};
    json_t *op = json_object_get(o, "op"), *key = json_object_get(o, "key");
    json_t *val = json_object_get(o, "value"), *b64 = json_object_get(o, "value_base64");
    json_t *ct = json_object_get(o, "content_type"), *im = json_object_get(o, "if_match");
    json_t *inm = json_object_get(o, "if_none_match"), *must = json_object_get(o, "must_exist");
    const char *kind, *field;
    char etag[MKV_ETAG_MAX + 1];
    json_t *v;
    size_t n;

    if (!json_is_object(o)) {
        txn_error(r, MKV_S3_INVALID_REQUEST, i, "operation %u is not a JSON object", i);
        return -1;
    }
    json_object_foreach(o, field, v)
    {
        if (!known_field(field)) {
            txn_error(r, MKV_S3_INVALID_REQUEST, i, "operation %u: unknown field '%s'", i, field);
            return -1;
        }
    }
    if (!json_is_string(op) || !json_is_string(key)) {
        txn_error(r, MKV_S3_INVALID_REQUEST, i, "operation %u needs \"op\" and \"key\" strings", i);
        return -1;
    }
    kind = json_string_value(op);
    if (split_name(json_string_value(key), json_string_length(key), &t.bucket, &t.key)) {
        txn_error(r, MKV_S3_INVALID_REQUEST, i,
                  "operation %u: \"key\" must be BUCKET/KEY with a valid bucket and key", i);
        return -1;
    }
    if (!strcmp(kind, "put")) {
        t.kind = MKV_TXN_PUT;
        if ((val != NULL) == (b64 != NULL) || (val && !json_is_string(val)) ||
            (b64 && !json_is_string(b64))) {
            txn_error(r, MKV_S3_INVALID_REQUEST, i,
                      "operation %u: a put needs one of \"value\" or \"value_base64\" (a string)",
                      i);
            return -1;
        }
        if (val) {
            n = json_string_length(val);
            if (n > MKV_INLINE_MAX) goto too_big;
            memcpy(data, json_string_value(val), n);
        } else {
            int rv = mkv_base64_decode(json_string_value(b64), json_string_length(b64), data,
                                       MKV_INLINE_MAX, &n);
            if (rv == -ENOSPC) goto too_big;
            if (rv) {
                txn_error(r, MKV_S3_INVALID_REQUEST, i,
                          "operation %u: \"value_base64\" is not base64 (padded, on one line)", i);
                return -1;
            }
        }
        t.data = mkv_slice_mem(data, n);
        if (ct && (!json_is_string(ct) || json_string_length(ct) > 256)) {
            txn_error(r, MKV_S3_INVALID_REQUEST, i, "operation %u: bad \"content_type\"", i);
            return -1;
        }
        t.content_type = mkv_slice_str(ct ? json_string_value(ct) : "");
        if (im && (!json_is_string(im) || json_string_length(im) > MKV_ETAG_MAX)) {
            txn_error(r, MKV_S3_INVALID_REQUEST, i, "operation %u: bad \"if_match\"", i);
            return -1;
        }
        t.if_match = mkv_slice_str(im ? json_string_value(im) : "");
        if (inm) {
            if (!json_is_string(inm) || strcmp(json_string_value(inm), "*") != 0) {
                txn_error(r, MKV_S3_INVALID_REQUEST, i,
                          "operation %u: \"if_none_match\" can only be \"*\"", i);
                return -1;
            }
            t.flags |= MKV_PUT_IF_NONE_MATCH;
        }
        if (must) goto misplaced;
        {
            struct mkv_cksum md5;
            uint8_t dg[MKV_CKSUM_MAX];
            if (mkv_cksum_init(&md5, MKV_CKSUM_MD5)) {
                txn_error(r, MKV_S3_INTERNAL, 0, "no MD5");
                return -1;
            }
            mkv_cksum_update(&md5, data, n);
            mkv_cksum_final(&md5, dg);
            mkv_cksum_free(&md5);
            s3_etag_from_md5(dg, etag, sizeof etag);
        }
        t.etag = mkv_slice_str(etag);
    } else if (!strcmp(kind, "delete")) {
        t.kind = MKV_TXN_DELETE;
        if (val || b64 || ct || im || inm) goto misplaced;
        if (must) {
            if (!json_is_boolean(must)) {
                txn_error(r, MKV_S3_INVALID_REQUEST, i,
                          "operation %u: \"must_exist\" is true or false", i);
                return -1;
            }
            if (json_is_true(must)) t.flags |= MKV_TXN_MUST_EXIST;
        }
    } else {
        txn_error(r, MKV_S3_INVALID_REQUEST, i,
                  "operation %u: \"%s\" is not supported: a transaction holds \"put\" and "
                  "\"delete\" (read with GET /BUCKET/KEY)",
                  i, kind);
        return -1;
    }
    if (mkv_msg_append(&ts->encoded, &mkv_desc_txn_op, &t)) {
        txn_error(r, MKV_S3_INTERNAL, 0, "out of memory");
        return -1;
    }
    if (ts->encoded.len > MKV_TXN_BYTES_MAX) {
        txn_error(r, MKV_S3_ENTITY_TOO_LARGE, i,
                  "the transaction is larger than %u bytes at operation %u", MKV_TXN_BYTES_MAX, i);
        return -1;
    }
    return 0;
too_big:
    txn_error(r, MKV_S3_ENTITY_TOO_LARGE, i,
              "operation %u: a value in a transaction is at most %u bytes (use PUT /BUCKET/KEY "
              "for larger objects)",
              i, MKV_INLINE_MAX);
    return -1;
misplaced:
    txn_error(r, MKV_S3_INVALID_REQUEST, i, "operation %u: a field that does not go with \"%s\"", i,
              kind);
    return -1;
}

/* One result per operation; failed is 0 (all applied) or the 1-based
 * index of the operation that failed, with its message. */
static json_t *results(struct s3req *r, struct txn_state *ts, unsigned failed, const char *why)
{
    const char *flag = r->op == S3_BATCH ? "ok" : "success";
    json_t *arr = json_array(), *o;
    size_t i;
    if (!arr) return NULL;
    json_array_foreach(ts->ops, i, o)
    {
        json_t *res = json_pack("{s:O, s:O, s:b}", "op", json_object_get(o, "op"), "key",
                                json_object_get(o, "key"), flag, failed == 0);
        if (!res || json_array_append_new(arr, res)) {
            json_decref(arr);
            return NULL;
        }
        if (failed == 0) continue;
        json_object_set_new(
            res, "error",
            json_string(i + 1 == failed ? why : "not applied: the transaction failed"));
    }
    return arr;
}

static void on_txn(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct txn_state *ts = r->opstate;
    struct mkv_obj_txn_rep rep;
    json_t *res, *root;
    if (status || mkv_frame_decode(reply, &mkv_desc_obj_txn_rep, &rep)) {
        enum mkv_s3_error e = s3_error_from_status(status ? status : -EPROTO);
        txn_error(r, e, 0, "%s",
                  r->errmsg[0] ? r->errmsg : mkv_strerror(status ? status : -EPROTO));
        return;
    }
    if (rep.failed > ts->n) {
        txn_error(r, MKV_S3_INTERNAL, 0, "bad reply from the metadata service");
        return;
    }
    if (rep.failed) {
        enum mkv_s3_error e = s3_error_from_status((int)rep.status);
        char why[300];
        json_t *err;
        snprintf(why, sizeof why, "%s: %s", mkv_s3_error_code(e), mkv_strerror((int)rep.status));
        res = results(r, ts, rep.failed, why);
        err = json_pack("{s:s, s:s, s:I, s:s}", "code", mkv_s3_error_code(e), "message",
                        mkv_strerror((int)rep.status), "operation", (json_int_t)rep.failed,
                        "request_id", r->request_id);
        root = res && err ? json_pack("{s:b, s:O, s:O, s:I, s:I}", "committed", 0, "error", err,
                                      "results", res, "total_operations", (json_int_t)ts->n,
                                      "successful_operations", (json_int_t)0)
                          : NULL;
        json_decref(res);
        json_decref(err);
        if (!root) {
            s3_error(r, MKV_S3_INTERNAL, NULL);
            return;
        }
        respond_json(r, mkv_s3_error_status(e), root);
        return;
    }
    res = results(r, ts, 0, NULL);
    root =
        res ? json_pack("{s:b, s:O, s:I, s:I}", "committed", 1, "results", res, "total_operations",
                        (json_int_t)ts->n, "successful_operations", (json_int_t)ts->n)
            : NULL;
    json_decref(res);
    if (!root) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    respond_json(r, 200, root);
}

static void on_txn_body(struct s3req *r, int status)
{
    struct txn_state *ts = r->opstate;
    struct mkv_obj_txn_req q;
    json_error_t jerr;
    json_t *ops, *o;
    uint8_t *data;
    size_t i;
    if (status) {
        s3_answer_pipe_failure(r, status);
        return;
    }
    ts->doc = json_loadb((const char *)r->xml.p, r->xml.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!ts->doc) {
        txn_error(r, MKV_S3_INVALID_REQUEST, 0, "malformed JSON at line %d column %d: %s",
                  jerr.line, jerr.column, jerr.text);
        return;
    }
    ops = json_object_get(ts->doc, "operations");
    if (!ops) ops = json_object_get(ts->doc, "ops");
    if (!json_is_object(ts->doc) || !json_is_array(ops) || json_object_size(ts->doc) != 1) {
        txn_error(r, MKV_S3_INVALID_REQUEST, 0,
                  "the body must be {\"operations\": [...]} (or {\"ops\": [...]})");
        return;
    }
    ts->ops = ops;
    ts->n = (unsigned)json_array_size(ops);
    if (ts->n == 0 || ts->n > MKV_MULTI_MAX) {
        txn_error(r, MKV_S3_INVALID_REQUEST, 0, "a transaction holds 1 to %u operations",
                  MKV_MULTI_MAX);
        return;
    }
    data = malloc(MKV_INLINE_MAX);
    if (!data) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    json_array_foreach(ops, i, o)
    {
        if (encode_op(r, ts, (unsigned)i + 1, o, data)) {
            free(data);
            return;
        }
    }
    free(data);
    q.ops = mkv_slice_mem(ts->encoded.p, ts->encoded.len);
    if (s3_meta(r, 0, MKV_MSG_OBJ_TXN, &mkv_desc_obj_txn_req, &q, on_txn))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

void s3_op_transaction(struct s3req *r)
{
    struct txn_state *ts = calloc(1, sizeof *ts);
    if (!ts) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    r->opstate = ts;
    r->opstate_free = txn_state_free;
    s3_read_small_body(r, TXN_BODY_MAX, on_txn_body);
}
