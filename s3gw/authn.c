/* minikv gateway: authentication glue (see authn.h).
 *
 * Every S3 request must be signed: minikv has no anonymous access. The
 * secret of an access key comes from the worker's cache or, on a miss, from
 * the meta service as a sealed blob that only the cluster key opens. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authn.h"
#include "chunked.h"
#include "gw.h"
#include "minikv/err.h"
#include "minikv/log.h"

struct authn
{
    struct mkv_auth a;
    struct mkv_auth_opts o;
    authn_cb cb;
    int streaming;
    int have_dec;
    struct mkv_chunked dec;
    /* the sink of the body piece being decoded */
    authn_sink sink;
    void *sink_arg;
    int sink_err;
};

static void finish(struct s3req *r, enum mkv_s3_error e, const char *msg)
{
    struct authn *st = r->auth;
    if (e != MKV_S3_OK)
        MKV_DEBUG("s3gw", "request refused code=%s reason=\"%s\" access_key=%s rid=%s",
                  mkv_s3_error_code(e), msg ? msg : "", st->a.access_key, r->request_id);
    st->cb(r, e, msg);
}

static void verify(struct s3req *r, const char *secret, uint32_t flags)
{
    struct authn *st = r->auth;
    enum mkv_s3_error e;
    if (flags & MKV_KEYF_DISABLED) {
        finish(r, MKV_S3_ACCESS_DENIED, "This access key is disabled");
        return;
    }
    e = mkv_auth_verify(&st->a, r->http, &st->o, secret, strlen(secret));
    if (e != MKV_S3_OK) {
        finish(r, e, st->a.msg);
        return;
    }
    snprintf(r->access_key, sizeof r->access_key, "%s", st->a.access_key);
    if (st->a.payload == MKV_PAYLOAD_STREAMING_SIGNED ||
        st->a.payload == MKV_PAYLOAD_STREAMING_SIGNED_TRAILER ||
        st->a.payload == MKV_PAYLOAD_STREAMING_UNSIGNED_TRAILER) {
        e = mkv_chunked_init(&st->dec, r->http, &st->a);
        if (e != MKV_S3_OK) {
            finish(r, e, "invalid aws-chunked request");
            return;
        }
        st->have_dec = 1;
        st->streaming = 1;
    }
    finish(r, MKV_S3_OK, NULL);
}

static void on_key(struct s3req *r, int status, struct mkv_frame *reply)
{
    struct authn *st = r->auth;
    struct mkv_key_get_rep rep;
    char secret[MKV_SECRET_MAX];
    int rv;
    if (status == MKV_ENOKEY || status == -ENOENT) {
        finish(r, MKV_S3_INVALID_ACCESS_KEY, NULL);
        return;
    }
    if (status) {
        finish(r, s3_error_from_status(status), r->errmsg);
        return;
    }
    rv = mkv_frame_decode(reply, &mkv_desc_key_get_rep, &rep);
    if (rv == 0)
        rv = gw_unseal(r->wk->gw, st->a.access_key, rep.sealed_secret.p, rep.sealed_secret.len,
                       secret, sizeof secret);
    if (rv) {
        MKV_ERROR("s3gw", "cannot unseal the secret (wrong cluster key?) access_key=%s err=\"%s\"",
                  st->a.access_key, mkv_strerror(rv));
        finish(r, MKV_S3_INTERNAL, "The access key's secret cannot be read with this gateway's cluster key");
        return;
    }
    gw_key_cache_put(r->wk, st->a.access_key, secret, rep.flags);
    verify(r, secret, rep.flags);
    memset(secret, 0, sizeof secret);
}

void authn_start(struct s3req *r, authn_cb cb)
{
    struct authn *st = calloc(1, sizeof *st);
    struct mkv_key_get_req q;
    char secret[MKV_SECRET_MAX];
    uint32_t flags;
    enum mkv_s3_error e;
    if (!st) {
        cb(r, MKV_S3_INTERNAL, NULL);
        return;
    }
    r->auth = st;
    st->cb = cb;
    st->o.region = NULL; /* any region: the scope is part of what is signed */
    st->o.v2_bucket = r->vhost ? r->bucket : NULL;
    e = mkv_auth_parse(r->http, &st->o, &st->a);
    if (e != MKV_S3_OK) {
        finish(r, e, st->a.msg);
        return;
    }
    if (st->a.kind == MKV_AUTH_ANON) {
        finish(r, MKV_S3_ACCESS_DENIED, "Anonymous access is not allowed: sign the request");
        return;
    }
    if (gw_key_cache_get(r->wk, st->a.access_key, secret, sizeof secret, &flags)) {
        verify(r, secret, flags);
        memset(secret, 0, sizeof secret);
        return;
    }
    q.access_key = mkv_slice_str(st->a.access_key);
    if (s3_meta(r, 1, MKV_MSG_KEY_GET, &mkv_desc_key_get_req, &q, on_key))
        finish(r, MKV_S3_INTERNAL, NULL);
}

int authn_streaming(const struct s3req *r)
{
    const struct authn *st = r->auth;
    return st && st->streaming;
}

static int decoded_out(void *arg, const uint8_t *p, size_t n)
{
    struct authn *st = arg;
    int rv = st->sink(st->sink_arg, p, n);
    if (rv) st->sink_err = rv;
    return rv;
}

int authn_body(struct s3req *r, const uint8_t *data, size_t len, authn_sink sink, void *arg)
{
    struct authn *st = r->auth;
    enum mkv_s3_error e;
    if (!st || !st->streaming) return sink(arg, data, len);
    st->sink = sink;
    st->sink_arg = arg;
    st->sink_err = 0;
    e = mkv_chunked_feed(&st->dec, data, len, decoded_out, st);
    if (st->sink_err) return st->sink_err;
    return (int)e;
}

int authn_body_end(struct s3req *r)
{
    struct authn *st = r->auth;
    if (!st || !st->streaming) return 0;
    return (int)mkv_chunked_finish(&st->dec);
}

int authn_trailer_checksum(struct s3req *r, enum mkv_cksum_alg alg, uint8_t out[MKV_CKSUM_MAX],
                           size_t *len)
{
    struct authn *st = r->auth;
    const char *v;
    if (!st || !st->streaming) return 0;
    v = mkv_chunked_trailer_value(&st->dec, alg);
    if (!v) return 0;
    return mkv_base64_decode(v, strlen(v), out, MKV_CKSUM_MAX, len) == 0;
}

const char *authn_message(struct s3req *r)
{
    struct authn *st = r->auth;
    return st ? st->a.msg : "";
}

void authn_free(struct s3req *r)
{
    struct authn *st = r->auth;
    if (!st) return;
    if (st->have_dec) mkv_chunked_free(&st->dec);
    memset(st, 0, sizeof *st);
    free(st);
    r->auth = NULL;
}
