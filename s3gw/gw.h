/* minikv gateway: state shared by the gateway's modules (private).
 *
 * The gateway runs one worker per core: a thread with its own libuv loop,
 * HTTP server (all workers listen on one port with SO_REUSEPORT) and
 * client library instance. A request is owned by the worker that accepted
 * it, from the first header to the last byte of the response.
 *
 * An S3 request is a small state machine (struct s3req): routed, then
 * authenticated (which may need the secret from the meta service), then
 * handed to its operation, which talks to meta and chunk servers through
 * the client library and streams bodies both ways. */
#ifndef MKV_S3GW_GW_H
#define MKV_S3GW_GW_H

#include <stdint.h>

#include <uv.h>

#include "auth.h"
#include "checksum.h"
#include "gateway.h"
#include "http.h"
#include "minikv/buf.h"
#include "minikv/client.h"
#include "minikv/metrics.h"
#include "s3err.h"

/* Operations, for routing and per-operation metrics. */
#define MKV_S3_OPS(X)                                                                          \
    X(LIST_BUCKETS, "ListBuckets") X(CREATE_BUCKET, "CreateBucket")                            \
    X(HEAD_BUCKET, "HeadBucket") X(DELETE_BUCKET, "DeleteBucket")                              \
    X(GET_LOCATION, "GetBucketLocation") X(GET_VERSIONING, "GetBucketVersioning")              \
    X(LIST_OBJECTS, "ListObjects") X(LIST_OBJECTS_V2, "ListObjectsV2")                         \
    X(LIST_VERSIONS, "ListObjectVersions") X(LIST_UPLOADS, "ListMultipartUploads")             \
    X(DELETE_OBJECTS, "DeleteObjects") X(PUT_OBJECT, "PutObject") X(COPY_OBJECT, "CopyObject") \
    X(GET_OBJECT, "GetObject") X(HEAD_OBJECT, "HeadObject") X(DELETE_OBJECT, "DeleteObject")   \
    X(CREATE_MPU, "CreateMultipartUpload") X(UPLOAD_PART, "UploadPart")                        \
    X(UPLOAD_PART_COPY, "UploadPartCopy") X(COMPLETE_MPU, "CompleteMultipartUpload")           \
    X(ABORT_MPU, "AbortMultipartUpload") X(LIST_PARTS, "ListParts")                            \
    X(NOT_IMPLEMENTED, "NotImplemented") X(HEALTH, "Health") X(METRICS, "Metrics")             \
    X(ADMIN, "Admin") X(BATCH, "Batch") X(TRANSACTION, "Transaction") X(INVALID, "Invalid")

enum s3_op {
#define S3_OP_ENUM(id, name) S3_##id,
    MKV_S3_OPS(S3_OP_ENUM)
#undef S3_OP_ENUM
    S3_OP_COUNT
};

extern const char *const s3_op_names[S3_OP_COUNT];

struct gw_stats
{
    uint64_t requests[S3_OP_COUNT][6]; /* by status class: 1xx..5xx, [0] other */
    struct mkv_hist latency[S3_OP_COUNT];
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t auth_failures;
};

struct key_cache_entry
{
    char access_key[129];
    char secret[129];
    uint32_t flags;
    uint64_t expires_ns;
};

#define KEY_CACHE_SIZE 64

struct mkv_gw;

struct gw_worker
{
    struct mkv_gw *gw;
    int index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wakeup;
    struct mkv_http_server *http;
    struct mkv_client *client;
    struct gw_stats stats;
    struct key_cache_entry keys[KEY_CACHE_SIZE];
    uint64_t next_request;
    int stopping;
    int started;
    int start_rv;
    char start_err[256];
    uv_sem_t started_sem;
};

struct mkv_gw
{
    struct mkv_gw_opts o;
    uint8_t cluster_key[32];
    int have_cluster_key;
    struct gw_worker *workers;
    int nworkers;
    int64_t start_time;
    int port;
    char listen_buf[300]; /* the listen address with the port the first worker got */
    int keys_ready;       /* access keys bootstrapped: authenticated requests can be served */
    uint64_t rid_prefix;
};

/* One S3 request. */
enum s3_state { ST_ROUTED, ST_AUTH, ST_RUNNING, ST_DONE };

struct s3req;
/* A meta call made on behalf of a request: holds a reference on it so a
 * client that disconnects mid-call cannot free it under the callback. */
struct s3_call
{
    struct mkv_meta_req m;
    struct s3req *r;
    void (*cb)(struct s3req *r, int status, struct mkv_frame *reply);
    int busy;
};

