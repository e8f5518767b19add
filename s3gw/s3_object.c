/* minikv gateway: object operations (PutObject, GetObject, HeadObject,
 * DeleteObject, CopyObject) and the two data pipelines they share:
 *
 *  - request body -> (aws-chunked decoding and signature checks, authn.c)
 *    -> checksums (checksum.c) -> client writer -> chunk servers. The
 *    socket is paused whenever the writer's window is full, so memory stays
 *    flat whatever the object size.
 *  - chunk servers -> client reader -> HTTP response, zero-copy: each piece
 *    is written straight from the reply frame and released when the socket
 *    took it, which opens the read window again.
 *
 * Nothing becomes visible before the metadata commit (OBJ_PUT through Raft)
 * that follows the last durable chunk write: a failed or abandoned upload
 * leaves only prepared chunk data, which is discarded or collected. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authn.h"
#include "gw.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/names.h"

#define USER_META_MAX 2048 /* S3's limit on x-amz-meta-* (names + values) */
#define EMPTY_ETAG "\"d41d8cd98f00b204e9800998ecf8427e\""

/* ---- attributes stored with an object ---- */

/* Request headers kept with an object and returned on GET/HEAD. */
static const char *const stored_headers[] = {
    "Content-Encoding", "Content-Disposition", "Content-Language",
    "Cache-Control",    "Expires",             "x-amz-website-redirect-location",
};

int s3_put_attr(struct mkv_buf *attrs, const char *name, const char *value)
{
    struct mkv_attr a;
    a.name = mkv_slice_str(name);
    a.value = mkv_slice_str(value);
    if (a.name.len > 256 || a.value.len > 4096) return -EINVAL;
    return mkv_msg_append(attrs, &mkv_desc_attr, &a);
}

int s3_collect_attrs(struct s3req *r, struct mkv_buf *attrs, const char **content_type)
{
    const struct mkv_http_req *h = r->http;
    size_t user = 0;
    *content_type = mkv_http_header(h, "Content-Type");
    for (unsigned i = 0; i < h->nheaders; i++) {
        const char *n = h->headers[i].name, *v = h->headers[i].value;
        if (strncasecmp(n, "x-amz-meta-", 11) == 0) {
            char lower[257];
            size_t len = strlen(n);
            if (len > 256) return MKV_S3_INVALID_ARGUMENT;
            for (size_t k = 0; k <= len; k++) lower[k] = (char)tolower((unsigned char)n[k]);
            user += len - 11 + strlen(v);
            if (user > USER_META_MAX) return MKV_S3_INVALID_ARGUMENT;
            if (s3_put_attr(attrs, lower, v)) return MKV_S3_INVALID_ARGUMENT;
        }
    }
    for (size_t i = 0; i < MKV_ARRAY_SIZE(stored_headers); i++) {
        const char *v = mkv_http_header(h, stored_headers[i]);
        if (v && s3_put_attr(attrs, stored_headers[i], v)) return MKV_S3_INVALID_ARGUMENT;
    }
    if (attrs->len > MKV_ATTR_MAX / 2) return MKV_S3_INVALID_ARGUMENT;
    return MKV_S3_OK;
}

enum mkv_s3_error s3_check_unsupported_headers(struct s3req *r)
{
    const struct mkv_http_req *h = r->http;
    const char *v;
    if ((v = mkv_http_header(h, "x-amz-storage-class")) && strcmp(v, "STANDARD") != 0)
        return MKV_S3_INVALID_STORAGE_CLASS;
    if ((v = mkv_http_header(h, "x-amz-acl")) && strcmp(v, "private") != 0)
        return MKV_S3_NOT_IMPLEMENTED;
    if (mkv_http_header(h, "x-amz-server-side-encryption-customer-algorithm") ||
        mkv_http_header(h, "x-amz-server-side-encryption") || mkv_http_header(h, "x-amz-tagging") ||
        mkv_http_header(h, "x-amz-object-lock-mode") ||
        mkv_http_header(h, "x-amz-object-lock-legal-hold") ||
        mkv_http_header(h, "x-amz-grant-read") || mkv_http_header(h, "x-amz-grant-full-control"))
        return MKV_S3_NOT_IMPLEMENTED;
    return MKV_S3_OK;
}

/* ---- pipelines: body or source object -> new chunks ---- */

struct put_pipe
{
    struct s3req *r;
    struct mkv_body_check bc;
    int have_bc;
    uint64_t expected; /* decoded body length; UINT64_MAX when unknown */
    uint64_t received;
    int body_done;
    int failed;
    s3_pipe_done_cb done;
    struct body_result res;
    /* copy source */
    struct mkv_reader *src;
    struct mkv_cksum md5;
    int have_md5;
    unsigned held; /* reader pieces kept until the writer has room */
    int inl;       /* small object: collected in res.data, stored inline (no writer) */
};

void body_result_free(struct body_result *res)
{
    mkv_buf_free(&res->attrs);
    mkv_buf_free(&res->extents);
    mkv_buf_free(&res->data);
}

/* Where the data of a pipeline goes: the inline buffer or the writer.
 * Returns 0, 1 when the writer's window is full, or a negative code. */
static int pipe_sink(struct put_pipe *pp, const uint8_t *p, size_t n)
{
    if (pp->inl) {
        if (pp->res.data.len + n > MKV_INLINE_MAX) return -EFBIG;
        return mkv_buf_append(&pp->res.data, p, n) ? -ENOMEM : 0;
    }
    return mkv_writer_write(pp->r->writer, p, n);
}

/* All data is in: inline data is complete at once, the writer reports
 * through on_writer_done once everything is durable. */
static int pipe_finish(struct put_pipe *pp)
{
    if (pp->inl) {
        pp->done(pp->r, 0, &pp->res);
        return 0;
    }
    return mkv_writer_finish(pp->r->writer);
}

