/* minikv gateway: bucket operations and listings (ListBuckets,
 * CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
 * GetBucketVersioning, ListObjects V1/V2, ListObjectVersions,
 * ListMultipartUploads, DeleteObjects).
 *
 * Listings are computed by the meta service in S3 order (binary order of
 * the full key) from the directory tree; the gateway only turns replies
 * into XML. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw.h"
#include "minikv/err.h"
#include "minikv/log.h"
#include "minikv/names.h"
#include "xml.h"

#define EMPTY_ETAG "\"d41d8cd98f00b204e9800998ecf8427e\""

/* ---- helpers ---- */

/* Appends s as an XML element, URL-encoded when url is set (encoding-type=url:
 * everything but unreserved characters and '/' as %XX). */
static void elem_key(struct mkv_buf *b, const char *name, const void *s, size_t len, int url)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = s;
    if (!url) {
        s3_xml_elemn(b, name, s, len);
        return;
    }
    mkv_buf_printf(b, "<%s>", name);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            mkv_buf_append(b, &c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            mkv_buf_append(b, e, 3);
        }
    }
    mkv_buf_printf(b, "</%s>", name);
}

/* Reads an optional integer query parameter in [0, max]; returns 0 or an
 * S3 error. */
static enum mkv_s3_error query_uint(struct s3req *r, const char *name, uint32_t def, uint32_t max,
                                    uint32_t *out)
{
    char v[24], *end;
    long long n;
    int rv = mkv_http_query(r->http, name, v, sizeof v);
    *out = def;
    if (rv == 0) return MKV_S3_OK;
    if (rv < 0 || !v[0]) return MKV_S3_INVALID_ARGUMENT;
    n = strtoll(v, &end, 10);
    if (*end || n < 0) return MKV_S3_INVALID_ARGUMENT;
    *out = n > (long long)max ? max : (uint32_t)n;
    return MKV_S3_OK;
}

static int query_str(struct s3req *r, const char *name, char *buf, size_t cap)
{
    int rv = mkv_http_query(r->http, name, buf, cap);
    if (rv <= 0) buf[0] = '\0';
    return rv;
}

static int bucket_ok(struct s3req *r)
{
    if (mkv_check_bucket(r->bucket, strlen(r->bucket))) {
        s3_error(r, MKV_S3_INVALID_BUCKET_NAME, NULL);
        return 0;
    }
    return 1;
}

/* ---- ListBuckets ---- */

static void on_bucket_list(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mkv_bucket_list_rep rep;
    struct mkv_bucket_entry e;
    struct mkv_buf b = MKV_BUF_INIT;
    struct mkv_slice cur;
    char date[48];
    if (status || mkv_frame_decode(reply, &mkv_desc_bucket_list_rep, &rep)) {
        s3_error_status(r, status ? status : -EPROTO, r->errmsg);
        return;
    }
    s3_xml_begin(&b, "ListAllMyBucketsResult");
    mkv_buf_puts(&b, S3_OWNER_XML "<Buckets>");
    cur = rep.buckets;
    while (mkv_msg_next(&mkv_desc_bucket_entry, &cur, &e) == 1) {
        s3_iso_date(e.ctime, date, sizeof date);
        mkv_buf_puts(&b, "<Bucket>");
        s3_xml_elemn(&b, "Name", (const char *)e.name.p, e.name.len);
        s3_xml_elem(&b, "CreationDate", date);
        mkv_buf_puts(&b, "</Bucket>");
    }
    mkv_buf_puts(&b, "</Buckets></ListAllMyBucketsResult>");
    s3_respond_xml(r, 200, &b, NULL, 0);
}

