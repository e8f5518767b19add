/* minikv FUSE client: state shared by its modules (private).
 *
 * Threads: one, the client thread, runs a libuv loop that reads requests
 * from /dev/fuse itself (the session's fd, non-blocking, polled by the
 * loop), owns every piece of state below (inode table, caches, write
 * buffers) and the client library, talks to the cluster, and answers with
 * fuse_reply_*. A request is handled where it is read: no hand-off to
 * another thread, so a request answered from local state costs one wakeup,
 * as on any FUSE file system. Nothing here is locked. The one other thread
 * makes kernel cache invalidations (below), which may have to wait for the
 * client thread.
 *
 * Inode numbers: the kernel's are the namespace's, except FUSE_ROOT_ID (1),
 * which stands for the mounted directory (a bucket's inode, or the
 * namespace root 1 itself).
 *
 * Data: a file's committed content is its extents (or inline bytes) in the
 * metadata; writes go to a per-inode buffer of dirty ranges, written to
 * new chunks and committed (INO_WRITE, one Raft command) on flush, fsync,
 * release, or when the buffer passes its limit. Reads overlay the dirty
 * ranges on the committed content, so a mount reads its own writes.
 *
 * Durability: the mount takes early replies (mkv_client_opts.early_replies):
 * a namespace change or INO_WRITE is answered once the leader has applied
 * it, visible to every client at once, and made durable by the next
 * META_SYNC, which fsync and fsyncdir send. As on a local file system, what
 * was not fsynced may be lost in a crash; what fsync answered is not. */
#ifndef MKV_FS_INT_H
#define MKV_FS_INT_H

#define FUSE_USE_VERSION 312
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "minikv/buf.h"
#include "minikv/client.h"
#include "minikv/wire.h"

struct fs_opts
{
    char *source; /* "h1:7000,h2:7000/bucket" as given */
    char *meta;   /* the metadata addresses part */
    char *bucket; /* NULL: the whole namespace */
    char *chunk;  /* chunk server address (default: from the meta service) */
    double attr_timeout;
    double entry_timeout;
    uint64_t op_timeout_ms; /* how long a request may wait for the cluster */
    uint64_t dirty_max;     /* buffered write bytes per file before writing back */
    uint64_t inline_max;    /* files up to this size are stored inline */
    uint64_t etag_max;      /* out-of-order written files up to this size get their MD5 at close */
    uint32_t min_replicas;  /* durable copies a write needs (0: a majority) */
    int read_only;
};

/* One entry of a file's write buffer: bytes at [off, off + len). */
struct dirty
{
    uint64_t off;
    size_t len, cap;
    uint8_t *p;
    struct dirty *next; /* sorted by off, non-overlapping */
};

struct fs_waiter;
struct dnames;

/* A bucket's directory inode and name (struct fs, bnames). */
struct fs_bucket_name
{
    uint64_t ino;
    char name[MKV_BUCKET_MAX + 1];
};

