/* minikv chunk store: buffer pool, compression and encryption (xform.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zstd.h>

#include "minikv/crc32c.h"
#include "minikv/err.h"
#include "minikv/log.h"

#include "store.h"
#include "xform.h"

/* ------------------------------------------------------------------------
 * Buffer pool
 * ------------------------------------------------------------------------ */
int xf_pool_init(struct xf_pool *p, size_t cap)
{
    memset(p, 0, sizeof *p);
    p->free = calloc(cap ? cap : 1, sizeof *p->free);
    if (!p->free) return -ENOMEM;
    p->cap = cap;
    pthread_mutex_init(&p->mu, NULL);
    return 0;
}

void *xf_pool_get(struct xf_pool *p)
{
    void *b = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->nfree) b = p->free[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    if (!b) {
        b = malloc(XF_BUF_SIZE);
        if (b) __atomic_fetch_add(&p->allocated, 1, __ATOMIC_RELAXED);
    }
    return b;
}

void xf_pool_put(struct xf_pool *p, void *b)
{
    if (!b) return;
    pthread_mutex_lock(&p->mu);
    if (p->nfree < p->cap) {
        p->free[p->nfree++] = b;
        b = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    free(b);
}

void xf_pool_free(struct xf_pool *p)
{
    if (!p->free) return;
    for (size_t i = 0; i < p->nfree; i++) free(p->free[i]);
    free(p->free);
    p->free = NULL;
    pthread_mutex_destroy(&p->mu);
}

/* ------------------------------------------------------------------------
 * Context pools (zstd and EVP contexts are not thread-safe; keep a few)
 * ------------------------------------------------------------------------ */
enum { CTX_ZC, CTX_ZD, CTX_EC, CTX_DC };

static void *ctx_new(struct xf *x, int kind)
{
    EVP_CIPHER_CTX *c;
    switch (kind) {
    case CTX_ZC: return ZSTD_createCCtx();
    case CTX_ZD: return ZSTD_createDCtx();
    case CTX_EC:
    case CTX_DC:
        c = EVP_CIPHER_CTX_new();
        if (!c) return NULL;
        if ((kind == CTX_EC ? EVP_EncryptInit_ex(c, x->cipher, NULL, x->key, NULL)
                            : EVP_DecryptInit_ex(c, x->cipher, NULL, x->key, NULL)) != 1) {
            EVP_CIPHER_CTX_free(c);
            return NULL;
        }
        return c;
    }
    return NULL;
}

static void ctx_del(int kind, void *c)
{
    if (!c) return;
    if (kind == CTX_ZC) ZSTD_freeCCtx(c);
    else if (kind == CTX_ZD) ZSTD_freeDCtx(c);
    else EVP_CIPHER_CTX_free(c);
}

static struct xf_ctxs *ctxs_of(struct xf *x, int kind)
{
    return kind == CTX_ZC ? &x->zc : kind == CTX_ZD ? &x->zd : kind == CTX_EC ? &x->ec : &x->dc;
}

static void *ctx_get(struct xf *x, int kind)
{
    struct xf_ctxs *cs = ctxs_of(x, kind);
    void *c = NULL;
    pthread_mutex_lock(&cs->mu);
    if (cs->n) c = cs->items[--cs->n];
    pthread_mutex_unlock(&cs->mu);
    return c ? c : ctx_new(x, kind);
}

static void ctx_put(struct xf *x, int kind, void *c)
{
    struct xf_ctxs *cs = ctxs_of(x, kind);
    pthread_mutex_lock(&cs->mu);
    if (cs->n < (int)MKV_ARRAY_SIZE(cs->items)) {
        cs->items[cs->n++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&cs->mu);
    ctx_del(kind, c);
}

int xf_init(struct xf *x, int comp, int level, const uint8_t *key, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    if (comp != MKV_COMP_NONE && comp != MKV_COMP_LZ4 && comp != MKV_COMP_ZSTD)
        return mkv_errf(err, errlen, -EINVAL, "unknown compression %d", comp);
    x->comp = comp;
    x->level = level;
    pthread_mutex_init(&x->zc.mu, NULL);
    pthread_mutex_init(&x->zd.mu, NULL);
    pthread_mutex_init(&x->ec.mu, NULL);
    pthread_mutex_init(&x->dc.mu, NULL);
    if (key) {
        x->enc = 1;
        memcpy(x->key, key, 32);
        x->cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
        if (!x->cipher || RAND_bytes(x->nonce_base, sizeof x->nonce_base) != 1) {
            xf_free(x);
            return mkv_errf(err, errlen, -EIO, "OpenSSL AES-256-GCM unavailable");
        }
    }
    return 0;
}

void xf_free(struct xf *x)
{
    struct xf_ctxs *all[4] = {&x->zc, &x->zd, &x->ec, &x->dc};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < all[k]->n; i++) ctx_del(k, all[k]->items[i]);
        all[k]->n = 0;
        pthread_mutex_destroy(&all[k]->mu);
    }
    if (x->cipher) EVP_CIPHER_free(x->cipher);
    x->cipher = NULL;
    OPENSSL_cleanse(x->key, sizeof x->key);
}

/* ------------------------------------------------------------------------
 * Encode / decode
 * ------------------------------------------------------------------------ */
