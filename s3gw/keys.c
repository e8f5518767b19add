/* minikv gateway: access keys.
 *
 * SigV4 needs the secret in the clear, so secrets cannot be hashed. They are
 * sealed with the cluster key (AES-256-GCM, a fresh 96-bit nonce each time)
 * before they go to the meta service, which stores only the sealed blob;
 * gateways (the only holders of the cluster key) unseal them on demand and
 * cache them for a minute.
 *
 * Sealed layout (minikv/auth.h): "MKS1" | nonce (12) | ciphertext | tag
 * (16); the AAD is the access key, so a sealed secret cannot be moved to
 * another key. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw.h"
#include "minikv/auth.h"
#include "minikv/err.h"
#include "minikv/log.h"

#define CACHE_TTL_NS (60ull * 1000000000ull)

int gw_keys_init(struct mkv_gw *gw, char *err, size_t errlen)
{
    const char *path = gw->o.cluster_key_file;
    int rv;
    if (!path)
        return mkv_errf(err, errlen, -EINVAL,
                        "no cluster key file given (it seals access-key secrets)");
    rv = mkv_cluster_key_load(path, gw->cluster_key, err, errlen);
    if (rv < 0 && err && !err[0]) mkv_errf(err, errlen, rv, "cluster key %s", path);
    if (rv) return rv;
    gw->have_cluster_key = 1;
    return 0;
}

int gw_seal(const struct mkv_gw *gw, const char *access_key, const char *secret,
            struct mkv_buf *out)
{
    return mkv_secret_seal(gw->cluster_key, access_key, secret, out);
}

int gw_unseal(const struct mkv_gw *gw, const char *access_key, const uint8_t *sealed, size_t len,
              char *secret, size_t cap)
{
    return mkv_secret_unseal(gw->cluster_key, access_key, sealed, len, secret, cap);
}

int gw_key_cache_get(struct gw_worker *wk, const char *access_key, char *secret, size_t cap,
                     uint32_t *flags)
{
    uint64_t now = mkv_mono_ns();
    for (int i = 0; i < KEY_CACHE_SIZE; i++) {
        struct key_cache_entry *e = &wk->keys[i];
        if (e->expires_ns > now && !strcmp(e->access_key, access_key)) {
            snprintf(secret, cap, "%s", e->secret);
            *flags = e->flags;
            return 1;
        }
    }
    return 0;
}

void gw_key_cache_put(struct gw_worker *wk, const char *access_key, const char *secret,
                      uint32_t flags)
{
    uint64_t now = mkv_mono_ns();
    struct key_cache_entry *victim = &wk->keys[0];
    if (strlen(access_key) >= sizeof victim->access_key || strlen(secret) >= sizeof victim->secret)
        return;
    for (int i = 0; i < KEY_CACHE_SIZE; i++) {
        struct key_cache_entry *e = &wk->keys[i];
        if (!strcmp(e->access_key, access_key) || e->expires_ns <= now) {
            victim = e;
            break;
        }
        if (e->expires_ns < victim->expires_ns) victim = e;
    }
    snprintf(victim->access_key, sizeof victim->access_key, "%s", access_key);
    snprintf(victim->secret, sizeof victim->secret, "%s", secret);
    victim->flags = flags;
    victim->expires_ns = now + CACHE_TTL_NS;
}

/* ---- bootstrap ---- */

static void random_string(char *out, size_t n, const char *alphabet)
{
    uint8_t rnd[64];
    size_t al = strlen(alphabet);
    if (getrandom(rnd, n, 0) != (ssize_t)n) memset(rnd, 0x5a, n); /* never taken on Linux */
    for (size_t i = 0; i < n; i++) out[i] = alphabet[rnd[i] % al];
    out[n] = '\0';
}

