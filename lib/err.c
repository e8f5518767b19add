/* minikv: error texts. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "minikv/err.h"

static const char *const mkv_texts[] = {
    [-(MKV_ENOBUCKET - MKV_ERR_BASE)] = "no such bucket",
    [-(MKV_EBUCKETNOTEMPTY - MKV_ERR_BASE)] = "bucket is not empty",
    [-(MKV_ENOUPLOAD - MKV_ERR_BASE)] = "no such multipart upload",
    [-(MKV_EINVALIDPART - MKV_ERR_BASE)] = "invalid part (missing, or ETag mismatch)",
    [-(MKV_EPARTORDER - MKV_ERR_BASE)] = "parts are not in ascending order",
    [-(MKV_EPRECONDITION - MKV_ERR_BASE)] = "precondition failed",
    [-(MKV_ENOTLEADER - MKV_ERR_BASE)] = "not the metadata leader",
    [-(MKV_ECHECKSUM - MKV_ERR_BASE)] = "stored data failed its checksum",
    [-(MKV_ETOOSMALL - MKV_ERR_BASE)] = "part smaller than the minimum part size",
    [-(MKV_EKEYCONFLICT - MKV_ERR_BASE)] = "key would make a file and a directory share a name",
    [-(MKV_EBADNAME - MKV_ERR_BASE)] = "invalid bucket name or key",
    [-(MKV_ENOKEY - MKV_ERR_BASE)] = "unknown access key",
    [-(MKV_ESTALE - MKV_ERR_BASE)] = "chunk version superseded",
    [-(MKV_EBUCKETEXISTS - MKV_ERR_BASE)] = "bucket already exists",
    [-(MKV_ENOTFOUND - MKV_ERR_BASE)] = "no such key",
    [-(MKV_EUNAVAILABLE - MKV_ERR_BASE)] = "service unavailable",
};

const char *mkv_strerror(int code)
{
    if (code == 0) return "success";
    if (code <= MKV_ERR_BASE && code > MKV_ERR_LAST) {
        const char *t = mkv_texts[-(code - MKV_ERR_BASE)];
        return t ? t : "unknown minikv error";
    }
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown error";
}

int mkv_errf(char *buf, size_t len, int code, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (!buf || len == 0) return code;
    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, ": %s", mkv_strerror(code));
    return code;
}