void s3_op_list_buckets(struct s3req *r)
{
    struct mkv_bucket_list_req q = {0};
    if (s3_meta(r, 0, MKV_MSG_BUCKET_LIST, &mkv_desc_bucket_list_req, &q, on_bucket_list))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

/* ---- CreateBucket ---- */

static void on_bucket_create(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mkv_http_header h[1];
    char loc[MKV_BUCKET_MAX + 2];
    (void)reply;
    if (status) {
        s3_error_status(r, status, r->errmsg);
        return;
    }
    snprintf(loc, sizeof loc, "/%s", r->bucket);
    h[0].name = "Location";
    h[0].value = loc;
    s3_respond_empty(r, 200, h, 1);
}

static void on_create_body(struct s3req *r, int status)
{
    struct mkv_bucket_create_req q = {0};
    if (status) {
        s3_answer_pipe_failure(r, status);
        return;
    }
    if (r->xml.len) {
        /* CreateBucketConfiguration: only LocationConstraint exists, and
         * a single-region store accepts any value. Check it parses. */
        struct mkv_xml x;
        struct mkv_xml_token t;
        enum mkv_s3_error e;
        mkv_xml_init(&x, (const char *)r->xml.p, r->xml.len);
        while ((e = mkv_xml_next(&x, &t)) == MKV_S3_OK && t.type != MKV_XML_EOF)
            ;
        mkv_xml_free(&x);
        if (e != MKV_S3_OK) {
            s3_error(r, e, NULL);
            return;
        }
    }
    q.name = mkv_slice_str(r->bucket);
    if (s3_meta(r, 0, MKV_MSG_BUCKET_CREATE, &mkv_desc_bucket_create_req, &q, on_bucket_create))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

void s3_op_create_bucket(struct s3req *r)
{
    const char *v;
    if (!bucket_ok(r)) return;
    if ((v = mkv_http_header(r->http, "x-amz-acl")) && strcmp(v, "private") != 0) {
        s3_error(r, MKV_S3_NOT_IMPLEMENTED, "Only the 'private' canned ACL is supported");
        return;
    }
    if (mkv_http_header(r->http, "x-amz-bucket-object-lock-enabled")) {
        s3_error(r, MKV_S3_NOT_IMPLEMENTED, "Object lock is not implemented");
        return;
    }
    s3_read_small_body(r, 64 * 1024, on_create_body);
}

/* ---- HeadBucket, GetBucketLocation, GetBucketVersioning ---- */

static void on_bucket_head(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mkv_http_header h[1];
    struct mkv_buf b = MKV_BUF_INIT;
    (void)reply;
    if (status) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOBUCKET : status, r->errmsg);
        return;
    }
    switch (r->op) {
    case S3_GET_LOCATION:
        s3_xml_begin(&b, "LocationConstraint");
        b.len--; /* drop '>' to write the value inline */
        if (strcmp(r->wk->gw->o.region, "us-east-1") != 0) {
            mkv_buf_puts(&b, ">");
            mkv_buf_put_xml(&b, r->wk->gw->o.region, strlen(r->wk->gw->o.region));
            mkv_buf_puts(&b, "</LocationConstraint>");
        } else {
            mkv_buf_puts(&b, "/>"); /* us-east-1 is reported as empty, as S3 does */
        }
        s3_respond_xml(r, 200, &b, NULL, 0);
        return;
    case S3_GET_VERSIONING:
        /* Versioning was never enabled on a minikv bucket. */
        s3_xml_begin(&b, "VersioningConfiguration");
        b.len--;
        mkv_buf_puts(&b, "/>");
        s3_respond_xml(r, 200, &b, NULL, 0);
        return;
    default:
        h[0].name = "x-amz-bucket-region";
        h[0].value = r->wk->gw->o.region;
        s3_respond_empty(r, 200, h, 1);
    }
}

static void bucket_head(struct s3req *r)
{
    struct mkv_bucket_head_req q = {0};
    if (!bucket_ok(r)) return;
    q.name = mkv_slice_str(r->bucket);
    if (s3_meta(r, 0, MKV_MSG_BUCKET_HEAD, &mkv_desc_bucket_head_req, &q, on_bucket_head))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

void s3_op_head_bucket(struct s3req *r)
{
    bucket_head(r);
}

void s3_op_get_location(struct s3req *r)
{
    bucket_head(r);
}

void s3_op_get_versioning(struct s3req *r)
{
    bucket_head(r);
}

/* ---- DeleteBucket ---- */

static void on_bucket_delete(struct s3req *r, int status, struct mkv_frame *reply)
{
    (void)reply;
    if (status) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOBUCKET : status, r->errmsg);
        return;
    }
    s3_respond_empty(r, 204, NULL, 0);
}