/* An inode the kernel knows (nlookup > 0) or that is open. */
struct fino
{
    uint64_t ino; /* the namespace's */
    uint64_t nlookup;
    unsigned opens;              /* descriptors, and reads in flight: fino_open_ref */
    struct fino *onext, **oprev; /* in fs->open_files while opens > 0 */
    int orphan;                  /* unlinked while open: ORPHAN_DROP at the last release */
    int dir_gone;                /* a directory removed (rmdir, replaced by a rename): nlink 0 */
    struct mkv_obj_info attr;    /* attribute fields only (slices not kept) */
    char etag[MKV_ETAG_MAX + 1];
    int have_attr;
    /* Until when (loop time, ms) attr may answer GETATTR without asking the
     * cluster: attr_timeout after the cluster last told them, kept exact
     * by this mount's own changes in between (the kernel drops its copy
     * after each change it makes and asks again). */
    uint64_t attr_until;
    /* Until when "no security.capability" is known (the kernel asks before
     * every write that could clear privileges). */
    uint64_t nocap_until;
    int locked; /* this mount took a lock on it: closes must drop theirs */
    /* The namespace inode of the bucket directory it lies in (0: not
     * known), for the bucket's replication factor (fino_bucket). */
    uint64_t bucket;
    /* A directory whose names this mount knows whole (dnames.c). */
    struct dnames *names;
    /* The committed content, loaded at open and dropped at the last
     * release: extents (encoded list) or the inline bytes, copied out of
     * the reply (a frame held longer would hold back its connection). */
    uint8_t *content;
    int loaded;
    struct mkv_slice extents, data;
    uint64_t generation; /* of the content this mount last loaded (0: none) */
    uint64_t stored;     /* bytes that content holds (extents and inline), for st_blocks */
    /* Writes not yet committed. */
    struct dirty *dirty;
    uint64_t dirty_bytes;
    uint64_t size;                /* the size this mount sees (>= committed when written) */
    int size_dirty;               /* size changed by writes, not yet committed */
    int whole;                    /* the buffer holds the whole content (new or truncated file) */
    int writing;                  /* a write-back is running */
    int wb_error;                 /* a write-back failed: reported by the next flush/fsync */
    uint64_t wb_started, wb_done; /* write-back rounds */
    struct dirty *wb_list;        /* the round being written (still read through) */
    uint64_t content_size;        /* size of the committed content loaded */
    struct fs_waiter *waiters;    /* requests waiting for a write-back round */
    /* The generation committed without an ETag (written out of order), to
     * compute (etag.c); 0: none due. */
    uint64_t etag_gen;
    void *etag_job;
    /* MD5 of the content, when it was written in order from offset 0. */
    EVP_MD_CTX *md5;
    uint64_t md5_off;  /* bytes written in order so far: what the MD5 covers */
    uint64_t md5_done; /* of those, bytes hashed (or being hashed: md5_busy) */
    int md5_valid;
    int md5_busy; /* a worker thread is hashing into md5 (write-back round) */
    struct fino *hnext;
};

struct fs
{
    struct fs_opts o;
    uv_loop_t loop;
    uv_poll_t session;    /* the FUSE session's fd, readable */
    struct fuse_buf fbuf; /* where requests are read, reused */
    uv_signal_t sigs[3];  /* SIGINT, SIGTERM, SIGHUP: unmount */
    uv_timer_t drain;
    int64_t drain_deadline;
    struct mkv_client *client;
    struct fuse_session *se;
    uint64_t root;      /* namespace inode of the mount's root */
    int64_t mounted_ns; /* the times of the namespace root, which keeps none */
    char *mountpoint;
    int stopping;
    /* inode table */
    struct fino **htab;
    size_t hcap, hcount;
    struct fino *open_files; /* those with opens > 0 (unlink and rename keep them) */
    uint32_t uid, gid;       /* the daemon's, for permission-free internal work */
    /* Kernel cache invalidations (fuse_lowlevel_notify_inval_inode), made
     * on a thread of their own: the kernel may need the client thread to
     * answer a read before it can drop a page. */
    pthread_t inval_thread;
    pthread_mutex_t ilock;
    pthread_cond_t icond;
    struct fop *iq_head, *iq_tail;
    int inval_started, inval_stop;
    /* Buckets' names by directory inode, as lookups under the namespace
     * root saw them (a whole-namespace mount; fino_place). */
    struct fs_bucket_name *bnames;
    size_t nbnames;
};

/* A request from the kernel, with what its steps carry along. */
enum fop_kind {
    FOP_LOOKUP = 1,
    FOP_FORGET,
    FOP_GETATTR,
    FOP_SETATTR,
    FOP_READLINK,
    FOP_MKNOD,
    FOP_MKDIR,
    FOP_SYMLINK,
    FOP_UNLINK,
    FOP_RMDIR,
    FOP_RENAME,
    FOP_LINK,
    FOP_OPEN,
    FOP_CREATE,
    FOP_READ,
    FOP_WRITE,
    FOP_FLUSH,
    FOP_RELEASE,
    FOP_FSYNC,
    FOP_OPENDIR,
    FOP_READDIR,
    FOP_RELEASEDIR,
    FOP_STATFS,
    FOP_SETXATTR,
    FOP_GETXATTR,
    FOP_LISTXATTR,
    FOP_REMOVEXATTR,
    FOP_FALLOCATE,
    FOP_FORGET_MULTI,
    FOP_GETLK,
    FOP_SETLK,
    FOP_FLOCK,
    FOP_FSYNCDIR,
};