static int compress_block(struct xf *x, const uint8_t *in, uint32_t len, uint8_t *out,
                          uint32_t cap, uint32_t *olen)
{
    if (x->comp == MKV_COMP_LZ4) {
        int n = LZ4_compress_default((const char *)in, (char *)out, (int)len, (int)cap);
        if (n <= 0) return 0;
        *olen = (uint32_t)n;
        return 1;
    }
    if (x->comp == MKV_COMP_ZSTD) {
        void *c = ctx_get(x, CTX_ZC);
        size_t n;
        if (!c) return -ENOMEM;
        n = ZSTD_compressCCtx(c, out, cap, in, len, x->level);
        ctx_put(x, CTX_ZC, c);
        if (ZSTD_isError(n)) return 0;
        *olen = (uint32_t)n;
        return 1;
    }
    return 0;
}

static int gcm(struct xf *x, int encrypt, const uint8_t *nonce, const uint8_t *aad,
               uint8_t *buf, uint32_t len, uint8_t *tag)
{
    int kind = encrypt ? CTX_EC : CTX_DC;
    EVP_CIPHER_CTX *c = ctx_get(x, kind);
    int ok, outl = 0, fl = 0;
    if (!c) return -ENOMEM;
    if (encrypt) {
        ok = EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) == 1 &&
             EVP_EncryptUpdate(c, NULL, &outl, aad, WAL_AAD_LEN) == 1 &&
             EVP_EncryptUpdate(c, buf, &outl, buf, (int)len) == 1 &&
             EVP_EncryptFinal_ex(c, buf + outl, &fl) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    } else {
        ok = EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce) == 1 &&
             EVP_DecryptUpdate(c, NULL, &outl, aad, WAL_AAD_LEN) == 1 &&
             EVP_DecryptUpdate(c, buf, &outl, buf, (int)len) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
             EVP_DecryptFinal_ex(c, buf + outl, &fl) == 1;
    }
    ctx_put(x, kind, c);
    if (ok) return 0;
    return encrypt ? -EIO : MKV_ECHECKSUM;
}

int xf_encode(struct xf *x, struct wal_hdr *h, const uint8_t *plain, uint8_t *out,
              const uint8_t **payload)
{
    uint32_t len = h->data_len, slen = len, off = x->enc ? 12 : 0;
    const uint8_t *src = plain;
    uint8_t hdr[WAL_HDR];
    int rv;

    h->data_crc = mkv_crc32c(0, plain, len);
    h->flags = 0;
    if (!xf_active(x)) {
        h->stored_len = len;
        h->payload_crc = h->data_crc;
        *payload = plain;
        return 0;
    }
    if (x->comp && len > 64) {
        uint32_t clen = 0;
        /* Keep the compressed form only when it saves at least 1/32. */
        rv = compress_block(x, plain, len, out + off, len - len / 32, &clen);
        if (rv < 0) return rv;
        if (rv == 1 && clen < len) {
            h->flags |= x->comp == MKV_COMP_LZ4 ? WAL_F_LZ4 : WAL_F_ZSTD;
            src = out + off;
            slen = clen;
        }
    }
    if (x->enc) {
        uint64_t ctr = __atomic_add_fetch(&x->nonce_ctr, 1, __ATOMIC_RELAXED);
        memcpy(out, x->nonce_base, 12);
        for (int i = 0; i < 8; i++) out[4 + i] ^= (uint8_t)(ctr >> (8 * i));
        if (src != out + off) memcpy(out + off, src, slen);
        h->flags |= WAL_F_ENC;
        h->stored_len = slen + WAL_ENC_OVERHEAD;
        h->payload_crc = 0;
        wal_hdr_encode(h, hdr); /* for the associated data only */
        rv = gcm(x, 1, out, hdr + WAL_AAD_OFF, out + 12, slen, out + 12 + slen);
        if (rv) return rv;
        *payload = out;
    } else {
        h->stored_len = slen;
        *payload = src;
    }
    h->payload_crc = mkv_crc32c(0, *payload, h->stored_len);
    return 0;
}

int xf_decode(struct xf *x, const struct wal_hdr *h, const uint8_t *raw_hdr, uint8_t *payload,
              uint8_t *out)
{
    uint8_t *src = payload;
    uint32_t slen = h->stored_len;
    int rv;

    if (h->flags & WAL_F_ENC) {
        if (!x->enc) return -ENOKEY;
        slen -= WAL_ENC_OVERHEAD;
        rv = gcm(x, 0, payload, raw_hdr + WAL_AAD_OFF, payload + 12, slen, payload + 12 + slen);
        if (rv) return rv;
        src = payload + 12;
    }
    if (h->flags & WAL_F_LZ4) {
        int n = LZ4_decompress_safe((const char *)src, (char *)out, (int)slen, (int)h->data_len);
        if (n < 0 || (uint32_t)n != h->data_len) return MKV_ECHECKSUM;
    } else if (h->flags & WAL_F_ZSTD) {
        void *c = ctx_get(x, CTX_ZD);
        size_t n;
        if (!c) return -ENOMEM;
        n = ZSTD_decompressDCtx(c, out, h->data_len, src, slen);
        ctx_put(x, CTX_ZD, c);
        if (ZSTD_isError(n) || n != h->data_len) return MKV_ECHECKSUM;
    } else {
        if (slen != h->data_len) return MKV_ECHECKSUM;
        memmove(out, src, slen);
    }
    if (mkv_crc32c(0, out, h->data_len) != h->data_crc) return MKV_ECHECKSUM;
    return 0;
}
