/* passthrough: a FUSE file system that mirrors a local directory, on the
 * libfuse3 low-level API. It is the benchmark reference for the minikv mount
 * (bench/fs.sh): the ceiling any FUSE file system reaches on this machine
 * with the same kernel cache options.
 *
 *   passthrough SRCDIR MOUNTPOINT [-f] [-d] [-s]
 *               [-o attr_timeout=S,entry_timeout=S,writeback,keep_cache,...]
 *
 * Inodes. Each inode the kernel knows is a struct pt_inode holding an O_PATH
 * descriptor of the source object, found by (st_dev, st_ino) in a hash table,
 * so hard links share one inode. Its address is the FUSE node id (the root
 * is FUSE_ROOT_ID). `nlookup` counts the entries we have replied with
 * (lookup, create, mknod, mkdir, symlink, link, readdirplus); forget drops
 * that many and the inode is freed, its descriptor closed, at zero. A reply
 * the kernel refuses (the request is gone) gives its count back.
 *
 * Operations on an inode without a name use the descriptor: *at(fd, "",
 * AT_EMPTY_PATH) where the kernel allows it on O_PATH, /proc/self/fd/N
 * otherwise (open, chmod, truncate, utimens, xattrs, link). Reads reply with
 * fuse_reply_data() from the open descriptor, so libfuse can splice the file
 * into /dev/fuse; writes go through write_buf and fuse_buf_copy(). Files
 * opened with O_DIRECT stay O_DIRECT on the source (the figures then include
 * the disk, as they do locally); their data goes through aligned buffers.
 *
 * Every handler replies exactly once on every path, errors included;
 * helpers return 0 or a negative errno-style code.
 *
 * Run as root, objects are created with the caller's fsuid/fsgid (but not
 * its supplementary groups); other permission checks are the kernel's with
 * -o default_permissions. Not implemented: POSIX locks (the kernel keeps
 * them locally), ioctl, poll, FUSE_INTERRUPT. */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 312
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

/* The handlers' signatures are libfuse's: most leave some arguments unused. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* Configuration, filled from -o options (see pt_options). */
struct pt_config {
	char *source;
	double attr_timeout;
	double entry_timeout;
	double negative_timeout;
	int writeback;
	int keep_cache;
	int splice_write;
	int splice_read;
	unsigned max_threads;
	int show_help;
};

struct pt_inode {
	struct pt_inode *next; /* hash chain; under pt_fs.lock */
	uint64_t nlookup;      /* under pt_fs.lock */
	int fd;                /* O_PATH, owned */
	mode_t type;           /* S_IFMT bits, fixed for the inode's life */
	dev_t dev;
	ino_t ino;
};

struct pt_fs {
	struct pt_config cfg;
	struct pt_inode root; /* FUSE_ROOT_ID; in the table, never freed */
	pthread_mutex_t lock;
	struct pt_inode **bucket;
	size_t nbucket; /* a power of two */
	size_t count;
	uid_t euid;
	gid_t egid;
};

/* An open directory: fi->fh. The kernel serialises readdir per file. */
struct pt_dir {
	DIR *dp;
	off_t offset;         /* offset of `entry`, or of the next readdir() */
	struct dirent *entry; /* read but not yet sent, or NULL */
};

/* An open file: fi->fh is the descriptor, with PT_FH_DIRECT set when it was
 * opened with O_DIRECT (its I/O then needs aligned buffers). */
#define PT_FH_DIRECT (1ULL << 32)
#define PT_DIRECT_ALIGN 4096

static int pt_fd(const struct fuse_file_info *fi)
{
	return (int)(fi->fh & 0xffffffffu);
}

static uint64_t pt_fh(int fd, int flags)
{
	return (uint64_t)fd | ((flags & O_DIRECT) ? PT_FH_DIRECT : 0);
}

/* ---- options ---------------------------------------------------------- */

#define PT_OPT(t, field, v) {t, offsetof(struct pt_config, field), v}