void s3_op_delete_bucket(struct s3req *r)
{
    struct mkv_bucket_delete_req q = {0};
    if (!bucket_ok(r)) return;
    q.name = mkv_slice_str(r->bucket);
    if (s3_meta(r, 0, MKV_MSG_BUCKET_DELETE, &mkv_desc_bucket_delete_req, &q, on_bucket_delete))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

/* ---- ListObjects (V1, V2) and ListObjectVersions ---- */

struct list_state
{
    char prefix[MKV_KEY_MAX + 1];
    char delimiter[17];
    char marker[MKV_KEY_MAX + 1];       /* V1 marker / V2 start-after / versions key-marker */
    char token[2 * MKV_KEY_MAX + 1];    /* V2 continuation-token as received */
    char version_marker[72];
    uint32_t max_keys;
    int url;
    int fetch_owner;
    int has_token, has_start_after, has_delimiter;
};

static void hex_key(const uint8_t *p, size_t n, char *out)
{
    mkv_hex_encode(p, n, out);
}

static void on_obj_list(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct list_state *ls = r->opstate;
    struct mkv_obj_list_rep rep;
    struct mkv_list_entry e;
    struct mkv_key_entry pfx;
    struct mkv_slice cur;
    struct mkv_buf b = MKV_BUF_INIT;
    char date[48], next[2 * MKV_KEY_MAX + 1];
    unsigned count = 0;
    int v2 = r->op == S3_LIST_OBJECTS_V2, versions = r->op == S3_LIST_VERSIONS;
    if (status || mkv_frame_decode(reply, &mkv_desc_obj_list_rep, &rep)) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOBUCKET : status ? status : -EPROTO, r->errmsg);
        return;
    }
    s3_xml_begin(&b, versions ? "ListVersionsResult" : "ListBucketResult");
    s3_xml_elem(&b, "Name", r->bucket);
    elem_key(&b, "Prefix", ls->prefix, strlen(ls->prefix), ls->url);
    if (versions) {
        elem_key(&b, "KeyMarker", ls->marker, strlen(ls->marker), ls->url);
        s3_xml_elem(&b, "VersionIdMarker", ls->version_marker);
    } else if (v2) {
        if (ls->has_start_after) elem_key(&b, "StartAfter", ls->marker, strlen(ls->marker), ls->url);
        if (ls->has_token) s3_xml_elem(&b, "ContinuationToken", ls->token);
    } else {
        elem_key(&b, "Marker", ls->marker, strlen(ls->marker), ls->url);
    }
    s3_xml_elem_u64(&b, "MaxKeys", ls->max_keys);
    if (ls->has_delimiter) elem_key(&b, "Delimiter", ls->delimiter, strlen(ls->delimiter), ls->url);
    if (ls->url) s3_xml_elem(&b, "EncodingType", "url");
    s3_xml_elem(&b, "IsTruncated", rep.truncated ? "true" : "false");
    if (rep.truncated && rep.next.len) {
        if (versions) {
            elem_key(&b, "NextKeyMarker", rep.next.p, rep.next.len, ls->url);
            s3_xml_elem(&b, "NextVersionIdMarker", "null");
        } else if (v2) {
            hex_key(rep.next.p, rep.next.len, next);
            s3_xml_elem(&b, "NextContinuationToken", next);
        } else {
            elem_key(&b, "NextMarker", rep.next.p, rep.next.len, ls->url);
        }
    }
    cur = rep.entries;
    while (mkv_msg_next(&mkv_desc_list_entry, &cur, &e) == 1) {
        s3_iso_date(e.mtime, date, sizeof date);
        mkv_buf_puts(&b, versions ? "<Version>" : "<Contents>");
        elem_key(&b, "Key", e.key.p, e.key.len, ls->url);
        if (versions) {
            s3_xml_elem(&b, "VersionId", "null");
            s3_xml_elem(&b, "IsLatest", "true");
        }
        s3_xml_elem(&b, "LastModified", date);
        if (e.type == MKV_T_DIR || !e.etag.len) s3_xml_elem(&b, "ETag", EMPTY_ETAG);
        else s3_xml_elemn(&b, "ETag", (const char *)e.etag.p, e.etag.len);
        s3_xml_elem_u64(&b, "Size", e.type == MKV_T_DIR ? 0 : e.size);
        if (!v2 || ls->fetch_owner) mkv_buf_puts(&b, S3_OWNER_XML);
        s3_xml_elem(&b, "StorageClass", "STANDARD");
        mkv_buf_puts(&b, versions ? "</Version>" : "</Contents>");
        count++;
    }
    cur = rep.prefixes;
    while (mkv_msg_next(&mkv_desc_key_entry, &cur, &pfx) == 1) {
        mkv_buf_puts(&b, "<CommonPrefixes>");
        elem_key(&b, "Prefix", pfx.key.p, pfx.key.len, ls->url);
        mkv_buf_puts(&b, "</CommonPrefixes>");
        count++;
    }
    if (v2) s3_xml_elem_u64(&b, "KeyCount", count);
    mkv_buf_puts(&b, versions ? "</ListVersionsResult>" : "</ListBucketResult>");
    s3_respond_xml(r, 200, &b, NULL, 0);
}

