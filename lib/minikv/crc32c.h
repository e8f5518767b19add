/* minikv: CRC32C (Castagnoli), hardware accelerated where the CPU has SSE4.2.
 *
 * mkv_crc32c(0, buf, len) gives the standard CRC32C of buf; pass a previous
 * result as crc to continue over more bytes. */
#ifndef MKV_CRC32C_H
#define MKV_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

MKV_API uint32_t mkv_crc32c(uint32_t crc, const void *buf, size_t len);
/* The standard (zlib/IEEE) CRC32, for S3's x-amz-checksum-crc32. */
MKV_API uint32_t mkv_crc32(uint32_t crc, const void *buf, size_t len);
/* 1 when the hardware instruction is used. */
MKV_API int mkv_crc32c_hw(void);

#endif /* MKV_CRC32C_H */
