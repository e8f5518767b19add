/* minikv gateway: what sigv4.c and sigv2.c share (not a public API). */
#ifndef MKV_S3GW_AUTH_PRIV_H
#define MKV_S3GW_AUTH_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"

/* One raw (still percent-encoded) query parameter. */
struct auth_param
{
    const char *name;
    size_t nlen;
    const char *value; /* "" when there is no '=' */
    size_t vlen;
    int has_eq;
};

/* Iterates the parameters of a raw query string: returns 1 and fills p,
 * or 0 at the end. Empty pieces ("a&&b") are skipped. */
int auth_query_next(const char **cur, struct auth_param *p);
/* Finds the first parameter whose raw name is exactly name. */
int auth_query_find(const char *query, const char *name, struct auth_param *p);
/* Percent-decodes a parameter value into out (NUL-terminated, no NUL
 * inside); '+' stays '+'. Returns 0, -EINVAL or -ENOSPC. */
int auth_param_value(const struct auth_param *p, char *out, size_t cap);
/* printf into a->msg. */
void auth_msg(struct mkv_auth *a, const char *fmt, ...) MKV_PRINTF(2, 3);
/* Trims and collapses runs of blanks of a header value into out;
 * returns 0 or -ENOMEM. */
int auth_put_trimmed(struct mkv_buf *out, const char *v);

enum mkv_s3_error sigv2_parse(const struct mkv_http_req *r, const struct mkv_auth_opts *o,
                              struct mkv_auth *a, int64_t now, int query);
enum mkv_s3_error sigv2_verify(struct mkv_auth *a, const struct mkv_http_req *r,
                               const struct mkv_auth_opts *o, const char *secret,
                               size_t secret_len);

#endif /* MKV_S3GW_AUTH_PRIV_H */