/* One table: fuse_opt template and the help line generated from it. */
static const struct {
	struct fuse_opt opt;
	const char *help;
} pt_options[] = {
	{PT_OPT("attr_timeout=%lf", attr_timeout, 0),
	 "attr_timeout=S       seconds the kernel caches attributes (1.0)"},
	{PT_OPT("entry_timeout=%lf", entry_timeout, 0),
	 "entry_timeout=S      seconds the kernel caches names (1.0)"},
	{PT_OPT("negative_timeout=%lf", negative_timeout, 0),
	 "negative_timeout=S   seconds the kernel caches a missing name (0)"},
	{PT_OPT("writeback", writeback, 1),
	 "writeback            kernel write-back cache (FUSE_CAP_WRITEBACK_CACHE)"},
	{PT_OPT("no_writeback", writeback, 0), "no_writeback         write-through (default)"},
	{PT_OPT("keep_cache", keep_cache, 1),
	 "keep_cache           keep the page cache across opens (FOPEN_KEEP_CACHE)"},
	{PT_OPT("no_keep_cache", keep_cache, 0),
	 "no_keep_cache        drop the page cache on open (default)"},
	{PT_OPT("splice_write", splice_write, 1),
	 "splice_write         splice read data into /dev/fuse (default)"},
	{PT_OPT("no_splice_write", splice_write, 0), "no_splice_write      copy read data"},
	{PT_OPT("splice_read", splice_read, 1),
	 "splice_read          splice write data out of /dev/fuse"},
	{PT_OPT("no_splice_read", splice_read, 0),
	 "no_splice_read       copy write data (default)"},
	{PT_OPT("max_threads=%u", max_threads, 0),
	 "max_threads=N        worker threads at most (libfuse default: 10)"},
	{PT_OPT("-h", show_help, 1), NULL},
	{PT_OPT("--help", show_help, 1), NULL},
};

#define PT_NOPTIONS (sizeof pt_options / sizeof pt_options[0])

static void pt_usage(const char *prog)
{
	size_t i;

	printf("usage: %s SRCDIR MOUNTPOINT [options]\n\n"
	       "Mirrors SRCDIR at MOUNTPOINT through FUSE (low-level API).\n\n"
	       "passthrough options:\n",
	       prog);
	for (i = 0; i < PT_NOPTIONS; i++)
		if (pt_options[i].help != NULL)
			printf("    -o %s\n", pt_options[i].help);
	printf("\n");
}

/* The first non-option argument is the source directory; the next one is
 * left for fuse_parse_cmdline() as the mount point. */
static int pt_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct pt_config *cfg = data;

	if (key == FUSE_OPT_KEY_NONOPT && cfg->source == NULL) {
		cfg->source = strdup(arg);
		return cfg->source == NULL ? -1 : 0;
	}
	return 1;
}

/* ---- inode table ------------------------------------------------------ */

static size_t pt_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino ^ ((uint64_t)dev * 0x9e3779b97f4a7c15ULL);

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)h;
}

/* Lock held. */
static struct pt_inode *pt_table_find(struct pt_fs *fs, dev_t dev, ino_t ino)
{
	struct pt_inode *p = fs->bucket[pt_hash(dev, ino) & (fs->nbucket - 1)];

	while (p != NULL && (p->ino != ino || p->dev != dev))
		p = p->next;
	return p;
}

/* Lock held. Grows the table at load factor 1; if that allocation fails the
 * chains just get longer. */
static void pt_table_insert(struct pt_fs *fs, struct pt_inode *inode)
{
	struct pt_inode **slot;

	if (fs->count >= fs->nbucket) {
		size_t n = fs->nbucket * 2, i;
		struct pt_inode **b = calloc(n, sizeof *b);

		if (b != NULL) {
			for (i = 0; i < fs->nbucket; i++) {
				struct pt_inode *p = fs->bucket[i], *next;

				for (; p != NULL; p = next) {
					next = p->next;
					slot = &b[pt_hash(p->dev, p->ino) & (n - 1)];
					p->next = *slot;
					*slot = p;
				}
			}
			free(fs->bucket);
			fs->bucket = b;
			fs->nbucket = n;
		}
	}
	slot = &fs->bucket[pt_hash(inode->dev, inode->ino) & (fs->nbucket - 1)];
	inode->next = *slot;
	*slot = inode;
	fs->count++;
}

/* Lock held. */
static void pt_table_remove(struct pt_fs *fs, struct pt_inode *inode)
{
	struct pt_inode **pp = &fs->bucket[pt_hash(inode->dev, inode->ino) & (fs->nbucket - 1)];

	while (*pp != inode)
		pp = &(*pp)->next;
	*pp = inode->next;
	fs->count--;
}

