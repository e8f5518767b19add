/* minikv gateway: multipart uploads (CreateMultipartUpload, UploadPart,
 * UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload, ListParts).
 *
 * Parts are streamed to chunks like PutObject bodies and recorded by the
 * meta service (MPU_PART), which makes their chunks referenced: they are
 * committed on the chunk servers at once. Completion is one Raft command
 * that checks the part list, builds the object from the parts' extents
 * (no data is copied) and frees unused parts. Parts may arrive in any
 * order and concurrently. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "gw.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/names.h"
#include "xml.h"

#define PART_MAX_SIZE (5ull << 30)

struct mpu_state
{
    char upload_id[65];
    uint32_t part_no;
    struct mkv_frame *src_frame; /* UploadPartCopy source */
    struct mkv_obj_info src;
    uint64_t src_off, src_len;
    struct mkv_buf parts;        /* part_ref records for MPU_COMPLETE */
    struct mkv_buf attrs;
    uint32_t marker, max;
};

static void mpu_state_free(void *p)
{
    struct mpu_state *ms = p;
    if (ms->src_frame) mkv_frame_unref(ms->src_frame);
    mkv_buf_free(&ms->parts);
    mkv_buf_free(&ms->attrs);
    free(ms);
}

static struct mpu_state *mpu_begin(struct s3req *r, int need_upload_id)
{
    struct mpu_state *ms;
    int rv = mkv_check_key(r->key, r->keylen);
    if (rv) {
        s3_error_status(r, rv, "invalid key");
        return NULL;
    }
    if (mkv_check_bucket(r->bucket, strlen(r->bucket))) {
        s3_error(r, MKV_S3_INVALID_BUCKET_NAME, NULL);
        return NULL;
    }
    ms = calloc(1, sizeof *ms);
    if (!ms) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return NULL;
    }
    r->opstate = ms;
    r->opstate_free = mpu_state_free;
    if (need_upload_id && mkv_http_query(r->http, "uploadId", ms->upload_id, sizeof ms->upload_id) != 1) {
        s3_error(r, MKV_S3_NO_SUCH_UPLOAD, NULL);
        return NULL;
    }
    return ms;
}

/* partNumber must be an integer in 1..10000. */
static int parse_part_number(struct s3req *r, uint32_t *out)
{
    char v[16], *end;
    long n;
    if (mkv_http_query(r->http, "partNumber", v, sizeof v) != 1) return -1;
    n = strtol(v, &end, 10);
    if (*end || end == v || n < 1 || n > MKV_PARTS_MAX) return -1;
    *out = (uint32_t)n;
    return 0;
}

/* ---- CreateMultipartUpload ---- */

static void on_mpu_create(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mpu_state *ms = r->opstate;
    struct mkv_buf b = MKV_BUF_INIT;
    struct mkv_http_header h[1];
    unsigned n = 0;
    const char *alg = mkv_http_header(r->http, "x-amz-checksum-algorithm");
    (void)reply;
    if (status) {
        s3_error_status(r, status, r->errmsg);
        return;
    }
    if (alg) {
        h[n].name = "x-amz-checksum-algorithm";
        h[n++].value = alg;
    }
    s3_xml_begin(&b, "InitiateMultipartUploadResult");
    s3_xml_elem(&b, "Bucket", r->bucket);
    s3_xml_elemn(&b, "Key", r->key, r->keylen);
    s3_xml_elem(&b, "UploadId", ms->upload_id);
    mkv_buf_puts(&b, "</InitiateMultipartUploadResult>");
    s3_respond_xml(r, 200, &b, h, n);
}