void s3_pipe_free(struct put_pipe *pp)
{
    if (pp->have_bc) mkv_body_check_free(&pp->bc);
    if (pp->have_md5) mkv_cksum_free(&pp->md5);
    body_result_free(&pp->res);
    free(pp);
}

void s3_answer_pipe_failure(struct s3req *r, int status)
{
    if (status > 0) s3_error(r, (enum mkv_s3_error)status, authn_message(r));
    else s3_error_status(r, status, "storing data");
}

/* Fails the pipeline once: drops the written data and reports. */
static void pipe_fail(struct put_pipe *pp, int status)
{
    struct s3req *r = pp->r;
    if (pp->failed) return;
    pp->failed = 1;
    if (r->writer) {
        mkv_writer_abort(r->writer);
        r->writer = NULL;
    }
    if (pp->src) {
        mkv_reader_abort(pp->src);
        pp->src = NULL;
        r->reader = NULL;
    }
    pp->done(r, status, NULL);
}

static void on_writer_ready(struct mkv_writer *w, void *data)
{
    struct put_pipe *pp = data;
    (void)w;
    if (pp->src) {
        while (pp->held && pp->src) {
            pp->held--;
            mkv_reader_release(pp->src);
        }
        return;
    }
    MKV_TRACE("s3gw", "body resumed rid=%s received=%llu", pp->r->request_id,
              (unsigned long long)pp->received);
    mkv_http_resume_body(pp->r->http);
}

static void on_writer_done(struct mkv_writer *w, void *data, int status, struct mkv_slice extents)
{
    struct put_pipe *pp = data;
    struct s3req *r = pp->r;
    r->writer = NULL;
    if (status == 0 && mkv_buf_append(&pp->res.extents, extents.p, extents.len)) {
        mkv_client_discard_extents(r->wk->client, extents);
        status = -ENOMEM;
    }
    mkv_writer_free(w);
    if (status) {
        pp->failed = 1;
        if (pp->src) {
            mkv_reader_abort(pp->src);
            pp->src = NULL;
            r->reader = NULL;
        }
        pp->done(r, status, NULL);
        return;
    }
    pp->done(r, 0, &pp->res);
}

static const struct mkv_writer_ops writer_ops = {on_writer_ready, on_writer_done};

void s3_etag_from_md5(const uint8_t md5[16], char *etag, size_t len)
{
    char hex[33];
    mkv_hex_encode(md5, 16, hex);
    snprintf(etag, len, "\"%s\"", hex);
}

/* Stores the checksums the client sent and we verified, so that GET with
 * x-amz-checksum-mode: ENABLED can return them. */
static void record_checksums(struct put_pipe *pp)
{
    for (int alg = MKV_CKSUM_CRC32; alg < MKV_CKSUM__COUNT; alg++) {
        uint8_t d[MKV_CKSUM_MAX];
        size_t n = 0;
        char b64[MKV_CKSUM_B64_MAX];
        int have = 0;
        if (pp->bc.expect & MKV_CKSUM_BIT(alg))
            have = mkv_body_check_digest(&pp->bc, (enum mkv_cksum_alg)alg, d, &n) == 0;
        if (!have) have = authn_trailer_checksum(pp->r, (enum mkv_cksum_alg)alg, d, &n);
        if (!have || !mkv_cksum_header((enum mkv_cksum_alg)alg)) continue;
        mkv_base64_encode(d, n, b64, sizeof b64);
        s3_put_attr(&pp->res.attrs, mkv_cksum_header((enum mkv_cksum_alg)alg), b64);
    }
}

static void body_finished(struct put_pipe *pp)
{
    enum mkv_s3_error e;
    uint8_t md5[MKV_CKSUM_MAX];
    size_t n;
    int rv;
    if (pp->expected != UINT64_MAX && pp->received != pp->expected) {
        pipe_fail(pp, MKV_S3_INCOMPLETE_BODY);
        return;
    }
    e = mkv_body_check_finish(&pp->bc);
    if (e != MKV_S3_OK) {
        pipe_fail(pp, (int)e);
        return;
    }
    if (mkv_body_check_digest(&pp->bc, MKV_CKSUM_MD5, md5, &n) == 0)
        s3_etag_from_md5(md5, pp->res.etag, sizeof pp->res.etag);
    pp->res.size = pp->received;
    record_checksums(pp);
    rv = pipe_finish(pp);
    if (rv) pipe_fail(pp, rv);
}

/* The decoded payload of one body piece goes to the checks and the writer. */
static int writer_sink(void *arg, const uint8_t *p, size_t n)
{
    struct put_pipe *pp = arg;
    int rv;
    if (pp->expected != UINT64_MAX && n > pp->expected - pp->received) return MKV_S3_INCOMPLETE_BODY;
    if (pp->received + n > pp->r->wk->gw->o.max_object_size) return MKV_S3_ENTITY_TOO_LARGE;
    pp->received += n;
    mkv_body_check_update(&pp->bc, p, n);
    rv = pipe_sink(pp, p, n);
    if (rv < 0) return rv;
    if (rv == 1) {
        MKV_TRACE("s3gw", "body paused rid=%s received=%llu", pp->r->request_id,
                  (unsigned long long)pp->received);
        mkv_http_pause_body(pp->r->http);
    }
    return 0;
}