static struct pt_fs *pt_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct pt_inode *pt_inode(struct pt_fs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fs->root : (struct pt_inode *)(uintptr_t)ino;
}

static fuse_ino_t pt_ino(struct pt_fs *fs, struct pt_inode *inode)
{
	return inode == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)inode;
}

/* Drops n lookups; frees the inode at zero. The root is never freed. */
static void pt_unref(struct pt_fs *fs, struct pt_inode *inode, uint64_t n)
{
	if (inode == &fs->root || n == 0)
		return;
	pthread_mutex_lock(&fs->lock);
	assert(inode->nlookup >= n);
	inode->nlookup -= n;
	if (inode->nlookup > 0) {
		pthread_mutex_unlock(&fs->lock);
		return;
	}
	pt_table_remove(fs, inode);
	pthread_mutex_unlock(&fs->lock);
	close(inode->fd);
	free(inode);
}

static void pt_procpath(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

#define PT_PROCPATH_MAX 32

/* Looks NAME up in DIR and counts one lookup on the inode found; fills e.
 * Returns 0 or a negative errno. */
static int pt_lookup_entry(struct pt_fs *fs, struct pt_inode *dir, const char *name,
			   struct fuse_entry_param *e)
{
	struct pt_inode *inode, *fresh;
	int fd, err;

	memset(e, 0, sizeof *e);
	if (dir == &fs->root && strcmp(name, "..") == 0)
		name = "."; /* do not climb out of the source */
	fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	fresh = calloc(1, sizeof *fresh);
	if (fresh == NULL) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&fs->lock);
	inode = pt_table_find(fs, e->attr.st_dev, e->attr.st_ino);
	if (inode != NULL) {
		inode->nlookup++;
		pthread_mutex_unlock(&fs->lock);
		close(fd);
		free(fresh);
	} else {
		inode = fresh;
		inode->fd = fd;
		inode->type = e->attr.st_mode & S_IFMT;
		inode->dev = e->attr.st_dev;
		inode->ino = e->attr.st_ino;
		inode->nlookup = 1;
		pt_table_insert(fs, inode);
		pthread_mutex_unlock(&fs->lock);
	}
	e->ino = pt_ino(fs, inode);
	e->attr_timeout = fs->cfg.attr_timeout;
	e->entry_timeout = fs->cfg.entry_timeout;
	return 0;
}

/* Replies with e (err == 0) or the error; gives the lookup back if the
 * kernel does not take the reply. */
static void pt_reply_entry(fuse_req_t req, int err, const struct fuse_entry_param *e)
{
	struct pt_fs *fs = pt_fs(req);

	if (err != 0) {
		fuse_reply_err(req, -err);
		return;
	}
	if (fuse_reply_entry(req, e) != 0)
		pt_unref(fs, pt_inode(fs, e->ino), 1);
}

/* ---- credentials for creating operations ------------------------------ */

/* Run as root, objects are created as the caller (fsuid/fsgid are per
 * thread on Linux). Returns 1 if pt_creds_leave() must be called. */
static int pt_creds_enter(struct pt_fs *fs, fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (fs->euid != 0 || (ctx->uid == fs->euid && ctx->gid == fs->egid))
		return 0;
	setfsgid(ctx->gid);
	setfsuid(ctx->uid);
	return 1;
}

static void pt_creds_leave(struct pt_fs *fs, int entered)
{
	if (!entered)
		return;
	setfsuid(fs->euid);
	setfsgid(fs->egid);
}

/* ---- operations ------------------------------------------------------- */

static void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	struct pt_fs *fs = userdata;

	/* Kill suid/sgid on write in the kernel: we write as root (CAP_FSETID). */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	if (fs->cfg.splice_write)
		conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	if (fs->cfg.splice_read)
		conn->want |= conn->capable & FUSE_CAP_SPLICE_READ;
	if (fs->cfg.writeback) {
		if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
			conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		else
			fprintf(stderr, "passthrough: level=warn msg=\"kernel lacks writeback cache\"\n");
	} else {
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	}
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pt_fs *fs = pt_fs(req);
	struct fuse_entry_param e;
	int err = pt_lookup_entry(fs, pt_inode(fs, parent), name, &e);

	if (err == -ENOENT && fs->cfg.negative_timeout > 0) {
		memset(&e, 0, sizeof e);
		e.entry_timeout = fs->cfg.negative_timeout;
		fuse_reply_entry(req, &e); /* ino 0: a cached miss */
		return;
	}
	pt_reply_entry(req, err, &e);
}