void s3_op_create_mpu(struct s3req *r)
{
    struct mpu_state *ms;
    struct mkv_mpu_create_req q = {0};
    const char *ctype;
    uint8_t rnd[16];
    enum mkv_s3_error e = s3_check_unsupported_headers(r);
    if (e != MKV_S3_OK) {
        s3_error(r, e, NULL);
        return;
    }
    if (!(ms = mpu_begin(r, 0))) return;
    if (r->key[r->keylen - 1] == '/') {
        s3_error(r, MKV_S3_INVALID_ARGUMENT, "A key ending in '/' names a directory and cannot hold data");
        return;
    }
    e = s3_collect_attrs(r, &ms->attrs, &ctype);
    if (e != MKV_S3_OK) {
        s3_error(r, e, "user metadata too large or invalid");
        return;
    }
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    mkv_hex_encode(rnd, sizeof rnd, ms->upload_id);
    q.bucket = mkv_slice_str(r->bucket);
    q.key = mkv_slice_mem(r->key, r->keylen);
    q.upload_id = mkv_slice_str(ms->upload_id);
    q.content_type = mkv_slice_str(ctype ? ctype : "");
    q.attrs = mkv_slice_mem(ms->attrs.p, ms->attrs.len);
    if (s3_meta(r, 0, MKV_MSG_MPU_CREATE, &mkv_desc_mpu_create_req, &q, on_mpu_create))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

/* The upload must exist and belong to this bucket and key. Calls next on
 * success. */
static void check_upload(struct s3req *r, void (*next)(struct s3req *r, int status, struct mkv_frame *reply));

struct upload_check
{
    void (*next)(struct s3req *r, int status, struct mkv_frame *reply);
};

static void on_mpu_get(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct upload_check *uc = r->step;
    struct mkv_mpu_get_rep rep;
    void (*next)(struct s3req *, int, struct mkv_frame *) = uc->next;
    free(uc);
    r->step = NULL;
    if (status == 0 && mkv_frame_decode(reply, &mkv_desc_mpu_get_rep, &rep)) status = -EPROTO;
    if (status == 0 && (!mkv_slice_eq(rep.bucket, r->bucket) || rep.key.len != r->keylen ||
                        memcmp(rep.key.p, r->key, r->keylen) != 0))
        status = MKV_ENOUPLOAD;
    if (status) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOUPLOAD : status, r->errmsg);
        return;
    }
    next(r, 0, reply);
}

static void check_upload(struct s3req *r, void (*next)(struct s3req *r, int status, struct mkv_frame *reply))
{
    struct mpu_state *ms = r->opstate;
    struct mkv_mpu_get_req q = {0};
    struct upload_check *uc = calloc(1, sizeof *uc);
    if (!uc) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    uc->next = next;
    r->step = uc;
    q.upload_id = mkv_slice_str(ms->upload_id);
    if (s3_meta(r, 0, MKV_MSG_MPU_GET, &mkv_desc_mpu_get_req, &q, on_mpu_get)) {
        free(uc);
        r->step = NULL;
        s3_error(r, MKV_S3_INTERNAL, NULL);
    }
}

/* ---- UploadPart, UploadPartCopy ---- */

static void on_mpu_part(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct body_result *res = r->step;
    struct mkv_slice ext = mkv_slice_mem(res->extents.p, res->extents.len);
    struct mkv_http_header h[4];
    unsigned n = 0;
    (void)reply;
    r->step = NULL;
    if (status) {
        mkv_client_discard_extents(r->wk->client, ext);
        s3_error_status(r, status == -ENOENT ? MKV_ENOUPLOAD : status, r->errmsg);
        return;
    }
    mkv_client_commit_extents(r->wk->client, ext);
    if (r->op == S3_UPLOAD_PART_COPY) {
        struct mkv_buf b = MKV_BUF_INIT;
        char date[48];
        s3_iso_date(mkv_now_ns(), date, sizeof date);
        s3_xml_begin(&b, "CopyPartResult");
        s3_xml_elem(&b, "LastModified", date);
        s3_xml_elem(&b, "ETag", res->etag);
        mkv_buf_puts(&b, "</CopyPartResult>");
        s3_respond_xml(r, 200, &b, NULL, 0);
        return;
    }
    h[n].name = "ETag";
    h[n++].value = res->etag;
    s3_respond_empty(r, 200, h, n);
}

static void part_data_done(struct s3req *r, int status, struct body_result *res)
{
    struct mpu_state *ms = r->opstate;
    struct mkv_mpu_part_req q = {0};
    if (status) {
        s3_answer_pipe_failure(r, status);
        return;
    }
    q.upload_id = mkv_slice_str(ms->upload_id);
    q.part_no = ms->part_no;
    q.size = res->size;
    q.etag = mkv_slice_str(res->etag);
    q.attrs = mkv_slice_mem(res->attrs.p, res->attrs.len);
    q.extents = mkv_slice_mem(res->extents.p, res->extents.len);
    r->step = res;
    if (s3_meta(r, 0, MKV_MSG_MPU_PART, &mkv_desc_mpu_part_req, &q, on_mpu_part)) {
        mkv_client_discard_extents(r->wk->client, q.extents);
        s3_error(r, MKV_S3_INTERNAL, NULL);
    }
}