struct fop
{
    enum fop_kind kind;
    fuse_req_t req;
    fuse_ino_t ino, ino2;
    char *name, *name2; /* owned */
    uint64_t fh;
    int flags;
    mode_t mode;
    dev_t rdev;
    struct stat st;
    int to_set;
    off_t off;
    size_t size;
    uint8_t *buf;        /* owned: xattr value */
    const uint8_t *data; /* write data: the request's, valid until op_write returns */
    uint64_t nlookup;
    struct fuse_forget_data *forgets; /* owned */
    size_t nforgets;
    int plus;
    int datasync;
    uint64_t lock_owner; /* fuse_file_info's: locks, and flush/release to drop them */
    struct flock lk;     /* getlk/setlk (flock: its type in lk.l_type) */
    int lk_sleep;        /* F_SETLKW, or flock without LOCK_NB */
    int flock_release;   /* release: drop the flock of lock_owner */
    uid_t uid;
    gid_t gid;
    struct fop *next;
    /* in the client thread */
    struct fs *fs;
    struct mkv_meta_req m;
    struct fino *fi;
    void *ctx;                     /* fs_meta's callback */
    void *ctx2;                    /* the operation's own state */
    void (*after)(struct fop *op); /* a step that runs before the operation itself */
    int status;                    /* carried from one step to the next */
};

/* The quoted hex MD5 of what ctx has digested so far (ctx stays usable);
 * "" on failure. */
void fs_md5_etag(EVP_MD_CTX *ctx, char *out, size_t len);

/* etag.c */
/* Starts computing the ETag of fi's etag_gen, unless running or not due. */
void fs_etag_start(struct fs *fs, struct fino *fi);
/* op waits for that (started if due): cb(op, 0) then, and 0 returned; 1
 * when there is nothing to wait for. */
int fs_etag_wait(struct fs *fs, struct fino *fi, struct fop *op,
                 void (*cb)(struct fop *op, int status));

/* fs.c */
extern const struct fuse_lowlevel_ops fs_ops;
/* Starts reading requests on fs->loop (the session's fd made non-blocking);
 * when the kernel ends the session (unmount) or a signal asks, fs_stop. */
int fs_session_start(struct fs *fs);
/* Stops reading requests, unmounts, writes back what is buffered (bounded)
 * and closes the client, after which the loop ends (main.c). */
void fs_stop(struct fs *fs);
struct fs *fs_of(fuse_req_t req);
/* The namespace inode a kernel inode number names, and back. */
uint64_t fs_ns_ino(struct fs *fs, fuse_ino_t ino);
fuse_ino_t fs_fuse_ino(struct fs *fs, uint64_t ino);
void fop_free(struct fop *op);
/* Drops the kernel's cached pages and attributes of op's inode, then
 * answers op with success and frees it, on the invalidation thread. */
void fs_inval_reply(struct fs *fs, struct fop *op);
int fs_inval_start(struct fs *fs);
void fs_inval_stop(struct fs *fs);
/* Answers op with an error (a negative errno or minikv code) and frees it. */
void fop_error(struct fop *op, int status);
/* A minikv or errno status as the errno a POSIX caller expects. */
int fs_errno(int status);
/* A meta call for op; cb gets op back. Returns 0 or a negative code. */
int fs_meta(struct fop *op, uint16_t type, const struct mkv_msgdesc *d, const void *msg,
            void (*cb)(struct fop *op, int status, struct mkv_frame *reply));
/* cb once every namespace change this mount was answered is durable
 * (mkv_client_sync: -EIO when some may have been lost). */
int fs_meta_sync(struct fop *op, void (*cb)(struct fop *op, int status, struct mkv_frame *reply));

/* inode.c */
struct fino *fino_get(struct fs *fs, uint64_t ino);
struct fino *fino_find(struct fs *fs, uint64_t ino);
/* Records an inode the kernel was told about (nlookup + 1) with attr. */
struct fino *fino_learn(struct fs *fs, const struct mkv_obj_info *oi);
/* Notes which bucket fi lies in, given that the kernel reached it as name
 * in directory parent (a FUSE inode number). */
void fino_place(struct fs *fs, struct fino *fi, fuse_ino_t parent, const char *name);
/* The name of the bucket fi lies in, or NULL when not known. */
const char *fino_bucket(struct fs *fs, const struct fino *fi);
void fino_set_attr(struct fs *fs, struct fino *fi, const struct mkv_obj_info *oi);
/* A directory's entries changed by a command of this mount at time now
 * (ns): its cached mtime and ctime follow, as the cluster's did. */
