/* minikv: authentication primitives (see minikv/auth.h). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "minikv/auth.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define SEAL_MAGIC "MKS1"
#define NONCE_LEN 12
#define TAG_LEN 16

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int mkv_cluster_key_read(const char *path, uint8_t key[32], char *err, size_t errlen)
{
    char buf[130];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    struct stat st;
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : mkv_errf(err, errlen, -errno, "reading %s", path);
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        MKV_WARN("auth", "cluster key file is readable by others path=%s mode=%o", path,
                 (unsigned)(st.st_mode & 0777));
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) return mkv_errf(err, errlen, -errno, "reading %s", path);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
    if (n == 64) {
        int ok = 1;
        for (int i = 0; i < 32; i++) {
            int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
            if (hi < 0 || lo < 0) ok = 0;
            else key[i] = (uint8_t)(hi << 4 | lo);
        }
        if (ok) return 0;
    }
    return mkv_errf(err, errlen, -EINVAL, "%s must hold 64 hex digits (a 256-bit key)", path);
}

int mkv_cluster_key_load(const char *path, uint8_t key[32], char *err, size_t errlen)
{
    char hex[66], tmp[4096];
    int fd, rv = mkv_cluster_key_read(path, key, err, errlen);
    if (rv != -ENOENT) return rv;
    if (getrandom(key, 32, 0) != 32) return mkv_errf(err, errlen, -EIO, "no randomness");
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
    hex[64] = '\n';
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return mkv_errf(err, errlen, -ENAMETOOLONG, "%s", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return mkv_errf(err, errlen, -errno, "creating %s", tmp);
    if (write(fd, hex, 65) != 65 || fsync(fd) != 0) {
        int e = errno ? -errno : -EIO;
        close(fd);
        unlink(tmp);
        return mkv_errf(err, errlen, e, "writing %s", tmp);
    }
    close(fd);
    if (rename(tmp, path) != 0) return mkv_errf(err, errlen, -errno, "renaming %s", tmp);
    MKV_INFO("auth", "created a new cluster key path=%s", path);
    return 0;
}

void mkv_cred_cluster(struct mkv_cred *a, const uint8_t key[32])
{
    memset(a, 0, sizeof *a);
    snprintf(a->access_key, sizeof a->access_key, "%s", MKV_CLUSTER_PRINCIPAL);
    memcpy(a->secret, key, 32);
    a->secret_len = 32;
    a->cluster = 1;
}

int mkv_cred_key(struct mkv_cred *a, const char *access_key, const char *secret)
{
    size_t kl = strlen(access_key), sl = strlen(secret);
    if (!kl || kl > MKV_ACCESS_KEY_MAX || !sl || sl > sizeof a->secret || access_key[0] == '@')
        return -EINVAL;
    memset(a, 0, sizeof *a);
    memcpy(a->access_key, access_key, kl);
    memcpy(a->secret, secret, sl);
    a->secret_len = sl;
    return 0;
}

int mkv_cred_from_env(struct mkv_cred *a)
{
    const char *k = getenv("MINIKV_ACCESS_KEY"), *s = getenv("MINIKV_SECRET_KEY");
    if (!k || !s || !*k || !*s) return 0;
    return mkv_cred_key(a, k, s) == 0;
}

int mkv_cred_from_file(struct mkv_cred *a, const char *path, const char *profile, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[1024], ak[MKV_ACCESS_KEY_MAX + 1] = "", sk[257] = "";
    int in = profile == NULL; /* without a profile: the first pair */
    if (!f) return mkv_errf(err, errlen, -errno, "credentials %s", path);
    while (fgets(line, sizeof line, f)) {
        char *k = line, *v;
        while (*k == ' ' || *k == '\t') k++;
        if (*k == '[') {
            char *end = strchr(k, ']');
            if (ak[0] && sk[0]) break; /* the pair is complete */
            if (end) *end = '\0';
            in = !profile || !strcmp(k + 1, profile);
            continue;
        }
        if (!in || !(v = strchr(k, '='))) continue;
        *v++ = '\0';
        k[strcspn(k, " \t")] = '\0';
        while (*v == ' ' || *v == '\t') v++;
        v[strcspn(v, " \t\r\n")] = '\0';
        if (!strcmp(k, "aws_access_key_id") && !ak[0]) snprintf(ak, sizeof ak, "%s", v);
        if (!strcmp(k, "aws_secret_access_key") && !sk[0]) snprintf(sk, sizeof sk, "%s", v);
    }
    fclose(f);
    if (!ak[0] || !sk[0])
        return mkv_errf(err, errlen, -EINVAL,
                        "%s holds no aws_access_key_id and aws_secret_access_key%s%s", path,
                        profile ? " in profile " : "", profile ? profile : "");
    if (mkv_cred_key(a, ak, sk))
        return mkv_errf(err, errlen, -EINVAL, "%s: the access key or secret is not valid", path);
    return 0;
}

