/* minikv FUSE client: the MD5 ETag of files written out of order.
 *
 * A file written from offset 0 onwards gets its MD5 as it is written, and
 * its ETag with the commit. Any other pattern (a seek back, mmap, a
 * truncation to a non-zero size) commits with no ETag: the namespace then
 * shows a placeholder ("...-1", which S3 clients take as "not an MD5", as
 * for multipart uploads). This job reads the committed content back,
 * computes the MD5 and records it (INO_ETAG), which applies only while the
 * content is still the generation that was read.
 *
 * It runs when a file's last descriptor is closed, and close (flush) waits
 * for it, so that S3 sees the real ETag once close returns. Files over
 * etag_max keep the placeholder. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"
#include "minikv/err.h"
#include "minikv/log.h"

struct etag_wait
{
    struct fop *op;
    void (*cb)(struct fop *op, int status);
    struct etag_wait *next;
};

struct etag_job
{
    struct fs *fs;
    struct fino *fi;
    uint64_t generation;
    EVP_MD_CTX *md5;
    struct mkv_reader *reader;
    struct mkv_meta_req m;
    struct etag_wait *waiters;
    char etag[MKV_ETAG_MAX + 1];
};

static void job_finish(struct etag_job *j, int status)
{
    struct fs *fs = j->fs;
    struct fino *fi = j->fi;
    struct etag_wait *w = j->waiters, *next;
    uint64_t generation = j->generation;
    if (status)
        MKV_WARN("fs", "computing an ETag failed ino=%llu err=\"%s\" (S3 shows a placeholder)",
                 (unsigned long long)fi->ino, mkv_strerror(status));
    fi->etag_job = NULL;
    EVP_MD_CTX_free(j->md5);
    free(j);
    /* Close succeeds either way: the data is committed; only its S3 ETag
     * is a placeholder when this failed. */
    for (; w; w = next) {
        next = w->next;
        w->cb(w->op, 0);
        free(w);
    }
    /* Written again meanwhile: that generation's turn. A generation whose
     * job failed is not tried again (the cluster is unreachable or the
     * mount is going): it keeps its placeholder ETag. */
    if (fi->etag_gen && fi->etag_gen != generation && !fi->opens && !fi->writing && !fs->stopping)
        fs_etag_start(fs, fi);
    else fino_maybe_free(fs, fi);
}

static void on_etag_set(struct mkv_meta_req *m, int status, struct mkv_frame *reply)
{
    struct etag_job *j = m->data;
    struct mkv_ino_etag_rep rep = {0};
    if (!status && reply && mkv_frame_decode(reply, &mkv_desc_ino_etag_rep, &rep)) status = -EIO;
    /* Not applied: the content moved on, and its writer starts again. */
    if (!status && rep.applied && j->fi->etag_gen == j->generation) {
        j->fi->etag_gen = 0;
        snprintf(j->fi->etag, sizeof j->fi->etag, "%s", j->etag);
    }
    job_finish(j, status);
}

static void job_record(struct etag_job *j)
{
    struct mkv_ino_etag_req q = {0};
    int rv;
    fs_md5_etag(j->md5, j->etag, sizeof j->etag);
    if (!j->etag[0]) {
        job_finish(j, -ENOMEM);
        return;
    }
    q.ino = j->fi->ino;
    q.generation = j->generation;
    q.etag = mkv_slice_str(j->etag);
    j->m.data = j;
    if ((rv = mkv_meta_call(j->fs->client, &j->m, MKV_MSG_INO_ETAG, &mkv_desc_ino_etag_req, &q,
                            on_etag_set)))
        job_finish(j, rv);
}

static void on_piece(struct mkv_reader *r, void *data, struct mkv_frame *frame, const uint8_t *p,
                     size_t n)
{
    struct etag_job *j = data;
    (void)frame;
    EVP_DigestUpdate(j->md5, p, n);
    mkv_reader_release(r);
}

static void on_read_end(struct mkv_reader *r, void *data, int status)
{
    struct etag_job *j = data;
    mkv_reader_free(r);
    j->reader = NULL;
    if (status) job_finish(j, status);
    else job_record(j);
}

static const struct mkv_reader_ops job_read_ops = {on_piece, on_read_end};

static void on_inode(struct mkv_meta_req *m, int status, struct mkv_frame *reply)
{
    struct etag_job *j = m->data;
    struct mkv_obj_info oi;
    int rv;
    if (!status && (!reply || mkv_frame_decode(reply, &mkv_desc_obj_info, &oi))) status = -EIO;
    if (status) {
        job_finish(j, status == -ENOENT ? 0 : status); /* gone: nothing to name */
        return;
    }
    if (oi.generation != j->generation || oi.size > j->fs->o.etag_max) {
        job_finish(j, 0);
        return;
    }
    if (oi.extents.len == 0) { /* inline bytes (or empty) */
        EVP_DigestUpdate(j->md5, oi.data.p, oi.data.len);
        job_record(j);
        return;
    }
    if ((rv = mkv_reader_new(j->fs->client, oi.extents, oi.size, 0, oi.size, &job_read_ops, j,
                             &j->reader)))
        job_finish(j, rv);
}

void fs_etag_start(struct fs *fs, struct fino *fi)
{
    struct etag_job *j;
    struct mkv_ino_getattr_req q = {0};
    int rv;
    if (fi->etag_job || !fi->etag_gen) return;
    if (fi->size > fs->o.etag_max) return; /* it keeps the placeholder */
    if (!(j = calloc(1, sizeof *j)) || !(j->md5 = EVP_MD_CTX_new()) ||
        EVP_DigestInit_ex(j->md5, EVP_md5(), NULL) != 1) {
        if (j) EVP_MD_CTX_free(j->md5);
        free(j);
        return;
    }
    j->fs = fs;
    j->fi = fi;
    j->generation = fi->etag_gen;
    fi->etag_job = j;
    q.ino = fi->ino;
    j->m.data = j;
    if ((rv = mkv_meta_call(fs->client, &j->m, MKV_MSG_INO_GETATTR, &mkv_desc_ino_getattr_req, &q,
                            on_inode)))
        job_finish(j, rv);
}

int fs_etag_wait(struct fs *fs, struct fino *fi, struct fop *op,
                 void (*cb)(struct fop *op, int status))
{
    struct etag_wait *w;
    struct etag_job *j;
    fs_etag_start(fs, fi);
    if (!(j = fi->etag_job)) return 1;
    if (!(w = calloc(1, sizeof *w))) return 1; /* not waiting: S3 may see the placeholder */
    w->op = op;
    w->cb = cb;
    w->next = j->waiters;
    j->waiters = w;
    return 0;
}