static void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct pt_fs *fs = pt_fs(req);

	pt_unref(fs, pt_inode(fs, ino), nlookup);
	fuse_reply_none(req);
}

static void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct pt_fs *fs = pt_fs(req);
	size_t i;

	for (i = 0; i < count; i++)
		pt_unref(fs, pt_inode(fs, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs(req);
	struct stat st;

	if (fstatat(pt_inode(fs, ino)->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, fs->cfg.attr_timeout);
}

static int pt_setattr_times(struct pt_inode *inode, const struct stat *attr, int to_set,
			    struct fuse_file_info *fi)
{
	struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
	char path[PT_PROCPATH_MAX];
	int res;

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (fi != NULL) {
		res = futimens(pt_fd(fi), tv);
	} else {
		/* Through /proc the call reaches the object, symlinks included. */
		pt_procpath(path, sizeof path, inode->fd);
		res = utimensat(AT_FDCWD, path, tv, 0);
	}
	return res < 0 ? -errno : 0;
}

static void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs(req);
	struct pt_inode *inode = pt_inode(fs, ino);
	char path[PT_PROCPATH_MAX];
	struct stat st;
	int err = 0;

	pt_procpath(path, sizeof path, inode->fd);
	if (to_set & FUSE_SET_ATTR_MODE) {
		int res = fi != NULL ? fchmod(pt_fd(fi), attr->st_mode)
				     : fchmodat(AT_FDCWD, path, attr->st_mode, 0);
		if (res < 0)
			err = -errno;
	}
	if (err == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(inode->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			err = -errno;
	}
	if (err == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		int res = fi != NULL ? ftruncate(pt_fd(fi), attr->st_size)
				     : truncate(path, attr->st_size);
		if (res < 0)
			err = -errno;
	}
	if (err == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)))
		err = pt_setattr_times(inode, attr, to_set, fi);
	/* FUSE_SET_ATTR_CTIME (write-back cache) cannot be set; the backing
	 * file system updates ctime itself. */
	if (err == 0 && fstatat(inode->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		err = -errno;
	if (err != 0)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, &st, fs->cfg.attr_timeout);
}

static void pt_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct pt_fs *fs = pt_fs(req);
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(pt_inode(fs, ino)->fd, "", buf, sizeof buf);

	if (n < 0) {
		fuse_reply_err(req, errno);
	} else if ((size_t)n == sizeof buf) {
		fuse_reply_err(req, ENAMETOOLONG);
	} else {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

/* mknod, mkdir and symlink: make the object, then look it up. */
static void pt_make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		    dev_t rdev, const char *target)
{
	struct pt_fs *fs = pt_fs(req);
	struct pt_inode *dir = pt_inode(fs, parent);
	struct fuse_entry_param e;
	int as_caller, res, err;

	as_caller = pt_creds_enter(fs, req);
	if (S_ISDIR(mode))
		res = mkdirat(dir->fd, name, mode & ~S_IFMT);
	else if (S_ISLNK(mode))
		res = symlinkat(target, dir->fd, name);
	else
		res = mknodat(dir->fd, name, mode, rdev);
	err = res < 0 ? -errno : 0;
	pt_creds_leave(fs, as_caller);
	if (err == 0)
		err = pt_lookup_entry(fs, dir, name, &e);
	pt_reply_entry(req, err, &e);
}

static void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	pt_make(req, parent, name, mode, rdev, NULL);
}

static void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	pt_make(req, parent, name, S_IFDIR | mode, 0, NULL);
}

static void pt_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	pt_make(req, parent, name, S_IFLNK, 0, target);
}

static void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct pt_fs *fs = pt_fs(req);
	struct pt_inode *dir = pt_inode(fs, newparent);
	char path[PT_PROCPATH_MAX];
	struct fuse_entry_param e;
	int err = 0;

	pt_procpath(path, sizeof path, pt_inode(fs, ino)->fd);
	if (linkat(AT_FDCWD, path, dir->fd, newname, AT_SYMLINK_FOLLOW) < 0)
		err = -errno;
	if (err == 0)
		err = pt_lookup_entry(fs, dir, newname, &e);
	pt_reply_entry(req, err, &e);
}

