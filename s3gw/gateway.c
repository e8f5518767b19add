/* minikv gateway: workers, routing, request lifecycle, responses. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "authn.h"
#include "gw.h"
#include "minikv/config.h"
#include "minikv/err.h"
#include "minikv/log.h"

const char *const s3_op_names[S3_OP_COUNT] = {
#define S3_OP_NAME(id, name) name,
    MKV_S3_OPS(S3_OP_NAME)
#undef S3_OP_NAME
};

/* ---- dates and XML ---- */

void s3_http_date(int64_t ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

void s3_iso_date(int64_t ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    char base[32];
    gmtime_r(&t, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", base, (int)((ns / 1000000) % 1000));
}

void s3_xml_begin(struct mkv_buf *b, const char *root)
{
    mkv_buf_printf(b,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%s "
                   "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
                   root);
}

void s3_xml_elemn(struct mkv_buf *b, const char *name, const char *value, size_t len)
{
    mkv_buf_printf(b, "<%s>", name);
    mkv_buf_put_xml(b, value, len);
    mkv_buf_printf(b, "</%s>", name);
}

void s3_xml_elem(struct mkv_buf *b, const char *name, const char *value)
{
    s3_xml_elemn(b, name, value, strlen(value));
}

void s3_xml_elem_u64(struct mkv_buf *b, const char *name, uint64_t v)
{
    mkv_buf_printf(b, "<%s>%" PRIu64 "</%s>", name, v, name);
}

/* ---- request lifecycle ---- */

void s3req_unref(struct s3req *r)
{
    if (--r->refs > 0) return;
    if (r->writer) mkv_writer_abort(r->writer);
    if (r->reader) mkv_reader_abort(r->reader);
    if (r->opstate_free && r->opstate) r->opstate_free(r->opstate);
    if (r->pipe) s3_pipe_free(r->pipe);
    free(r->smallbody);
    authn_free(r);
    mkv_buf_free(&r->xml);
    free(r->key);
    free(r);
}

void s3req_done(struct s3req *r)
{
    struct gw_stats *st = &r->wk->stats;
    int cls = r->status_code / 100;
    if (r->state == ST_DONE) return;
    r->state = ST_DONE;
    if (cls < 1 || cls > 5) cls = 0;
    mkv_counter_add(&st->requests[r->op][cls], 1);
    mkv_hist_observe(&st->latency[r->op], mkv_mono_ns() - r->http->start_ns);
    mkv_counter_add(&st->bytes_out, r->bytes_out);
    MKV_DEBUG("s3gw", "request op=%s status=%d bucket=%s rid=%s", s3_op_names[r->op],
              r->status_code, r->bucket, r->request_id);
    r->http->data = NULL;
    s3req_unref(r);
}

static void on_s3_call(struct mkv_meta_req *m, int status, struct mkv_frame *reply)
{
    struct s3_call *c = MKV_CONTAINER_OF(m, struct s3_call, m);
    struct s3req *r = c->r;
    c->busy = 0;
    if (status) snprintf(r->errmsg, sizeof r->errmsg, "%s", m->errmsg);
    if (!r->aborted) c->cb(r, status, reply);
    s3req_unref(r);
}

int s3_meta(struct s3req *r, int slot, uint16_t type, const struct mkv_msgdesc *d, const void *msg,
            void (*cb)(struct s3req *r, int status, struct mkv_frame *reply))
{
    struct s3_call *c = &r->calls[slot];
    int rv;
    c->r = r;
    c->cb = cb;
    c->busy = 1;
    r->refs++;
    rv = mkv_meta_call(r->wk->client, &c->m, type, d, msg, on_s3_call);
    if (rv) {
        c->busy = 0;
        r->refs--;
    }
    return rv;
}

/* ---- responses ---- */

static unsigned base_headers(struct s3req *r, struct mkv_http_header *h, unsigned cap,
                             const struct mkv_http_header *extra, unsigned nextra)
{
    unsigned n = 0;
    h[n].name = "x-amz-request-id";
    h[n++].value = r->request_id;
    for (unsigned i = 0; i < nextra && n < cap; i++) h[n++] = extra[i];
    return n;
}

void s3_respond_body(struct s3req *r, int status, const char *content_type, struct mkv_buf *b,
                     const struct mkv_http_header *extra, unsigned nextra)
{
    struct mkv_http_header h[24];
    unsigned n = base_headers(r, h, 23, extra, nextra);
    h[n].name = "Content-Type";
    h[n++].value = content_type;
    r->status_code = status;
    r->responded = 1;
    r->bytes_out += b->len;
    mkv_http_respond(r->http, status, h, n, b->p, b->len);
    mkv_buf_free(b);
    s3req_done(r);
}

void s3_respond_xml(struct s3req *r, int status, struct mkv_buf *b,
                    const struct mkv_http_header *extra, unsigned nextra)
{
    s3_respond_body(r, status, "application/xml", b, extra, nextra);
}

void s3_respond_empty(struct s3req *r, int status, const struct mkv_http_header *extra,
                      unsigned nextra)
{
    struct mkv_http_header h[24];
    unsigned n = base_headers(r, h, 24, extra, nextra);
    r->status_code = status;
    r->responded = 1;
    mkv_http_respond(r->http, status, h, n, NULL, 0);
    s3req_done(r);
}

void s3_error(struct s3req *r, enum mkv_s3_error e, const char *message)
{
    s3_error_h(r, e, message, NULL, 0);
}

void s3_error_h(struct s3req *r, enum mkv_s3_error e, const char *message,
                const struct mkv_http_header *extra, unsigned nextra)
{
    struct mkv_buf b = MKV_BUF_INIT;
    struct mkv_http_header h[8];
    int status = mkv_s3_error_status(e);
    unsigned n = 0;
    if (r->responded) return;
    for (unsigned i = 0; i < nextra && n < 6; i++) h[n++] = extra[i];
    if (e == MKV_S3_SIGNATURE_MISMATCH || e == MKV_S3_ACCESS_DENIED ||
        e == MKV_S3_INVALID_ACCESS_KEY)
        mkv_counter_add(&r->wk->stats.auth_failures, 1);
    if (status == 503) {
        h[n].name = "Retry-After";
        h[n++].value = "1";
    }
    if (!strcmp(r->http->method, "HEAD") || status == 304) {
        /* No body for HEAD; S3 still sends the code in a header. */
        h[n].name = "x-minikv-error-code";
        h[n++].value = mkv_s3_error_code(e);
        s3_respond_empty(r, status, h, n);
        return;
    }
    s3_xml_begin(&b, "Error");
    b.len -= strlen(
        " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"); /* <Error> has no namespace */
    mkv_buf_puts(&b, ">");
    s3_xml_elem(&b, "Code", mkv_s3_error_code(e));
    s3_xml_elem(&b, "Message", message && *message ? message : mkv_s3_error_message(e));
    if (r->bucket[0]) s3_xml_elem(&b, "BucketName", r->bucket);
    if (r->key && r->key[0]) s3_xml_elem(&b, "Key", r->key);
    s3_xml_elem(&b, "Resource", r->http->raw_path);
    s3_xml_elem(&b, "RequestId", r->request_id);
    mkv_buf_puts(&b, "</Error>");
    s3_respond_xml(r, status, &b, h, n);
}

enum mkv_s3_error s3_error_from_status(int status)
{
    switch (status) {
    case MKV_ENOBUCKET: return MKV_S3_NO_SUCH_BUCKET;
    case MKV_EBUCKETNOTEMPTY: return MKV_S3_BUCKET_NOT_EMPTY;
    case MKV_EBUCKETEXISTS: return MKV_S3_BUCKET_EXISTS;
    case MKV_ENOUPLOAD: return MKV_S3_NO_SUCH_UPLOAD;
    case MKV_EINVALIDPART: return MKV_S3_INVALID_PART;
    case MKV_EPARTORDER: return MKV_S3_INVALID_PART_ORDER;
    case MKV_EPRECONDITION: return MKV_S3_PRECONDITION_FAILED;
    case MKV_ETOOSMALL: return MKV_S3_ENTITY_TOO_SMALL;
    case MKV_EKEYCONFLICT:
    case -ENOTDIR:
    case -EISDIR: return MKV_S3_KEY_CONFLICT;
    case MKV_EBADNAME: return MKV_S3_INVALID_ARGUMENT;
    case -ENAMETOOLONG: return MKV_S3_KEY_TOO_LONG;
    case MKV_ENOKEY: return MKV_S3_INVALID_ACCESS_KEY;
    case MKV_ENOTFOUND:
    case -ENOENT: return MKV_S3_NO_SUCH_KEY;
    case -ENOSPC:
    case -EDQUOT: return MKV_S3_INSUFFICIENT_STORAGE;
    case MKV_ENOTLEADER:
    case MKV_EUNAVAILABLE:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ETIMEDOUT:
    case -EHOSTUNREACH: return MKV_S3_SERVICE_UNAVAILABLE;
    default: return MKV_S3_INTERNAL;
    }
}

void s3_error_status(struct s3req *r, int status, const char *context)
{
    enum mkv_s3_error e = s3_error_from_status(status);
    char msg[384];
    if (e == MKV_S3_INTERNAL || e == MKV_S3_SERVICE_UNAVAILABLE ||
        e == MKV_S3_INSUFFICIENT_STORAGE) {
        MKV_WARN("s3gw", "request failed op=%s status=%d err=\"%s\" context=\"%s\" rid=%s",
                 s3_op_names[r->op], status, mkv_strerror(status), context ? context : "",
                 r->request_id);
        snprintf(msg, sizeof msg, "%s (%s)", mkv_s3_error_message(e), mkv_strerror(status));
        s3_error(r, e, msg);
        return;
    }
    if (e == MKV_S3_KEY_CONFLICT || e == MKV_S3_INVALID_ARGUMENT) {
        snprintf(msg, sizeof msg, "%s: %s", mkv_s3_error_message(e),
                 context && *context ? context : mkv_strerror(status));
        s3_error(r, e, msg);
        return;
    }
    s3_error(r, e, NULL);
}

/* ---- small bodies ---- */

struct small_body
{
    size_t max;
    void (*cb)(struct s3req *r, int status);
};

/* Content-MD5, x-amz-content-sha256 and x-amz-checksum-* of a body read
 * whole. Returns 0 or an S3 error. */
static int check_small_body(struct s3req *r)
{
    struct mkv_body_check bc;
    enum mkv_s3_error e = mkv_body_check_init(&bc, r->http, 0, authn_streaming(r));
    if (e != MKV_S3_OK) return (int)e;
    if (r->xml.len) mkv_body_check_update(&bc, r->xml.p, r->xml.len);
    e = mkv_body_check_finish(&bc);
    mkv_body_check_free(&bc);
    return (int)e;
}

static int xml_sink(void *arg, const uint8_t *p, size_t n)
{
    struct s3req *r = arg;
    struct small_body *sb = r->smallbody;
    if (r->xml.len + n > sb->max) return MKV_S3_INVALID_REQUEST;
    return mkv_buf_append(&r->xml, p, n) ? -ENOMEM : 0;
}

static void on_small_body(struct mkv_http_req *h, int status, const uint8_t *data, size_t len)
{
    struct s3req *r = h->data;
    struct small_body *sb;
    if (!r || r->aborted) return;
    sb = r->smallbody;
    if (status < 0) {
        r->smallbody = NULL;
        sb->cb(r, status);
        free(sb);
        return;
    }
    if (len) {
        int rv = authn_body(r, data, len, xml_sink, r);
        mkv_counter_add(&r->wk->stats.bytes_in, len);
        if (rv) {
            r->smallbody = NULL;
            mkv_http_pause_body(h);
            sb->cb(r, rv);
            free(sb);
        }
        return;
    }
    r->smallbody = NULL;
    status = authn_body_end(r);
    if (status == 0) status = check_small_body(r);
    sb->cb(r, status);
    free(sb);
}

void s3_read_small_body(struct s3req *r, size_t max, void (*cb)(struct s3req *r, int status))
{
    struct small_body *sb = calloc(1, sizeof *sb);
    if (!sb) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    if (r->http->has_content_length && r->http->content_length > max) {
        free(sb);
        mkv_http_close_after(r->http);
        s3_error(r, MKV_S3_INVALID_REQUEST, "Request body too large");
        return;
    }
    sb->max = max;
    sb->cb = cb;
    r->smallbody = sb;
    mkv_http_read_body(r->http, on_small_body);
}

/* ---- routing ---- */

static int has_query(const struct mkv_http_req *h, const char *name)
{
    char v[8];
    return mkv_http_query(h, name, v, sizeof v) != 0; /* present, even if long/malformed */
}

/* Sub-resources S3 has and minikv does not: answered with NotImplemented. */
static const char *const unsupported_subresources[] = {
    "acl",
    "policy",
    "policyStatus",
    "cors",
    "lifecycle",
    "tagging",
    "website",
    "logging",
    "notification",
    "replication",
    "encryption",
    "object-lock",
    "ownershipControls",
    "publicAccessBlock",
    "accelerate",
    "requestPayment",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
    "retention",
    "legal-hold",
    "torrent",
    "restore",
    "select",
    "attributes",
    "website",
    "session",
};

static enum s3_op route_object(struct s3req *r)
{
    const struct mkv_http_req *h = r->http;
    const char *m = h->method;
    int upload_id = has_query(h, "uploadId"), part = has_query(h, "partNumber");
    if (!strcmp(m, "PUT")) {
        if (mkv_http_header(h, "x-amz-copy-source"))
            return upload_id && part ? S3_UPLOAD_PART_COPY : S3_COPY_OBJECT;
        return upload_id && part ? S3_UPLOAD_PART : S3_PUT_OBJECT;
    }
    if (!strcmp(m, "GET")) return upload_id ? S3_LIST_PARTS : S3_GET_OBJECT;
    if (!strcmp(m, "HEAD")) return S3_HEAD_OBJECT;
    if (!strcmp(m, "DELETE")) return upload_id ? S3_ABORT_MPU : S3_DELETE_OBJECT;
    if (!strcmp(m, "POST")) {
        if (has_query(h, "uploads")) return S3_CREATE_MPU;
        if (upload_id) return S3_COMPLETE_MPU;
        return S3_NOT_IMPLEMENTED;
    }
    return S3_INVALID;
}

static enum s3_op route_bucket(struct s3req *r)
{
    const struct mkv_http_req *h = r->http;
    const char *m = h->method;
    if (!strcmp(m, "GET")) {
        char lt[8];
        if (has_query(h, "location")) return S3_GET_LOCATION;
        if (has_query(h, "versioning")) return S3_GET_VERSIONING;
        if (has_query(h, "uploads")) return S3_LIST_UPLOADS;
        if (has_query(h, "versions")) return S3_LIST_VERSIONS;
        if (mkv_http_query(h, "list-type", lt, sizeof lt) == 1) {
            if (!strcmp(lt, "2")) return S3_LIST_OBJECTS_V2;
            return S3_INVALID;
        }
        return S3_LIST_OBJECTS;
    }
    if (!strcmp(m, "PUT"))
        return has_query(h, "versioning") ? S3_NOT_IMPLEMENTED : S3_CREATE_BUCKET;
    if (!strcmp(m, "HEAD")) return S3_HEAD_BUCKET;
    if (!strcmp(m, "DELETE")) return S3_DELETE_BUCKET;
    if (!strcmp(m, "POST")) return has_query(h, "delete") ? S3_DELETE_OBJECTS : S3_NOT_IMPLEMENTED;
    return S3_INVALID;
}

/* Fills r->bucket/key from the Host header (virtual-host style) or the
 * path. Returns 0 or an S3 error. */
static enum mkv_s3_error route_names(struct s3req *r, const char *path)
{
    const char *host = mkv_http_header(r->http, "Host");
    const char *domain = r->wk->gw->o.vhost_domain;
    const char *rest = path;
    size_t blen = 0;
    if (host && domain && *domain) {
        size_t hl = strcspn(host, ":"), dl = strlen(domain);
        if (hl > dl + 1 && host[hl - dl - 1] == '.' && !strncasecmp(host + hl - dl, domain, dl)) {
            blen = hl - dl - 1;
            if (blen > MKV_BUCKET_MAX) return MKV_S3_INVALID_BUCKET_NAME;
            memcpy(r->bucket, host, blen);
            r->bucket[blen] = '\0';
            r->vhost = 1;
            rest = path[0] == '/' ? path + 1 : path;
            goto key;
        }
    }
    if (*rest == '/') rest++;
    blen = strcspn(rest, "/");
    if (blen > MKV_BUCKET_MAX) return MKV_S3_INVALID_BUCKET_NAME;
    memcpy(r->bucket, rest, blen);
    r->bucket[blen] = '\0';
    rest += blen;
    if (*rest == '/') rest++;
key:
    r->keylen = strlen(rest);
    if (r->keylen > MKV_KEY_MAX) return MKV_S3_KEY_TOO_LONG;
    r->key = strdup(rest);
    if (!r->key) return MKV_S3_INTERNAL;
    return MKV_S3_OK;
}

static void dispatch(struct s3req *r)
{
    r->state = ST_RUNNING;
    switch (r->op) {
    case S3_LIST_BUCKETS: s3_op_list_buckets(r); break;
    case S3_CREATE_BUCKET: s3_op_create_bucket(r); break;
    case S3_HEAD_BUCKET: s3_op_head_bucket(r); break;
    case S3_DELETE_BUCKET: s3_op_delete_bucket(r); break;
    case S3_GET_LOCATION: s3_op_get_location(r); break;
    case S3_GET_VERSIONING: s3_op_get_versioning(r); break;
    case S3_LIST_OBJECTS:
    case S3_LIST_OBJECTS_V2:
    case S3_LIST_VERSIONS: s3_op_list_objects(r); break;
    case S3_LIST_UPLOADS: s3_op_list_uploads(r); break;
    case S3_DELETE_OBJECTS: s3_op_delete_objects(r); break;
    case S3_BATCH:
    case S3_TRANSACTION: s3_op_transaction(r); break;
    case S3_PUT_OBJECT: s3_op_put_object(r); break;
    case S3_COPY_OBJECT: s3_op_copy_object(r); break;
    case S3_GET_OBJECT:
    case S3_HEAD_OBJECT: s3_op_get_object(r); break;
    case S3_DELETE_OBJECT: s3_op_delete_object(r); break;
    case S3_CREATE_MPU: s3_op_create_mpu(r); break;
    case S3_UPLOAD_PART: s3_op_upload_part(r); break;
    case S3_UPLOAD_PART_COPY: s3_op_upload_part_copy(r); break;
    case S3_COMPLETE_MPU: s3_op_complete_mpu(r); break;
    case S3_ABORT_MPU: s3_op_abort_mpu(r); break;
    case S3_LIST_PARTS: s3_op_list_parts(r); break;
    case S3_NOT_IMPLEMENTED:
        s3_error(r, MKV_S3_NOT_IMPLEMENTED,
                 "minikv does not implement this operation (see docs/s3.md)");
        break;
    default: s3_error(r, MKV_S3_METHOD_NOT_ALLOWED, NULL); break;
    }
}

static void on_authenticated(struct s3req *r, enum mkv_s3_error e, const char *message)
{
    if (e != MKV_S3_OK) {
        s3_error(r, e, message);
        return;
    }
    dispatch(r);
}

static int bucket_level_op(enum s3_op op)
{
    return op != S3_LIST_BUCKETS;
}

static void on_request(struct mkv_http_req *h, void *ctx)
{
    struct gw_worker *wk = ctx;
    struct s3req *r = calloc(1, sizeof *r);
    const char *path = h->path;
    enum mkv_s3_error e;
    if (!r) {
        mkv_http_respond(h, 503, NULL, 0, NULL, 0);
        return;
    }
    r->http = h;
    r->wk = wk;
    r->refs = 1;
    r->state = ST_ROUTED;
    snprintf(r->request_id, sizeof r->request_id, "%08" PRIX64 "%08" PRIX64,
             wk->gw->rid_prefix ^ (uint64_t)wk->index, ++wk->next_request);
    h->data = r;
    if (!strcmp(path, "/health/live") || !strcmp(path, "/health/ready")) {
        r->op = S3_HEALTH;
        gw_health(r, path[8] == 'r');
        return;
    }
    if (!strcmp(path, "/metrics")) {
        r->op = S3_METRICS;
        gw_metrics_render(r);
        return;
    }
    if (!strncmp(path, "/admin/", 7)) {
        r->op = S3_ADMIN;
        r->key = strdup("");
        if (strcmp(path, "/admin/status") != 0) {
            s3_error(r, MKV_S3_NOT_IMPLEMENTED, "Unknown admin endpoint");
            return;
        }
        authn_start(r, gw_admin_status_authed);
        return;
    }
    /* The seed's multi-key REST calls; a bucket named "batch" or
     * "transaction" has no POST in S3 (browser form uploads are not built). */
    if (!strcmp(h->method, "POST") && (!strcmp(path, "/batch") || !strcmp(path, "/transaction"))) {
        r->op = path[1] == 'b' ? S3_BATCH : S3_TRANSACTION;
        r->key = strdup("");
        if (!r->key) {
            s3_error(r, MKV_S3_INTERNAL, NULL);
            return;
        }
        r->state = ST_AUTH;
        authn_start(r, on_authenticated);
        return;
    }
    /* S3 is served at the root and, as in the seed, under /s3/. */
    if (!strncmp(path, "/s3/", 4) || !strcmp(path, "/s3")) path += 3;
    e = route_names(r, path);
    if (e != MKV_S3_OK) {
        r->op = S3_INVALID;
        s3_error(r, e, NULL);
        return;
    }
    if (!r->bucket[0]) {
        r->op = !strcmp(h->method, "GET") ? S3_LIST_BUCKETS : S3_INVALID;
    } else if (r->keylen == 0) {
        r->op = route_bucket(r);
    } else {
        r->op = route_object(r);
    }
    for (size_t i = 0; i < MKV_ARRAY_SIZE(unsupported_subresources); i++) {
        if (has_query(h, unsupported_subresources[i])) {
            r->op = S3_NOT_IMPLEMENTED;
            break;
        }
    }
    if (r->op == S3_INVALID && !strcmp(h->method, "OPTIONS")) r->op = S3_NOT_IMPLEMENTED;
    if (bucket_level_op(r->op) && r->bucket[0] == '\0' && r->op != S3_INVALID) {
        s3_error(r, MKV_S3_INVALID_BUCKET_NAME, NULL);
        return;
    }
    r->state = ST_AUTH;
    authn_start(r, on_authenticated);
}

static void on_abort(struct mkv_http_req *h, void *ctx)
{
    struct s3req *r = h->data;
    (void)ctx;
    if (!r) return;
    r->aborted = 1;
    h->data = NULL;
    if (r->writer) {
        mkv_writer_abort(r->writer);
        r->writer = NULL;
    }
    if (r->reader) {
        mkv_reader_abort(r->reader);
        r->reader = NULL;
    }
    free(r->smallbody);
    r->smallbody = NULL;
    if (r->state != ST_DONE) {
        r->status_code = 499; /* client closed */
        r->state = ST_DONE;
        mkv_counter_add(&r->wk->stats.requests[r->op][0], 1);
    }
    s3req_unref(r);
}

static const struct mkv_http_handler handler = {on_request, on_abort};

/* ---- workers ---- */

static void on_wakeup(uv_async_t *a)
{
    struct gw_worker *wk = a->data;
    if (!wk->stopping) return;
    if (wk->http) {
        mkv_http_server_stop(wk->http, NULL, NULL);
        wk->http = NULL;
    }
    if (wk->client) {
        mkv_client_close(wk->client);
        wk->client = NULL;
    }
    uv_close((uv_handle_t *)&wk->wakeup, NULL);
}

static void worker_main(void *arg)
{
    struct gw_worker *wk = arg;
    struct mkv_gw *gw = wk->gw;
    struct mkv_http_server_opts ho = {0};
    struct mkv_client_opts co = {0};
    struct mkv_cred cred;
    int rv;
    co.meta = gw->o.meta;
    co.chunk = gw->o.chunk;
    co.min_replicas = gw->o.min_replicas;
    /* The gateway talks to the cluster as the cluster itself. */
    mkv_cred_cluster(&cred, gw->cluster_key);
    co.cred = &cred;
    co.local_meta_read = gw->o.local_meta_read;
    co.local_meta_ctx = gw->o.local_meta_ctx;
    co.local_chunk_read = gw->o.local_chunk_read;
    co.local_chunk_ctx = gw->o.local_chunk_ctx;
    rv = mkv_client_new(&wk->loop, &co, &wk->client, wk->start_err, sizeof wk->start_err);
    memset(&cred, 0, sizeof cred);
    if (rv == 0) {
        ho.listen = gw->o.listen;
        ho.tls_cert = gw->o.tls_cert;
        ho.tls_key = gw->o.tls_key;
        ho.reuseport = gw->nworkers > 1;
        rv = mkv_http_server_start(&wk->loop, &ho, &handler, wk, &wk->http, wk->start_err,
                                   sizeof wk->start_err);
    }
    wk->start_rv = rv;
    uv_async_init(&wk->loop, &wk->wakeup, on_wakeup);
    wk->wakeup.data = wk;
    if (rv) {
        wk->stopping = 1;
        on_wakeup(&wk->wakeup);
    }
    uv_sem_post(&wk->started_sem);
    uv_run(&wk->loop, UV_RUN_DEFAULT);
}

static int load_cluster_key(struct mkv_gw *gw, char *err, size_t errlen)
{
    return gw_keys_init(gw, err, errlen);
}

int mkv_gw_start(const struct mkv_gw_opts *o, struct mkv_gw **out, char *err, size_t errlen)
{
    struct mkv_gw *gw;
    int rv, n = o->threads;
    struct rlimit rl;
    if (!o->listen || !o->meta)
        return mkv_errf(err, errlen, -EINVAL, "gateway needs listen and meta addresses");
    if (o->inline_max > MKV_INLINE_MAX)
        return mkv_errf(err, errlen, -EINVAL, "inline-max %llu is over the limit of %u bytes",
                        (unsigned long long)o->inline_max, MKV_INLINE_MAX);
    if (n <= 0) n = (int)uv_available_parallelism();
    if (n > 64) n = 64;
    /* Many idle clients must not run us out of descriptors. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    gw = calloc(1, sizeof *gw);
    if (!gw) return mkv_errf(err, errlen, -ENOMEM, "gateway");
    gw->o = *o;
    if (!gw->o.region) gw->o.region = "us-east-1";
    if (!gw->o.vhost_domain) gw->o.vhost_domain = "localhost";
    if (!gw->o.max_object_size) gw->o.max_object_size = 5ull << 30;
    gw->start_time = mkv_now_ns();
    if (getrandom(&gw->rid_prefix, sizeof gw->rid_prefix, 0) != sizeof gw->rid_prefix)
        gw->rid_prefix = (uint64_t)mkv_now_ns();
    rv = load_cluster_key(gw, err, errlen);
    if (rv) goto err_after_alloc;
    gw->workers = calloc((size_t)n, sizeof *gw->workers);
    if (!gw->workers) {
        rv = mkv_errf(err, errlen, -ENOMEM, "gateway workers");
        goto err_after_alloc;
    }
    gw->nworkers = n;
    for (int i = 0; i < n; i++) {
        struct gw_worker *wk = &gw->workers[i];
        wk->gw = gw;
        wk->index = i;
        uv_loop_init(&wk->loop);
        uv_sem_init(&wk->started_sem, 0);
        if (i > 0 && gw->port) {
            /* Later workers share the port the first one got (port 0). */
            char host[256];
            int port;
            if (mkv_parse_hostport(o->listen, host, sizeof host, &port) == 0 && port == 0) {
                snprintf(gw->listen_buf, sizeof gw->listen_buf,
                         strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, gw->port);
                gw->o.listen = gw->listen_buf;
            }
        }
        rv = uv_thread_create(&wk->thread, worker_main, wk);
        if (rv) {
            rv = mkv_errf(err, errlen, rv, "starting gateway worker");
            gw->nworkers = i;
            break;
        }
        wk->started = 1;
        uv_sem_wait(&wk->started_sem);
        if (wk->start_rv) {
            rv = wk->start_rv;
            snprintf(err, errlen, "%s", wk->start_err);
            gw->nworkers = i + 1;
            break;
        }
        if (i == 0) gw->port = mkv_http_server_port(wk->http);
    }
    if (rv) {
        mkv_gw_stop(gw);
        return rv;
    }
    rv = gw_keys_bootstrap(gw, err, errlen);
    if (rv) {
        mkv_gw_stop(gw);
        return rv;
    }
    __atomic_store_n(&gw->keys_ready, 1, __ATOMIC_RELEASE);
    *out = gw;
    return 0;
err_after_alloc:
    free(gw);
    return rv;
}

int mkv_gw_validate_inline_max(const char *value, char *err, size_t errlen)
{
    uint64_t v;
    if (mkv_parse_size(value, &v) || v > MKV_INLINE_MAX)
        return mkv_errf(err, errlen, -EINVAL, "'%s' is not a size of at most %uK", value,
                        MKV_INLINE_MAX >> 10);
    return 0;
}

int mkv_gw_port(const struct mkv_gw *g)
{
    return g->port;
}

void mkv_gw_stop(struct mkv_gw *g)
{
    for (int i = 0; i < g->nworkers; i++) {
        struct gw_worker *wk = &g->workers[i];
        if (!wk->started) continue;
        wk->stopping = 1;
        uv_async_send(&wk->wakeup);
    }
    for (int i = 0; i < g->nworkers; i++) {
        struct gw_worker *wk = &g->workers[i];
        if (!wk->started) continue;
        uv_thread_join(&wk->thread);
        uv_loop_close(&wk->loop);
        uv_sem_destroy(&wk->started_sem);
    }
    free(g->workers);
    free(g);
}
