/* minikv chunk store, private: buffer pool and per-block transforms
 * (compression with LZ4 or zstd, AES-256-GCM at rest).
 *
 * Everything here is thread-safe: the flush and read paths call it from
 * worker threads. */
#ifndef MKV_CHUNK_XFORM_H
#define MKV_CHUNK_XFORM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "wal.h"

/* Fixed-size buffers of XF_BUF_SIZE bytes (one whole record fits), reused
 * so that the hot path does not call malloc per block. */
#define XF_BUF_SIZE (WAL_MAX_REC + 64)

struct xf_pool
{
    pthread_mutex_t mu;
    void **free;
    size_t nfree;
    size_t cap;   /* most buffers kept for reuse */
    uint64_t allocated;
};

int xf_pool_init(struct xf_pool *p, size_t cap);
/* A buffer of XF_BUF_SIZE bytes, or NULL when out of memory. */
void *xf_pool_get(struct xf_pool *p);
void xf_pool_put(struct xf_pool *p, void *buf);
void xf_pool_free(struct xf_pool *p);

struct xf_ctxs
{
    pthread_mutex_t mu;
    void *items[32];
    int n;
};

struct xf
{
    int comp;  /* enum mkv_compression */
    int level;
    int enc;
    uint8_t key[32];
    uint8_t nonce_base[12];
    uint64_t nonce_ctr;
    void *cipher; /* EVP_CIPHER * */
    struct xf_ctxs zc, zd, ec, dc;
};

int xf_init(struct xf *x, int comp, int level, const uint8_t *key, char *err, size_t errlen);
void xf_free(struct xf *x);
static inline int xf_active(const struct xf *x)
{
    return x->comp != 0 || x->enc;
}

/* Encodes one block. h must have type, lsn, chunk, version, arg and
 * data_len set; xf_encode sets flags, stored_len, data_crc and payload_crc.
 * *payload is plain itself when the block is stored as is, else out (which
 * must hold XF_BUF_SIZE bytes). Returns 0 or a negative code. */
int xf_encode(struct xf *x, struct wal_hdr *h, const uint8_t *plain, uint8_t *out,
              const uint8_t **payload);

/* Decodes a stored block: raw_hdr is the 64-byte header as stored (its
 * bytes 4..39 are the GCM associated data), payload its stored bytes (it
 * may be modified in place). The plaintext (h->data_len bytes) goes to out.
 * Returns 0, MKV_ECHECKSUM (tag, decompression or plaintext CRC failure) or
 * -ENOKEY when the block is encrypted and the store has no key. */
int xf_decode(struct xf *x, const struct wal_hdr *h, const uint8_t *raw_hdr, uint8_t *payload,
              uint8_t *out);

#endif /* MKV_CHUNK_XFORM_H */
