/* minikv chunk server: store options from their command-line text, shared
 * by minikv-chunk and the embedded minikv server. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chunk.h"

int mkv_chunk_parse_store_opts(const char *io, const char *compression, long long level,
                               const char *key_file, uint8_t key[32], struct mkv_store_opts *so,
                               char *err, size_t errlen)
{
    if (!strcmp(io, "auto")) so->io_backend = MKV_IO_AUTO;
    else if (!strcmp(io, "uring") || !strcmp(io, "io_uring")) so->io_backend = MKV_IO_URING;
    else if (!strcmp(io, "sync")) so->io_backend = MKV_IO_SYNC;
    else {
        snprintf(err, errlen, "--io must be auto, uring or sync (not '%s')", io);
        return -EINVAL;
    }
    if (!strcmp(compression, "none")) so->compression = MKV_COMP_NONE;
    else if (!strcmp(compression, "lz4")) so->compression = MKV_COMP_LZ4;
    else if (!strcmp(compression, "zstd")) so->compression = MKV_COMP_ZSTD;
    else {
        snprintf(err, errlen, "--compression must be none, lz4 or zstd (not '%s')", compression);
        return -EINVAL;
    }
    so->compression_level = (int)level;
    if (key_file) {
        char hex[80];
        int fd = open(key_file, O_RDONLY | O_CLOEXEC);
        ssize_t n;
        if (fd < 0) {
            snprintf(err, errlen, "--encryption-key-file %s: %s", key_file, strerror(errno));
            return -errno;
        }
        n = read(fd, hex, sizeof hex - 1);
        close(fd);
        while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == ' ' || hex[n - 1] == '\r')) n--;
        if (n != 64) {
            snprintf(err, errlen, "--encryption-key-file %s must hold 64 hex digits", key_file);
            return -EINVAL;
        }
        for (int i = 0; i < 32; i++) {
            unsigned v;
            if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
                snprintf(err, errlen, "--encryption-key-file %s must hold 64 hex digits", key_file);
                return -EINVAL;
            }
            key[i] = (uint8_t)v;
        }
        so->enc_key = key;
    }
    return 0;
}