static void on_put_body(struct mkv_http_req *h, int status, const uint8_t *data, size_t len)
{
    struct s3req *r = h->data;
    struct put_pipe *pp;
    int rv;
    if (!r || r->aborted || !(pp = r->pipe) || pp->failed || pp->body_done) return;
    if (status < 0) {
        pipe_fail(pp, status == -ETIMEDOUT ? (int)MKV_S3_REQUEST_TIMEOUT : (int)MKV_S3_INCOMPLETE_BODY);
        return;
    }
    if (len) {
        mkv_counter_add(&r->wk->stats.bytes_in, len);
        rv = authn_body(r, data, len, writer_sink, pp);
        if (rv) {
            mkv_http_pause_body(h);
            mkv_http_close_after(h);
            pipe_fail(pp, rv);
        }
        return;
    }
    pp->body_done = 1;
    rv = authn_body_end(r);
    if (rv) {
        pipe_fail(pp, rv);
        return;
    }
    body_finished(pp);
}

/* Decoded length of the body: x-amz-decoded-content-length for aws-chunked
 * bodies, else Content-Length (UINT64_MAX for chunked transfer encoding). */
enum mkv_s3_error s3_body_length(struct s3req *r, uint64_t *len)
{
    const struct mkv_http_req *h = r->http;
    if (authn_streaming(r)) {
        const char *v = mkv_http_header(h, "x-amz-decoded-content-length");
        char *end;
        unsigned long long n;
        if (!v) return MKV_S3_MISSING_CONTENT_LENGTH;
        n = strtoull(v, &end, 10);
        if (*end || end == v || *v == '-') return MKV_S3_INVALID_ARGUMENT;
        *len = n;
        return MKV_S3_OK;
    }
    if (h->has_content_length) {
        *len = h->content_length;
        return MKV_S3_OK;
    }
    *len = h->chunked_te ? UINT64_MAX : 0;
    return MKV_S3_OK;
}

static struct put_pipe *pipe_new(struct s3req *r, s3_pipe_done_cb done)
{
    struct put_pipe *pp = calloc(1, sizeof *pp);
    if (!pp) return NULL;
    pp->r = r;
    pp->done = done;
    r->pipe = pp;
    return pp;
}

void s3_stream_body_to_chunks(struct s3req *r, uint64_t max, uint64_t inline_max,
                              s3_pipe_done_cb done)
{
    struct put_pipe *pp = pipe_new(r, done);
    enum mkv_s3_error e;
    int rv = 0;
    if (!pp) {
        done(r, -ENOMEM, NULL);
        return;
    }
    e = s3_body_length(r, &pp->expected);
    if (e == MKV_S3_OK && pp->expected != UINT64_MAX && pp->expected > max)
        e = MKV_S3_ENTITY_TOO_LARGE;
    if (e == MKV_S3_OK)
        e = mkv_body_check_init(&pp->bc, r->http, MKV_CKSUM_BIT(MKV_CKSUM_MD5), authn_streaming(r));
    if (e != MKV_S3_OK) {
        pp->failed = 1;
        mkv_http_close_after(r->http);
        done(r, (int)e, NULL);
        return;
    }
    pp->have_bc = 1;
    /* A body of known, small size is kept whole and stored in the inode:
     * one durable write (the Raft entry) instead of chunk data plus the
     * metadata commit. */
    pp->inl = pp->expected <= inline_max && pp->expected <= MKV_INLINE_MAX;
    if (!pp->inl && (rv = mkv_writer_new(r->wk->client, &writer_ops, pp, &r->writer)) == 0)
        rv = mkv_writer_set_bucket(r->writer, r->bucket); /* its replication factor */
    if (!pp->inl && rv) {
        pp->failed = 1;
        done(r, rv, NULL);
        return;
    }
    mkv_http_read_body(r->http, on_put_body);
}

static void on_copy_data(struct mkv_reader *rd, void *data, struct mkv_frame *frame,
                         const uint8_t *p, size_t n)
{
    struct put_pipe *pp = data;
    int rv;
    (void)frame;
    if (pp->failed) {
        mkv_reader_release(rd);
        return;
    }
    mkv_cksum_update(&pp->md5, p, n);
    pp->received += n;
    rv = pipe_sink(pp, p, n);
    if (rv == 1) {
        pp->held++; /* released by on_writer_ready */
        return;
    }
    mkv_reader_release(rd);
    if (rv < 0) pipe_fail(pp, rv);
}

static void copy_source_done(struct put_pipe *pp, int status)
{
    uint8_t md5[MKV_CKSUM_MAX];
    int rv;
    if (pp->failed) return;
    if (status) {
        pipe_fail(pp, status);
        return;
    }
    mkv_cksum_final(&pp->md5, md5);
    s3_etag_from_md5(md5, pp->res.etag, sizeof pp->res.etag);
    pp->res.size = pp->received;
    rv = pipe_finish(pp);
    if (rv) pipe_fail(pp, rv);
}

static void on_copy_end(struct mkv_reader *rd, void *data, int status)
{
    struct put_pipe *pp = data;
    mkv_reader_free(rd);
    pp->src = NULL;
    pp->r->reader = NULL;
    copy_source_done(pp, status);
}

static const struct mkv_reader_ops copy_reader_ops = {on_copy_data, on_copy_end};

