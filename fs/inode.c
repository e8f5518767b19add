/* minikv FUSE client: the inode table (client thread only).
 *
 * An inode is kept while the kernel holds lookups on it (released by
 * forget) or while it is open; attributes come with every reply that
 * names it and are what getattr answers until they expire. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_int.h"

static size_t slot(const struct fs *fs, uint64_t ino)
{
    return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (fs->hcap - 1);
}

struct fino *fino_find(struct fs *fs, uint64_t ino)
{
    struct fino *fi;
    if (!fs->hcap) return NULL;
    for (fi = fs->htab[slot(fs, ino)]; fi; fi = fi->hnext)
        if (fi->ino == ino) return fi;
    return NULL;
}

static int grow(struct fs *fs)
{
    size_t cap = fs->hcap ? fs->hcap * 2 : 1024;
    struct fino **t = calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < fs->hcap; i++) {
        struct fino *fi = fs->htab[i], *next;
        for (; fi; fi = next) {
            size_t s = (size_t)((fi->ino * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
            next = fi->hnext;
            fi->hnext = t[s];
            t[s] = fi;
        }
    }
    free(fs->htab);
    fs->htab = t;
    fs->hcap = cap;
    return 0;
}

struct fino *fino_get(struct fs *fs, uint64_t ino)
{
    struct fino *fi = fino_find(fs, ino);
    size_t s;
    if (fi) return fi;
    if (fs->hcount >= fs->hcap / 2 && grow(fs)) return NULL;
    if (!(fi = calloc(1, sizeof *fi))) return NULL;
    fi->ino = ino;
    s = slot(fs, ino);
    fi->hnext = fs->htab[s];
    fs->htab[s] = fi;
    fs->hcount++;
    return fi;
}

static uint64_t attr_ttl_ms(const struct fs *fs)
{
    return (uint64_t)(fs->o.attr_timeout * 1000.0);
}

void fino_set_attr(struct fs *fs, struct fino *fi, const struct mkv_obj_info *oi)
{
    fi->attr_until = uv_now(&fs->loop) + attr_ttl_ms(fs);
    fi->attr = *oi;
    fi->attr.etag = fi->attr.content_type = fi->attr.attrs = fi->attr.extents = fi->attr.data =
        fi->attr.symlink = mkv_slice_mem("", 0);
    snprintf(fi->etag, sizeof fi->etag, "%.*s", (int)oi->etag.len, (const char *)oi->etag.p);
    fi->have_attr = 1;
    /* What this mount wrote and has not committed wins over the cluster. */
    if (!fi->size_dirty) fi->size = oi->size;
}

struct fino *fino_learn(struct fs *fs, const struct mkv_obj_info *oi)
{
    struct fino *fi = fino_get(fs, oi->ino);
    if (!fi) return NULL;
    fino_set_attr(fs, fi, oi);
    fi->nlookup++;
    return fi;
}

void fino_place(struct fs *fs, struct fino *fi, fuse_ino_t parent, const char *name)
{
    uint64_t dir = fs_ns_ino(fs, parent);
    struct fino *p;
    if (fs->o.bucket || fi->bucket) return; /* a bucket mount: one bucket */
    if (dir != 1) {
        if ((p = fino_find(fs, dir)) && p->bucket) fi->bucket = p->bucket;
        return;
    }
    /* A directory of the namespace root: a bucket. */
    fi->bucket = fi->ino;
    for (size_t i = 0; i < fs->nbnames; i++)
        if (fs->bnames[i].ino == fi->ino) return;
    if (!name || strlen(name) > MKV_BUCKET_MAX) return;
    {
        struct fs_bucket_name *v = realloc(fs->bnames, (fs->nbnames + 1) * sizeof *v);
        if (!v) return;
        fs->bnames = v;
        v[fs->nbnames].ino = fi->ino;
        snprintf(v[fs->nbnames++].name, sizeof v->name, "%s", name);
    }
}

const char *fino_bucket(struct fs *fs, const struct fino *fi)
{
    if (fs->o.bucket) return fs->o.bucket;
    for (size_t i = 0; i < fs->nbnames; i++)
        if (fs->bnames[i].ino == fi->bucket) return fs->bnames[i].name;
    return NULL;
}

void fino_attr_stale(struct fino *fi)
{
    fi->attr_until = 0;
}

int fino_attr_fresh(struct fs *fs, const struct fino *fi)
{
    return fi->have_attr && fi->attr_until > uv_now(&fs->loop);
}

