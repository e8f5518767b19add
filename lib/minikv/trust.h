/* minikv: may an LMDB cache opened with MDB_NOSYNC be trusted after a crash?
 *
 * The chunk index and the metadata state machine keep LMDB environments
 * that are caches of a log (the chunk WAL, the Raft log) and commit them
 * without fsync. After kill -9 the page cache still holds every committed
 * transaction, so the environment is exact; after a power loss or an OS
 * crash it may have lost writes or even be torn. A small state file next
 * to the environment tells the two apart:
 *
 *   boot=<boot id of the kernel that wrote it>
 *   clean=<1 after a clean close>
 *   txn=<last LMDB transaction known to be on disk (fsynced)>
 *
 * written atomically (temporary file, fsync, rename, fsync of the
 * directory). The environment is trusted when the file says the same boot
 * (only the process died), a clean close, or that it was synced through
 * the environment's last transaction; otherwise its owner rebuilds it from
 * the log. */
#ifndef MKV_TRUST_H
#define MKV_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct mkv_trust
{
    char boot[64];
    int clean;
    uint64_t txn;
    int ok; /* the file exists and holds every field */
};

/* The running kernel's boot id ("" when unknown). */
MKV_API void mkv_boot_id(char *buf, size_t len);
/* Reads path into st (st->ok is 0 when missing or incomplete). */
MKV_API void mkv_trust_read(const char *path, struct mkv_trust *st);
/* Writes path atomically and durably. 0 or -errno. */
MKV_API int mkv_trust_write(const char *path, const char *boot, int clean, uint64_t txn);
/* Replaces path with data durably: a temporary file (PATH.tmp, created
 * with mode), fsynced, renamed over path, then its directory fsynced.
 * 0 or -errno. */
MKV_API int mkv_file_replace(const char *path, const void *data, size_t len, unsigned mode);
/* 1 when an environment whose last transaction is last_txn may be trusted
 * under st, on the kernel whose boot id is boot. */
MKV_API int mkv_trust_ok(const struct mkv_trust *st, const char *boot, uint64_t last_txn);

#endif /* MKV_TRUST_H */