static int put_key(struct mkv_gw *gw, struct mkv_client *c, const char *ak, const char *sk,
                   char *err, size_t errlen)
{
    struct mkv_buf sealed = MKV_BUF_INIT;
    struct mkv_key_put_req q = {0};
    struct mkv_frame *reply = NULL;
    int rv = gw_seal(gw, ak, sk, &sealed);
    if (rv) return mkv_errf(err, errlen, rv, "sealing the secret of %s", ak);
    q.access_key = mkv_slice_str(ak);
    q.sealed_secret = mkv_slice_mem(sealed.p, sealed.len);
    q.flags = MKV_KEYF_ADMIN;
    rv = mkv_meta_call_sync(c, MKV_MSG_KEY_PUT, &mkv_desc_key_put_req, &q, &reply, err, errlen);
    mkv_buf_free(&sealed);
    if (reply) mkv_frame_unref(reply);
    return rv;
}

static int save_credentials(const char *path, const char *ak, const char *sk, char *err,
                            size_t errlen)
{
    FILE *f;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return mkv_errf(err, errlen, -errno, "creating %s", path);
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return mkv_errf(err, errlen, -errno, "creating %s", path);
    }
    /* The AWS shared-credentials format, so that
     * AWS_SHARED_CREDENTIALS_FILE=<path> aws --profile minikv ... works. */
    fprintf(f,
            "# minikv S3 credentials, generated at first start. Keep this file private.\n"
            "[minikv]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
            ak, sk);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = -errno;
        fclose(f);
        return mkv_errf(err, errlen, e, "writing %s", path);
    }
    fclose(f);
    return 0;
}

int gw_keys_bootstrap(struct mkv_gw *gw, char *err, size_t errlen)
{
    const char *ak = getenv("MINIKV_ACCESS_KEY"), *sk = getenv("MINIKV_SECRET_KEY");
    struct mkv_client_opts co = {0};
    struct mkv_cred cred;
    struct mkv_client *c = NULL;
    struct mkv_frame *reply = NULL;
    struct mkv_key_list_req lq = {0};
    struct mkv_key_list_rep lr;
    uv_loop_t loop;
    char gak[21], gsk[41];
    int rv;
    if ((ak && *ak) != (sk && *sk))
        return mkv_errf(err, errlen, -EINVAL,
                        "set both MINIKV_ACCESS_KEY and MINIKV_SECRET_KEY, or neither");
    if (ak && (strlen(ak) < 3 || strlen(ak) > 128 || strlen(sk) < 8 || strlen(sk) > 128))
        return mkv_errf(err, errlen, -EINVAL,
                        "MINIKV_ACCESS_KEY must be 3-128 characters and MINIKV_SECRET_KEY 8-128");
    uv_loop_init(&loop);
    co.meta = gw->o.meta;
    co.retry_ms = 30000;
    mkv_cred_cluster(&cred, gw->cluster_key);
    co.cred = &cred;
    rv = mkv_client_new(&loop, &co, &c, err, errlen);
    memset(&cred, 0, sizeof cred);
    if (rv) goto out;
    if (ak && *ak) {
        rv = put_key(gw, c, ak, sk, err, errlen);
        if (rv == 0)
            MKV_INFO("s3gw", "access key from the environment is active access_key=%s", ak);
        goto out;
    }
    rv = mkv_meta_call_sync(c, MKV_MSG_KEY_LIST, &mkv_desc_key_list_req, &lq, &reply, err, errlen);
    if (rv) goto out;
    rv = mkv_frame_decode(reply, &mkv_desc_key_list_rep, &lr);
    if (rv) goto out;
    if (lr.keys.len > 0) goto out; /* keys exist: nothing to do */
    random_string(gak, 20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    memcpy(gak, "MK", 2);
    random_string(gsk, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    rv = put_key(gw, c, gak, gsk, err, errlen);
    if (rv) goto out;
    if (gw->o.credentials_file) {
        rv = save_credentials(gw->o.credentials_file, gak, gsk, err, errlen);
        if (rv) goto out;
    }
    if (!gw->o.quiet) {
        printf("minikv: generated S3 credentials (shown once%s%s):\n"
               "  access key: %s\n  secret key: %s\n",
               gw->o.credentials_file ? "; saved in " : "",
               gw->o.credentials_file ? gw->o.credentials_file : "", gak, gsk);
        fflush(stdout);
    }
    MKV_INFO("s3gw", "generated the first access key access_key=%s", gak);
out:
    if (reply) mkv_frame_unref(reply);
    if (c) mkv_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    memset(gsk, 0, sizeof gsk);
    return rv;
}