static void hmac(const uint8_t *key, size_t klen, const void *parts[], const size_t lens[], int n,
                 uint8_t out[MKV_AUTH_MAC])
{
    uint8_t buf[1024];
    size_t pos = 0;
    unsigned int olen = MKV_AUTH_MAC;
    for (int i = 0; i < n && pos + lens[i] <= sizeof buf; i++) {
        memcpy(buf + pos, parts[i], lens[i]);
        pos += lens[i];
    }
    HMAC(EVP_sha256(), key, (int)klen, buf, pos, out, &olen);
}

void mkv_auth_mac(const uint8_t *secret, size_t secret_len, const uint8_t nonce_s[MKV_AUTH_NONCE],
                  const uint8_t nonce_c[MKV_AUTH_NONCE], const char *access_key,
                  uint8_t out[MKV_AUTH_MAC])
{
    static const char label[] = "minikv-auth-v1\n";
    const void *parts[] = {label, nonce_s, nonce_c, access_key};
    size_t lens[] = {sizeof label - 1, MKV_AUTH_NONCE, MKV_AUTH_NONCE,
                     strnlen(access_key, MKV_ACCESS_KEY_MAX)};
    hmac(secret, secret_len, parts, lens, 4, out);
}

void mkv_auth_token(const uint8_t cluster_key[32], const char *access_key, uint64_t expiry_ns,
                    uint8_t out[MKV_AUTH_MAC])
{
    static const char label[] = "minikv-chunk-token-v1\n";
    uint8_t exp[8];
    const void *parts[] = {label, access_key, "\n", exp};
    size_t lens[] = {sizeof label - 1, strnlen(access_key, MKV_ACCESS_KEY_MAX), 1, 8};
    mkv_put_le64(exp, expiry_ns);
    hmac(cluster_key, 32, parts, lens, 4, out);
}

int mkv_auth_mac_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

int mkv_secret_seal(const uint8_t cluster_key[32], const char *access_key, const char *secret,
                    struct mkv_buf *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t nonce[NONCE_LEN];
    size_t slen = strlen(secret);
    int len, rv = -EIO;
    if (!ctx) return -ENOMEM;
    if (getrandom(nonce, sizeof nonce, 0) != sizeof nonce) goto out;
    mkv_buf_reset(out);
    if (mkv_buf_reserve(out, 4 + NONCE_LEN + slen + TAG_LEN + 16)) {
        rv = -ENOMEM;
        goto out;
    }
    memcpy(out->p, SEAL_MAGIC, 4);
    memcpy(out->p + 4, nonce, NONCE_LEN);
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, cluster_key, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &len, (const uint8_t *)access_key, (int)strlen(access_key)) !=
            1 ||
        EVP_EncryptUpdate(ctx, out->p + 4 + NONCE_LEN, &len, (const uint8_t *)secret, (int)slen) !=
            1 ||
        EVP_EncryptFinal_ex(ctx, out->p + 4 + NONCE_LEN + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out->p + 4 + NONCE_LEN + slen) != 1)
        goto out;
    out->len = 4 + NONCE_LEN + slen + TAG_LEN;
    rv = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

int mkv_secret_unseal(const uint8_t cluster_key[32], const char *access_key, const uint8_t *sealed,
                      size_t len, char *secret, size_t cap)
{
    EVP_CIPHER_CTX *ctx;
    size_t clen;
    int outl, rv = MKV_ECHECKSUM;
    if (len < 4 + NONCE_LEN + TAG_LEN || memcmp(sealed, SEAL_MAGIC, 4) != 0) return -EINVAL;
    clen = len - 4 - NONCE_LEN - TAG_LEN;
    if (clen + 1 > cap) return -ENOSPC;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return -ENOMEM;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
        EVP_DecryptInit_ex(ctx, NULL, NULL, cluster_key, sealed + 4) == 1 &&
        EVP_DecryptUpdate(ctx, NULL, &outl, (const uint8_t *)access_key, (int)strlen(access_key)) ==
            1 &&
        EVP_DecryptUpdate(ctx, (uint8_t *)secret, &outl, sealed + 4 + NONCE_LEN, (int)clen) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                            (void *)(sealed + 4 + NONCE_LEN + clen)) == 1 &&
        EVP_DecryptFinal_ex(ctx, (uint8_t *)secret + outl, &outl) == 1) {
        secret[clen] = '\0';
        rv = 0;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (rv) memset(secret, 0, cap);
    return rv;
}
