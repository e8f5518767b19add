/* minikv: leveled, structured logging.
 *
 * Lines are "ts=... level=... comp=... msg=\"...\" key=value ...", one per
 * event, written atomically to stderr (or a file). MINIKV_LOG_LEVEL sets the
 * threshold (error, warn, info, debug, trace); MINIKV_TRACE=1 is a shortcut
 * for trace. */
#ifndef MKV_LOG_H
#define MKV_LOG_H

#include "common.h"

enum mkv_log_level {
    MKV_LOG_ERROR = 0,
    MKV_LOG_WARN = 1,
    MKV_LOG_INFO = 2,
    MKV_LOG_DEBUG = 3,
    MKV_LOG_TRACE = 4,
};

MKV_API extern int mkv_log_threshold;

/* Reads MINIKV_LOG_LEVEL / MINIKV_TRACE. Safe to call more than once. */
MKV_API void mkv_log_init(void);
/* Sets the threshold from a name; returns 0 or -EINVAL. */
MKV_API int mkv_log_set_level(const char *name);
/* Sends further lines to path (appending); NULL restores stderr. */
MKV_API int mkv_log_set_file(const char *path);

/* comp names the component ("chunk", "meta", "s3gw", ...). fmt is the
 * message; append key=value pairs to it with a space, for example
 *   MKV_LOG(MKV_LOG_WARN, "chunk", "crc mismatch chunk=%llx block=%u", ...);
 * Everything after the first " key=" is emitted as fields, not as msg. */
MKV_API void mkv_log(int level, const char *comp, const char *fmt, ...)
    MKV_PRINTF(3, 4);

#define MKV_LOG(level, comp, ...)                      \
    do {                                               \
        if ((int)(level) <= mkv_log_threshold)         \
            mkv_log((level), (comp), __VA_ARGS__);     \
    } while (0)
#define MKV_ERROR(comp, ...) MKV_LOG(MKV_LOG_ERROR, comp, __VA_ARGS__)
#define MKV_WARN(comp, ...) MKV_LOG(MKV_LOG_WARN, comp, __VA_ARGS__)
#define MKV_INFO(comp, ...) MKV_LOG(MKV_LOG_INFO, comp, __VA_ARGS__)
#define MKV_DEBUG(comp, ...) MKV_LOG(MKV_LOG_DEBUG, comp, __VA_ARGS__)
#define MKV_TRACE(comp, ...) MKV_LOG(MKV_LOG_TRACE, comp, __VA_ARGS__)

#endif /* MKV_LOG_H */