void s3_op_list_objects(struct s3req *r)
{
    struct list_state *ls;
    struct mkv_obj_list_req q = {0};
    char enc[16];
    enum mkv_s3_error e;
    if (!bucket_ok(r)) return;
    ls = calloc(1, sizeof *ls);
    if (!ls) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    r->opstate = ls;
    r->opstate_free = free;
    if (query_str(r, "prefix", ls->prefix, sizeof ls->prefix) < 0 ||
        query_str(r, "delimiter", ls->delimiter, sizeof ls->delimiter) < 0) {
        s3_error(r, MKV_S3_INVALID_ARGUMENT, "prefix or delimiter too long or malformed");
        return;
    }
    ls->has_delimiter = ls->delimiter[0] != '\0';
    e = query_uint(r, "max-keys", 1000, 1000, &ls->max_keys);
    if (e != MKV_S3_OK) {
        s3_error(r, e, "max-keys must be a non-negative integer");
        return;
    }
    if (query_str(r, "encoding-type", enc, sizeof enc) > 0) {
        if (strcmp(enc, "url") != 0) {
            s3_error(r, MKV_S3_INVALID_ARGUMENT, "Invalid Encoding Method specified in Request");
            return;
        }
        ls->url = 1;
    }
    if (r->op == S3_LIST_OBJECTS_V2) {
        char fo[8];
        ls->has_start_after = query_str(r, "start-after", ls->marker, sizeof ls->marker) > 0;
        ls->has_token = query_str(r, "continuation-token", ls->token, sizeof ls->token) > 0;
        if (query_str(r, "fetch-owner", fo, sizeof fo) > 0) ls->fetch_owner = !strcmp(fo, "true");
        if (ls->has_token) {
            size_t n = strlen(ls->token);
            uint8_t *k = malloc(n / 2 + 1);
            if (!k || n % 2 || mkv_hex_decode(ls->token, n, k)) {
                free(k);
                s3_error(r, MKV_S3_INVALID_ARGUMENT, "The continuation token provided is incorrect");
                return;
            }
            /* The token resumes after its key; start-after is then ignored. */
            q.start_after = mkv_slice_mem(k, n / 2);
            q.bucket = mkv_slice_str(r->bucket);
            q.prefix = mkv_slice_str(ls->prefix);
            q.delimiter = mkv_slice_str(ls->delimiter);
            q.max_keys = ls->max_keys;
            q.flags = MKV_LIST_V2;
            if (memchr(k, 0, n / 2) || s3_meta(r, 0, MKV_MSG_OBJ_LIST, &mkv_desc_obj_list_req, &q, on_obj_list))
                s3_error(r, MKV_S3_INVALID_ARGUMENT, "The continuation token provided is incorrect");
            free(k);
            return;
        }
    } else if (r->op == S3_LIST_VERSIONS) {
        query_str(r, "key-marker", ls->marker, sizeof ls->marker);
        query_str(r, "version-id-marker", ls->version_marker, sizeof ls->version_marker);
        if (ls->version_marker[0] && strcmp(ls->version_marker, "null") != 0) {
            s3_error(r, MKV_S3_INVALID_ARGUMENT, "Invalid version id specified");
            return;
        }
    } else {
        query_str(r, "marker", ls->marker, sizeof ls->marker);
    }
    q.bucket = mkv_slice_str(r->bucket);
    q.prefix = mkv_slice_str(ls->prefix);
    q.delimiter = mkv_slice_str(ls->delimiter);
    q.start_after = mkv_slice_str(ls->marker);
    q.max_keys = ls->max_keys;
    q.flags = r->op == S3_LIST_OBJECTS_V2 ? MKV_LIST_V2 : 0;
    if (s3_meta(r, 0, MKV_MSG_OBJ_LIST, &mkv_desc_obj_list_req, &q, on_obj_list))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

/* ---- ListMultipartUploads ---- */

struct uploads_state
{
    char prefix[MKV_KEY_MAX + 1];
    char key_marker[MKV_KEY_MAX + 1];
    char upload_marker[65];
    uint32_t max;
    int url;
};

static void on_uploads(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct uploads_state *us = r->opstate;
    struct mkv_mpu_list_uploads_rep rep;
    struct mkv_upload_entry u;
    struct mkv_slice cur;
    struct mkv_buf b = MKV_BUF_INIT;
    char date[48];
    if (status || mkv_frame_decode(reply, &mkv_desc_mpu_list_uploads_rep, &rep)) {
        s3_error_status(r, status == -ENOENT ? MKV_ENOBUCKET : status ? status : -EPROTO, r->errmsg);
        return;
    }
    s3_xml_begin(&b, "ListMultipartUploadsResult");
    s3_xml_elem(&b, "Bucket", r->bucket);
    elem_key(&b, "KeyMarker", us->key_marker, strlen(us->key_marker), us->url);
    s3_xml_elem(&b, "UploadIdMarker", us->upload_marker);
    if (rep.truncated) {
        elem_key(&b, "NextKeyMarker", rep.next_key.p, rep.next_key.len, us->url);
        s3_xml_elemn(&b, "NextUploadIdMarker", (const char *)rep.next_upload_id.p, rep.next_upload_id.len);
    }
    elem_key(&b, "Prefix", us->prefix, strlen(us->prefix), us->url);
    s3_xml_elem_u64(&b, "MaxUploads", us->max);
    if (us->url) s3_xml_elem(&b, "EncodingType", "url");
    s3_xml_elem(&b, "IsTruncated", rep.truncated ? "true" : "false");
    cur = rep.uploads;
    while (mkv_msg_next(&mkv_desc_upload_entry, &cur, &u) == 1) {
        s3_iso_date(u.initiated, date, sizeof date);
        mkv_buf_puts(&b, "<Upload>");
        elem_key(&b, "Key", u.key.p, u.key.len, us->url);
        s3_xml_elemn(&b, "UploadId", (const char *)u.upload_id.p, u.upload_id.len);
        mkv_buf_puts(&b, S3_INITIATOR_XML S3_OWNER_XML);
        s3_xml_elem(&b, "StorageClass", "STANDARD");
        s3_xml_elem(&b, "Initiated", date);
        mkv_buf_puts(&b, "</Upload>");
    }
    mkv_buf_puts(&b, "</ListMultipartUploadsResult>");
    s3_respond_xml(r, 200, &b, NULL, 0);
}

void s3_op_list_uploads(struct s3req *r)
{
    struct uploads_state *us;
    struct mkv_mpu_list_uploads_req q = {0};
    char tmp[32];
    enum mkv_s3_error e;
    if (!bucket_ok(r)) return;
    if (query_str(r, "delimiter", tmp, sizeof tmp) > 0 && tmp[0]) {
        s3_error(r, MKV_S3_NOT_IMPLEMENTED, "ListMultipartUploads with a delimiter is not implemented");
        return;
    }
    us = calloc(1, sizeof *us);
    if (!us) {
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    r->opstate = us;
    r->opstate_free = free;
    query_str(r, "prefix", us->prefix, sizeof us->prefix);
    query_str(r, "key-marker", us->key_marker, sizeof us->key_marker);
    query_str(r, "upload-id-marker", us->upload_marker, sizeof us->upload_marker);
    us->url = query_str(r, "encoding-type", tmp, sizeof tmp) > 0 && !strcmp(tmp, "url");
    e = query_uint(r, "max-uploads", 1000, 1000, &us->max);
    if (e != MKV_S3_OK) {
        s3_error(r, e, "max-uploads must be a non-negative integer");
        return;
    }
    q.bucket = mkv_slice_str(r->bucket);
    q.prefix = mkv_slice_str(us->prefix);
    q.key_marker = mkv_slice_str(us->key_marker);
    q.upload_id_marker = mkv_slice_str(us->upload_marker);
    q.max_uploads = us->max;
    if (s3_meta(r, 0, MKV_MSG_MPU_LIST_UPLOADS, &mkv_desc_mpu_list_uploads_req, &q, on_uploads))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

/* ---- DeleteObjects ---- */

struct multi_state
{
    struct mkv_buf keys;   /* key_entry records sent to meta */
    char **names;          /* the keys, for the response */
    size_t *lens;
    int *bad;              /* per key: 0, or the name check's error (not sent to meta) */
    unsigned n;
    int quiet;
};

static void multi_free(void *p)
{
    struct multi_state *ms = p;
    for (unsigned i = 0; i < ms->n; i++) free(ms->names[i]);
    free(ms->names);
    free(ms->lens);
    free(ms->bad);
    mkv_buf_free(&ms->keys);
    free(ms);
}

/* Answers DeleteResult from meta's per-key statuses (results) and the
 * gateway's own name checks. */
static void delete_result(struct s3req *r, struct mkv_slice results)
{
    struct multi_state *ms = r->opstate;
    struct mkv_status_entry st;
    struct mkv_slice cur = results;
    struct mkv_buf b = MKV_BUF_INIT;
    unsigned i;
    s3_xml_begin(&b, "DeleteResult");
    for (i = 0; i < ms->n; i++) {
        /* Meta answers one status per key it was sent: 1 deleted, 0 absent
         * (S3 reports both as deleted), or an error. */
        int s = ms->bad[i];
        if (!s) {
            if (mkv_msg_next(&mkv_desc_status_entry, &cur, &st) != 1) break;
            s = (int)st.status;
        }
        if (s >= 0 || s == MKV_ENOTFOUND || s == -ENOENT) {
            if (!ms->quiet) {
                mkv_buf_puts(&b, "<Deleted>");
                s3_xml_elemn(&b, "Key", ms->names[i], ms->lens[i]);
                mkv_buf_puts(&b, "</Deleted>");
            }
        } else {
            enum mkv_s3_error e = s3_error_from_status(s);
            mkv_buf_puts(&b, "<Error>");
            s3_xml_elemn(&b, "Key", ms->names[i], ms->lens[i]);
            s3_xml_elem(&b, "Code", mkv_s3_error_code(e));
            s3_xml_elem(&b, "Message", mkv_strerror(s));
            mkv_buf_puts(&b, "</Error>");
        }
    }
    mkv_buf_puts(&b, "</DeleteResult>");
    s3_respond_xml(r, 200, &b, NULL, 0);
}

static void on_delete_multi(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct mkv_obj_delete_multi_rep rep;
    if (status || mkv_frame_decode(reply, &mkv_desc_obj_delete_multi_rep, &rep)) {
        s3_error_status(r, status ? status : -EPROTO, r->errmsg);
        return;
    }
    delete_result(r, rep.results);
}

static enum mkv_s3_error parse_delete(struct s3req *r, struct multi_state *ms)
{
    struct mkv_xml x;
    struct mkv_xml_token t;
    enum mkv_s3_error e;
    char *key = malloc(MKV_KEY_MAX + 2), text[16];
    size_t len;
    int depth = 0, in_object = 0, have_key = 0, root = 0;
    if (!key) return MKV_S3_INTERNAL;
    mkv_xml_init(&x, (const char *)r->xml.p, r->xml.len);
    while ((e = mkv_xml_next(&x, &t)) == MKV_S3_OK && t.type != MKV_XML_EOF) {
        if (t.type == MKV_XML_START) {
            depth++;
            if (depth == 1) {
                if (!mkv_xml_is(&t, "Delete")) { e = MKV_S3_MALFORMED_XML; break; }
                root = 1;
            } else if (depth == 2 && mkv_xml_is(&t, "Object")) {
                in_object = 1;
                have_key = 0;
            } else if (depth == 2 && mkv_xml_is(&t, "Quiet")) {
                e = mkv_xml_text(&x, text, sizeof text, &len);
                if (e) break;
                ms->quiet = !strcmp(text, "true");
                depth--;
            } else if (depth == 3 && in_object && mkv_xml_is(&t, "Key")) {
                e = mkv_xml_text(&x, key, MKV_KEY_MAX + 2, &len);
                if (e) break;
                if (len == 0 || len > MKV_KEY_MAX) { e = MKV_S3_MALFORMED_XML; break; }
                if (ms->n == MKV_MULTI_MAX) { e = MKV_S3_MALFORMED_XML; break; }
                ms->names[ms->n] = malloc(len + 1);
                if (!ms->names[ms->n]) { e = MKV_S3_INTERNAL; break; }
                memcpy(ms->names[ms->n], key, len + 1);
                ms->lens[ms->n++] = len;
                have_key = 1;
                depth--;
            } else if (depth == 3 && in_object && mkv_xml_is(&t, "VersionId")) {
                char vid[72];
                e = mkv_xml_text(&x, vid, sizeof vid, &len);
                if (e) break;
                if (strcmp(vid, "null") != 0) { e = MKV_S3_NO_SUCH_VERSION; break; }
                depth--;
            } else {
                e = mkv_xml_skip(&x);
                if (e) break;
                depth--;
            }
        } else if (t.type == MKV_XML_END) {
            if (depth == 2 && in_object) {
                if (!have_key) { e = MKV_S3_MALFORMED_XML; break; }
                in_object = 0;
            }
            depth--;
        }
    }
    mkv_xml_free(&x);
    free(key);
    if (e == MKV_S3_OK && (!root || ms->n == 0)) e = MKV_S3_MALFORMED_XML;
    return e;
}

static void on_delete_body(struct s3req *r, int status)
{
    struct multi_state *ms = r->opstate;
    struct mkv_obj_delete_multi_req q = {0};
    enum mkv_s3_error e;
    if (status) {
        s3_answer_pipe_failure(r, status);
        return;
    }
    e = parse_delete(r, ms);
    if (e != MKV_S3_OK) {
        s3_error(r, e, NULL);
        return;
    }
    for (unsigned i = 0; i < ms->n; i++) {
        struct mkv_key_entry k = {mkv_slice_mem(ms->names[i], ms->lens[i])};
        /* An invalid key gets its own error; the others are still deleted
         * (the meta command is all-or-nothing, so it must not see it). */
        ms->bad[i] = mkv_check_key(ms->names[i], ms->lens[i]);
        if (ms->bad[i]) continue;
        if (mkv_msg_append(&ms->keys, &mkv_desc_key_entry, &k)) {
            s3_error(r, MKV_S3_INTERNAL, NULL);
            return;
        }
    }
    if (ms->keys.len == 0) { /* every key was invalid */
        struct mkv_slice none = {NULL, 0};
        delete_result(r, none);
        return;
    }
    q.bucket = mkv_slice_str(r->bucket);
    q.keys = mkv_slice_mem(ms->keys.p, ms->keys.len);
    if (s3_meta(r, 0, MKV_MSG_OBJ_DELETE_MULTI, &mkv_desc_obj_delete_multi_req, &q, on_delete_multi))
        s3_error(r, MKV_S3_INTERNAL, NULL);
}

void s3_op_delete_objects(struct s3req *r)
{
    struct multi_state *ms;
    if (!bucket_ok(r)) return;
    ms = calloc(1, sizeof *ms);
    if (ms) {
        ms->names = calloc(MKV_MULTI_MAX, sizeof *ms->names);
        ms->lens = calloc(MKV_MULTI_MAX, sizeof *ms->lens);
        ms->bad = calloc(MKV_MULTI_MAX, sizeof *ms->bad);
    }
    if (!ms || !ms->names || !ms->lens || !ms->bad) {
        if (ms) {
            free(ms->names);
            free(ms->lens);
            free(ms->bad);
        }
        free(ms);
        s3_error(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    r->opstate = ms;
    r->opstate_free = multi_free;
    s3_read_small_body(r, 2u << 20, on_delete_body);
}
