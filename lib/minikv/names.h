/* minikv: rules for bucket names and keys, shared by every front and by
 * the metadata service so that all of them refuse the same names.
 *
 * Buckets follow S3's naming rules. A key is a path inside its bucket: it
 * must be valid UTF-8 without NUL, at most MKV_KEY_MAX bytes, with no
 * leading '/', no empty component ("a//b"), no "." or ".." component, and
 * components of at most MKV_NAME_MAX bytes. A single trailing '/' names a
 * directory ("photos/2024/"). */
#ifndef MKV_NAMES_H
#define MKV_NAMES_H

#include <stddef.h>

#include "common.h"

/* 0, or MKV_EBADNAME. */
MKV_API int mkv_check_bucket(const char *name, size_t len);
/* 0, MKV_EBADNAME, or -ENAMETOOLONG (key or component too long). */
MKV_API int mkv_check_key(const char *key, size_t len);
/* 1 when buf[len] is well-formed UTF-8 (no overlongs, no surrogates). */
MKV_API int mkv_utf8_valid(const char *buf, size_t len);

#endif /* MKV_NAMES_H */
