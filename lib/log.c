/* minikv: leveled, structured logging (see lib/minikv/log.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "minikv/log.h"

int mkv_log_threshold = MKV_LOG_INFO;
static int log_fd = 2;
static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int mkv_log_set_level(const char *name)
{
    for (int i = 0; i < (int)MKV_ARRAY_SIZE(level_names); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            mkv_log_threshold = i;
            return 0;
        }
    }
    return -EINVAL;
}

void mkv_log_init(void)
{
    const char *lvl = getenv("MINIKV_LOG_LEVEL");
    const char *trace = getenv("MINIKV_TRACE");
    if (lvl && *lvl) mkv_log_set_level(lvl);
    if (trace && *trace && strcmp(trace, "0") != 0) mkv_log_threshold = MKV_LOG_TRACE;
}

int mkv_log_set_file(const char *path)
{
    int fd;
    if (!path) {
        if (log_fd != 2) close(log_fd);
        log_fd = 2;
        return 0;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return -errno;
    if (log_fd != 2) close(log_fd);
    log_fd = fd;
    return 0;
}

void mkv_log(int level, const char *comp, const char *fmt, ...)
{
    char line[2048], msg[1536];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    const char *fields;
    int n, mlen;
    ssize_t w MKV_UNUSED;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Split "message key=v key=v" into msg and fields at the first " k=". */
    fields = NULL;
    for (char *p = msg; (p = strchr(p, ' ')) != NULL; p++) {
        char *eq = strchr(p + 1, '=');
        char *sp = strchr(p + 1, ' ');
        if (eq && (!sp || eq < sp) && eq > p + 1) {
            *p = '\0';
            fields = p + 1;
            break;
        }
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    if (level < 0) level = 0;
    if (level >= (int)MKV_ARRAY_SIZE(level_names)) level = (int)MKV_ARRAY_SIZE(level_names) - 1;
    mlen = (int)strlen(msg);
    n = snprintf(line, sizeof line,
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s msg=\"%.*s\"%s%s\n",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level], comp, mlen, msg,
                 fields ? " " : "", fields ? fields : "");
    if (n < 0) return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    w = write(log_fd, line, (size_t)n); /* one write: lines do not interleave */
}
