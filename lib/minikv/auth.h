/* minikv: authentication on the cluster's own protocol (metadata and chunk
 * services), with the same access keys as S3.
 *
 * Metadata service, per connection (challenge-response; the secret never
 * travels):
 *   client  AUTH_HELLO                          server  nonce_s (32 random bytes)
 *   client  AUTH {access_key, nonce_c, mac}     server  ok, or -EACCES
 *   mac = HMAC-SHA256(secret, "minikv-auth-v1\n" nonce_s nonce_c access_key)
 * The server unseals the key's secret (sealed with the cluster key, as the
 * S3 gateway stores it). The principal "@cluster" (gateways, chunk servers,
 * tools on a server host) uses the cluster key itself as its secret.
 *
 * Chunk service: chunk servers hold the cluster key but not the key store,
 * so a client shows a token the metadata service gave it (TOKEN_GET):
 *   AUTH_TOKEN {access_key, expiry_ns, token}
 *   token = HMAC-SHA256(cluster_key, "minikv-chunk-token-v1\n" access_key "\n" expiry_ns)
 * valid until expiry_ns (wall clock). "@cluster" mints its own.
 *
 * A service given no cluster key accepts everyone (a private network). */
#ifndef MKV_AUTH_H
#define MKV_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "common.h"

#define MKV_CLUSTER_PRINCIPAL "@cluster"
#define MKV_AUTH_NONCE 32
#define MKV_AUTH_MAC 32
#define MKV_ACCESS_KEY_MAX 128
#define MKV_TOKEN_TTL_NS (12ull * 3600 * 1000000000ull)

/* What a client presents. */
struct mkv_cred
{
    char access_key[MKV_ACCESS_KEY_MAX + 1];
    uint8_t secret[256];
    size_t secret_len;
    int cluster; /* the cluster principal: secret is the cluster key */
};

/* The cluster key file: 64 hex digits. read: -ENOENT when missing. */
MKV_API int mkv_cluster_key_read(const char *path, uint8_t key[32], char *err, size_t errlen);
/* Reads it, or creates it (0600, fsync'ed) when missing. */
MKV_API int mkv_cluster_key_load(const char *path, uint8_t key[32], char *err, size_t errlen);

MKV_API void mkv_cred_cluster(struct mkv_cred *a, const uint8_t key[32]);
MKV_API int mkv_cred_key(struct mkv_cred *a, const char *access_key, const char *secret);
/* From an AWS shared-credentials file (the first aws_access_key_id and
 * aws_secret_access_key, or those of [profile] when profile is given). */
MKV_API int mkv_cred_from_file(struct mkv_cred *a, const char *path, const char *profile, char *err,
                               size_t errlen);
/* From MINIKV_ACCESS_KEY / MINIKV_SECRET_KEY: 1 if set, 0 if not. */
MKV_API int mkv_cred_from_env(struct mkv_cred *a);

MKV_API void mkv_auth_mac(const uint8_t *secret, size_t secret_len,
                          const uint8_t nonce_s[MKV_AUTH_NONCE],
                          const uint8_t nonce_c[MKV_AUTH_NONCE], const char *access_key,
                          uint8_t out[MKV_AUTH_MAC]);
MKV_API void mkv_auth_token(const uint8_t cluster_key[32], const char *access_key,
                            uint64_t expiry_ns, uint8_t out[MKV_AUTH_MAC]);
/* Constant-time comparison of two MACs: 1 when equal. */
MKV_API int mkv_auth_mac_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Access-key secrets sealed with the cluster key (AES-256-GCM, the access
 * key as AAD): "MKS1" | nonce (12) | ciphertext | tag (16). */
MKV_API int mkv_secret_seal(const uint8_t cluster_key[32], const char *access_key,
                            const char *secret, struct mkv_buf *out);
/* secret gets the NUL-terminated secret; MKV_ECHECKSUM when it does not
 * open (another key, or tampered with). */
MKV_API int mkv_secret_unseal(const uint8_t cluster_key[32], const char *access_key,
                              const uint8_t *sealed, size_t len, char *secret, size_t cap);

#endif /* MKV_AUTH_H */