static void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pt_fs *fs = pt_fs(req);

	fuse_reply_err(req, unlinkat(pt_inode(fs, parent)->fd, name, 0) < 0 ? errno : 0);
}

static void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pt_fs *fs = pt_fs(req);

	fuse_reply_err(req, unlinkat(pt_inode(fs, parent)->fd, name, AT_REMOVEDIR) < 0 ? errno : 0);
}

static void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct pt_fs *fs = pt_fs(req);
	int res = renameat2(pt_inode(fs, parent)->fd, name, pt_inode(fs, newparent)->fd, newname,
			    flags);

	fuse_reply_err(req, res < 0 ? errno : 0);
}

/* Open flags for the backing file. With the write-back cache the kernel
 * reads pages of files opened write-only and handles O_APPEND itself. */
static int pt_open_flags(const struct pt_fs *fs, int flags)
{
	flags &= ~O_NOFOLLOW;
	if (fs->cfg.writeback) {
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return flags | O_CLOEXEC;
}

static void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs(req);
	char path[PT_PROCPATH_MAX];
	int fd, flags;

	pt_procpath(path, sizeof path, pt_inode(fs, ino)->fd);
	flags = pt_open_flags(fs, fi->flags);
	fd = open(path, flags);
	if (fd < 0 && errno == EACCES && fs->cfg.writeback) {
		flags = (fi->flags & ~(O_NOFOLLOW | O_APPEND)) | O_CLOEXEC;
		fd = open(path, flags);
	}
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = pt_fh(fd, flags);
	fi->keep_cache = fs->cfg.keep_cache;
	if (fuse_reply_open(req, fi) != 0)
		close(fd);
}

static void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs(req);
	struct pt_inode *dir = pt_inode(fs, parent);
	struct fuse_entry_param e;
	int as_caller, fd, err;

	as_caller = pt_creds_enter(fs, req);
	fd = openat(dir->fd, name, pt_open_flags(fs, fi->flags) | O_CREAT, mode);
	err = fd < 0 ? -errno : 0;
	pt_creds_leave(fs, as_caller);
	if (err == 0) {
		err = pt_lookup_entry(fs, dir, name, &e);
		if (err != 0)
			close(fd);
	}
	if (err != 0) {
		fuse_reply_err(req, -err);
		return;
	}
	fi->fh = pt_fh(fd, fi->flags);
	fi->keep_cache = fs->cfg.keep_cache;
	if (fuse_reply_create(req, &e, fi) != 0) {
		close(fd);
		pt_unref(fs, pt_inode(fs, e.ino), 1);
	}
}

/* O_DIRECT reads into an aligned buffer (libfuse's own buffers are not). */
static void pt_read_direct(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	size_t len = (size + PT_DIRECT_ALIGN - 1) & ~(size_t)(PT_DIRECT_ALIGN - 1);
	void *buf;
	ssize_t n;

	if (posix_memalign(&buf, PT_DIRECT_ALIGN, len) != 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = pread(pt_fd(fi), buf, size, off);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	if (fi->fh & PT_FH_DIRECT) {
		pt_read_direct(req, size, off, fi);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = pt_fd(fi);
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE); /* replies errors too */
}

static void pt_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	size_t size = fuse_buf_size(in);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
	void *bounce = NULL;
	ssize_t n;

	if (fi->fh & PT_FH_DIRECT) {
		/* O_DIRECT: through an aligned buffer. */
		size_t len = (size + PT_DIRECT_ALIGN - 1) & ~(size_t)(PT_DIRECT_ALIGN - 1);

		if (posix_memalign(&bounce, PT_DIRECT_ALIGN, len) != 0) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		out.buf[0].mem = bounce;
		n = fuse_buf_copy(&out, in, 0);
		if (n >= 0) {
			n = pwrite(pt_fd(fi), bounce, (size_t)n, off);
			if (n < 0)
				n = -errno;
		}
		free(bounce);
	} else {
		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = pt_fd(fi);
		out.buf[0].pos = off;
		n = fuse_buf_copy(&out, in, 0);
	}
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() of a duplicate reports what close() of the file would,
	 * without closing it (it may still be used until release). */
	int fd = dup(pt_fd(fi));

	if (fd < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, close(fd) < 0 ? errno : 0);
}

