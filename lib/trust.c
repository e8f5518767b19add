/* minikv: the state file that says whether a MDB_NOSYNC cache survived. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minikv/trust.h"

void mkv_boot_id(char *buf, size_t len)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    buf[0] = '\0';
    if (!f) return;
    if (fgets(buf, (int)len, f)) buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

void mkv_trust_read(const char *path, struct mkv_trust *st)
{
    char line[128];
    FILE *f = fopen(path, "r");
    memset(st, 0, sizeof *st);
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "boot=", 5) == 0) {
            snprintf(st->boot, sizeof st->boot, "%.63s", line + 5);
            st->ok |= 1;
        } else if (strncmp(line, "clean=", 6) == 0) {
            st->clean = atoi(line + 6);
            st->ok |= 2;
        } else if (strncmp(line, "txn=", 4) == 0) {
            st->txn = strtoull(line + 4, NULL, 10);
            st->ok |= 4;
        }
    }
    fclose(f);
    st->ok = st->ok == 7;
}

int mkv_file_replace(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[4096], dir[4096];
    const char *p = data, *slash = strrchr(path, '/');
    int fd, rv = 0;
    size_t left;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) return -ENAMETOOLONG;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (slash == path) snprintf(dir, sizeof dir, "/");
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) return -errno;
    for (left = len; left && rv == 0;) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rv = w < 0 ? -errno : -EIO;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rv == 0 && fsync(fd) != 0) rv = -errno;
    close(fd);
    if (rv == 0 && rename(tmp, path) != 0) rv = -errno;
    if (rv == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) return -errno;
        if (fsync(dfd) != 0) rv = -errno;
        close(dfd);
        return rv;
    }
    unlink(tmp);
    return rv;
}

int mkv_trust_write(const char *path, const char *boot, int clean, uint64_t txn)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "boot=%s\nclean=%d\ntxn=%" PRIu64 "\n", boot, clean, txn);
    return mkv_file_replace(path, buf, (size_t)n, 0640);
}

int mkv_trust_ok(const struct mkv_trust *st, const char *boot, uint64_t last_txn)
{
    if (!st->ok) return 0;
    return (boot[0] && strcmp(st->boot, boot) == 0) || st->clean || last_txn == st->txn;
}