static void upload_part_checked(struct s3req *r, int status, struct mkv_frame *reply)
{
    (void)status;
    (void)reply;
    s3_stream_body_to_chunks(r, PART_MAX_SIZE, 0, part_data_done);
}

void s3_op_upload_part(struct s3req *r)
{
    struct mpu_state *ms = mpu_begin(r, 1);
    if (!ms) return;
    if (parse_part_number(r, &ms->part_no)) {
        s3_error(r, MKV_S3_INVALID_ARGUMENT, "Part number must be an integer between 1 and 10000, inclusive");
        return;
    }
    check_upload(r, upload_part_checked);
}

static void on_part_copy_source(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mpu_state *ms = r->opstate;
    const char *range = mkv_http_header(r->http, "x-amz-copy-source-range");
    if (s3_copy_source(r, status, reply, &ms->src_frame, &ms->src)) return;
    ms->src_off = 0;
    ms->src_len = ms->src.size;
    if (range) {
        /* Only "bytes=first-last", both given and inside the object. */
        unsigned long long a, b;
        char tail;
        if (sscanf(range, "bytes=%llu-%llu%c", &a, &b, &tail) != 2 || b < a || b >= ms->src.size) {
            s3_error(r, MKV_S3_INVALID_ARGUMENT,
                     "The x-amz-copy-source-range value must be of the form bytes=first-last where "
                     "first and last are the zero-based offsets of the first and last bytes to copy");
            return;
        }
        ms->src_off = a;
        ms->src_len = b - a + 1;
    }
    if (ms->src_len > PART_MAX_SIZE) {
        s3_error(r, MKV_S3_ENTITY_TOO_LARGE, NULL);
        return;
    }
    s3_copy_to_chunks(r, &ms->src, ms->src_off, ms->src_len, 0, part_data_done);
}

static void part_copy_checked(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mkv_obj_lookup_req q = {0};
    char sbucket[MKV_BUCKET_MAX + 1];
    char *skey = NULL;
    size_t skeylen = 0;
    enum mkv_s3_error e;
    (void)status;
    (void)reply;
    e = s3_parse_copy_source(r, sbucket, sizeof sbucket, &skey, &skeylen);
    if (e != MKV_S3_OK) {
        s3_error(r, e, "invalid x-amz-copy-source");
        return;
    }
    q.bucket = mkv_slice_str(sbucket);
    q.key = mkv_slice_mem(skey, skeylen);
    if (s3_meta(r, 1, MKV_MSG_OBJ_LOOKUP, &mkv_desc_obj_lookup_req, &q, on_part_copy_source))
        s3_error(r, MKV_S3_INTERNAL, NULL);
    free(skey);
}

void s3_op_upload_part_copy(struct s3req *r)
{
    struct mpu_state *ms = mpu_begin(r, 1);
    if (!ms) return;
    if (parse_part_number(r, &ms->part_no)) {
        s3_error(r, MKV_S3_INVALID_ARGUMENT, "Part number must be an integer between 1 and 10000, inclusive");
        return;
    }
    check_upload(r, part_copy_checked);
}

/* ---- CompleteMultipartUpload ---- */

static void on_mpu_complete(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mkv_mpu_complete_rep rep;
    struct mkv_buf b = MKV_BUF_INIT;
    const char *host = mkv_http_header(r->http, "Host");
    if (status || mkv_frame_decode(reply, &mkv_desc_mpu_complete_rep, &rep)) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOUPLOAD : status ? status : -EPROTO, r->errmsg);
        return;
    }
    s3_xml_begin(&b, "CompleteMultipartUploadResult");
    mkv_buf_printf(&b, "<Location>%s://", r->http->tls ? "https" : "http");
    mkv_buf_put_xml(&b, host ? host : "localhost", strlen(host ? host : "localhost"));
    mkv_buf_puts(&b, "/");
    mkv_buf_put_xml(&b, r->bucket, strlen(r->bucket));
    mkv_buf_puts(&b, "/");
    mkv_buf_put_xml(&b, r->key, r->keylen);
    mkv_buf_puts(&b, "</Location>");
    s3_xml_elem(&b, "Bucket", r->bucket);
    s3_xml_elemn(&b, "Key", r->key, r->keylen);
    s3_xml_elemn(&b, "ETag", (const char *)rep.etag.p, rep.etag.len);
    mkv_buf_puts(&b, "</CompleteMultipartUploadResult>");
    s3_respond_xml(r, 200, &b, NULL, 0);
}