static void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	close(pt_fd(fi));
	fuse_reply_err(req, 0);
}

static void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = pt_fd(fi);
	int res = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, res < 0 ? errno : 0);
}

static void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_fs *fs = pt_fs(req);
	struct pt_dir *d = calloc(1, sizeof *d);
	int fd, err;

	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(pt_inode(fs, ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto err_after_alloc;
	d->dp = fdopendir(fd);
	if (d->dp == NULL)
		goto err_after_open;
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(d->dp);
		free(d);
	}
	return;

err_after_open:
	err = errno;
	close(fd);
	errno = err;
err_after_alloc:
	err = errno;
	free(d);
	fuse_reply_err(req, err);
}

static int pt_is_dot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* readdir and readdirplus. Directory offsets are the backing d_off values.
 * An entry that does not fit stays in d->entry for the next call. For
 * readdirplus, every entry sent counts a lookup (but "." and ".."); those
 * are given back if the reply is refused. */
static void pt_do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			  struct fuse_file_info *fi, int plus)
{
	struct pt_fs *fs = pt_fs(req);
	struct pt_inode *dir = pt_inode(fs, ino);
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;
	struct pt_inode **sent = NULL;
	size_t nsent = 0, used = 0, i;
	char *buf;
	int err = 0;

	buf = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (plus) {
		/* The smallest entry bounds how many fit. */
		size_t min = fuse_add_direntry_plus(req, NULL, 0, "", NULL, 0);

		sent = malloc((size / min + 1) * sizeof *sent);
		if (sent == NULL) {
			free(buf);
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		const char *name;
		off_t next;
		size_t n;

		if (d->entry == NULL) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (d->entry == NULL) {
				err = errno != 0 ? -errno : 0;
				break;
			}
		}
		name = d->entry->d_name;
		next = d->entry->d_off;
		if (plus) {
			struct fuse_entry_param e;
			struct pt_inode *child = NULL;

			if (pt_is_dot(name)) {
				/* ino 0: the kernel takes the name only. */
				memset(&e, 0, sizeof e);
				e.attr.st_ino = d->entry->d_ino;
				e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			} else {
				err = pt_lookup_entry(fs, dir, name, &e);
				if (err == -ENOENT) { /* removed since readdir() */
					err = 0;
					d->entry = NULL;
					d->offset = next;
					continue;
				}
				if (err != 0)
					break;
				child = pt_inode(fs, e.ino);
			}
			n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, next);
			if (n > size - used) {
				if (child != NULL)
					pt_unref(fs, child, 1);
				break;
			}
			if (child != NULL)
				sent[nsent++] = child;
		} else {
			struct stat st;

			memset(&st, 0, sizeof st);
			st.st_ino = d->entry->d_ino;
			st.st_mode = (mode_t)d->entry->d_type << 12;
			n = fuse_add_direntry(req, buf + used, size - used, name, &st, next);
			if (n > size - used)
				break;
		}
		used += n;
		d->entry = NULL;
		d->offset = next;
	}
	/* An error after some entries: send those, the next call reports it. */
	if (err != 0 && used == 0) {
		fuse_reply_err(req, -err);
	} else if (fuse_reply_buf(req, buf, used) != 0) {
		for (i = 0; i < nsent; i++)
			pt_unref(fs, sent[i], 1);
	}
	free(sent);
	free(buf);
}

static void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi)
{
	pt_do_readdir(req, ino, size, offset, fi, 0);
}

static void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			   struct fuse_file_info *fi)
{
	pt_do_readdir(req, ino, size, offset, fi, 1);
}

static void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;

	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;
	int fd = dirfd(d->dp);
	int res = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, res < 0 ? errno : 0);
}