struct s3req
{
    struct mkv_http_req *http;
    struct gw_worker *wk;
    enum s3_op op;
    enum s3_state state;
    int aborted;
    int responded;
    char bucket[MKV_BUCKET_MAX + 1];
    char *key; /* decoded, NUL-terminated; "" for bucket-level requests */
    size_t keylen;
    char request_id[24];
    char access_key[129];
    int refs;
    int vhost;          /* bucket came from the Host header */
    /* body handling */
    struct mkv_buf xml; /* small XML bodies, read whole */
    void *auth;         /* authn.c state */
    void *smallbody;    /* s3_read_small_body state */
    struct put_pipe *pipe; /* body/copy -> chunks pipeline (s3_object.c) */
    /* in-flight work */
    struct s3_call calls[2];
    char errmsg[256];   /* message of the last failed meta call */
    struct mkv_writer *writer;
    struct mkv_reader *reader;
    void *opstate; /* operation-specific state, freed with opstate_free */
    void (*opstate_free)(void *);
    int status_code;
    unsigned opflags;
    void *step;         /* state of the current step of a multi-step operation */
    uint64_t bytes_out;
};

/* gateway.c */
/* A meta call for r in call slot 0 or 1; cb runs only if the client is
 * still there. Returns 0 or a negative code (cb will not run). */
int s3_meta(struct s3req *r, int slot, uint16_t type, const struct mkv_msgdesc *d, const void *msg,
            void (*cb)(struct s3req *r, int status, struct mkv_frame *reply));
void s3_error(struct s3req *r, enum mkv_s3_error e, const char *message);
void s3_error_h(struct s3req *r, enum mkv_s3_error e, const char *message,
                const struct mkv_http_header *extra, unsigned nextra);
/* Maps a client-library/meta status to an S3 error and answers. */
void s3_error_status(struct s3req *r, int status, const char *context);
enum mkv_s3_error s3_error_from_status(int status);
/* Answers with a body of the given type (b is consumed). */
void s3_respond_body(struct s3req *r, int status, const char *content_type, struct mkv_buf *b,
                     const struct mkv_http_header *extra, unsigned nextra);
/* Answers with an XML body (b is consumed). */
void s3_respond_xml(struct s3req *r, int status, struct mkv_buf *b,
                    const struct mkv_http_header *extra, unsigned nextra);
void s3_respond_empty(struct s3req *r, int status, const struct mkv_http_header *extra,
                      unsigned nextra);
/* Marks the request finished (metrics, frees it). Called by the response
 * paths above and by streaming operations when their last write is done. */
void s3req_done(struct s3req *r);
/* Drops a reference taken with r->refs++ around asynchronous work. */
void s3req_unref(struct s3req *r);
/* Reads a small body (XML) whole, up to max bytes, then calls cb. */
void s3_read_small_body(struct s3req *r, size_t max, void (*cb)(struct s3req *r, int status));
/* Formats an HTTP date / ISO 8601 time into buf[40]. */
void s3_http_date(int64_t ns, char *buf, size_t len);
void s3_iso_date(int64_t ns, char *buf, size_t len);
/* Appends the XML declaration. */
void s3_xml_begin(struct mkv_buf *b, const char *root);
void s3_xml_elem(struct mkv_buf *b, const char *name, const char *value);
void s3_xml_elemn(struct mkv_buf *b, const char *name, const char *value, size_t len);
void s3_xml_elem_u64(struct mkv_buf *b, const char *name, uint64_t v);

/* s3_bucket.c */
void s3_op_list_buckets(struct s3req *r);
void s3_op_create_bucket(struct s3req *r);
void s3_op_head_bucket(struct s3req *r);
void s3_op_delete_bucket(struct s3req *r);
void s3_op_get_location(struct s3req *r);
void s3_op_get_versioning(struct s3req *r);
void s3_op_list_objects(struct s3req *r);
void s3_op_list_uploads(struct s3req *r);
void s3_op_delete_objects(struct s3req *r);

/* s3_txn.c: POST /batch and POST /transaction (JSON, all or nothing). */
void s3_op_transaction(struct s3req *r);

/* Every bucket and object has one owner: the holders of the cluster's keys. */
#define S3_OWNER_XML "<Owner><ID>minikv</ID><DisplayName>minikv</DisplayName></Owner>"
#define S3_INITIATOR_XML "<Initiator><ID>minikv</ID><DisplayName>minikv</DisplayName></Initiator>"