/* Parses <CompleteMultipartUpload><Part><PartNumber/><ETag/></Part>...
 * into part_ref records, with ETags normalised to the quoted form. */
static enum mkv_s3_error parse_complete(struct s3req *r, struct mkv_buf *parts)
{
    struct mkv_xml x;
    struct mkv_xml_token t;
    enum mkv_s3_error e;
    char num[16], etag[MKV_ETAG_MAX + 1], quoted[MKV_ETAG_MAX + 3];
    size_t len;
    int depth = 0, in_part = 0, have_num = 0, have_etag = 0, root = 0;
    unsigned n = 0;
    struct mkv_part_ref pr;
    mkv_xml_init(&x, (const char *)r->xml.p, r->xml.len);
    while ((e = mkv_xml_next(&x, &t)) == MKV_S3_OK && t.type != MKV_XML_EOF) {
        if (t.type == MKV_XML_START) {
            depth++;
            if (depth == 1) {
                if (!mkv_xml_is(&t, "CompleteMultipartUpload")) { e = MKV_S3_MALFORMED_XML; break; }
                root = 1;
            } else if (depth == 2 && mkv_xml_is(&t, "Part")) {
                in_part = 1;
                have_num = have_etag = 0;
            } else if (depth == 3 && in_part && mkv_xml_is(&t, "PartNumber")) {
                char *end;
                long v;
                e = mkv_xml_text(&x, num, sizeof num, &len);
                if (e) break;
                v = strtol(num, &end, 10);
                if (*end || end == num || v < 1 || v > MKV_PARTS_MAX) { e = MKV_S3_INVALID_PART; break; }
                pr.part_no = (uint32_t)v;
                have_num = 1;
                depth--;
            } else if (depth == 3 && in_part && mkv_xml_is(&t, "ETag")) {
                e = mkv_xml_text(&x, etag, sizeof etag, &len);
                if (e) break;
                if (len >= 2 && etag[0] == '"' && etag[len - 1] == '"') snprintf(quoted, sizeof quoted, "%s", etag);
                else snprintf(quoted, sizeof quoted, "\"%s\"", etag);
                have_etag = 1;
                depth--;
            } else {
                e = mkv_xml_skip(&x);
                if (e) break;
                depth--;
            }
        } else if (t.type == MKV_XML_END) {
            if (depth == 2 && in_part) {
                if (!have_num || !have_etag || ++n > MKV_PARTS_MAX) { e = MKV_S3_MALFORMED_XML; break; }
                pr.etag = mkv_slice_str(quoted);
                if (mkv_msg_append(parts, &mkv_desc_part_ref, &pr)) { e = MKV_S3_INTERNAL; break; }
                in_part = 0;
            }
            depth--;
        }
    }
    mkv_xml_free(&x);
    if (e == MKV_S3_OK && (!root || n == 0)) e = MKV_S3_MALFORMED_XML;
    return e;
}

static void on_complete_body(struct s3req *r, int status)
{
    struct mpu_state *ms = r->opstate;
    struct mkv_mpu_complete_req q = {0};
    enum mkv_s3_error e;
    if (status) {
        s3_answer_pipe_failure(r, status);
        return;
    }
    e = parse_complete(r, &ms->parts);
    if (e != MKV_S3_OK) {
        s3_error(r, e, NULL);
        return;
    }
    q.bucket = mkv_slice_str(r->bucket);
    q.key = mkv_slice_mem(r->key, r->keylen);
    q.upload_id = mkv_slice_str(ms->upload_id);
    q.parts = mkv_slice_mem(ms->parts.p, ms->parts.len);
    if (s3_meta(r, 0, MKV_MSG_MPU_COMPLETE, &mkv_desc_mpu_complete_req, &q, on_mpu_complete))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

void s3_op_complete_mpu(struct s3req *r)
{
    if (!mpu_begin(r, 1)) return;
    s3_read_small_body(r, 4u << 20, on_complete_body);
}

/* ---- AbortMultipartUpload ---- */

static void on_mpu_abort(struct s3req *r, int status, struct mkv_frame *reply)
{
    (void)reply;
    if (status) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOUPLOAD : status, r->errmsg);
        return;
    }
    s3_respond_empty(r, 204, NULL, 0);
}