static void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct pt_fs *fs = pt_fs(req);
	struct statvfs sv;

	if (fstatvfs(pt_inode(fs, ino)->fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* Extended attributes go through /proc/self/fd/N: the *xattr() calls
 * reach the object itself there, symlinks included. */
static void pt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	char path[PT_PROCPATH_MAX];

	pt_procpath(path, sizeof path, pt_inode(pt_fs(req), ino)->fd);
	fuse_reply_err(req, setxattr(path, name, value, size, flags) < 0 ? errno : 0);
}

/* getxattr and listxattr: size 0 asks for the size needed. */
static void pt_reply_xattr(fuse_req_t req, ssize_t n, const char *buf, size_t size)
{
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char path[PT_PROCPATH_MAX];
	char *buf = NULL;
	ssize_t n;

	pt_procpath(path, sizeof path, pt_inode(pt_fs(req), ino)->fd);
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = getxattr(path, name, buf, size);
	pt_reply_xattr(req, n, buf, size);
	free(buf);
}

static void pt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char path[PT_PROCPATH_MAX];
	char *buf = NULL;
	ssize_t n;

	pt_procpath(path, sizeof path, pt_inode(pt_fs(req), ino)->fd);
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = listxattr(path, buf, size);
	pt_reply_xattr(req, n, buf, size);
	free(buf);
}

static void pt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char path[PT_PROCPATH_MAX];

	pt_procpath(path, sizeof path, pt_inode(pt_fs(req), ino)->fd);
	fuse_reply_err(req, removexattr(path, name) < 0 ? errno : 0);
}

static void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	int res = fallocate(pt_fd(fi), mode, offset, length);

	fuse_reply_err(req, res < 0 ? errno : 0);
}

static void pt_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	ssize_t n = copy_file_range(pt_fd(fi_in), &off_in, pt_fd(fi_out), &off_out, len,
				    (unsigned)flags);

	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

static void pt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t res = lseek(pt_fd(fi), off, whence);

	if (res < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}

static const struct fuse_lowlevel_ops pt_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.symlink = pt_symlink,
	.link = pt_link,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.open = pt_open,
	.create = pt_create,
	.read = pt_read,
	.write_buf = pt_write_buf,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.statfs = pt_statfs,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	.fallocate = pt_fallocate,
	.copy_file_range = pt_copy_file_range,
	.lseek = pt_lseek,
};

/* ---- set-up ----------------------------------------------------------- */

/* Opens the source and puts the root in the table. Returns 0 or a
 * negative errno, with a message in msg. */
static int pt_fs_init(struct pt_fs *fs, char *msg, size_t len)
{
	struct stat st;
	int err;

	fs->euid = geteuid();
	fs->egid = getegid();
	fs->root.fd = open(fs->cfg.source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->root.fd < 0) {
		err = -errno;
		snprintf(msg, len, "open %s: %s", fs->cfg.source, strerror(-err));
		return err;
	}
	if (fstat(fs->root.fd, &st) < 0) {
		err = -errno;
		snprintf(msg, len, "stat %s: %s", fs->cfg.source, strerror(-err));
		goto err_after_open;
	}
	fs->root.type = S_IFDIR;
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.nlookup = 1;
	fs->nbucket = 1024;
	fs->bucket = calloc(fs->nbucket, sizeof *fs->bucket);
	if (fs->bucket == NULL) {
		err = -ENOMEM;
		snprintf(msg, len, "inode table: %s", strerror(-err));
		goto err_after_open;
	}
	err = pthread_mutex_init(&fs->lock, NULL);
	if (err != 0) {
		err = -err;
		snprintf(msg, len, "mutex: %s", strerror(-err));
		goto err_after_table;
	}
	pt_table_insert(fs, &fs->root);
	return 0;

err_after_table:
	free(fs->bucket);
err_after_open:
	close(fs->root.fd);
	return err;
}

/* Frees the inodes the kernel did not forget (it need not at unmount). */
static void pt_fs_fini(struct pt_fs *fs)
{
	size_t i;

	for (i = 0; i < fs->nbucket; i++) {
		struct pt_inode *p = fs->bucket[i], *next;

		for (; p != NULL; p = next) {
			next = p->next;
			if (p != &fs->root) {
				close(p->fd);
				free(p);
			}
		}
	}
	free(fs->bucket);
	pthread_mutex_destroy(&fs->lock);
	close(fs->root.fd);
}

/* One O_PATH descriptor per inode the kernel caches: raise the soft limit
 * to the hard one, and the hard one to fs.nr_open when we may. */