void s3_copy_to_chunks(struct s3req *r, const struct mkv_obj_info *src, uint64_t off, uint64_t len,
                       uint64_t inline_max, s3_pipe_done_cb done)
{
    struct put_pipe *pp = pipe_new(r, done);
    int rv;
    if (!pp) {
        done(r, -ENOMEM, NULL);
        return;
    }
    rv = mkv_cksum_init(&pp->md5, MKV_CKSUM_MD5);
    if (rv) {
        pp->failed = 1;
        done(r, rv, NULL);
        return;
    }
    pp->have_md5 = 1;
    pp->inl = len <= inline_max && len <= MKV_INLINE_MAX;
    if (!pp->inl && (rv = mkv_writer_new(r->wk->client, &writer_ops, pp, &r->writer)) == 0)
        rv = mkv_writer_set_bucket(r->writer, r->bucket); /* its replication factor */
    if (!pp->inl && rv) {
        pp->failed = 1;
        done(r, rv, NULL);
        return;
    }
    if (src->data.len) {
        /* An inline source is already here, in the lookup reply. */
        if (off > src->data.len || len > src->data.len - off) {
            pipe_fail(pp, -EIO);
            return;
        }
        mkv_cksum_update(&pp->md5, src->data.p + off, len);
        pp->received = len;
        rv = len ? pipe_sink(pp, src->data.p + off, len) : 0;
        if (rv < 0) {
            pipe_fail(pp, rv);
            return;
        }
        copy_source_done(pp, 0);
        return;
    }
    if (len == 0) {
        copy_source_done(pp, 0);
        return;
    }
    rv = mkv_reader_new(r->wk->client, src->extents, src->size, off, len, &copy_reader_ops, pp,
                        &pp->src);
    if (rv) {
        pipe_fail(pp, rv);
        return;
    }
    r->reader = pp->src;
}

/* ---- PutObject ---- */

struct put_state
{
    struct mkv_buf attrs;
    const char *content_type;
    uint32_t flags;
    struct mkv_obj_info src; /* CopyObject: the source (slices into src_frame) */
    struct mkv_frame *src_frame;
    char ctype[257];
};

static void put_state_free(void *p)
{
    struct put_state *ps = p;
    mkv_buf_free(&ps->attrs);
    if (ps->src_frame) mkv_frame_unref(ps->src_frame);
    free(ps);
}

static void on_obj_put(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct put_pipe *pp = r->pipe;
    struct mkv_slice ext = {NULL, 0};
    struct mkv_obj_put_rep rep = {0};
    struct mkv_http_header h[4];
    struct mkv_buf b = MKV_BUF_INIT;
    char date[48];
    const char *etag = pp && pp->res.etag[0] ? pp->res.etag : EMPTY_ETAG;
    if (pp) ext = mkv_slice_mem(pp->res.extents.p, pp->res.extents.len);
    if (status) {
        if (ext.len) mkv_client_discard_extents(r->wk->client, ext);
        s3_error_status(r, status, r->errmsg);
        return;
    }
    mkv_frame_decode(reply, &mkv_desc_obj_put_rep, &rep);
    if (ext.len) mkv_client_commit_extents(r->wk->client, ext);
    if (r->op == S3_COPY_OBJECT) {
        s3_iso_date(rep.mtime ? rep.mtime : mkv_now_ns(), date, sizeof date);
        s3_xml_begin(&b, "CopyObjectResult");
        s3_xml_elem(&b, "LastModified", date);
        s3_xml_elem(&b, "ETag", etag);
        mkv_buf_puts(&b, "</CopyObjectResult>");
        s3_respond_xml(r, 200, &b, NULL, 0);
        return;
    }
    h[0].name = "ETag";
    h[0].value = etag;
    s3_respond_empty(r, 200, h, 1);
}

static void send_obj_put(struct s3req *r, struct put_state *ps, struct body_result *res)
{
    struct mkv_obj_put_req q = {0};
    const char *inm = mkv_http_header(r->http, "If-None-Match");
    const char *im = mkv_http_header(r->http, "If-Match");
    q.bucket = mkv_slice_str(r->bucket);
    q.key = mkv_slice_mem(r->key, r->keylen);
    q.flags = ps->flags;
    if (inm && !strcmp(inm, "*")) q.flags |= MKV_PUT_IF_NONE_MATCH;
    if (im) q.if_match = mkv_slice_str(im);
    q.size = res ? res->size : 0;
    q.mode = 0644;
    q.etag = mkv_slice_str(res && res->etag[0] ? res->etag : EMPTY_ETAG);
    q.content_type = mkv_slice_str(ps->content_type ? ps->content_type : "");
    if (res && res->attrs.len) mkv_buf_append(&ps->attrs, res->attrs.p, res->attrs.len);
    q.attrs = mkv_slice_mem(ps->attrs.p, ps->attrs.len);
    if (res) q.extents = mkv_slice_mem(res->extents.p, res->extents.len);
    if (res) q.data = mkv_slice_mem(res->data.p, res->data.len);
    if (ps->flags & MKV_PUT_KEEP_DATA) {
        q.size = ps->src.size;
        q.etag = ps->src.etag;
    }
    if (s3_meta(r, 0, MKV_MSG_OBJ_PUT, &mkv_desc_obj_put_req, &q, on_obj_put)) {
        if (res) mkv_client_discard_extents(r->wk->client, q.extents);
        s3_error(r, MKV_S3_INTERNAL, NULL);
    }
}

static void put_body_done(struct s3req *r, int status, struct body_result *res)
{
    if (status) {
        s3_answer_pipe_failure(r, status);
        return;
    }
    send_obj_put(r, r->opstate, res);
}

/* Common start of PutObject and CopyObject: checks and metadata. */
static struct put_state *put_begin(struct s3req *r)
{
    struct put_state *ps;
    enum mkv_s3_error e = s3_check_unsupported_headers(r);
    int rv;
    if (e != MKV_S3_OK) {
        s3_error(r, e, NULL);
        return NULL;
    }
    rv = mkv_check_key(r->key, r->keylen);
    if (rv) {
        s3_error_status(r, rv, "invalid key");
        return NULL;
    }
    ps = calloc(1, sizeof *ps);
    if (!ps) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return NULL;
    }
    r->opstate = ps;
    r->opstate_free = put_state_free;
    e = s3_collect_attrs(r, &ps->attrs, &ps->content_type);
    if (e != MKV_S3_OK) {
        s3_error(r, e, "user metadata too large or invalid");
        return NULL;
    }
    return ps;
}