void s3_op_abort_mpu(struct s3req *r)
{
    struct mpu_state *ms = mpu_begin(r, 1);
    struct mkv_mpu_abort_req q = {0};
    if (!ms) return;
    q.bucket = mkv_slice_str(r->bucket);
    q.key = mkv_slice_mem(r->key, r->keylen);
    q.upload_id = mkv_slice_str(ms->upload_id);
    if (s3_meta(r, 0, MKV_MSG_MPU_ABORT, &mkv_desc_mpu_abort_req, &q, on_mpu_abort))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

/* ---- ListParts ---- */

static void on_list_parts(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mpu_state *ms = r->opstate;
    struct mkv_mpu_list_parts_rep rep;
    struct mkv_part_entry p;
    struct mkv_slice cur;
    struct mkv_buf b = MKV_BUF_INIT;
    char date[48];
    if (status || mkv_frame_decode(reply, &mkv_desc_mpu_list_parts_rep, &rep)) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOUPLOAD : status ? status : -EPROTO, r->errmsg);
        return;
    }
    s3_xml_begin(&b, "ListPartsResult");
    s3_xml_elem(&b, "Bucket", r->bucket);
    s3_xml_elemn(&b, "Key", r->key, r->keylen);
    s3_xml_elem(&b, "UploadId", ms->upload_id);
    mkv_buf_puts(&b, S3_INITIATOR_XML S3_OWNER_XML);
    s3_xml_elem(&b, "StorageClass", "STANDARD");
    s3_xml_elem_u64(&b, "PartNumberMarker", ms->marker);
    if (rep.truncated) s3_xml_elem_u64(&b, "NextPartNumberMarker", rep.next_marker);
    s3_xml_elem_u64(&b, "MaxParts", ms->max);
    s3_xml_elem(&b, "IsTruncated", rep.truncated ? "true" : "false");
    cur = rep.parts;
    while (mkv_msg_next(&mkv_desc_part_entry, &cur, &p) == 1) {
        s3_iso_date(p.mtime, date, sizeof date);
        mkv_buf_puts(&b, "<Part>");
        s3_xml_elem_u64(&b, "PartNumber", p.part_no);
        s3_xml_elem(&b, "LastModified", date);
        s3_xml_elemn(&b, "ETag", (const char *)p.etag.p, p.etag.len);
        s3_xml_elem_u64(&b, "Size", p.size);
        mkv_buf_puts(&b, "</Part>");
    }
    mkv_buf_puts(&b, "</ListPartsResult>");
    s3_respond_xml(r, 200, &b, NULL, 0);
}

static void list_parts_checked(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mpu_state *ms = r->opstate;
    struct mkv_mpu_list_parts_req q = {0};
    (void)status;
    (void)reply;
    q.upload_id = mkv_slice_str(ms->upload_id);
    q.marker = ms->marker;
    q.max_parts = ms->max;
    if (s3_meta(r, 1, MKV_MSG_MPU_LIST_PARTS, &mkv_desc_mpu_list_parts_req, &q, on_list_parts))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

void s3_op_list_parts(struct s3req *r)
{
    struct mpu_state *ms = mpu_begin(r, 1);
    char v[16], *end;
    long n;
    if (!ms) return;
    ms->max = 1000;
    if (mkv_http_query(r->http, "max-parts", v, sizeof v) == 1) {
        n = strtol(v, &end, 10);
        if (*end || n < 0) {
            s3_error(r, MKV_S3_INVALID_ARGUMENT, "max-parts must be a non-negative integer");
            return;
        }
        ms->max = n > 1000 ? 1000 : (uint32_t)n;
    }
    if (mkv_http_query(r->http, "part-number-marker", v, sizeof v) == 1) {
        n = strtol(v, &end, 10);
        if (*end || n < 0 || n > MKV_PARTS_MAX) {
            s3_error(r, MKV_S3_INVALID_ARGUMENT, "part-number-marker must be an integer in 0..10000");
            return;
        }
        ms->marker = (uint32_t)n;
    }
    check_upload(r, list_parts_checked);
}