/* s3_object.c */
/* The S3 ETag of an MD5 digest: quoted lowercase hex. */
void s3_etag_from_md5(const uint8_t md5[16], char *etag, size_t len);
void s3_op_put_object(struct s3req *r);
void s3_op_copy_object(struct s3req *r);
void s3_op_get_object(struct s3req *r);
void s3_op_delete_object(struct s3req *r);
/* What a pipeline produced: the data is durable in prepared chunks. */
struct body_result
{
    char etag[MKV_ETAG_MAX + 1]; /* quoted hex MD5 */
    uint64_t size;
    struct mkv_buf attrs;        /* verified checksums, as attributes to store */
    struct mkv_buf extents;
    struct mkv_buf data;         /* the whole object, when it is stored inline */
};
struct put_pipe;
/* status 0 with res, or > 0 an S3 error, or < 0 a storage/meta code. */
typedef void (*s3_pipe_done_cb)(struct s3req *r, int status, struct body_result *res);
/* Streams the request body (decoded, verified) into new chunks, or, when
 * its length is known and at most inline_max, into res->data (the caller
 * stores it inline in the inode; 0 never inlines). */
void s3_stream_body_to_chunks(struct s3req *r, uint64_t max, uint64_t inline_max,
                              s3_pipe_done_cb done);
/* Copies [off, off+len) of the source object src into new chunks (or into
 * res->data when len <= inline_max). */
void s3_copy_to_chunks(struct s3req *r, const struct mkv_obj_info *src, uint64_t off, uint64_t len,
                       uint64_t inline_max, s3_pipe_done_cb done);
void body_result_free(struct body_result *res);
void s3_pipe_free(struct put_pipe *pp);
void s3_answer_pipe_failure(struct s3req *r, int status);
int s3_put_attr(struct mkv_buf *attrs, const char *name, const char *value);
/* Collects x-amz-meta-* and stored headers; returns an S3 error. */
int s3_collect_attrs(struct s3req *r, struct mkv_buf *attrs, const char **content_type);
enum mkv_s3_error s3_check_unsupported_headers(struct s3req *r);
enum mkv_s3_error s3_body_length(struct s3req *r, uint64_t *len);
/* Parses x-amz-copy-source; *key is malloc'ed. */
enum mkv_s3_error s3_parse_copy_source(struct s3req *r, char *bucket, size_t blen, char **key,
                                       size_t *keylen);
int s3_etag_matches(const char *list, struct mkv_slice etag);
/* Takes the OBJ_LOOKUP reply for x-amz-copy-source: on success keeps a
 * reference in *frame, decodes the source into *src (slices into the
 * frame) and returns 0; otherwise answers the S3 error (missing source,
 * not an object, x-amz-copy-source-if-* failed) and returns -1. */
int s3_copy_source(struct s3req *r, int status, struct mkv_frame *reply, struct mkv_frame **frame,
                   struct mkv_obj_info *src);
/* If-* headers (prefix "" or "x-amz-copy-source-"): 0, 304 or 412. */
int s3_check_conditions(const struct mkv_http_req *h, const char *prefix, struct mkv_slice etag,
                        int64_t mtime_ns, int is_get);
/* 1: one satisfiable range; 0: ignore the header; -1: unsatisfiable. */
int s3_parse_range(const char *v, uint64_t size, uint64_t *off, uint64_t *len);

/* s3_mpu.c */
void s3_op_create_mpu(struct s3req *r);
void s3_op_upload_part(struct s3req *r);
void s3_op_upload_part_copy(struct s3req *r);
void s3_op_complete_mpu(struct s3req *r);
void s3_op_abort_mpu(struct s3req *r);
void s3_op_list_parts(struct s3req *r);

/* keys.c */
int gw_keys_init(struct mkv_gw *gw, char *err, size_t errlen);
/* Seals/unseals a secret with the cluster key (AES-256-GCM; the access key
 * is the associated data). */
int gw_seal(const struct mkv_gw *gw, const char *access_key, const char *secret,
            struct mkv_buf *out);
int gw_unseal(const struct mkv_gw *gw, const char *access_key, const uint8_t *sealed, size_t len,
              char *secret, size_t cap);
/* Per-worker cache of unsealed secrets (one minute). get returns 1 on a hit. */
int gw_key_cache_get(struct gw_worker *wk, const char *access_key, char *secret, size_t cap,
                     uint32_t *flags);
void gw_key_cache_put(struct gw_worker *wk, const char *access_key, const char *secret,
                      uint32_t flags);
/* At start-up: makes sure the keys from the environment exist, or that
 * there is at least one key (generating, printing and saving a pair). */
int gw_keys_bootstrap(struct mkv_gw *gw, char *err, size_t errlen);

/* metrics.c */
void gw_metrics_render(struct s3req *r);
void gw_admin_status_authed(struct s3req *r, enum mkv_s3_error e, const char *message);
void gw_health(struct s3req *r, int ready_check);

#endif /* MKV_S3GW_GW_H */