void s3_op_put_object(struct s3req *r)
{
    struct put_state *ps = put_begin(r);
    if (!ps) return;
    if (r->key[r->keylen - 1] == '/') {
        /* "dir/": a directory marker; it cannot hold data. */
        uint64_t len = 0;
        if (s3_body_length(r, &len) != MKV_S3_OK || len != 0) {
            mkv_http_close_after(r->http);
            s3_error(r, MKV_S3_INVALID_ARGUMENT,
                     "A key ending in '/' names a directory in minikv and cannot hold data");
            return;
        }
        ps->flags = MKV_PUT_DIR;
        send_obj_put(r, ps, NULL);
        return;
    }
    s3_stream_body_to_chunks(r, r->wk->gw->o.max_object_size, r->wk->gw->o.inline_max,
                             put_body_done);
}

/* ---- GetObject / HeadObject ---- */

struct get_state
{
    struct mkv_frame *info_frame;
    struct mkv_obj_info info;
    uint64_t off, len;
    int head;
    int ranged;  /* a Range was asked for (206) */
    int started; /* the status line and headers are out */
    int finishing;
    unsigned writes; /* response writes not yet completed */
    int ended;
};

static void get_state_free(void *p)
{
    struct get_state *gs = p;
    if (gs->info_frame) mkv_frame_unref(gs->info_frame);
    free(gs);
}