void fino_dir_changed(struct fs *fs, uint64_t dir, int64_t now)
{
    struct fino *fi;
    if (dir == 1 || !now || !(fi = fino_find(fs, dir)) || !fi->have_attr) return;
    /* The namespace root's times do not move (the cluster keeps none). */
    if (now > fi->attr.mtime) fi->attr.mtime = now;
    if (now > fi->attr.ctime) fi->attr.ctime = now;
}

void fino_maybe_free(struct fs *fs, struct fino *fi)
{
    struct fino **pp;
    if (fi->nlookup || fi->opens || fi->writing || fi->dirty || fi->waiters || fi->etag_job ||
        fi->ino == fs->root)
        return;
    for (pp = &fs->htab[slot(fs, fi->ino)]; *pp && *pp != fi; pp = &(*pp)->hnext)
        ;
    if (*pp) *pp = fi->hnext;
    fs->hcount--;
    fino_release_state(fi);
    free(fi);
}

void fino_forget(struct fs *fs, struct fino *fi, uint64_t n)
{
    fi->nlookup = n >= fi->nlookup ? 0 : fi->nlookup - n;
    fino_maybe_free(fs, fi);
}

void fino_open_ref(struct fs *fs, struct fino *fi)
{
    if (fi->opens++) return;
    fi->onext = fs->open_files;
    if (fi->onext) fi->onext->oprev = &fi->onext;
    fi->oprev = &fs->open_files;
    fs->open_files = fi;
}

void fino_open_unref(struct fino *fi)
{
    if (!fi->opens || --fi->opens) return;
    *fi->oprev = fi->onext;
    if (fi->onext) fi->onext->oprev = fi->oprev;
    fi->onext = NULL;
    fi->oprev = NULL;
}

void fs_stat(struct fs *fs, const struct fino *fi, struct stat *st)
{
    const struct mkv_obj_info *a = &fi->attr;
    memset(st, 0, sizeof *st);
    st->st_ino = fs_fuse_ino(fs, fi->ino);
    st->st_mode = a->mode;
    if (!(st->st_mode & S_IFMT)) {
        switch (a->type) {
        case MKV_T_DIR: st->st_mode |= S_IFDIR; break;
        case MKV_T_SYMLINK: st->st_mode |= S_IFLNK; break;
        case MKV_T_FIFO: st->st_mode |= S_IFIFO; break;
        default: st->st_mode |= S_IFREG; break;
        }
    }
    /* Directories say 1 (the number of subdirectories is not kept: find
     * and others read 1 as "unknown"), 0 once removed. */
    st->st_nlink = a->type == MKV_T_DIR ? (fi->dir_gone ? 0 : 1) : a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_size = (off_t)(a->type == MKV_T_FILE ? fi->size : a->size);
    st->st_blksize = 1 << 20;
    /* Allocated bytes: what extents and inline data hold, in 512-byte units
     * (sparse files report less than their size). */
    st->st_blocks = (blkcnt_t)((fi->size + 511) / 512);
    if (fi->generation && fi->attr.type == MKV_T_FILE && fi->stored < fi->size &&
        fi->generation == fi->attr.generation && !fi->size_dirty)
        st->st_blocks = (blkcnt_t)((fi->stored + 511) / 512);
    if (fi->ino == 1 && !a->mtime) { /* the namespace root */
        st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec =
            fs->mounted_ns / 1000000000LL;
        return;
    }
    st->st_atim.tv_sec = a->atime / 1000000000LL;
    st->st_atim.tv_nsec = a->atime % 1000000000LL;
    st->st_mtim.tv_sec = a->mtime / 1000000000LL;
    st->st_mtim.tv_nsec = a->mtime % 1000000000LL;
    st->st_ctim.tv_sec = a->ctime / 1000000000LL;
    st->st_ctim.tv_nsec = a->ctime % 1000000000LL;
}

void fs_entry(struct fs *fs, struct fino *fi, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof *e);
    e->ino = fs_fuse_ino(fs, fi->ino);
    e->generation = 1;
    e->attr_timeout = fs->o.attr_timeout;
    e->entry_timeout = fs->o.entry_timeout;
    fs_stat(fs, fi, &e->attr);
}

void fs_inodes_free(struct fs *fs)
{
    for (size_t i = 0; i < fs->hcap; i++) {
        struct fino *fi = fs->htab[i], *next;
        for (; fi; fi = next) {
            next = fi->hnext;
            fino_release_state(fi);
            free(fi);
        }
    }
    free(fs->htab);
    fs->htab = NULL;
    fs->hcap = fs->hcount = 0;
    free(fs->bnames);
    fs->bnames = NULL;
    fs->nbnames = 0;
}