void fino_dir_changed(struct fs *fs, uint64_t dir, int64_t now);
/* Attributes cached but no longer known exact: the next GETATTR asks. */
void fino_attr_stale(struct fino *fi);
/* Whether GETATTR can be answered from fi's cache. */
int fino_attr_fresh(struct fs *fs, const struct fino *fi);
void fino_forget(struct fs *fs, struct fino *fi, uint64_t n);
/* fi gains an open (a descriptor, or a read in flight), or loses one; the
 * caller sees to fino_maybe_free after the last. */
void fino_open_ref(struct fs *fs, struct fino *fi);
void fino_open_unref(struct fino *fi);
void fino_maybe_free(struct fs *fs, struct fino *fi);
void fs_stat(struct fs *fs, const struct fino *fi, struct stat *st);
void fs_entry(struct fs *fs, struct fino *fi, struct fuse_entry_param *e);
void fs_inodes_free(struct fs *fs);

/* meta_ops.c: namespace operations. */
void op_lookup(struct fop *op);
void op_forget(struct fop *op);
void op_getattr(struct fop *op);
void op_setattr(struct fop *op);
void op_readlink(struct fop *op);
void op_make(struct fop *op);
void op_unlink(struct fop *op);
void op_rename(struct fop *op);
void op_link(struct fop *op);
void op_opendir(struct fop *op);
void op_readdir(struct fop *op);
void op_releasedir(struct fop *op);
void op_statfs(struct fop *op);
void op_setxattr(struct fop *op);
void op_getxattr(struct fop *op);
void op_listxattr(struct fop *op);
void op_removexattr(struct fop *op);

/* data_ops.c: file content. */
void op_open(struct fop *op);
void op_create_done(struct fop *op, struct fino *fi);
void op_read(struct fop *op);
void op_write(struct fop *op);
void op_flush(struct fop *op);
void op_fsync(struct fop *op);
void op_fsyncdir(struct fop *op);
void op_release(struct fop *op);
void op_fallocate(struct fop *op);
void op_create_existing(struct fop *op, struct mkv_frame *reply);
/* cb(op, status) once every write of op's file so far is committed. */
int fs_sync_then(struct fop *op, void (*cb)(struct fop *op, int status));
/* Takes oi (a full inode) as fi's content and attributes, unless this
 * mount has writes of its own in flight. */
int fs_file_reload(struct fs *fs, struct fino *fi, const struct mkv_obj_info *oi);
/* dnames.c: names of directories known whole, for negative lookups. */
/* fi, a directory this mount just made, is known whole (empty). */
void fs_names_new_dir(struct fs *fs, struct fino *fi);
/* A name now is (add) or is no longer (del) in dir, by this mount's own
 * command or as the cluster said (EEXIST). */
void fs_names_add(struct fs *fs, uint64_t dir, const char *name);
void fs_names_del(struct fs *fs, uint64_t dir, const char *name);
/* When name is known not to be in dir (no round trip needed): for how many
 * more seconds (> 0), else 0; may start a refresh of the set. */
double fs_names_absent(struct fs *fs, uint64_t dir, const char *name);
void fino_names_drop(struct fino *fi);
/* locks.c */
void op_getlk(struct fop *op);
void op_setlk(struct fop *op);
/* Drops the locks of op->lock_owner on op's inode that close ends (fcntl
 * locks at each flush, flock at the last release), then next(op). */
void fs_unlock_on_close(struct fop *op, int flock, void (*next)(struct fop *op));
/* Drops a file's write buffer (after truncation to 0 or an unlink). */
void fino_dirty_drop(struct fino *fi);
/* The size setattr changes: cut the buffer to size (and the content seen). */
void fino_truncated(struct fino *fi, uint64_t size);
/* Inode numbers of the files open here, as a packed u64 list for the
 * keep field of unlink/rename (an unlinked open file stays an orphan). */
void fs_open_inos(struct fs *fs, struct mkv_buf *out);
void fino_release_state(struct fino *fi);
/* Starts a write-back round of fi's buffer if none runs. */
void fs_writeback(struct fs *fs, struct fino *fi);

#endif /* MKV_FS_INT_H */
