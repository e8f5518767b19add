/* minikv: error codes.
 *
 * Functions return 0 or a negative code (libuv's convention). Codes in the
 * errno range mean what errno says; codes at or below MKV_ERR_BASE are
 * minikv's own, for conditions errno has no word for. The numeric values
 * travel on the wire (the status field of a reply frame) and must never be
 * renumbered. */
#ifndef MKV_ERR_H
#define MKV_ERR_H

#include <stddef.h>

#include "common.h"

enum {
    MKV_ERR_BASE = -1000,
    MKV_ENOBUCKET = -1001,       /* bucket does not exist */
    MKV_EBUCKETNOTEMPTY = -1002, /* bucket still holds keys or uploads */
    MKV_ENOUPLOAD = -1003,       /* multipart upload id unknown */
    MKV_EINVALIDPART = -1004,    /* part missing or ETag mismatch */
    MKV_EPARTORDER = -1005,      /* parts not in ascending order */
    MKV_EPRECONDITION = -1006,   /* If-Match / If-None-Match failed */
    MKV_ENOTLEADER = -1007,      /* ask the leader (reply carries its address) */
    MKV_ECHECKSUM = -1008,       /* stored data failed its checksum */
    MKV_ETOOSMALL = -1009,       /* multipart part below the minimum size */
    MKV_EKEYCONFLICT = -1010,    /* key would make a file and a directory share a name */
    MKV_EBADNAME = -1011,        /* invalid bucket name or key */
    MKV_ENOKEY = -1012,          /* access key unknown */
    MKV_ESTALE = -1013,          /* chunk version superseded: refetch metadata */
    MKV_EBUCKETEXISTS = -1014,   /* bucket already exists */
    MKV_ENOTFOUND = -1015,       /* key does not exist */
    MKV_EUNAVAILABLE = -1016,    /* service not ready (no leader, shutting down) */
    MKV_ERR_LAST = -1017,
};

/* A static, human-readable text for any code this file or errno defines. */
MKV_API const char *mkv_strerror(int code);

/* Fills buf with "<context>: <text of code>"; returns code. */
MKV_API int mkv_errf(char *buf, size_t len, int code, const char *fmt, ...)
    MKV_PRINTF(4, 5);

#endif /* MKV_ERR_H */