/* ETag comparison for If-Match / If-None-Match lists ("a", W/"b", *). */
int s3_etag_matches(const char *list, struct mkv_slice etag)
{
    const char *p = list;
    while (*p) {
        const char *start, *end;
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        if (*p == '*') return 1;
        if (!strncmp(p, "W/", 2)) p += 2;
        start = p;
        end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        while (end > start && end[-1] == ' ') end--;
        /* Compare with or without the quotes. */
        {
            const char *a = start;
            size_t alen = (size_t)(end - start);
            const uint8_t *b = etag.p;
            size_t blen = etag.len;
            if (alen >= 2 && a[0] == '"' && a[alen - 1] == '"') a++, alen -= 2;
            if (blen >= 2 && b[0] == '"' && b[blen - 1] == '"') b++, blen -= 2;
            if (alen == blen && !memcmp(a, b, alen)) return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* RFC 7232 section 6 order. Returns 0 to go on, else the status to send. */
int s3_check_conditions(const struct mkv_http_req *h, const char *prefix, struct mkv_slice etag,
                        int64_t mtime_ns, int is_get)
{
    char name[64];
    const char *im, *inm, *ims, *ius;
    int64_t t, mtime = mtime_ns / 1000000000LL;
    snprintf(name, sizeof name, "%sif-match", prefix);
    im = mkv_http_header(h, name);
    snprintf(name, sizeof name, "%sif-none-match", prefix);
    inm = mkv_http_header(h, name);
    snprintf(name, sizeof name, "%sif-modified-since", prefix);
    ims = mkv_http_header(h, name);
    snprintf(name, sizeof name, "%sif-unmodified-since", prefix);
    ius = mkv_http_header(h, name);
    if (im && !s3_etag_matches(im, etag)) return 412;
    if (!im && ius && mkv_auth_parse_http_date(ius, &t) == 0 && mtime > t) return 412;
    if (inm && s3_etag_matches(inm, etag)) return is_get ? 304 : 412;
    if (!inm && ims && is_get && mkv_auth_parse_http_date(ims, &t) == 0 && mtime <= t) return 304;
    return 0;
}

/* Parses a single "bytes=" range against size. Returns 1 with [off, len)
 * set, 0 to ignore the header (absent, malformed or several ranges, as S3
 * does), or -1 when unsatisfiable. */
int s3_parse_range(const char *v, uint64_t size, uint64_t *off, uint64_t *len)
{
    unsigned long long a, b;
    char *end;
    if (!v || strncmp(v, "bytes=", 6) != 0 || strchr(v, ',')) return 0;
    v += 6;
    while (*v == ' ') v++;
    if (*v == '-') { /* suffix: the last N bytes */
        b = strtoull(v + 1, &end, 10);
        if (end == v + 1 || *end) return 0;
        if (b == 0) return -1;
        if (b > size) b = size;
        if (size == 0) return -1;
        *off = size - b;
        *len = b;
        return 1;
    }
    if (!isdigit((unsigned char)*v)) return 0;
    a = strtoull(v, &end, 10);
    if (*end != '-') return 0;
    v = end + 1;
    if (!*v) {
        b = size ? size - 1 : 0;
    } else {
        b = strtoull(v, &end, 10);
        if (*end || end == v) return 0;
        if (b < a) return 0;
        if (b >= size) b = size - 1;
    }
    if (a >= size) return -1;
    *off = a;
    *len = b - a + 1;
    return 1;
}

/* Adds the object's stored headers (user metadata, Content-*, checksums). */
static unsigned object_headers(struct s3req *r, const struct mkv_obj_info *info,
                               struct mkv_http_header *h, unsigned n, unsigned cap,
                               struct mkv_buf *strings)
{
    struct mkv_slice cur = info->attrs;
    struct mkv_attr a;
    size_t offs[40];
    unsigned k = 0, first = n;
    const char *cm = mkv_http_header(r->http, "x-amz-checksum-mode");
    /* Copy names and values into one buffer, then point into it (the buffer
     * must not move while the pointers live, so reserve first). */
    mkv_buf_reserve(strings, info->attrs.len * 2 + 64);
    while (n < cap && k < MKV_ARRAY_SIZE(offs) / 2 && mkv_msg_next(&mkv_desc_attr, &cur, &a) == 1) {
        if (!strncmp((const char *)a.name.p, "x-amz-checksum-", 15) && (!cm || strcasecmp(cm, "ENABLED")))
            continue;
        offs[2 * k] = strings->len;
        mkv_buf_append(strings, a.name.p, a.name.len);
        mkv_buf_append(strings, "", 1);
        offs[2 * k + 1] = strings->len;
        mkv_buf_append(strings, a.value.p, a.value.len);
        mkv_buf_append(strings, "", 1);
        k++;
        n++;
    }
    for (unsigned i = 0; i < k; i++) {
        h[first + i].name = (const char *)strings->p + offs[2 * i];
        h[first + i].value = (const char *)strings->p + offs[2 * i + 1];
    }
    return n;
}

static void get_start(struct s3req *r);

static void on_get_written(struct mkv_http_req *h, int status, void *arg)
{
    struct mkv_frame *frame = arg;
    struct s3req *r = h->data;
    struct get_state *gs;
    if (frame) mkv_frame_unref(frame);
    if (!r || r->aborted) return;
    gs = r->opstate;
    gs->writes--;
    /* Releasing the last piece may end the reader, and on_get_end may then
     * finish the response and drop the request: keep it alive meanwhile. */
    r->refs++;
    if (status == 0 && r->reader) mkv_reader_release(r->reader);
    if (!r->aborted && gs->ended && gs->writes == 0 && !gs->finishing) {
        gs->finishing = 1;
        mkv_http_finish(r->http);
        s3req_done(r);
    }
    s3req_unref(r);
}

static void on_get_data(struct mkv_reader *rd, void *data, struct mkv_frame *frame,
                        const uint8_t *p, size_t n)
{
    struct s3req *r = data;
    struct get_state *gs = r->opstate;
    (void)rd;
    if (!gs->started) get_start(r);
    if (frame) mkv_frame_ref(frame);
    gs->writes++;
    r->bytes_out += n;
    if (mkv_http_write(r->http, p, n, on_get_written, frame)) {
        gs->writes--;
        if (frame) mkv_frame_unref(frame);
    }
}

static void on_get_end(struct mkv_reader *rd, void *data, int status)
{
    struct s3req *r = data;
    struct get_state *gs = r->opstate;
    mkv_reader_free(rd);
    r->reader = NULL;
    gs->ended = 1;
    if (status && !gs->started) {
        /* Nothing sent yet: an error the client can act on (a chunk no
         * replica answered for is unavailable, not a missing key). */
        s3_error_status(r, status == -ENOENT ? MKV_EUNAVAILABLE : status,
                        "reading the object's data");
        return;
    }
    if (!gs->started) get_start(r);
    if (status) {
        /* Headers are out: a short body (and a closed connection) is the
         * only honest signal left. */
        MKV_ERROR("s3gw", "read failed mid-response bucket=%s key=%s status=%d err=\"%s\" rid=%s",
                  r->bucket, r->key, status, mkv_strerror(status), r->request_id);
        mkv_http_close_after(r->http);
    }
    if (gs->writes == 0 && !gs->finishing) {
        gs->finishing = 1;
        mkv_http_finish(r->http);
        s3req_done(r);
    }
}

static const struct mkv_reader_ops get_reader_ops = {on_get_data, on_get_end};

/* The status line and the object's headers. Sent once the first bytes
 * of data are at hand (at once when there are none to read): an object
 * whose data cannot be read (its copies on servers that are down) gets an
 * error, not a cut body. */
static void get_start(struct s3req *r)
{
    struct get_state *gs = r->opstate;
    struct mkv_http_header h[64];
    struct mkv_buf strings = MKV_BUF_INIT;
    char lm[48], crange[80], ovr[6][256];
    static const char *const overrides[][2] = {
        {"response-content-type", "Content-Type"},
        {"response-content-language", "Content-Language"},
        {"response-expires", "Expires"},
        {"response-cache-control", "Cache-Control"},
        {"response-content-disposition", "Content-Disposition"},
        {"response-content-encoding", "Content-Encoding"},
    };
    unsigned n = 0;
    const char *ctype;
    gs->started = 1;
    s3_http_date(gs->info.mtime, lm, sizeof lm);
    h[n].name = "x-amz-request-id";
    h[n++].value = r->request_id;
    h[n].name = "Last-Modified";
    h[n++].value = lm;
    mkv_buf_reserve(&strings, 4096);
    h[n].name = "ETag";
    h[n++].value = (const char *)strings.p;
    mkv_buf_append(&strings, gs->info.etag.p, gs->info.etag.len);
    mkv_buf_append(&strings, "", 1);
    h[n].name = "Accept-Ranges";
    h[n++].value = "bytes";
    ctype = gs->info.content_type.len ? NULL : "binary/octet-stream";
    h[n].name = "Content-Type";
    if (ctype) {
        h[n++].value = ctype;
    } else {
        h[n++].value = (const char *)strings.p + strings.len;
        mkv_buf_append(&strings, gs->info.content_type.p, gs->info.content_type.len);
        mkv_buf_append(&strings, "", 1);
    }
    if (gs->ranged) {
        snprintf(crange, sizeof crange, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, gs->off,
                 gs->off + gs->len - 1, gs->info.size);
        h[n].name = "Content-Range";
        h[n++].value = crange;
    }
    n = object_headers(r, &gs->info, h, n, 50, &strings);
    for (size_t i = 0; i < MKV_ARRAY_SIZE(overrides); i++) {
        if (mkv_http_query(r->http, overrides[i][0], ovr[i], sizeof ovr[i]) == 1) {
            unsigned k;
            for (k = 0; k < n && strcasecmp(h[k].name, overrides[i][1]); k++)
                ;
            h[k].name = overrides[i][1];
            h[k].value = ovr[i];
            if (k == n) n++;
        }
    }
    r->status_code = gs->ranged ? 206 : 200;
    r->responded = 1;
    mkv_http_start(r->http, r->status_code, h, n, (int64_t)gs->len);
    mkv_buf_free(&strings);
}

static void on_lookup_for_get(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct get_state *gs = r->opstate;
    char crange[80];
    int code, rv;
    if (status) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOTFOUND : status, r->errmsg);
        return;
    }
    mkv_frame_ref(reply);
    gs->info_frame = reply;
    if (mkv_frame_decode(reply, &mkv_desc_obj_info, &gs->info)) {
        s3_error(r, MKV_S3_INTERNAL, "malformed metadata reply");
        return;
    }
    if (gs->info.type == MKV_T_DIR &&
        (r->key[r->keylen - 1] != '/' || (gs->info.dflags & MKV_DF_IMPLICIT))) {
        s3_error(r, MKV_S3_NO_SUCH_KEY, NULL);
        return;
    }
    if (gs->info.type != MKV_T_FILE && gs->info.type != MKV_T_DIR) {
        s3_error(r, MKV_S3_NO_SUCH_KEY, "The key names a symbolic link or special file, not an object");
        return;
    }
    if (gs->info.type == MKV_T_DIR) gs->info.etag = mkv_slice_str(EMPTY_ETAG);
    code = s3_check_conditions(r->http, "", gs->info.etag, gs->info.mtime, 1);
    if (code) {
        if (code == 304) {
            struct mkv_http_header eh[2];
            char etag[MKV_ETAG_MAX + 1];
            snprintf(etag, sizeof etag, "%.*s", (int)gs->info.etag.len, (const char *)gs->info.etag.p);
            eh[0].name = "ETag";
            eh[0].value = etag;
            s3_respond_empty(r, 304, eh, 1);
        } else {
            s3_error(r, MKV_S3_PRECONDITION_FAILED, NULL);
        }
        return;
    }
    gs->off = 0;
    gs->len = gs->info.size;
    rv = s3_parse_range(mkv_http_header(r->http, "Range"), gs->info.size, &gs->off, &gs->len);
    if (rv < 0) {
        struct mkv_http_header eh[1];
        snprintf(crange, sizeof crange, "bytes */%" PRIu64, gs->info.size);
        eh[0].name = "Content-Range";
        eh[0].value = crange;
        s3_error_h(r, MKV_S3_INVALID_RANGE, NULL, eh, 1);
        return;
    }
    gs->ranged = rv == 1;
    /* Nothing to wait for: the headers go now. */
    if (gs->head || gs->len == 0 || gs->info.data.len) get_start(r);
    if (gs->head || gs->len == 0) {
        mkv_http_finish(r->http);
        s3req_done(r);
        return;
    }
    if (gs->info.data.len) {
        /* Inline: the bytes came with the lookup; write them from the reply
         * frame (on_get_written drops the reference). */
        if (gs->off > gs->info.data.len || gs->len > gs->info.data.len - gs->off) {
            MKV_ERROR("s3gw", "inline data shorter than the object bucket=%s key=%s rid=%s",
                      r->bucket, r->key, r->request_id);
            mkv_http_close_after(r->http);
            mkv_http_finish(r->http);
            s3req_done(r);
            return;
        }
        gs->ended = 1;
        on_get_data(NULL, r, reply, gs->info.data.p + gs->off, (size_t)gs->len);
        if (gs->writes == 0 && !gs->finishing) {
            gs->finishing = 1;
            mkv_http_finish(r->http);
            s3req_done(r);
        }
        return;
    }
    rv = mkv_reader_new(r->wk->client, gs->info.extents, gs->info.size, gs->off, gs->len,
                        &get_reader_ops, r, &r->reader);
    if (rv) s3_error_status(r, rv, "reading the object's data");
}

void s3_op_get_object(struct s3req *r)
{
    struct get_state *gs;
    struct mkv_obj_lookup_req q = {0};
    char v[32];
    if (mkv_http_query(r->http, "versionId", v, sizeof v) == 1 && strcmp(v, "null") != 0) {
        s3_error(r, MKV_S3_NO_SUCH_VERSION, "minikv buckets are unversioned: the only version is \"null\"");
        return;
    }
    if (mkv_http_query(r->http, "partNumber", v, sizeof v) == 1) {
        s3_error(r, MKV_S3_NOT_IMPLEMENTED, "GetObject by partNumber is not implemented (use Range)");
        return;
    }
    gs = calloc(1, sizeof *gs);
    if (!gs) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    gs->head = r->op == S3_HEAD_OBJECT;
    r->opstate = gs;
    r->opstate_free = get_state_free;
    q.bucket = mkv_slice_str(r->bucket);
    q.key = mkv_slice_mem(r->key, r->keylen);
    if (s3_meta(r, 0, MKV_MSG_OBJ_LOOKUP, &mkv_desc_obj_lookup_req, &q, on_lookup_for_get))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

/* ---- DeleteObject ---- */

static void on_obj_delete(struct s3req *r, int status, struct mkv_frame *reply)
{
    (void)reply;
    if (status && status != MKV_ENOTFOUND && status != -ENOENT) {
        s3_error_status(r, status, r->errmsg);
        return;
    }
    s3_respond_empty(r, 204, NULL, 0);
}

void s3_op_delete_object(struct s3req *r)
{
    struct mkv_obj_delete_req q = {0};
    char v[32];
    if (mkv_http_query(r->http, "versionId", v, sizeof v) == 1 && strcmp(v, "null") != 0) {
        s3_error(r, MKV_S3_NO_SUCH_VERSION, "minikv buckets are unversioned: the only version is \"null\"");
        return;
    }
    q.bucket = mkv_slice_str(r->bucket);
    q.key = mkv_slice_mem(r->key, r->keylen);
    if (s3_meta(r, 0, MKV_MSG_OBJ_DELETE, &mkv_desc_obj_delete_req, &q, on_obj_delete))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

/* ---- CopyObject ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

enum mkv_s3_error s3_parse_copy_source(struct s3req *r, char *bucket, size_t blen, char **key,
                                       size_t *keylen)
{
    const char *v = mkv_http_header(r->http, "x-amz-copy-source");
    const char *q;
    char *dec, *slash;
    size_t n, k = 0;
    if (!v || !*v) return MKV_S3_INVALID_ARGUMENT;
    if (*v == '/') v++;
    q = strchr(v, '?');
    n = q ? (size_t)(q - v) : strlen(v);
    if (q && strcmp(q, "?versionId=null") != 0) return MKV_S3_NOT_IMPLEMENTED;
    dec = malloc(n + 1);
    if (!dec) return MKV_S3_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '%' && i + 2 < n + 0 + 1 && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0) {
            dec[k++] = (char)(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
            i += 2;
        } else {
            dec[k++] = v[i];
        }
    }
    dec[k] = '\0';
    if (memchr(dec, 0, k)) {
        free(dec);
        return MKV_S3_INVALID_ARGUMENT;
    }
    slash = strchr(dec, '/');
    if (!slash || slash == dec || (size_t)(slash - dec) >= blen || !slash[1]) {
        free(dec);
        return MKV_S3_INVALID_ARGUMENT;
    }
    memcpy(bucket, dec, (size_t)(slash - dec));
    bucket[slash - dec] = '\0';
    *keylen = k - (size_t)(slash - dec) - 1;
    memmove(dec, slash + 1, *keylen + 1);
    *key = dec;
    return MKV_S3_OK;
}

int s3_copy_source(struct s3req *r, int status, struct mkv_frame *reply, struct mkv_frame **frame,
                   struct mkv_obj_info *src)
{
    if (status) {
        if (status == MKV_ENOTFOUND || status == -ENOENT || status == MKV_ENOBUCKET)
            s3_error(r, status == MKV_ENOBUCKET ? MKV_S3_NO_SUCH_BUCKET : MKV_S3_NO_SUCH_KEY,
                     "The copy source does not exist");
        else
            s3_error_status(r, status, r->errmsg);
        return -1;
    }
    mkv_frame_ref(reply);
    *frame = reply;
    if (mkv_frame_decode(reply, &mkv_desc_obj_info, src) || src->type != MKV_T_FILE) {
        s3_error(r, MKV_S3_NO_SUCH_KEY, "The copy source is not an object");
        return -1;
    }
    if (s3_check_conditions(r->http, "x-amz-copy-source-", src->etag, src->mtime, 0)) {
        s3_error(r, MKV_S3_PRECONDITION_FAILED, NULL);
        return -1;
    }
    return 0;
}

static void copy_data_done(struct s3req *r, int status, struct body_result *res)
{
    struct put_state *ps = r->opstate;
    if (status) {
        s3_answer_pipe_failure(r, status);
        return;
    }
    send_obj_put(r, ps, res);
}

static void on_copy_source(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct put_state *ps = r->opstate;
    const char *directive = mkv_http_header(r->http, "x-amz-metadata-directive");
    int replace = directive && !strcasecmp(directive, "REPLACE");
    if (s3_copy_source(r, status, reply, &ps->src_frame, &ps->src)) return;
    if (!replace) {
        /* COPY: the new object takes the source's metadata. */
        mkv_buf_reset(&ps->attrs);
        {
            struct mkv_slice cur = ps->src.attrs;
            struct mkv_attr a;
            while (mkv_msg_next(&mkv_desc_attr, &cur, &a) == 1)
                mkv_msg_append(&ps->attrs, &mkv_desc_attr, &a);
        }
        snprintf(ps->ctype, sizeof ps->ctype, "%.*s", (int)ps->src.content_type.len,
                 (const char *)ps->src.content_type.p);
        ps->content_type = ps->ctype[0] ? ps->ctype : NULL;
    }
    if (r->opflags & 1) { /* same bucket and key */
        if (!replace) {
            s3_error(r, MKV_S3_INVALID_REQUEST,
                     "This copy request is illegal because it is trying to copy an object to itself "
                     "without changing the object's metadata.");
            return;
        }
        ps->flags = MKV_PUT_KEEP_DATA;
        send_obj_put(r, ps, NULL);
        return;
    }
    if (ps->src.size > (5ull << 30)) {
        s3_error(r, MKV_S3_INVALID_REQUEST,
                 "The specified copy source is larger than the maximum allowable size for a copy "
                 "source: 5368709120");
        return;
    }
    s3_copy_to_chunks(r, &ps->src, 0, ps->src.size, r->wk->gw->o.inline_max, copy_data_done);
}

void s3_op_copy_object(struct s3req *r)
{
    struct put_state *ps = put_begin(r);
    struct mkv_obj_lookup_req q = {0};
    char sbucket[MKV_BUCKET_MAX + 1];
    char *skey = NULL;
    size_t skeylen = 0;
    enum mkv_s3_error e;
    if (!ps) return;
    e = s3_parse_copy_source(r, sbucket, sizeof sbucket, &skey, &skeylen);
    if (e != MKV_S3_OK) {
        s3_error(r, e, "invalid x-amz-copy-source");
        return;
    }
    if (!strcmp(sbucket, r->bucket) && skeylen == r->keylen && !memcmp(skey, r->key, skeylen))
        r->opflags |= 1;
    q.bucket = mkv_slice_str(sbucket);
    q.key = mkv_slice_mem(skey, skeylen);
    if (s3_meta(r, 1, MKV_MSG_OBJ_LOOKUP, &mkv_desc_obj_lookup_req, &q, on_copy_source))
        s3_error(r, MKV_S3_INTERNAL, NULL);
    free(skey);
}