static void pt_raise_nofile(void)
{
	struct rlimit rl;
	unsigned long nr_open = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");

	if (f != NULL) {
		if (fscanf(f, "%lu", &nr_open) != 1)
			nr_open = 0;
		fclose(f);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (nr_open > rl.rlim_max) {
		struct rlimit want = {.rlim_cur = nr_open, .rlim_max = nr_open};

		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static int pt_loop(struct fuse_session *se, const struct fuse_cmdline_opts *cmd,
		   const struct pt_config *cfg)
{
	int ret;

	if (cmd->singlethread)
		return fuse_session_loop(se);
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 12)
	{
		struct fuse_loop_config *lc = fuse_loop_cfg_create();

		if (lc == NULL)
			return -ENOMEM;
		fuse_loop_cfg_set_clone_fd(lc, (unsigned)cmd->clone_fd);
		if (cmd->max_idle_threads != UINT_MAX) /* UINT_MAX: libfuse's default */
			fuse_loop_cfg_set_idle_threads(lc, cmd->max_idle_threads);
		fuse_loop_cfg_set_max_threads(lc, cfg->max_threads != 0 ? cfg->max_threads
									: cmd->max_threads);
		ret = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
#else
	{
		/* max_threads needs libfuse 3.12 */
		struct fuse_loop_config lc = {.clone_fd = cmd->clone_fd,
					      .max_idle_threads = cmd->max_idle_threads};

		ret = fuse_session_loop_mt(se, &lc);
	}
#endif
	return ret;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_opt opts[PT_NOPTIONS + 1];
	struct fuse_cmdline_opts cmd;
	struct fuse_session *se;
	struct pt_fs fs;
	char msg[512];
	char *abs;
	size_t i;
	int ret = 1;

	memset(&fs, 0, sizeof fs);
	memset(&cmd, 0, sizeof cmd);
	fs.cfg.attr_timeout = 1.0;
	fs.cfg.entry_timeout = 1.0;
	fs.cfg.splice_write = 1;
	for (i = 0; i < PT_NOPTIONS; i++)
		opts[i] = pt_options[i].opt;
	memset(&opts[PT_NOPTIONS], 0, sizeof opts[PT_NOPTIONS]); /* FUSE_OPT_END */

	if (fuse_opt_parse(&args, &fs.cfg, opts, pt_opt_proc) != 0)
		goto err_after_args;
	if (fs.cfg.show_help) {
		pt_usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto err_after_args;
	}
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto err_after_args;
	if (cmd.show_version) {
		printf("FUSE library version %s\n", fuse_pkgversion());
		fuse_lowlevel_version();
		ret = 0;
		goto err_after_cmd;
	}
	if (fs.cfg.source == NULL || cmd.mountpoint == NULL) {
		fprintf(stderr, "usage: %s SRCDIR MOUNTPOINT [options] (--help for more)\n",
			argv[0]);
		goto err_after_cmd;
	}
	if (fs.cfg.attr_timeout < 0 || fs.cfg.entry_timeout < 0 || fs.cfg.negative_timeout < 0) {
		fprintf(stderr, "passthrough: timeouts must not be negative\n");
		goto err_after_cmd;
	}
	abs = realpath(fs.cfg.source, NULL); /* for fsname; errors are open()'s */
	if (abs != NULL) {
		free(fs.cfg.source);
		fs.cfg.source = abs;
	}
	if (strchr(fs.cfg.source, ',') == NULL) {
		snprintf(msg, sizeof msg, "-ofsname=%s", fs.cfg.source);
		if (fuse_opt_add_arg(&args, msg) != 0)
			goto err_after_cmd;
	}
	if (pt_fs_init(&fs, msg, sizeof msg) != 0) {
		fprintf(stderr, "passthrough: %s\n", msg);
		goto err_after_cmd;
	}
	pt_raise_nofile();

	se = fuse_session_new(&args, &pt_ops, sizeof pt_ops, &fs);
	if (se == NULL)
		goto err_after_fs;
	if (fuse_set_signal_handlers(se) != 0)
		goto err_after_session;
	if (fuse_session_mount(se, cmd.mountpoint) != 0)
		goto err_after_signals;
	fuse_daemonize(cmd.foreground);
	ret = pt_loop(se, &cmd, &fs.cfg) != 0 ? 1 : 0;
	fuse_session_unmount(se);
err_after_signals:
	fuse_remove_signal_handlers(se);
err_after_session:
	fuse_session_destroy(se);
err_after_fs:
	pt_fs_fini(&fs);
err_after_cmd:
	free(cmd.mountpoint);
err_after_args:
	free(fs.cfg.source);
	fuse_opt_free_args(&args);
	return ret;
}
