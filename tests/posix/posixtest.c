/* posixtest: minikv's own POSIX test for a mounted directory.
 *
 * Runs named cases against DIR. Each case gets a fresh subdirectory of DIR
 * (its working directory; removed afterwards, even when it fails) and its own
 * forked child with an alarm-based timeout, so one crashing or hanging case
 * does not stop the rest. Prints TAP; exits 0 when every case that ran passed.
 * A failing check prints file:line, the call, the expected and the actual
 * value or errno. Plain libc + pthreads; see tests/posix/README. */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

#define KIB 1024LL
#define MIB (1024LL * KIB)
#define GIB (1024LL * MIB)
#define EXT4_MAGIC 0xEF53

/* ------------------------------------------------------------------------ */
/* Report area and checks                                                    */

/* Shared (MAP_SHARED) between the runner, the case process, its threads and
 * its helper processes: the first failure claims it, later ones are dropped. */
struct pt_report {
    int claimed;
    char msg[1536];
};

/* What a case sees. Its working directory is its fresh subdirectory. */
struct pt {
    const char *dir;   /* absolute path of the case directory */
    const char *other; /* scratch directory on --other-dir, or NULL */
    uid_t uid;         /* unprivileged user from --uid/--gid */
    gid_t gid;
    bool have_user;
    bool verbose;
    struct pt_report *rep;
};

static const char *errname(int e)
{
    /* clang-format off */
    switch (e) {
#define E(x) \
    case x: return #x;
        E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(ECHILD)
        E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV)
        E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ETXTBSY) E(EFBIG) E(ENOSPC)
        E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(EDEADLK) E(ENAMETOOLONG) E(ENOLCK)
        E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(ENODATA) E(EOVERFLOW) E(EOPNOTSUPP) E(ENOTCONN)
        E(ESTALE) E(EDQUOT) E(ETIMEDOUT) E(ECONNREFUSED)
#undef E
    }
    /* clang-format on */
    return "unknown errno";
}

/* Records "file:line: message" if it is the first failure, and ends this
 * process (the case, or the helper process or thread's whole process). */
static void pt_vfail(struct pt *t, const char *file, int line, const char *fmt, va_list ap)
    __attribute__((noreturn, format(printf, 4, 0)));
static void pt_vfail(struct pt *t, const char *file, int line, const char *fmt, va_list ap)
{
    if (__atomic_exchange_n(&t->rep->claimed, 1, __ATOMIC_SEQ_CST) == 0) {
        const char *base = strrchr(file, '/');
        int n = snprintf(t->rep->msg, sizeof t->rep->msg, "%s:%d: ", base ? base + 1 : file, line);
        vsnprintf(t->rep->msg + n, sizeof t->rep->msg - (size_t)n, fmt, ap);
    }
    _exit(1);
}

static void pt_fail(struct pt *t, const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
static void pt_fail(struct pt *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pt_vfail(t, file, line, fmt, ap);
}

static void pt_note(struct pt *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pt_note(struct pt *t, const char *fmt, ...)
{
    va_list ap;
    if (!t->verbose) return;
    va_start(ap, fmt);
    fputs("#   ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

/* errno is read first thing: the checked call is complete by then, and
 * nothing else in the argument list touches errno. */
static long pt_ok(struct pt *t, long r, const char *call, const char *file, int line)
{
    int e = errno;
    if (r < 0)
        pt_fail(t, file, line, "%s: expected success, got %s (%s)", call, errname(e), strerror(e));
    return r;
}

static void pt_err(struct pt *t, long r, int e1, int e2, const char *call, const char *file,
                   int line)
{
    int e = errno;
    char want[64];
    if (e1 == e2)
        snprintf(want, sizeof want, "%s", errname(e1));
    else
        snprintf(want, sizeof want, "%s or %s", errname(e1), errname(e2));
    if (r != -1)
        pt_fail(t, file, line, "%s: expected errno %s, got success (returned %ld)", call, want, r);
    if (e != e1 && e != e2)
        pt_fail(t, file, line, "%s: expected errno %s, got %s (%s)", call, want, errname(e),
                strerror(e));
}

static void pt_eq(struct pt *t, long long got, long long want, const char *a, const char *b,
                  const char *file, int line)
{
    if (got != want) pt_fail(t, file, line, "%s: expected %lld (%s), got %lld", a, want, b, got);
}

static void pt_check(struct pt *t, bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void pt_check(struct pt *t, bool ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    if (ok) return;
    va_start(ap, fmt);
    pt_vfail(t, file, line, fmt, ap);
}

#define PT_OK(t, call) pt_ok((t), (long)(call), #call, __FILE__, __LINE__)
#define PT_ERR(t, call, e) pt_err((t), (long)(call), (e), (e), #call, __FILE__, __LINE__)
#define PT_ERR2(t, call, e1, e2) pt_err((t), (long)(call), (e1), (e2), #call, __FILE__, __LINE__)
#define PT_EQ(t, a, b) pt_eq((t), (long long)(a), (long long)(b), #a, #b, __FILE__, __LINE__)
#define PT_CHECK(t, cond, ...) pt_check((t), (cond), __FILE__, __LINE__, __VA_ARGS__)
#define PT_TRUE(t, cond) pt_check((t), (cond), __FILE__, __LINE__, "expected %s", #cond)

/* ------------------------------------------------------------------------ */
/* Data helpers                                                              */

/* The byte at file offset off of pattern seed: position-dependent, so a
 * misplaced or stale block shows up. */
static uint8_t pat_byte(uint64_t off, unsigned seed)
{
    uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull + (uint64_t)seed * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    x *= 0x94D049BB133111EBull;
    return (uint8_t)(x ^ (x >> 32));
}

static void pat_fill(uint8_t *buf, size_t len, uint64_t off, unsigned seed)
{
    for (size_t i = 0; i < len; i++) buf[i] = pat_byte(off + i, seed);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void *pt_alloc(struct pt *t, size_t len, const char *file, int line)
{
    void *p = calloc(1, len ? len : 1);
    if (!p) pt_fail(t, file, line, "calloc(%zu): out of memory", len);
    return p;
}
#define PT_ALLOC(t, len) pt_alloc((t), (len), __FILE__, __LINE__)

static void pt_pwrite_all(struct pt *t, int fd, const void *buf, size_t len, off_t off,
                          const char *file, int line)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t r = pwrite(fd, p, len, off);
        int e = errno;
        if (r < 0)
            pt_fail(t, file, line, "pwrite(%zu bytes at %lld): expected success, got %s (%s)", len,
                    (long long)off, errname(e), strerror(e));
        if (r == 0)
            pt_fail(t, file, line, "pwrite(%zu bytes at %lld) returned 0", len, (long long)off);
        p += r;
        len -= (size_t)r;
        off += r;
    }
}
#define PWRITE_ALL(t, fd, buf, len, off) \
    pt_pwrite_all((t), (fd), (buf), (len), (off), __FILE__, __LINE__)

/* Reads until len bytes or end of file; returns the count. */
static size_t pt_pread_full(struct pt *t, int fd, void *buf, size_t len, off_t off,
                            const char *file, int line)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, p + got, len - got, off + (off_t)got);
        int e = errno;
        if (r < 0)
            pt_fail(t, file, line, "pread(%zu bytes at %lld): expected success, got %s (%s)",
                    len - got, (long long)(off + (off_t)got), errname(e), strerror(e));
        if (r == 0) break;
        got += (size_t)r;
    }
    return got;
}
#define PREAD_FULL(t, fd, buf, len, off) \
    pt_pread_full((t), (fd), (buf), (len), (off), __FILE__, __LINE__)

static void pt_mem_eq(struct pt *t, const uint8_t *got, const uint8_t *want, size_t len,
                      long long base, const char *what, const char *file, int line)
{
    for (size_t i = 0; i < len; i++)
        if (got[i] != want[i])
            pt_fail(t, file, line, "%s: byte at offset %lld: expected 0x%02x, got 0x%02x", what,
                    base + (long long)i, want[i], got[i]);
}
#define MEM_EQ(t, got, want, len, what)                                                         \
    pt_mem_eq((t), (const uint8_t *)(got), (const uint8_t *)(want), (len), 0, (what), __FILE__, \
              __LINE__)

/* Reads [off, off+len) through fd and compares it with want (NULL: zeros). */
static void pt_expect_at(struct pt *t, int fd, off_t off, const void *want, size_t len,
                         const char *file, int line)
{
    uint8_t *got = pt_alloc(t, len, file, line), *zero = NULL;
    size_t n = pt_pread_full(t, fd, got, len, off, file, line);
    if (n != len)
        pt_fail(t, file, line, "pread(%zu bytes at %lld): expected %zu bytes, got %zu (early EOF)",
                len, (long long)off, len, n);
    if (!want) want = zero = pt_alloc(t, len, file, line);
    pt_mem_eq(t, got, want, len, (long long)off, want == zero ? "expected zeros" : "file data",
              file, line);
    free(got);
    free(zero);
}
#define EXPECT_AT(t, fd, off, want, len) \
    pt_expect_at((t), (fd), (off), (want), (len), __FILE__, __LINE__)
#define EXPECT_ZEROS(t, fd, off, len) \
    pt_expect_at((t), (fd), (off), NULL, (len), __FILE__, __LINE__)

static void pt_expect_pattern(struct pt *t, int fd, off_t off, size_t len, unsigned seed,
                              const char *file, int line)
{
    uint8_t *want = pt_alloc(t, len, file, line);
    pat_fill(want, len, (uint64_t)off, seed);
    pt_expect_at(t, fd, off, want, len, file, line);
    free(want);
}
#define EXPECT_PATTERN(t, fd, off, len, seed) \
    pt_expect_pattern((t), (fd), (off), (len), (seed), __FILE__, __LINE__)

static void pt_make_file(struct pt *t, const char *name, const void *data, size_t len,
                         const char *file, int line)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = errno;
    if (fd < 0)
        pt_fail(t, file, line,
                "open(\"%s\", O_WRONLY|O_CREAT|O_TRUNC): expected success, got %s (%s)", name,
                errname(e), strerror(e));
    pt_pwrite_all(t, fd, data, len, 0, file, line);
    if (close(fd) < 0)
        pt_fail(t, file, line, "close(\"%s\"): expected success, got %s", name, errname(errno));
}
#define MAKE_FILE(t, name, data, len) pt_make_file((t), (name), (data), (len), __FILE__, __LINE__)
#define MAKE_STR(t, name, s) pt_make_file((t), (name), (s), strlen(s), __FILE__, __LINE__)

/* The file holds exactly data[0..len). */
static void pt_expect_file(struct pt *t, const char *name, const void *data, size_t len,
                           const char *file, int line)
{
    struct stat st;
    uint8_t extra;
    int fd = open(name, O_RDONLY);
    int e = errno;
    if (fd < 0)
        pt_fail(t, file, line, "open(\"%s\", O_RDONLY): expected success, got %s (%s)", name,
                errname(e), strerror(e));
    if (fstat(fd, &st) < 0) pt_fail(t, file, line, "fstat(\"%s\"): %s", name, errname(errno));
    if (st.st_size != (off_t)len)
        pt_fail(t, file, line, "size of \"%s\": expected %zu, got %lld", name, len,
                (long long)st.st_size);
    pt_expect_at(t, fd, 0, data, len, file, line);
    if (pt_pread_full(t, fd, &extra, 1, (off_t)len, file, line) != 0)
        pt_fail(t, file, line, "\"%s\": read past the expected end returned data", name);
    close(fd);
}
#define EXPECT_FILE(t, name, data, len) \
    pt_expect_file((t), (name), (data), (len), __FILE__, __LINE__)
#define EXPECT_STR(t, name, s) pt_expect_file((t), (name), (s), strlen(s), __FILE__, __LINE__)

static void pt_stat(struct pt *t, const char *name, struct stat *st, bool follow, const char *file,
                    int line)
{
    int r = follow ? stat(name, st) : lstat(name, st);
    int e = errno;
    if (r < 0)
        pt_fail(t, file, line, "%s(\"%s\"): expected success, got %s (%s)",
                follow ? "stat" : "lstat", name, errname(e), strerror(e));
}
#define STAT(t, name, st) pt_stat((t), (name), (st), true, __FILE__, __LINE__)
#define LSTAT(t, name, st) pt_stat((t), (name), (st), false, __FILE__, __LINE__)

static struct timespec now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

static struct timespec now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

static double ts_sub(struct timespec a, struct timespec b)
{
    return (double)(a.tv_sec - b.tv_sec) + (double)(a.tv_nsec - b.tv_nsec) / 1e9;
}

static int ts_cmp(struct timespec a, struct timespec b)
{
    if (a.tv_sec != b.tv_sec) return a.tv_sec < b.tv_sec ? -1 : 1;
    if (a.tv_nsec != b.tv_nsec) return a.tv_nsec < b.tv_nsec ? -1 : 1;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) continue;
}

/* Sleeps until the wall clock is in a later second than ts, so that a
 * filesystem storing whole seconds must still show a newer timestamp. */
static void wait_past(struct timespec ts)
{
    while (now_real().tv_sec <= ts.tv_sec) sleep_ms(10);
    sleep_ms(10);
}

/* want, or want truncated to a power-of-ten granularity (1 ns .. 1 s). */
static void pt_time_is(struct pt *t, struct timespec got, struct timespec want, const char *what,
                       const char *file, int line)
{
    bool ok = false;
    long g = 1;
    for (int i = 0; i <= 9 && got.tv_sec == want.tv_sec; i++, g *= 10)
        if (got.tv_nsec == want.tv_nsec / g * g) ok = true;
    if (!ok)
        pt_fail(t, file, line, "%s: expected %lld.%09ld, got %lld.%09ld", what,
                (long long)want.tv_sec, want.tv_nsec, (long long)got.tv_sec, got.tv_nsec);
}
#define TIME_IS(t, got, want, what) pt_time_is((t), (got), (want), (what), __FILE__, __LINE__)

/* got lies within [lo - 2 s, hi + 2 s] (coarse kernel clocks, a server clock). */
static void pt_time_near(struct pt *t, struct timespec got, struct timespec lo, struct timespec hi,
                         const char *what, const char *file, int line)
{
    if (got.tv_sec < lo.tv_sec - 2 || got.tv_sec > hi.tv_sec + 2)
        pt_fail(t, file, line, "%s: expected about now (%lld), got %lld.%09ld", what,
                (long long)lo.tv_sec, (long long)got.tv_sec, got.tv_nsec);
}
#define TIME_NEAR(t, got, lo, hi, what) \
    pt_time_near((t), (got), (lo), (hi), (what), __FILE__, __LINE__)

static int renameat2_(const char *from, const char *to, unsigned flags)
{
#ifdef SYS_renameat2
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
#else
    (void)from, (void)to, (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

/* Drops root for the unprivileged user of --uid/--gid, for good. */
static void become_user(struct pt *t)
{
    gid_t g = t->gid;
    PT_OK(t, setgroups(1, &g));
    PT_OK(t, setgid(t->gid));
    PT_OK(t, setuid(t->uid));
    PT_EQ(t, geteuid(), t->uid);
    PT_EQ(t, getegid(), t->gid);
}

/* ------------------------------------------------------------------------ */
/* Peers: helper processes driven step by step over a socketpair             */

struct pt_peer {
    pid_t pid;
    int sock;
};

typedef void pt_peer_fn(struct pt *t, int sock, void *arg);

static void peer_start(struct pt *t, struct pt_peer *p, pt_peer_fn *fn, void *arg)
{
    int sv[2];
    PT_OK(t, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    fflush(stdout);
    p->pid = (pid_t)PT_OK(t, fork());
    if (p->pid == 0) {
        close(sv[0]);
        fn(t, sv[1], arg);
        _exit(0);
    }
    close(sv[1]);
    p->sock = sv[0];
}

static void pt_send(struct pt *t, int sock, char c, const char *file, int line)
{
    if (write(sock, &c, 1) != 1)
        pt_fail(t, file, line, "peer step '%c': send failed: %s", c, errname(errno));
}

static void pt_wait(struct pt *t, int sock, char c, const char *file, int line)
{
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    char got;
    int r = poll(&pfd, 1, 30000);
    if (r == 0) pt_fail(t, file, line, "peer step '%c': no answer within 30 s", c);
    if (r < 0 || read(sock, &got, 1) != 1)
        pt_fail(t, file, line, "peer step '%c': the other process went away", c);
    if (got != c) pt_fail(t, file, line, "peer step: expected '%c', got '%c'", c, got);
}
#define SEND(t, sock, c) pt_send((t), (sock), (c), __FILE__, __LINE__)
#define WAIT(t, sock, c) pt_wait((t), (sock), (c), __FILE__, __LINE__)

static void pt_peer_end(struct pt *t, struct pt_peer *p, const char *file, int line)
{
    int status;
    close(p->sock);
    if (waitpid(p->pid, &status, 0) < 0)
        pt_fail(t, file, line, "waitpid(peer): %s", errname(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        pt_fail(t, file, line, "peer process failed (status 0x%x)", status);
}
#define PEER_END(t, p) pt_peer_end((t), (p), __FILE__, __LINE__)

/* ------------------------------------------------------------------------ */
/* Directory listings                                                        */

struct pt_dirent {
    char name[256];
    unsigned char type;
    ino_t ino;
};

struct pt_list {
    struct pt_dirent *e;
    size_t n, cap;
};

static void pt_list_dir(struct pt *t, const char *path, struct pt_list *l, const char *file,
                        int line)
{
    DIR *d = opendir(path);
    struct dirent *de;
    if (!d)
        pt_fail(t, file, line, "opendir(\"%s\"): %s (%s)", path, errname(errno), strerror(errno));
    l->n = 0;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de) break;
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 64;
            l->e = realloc(l->e, l->cap * sizeof *l->e);
            if (!l->e) pt_fail(t, file, line, "out of memory");
        }
        snprintf(l->e[l->n].name, sizeof l->e[l->n].name, "%s", de->d_name);
        l->e[l->n].type = de->d_type;
        l->e[l->n].ino = de->d_ino;
        l->n++;
    }
    if (errno) pt_fail(t, file, line, "readdir(\"%s\"): %s", path, errname(errno));
    closedir(d);
}
#define LIST_DIR(t, path, l) pt_list_dir((t), (path), (l), __FILE__, __LINE__)

static size_t list_count(const struct pt_list *l, const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i < l->n; i++) c += strcmp(l->e[i].name, name) == 0;
    return c;
}

/* The listing holds exactly ".", ".." and the NULL-terminated names. */
static void pt_expect_names(struct pt *t, const char *path, const char *const *names,
                            const char *file, int line)
{
    struct pt_list l = {0};
    size_t want = 2;
    pt_list_dir(t, path, &l, file, line);
    for (const char *const *n = names; *n; n++, want++)
        if (list_count(&l, *n) != 1)
            pt_fail(t, file, line, "listing of \"%s\": \"%s\" expected once, seen %zu times", path,
                    *n, list_count(&l, *n));
    if (list_count(&l, ".") != 1 || list_count(&l, "..") != 1)
        pt_fail(t, file, line, "listing of \"%s\": \".\" and \"..\" expected once each", path);
    for (size_t i = 0; i < l.n && l.n != want; i++) {
        bool known = !strcmp(l.e[i].name, ".") || !strcmp(l.e[i].name, "..");
        for (const char *const *n = names; *n && !known; n++) known = !strcmp(*n, l.e[i].name);
        if (!known)
            pt_fail(t, file, line, "listing of \"%s\": unexpected entry \"%s\"", path, l.e[i].name);
    }
    if (l.n != want)
        pt_fail(t, file, line, "listing of \"%s\": expected %zu entries, got %zu", path, want, l.n);
    free(l.e);
}
#define EXPECT_NAMES(t, path, ...)                                \
    do {                                                          \
        static const char *const names_[] = {__VA_ARGS__, NULL};  \
        pt_expect_names((t), (path), names_, __FILE__, __LINE__); \
    } while (0)

/* ------------------------------------------------------------------------ */
/* lookup / getattr                                                          */

static void case_lookup_stat(struct pt *t)
{
    struct stat f, d, l, s;
    int fd;
    MAKE_STR(t, "f", "0123456789");
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, symlink("f", "l"));
    PT_OK(t, symlink("d", "ld"));
    PT_OK(t, symlink("missing", "dangling"));

    STAT(t, "f", &f);
    PT_TRUE(t, S_ISREG(f.st_mode));
    PT_EQ(t, f.st_mode & 07777, 0644);
    PT_EQ(t, f.st_size, 10);
    PT_EQ(t, f.st_nlink, 1);
    PT_EQ(t, f.st_uid, geteuid());
    STAT(t, "d", &d);
    PT_TRUE(t, S_ISDIR(d.st_mode));
    PT_TRUE(t, d.st_ino != f.st_ino);
    PT_EQ(t, d.st_dev, f.st_dev);

    /* lstat sees the link itself, stat what it points to. */
    LSTAT(t, "l", &l);
    PT_TRUE(t, S_ISLNK(l.st_mode));
    PT_EQ(t, l.st_size, 1);
    PT_TRUE(t, l.st_ino != f.st_ino);
    STAT(t, "l", &s);
    PT_TRUE(t, S_ISREG(s.st_mode));
    PT_EQ(t, s.st_ino, f.st_ino);
    PT_EQ(t, s.st_size, 10);
    LSTAT(t, "f", &s);
    PT_EQ(t, s.st_ino, f.st_ino);
    STAT(t, "ld", &s);
    PT_TRUE(t, S_ISDIR(s.st_mode));
    PT_EQ(t, s.st_ino, d.st_ino);
    LSTAT(t, "ld", &s);
    PT_TRUE(t, S_ISLNK(s.st_mode));
    PT_ERR(t, stat("dangling", &s), ENOENT);
    LSTAT(t, "dangling", &s);
    PT_TRUE(t, S_ISLNK(s.st_mode));
    PT_EQ(t, s.st_size, 7);

    /* fstat agrees with stat; "." and ".." resolve to the right inodes. */
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_ino, f.st_ino);
    PT_EQ(t, s.st_size, 10);
    close(fd);
    STAT(t, "d/.", &s);
    PT_EQ(t, s.st_ino, d.st_ino);
    STAT(t, ".", &l);
    STAT(t, "d/..", &s);
    PT_EQ(t, s.st_ino, l.st_ino);
    STAT(t, "f", &s);
    PT_EQ(t, s.st_ino, f.st_ino); /* stable across lookups */
}

static void case_lookup_enoent(struct pt *t)
{
    struct stat s;
    PT_OK(t, mkdir("d", 0755));
    PT_ERR(t, stat("missing", &s), ENOENT);
    PT_ERR(t, lstat("missing", &s), ENOENT);
    PT_ERR(t, stat("d/missing", &s), ENOENT);
    PT_ERR(t, stat("missing/x", &s), ENOENT);
    PT_ERR(t, access("missing", F_OK), ENOENT);
    /* A name that existed and went away, then came back. */
    MAKE_STR(t, "f", "x");
    STAT(t, "f", &s);
    PT_OK(t, unlink("f"));
    PT_ERR(t, stat("f", &s), ENOENT);
    PT_ERR(t, stat("f", &s), ENOENT);
    MAKE_STR(t, "f", "yy");
    STAT(t, "f", &s);
    PT_EQ(t, s.st_size, 2);
    PT_OK(t, rmdir("d"));
    PT_ERR(t, stat("d", &s), ENOENT);
}

static void case_lookup_enotdir(struct pt *t)
{
    struct stat s;
    MAKE_STR(t, "f", "x");
    PT_OK(t, symlink("f", "l"));
    PT_ERR(t, stat("f/x", &s), ENOTDIR);
    PT_ERR(t, lstat("f/x", &s), ENOTDIR);
    PT_ERR(t, stat("f/", &s), ENOTDIR);
    PT_ERR(t, stat("l/x", &s), ENOTDIR);
    PT_ERR(t, open("f/x", O_RDONLY), ENOTDIR);
    PT_ERR(t, mkdir("f/x", 0755), ENOTDIR);
}

static void case_lookup_nametoolong(struct pt *t)
{
    char n255[256], n256[257], nested[300], *deep;
    struct stat s;
    struct pt_list l = {0};
    memset(n255, 'a', 255);
    n255[255] = 0;
    memset(n256, 'b', 256);
    n256[256] = 0;
    PT_ERR(t, stat(n256, &s), ENAMETOOLONG);
    PT_ERR(t, lstat(n256, &s), ENAMETOOLONG);
    PT_ERR(t, open(n256, O_RDONLY), ENAMETOOLONG);
    PT_OK(t, mkdir("d", 0755));
    snprintf(nested, sizeof nested, "d/%s", n256);
    PT_ERR(t, stat(nested, &s), ENAMETOOLONG);
    /* 255 bytes is NAME_MAX and must work. */
    MAKE_STR(t, n255, "x");
    STAT(t, n255, &s);
    PT_EQ(t, s.st_size, 1);
    LIST_DIR(t, ".", &l);
    PT_EQ(t, list_count(&l, n255), 1);
    free(l.e);
    PT_OK(t, unlink(n255));
    /* A whole path longer than PATH_MAX. */
    deep = PT_ALLOC(t, 5001);
    for (int i = 0; i < 5000; i++) deep[i] = i % 2 ? '/' : 'd';
    PT_ERR(t, stat(deep, &s), ENAMETOOLONG);
    free(deep);
}

/* ------------------------------------------------------------------------ */
/* setattr                                                                   */

static void case_setattr_chmod(struct pt *t)
{
    static const mode_t fmodes[] = {0600, 0640, 0755, 0444, 0000, 0777, 04755, 02755, 0644};
    static const mode_t dmodes[] = {0700, 0555, 01777, 02775, 0755};
    struct stat s;
    int fd;
    MAKE_STR(t, "f", "data");
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, symlink("f", "l"));
    for (size_t i = 0; i < sizeof fmodes / sizeof *fmodes; i++) {
        PT_OK(t, chmod("f", fmodes[i]));
        STAT(t, "f", &s);
        PT_CHECK(t, (s.st_mode & 07777) == fmodes[i], "chmod(\"f\", 0%o): read back 0%o",
                 (unsigned)fmodes[i], (unsigned)(s.st_mode & 07777));
        PT_TRUE(t, S_ISREG(s.st_mode));
    }
    for (size_t i = 0; i < sizeof dmodes / sizeof *dmodes; i++) {
        PT_OK(t, chmod("d", dmodes[i]));
        STAT(t, "d", &s);
        PT_CHECK(t, (s.st_mode & 07777) == dmodes[i], "chmod(\"d\", 0%o): read back 0%o",
                 (unsigned)dmodes[i], (unsigned)(s.st_mode & 07777));
        PT_TRUE(t, S_ISDIR(s.st_mode));
    }
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    PT_OK(t, fchmod(fd, 0604));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_mode & 07777, 0604);
    close(fd);
    /* chmod through a symlink changes the target. */
    PT_OK(t, chmod("l", 0660));
    STAT(t, "f", &s);
    PT_EQ(t, s.st_mode & 07777, 0660);
    EXPECT_STR(t, "f", "data");
}

static void case_setattr_ctime(struct pt *t)
{
    struct stat a, b;
    int fd;
    MAKE_STR(t, "f", "data");
    STAT(t, "f", &a);
    wait_past(a.st_ctim);
    PT_OK(t, chmod("f", 0600));
    STAT(t, "f", &b);
    PT_CHECK(t, ts_cmp(b.st_ctim, a.st_ctim) > 0, "ctime did not move on chmod (%lld.%09ld)",
             (long long)b.st_ctim.tv_sec, b.st_ctim.tv_nsec);
    PT_CHECK(t, ts_cmp(b.st_mtim, a.st_mtim) == 0, "mtime changed on chmod");
    /* A write moves mtime and ctime. */
    a = b;
    wait_past(a.st_ctim);
    fd = (int)PT_OK(t, open("f", O_WRONLY));
    PT_EQ(t, pwrite(fd, "X", 1, 1), 1);
    PT_OK(t, close(fd));
    STAT(t, "f", &b);
    PT_CHECK(t, ts_cmp(b.st_mtim, a.st_mtim) > 0, "mtime did not move on write");
    PT_CHECK(t, ts_cmp(b.st_ctim, a.st_ctim) > 0, "ctime did not move on write");
    /* A truncate that changes the size moves both too. */
    a = b;
    wait_past(a.st_ctim);
    PT_OK(t, truncate("f", 1));
    STAT(t, "f", &b);
    PT_CHECK(t, ts_cmp(b.st_mtim, a.st_mtim) > 0, "mtime did not move on truncate");
    PT_CHECK(t, ts_cmp(b.st_ctim, a.st_ctim) > 0, "ctime did not move on truncate");
    /* ftruncate to 0 of a file whose write is still buffered (Linux moves
     * both times on any truncate; fstests generic/313). */
    fd = (int)PT_OK(t, open("g", O_RDWR | O_CREAT | O_TRUNC, 0644));
    PT_EQ(t, write(fd, "buffered", 8), 8);
    PT_OK(t, fstat(fd, &a));
    wait_past(a.st_mtim);
    PT_OK(t, ftruncate(fd, 0));
    PT_OK(t, fstat(fd, &b));
    PT_CHECK(t, ts_cmp(b.st_mtim, a.st_mtim) > 0, "mtime did not move on ftruncate to 0");
    PT_CHECK(t, ts_cmp(b.st_ctim, a.st_ctim) > 0, "ctime did not move on ftruncate to 0");
    PT_EQ(t, b.st_size, 0);
    PT_OK(t, close(fd));
}

static void case_setattr_chown_root(struct pt *t)
{
    uid_t u = t->have_user ? t->uid : 65534;
    gid_t g = t->have_user ? t->gid : 65534;
    struct stat s;
    int fd;
    MAKE_STR(t, "f", "data");
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, symlink("f", "l"));
    PT_OK(t, chown("f", u, g));
    STAT(t, "f", &s);
    PT_EQ(t, s.st_uid, u);
    PT_EQ(t, s.st_gid, g);
    PT_OK(t, chown("f", (uid_t)-1, 0));
    STAT(t, "f", &s);
    PT_EQ(t, s.st_uid, u);
    PT_EQ(t, s.st_gid, 0);
    PT_OK(t, chown("f", 0, 0));
    STAT(t, "f", &s);
    PT_EQ(t, s.st_uid, 0);
    PT_EQ(t, s.st_gid, 0);
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    PT_OK(t, fchown(fd, u, (gid_t)-1));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_uid, u);
    PT_OK(t, fchown(fd, 0, 0));
    close(fd);
    PT_OK(t, chown("d", u, g));
    STAT(t, "d", &s);
    PT_EQ(t, s.st_uid, u);
    PT_EQ(t, s.st_gid, g);
    PT_OK(t, chown("d", 0, 0));
    /* lchown changes the link, not the target. */
    PT_OK(t, lchown("l", u, g));
    LSTAT(t, "l", &s);
    PT_EQ(t, s.st_uid, u);
    STAT(t, "f", &s);
    PT_EQ(t, s.st_uid, 0);
    EXPECT_STR(t, "f", "data");
}

static void case_setattr_chown_eperm(struct pt *t)
{
    struct stat s;
    int fd;
    MAKE_STR(t, "roots", "r");
    MAKE_STR(t, "mine", "m");
    PT_OK(t, chown("mine", t->uid, t->gid));
    become_user(t);
    PT_ERR(t, chown("roots", t->uid, t->gid), EPERM);
    PT_ERR(t, chown("mine", 0, (gid_t)-1), EPERM);
    if (t->gid != 0) PT_ERR(t, chown("mine", (uid_t)-1, 0), EPERM);
    fd = (int)PT_OK(t, open("roots", O_RDONLY));
    PT_ERR(t, fchown(fd, t->uid, (gid_t)-1), EPERM);
    close(fd);
    /* Changing to what it already is, as the owner, is allowed. */
    PT_OK(t, chown("mine", t->uid, t->gid));
    STAT(t, "roots", &s);
    PT_EQ(t, s.st_uid, 0);
    STAT(t, "mine", &s);
    PT_EQ(t, s.st_uid, t->uid);
}

static void case_setattr_truncate(struct pt *t)
{
    uint8_t data[1000];
    struct stat s;
    int fd;
    pat_fill(data, sizeof data, 0, 1);
    MAKE_FILE(t, "f", data, sizeof data);
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, truncate("f", 5000));
    STAT(t, "f", &s);
    PT_EQ(t, s.st_size, 5000);
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    EXPECT_AT(t, fd, 0, data, 1000);
    EXPECT_ZEROS(t, fd, 1000, 4000);
    close(fd);
    PT_OK(t, truncate("f", 300));
    EXPECT_FILE(t, "f", data, 300);
    /* Growing again must not bring the old bytes back. */
    PT_OK(t, truncate("f", 1000));
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    EXPECT_AT(t, fd, 0, data, 300);
    EXPECT_ZEROS(t, fd, 300, 700);
    close(fd);
    PT_OK(t, truncate("f", 0));
    EXPECT_FILE(t, "f", "", 0);
    PT_ERR(t, truncate("f", -1), EINVAL);
    PT_ERR(t, truncate("missing", 0), ENOENT);
    PT_ERR(t, truncate("d", 0), EISDIR);
}

static void case_setattr_ftruncate(struct pt *t)
{
    uint8_t data[10000];
    struct stat s;
    int fd, ro;
    pat_fill(data, sizeof data, 0, 2);
    fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT, 0644));
    PT_EQ(t, write(fd, data, sizeof data), sizeof data);
    PT_OK(t, ftruncate(fd, 20000));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 20000);
    EXPECT_AT(t, fd, 0, data, 10000);
    EXPECT_ZEROS(t, fd, 10000, 10000);
    PT_OK(t, ftruncate(fd, 4097));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 4097);
    EXPECT_AT(t, fd, 0, data, 4097);
    PT_OK(t, ftruncate(fd, 8192));
    EXPECT_ZEROS(t, fd, 4097, 8192 - 4097);
    /* The file offset (10000) is untouched: the next write leaves a hole. */
    PT_OK(t, ftruncate(fd, 4097));
    PT_EQ(t, write(fd, "X", 1), 1);
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 10001);
    EXPECT_ZEROS(t, fd, 4097, 10000 - 4097);
    EXPECT_AT(t, fd, 10000, "X", 1);
    PT_ERR(t, ftruncate(fd, -1), EINVAL);
    close(fd);
    ro = (int)PT_OK(t, open("f", O_RDONLY));
    PT_ERR2(t, ftruncate(ro, 0), EINVAL, EBADF);
    close(ro);
    STAT(t, "f", &s);
    PT_EQ(t, s.st_size, 10001);
}

static void case_setattr_utimensat(struct pt *t)
{
    const struct timespec at = {1500000000, 123456789}, mt = {1600000000, 987654321};
    struct timespec ts[2], lo, hi;
    struct stat s, s2;
    int fd;
    MAKE_STR(t, "f", "data");
    ts[0] = at;
    ts[1] = mt;
    PT_OK(t, utimensat(AT_FDCWD, "f", ts, 0));
    STAT(t, "f", &s);
    TIME_IS(t, s.st_atim, at, "atime after explicit set");
    TIME_IS(t, s.st_mtim, mt, "mtime after explicit set");

    /* UTIME_NOW for atime, UTIME_OMIT for mtime. */
    ts[0].tv_nsec = UTIME_NOW;
    ts[1].tv_nsec = UTIME_OMIT;
    lo = now_real();
    PT_OK(t, utimensat(AT_FDCWD, "f", ts, 0));
    hi = now_real();
    STAT(t, "f", &s);
    TIME_NEAR(t, s.st_atim, lo, hi, "atime after UTIME_NOW");
    TIME_IS(t, s.st_mtim, mt, "mtime after UTIME_OMIT");

    /* And the other way round. */
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_NOW;
    lo = now_real();
    PT_OK(t, utimensat(AT_FDCWD, "f", ts, 0));
    hi = now_real();
    STAT(t, "f", &s2);
    PT_CHECK(t, ts_cmp(s2.st_atim, s.st_atim) == 0, "atime changed under UTIME_OMIT");
    TIME_NEAR(t, s2.st_mtim, lo, hi, "mtime after UTIME_NOW");

    /* Both omitted: nothing changes. */
    ts[0] = at;
    ts[1] = mt;
    PT_OK(t, utimensat(AT_FDCWD, "f", ts, 0));
    ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
    PT_OK(t, utimensat(AT_FDCWD, "f", ts, 0));
    STAT(t, "f", &s);
    TIME_IS(t, s.st_atim, at, "atime after both UTIME_OMIT");
    TIME_IS(t, s.st_mtim, mt, "mtime after both UTIME_OMIT");

    /* NULL: both become now. */
    lo = now_real();
    PT_OK(t, utimensat(AT_FDCWD, "f", NULL, 0));
    hi = now_real();
    STAT(t, "f", &s);
    TIME_NEAR(t, s.st_atim, lo, hi, "atime after utimensat(NULL)");
    TIME_NEAR(t, s.st_mtim, lo, hi, "mtime after utimensat(NULL)");

    /* futimens on a descriptor. */
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    ts[0] = mt;
    ts[1] = at;
    PT_OK(t, futimens(fd, ts));
    PT_OK(t, fstat(fd, &s));
    TIME_IS(t, s.st_atim, mt, "atime after futimens");
    TIME_IS(t, s.st_mtim, at, "mtime after futimens");
    close(fd);
    EXPECT_STR(t, "f", "data");
}

/* ------------------------------------------------------------------------ */
/* create / open                                                             */

static void case_open_excl(struct pt *t)
{
    struct stat s;
    int fd;
    MAKE_STR(t, "f", "keep");
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, symlink("missing", "dangling"));
    PT_ERR(t, open("f", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
    PT_ERR(t, open("f", O_CREAT | O_EXCL | O_RDWR | O_TRUNC, 0644), EEXIST);
    PT_ERR(t, open("d", O_CREAT | O_EXCL | O_RDONLY, 0644), EEXIST);
    PT_ERR(t, open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
    EXPECT_STR(t, "f", "keep");
    fd = (int)PT_OK(t, open("new", O_CREAT | O_EXCL | O_WRONLY, 0640));
    PT_OK(t, fstat(fd, &s));
    PT_TRUE(t, S_ISREG(s.st_mode));
    PT_EQ(t, s.st_mode & 07777, 0640);
    PT_EQ(t, s.st_size, 0);
    close(fd);
    PT_ERR(t, open("new", O_CREAT | O_EXCL | O_WRONLY, 0640), EEXIST);
}

static void case_open_trunc(struct pt *t)
{
    char buf[1000];
    struct stat s;
    int fd;
    memset(buf, 'q', sizeof buf);
    MAKE_FILE(t, "f", buf, sizeof buf);
    fd = (int)PT_OK(t, open("f", O_WRONLY | O_TRUNC));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 0);
    STAT(t, "f", &s);
    PT_EQ(t, s.st_size, 0);
    PT_EQ(t, write(fd, "ab", 2), 2);
    close(fd);
    EXPECT_STR(t, "f", "ab");
    fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT | O_TRUNC, 0644));
    close(fd);
    EXPECT_STR(t, "f", "");
}

static void case_open_append(struct pt *t)
{
    int a, b, w;
    MAKE_STR(t, "f", "hello");
    a = (int)PT_OK(t, open("f", O_WRONLY | O_APPEND));
    PT_EQ(t, lseek(a, 0, SEEK_SET), 0);
    PT_EQ(t, write(a, "world", 5), 5);
    EXPECT_STR(t, "f", "helloworld");
    PT_EQ(t, lseek(a, 0, SEEK_CUR), 10);
    /* Two appenders and a plain writer that extends the file in between. */
    b = (int)PT_OK(t, open("f", O_RDWR | O_APPEND));
    w = (int)PT_OK(t, open("f", O_WRONLY));
    PT_EQ(t, write(b, "B", 1), 1);
    PT_EQ(t, lseek(a, 2, SEEK_SET), 2);
    PT_EQ(t, write(a, "A", 1), 1);
    PT_EQ(t, pwrite(w, "--", 2, 12), 2);
    PT_EQ(t, write(b, "C", 1), 1);
    EXPECT_STR(t, "f", "helloworldBA--C");
    close(a);
    close(b);
    close(w);
}

static void case_open_dir_write_eisdir(struct pt *t)
{
    char c;
    int fd;
    PT_OK(t, mkdir("d", 0755));
    PT_ERR(t, open("d", O_WRONLY), EISDIR);
    PT_ERR(t, open("d", O_RDWR), EISDIR);
    PT_ERR(t, open("d", O_WRONLY | O_CREAT, 0644), EISDIR);
    PT_ERR(t, open("d", O_RDWR | O_TRUNC), EISDIR);
    fd = (int)PT_OK(t, open("d", O_RDONLY));
    PT_ERR(t, read(fd, &c, 1), EISDIR);
    close(fd);
}

static void case_open_missing_enoent(struct pt *t)
{
    PT_ERR(t, open("missing", O_RDONLY), ENOENT);
    PT_ERR(t, open("missing", O_WRONLY), ENOENT);
    PT_ERR(t, open("missing", O_RDWR | O_TRUNC), ENOENT);
    PT_ERR(t, open("nodir/f", O_WRONLY | O_CREAT, 0644), ENOENT);
    PT_ERR(t, open("missing", O_RDONLY | O_DIRECTORY), ENOENT);
}

static void case_open_directory_enotdir(struct pt *t)
{
    int fd;
    MAKE_STR(t, "f", "x");
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, symlink("d", "ld"));
    PT_OK(t, symlink("f", "lf"));
    PT_ERR(t, open("f", O_RDONLY | O_DIRECTORY), ENOTDIR);
    PT_ERR(t, open("lf", O_RDONLY | O_DIRECTORY), ENOTDIR);
    errno = 0;
    PT_CHECK(t, opendir("f") == NULL && errno == ENOTDIR,
             "opendir(\"f\"): expected ENOTDIR, got %s", errno ? errname(errno) : "success");
    fd = (int)PT_OK(t, open("d", O_RDONLY | O_DIRECTORY));
    close(fd);
    fd = (int)PT_OK(t, open("ld", O_RDONLY | O_DIRECTORY));
    close(fd);
}

/* ------------------------------------------------------------------------ */
/* read / write                                                              */

#define RW_SPAN (1 << 20)
#define RW_MAXLEN 65536

static void case_rw_random_offsets(struct pt *t)
{
    uint8_t *model = PT_ALLOC(t, RW_SPAN + RW_MAXLEN), *buf = PT_ALLOC(t, RW_MAXLEN + 200);
    uint64_t seed = 0x5eed1234abcdull;
    size_t size = 0;
    struct stat s;
    int fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT | O_TRUNC, 0644));
    for (unsigned i = 0; i < 300; i++) {
        size_t off = rng_next(&seed) % RW_SPAN;
        size_t len = i % 3 ? 1 + rng_next(&seed) % RW_MAXLEN : 1 + rng_next(&seed) % 64;
        pat_fill(buf, len, off, i);
        PWRITE_ALL(t, fd, buf, len, (off_t)off);
        memcpy(model + off, buf, len);
        if (off + len > size) size = off + len;
        if (i % 10 == 0) {
            /* A random range, possibly past EOF: short exactly at EOF. */
            size_t ro = rng_next(&seed) % (size + 100), rl = 1 + rng_next(&seed) % RW_MAXLEN;
            size_t want = ro >= size ? 0 : (ro + rl > size ? size - ro : rl);
            size_t got = PREAD_FULL(t, fd, buf, rl, (off_t)ro);
            PT_CHECK(t, got == want, "pread(%zu at %zu) with size %zu: expected %zu bytes, got %zu",
                     rl, ro, size, want, got);
            pt_mem_eq(t, buf, model + ro, got, (long long)ro, "random read", __FILE__, __LINE__);
        }
    }
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, size);
    EXPECT_AT(t, fd, 0, model, size);
    close(fd);
    pt_note(t, "300 writes, final size %zu", size);
    EXPECT_FILE(t, "f", model, size); /* through a fresh descriptor */
    free(model);
    free(buf);
}

static void case_rw_holes(struct pt *t)
{
    struct stat s;
    char c;
    int fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT | O_TRUNC, 0644));
    PT_EQ(t, pwrite(fd, "head", 4, 0), 4);
    PT_EQ(t, pwrite(fd, "tail", 4, 100000), 4);
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 100004);
    EXPECT_AT(t, fd, 0, "head", 4);
    EXPECT_ZEROS(t, fd, 4, 100000 - 4);
    EXPECT_AT(t, fd, 100000, "tail", 4);
    /* lseek past EOF, then write. */
    PT_EQ(t, lseek(fd, 200000, SEEK_SET), 200000);
    PT_EQ(t, write(fd, "x", 1), 1);
    PT_EQ(t, lseek(fd, 0, SEEK_END), 200001);
    EXPECT_ZEROS(t, fd, 100004, 200000 - 100004);
    PT_EQ(t, pread(fd, &c, 1, 200001), 0);
    /* A small hole inside one block. */
    PT_EQ(t, pwrite(fd, "a", 1, 300000), 1);
    PT_EQ(t, pwrite(fd, "b", 1, 300010), 1);
    EXPECT_AT(t, fd, 300000, "a\0\0\0\0\0\0\0\0\0b", 11);
    close(fd);
    STAT(t, "f", &s);
    PT_EQ(t, s.st_size, 300011);
}

static void case_rw_sparse_10g(struct pt *t)
{
    const off_t big = 10 * GIB;
    struct stat s;
    char c;
    int fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT | O_TRUNC, 0644));
    PT_EQ(t, pwrite(fd, "Z", 1, big), 1);
    PT_OK(t, fsync(fd));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, big + 1);
    PT_CHECK(t, s.st_blocks < 2048,
             "st_blocks of a 10 GiB sparse file: expected < 2048 (1 MiB), got %lld",
             (long long)s.st_blocks);
    pt_note(t, "st_blocks %lld", (long long)s.st_blocks);
    EXPECT_ZEROS(t, fd, 0, 64 * KIB);
    EXPECT_ZEROS(t, fd, 5 * GIB - 100, 64 * KIB);
    EXPECT_ZEROS(t, fd, big - 64 * KIB, 64 * KIB);
    EXPECT_AT(t, fd, big, "Z", 1);
    PT_EQ(t, pread(fd, &c, 1, big + 1), 0);
    close(fd);
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, big + 1);
    EXPECT_AT(t, fd, big - 3, "\0\0\0Z", 4);
    close(fd);
}

static void case_rw_4g_boundary(struct pt *t)
{
    const off_t g4 = 4 * GIB, g2 = 2 * GIB, start = 4 * GIB - 512 * KIB;
    const size_t len = (size_t)MIB;
    uint8_t *buf = PT_ALLOC(t, len), small[6];
    struct stat s;
    int fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT | O_TRUNC, 0644));
    pat_fill(buf, len, (uint64_t)start, 7);
    PWRITE_ALL(t, fd, buf, len, start);
    pat_fill(buf, 64 * KIB, (uint64_t)(g2 - 32 * KIB), 8);
    PWRITE_ALL(t, fd, buf, 64 * KIB, g2 - 32 * KIB);
    PT_OK(t, fsync(fd));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, g4 + 512 * KIB);
    EXPECT_PATTERN(t, fd, start, len, 7);
    EXPECT_PATTERN(t, fd, g2 - 32 * KIB, 64 * KIB, 8);
    EXPECT_ZEROS(t, fd, GIB, 64 * KIB);
    EXPECT_ZEROS(t, fd, g2 + 32 * KIB, 64 * KIB);
    /* Single bytes either side of 2^32, then an unaligned read across it. */
    PT_EQ(t, pwrite(fd, "L", 1, g4 - 1), 1);
    PT_EQ(t, pwrite(fd, "H", 1, g4), 1);
    pat_fill(small, 6, (uint64_t)(g4 - 3), 7);
    small[2] = 'L';
    small[3] = 'H';
    EXPECT_AT(t, fd, g4 - 3, small, 6);
    close(fd);
    /* A fresh descriptor sees the same. */
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    EXPECT_PATTERN(t, fd, start, 512 * KIB - 1, 7);
    EXPECT_PATTERN(t, fd, g4 + 1, 512 * KIB - 1, 7);
    EXPECT_AT(t, fd, g4 - 1, "LH", 2);
    close(fd);
    free(buf);
}

static void case_sync_calls(struct pt *t)
{
    int fd, fd2, dfd;
    PT_OK(t, mkdir("d", 0755));
    fd = (int)PT_OK(t, open("d/f", O_RDWR | O_CREAT, 0644));
    PT_EQ(t, write(fd, "data", 4), 4);
    PT_EQ(t, fsync(fd), 0);
    PT_EQ(t, pwrite(fd, "more", 4, 4), 4);
    PT_EQ(t, fdatasync(fd), 0);
    fd2 = (int)PT_OK(t, dup(fd));
    PT_EQ(t, close(fd2), 0); /* flush of a shared description */
    PT_EQ(t, close(fd), 0);  /* flush of the last one */
    dfd = (int)PT_OK(t, open("d", O_RDONLY | O_DIRECTORY));
    PT_EQ(t, fsync(dfd), 0); /* fsyncdir */
    PT_EQ(t, fdatasync(dfd), 0);
    PT_EQ(t, close(dfd), 0);
    dfd = (int)PT_OK(t, open(".", O_RDONLY | O_DIRECTORY));
    PT_EQ(t, fsync(dfd), 0);
    PT_EQ(t, close(dfd), 0);
    EXPECT_STR(t, "d/f", "datamore");
}

/* ------------------------------------------------------------------------ */
/* readdir                                                                   */

static unsigned char mode_dtype(mode_t m)
{
    if (S_ISREG(m)) return DT_REG;
    if (S_ISDIR(m)) return DT_DIR;
    if (S_ISLNK(m)) return DT_LNK;
    if (S_ISFIFO(m)) return DT_FIFO;
    if (S_ISSOCK(m)) return DT_SOCK;
    if (S_ISCHR(m)) return DT_CHR;
    if (S_ISBLK(m)) return DT_BLK;
    return DT_UNKNOWN;
}

static void case_readdir_basic(struct pt *t)
{
    struct pt_list l = {0};
    struct stat s, dot;
    char name[64];
    size_t want = 2;
    for (int i = 0; i < 40; i++, want++) {
        snprintf(name, sizeof name, "file.%02d", i);
        MAKE_STR(t, name, "x");
    }
    for (int i = 0; i < 5; i++, want++) {
        snprintf(name, sizeof name, "dir.%d", i);
        PT_OK(t, mkdir(name, 0755));
    }
    for (int i = 0; i < 3; i++, want++) {
        snprintf(name, sizeof name, "link.%d", i);
        PT_OK(t, symlink(i ? "file.00" : "missing", name));
    }
    PT_OK(t, mkfifo("fifo", 0644));
    want++;
    MAKE_STR(t, "dir.1/inner", "x");

    LIST_DIR(t, ".", &l);
    PT_EQ(t, l.n, want);
    STAT(t, ".", &dot);
    for (size_t i = 0; i < l.n; i++) {
        const struct pt_dirent *e = &l.e[i];
        PT_CHECK(t, list_count(&l, e->name) == 1, "\"%s\" listed %zu times", e->name,
                 list_count(&l, e->name));
        PT_CHECK(t, e->type != DT_UNKNOWN, "\"%s\": d_type is DT_UNKNOWN", e->name);
        if (!strcmp(e->name, "..")) {
            PT_EQ(t, e->type, DT_DIR);
            continue;
        }
        LSTAT(t, e->name, &s);
        PT_CHECK(t, e->type == mode_dtype(s.st_mode), "\"%s\": d_type %u, but lstat says %u",
                 e->name, e->type, mode_dtype(s.st_mode));
        PT_CHECK(t, e->ino == s.st_ino, "\"%s\": d_ino %llu, but st_ino %llu", e->name,
                 (unsigned long long)e->ino, (unsigned long long)s.st_ino);
    }
    PT_EQ(t, list_count(&l, "."), 1);
    PT_EQ(t, list_count(&l, ".."), 1);
    PT_EQ(t, list_count(&l, "file.00"), 1);
    PT_EQ(t, list_count(&l, "dir.4"), 1);
    PT_EQ(t, list_count(&l, "fifo"), 1);
    free(l.e);
    EXPECT_NAMES(t, "dir.1", "inner");
    {
        DIR *d = opendir("dir.0");
        size_t n = 0;
        PT_TRUE(t, d != NULL);
        while (readdir(d)) n++;
        PT_EQ(t, n, 2);
        rewinddir(d);
        n = 0;
        while (readdir(d)) n++;
        PT_EQ(t, n, 2); /* rewinddir lists again */
        closedir(d);
    }
}

struct names {
    char **v;
    size_t n, cap;
};

static void names_add(struct pt *t, struct names *nm, const char *s)
{
    if (nm->n == nm->cap) {
        nm->cap = nm->cap ? 2 * nm->cap : 4096;
        nm->v = realloc(nm->v, nm->cap * sizeof *nm->v);
        PT_TRUE(t, nm->v != NULL);
    }
    nm->v[nm->n] = strdup(s);
    PT_TRUE(t, nm->v[nm->n] != NULL);
    nm->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define RC_KEEP 2000

/* Every keep.* name exactly once, no name twice, nothing foreign. */
static void names_verify(struct pt *t, struct names *nm, const char *mode, int round)
{
    size_t keep = 0;
    qsort(nm->v, nm->n, sizeof *nm->v, cmp_str);
    for (size_t i = 0; i < nm->n; i++) {
        const char *s = nm->v[i];
        bool known = !strncmp(s, "keep.", 5) || !strncmp(s, "churn.", 6) || !strcmp(s, ".") ||
                     !strcmp(s, "..");
        PT_CHECK(t, i == 0 || strcmp(nm->v[i - 1], s) != 0,
                 "%s listing, round %d: \"%s\" returned twice", mode, round, s);
        PT_CHECK(t, known, "%s listing, round %d: unexpected entry \"%s\"", mode, round, s);
        keep += !strncmp(s, "keep.", 5);
    }
    for (size_t i = 0; i < nm->n; i++) free(nm->v[i]);
    PT_CHECK(t, keep == RC_KEEP, "%s listing, round %d: %zu of the %d stable entries returned",
             mode, round, keep, RC_KEEP);
    nm->n = 0;
}

struct lx_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* getdents64 with a 512-byte buffer; with reopen, every batch resumes on a
 * new descriptor from the last entry's d_off (a cookie that must stay valid). */
static void list_getdents(struct pt *t, struct names *nm, bool reopen)
{
    union {
        char b[512];
        uint64_t align;
    } buf;
    int fd = (int)PT_OK(t, open(".", O_RDONLY | O_DIRECTORY));
    for (;;) {
        long n = (long)PT_OK(t, syscall(SYS_getdents64, fd, buf.b, sizeof buf.b));
        int64_t last = 0;
        if (n == 0) break;
        for (long off = 0; off < n;) {
            const struct lx_dirent64 *d = (const void *)(buf.b + off);
            names_add(t, nm, d->d_name);
            last = d->d_off;
            off += d->d_reclen;
        }
        if (reopen) {
            close(fd);
            fd = (int)PT_OK(t, open(".", O_RDONLY | O_DIRECTORY));
            PT_EQ(t, lseek(fd, (off_t)last, SEEK_SET), last);
        }
    }
    close(fd);
}

/* readdir with a telldir/seekdir resume every 5 entries (glibc then
 * refills from the filesystem at the saved cookie). */
static void list_seekdir(struct pt *t, struct names *nm)
{
    DIR *d = opendir(".");
    struct dirent *e;
    unsigned k = 0;
    PT_TRUE(t, d != NULL);
    for (;;) {
        errno = 0;
        if (!(e = readdir(d))) break;
        names_add(t, nm, e->d_name);
        if (++k % 5 == 0) {
            long pos = telldir(d);
            PT_TRUE(t, pos >= 0);
            seekdir(d, pos);
        }
    }
    PT_EQ(t, errno, 0);
    closedir(d);
}

struct churn {
    struct pt *t;
    int stop;
    long ops;
};

static void *churn_main(void *arg)
{
    struct churn *c = arg;
    char name[64];
    long i;
    for (i = 0; !__atomic_load_n(&c->stop, __ATOMIC_SEQ_CST); i++) {
        int fd;
        snprintf(name, sizeof name, "churn.%ld", i);
        fd = (int)PT_OK(c->t, open(name, O_WRONLY | O_CREAT | O_EXCL, 0644));
        close(fd);
        if (i >= 16) {
            snprintf(name, sizeof name, "churn.%ld", i - 16);
            PT_OK(c->t, unlink(name));
        }
        __atomic_store_n(&c->ops, i + 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void case_readdir_concurrent(struct pt *t)
{
    static const char *const modes[] = {"getdents64", "getdents64+reopen+lseek", "telldir/seekdir"};
    struct churn c = {.t = t};
    struct names nm = {0};
    struct timespec t0;
    pthread_t th;
    char name[64];
    int rc, round;
    for (int i = 0; i < RC_KEEP; i++) {
        int fd;
        snprintf(name, sizeof name, "keep.%04d", i);
        fd = (int)PT_OK(t, open(name, O_WRONLY | O_CREAT | O_EXCL, 0644));
        close(fd);
    }
    rc = pthread_create(&th, NULL, churn_main, &c);
    PT_CHECK(t, rc == 0, "pthread_create: %s", strerror(rc));
    t0 = now_mono();
    while (__atomic_load_n(&c.ops, __ATOMIC_SEQ_CST) < 20) sleep_ms(1);
    /* At least 3 rounds of every mode, and until the churn has done 1,000
     * creates (bounded by 15 s on a slow filesystem). */
    for (round = 0; round < 3 || (__atomic_load_n(&c.ops, __ATOMIC_SEQ_CST) < 1000 &&
                                  ts_sub(now_mono(), t0) < 15);
         round++) {
        for (int m = 0; m < 3; m++) {
            if (m == 2)
                list_seekdir(t, &nm);
            else
                list_getdents(t, &nm, m == 1);
            names_verify(t, &nm, modes[m], round);
        }
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    pt_note(t, "%ld creates and unlinks ran during %d listings", c.ops, 3 * round);
    free(nm.v);
}

/* Renaming each entry as it is read, within the same directory: the
 * listing ends (a renamed entry may be seen again under its new name, as
 * POSIX allows, but not for ever; fstests generic/736). */
static void case_readdir_rename_each(struct pt *t)
{
    enum { N = 300 };
    DIR *dir;
    struct dirent *de;
    char name[64], to[80];
    long seen = 0, renamed = 0;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "f%04d", i);
        close((int)PT_OK(t, open(name, O_WRONLY | O_CREAT | O_EXCL, 0644)));
    }
    dir = opendir(".");
    PT_CHECK(t, dir != NULL, "opendir: %s", strerror(errno));
    if (!dir) return;
    while ((de = readdir(dir)) && seen < 10 * N) {
        if (de->d_name[0] == '.') continue;
        seen++;
        snprintf(to, sizeof to, "r%ld-%.40s", renamed++, de->d_name);
        PT_OK(t, rename(de->d_name, to));
    }
    closedir(dir);
    PT_CHECK(t, seen >= N && seen < 3 * N, "%ld entries read while renaming %d (want %d to %d)", seen,
             N, N, 3 * N - 1);
}

static void case_readdir_seekdir(struct pt *t)
{
    enum { N = 150 };
    static long pos[N + 3];
    static char names[N + 3][256];
    uint64_t seed = 42;
    struct dirent *e;
    size_t n = 0;
    DIR *d;
    for (int i = 0; i < N; i++) {
        snprintf(names[0], sizeof names[0], "entry.%03d", i);
        MAKE_STR(t, names[0], "x");
    }
    d = opendir(".");
    PT_TRUE(t, d != NULL);
    for (;;) {
        long p = telldir(d);
        if (!(e = readdir(d))) break;
        PT_TRUE(t, n < N + 2);
        pos[n] = p;
        snprintf(names[n], sizeof names[n], "%s", e->d_name);
        n++;
    }
    PT_EQ(t, n, N + 2);
    /* Jump around: each saved position yields the entry read from it. */
    for (int k = 0; k < 60; k++) {
        size_t i = k < 3 ? (size_t)k * (n - 1) / 2 : rng_next(&seed) % n;
        seekdir(d, pos[i]);
        for (size_t j = i; j < i + 3 && j < n; j++) {
            e = readdir(d);
            PT_CHECK(t, e != NULL, "seekdir to entry %zu: readdir returned NULL at entry %zu", i,
                     j);
            PT_CHECK(t, !strcmp(e->d_name, names[j]),
                     "seekdir to entry %zu: expected \"%s\" at entry %zu, got \"%s\"", i, names[j],
                     j, e->d_name);
        }
    }
    /* The position after the last entry is the end. */
    seekdir(d, pos[n - 1]);
    PT_TRUE(t, readdir(d) != NULL);
    PT_TRUE(t, readdir(d) == NULL);
    rewinddir(d);
    e = readdir(d);
    PT_TRUE(t, e && !strcmp(e->d_name, names[0]));
    closedir(d);
}

/* ------------------------------------------------------------------------ */
/* unlink of an open file                                                    */

static void case_unlink_open_file(struct pt *t)
{
    struct stat s;
    int fd, ro, nfd;
    fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT, 0644));
    PT_EQ(t, write(fd, "data", 4), 4);
    ro = (int)PT_OK(t, open("f", O_RDONLY));
    PT_OK(t, unlink("f"));
    PT_ERR(t, stat("f", &s), ENOENT);
    PT_ERR(t, open("f", O_RDONLY), ENOENT);
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_nlink, 0);
    PT_EQ(t, s.st_size, 4);
    EXPECT_AT(t, fd, 0, "data", 4);
    /* Still writable, and the other descriptor sees it. */
    PT_EQ(t, pwrite(fd, "more", 4, 4), 4);
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 8);
    EXPECT_AT(t, ro, 0, "datamore", 8);
    PT_OK(t, ftruncate(fd, 6));
    PT_OK(t, fstat(ro, &s));
    PT_EQ(t, s.st_size, 6);
    PT_EQ(t, s.st_nlink, 0);
    PT_OK(t, fsync(fd));
    EXPECT_NAMES(t, ".", NULL);
    /* A new file under the same name is a different file. */
    nfd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT | O_EXCL, 0644));
    PT_EQ(t, write(nfd, "new", 3), 3);
    close(nfd);
    EXPECT_STR(t, "f", "new");
    EXPECT_AT(t, ro, 0, "datamo", 6);
    PT_OK(t, close(fd));
    EXPECT_AT(t, ro, 0, "datamo", 6);
    PT_OK(t, close(ro));
    EXPECT_NAMES(t, ".", "f");
}

/* ------------------------------------------------------------------------ */
/* rename                                                                    */

struct reopen_reader {
    struct pt *t;
    int stop;
    long opens;
};

/* Opens "target" in a loop: it must always exist and hold one whole version
 * (4096 bytes of a single value). */
static void *reopen_main(void *arg)
{
    struct reopen_reader *r = arg;
    uint8_t buf[4097];
    while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
        int fd = open("target", O_RDONLY);
        int e = errno;
        size_t n;
        if (fd < 0)
            pt_fail(
                r->t, __FILE__, __LINE__,
                "open(\"target\") during renames, after %ld good opens: expected success, got %s",
                r->opens, errname(e));
        n = PREAD_FULL(r->t, fd, buf, sizeof buf, 0);
        PT_CHECK(r->t, n == 4096, "reader: a version of %zu bytes, expected 4096", n);
        for (size_t i = 1; i < n; i++)
            PT_CHECK(r->t, buf[i] == buf[0],
                     "reader: mixed versions at byte %zu (0x%02x vs 0x%02x)", i, buf[i], buf[0]);
        close(fd);
        __atomic_add_fetch(&r->opens, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void case_rename_replace_atomic(struct pt *t)
{
    struct reopen_reader r = {.t = t};
    struct timespec t0 = now_mono();
    uint8_t buf[4096];
    char tmp[64];
    pthread_t th;
    int rc, old, i;
    memset(buf, 0xAA, sizeof buf);
    MAKE_FILE(t, "target", buf, sizeof buf);
    old = (int)PT_OK(t, open("target", O_RDONLY));
    rc = pthread_create(&th, NULL, reopen_main, &r);
    PT_CHECK(t, rc == 0, "pthread_create: %s", strerror(rc));
    for (i = 0;; i++) {
        long opens = __atomic_load_n(&r.opens, __ATOMIC_SEQ_CST);
        if (i >= 300 && opens >= 300) break;
        if (ts_sub(now_mono(), t0) > 20 && opens > 0) break;
        snprintf(tmp, sizeof tmp, "tmp.%d", i);
        memset(buf, i & 0x7f, sizeof buf);
        MAKE_FILE(t, tmp, buf, sizeof buf);
        PT_OK(t, rename(tmp, "target"));
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    pt_note(t, "%d renames, %ld opens by the reader", i, r.opens);
    PT_CHECK(t, r.opens > 0, "the reader never opened the target");
    /* The descriptor opened before the first rename still reads the original. */
    memset(buf, 0xAA, sizeof buf);
    EXPECT_AT(t, old, 0, buf, sizeof buf);
    close(old);
    memset(buf, (i - 1) & 0x7f, sizeof buf);
    EXPECT_FILE(t, "target", buf, sizeof buf);
    EXPECT_NAMES(t, ".", "target");
}

static void case_rename_dir_with_entries(struct pt *t)
{
    struct stat a, b, p;
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, mkdir("d/sub", 0755));
    MAKE_STR(t, "d/a", "file a");
    MAKE_STR(t, "d/sub/b", "file b");
    STAT(t, "d", &a);
    PT_OK(t, rename("d", "e"));
    PT_ERR(t, stat("d", &b), ENOENT);
    PT_ERR(t, stat("d/a", &b), ENOENT);
    STAT(t, "e", &b);
    PT_EQ(t, b.st_ino, a.st_ino);
    EXPECT_STR(t, "e/a", "file a");
    EXPECT_STR(t, "e/sub/b", "file b");
    EXPECT_NAMES(t, "e", "a", "sub");
    /* Into another parent: ".." follows. */
    PT_OK(t, mkdir("p", 0755));
    PT_OK(t, rename("e", "p/e2"));
    STAT(t, "p", &p);
    STAT(t, "p/e2/..", &b);
    PT_EQ(t, b.st_ino, p.st_ino);
    EXPECT_STR(t, "p/e2/sub/b", "file b");
    PT_OK(t, rename("p/e2/sub/b", "moved"));
    EXPECT_STR(t, "moved", "file b");
    EXPECT_NAMES(t, "p/e2/sub", NULL);
    EXPECT_NAMES(t, ".", "p", "moved");
}

static void case_rename_dir_notempty(struct pt *t)
{
    PT_OK(t, mkdir("a", 0755));
    MAKE_STR(t, "a/keep", "a");
    PT_OK(t, mkdir("b", 0755));
    MAKE_STR(t, "b/x", "b");
    PT_ERR2(t, rename("a", "b"), ENOTEMPTY, EEXIST);
    PT_ERR2(t, renameat2_("a", "b", 0), ENOTEMPTY, EEXIST);
    EXPECT_STR(t, "a/keep", "a");
    EXPECT_STR(t, "b/x", "b");
    /* Onto an empty directory it replaces it; a descriptor open on the
     * replaced one sees it gone (nlink 0; fstests generic/035). */
    PT_OK(t, mkdir("c", 0755));
    {
        struct stat s;
        int fd = (int)PT_OK(t, open("c", O_RDONLY | O_DIRECTORY));
        PT_OK(t, rename("a", "c"));
        PT_OK(t, fstat(fd, &s));
        PT_EQ(t, s.st_nlink, 0);
        PT_OK(t, close(fd));
    }
    EXPECT_STR(t, "c/keep", "a");
    EXPECT_NAMES(t, ".", "b", "c");
}

static void case_rename_dir_onto_file(struct pt *t)
{
    PT_OK(t, mkdir("d", 0755));
    MAKE_STR(t, "f", "f");
    PT_ERR(t, rename("d", "f"), ENOTDIR);
    EXPECT_STR(t, "f", "f");
    EXPECT_NAMES(t, ".", "d", "f");
}

static void case_rename_file_onto_dir(struct pt *t)
{
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, mkdir("full", 0755));
    MAKE_STR(t, "full/x", "x");
    MAKE_STR(t, "f", "f");
    PT_ERR(t, rename("f", "d"), EISDIR);
    PT_ERR(t, rename("f", "full"), EISDIR);
    EXPECT_STR(t, "f", "f");
    EXPECT_NAMES(t, ".", "d", "f", "full");
}

static void case_rename_noreplace(struct pt *t)
{
    MAKE_STR(t, "a", "a");
    MAKE_STR(t, "b", "b");
    PT_OK(t, mkdir("d", 0755));
    PT_ERR(t, renameat2_("a", "b", RENAME_NOREPLACE), EEXIST);
    PT_ERR(t, renameat2_("a", "d", RENAME_NOREPLACE), EEXIST);
    PT_ERR(t, renameat2_("d", "b", RENAME_NOREPLACE), EEXIST);
    EXPECT_STR(t, "a", "a");
    EXPECT_STR(t, "b", "b");
    PT_OK(t, renameat2_("a", "c", RENAME_NOREPLACE));
    EXPECT_STR(t, "c", "a");
    PT_OK(t, renameat2_("d", "d2", RENAME_NOREPLACE));
    EXPECT_NAMES(t, ".", "b", "c", "d2");
}

static void case_rename_exchange(struct pt *t)
{
    struct stat a, b, s;
    MAKE_STR(t, "a", "AAA");
    MAKE_STR(t, "b", "BBBB");
    STAT(t, "a", &a);
    STAT(t, "b", &b);
    PT_OK(t, renameat2_("a", "b", RENAME_EXCHANGE));
    EXPECT_STR(t, "a", "BBBB");
    EXPECT_STR(t, "b", "AAA");
    STAT(t, "a", &s);
    PT_EQ(t, s.st_ino, b.st_ino);
    STAT(t, "b", &s);
    PT_EQ(t, s.st_ino, a.st_ino);
    /* A file and a directory. */
    PT_OK(t, mkdir("d", 0755));
    MAKE_STR(t, "d/inner", "in");
    PT_OK(t, renameat2_("a", "d", RENAME_EXCHANGE));
    STAT(t, "a", &s);
    PT_TRUE(t, S_ISDIR(s.st_mode));
    EXPECT_STR(t, "a/inner", "in");
    STAT(t, "d", &s);
    PT_TRUE(t, S_ISREG(s.st_mode));
    EXPECT_STR(t, "d", "BBBB");
    /* Across directories, and with a missing side. */
    PT_OK(t, renameat2_("b", "a/inner", RENAME_EXCHANGE));
    EXPECT_STR(t, "b", "in");
    EXPECT_STR(t, "a/inner", "AAA");
    PT_ERR(t, renameat2_("b", "missing", RENAME_EXCHANGE), ENOENT);
    EXPECT_NAMES(t, ".", "a", "b", "d");
}

static void case_rename_into_subdir(struct pt *t)
{
    PT_OK(t, mkdir("a", 0755));
    PT_OK(t, mkdir("a/b", 0755));
    PT_OK(t, mkdir("a/b/c", 0755));
    PT_ERR(t, rename("a", "a/b/c/x"), EINVAL);
    PT_ERR(t, rename("a", "a/x"), EINVAL);
    PT_ERR(t, rename("a/b", "a/b/c/y"), EINVAL);
    PT_ERR(t, renameat2_("a", "a/b/c", RENAME_EXCHANGE), EINVAL);
    EXPECT_NAMES(t, "a/b/c", NULL);
    EXPECT_NAMES(t, ".", "a");
}

static void case_rename_same_file(struct pt *t)
{
    MAKE_STR(t, "f", "f");
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, rename("f", "f"));
    PT_OK(t, rename("d", "d"));
    /* Two links to one file: rename does nothing and succeeds. */
    PT_OK(t, link("f", "g"));
    PT_OK(t, rename("f", "g"));
    EXPECT_NAMES(t, ".", "d", "f", "g");
    EXPECT_STR(t, "f", "f");
}

/* ------------------------------------------------------------------------ */
/* symlinks                                                                  */

static void case_symlink_readlink(struct pt *t)
{
    static char longt[1001];
    const char *targets[] = {"target/rel/path", "/abs/path/x",         "f",
                             "../up/./dir/",    "with space\tand tab", longt};
    char buf[2048], name[32];
    ssize_t n;
    memset(longt, 'L', 1000);
    MAKE_STR(t, "f", "x");
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        snprintf(name, sizeof name, "l%zu", i);
        PT_OK(t, symlink(targets[i], name));
        memset(buf, 0x7e, sizeof buf);
        n = (ssize_t)PT_OK(t, readlink(name, buf, sizeof buf));
        PT_EQ(t, n, strlen(targets[i]));
        MEM_EQ(t, buf, targets[i], (size_t)n, "readlink target");
        PT_EQ(t, buf[n], 0x7e); /* no NUL added */
    }
    /* A too-small buffer truncates. */
    n = (ssize_t)PT_OK(t, readlink("l0", buf, 6));
    PT_EQ(t, n, 6);
    MEM_EQ(t, buf, "target", 6, "truncated readlink");
    PT_ERR(t, readlink("f", buf, sizeof buf), EINVAL);
    PT_ERR(t, readlink("missing", buf, sizeof buf), ENOENT);
    PT_ERR(t, symlink("other", "l0"), EEXIST);
    PT_ERR(t, symlink("other", "f"), EEXIST);
}

static void case_symlink_lstat(struct pt *t)
{
    const char *targets[] = {"dangling/target", "/an/absolute/one", "f"};
    char name[32];
    struct stat s;
    MAKE_STR(t, "f", "0123456789");
    for (size_t i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "l%zu", i);
        PT_OK(t, symlink(targets[i], name));
        LSTAT(t, name, &s);
        PT_TRUE(t, S_ISLNK(s.st_mode));
        PT_EQ(t, s.st_size, strlen(targets[i]));
        PT_EQ(t, s.st_nlink, 1);
    }
    STAT(t, "l2", &s);
    PT_TRUE(t, S_ISREG(s.st_mode));
    PT_EQ(t, s.st_size, 10);
}

static void case_symlink_open(struct pt *t)
{
    int fd;
    char abs[PATH_MAX + 8];
    MAKE_STR(t, "f", "hello");
    PT_OK(t, mkdir("d", 0755));
    MAKE_STR(t, "d/x", "in dir");
    PT_OK(t, symlink("f", "l"));
    PT_OK(t, symlink("l", "l2")); /* a chain */
    PT_OK(t, symlink("d", "ld"));
    snprintf(abs, sizeof abs, "%s/f", t->dir);
    PT_OK(t, symlink(abs, "labs"));
    EXPECT_STR(t, "l", "hello");
    EXPECT_STR(t, "l2", "hello");
    EXPECT_STR(t, "labs", "hello");
    EXPECT_STR(t, "ld/x", "in dir");
    fd = (int)PT_OK(t, open("l2", O_WRONLY | O_APPEND));
    PT_EQ(t, write(fd, " world", 6), 6);
    close(fd);
    EXPECT_STR(t, "f", "hello world");
    /* O_CREAT through a dangling link creates its target. */
    PT_OK(t, symlink("created", "dangling"));
    fd = (int)PT_OK(t, open("dangling", O_WRONLY | O_CREAT, 0644));
    PT_EQ(t, write(fd, "c", 1), 1);
    close(fd);
    EXPECT_STR(t, "created", "c");
}

static void case_symlink_eloop(struct pt *t)
{
    struct stat s;
    int fd;
    MAKE_STR(t, "f", "x");
    PT_OK(t, symlink("f", "l"));
    PT_OK(t, symlink("self", "self"));
    PT_OK(t, symlink("b", "a"));
    PT_OK(t, symlink("a", "b"));
    PT_ERR(t, open("self", O_RDONLY), ELOOP);
    PT_ERR(t, stat("self", &s), ELOOP);
    PT_ERR(t, open("a", O_RDONLY), ELOOP);
    PT_ERR(t, open("self/x", O_RDONLY), ELOOP);
    /* O_NOFOLLOW on a symlink is ELOOP, on a regular file it is harmless. */
    PT_ERR(t, open("l", O_RDONLY | O_NOFOLLOW), ELOOP);
    PT_ERR(t, open("self", O_RDONLY | O_NOFOLLOW), ELOOP);
    fd = (int)PT_OK(t, open("f", O_RDONLY | O_NOFOLLOW));
    close(fd);
    LSTAT(t, "self", &s);
    PT_TRUE(t, S_ISLNK(s.st_mode));
}

/* ------------------------------------------------------------------------ */
/* hard links                                                                */

static void case_link_basic(struct pt *t)
{
    struct stat f, g;
    int fd1, fd2;
    MAKE_STR(t, "f", "original");
    PT_OK(t, mkdir("d", 0755));
    STAT(t, "f", &f);
    PT_EQ(t, f.st_nlink, 1);
    PT_OK(t, link("f", "g"));
    STAT(t, "f", &f);
    STAT(t, "g", &g);
    PT_EQ(t, f.st_nlink, 2);
    PT_EQ(t, g.st_nlink, 2);
    PT_EQ(t, g.st_ino, f.st_ino);
    EXPECT_STR(t, "g", "original");
    /* Writes through one name are seen through the other, open or fresh. */
    fd1 = (int)PT_OK(t, open("f", O_RDWR));
    fd2 = (int)PT_OK(t, open("g", O_RDWR));
    PT_EQ(t, pwrite(fd2, "ORIG", 4, 0), 4);
    EXPECT_AT(t, fd1, 0, "ORIGinal", 8);
    EXPECT_STR(t, "f", "ORIGinal");
    PT_EQ(t, pwrite(fd1, "++", 2, 8), 2);
    EXPECT_STR(t, "g", "ORIGinal++");
    close(fd1);
    close(fd2);
    PT_OK(t, link("g", "d/h"));
    STAT(t, "f", &f);
    PT_EQ(t, f.st_nlink, 3);
    PT_OK(t, unlink("f"));
    STAT(t, "g", &g);
    PT_EQ(t, g.st_nlink, 2);
    PT_OK(t, unlink("d/h"));
    STAT(t, "g", &g);
    PT_EQ(t, g.st_nlink, 1);
    EXPECT_STR(t, "g", "ORIGinal++");
    EXPECT_NAMES(t, ".", "d", "g");
}

static void case_link_dir_eperm(struct pt *t)
{
    PT_OK(t, mkdir("d", 0755));
    PT_ERR(t, link("d", "d2"), EPERM);
    EXPECT_NAMES(t, ".", "d");
}

static void case_link_eexist(struct pt *t)
{
    struct stat s;
    MAKE_STR(t, "f", "f");
    MAKE_STR(t, "g", "g");
    PT_OK(t, mkdir("d", 0755));
    PT_ERR(t, link("f", "g"), EEXIST);
    PT_ERR(t, link("f", "f"), EEXIST);
    PT_ERR(t, link("f", "d"), EEXIST);
    PT_ERR(t, link("missing", "h"), ENOENT);
    STAT(t, "f", &s);
    PT_EQ(t, s.st_nlink, 1);
    EXPECT_STR(t, "g", "g");
}

/* ------------------------------------------------------------------------ */
/* mknod / FIFO                                                              */

#define FIFO_BYTES (200 * 1024)

static void fifo_writer(struct pt *t, int sock, void *arg)
{
    uint8_t *buf = PT_ALLOC(t, FIFO_BYTES);
    int fd;
    (void)arg;
    (void)sock;
    pat_fill(buf, FIFO_BYTES, 0, 3);
    fd = (int)PT_OK(t, open("p", O_WRONLY)); /* waits for the reader */
    for (size_t done = 0; done < FIFO_BYTES;) {
        ssize_t r = write(fd, buf + done, FIFO_BYTES - done);
        PT_OK(t, r);
        done += (size_t)r;
    }
    close(fd);
    free(buf);
}

static void case_mknod_fifo(struct pt *t)
{
    struct pt_peer p;
    struct stat s;
    uint8_t *want = PT_ALLOC(t, FIFO_BYTES), *got = PT_ALLOC(t, FIFO_BYTES + 1);
    size_t n = 0;
    int fd;
    PT_OK(t, mkfifo("p", 0644));
    LSTAT(t, "p", &s);
    PT_TRUE(t, S_ISFIFO(s.st_mode));
    PT_EQ(t, s.st_mode & 07777, 0644);
    fd = (int)PT_OK(t, open("p", O_RDONLY | O_NONBLOCK));
    close(fd);
    PT_ERR(t, open("p", O_WRONLY | O_NONBLOCK), ENXIO); /* no reader */
    PT_OK(t, mknod("p2", S_IFIFO | 0600, 0));
    LSTAT(t, "p2", &s);
    PT_TRUE(t, S_ISFIFO(s.st_mode));
    PT_EQ(t, s.st_mode & 07777, 0600);
    PT_OK(t, mknod("r", S_IFREG | 0644, 0));
    LSTAT(t, "r", &s);
    PT_TRUE(t, S_ISREG(s.st_mode));
    PT_EQ(t, s.st_size, 0);
    PT_ERR(t, mkfifo("p", 0644), EEXIST);

    /* Data from one process to another through the FIFO. */
    peer_start(t, &p, fifo_writer, NULL);
    fd = (int)PT_OK(t, open("p", O_RDONLY));
    for (;;) {
        ssize_t r = read(fd, got + n, FIFO_BYTES + 1 - n);
        PT_OK(t, r);
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    PEER_END(t, &p);
    PT_EQ(t, n, FIFO_BYTES);
    pat_fill(want, FIFO_BYTES, 0, 3);
    MEM_EQ(t, got, want, FIFO_BYTES, "data read from the FIFO");
    STAT(t, "p", &s);
    PT_EQ(t, s.st_size, 0);
    free(want);
    free(got);
}

/* ------------------------------------------------------------------------ */
/* xattrs                                                                    */

/* How often name occurs in a listxattr result. */
static int xlist_count(const char *list, ssize_t len, const char *name)
{
    int count = 0;
    for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1)
        count += !strcmp(list + i, name);
    return count;
}
#define XLIST_ONCE(t, list, len, name)                                                          \
    do {                                                                                        \
        int c_ = xlist_count((list), (len), (name));                                            \
        PT_CHECK((t), c_ == 1, "listxattr: \"%s\" expected once, listed %d times", (name), c_); \
    } while (0)

static void pt_xattr_is(struct pt *t, const char *path, const char *name, const void *want,
                        size_t len, const char *file, int line)
{
    static uint8_t buf[70000];
    ssize_t n = getxattr(path, name, buf, sizeof buf);
    int e = errno;
    if (n < 0)
        pt_fail(t, file, line, "getxattr(\"%s\", \"%s\"): expected success, got %s (%s)", path,
                name, errname(e), strerror(e));
    if ((size_t)n != len)
        pt_fail(t, file, line, "getxattr(\"%s\", \"%s\"): expected %zu bytes, got %zd", path, name,
                len, n);
    pt_mem_eq(t, buf, want, len, 0, name, file, line);
    n = getxattr(path, name, NULL, 0);
    if ((size_t)n != len)
        pt_fail(t, file, line, "getxattr(\"%s\", \"%s\", NULL, 0): expected %zu, got %zd", path,
                name, len, n);
}
#define XATTR_IS(t, path, name, want, len) \
    pt_xattr_is((t), (path), (name), (want), (len), __FILE__, __LINE__)

static void case_xattr_user(struct pt *t)
{
    static const char *const names[] = {"user.empty", "user.small", "user.bin"};
    uint8_t small[100], bin[256], big[4096];
    char list[4096];
    struct statfs sf;
    ssize_t n;
    int fd;
    pat_fill(small, sizeof small, 0, 4);
    for (int i = 0; i < 256; i++) bin[i] = (uint8_t)i;
    pat_fill(big, sizeof big, 0, 5);
    big[0] = 0;
    MAKE_STR(t, "f", "data");
    MAKE_STR(t, "g", "data");
    MAKE_STR(t, "h", "data");
    PT_OK(t, mkdir("d", 0755));

    PT_OK(t, setxattr("f", "user.empty", "", 0, 0));
    PT_OK(t, setxattr("f", "user.small", small, sizeof small, 0));
    PT_OK(t, setxattr("f", "user.bin", bin, sizeof bin, 0));
    XATTR_IS(t, "f", "user.empty", "", 0);
    XATTR_IS(t, "f", "user.small", small, sizeof small);
    XATTR_IS(t, "f", "user.bin", bin, sizeof bin);
    n = (ssize_t)PT_OK(t, listxattr("f", list, sizeof list));
    for (size_t i = 0; i < 3; i++) XLIST_ONCE(t, list, n, names[i]);

    /* 4 KiB values. ext2/3/4 without the ea_inode feature keep all of an
     * inode's xattrs in one block, so a full 4096-byte value cannot fit
     * there (ENOSPC/E2BIG); 4000 bytes must work everywhere. */
    PT_OK(t, setxattr("g", "user.big", big, 4000, 0));
    XATTR_IS(t, "g", "user.big", big, 4000);
    PT_OK(t, statfs(".", &sf));
    if (setxattr("h", "user.big", big, sizeof big, 0) == 0) {
        XATTR_IS(t, "h", "user.big", big, sizeof big);
    } else {
        int e = errno;
        PT_CHECK(t, sf.f_type == EXT4_MAGIC && (e == ENOSPC || e == E2BIG),
                 "setxattr(\"h\", \"user.big\", 4096 bytes): expected success, got %s (%s)",
                 errname(e), strerror(e));
        pt_note(t, "ext4 without ea_inode: a 4096-byte value does not fit (%s)", errname(e));
    }

    /* Replace with a shorter value, then remove. */
    PT_OK(t, setxattr("f", "user.small", "short", 5, 0));
    XATTR_IS(t, "f", "user.small", "short", 5);
    PT_OK(t, removexattr("f", "user.small"));
    PT_ERR(t, getxattr("f", "user.small", list, sizeof list), ENODATA);
    PT_ERR(t, removexattr("f", "user.small"), ENODATA);
    n = (ssize_t)PT_OK(t, listxattr("f", list, sizeof list));
    PT_EQ(t, xlist_count(list, n, "user.small"), 0);
    XLIST_ONCE(t, list, n, "user.bin");

    /* Through a descriptor, and on a directory. */
    fd = (int)PT_OK(t, open("f", O_RDONLY));
    PT_OK(t, fsetxattr(fd, "user.fd", "v", 1, 0));
    PT_EQ(t, fgetxattr(fd, "user.fd", list, sizeof list), 1);
    n = (ssize_t)PT_OK(t, flistxattr(fd, list, sizeof list));
    XLIST_ONCE(t, list, n, "user.fd");
    PT_OK(t, fremovexattr(fd, "user.fd"));
    close(fd);
    PT_OK(t, setxattr("d", "user.dir", "dv", 2, 0));
    XATTR_IS(t, "d", "user.dir", "dv", 2);
    /* The data is untouched by all this. */
    EXPECT_STR(t, "f", "data");
}

static void case_xattr_flags(struct pt *t)
{
    char buf[64];
    MAKE_STR(t, "f", "data");
    PT_OK(t, setxattr("f", "user.a", "1", 1, XATTR_CREATE));
    PT_ERR(t, setxattr("f", "user.a", "2", 1, XATTR_CREATE), EEXIST);
    XATTR_IS(t, "f", "user.a", "1", 1);
    PT_ERR(t, setxattr("f", "user.b", "2", 1, XATTR_REPLACE), ENODATA);
    PT_ERR(t, getxattr("f", "user.b", buf, sizeof buf), ENODATA);
    PT_ERR(t, getxattr("f", "user.missing", buf, sizeof buf), ENODATA);
    PT_ERR(t, getxattr("f", "user.missing", NULL, 0), ENODATA);
    PT_OK(t, setxattr("f", "user.a", "22", 2, XATTR_REPLACE));
    XATTR_IS(t, "f", "user.a", "22", 2);
    PT_OK(t, setxattr("f", "user.a", "333", 3, 0));
    XATTR_IS(t, "f", "user.a", "333", 3);
}

static void case_xattr_size(struct pt *t)
{
    uint8_t val[100], buf[100];
    char list[256];
    ssize_t need;
    pat_fill(val, sizeof val, 0, 6);
    MAKE_STR(t, "f", "data");
    PT_OK(t, setxattr("f", "user.v", val, sizeof val, 0));
    PT_OK(t, setxattr("f", "user.w", "w", 1, 0));
    PT_EQ(t, getxattr("f", "user.v", NULL, 0), 100);
    PT_ERR(t, getxattr("f", "user.v", buf, 50), ERANGE);
    PT_ERR(t, getxattr("f", "user.v", buf, 99), ERANGE);
    PT_EQ(t, getxattr("f", "user.v", buf, 100), 100);
    MEM_EQ(t, buf, val, 100, "xattr value");
    need = (ssize_t)PT_OK(t, listxattr("f", NULL, 0));
    PT_TRUE(t, need >= (ssize_t)sizeof "user.v" + (ssize_t)sizeof "user.w");
    PT_ERR(t, listxattr("f", list, 1), ERANGE);
    PT_EQ(t, listxattr("f", list, (size_t)need), need);
}

static void case_xattr_security(struct pt *t)
{
    char list[512];
    ssize_t n;
    MAKE_STR(t, "f", "data");
    PT_OK(t, setxattr("f", "security.posixtest", "label-1", 7, 0));
    XATTR_IS(t, "f", "security.posixtest", "label-1", 7);
    PT_OK(t, setxattr("f", "security.posixtest", "l2", 2, XATTR_REPLACE));
    XATTR_IS(t, "f", "security.posixtest", "l2", 2);
    n = (ssize_t)PT_OK(t, listxattr("f", list, sizeof list));
    XLIST_ONCE(t, list, n, "security.posixtest");
    PT_OK(t, removexattr("f", "security.posixtest"));
    PT_ERR(t, getxattr("f", "security.posixtest", list, sizeof list), ENODATA);
}

/* ------------------------------------------------------------------------ */
/* statfs                                                                    */

static void pt_statvfs_sane(struct pt *t, const struct statvfs *v, const char *when,
                            const char *file, int line)
{
    if (v->f_bsize == 0 || v->f_frsize == 0 || v->f_blocks == 0 || v->f_bfree > v->f_blocks ||
        v->f_bavail > v->f_bfree || v->f_ffree > v->f_files || v->f_namemax < 255)
        pt_fail(t, file, line,
                "statvfs %s: inconsistent: bsize %lu frsize %lu blocks %llu bfree %llu bavail %llu "
                "files %llu ffree %llu namemax %lu",
                when, v->f_bsize, v->f_frsize, (unsigned long long)v->f_blocks,
                (unsigned long long)v->f_bfree, (unsigned long long)v->f_bavail,
                (unsigned long long)v->f_files, (unsigned long long)v->f_ffree, v->f_namemax);
}
#define STATVFS_SANE(t, v, when) pt_statvfs_sane((t), (v), (when), __FILE__, __LINE__)

static void case_statfs(struct pt *t)
{
    struct statvfs a, b;
    struct statfs sf, sf2;
    uint8_t *buf = PT_ALLOC(t, MIB);
    int fd;
    PT_OK(t, statvfs(".", &a));
    STATVFS_SANE(t, &a, "before");
    PT_OK(t, statfs(".", &sf));
    PT_TRUE(t, sf.f_bsize > 0);
    PT_TRUE(t, sf.f_blocks > 0);
    PT_TRUE(t, sf.f_bfree <= sf.f_blocks);
    PT_TRUE(t, sf.f_bavail <= sf.f_bfree);
    fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT, 0644));
    PT_OK(t, fstatfs(fd, &sf2));
    PT_EQ(t, sf2.f_type, sf.f_type);
    for (int i = 0; i < 64; i++) {
        pat_fill(buf, MIB, (uint64_t)i * MIB, 9);
        PWRITE_ALL(t, fd, buf, MIB, i * MIB);
    }
    PT_OK(t, fsync(fd));
    PT_OK(t, statvfs(".", &b));
    STATVFS_SANE(t, &b, "after writing 64 MiB");
    pt_note(t,
            "free before %llu MiB, after %llu MiB (drop %lld KiB), avail before %llu MiB, after "
            "%llu MiB",
            (unsigned long long)(a.f_bfree * a.f_frsize / MIB),
            (unsigned long long)(b.f_bfree * b.f_frsize / MIB),
            ((long long)a.f_bfree * (long long)a.f_frsize -
             (long long)b.f_bfree * (long long)b.f_frsize) /
                KIB,
            (unsigned long long)(a.f_bavail * a.f_frsize / MIB),
            (unsigned long long)(b.f_bavail * b.f_frsize / MIB));
    close(fd);
    PT_OK(t, unlink("f"));
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* locks                                                                     */

static void flock_peer(struct pt *t, int sock, void *arg)
{
    struct timespec t0;
    double waited;
    int fd = (int)PT_OK(t, open("f", O_RDWR));
    (void)arg;
    WAIT(t, sock, 'a'); /* the case holds LOCK_EX */
    PT_ERR(t, flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    PT_ERR(t, flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    SEND(t, sock, 'b');
    WAIT(t, sock, 'c'); /* it closed that descriptor */
    PT_OK(t, flock(fd, LOCK_EX | LOCK_NB));
    SEND(t, sock, 'd');
    WAIT(t, sock, 'e');
    PT_OK(t, flock(fd, LOCK_UN));
    PT_OK(t, flock(fd, LOCK_SH | LOCK_NB));
    SEND(t, sock, 'f');
    WAIT(t, sock, 'g');
    PT_OK(t, flock(fd, LOCK_UN));
    SEND(t, sock, 'h');
    WAIT(t, sock, 'i'); /* it holds LOCK_EX again: block until it lets go */
    SEND(t, sock, 'j');
    t0 = now_mono();
    PT_OK(t, flock(fd, LOCK_EX));
    waited = ts_sub(now_mono(), t0);
    PT_CHECK(t, waited >= 0.2, "flock(LOCK_EX) returned after %.3f s, before the holder released",
             waited);
    SEND(t, sock, 'k');
    WAIT(t, sock, 'l');
    close(fd);
}

static void case_flock(struct pt *t)
{
    struct pt_peer p;
    int fd1, fd2, fd3, fd4, fd5, fd6;
    MAKE_STR(t, "f", "lock me");
    /* Start the peer first: a descriptor it inherited would share our lock. */
    peer_start(t, &p, flock_peer, NULL);
    fd1 = (int)PT_OK(t, open("f", O_RDWR));
    PT_OK(t, flock(fd1, LOCK_EX));
    SEND(t, p.sock, 'a');
    WAIT(t, p.sock, 'b');
    PT_OK(t, close(fd1)); /* released on close */
    SEND(t, p.sock, 'c');
    WAIT(t, p.sock, 'd');
    fd2 = (int)PT_OK(t, open("f", O_RDWR));
    PT_ERR(t, flock(fd2, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    SEND(t, p.sock, 'e');
    WAIT(t, p.sock, 'f'); /* the peer now holds LOCK_SH */
    PT_OK(t, flock(fd2, LOCK_SH | LOCK_NB));
    fd3 = (int)PT_OK(t, open("f", O_RDWR));
    PT_ERR(t, flock(fd3, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    PT_OK(t, flock(fd2, LOCK_UN));
    SEND(t, p.sock, 'g');
    WAIT(t, p.sock, 'h');
    PT_OK(t, flock(fd3, LOCK_EX | LOCK_NB));
    SEND(t, p.sock, 'i');
    WAIT(t, p.sock, 'j');
    sleep_ms(300);
    PT_OK(t, flock(fd3, LOCK_UN));
    WAIT(t, p.sock, 'k');
    PT_ERR(t, flock(fd3, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    SEND(t, p.sock, 'l');
    PEER_END(t, &p); /* its lock goes with its last descriptor */
    PT_OK(t, flock(fd3, LOCK_EX | LOCK_NB));
    PT_OK(t, flock(fd3, LOCK_UN));
    /* Two open file descriptions in one process conflict too; a dup shares. */
    fd4 = (int)PT_OK(t, open("f", O_RDONLY));
    fd5 = (int)PT_OK(t, open("f", O_RDONLY));
    PT_OK(t, flock(fd4, LOCK_EX | LOCK_NB));
    PT_ERR(t, flock(fd5, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    fd6 = (int)PT_OK(t, dup(fd4));
    close(fd4);
    PT_ERR(t, flock(fd5, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    close(fd6);
    PT_OK(t, flock(fd5, LOCK_EX | LOCK_NB));
    close(fd5);
    close(fd2);
    close(fd3);
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

static void pt_getlk_is(struct pt *t, int fd, off_t start, off_t len, short type, pid_t pid,
                        off_t hstart, off_t hlen, const char *file, int line)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (fcntl(fd, F_GETLK, &fl) < 0)
        pt_fail(t, file, line, "fcntl(F_GETLK, [%lld,+%lld)): %s", (long long)start, (long long)len,
                errname(errno));
    if (fl.l_type != type)
        pt_fail(t, file, line, "F_GETLK [%lld,+%lld): expected l_type %d, got %d", (long long)start,
                (long long)len, type, fl.l_type);
    if (type == F_UNLCK) return;
    if (fl.l_pid != pid || fl.l_start != hstart || fl.l_len != hlen || fl.l_whence != SEEK_SET)
        pt_fail(t, file, line,
                "F_GETLK [%lld,+%lld): expected holder pid %d range [%lld,+%lld), got pid %d range "
                "[%lld,+%lld) whence %d",
                (long long)start, (long long)len, (int)pid, (long long)hstart, (long long)hlen,
                (int)fl.l_pid, (long long)fl.l_start, (long long)fl.l_len, fl.l_whence);
}
#define GETLK_IS(t, fd, s, l, type, pid, hs, hl) \
    pt_getlk_is((t), (fd), (s), (l), (type), (pid), (hs), (hl), __FILE__, __LINE__)

static void fcntl_peer(struct pt *t, int sock, void *arg)
{
    pid_t holder = *(pid_t *)arg;
    struct timespec t0;
    double waited;
    int fd = (int)PT_OK(t, open("f", O_RDWR)), fd2;
    WAIT(t, sock, 'a'); /* the case holds a write lock on [0,100) */
    PT_ERR2(t, setlk(fd, F_SETLK, F_WRLCK, 50, 100), EAGAIN, EACCES);
    PT_ERR2(t, setlk(fd, F_SETLK, F_RDLCK, 0, 10), EAGAIN, EACCES);
    PT_OK(t, setlk(fd, F_SETLK, F_WRLCK, 100, 100));
    GETLK_IS(t, fd, 0, 200, F_WRLCK, holder, 0, 100);
    GETLK_IS(t, fd, 500, 10, F_UNLCK, 0, 0, 0);
    SEND(t, sock, 'b');
    WAIT(t, sock, 'c'); /* it unlocked [40,60): its lock is split in two */
    GETLK_IS(t, fd, 45, 10, F_UNLCK, 0, 0, 0);
    GETLK_IS(t, fd, 30, 10, F_WRLCK, holder, 0, 40);
    GETLK_IS(t, fd, 70, 5, F_WRLCK, holder, 60, 40);
    PT_OK(t, setlk(fd, F_SETLK, F_WRLCK, 40, 20));
    /* Closing any descriptor of the file drops all of this process's locks. */
    fd2 = (int)PT_OK(t, open("f", O_RDONLY));
    close(fd2);
    SEND(t, sock, 'd');
    WAIT(t, sock, 'e');
    PT_OK(t, setlk(fd, F_SETLK, F_RDLCK, 300, 10));
    SEND(t, sock, 'f');
    WAIT(t, sock, 'g');
    /* F_SETLKW waits for the case's [0,40). */
    SEND(t, sock, 'h');
    t0 = now_mono();
    PT_OK(t, setlk(fd, F_SETLKW, F_WRLCK, 0, 50));
    waited = ts_sub(now_mono(), t0);
    PT_CHECK(t, waited >= 0.2, "F_SETLKW returned after %.3f s, before the holder released",
             waited);
    SEND(t, sock, 'i');
    WAIT(t, sock, 'j');
    close(fd);
}

static void case_fcntl_lock(struct pt *t)
{
    struct pt_peer p;
    pid_t self = getpid();
    char buf[1000];
    int fd;
    memset(buf, 'l', sizeof buf);
    MAKE_FILE(t, "f", buf, sizeof buf);
    fd = (int)PT_OK(t, open("f", O_RDWR));
    PT_OK(t, setlk(fd, F_SETLK, F_WRLCK, 0, 100));
    peer_start(t, &p, fcntl_peer, &self);
    SEND(t, p.sock, 'a');
    WAIT(t, p.sock, 'b');
    GETLK_IS(t, fd, 150, 10, F_WRLCK, p.pid, 100, 100);
    PT_OK(t, setlk(fd, F_SETLK, F_UNLCK, 40, 20));
    SEND(t, p.sock, 'c');
    WAIT(t, p.sock, 'd');
    GETLK_IS(t, fd, 100, 100, F_UNLCK, 0, 0, 0);
    GETLK_IS(t, fd, 40, 20, F_UNLCK, 0, 0, 0);
    SEND(t, p.sock, 'e');
    WAIT(t, p.sock, 'f');                           /* the peer holds a read lock on [300,310) */
    PT_OK(t, setlk(fd, F_SETLK, F_RDLCK, 300, 10)); /* read locks share */
    PT_ERR2(t, setlk(fd, F_SETLK, F_WRLCK, 305, 1), EAGAIN, EACCES);
    GETLK_IS(t, fd, 300, 10, F_RDLCK, p.pid, 300, 10);
    PT_OK(t, setlk(fd, F_SETLK, F_UNLCK, 300, 10));
    SEND(t, p.sock, 'g');
    WAIT(t, p.sock, 'h'); /* about to block in F_SETLKW */
    sleep_ms(300);
    PT_OK(t, setlk(fd, F_SETLK, F_UNLCK, 0, 0));
    WAIT(t, p.sock, 'i');
    GETLK_IS(t, fd, 0, 10, F_WRLCK, p.pid, 0, 50);
    SEND(t, p.sock, 'j');
    PEER_END(t, &p);
    GETLK_IS(t, fd, 0, 1000, F_UNLCK, 0, 0, 0);
    close(fd);
}

/* ------------------------------------------------------------------------ */
/* fallocate (strict: EOPNOTSUPP is a failure)                               */

static void case_fallocate_extend(struct pt *t)
{
    struct stat s;
    int fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT, 0644));
    PT_OK(t, fallocate(fd, 0, 0, MIB));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, MIB);
    EXPECT_ZEROS(t, fd, 0, MIB);
    PT_OK(t, ftruncate(fd, 0));
    PT_EQ(t, pwrite(fd, "0123456789", 10, 0), 10);
    PT_OK(t, fallocate(fd, 0, 5, 8192)); /* overlapping data: kept */
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 8197);
    EXPECT_AT(t, fd, 0, "0123456789", 10);
    EXPECT_ZEROS(t, fd, 10, 8187);
    PT_OK(t, fallocate(fd, 0, 0, 100)); /* inside the file: no change */
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 8197);
    PT_ERR(t, fallocate(fd, 0, 0, 0), EINVAL);
    close(fd);
}

static void case_fallocate_keep_size(struct pt *t)
{
    uint8_t data[4096];
    struct stat s;
    int fd;
    pat_fill(data, sizeof data, 0, 10);
    MAKE_FILE(t, "f", data, sizeof data);
    fd = (int)PT_OK(t, open("f", O_RDWR));
    PT_OK(t, fallocate(fd, FALLOC_FL_KEEP_SIZE, 4096, MIB));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 4096);
    PT_OK(t, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 * MIB));
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 4096);
    EXPECT_AT(t, fd, 0, data, sizeof data);
    /* Writing into the preallocated range later extends normally. */
    PT_EQ(t, pwrite(fd, "z", 1, 100000), 1);
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, 100001);
    EXPECT_ZEROS(t, fd, 4096, 100000 - 4096);
    close(fd);
    STAT(t, "f", &s);
    PT_EQ(t, s.st_size, 100001);
}

static void case_fallocate_punch_hole(struct pt *t)
{
    const size_t len = 192 * 1024;
    uint8_t *want = PT_ALLOC(t, len);
    struct stat s;
    int fd;
    pat_fill(want, len, 0, 11);
    MAKE_FILE(t, "f", want, len);
    fd = (int)PT_OK(t, open("f", O_RDWR));
    PT_OK(t, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * KIB, 64 * KIB));
    memset(want + 64 * KIB, 0, 64 * KIB);
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, len);
    EXPECT_AT(t, fd, 0, want, len);
    /* Unaligned: only those bytes become zero. */
    PT_OK(t, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 3000));
    memset(want + 1000, 0, 3000);
    PT_OK(t, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 150001, 7));
    memset(want + 150001, 0, 7);
    EXPECT_AT(t, fd, 0, want, len);
    /* Past EOF: the size stays. */
    PT_OK(t, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)len - 10, 100000));
    memset(want + len - 10, 0, 10);
    PT_OK(t, fstat(fd, &s));
    PT_EQ(t, s.st_size, len);
    /* PUNCH_HOLE must come with KEEP_SIZE. */
    PT_ERR(t, fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP);
    close(fd);
    EXPECT_FILE(t, "f", want, len);
    free(want);
}

/* ------------------------------------------------------------------------ */
/* mmap                                                                      */

static void case_mmap_shared_write(struct pt *t)
{
    const size_t len = 64 * KIB;
    uint8_t *want = PT_ALLOC(t, len), *m;
    int fd = (int)PT_OK(t, open("f", O_RDWR | O_CREAT, 0644)), fd2;
    PT_OK(t, ftruncate(fd, (off_t)len));
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    PT_CHECK(t, m != MAP_FAILED, "mmap(MAP_SHARED, RW): %s", errname(errno));
    pat_fill(want, len, 0, 12);
    memcpy(m, want, len);
    memcpy(m + 5000, "unaligned", 9);
    memcpy(want + 5000, "unaligned", 9);
    PT_OK(t, msync(m, len, MS_SYNC));
    EXPECT_AT(t, fd, 0, want, len);
    fd2 = (int)PT_OK(t, open("f", O_RDONLY));
    EXPECT_AT(t, fd2, 0, want, len);
    close(fd2);
    PT_OK(t, munmap(m, len));
    close(fd);
    EXPECT_FILE(t, "f", want, len);
    free(want);
}

static void case_mmap_after_write(struct pt *t)
{
    const size_t len = 40000;
    uint8_t *want = PT_ALLOC(t, len), *m;
    int fd;
    pat_fill(want, len, 0, 13);
    MAKE_FILE(t, "f", want, len);
    fd = (int)PT_OK(t, open("f", O_RDWR));
    m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    PT_CHECK(t, m != MAP_FAILED, "mmap(MAP_SHARED, PROT_READ): %s", errname(errno));
    MEM_EQ(t, m, want, len, "fresh mapping");
    PT_EQ(t, pwrite(fd, "later", 5, 39000), 5);
    memcpy(want + 39000, "later", 5);
    MEM_EQ(t, m, want, len, "mapping after a write()");
    PT_OK(t, munmap(m, len));
    /* A private mapping's writes stay private. */
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    PT_CHECK(t, m != MAP_FAILED, "mmap(MAP_PRIVATE): %s", errname(errno));
    memset(m, 'P', 100);
    PT_OK(t, munmap(m, len));
    close(fd);
    EXPECT_FILE(t, "f", want, len);
    free(want);
}

static void case_mmap_ftruncate_extend(struct pt *t)
{
    const size_t len = 16384;
    uint8_t *want = PT_ALLOC(t, len), *m;
    int fd;
    pat_fill(want, 4096, 0, 14);
    MAKE_FILE(t, "f", want, 100);
    fd = (int)PT_OK(t, open("f", O_RDWR));
    /* Map more than the file holds; only the first page is backed. */
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    PT_CHECK(t, m != MAP_FAILED, "mmap: %s", errname(errno));
    memset(want + 100, 0, len - 100);
    MEM_EQ(t, m, want, 4096, "first page (tail past EOF reads zero)");
    PT_OK(t, ftruncate(fd, (off_t)len));
    MEM_EQ(t, m, want, len, "mapping after ftruncate up");
    memcpy(m + 12000, "grown", 5);
    memcpy(want + 12000, "grown", 5);
    PT_OK(t, msync(m, len, MS_SYNC));
    EXPECT_AT(t, fd, 0, want, len);
    PT_OK(t, munmap(m, len));
    close(fd);
    EXPECT_FILE(t, "f", want, len);
    free(want);
}

/* ------------------------------------------------------------------------ */
/* permissions (root, dropping to --uid/--gid)                               */

static void case_perm_read_eacces(struct pt *t)
{
    struct stat s;
    MAKE_STR(t, "secret", "s");
    PT_OK(t, chmod("secret", 0600));
    MAKE_STR(t, "public", "p");
    PT_OK(t, chmod("public", 0644));
    PT_OK(t, mkdir("private", 0700));
    MAKE_STR(t, "private/f", "x");
    become_user(t);
    PT_ERR(t, open("secret", O_RDONLY), EACCES);
    PT_ERR(t, open("secret", O_WRONLY), EACCES);
    PT_ERR(t, open("secret", O_RDWR), EACCES);
    PT_ERR(t, access("secret", R_OK), EACCES);
    STAT(t, "secret", &s); /* stat needs no read permission */
    EXPECT_STR(t, "public", "p");
    PT_ERR(t, open("public", O_WRONLY), EACCES);
    PT_ERR(t, truncate("public", 0), EACCES);
    PT_ERR(t, stat("private/f", &s), EACCES);
    PT_ERR(t, open("private/f", O_RDONLY), EACCES);
    PT_ERR(t, open("private", O_RDONLY | O_DIRECTORY), EACCES);
}

static void case_perm_create_eacces(struct pt *t)
{
    int fd;
    PT_OK(t, mkdir("ro", 0755));
    MAKE_STR(t, "ro/existing", "e");
    PT_OK(t, mkdir("mine", 0755));
    PT_OK(t, chown("mine", t->uid, t->gid));
    become_user(t);
    PT_ERR(t, open("ro/new", O_WRONLY | O_CREAT, 0644), EACCES);
    PT_ERR(t, mkdir("ro/sub", 0755), EACCES);
    PT_ERR(t, mkfifo("ro/p", 0644), EACCES);
    PT_ERR(t, symlink("x", "ro/l"), EACCES);
    PT_ERR(t, unlink("ro/existing"), EACCES);
    PT_ERR(t, rename("ro/existing", "ro/x"), EACCES);
    PT_ERR(t, rename("ro/existing", "mine/x"), EACCES);
    fd = (int)PT_OK(t, open("mine/new", O_WRONLY | O_CREAT, 0644));
    close(fd);
    PT_OK(t, unlink("mine/new"));
    EXPECT_STR(t, "ro/existing", "e");
}

static void case_perm_sticky_eperm(struct pt *t)
{
    int fd;
    PT_OK(t, mkdir("tmp", 0755));
    PT_OK(t, chmod("tmp", 01777));
    MAKE_STR(t, "tmp/rootfile", "r");
    PT_OK(t, chmod("tmp/rootfile", 0666));
    PT_OK(t, mkdir("tmp/rootdir", 0777));
    PT_OK(t, chmod("tmp/rootdir", 0777));
    become_user(t);
    PT_ERR(t, unlink("tmp/rootfile"), EPERM);
    PT_ERR(t, rename("tmp/rootfile", "tmp/x"), EPERM);
    PT_ERR(t, rmdir("tmp/rootdir"), EPERM);
    /* His own file in the same directory he may remove. */
    fd = (int)PT_OK(t, open("tmp/mine", O_WRONLY | O_CREAT, 0644));
    close(fd);
    PT_OK(t, rename("tmp/mine", "tmp/mine2"));
    PT_OK(t, unlink("tmp/mine2"));
    EXPECT_STR(t, "tmp/rootfile", "r");
}

static void case_perm_chmod_eperm(struct pt *t)
{
    struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
    struct stat s;
    int fd;
    MAKE_STR(t, "rootfile", "r");
    PT_OK(t, chmod("rootfile", 0666));
    MAKE_STR(t, "userfile", "u");
    PT_OK(t, chown("userfile", t->uid, t->gid));
    become_user(t);
    PT_ERR(t, chmod("rootfile", 0600), EPERM);
    fd = (int)PT_OK(t, open("rootfile", O_RDWR));
    PT_ERR(t, fchmod(fd, 0600), EPERM);
    close(fd);
    STAT(t, "rootfile", &s);
    PT_EQ(t, s.st_mode & 07777, 0666);
    PT_OK(t, chmod("userfile", 0600));
    STAT(t, "userfile", &s);
    PT_EQ(t, s.st_mode & 07777, 0600);
    /* Explicit times need ownership; "now" needs only write permission. */
    PT_ERR(t, utimensat(AT_FDCWD, "rootfile", ts, 0), EPERM);
    PT_OK(t, utimensat(AT_FDCWD, "rootfile", NULL, 0));
}

/* ------------------------------------------------------------------------ */
/* errno map                                                                 */

static void case_errno_mkdir_eexist(struct pt *t)
{
    PT_OK(t, mkdir("d", 0755));
    MAKE_STR(t, "f", "x");
    PT_OK(t, symlink("missing", "dangling"));
    PT_ERR(t, mkdir("d", 0755), EEXIST);
    PT_ERR(t, mkdir("f", 0755), EEXIST);
    PT_ERR(t, mkdir("dangling", 0755), EEXIST);
    PT_ERR(t, mkdir(".", 0755), EEXIST);
}

static void case_errno_rmdir_notempty(struct pt *t)
{
    PT_OK(t, mkdir("d", 0755));
    MAKE_STR(t, "d/f", "x");
    PT_OK(t, mkdir("e", 0755));
    PT_OK(t, mkdir("e/sub", 0755));
    PT_ERR2(t, rmdir("d"), ENOTEMPTY, EEXIST);
    PT_ERR2(t, rmdir("e"), ENOTEMPTY, EEXIST);
    PT_OK(t, unlink("d/f"));
    PT_OK(t, rmdir("d"));
    PT_ERR(t, rmdir("d"), ENOENT);
}

static void case_errno_rmdir_enotdir(struct pt *t)
{
    MAKE_STR(t, "f", "x");
    PT_OK(t, mkdir("d", 0755));
    PT_OK(t, symlink("d", "ld"));
    PT_ERR(t, rmdir("f"), ENOTDIR);
    PT_ERR(t, rmdir("ld"), ENOTDIR);
    EXPECT_NAMES(t, ".", "d", "f", "ld");
}

static void case_errno_unlink_eisdir(struct pt *t)
{
    PT_OK(t, mkdir("d", 0755));
    PT_ERR(t, unlink("d"), EISDIR);
    PT_OK(t, symlink("d", "ld"));
    PT_OK(t, unlink("ld")); /* the link, not the directory */
    EXPECT_NAMES(t, ".", "d");
}

static void case_errno_create_in_file(struct pt *t)
{
    MAKE_STR(t, "f", "x");
    PT_ERR(t, open("f/new", O_WRONLY | O_CREAT, 0644), ENOTDIR);
    PT_ERR(t, mkdir("f/new", 0755), ENOTDIR);
    PT_ERR(t, symlink("x", "f/new"), ENOTDIR);
    PT_ERR(t, mkfifo("f/new", 0644), ENOTDIR);
    PT_ERR(t, link("f", "f/new"), ENOTDIR);
    PT_ERR(t, rename("f", "f/new"), ENOTDIR);
    EXPECT_STR(t, "f", "x");
}

static void case_errno_nametoolong(struct pt *t)
{
    char n256[257];
    memset(n256, 'c', 256);
    n256[256] = 0;
    MAKE_STR(t, "f", "x");
    PT_ERR(t, open(n256, O_WRONLY | O_CREAT, 0644), ENAMETOOLONG);
    PT_ERR(t, mkdir(n256, 0755), ENAMETOOLONG);
    PT_ERR(t, symlink("f", n256), ENAMETOOLONG);
    PT_ERR(t, link("f", n256), ENAMETOOLONG);
    PT_ERR(t, rename("f", n256), ENAMETOOLONG);
    PT_ERR(t, mkfifo(n256, 0644), ENAMETOOLONG);
    PT_ERR(t, unlink(n256), ENAMETOOLONG);
    EXPECT_NAMES(t, ".", "f");
}

static void case_errno_exdev(struct pt *t)
{
    char to[PATH_MAX + 16], dto[PATH_MAX + 16];
    struct stat a, b;
    MAKE_STR(t, "f", "x");
    PT_OK(t, mkdir("d", 0755));
    STAT(t, ".", &a);
    STAT(t, t->other, &b);
    PT_CHECK(t, a.st_dev != b.st_dev, "--other-dir %s is on the same filesystem as DIR", t->other);
    snprintf(to, sizeof to, "%s/f", t->other);
    snprintf(dto, sizeof dto, "%s/d", t->other);
    PT_ERR(t, rename("f", to), EXDEV);
    PT_ERR(t, link("f", to), EXDEV);
    PT_ERR(t, rename("d", dto), EXDEV);
    PT_ERR(t, renameat2_("f", to, RENAME_NOREPLACE), EXDEV);
    PT_ERR(t, stat(to, &b), ENOENT);
    EXPECT_STR(t, "f", "x");
    EXPECT_NAMES(t, t->other, NULL);
}

/* ------------------------------------------------------------------------ */
/* Case table                                                                */

#define NEED_ROOT 1u
#define NEED_USER 2u
#define NEED_OTHER 4u

struct pt_case {
    const char *name;
    void (*fn)(struct pt *t);
    unsigned needs;
    const char *what;
};

#define C(n, needs, what)         \
    {                             \
#n, case_##n, needs, what \
    }
static const struct pt_case cases[] = {
    C(lookup_stat, 0, "stat/lstat/fstat of file, dir, symlinks; . and .."),
    C(lookup_enoent, 0, "ENOENT for missing names, also after unlink"),
    C(lookup_enotdir, 0, "ENOTDIR when a path component is a file"),
    C(lookup_nametoolong, 0, "ENAMETOOLONG for 256-byte names and long paths; 255 works"),
    C(setattr_chmod, 0, "chmod/fchmod mode bits read back, files and dirs"),
    C(setattr_ctime, 0, "ctime moves on chmod; mtime+ctime on write and truncate"),
    C(setattr_chown_root, NEED_ROOT, "chown/fchown/lchown to another uid/gid and back"),
    C(setattr_chown_eperm, NEED_ROOT | NEED_USER, "chown by an unprivileged user: EPERM"),
    C(setattr_truncate, 0, "truncate up (zeros) and down, errors"),
    C(setattr_ftruncate, 0, "ftruncate up/down, offset kept, read-only fd refused"),
    C(setattr_utimensat, 0, "utimensat explicit, UTIME_NOW, UTIME_OMIT, NULL; futimens"),
    C(open_excl, 0, "O_CREAT|O_EXCL: EEXIST on file, dir, dangling link; mode of new file"),
    C(open_trunc, 0, "O_TRUNC truncates"),
    C(open_append, 0, "O_APPEND writes at the end after lseek, with other writers"),
    C(open_dir_write_eisdir, 0, "open of a directory for writing: EISDIR"),
    C(open_missing_enoent, 0, "open without O_CREAT of a missing file: ENOENT"),
    C(open_directory_enotdir, 0, "O_DIRECTORY on a file: ENOTDIR"),
    C(rw_random_offsets, 0, "pwrite/pread at random offsets against a model"),
    C(rw_holes, 0, "writes past EOF leave holes that read as zeros"),
    C(rw_sparse_10g, 0, "1 byte at 10 GiB: size, small st_blocks, zeros"),
    C(rw_4g_boundary, 0, "data around 2 GiB and 4 GiB offsets"),
    C(sync_calls, 0, "fsync, fdatasync, close (flush), fsync of a directory return 0"),
    C(readdir_basic, 0, "every entry once, d_type and d_ino match lstat"),
    C(readdir_concurrent, 0, "2,000 entries listed with small reads/resumes during churn"),
    C(readdir_rename_each, 0, "renaming each entry as it is read: the listing ends"),
    C(readdir_seekdir, 0, "seekdir to saved telldir positions resumes there"),
    C(unlink_open_file, 0, "unlinked open file: readable, writable, nlink 0, name gone"),
    C(rename_replace_atomic, 0, "rename over a file while a reader reopens it: never ENOENT"),
    C(rename_dir_with_entries, 0, "rename of a directory with entries, across parents"),
    C(rename_dir_notempty, 0, "rename onto a non-empty directory: ENOTEMPTY/EEXIST"),
    C(rename_dir_onto_file, 0, "rename of a directory onto a file: ENOTDIR"),
    C(rename_file_onto_dir, 0, "rename of a file onto a directory: EISDIR"),
    C(rename_noreplace, 0, "renameat2 RENAME_NOREPLACE: EEXIST"),
    C(rename_exchange, 0, "renameat2 RENAME_EXCHANGE: two files, a file and a dir"),
    C(rename_into_subdir, 0, "rename of a directory into its own subtree: EINVAL"),
    C(rename_same_file, 0, "rename onto itself or onto another link to it: no-op"),
    C(symlink_readlink, 0, "readlink returns targets exactly; EINVAL on a file"),
    C(symlink_lstat, 0, "lstat of symlinks: S_IFLNK, size = target length"),
    C(symlink_open, 0, "open through symlinks, chains, absolute, O_CREAT via dangling"),
    C(symlink_eloop, 0, "ELOOP on loops and on O_NOFOLLOW"),
    C(link_basic, 0, "hard links share data; nlink 1->2->3->1"),
    C(link_dir_eperm, 0, "link to a directory: EPERM"),
    C(link_eexist, 0, "link onto an existing name: EEXIST"),
    C(mknod_fifo, 0, "mkfifo/mknod: S_ISFIFO, O_NONBLOCK, data between processes"),
    C(xattr_user, 0, "user.* set/get/list/remove with 0, 100, 4 KiB, binary values"),
    C(xattr_flags, 0, "XATTR_CREATE/XATTR_REPLACE, ENODATA"),
    C(xattr_size, 0, "size queries and ERANGE"),
    C(xattr_security, NEED_ROOT, "security.* set/get/list/remove as root"),
    C(statfs, 0, "statfs/statvfs values non-zero and consistent around a 64 MiB write"),
    C(flock, 0, "flock exclusive/shared across processes, release on close, blocking"),
    C(fcntl_lock, 0, "POSIX record locks: conflicts, F_GETLK, split, close, F_SETLKW"),
    C(fallocate_extend, 0, "fallocate mode 0 extends with zeros"),
    C(fallocate_keep_size, 0, "fallocate FALLOC_FL_KEEP_SIZE keeps the size"),
    C(fallocate_punch_hole, 0, "FALLOC_FL_PUNCH_HOLE zeroes exactly the range"),
    C(mmap_shared_write, 0, "MAP_SHARED store + msync is seen by read()"),
    C(mmap_after_write, 0, "a fresh mapping sees write(); MAP_PRIVATE stays private"),
    C(mmap_ftruncate_extend, 0, "mapping of a file grown with ftruncate"),
    C(perm_read_eacces, NEED_ROOT | NEED_USER, "0600 root file, 0700 dir: EACCES for the user"),
    C(perm_create_eacces, NEED_ROOT | NEED_USER, "create/unlink/rename in a 0755 root dir: EACCES"),
    C(perm_sticky_eperm, NEED_ROOT | NEED_USER, "sticky 1777 dir: removing another's file: EPERM"),
    C(perm_chmod_eperm, NEED_ROOT | NEED_USER, "chmod/utimensat of a file he does not own: EPERM"),
    C(errno_mkdir_eexist, 0, "mkdir on an existing name: EEXIST"),
    C(errno_rmdir_notempty, 0, "rmdir of a non-empty directory: ENOTEMPTY"),
    C(errno_rmdir_enotdir, 0, "rmdir of a file or symlink: ENOTDIR"),
    C(errno_unlink_eisdir, 0, "unlink of a directory: EISDIR"),
    C(errno_create_in_file, 0, "creating anything under a file path: ENOTDIR"),
    C(errno_nametoolong, 0, "creating 256-byte names: ENAMETOOLONG"),
    C(errno_exdev, NEED_OTHER, "rename/link to --other-dir: EXDEV"),
};
#undef C
#define NCASES (sizeof cases / sizeof cases[0])

/* ------------------------------------------------------------------------ */
/* Runner                                                                    */

struct pt_opts {
    const char *dir;   /* absolute */
    const char *other; /* absolute, or NULL */
    uid_t uid;
    gid_t gid;
    bool have_user;
    bool verbose;
    unsigned timeout;
    bool run[NCASES];
    bool skipped[NCASES]; /* named in --skip */
};

/* Removes path and everything under it; 0 or -errno with a message. */
static int rm_rf(const char *path, char *msg, size_t cap)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) return 0;
        snprintf(msg, cap, "lstat(%s): %s", path, strerror(errno));
        return -errno;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d;
        struct dirent *e;
        int rc = 0;
        if ((st.st_mode & 0700) != 0700) chmod(path, 0700);
        if (!(d = opendir(path))) {
            snprintf(msg, cap, "opendir(%s): %s", path, strerror(errno));
            return -errno;
        }
        while ((e = readdir(d))) {
            char *child;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (asprintf(&child, "%s/%s", path, e->d_name) < 0) {
                rc = -ENOMEM;
                break;
            }
            if (rm_rf(child, msg, cap) < 0) rc = -EIO;
            free(child);
        }
        closedir(d);
        if (rc == 0 && rmdir(path) < 0) {
            snprintf(msg, cap, "rmdir(%s): %s", path, strerror(errno));
            rc = -errno;
        }
        return rc;
    }
    if (unlink(path) < 0) {
        snprintf(msg, cap, "unlink(%s): %s", path, strerror(errno));
        return -errno;
    }
    return 0;
}

/* Kills what is left of the case's process group and reaps it (this
 * process is a child subreaper, so orphaned helpers come back to it). */
static void reap_group(pid_t pgid)
{
    struct timespec t0 = now_mono();
    kill(-pgid, SIGKILL);
    while (ts_sub(now_mono(), t0) < 5) {
        pid_t r = waitpid(-pgid, NULL, WNOHANG);
        if (r < 0) break; /* ECHILD: nothing left */
        if (r == 0) sleep_ms(5);
    }
}

/* Runs one case; true if it passed, else false with why filled in. */
static bool run_case(const struct pt_opts *o, const struct pt_case *c, struct pt_report *rep,
                     char *why, size_t cap)
{
    char dir[PATH_MAX], other[PATH_MAX], cleanup[PATH_MAX + 256] = "";
    sigset_t chld, old;
    struct timespec t0;
    int status = 0, stop = 0;
    bool killed = false, passed = false;
    pid_t pid;

    if ((size_t)snprintf(dir, sizeof dir, "%s/posixtest.%d.%s", o->dir, (int)getpid(), c->name) >=
            sizeof dir ||
        (size_t)snprintf(other, sizeof other, "%s/posixtest.%d.%s", o->other ? o->other : "",
                         (int)getpid(), c->name) >= sizeof other) {
        snprintf(why, cap, "setup: DIR path too long");
        return false;
    }
    if (mkdir(dir, 0755) < 0 || chmod(dir, 0755) < 0) {
        snprintf(why, cap, "setup: mkdir/chmod %s: %s", dir, strerror(errno));
        return false;
    }
    if ((c->needs & NEED_OTHER) && mkdir(other, 0755) < 0) {
        snprintf(why, cap, "setup: mkdir %s: %s", other, strerror(errno));
        rm_rf(dir, cleanup, sizeof cleanup);
        return false;
    }
    memset(rep, 0, sizeof *rep);
    /* SIGCHLD ends the wait; SIGINT/SIGTERM/SIGHUP stop the run cleanly (the
     * case is in its own process group, so a terminal's ^C misses it). */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigaddset(&chld, SIGINT);
    sigaddset(&chld, SIGTERM);
    sigaddset(&chld, SIGHUP);
    sigprocmask(SIG_BLOCK, &chld, &old);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        struct pt t = {.dir = dir,
                       .other = (c->needs & NEED_OTHER) ? other : NULL,
                       .uid = o->uid,
                       .gid = o->gid,
                       .have_user = o->have_user,
                       .verbose = o->verbose,
                       .rep = rep};
        sigprocmask(SIG_SETMASK, &old, NULL);
        setpgid(0, 0);
        alarm(o->timeout);
        umask(022);
        if (chdir(dir) < 0) pt_fail(&t, __FILE__, __LINE__, "chdir(%s): %s", dir, strerror(errno));
        c->fn(&t);
        _exit(0);
    }
    if (pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        rm_rf(dir, cleanup, sizeof cleanup);
        return false;
    }
    setpgid(pid, pid);
    /* The alarm ends the case; this is the backstop if even that fails. */
    t0 = now_mono();
    for (;;) {
        struct timespec tick = {0, 100 * 1000000L};
        pid_t r = waitpid(pid, &status, WNOHANG);
        int sig;
        if (r == pid) break;
        if (!killed && (stop || ts_sub(now_mono(), t0) > o->timeout + 10)) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            killed = true;
        }
        sig = sigtimedwait(&chld, NULL, &tick);
        if (sig > 0 && sig != SIGCHLD) stop = sig;
    }
    reap_group(pid);
    if (stop) {
        rm_rf(dir, cleanup, sizeof cleanup);
        if (c->needs & NEED_OTHER) rm_rf(other, cleanup, sizeof cleanup);
        printf("Bail out! interrupted by %s during %s\n", strsignal(stop), c->name);
        fflush(stdout);
        signal(stop, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        raise(stop);
        _exit(128 + stop);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);

    if (killed) {
        snprintf(why, cap, "still running 10 s after its timeout; killed%s%s",
                 rep->claimed ? ": " : "", rep->claimed ? rep->msg : "");
    } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        snprintf(why, cap, "timed out after %u s%s%s", o->timeout,
                 rep->claimed ? "; first failure: " : "", rep->claimed ? rep->msg : "");
    } else if (WIFSIGNALED(status)) {
        snprintf(why, cap, "killed by signal %d (%s)%s%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), rep->claimed ? "; first failure: " : "",
                 rep->claimed ? rep->msg : "");
    } else if (rep->claimed) {
        snprintf(why, cap, "%s", rep->msg);
    } else if (WEXITSTATUS(status) != 0) {
        snprintf(why, cap, "exited with status %d", WEXITSTATUS(status));
    } else {
        passed = true;
    }
    if (rm_rf(dir, cleanup, sizeof cleanup) < 0 ||
        ((c->needs & NEED_OTHER) && rm_rf(other, cleanup, sizeof cleanup) < 0)) {
        size_t n = passed ? 0 : strlen(why);
        snprintf(why + n, cap - n, "%scleanup failed: %s", n ? "; " : "", cleanup);
        passed = false;
    }
    return passed;
}

static const char *fs_name(long type)
{
    switch (type) {
    case 0xEF53: return "ext2/3/4";
    case 0x01021994: return "tmpfs";
    case 0x65735546: return "fuse";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x6969: return "nfs";
    case 0x794C7630: return "overlayfs";
    default: return "unknown";
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: posixtest [-v] [--skip NAME,...] [--only NAME,...] [--list]\n"
               "                 [--uid UID --gid GID] [--other-dir DIR2] [--timeout SEC] DIR\n"
               "Runs POSIX cases in fresh subdirectories of DIR; prints TAP.\n"
               "  -v            progress notes as TAP comments\n"
               "  --skip/--only comma-separated case names (see --list)\n"
               "  --uid/--gid   unprivileged user for the permission cases (run as root)\n"
               "  --other-dir   a directory on another filesystem, for EXDEV\n"
               "  --timeout     seconds per case (default 60)\n");
}

/* Marks each name of a comma list in sel; -1 on an unknown name. */
static int mark_names(const char *list, bool *sel)
{
    char *copy = strdup(list), *save = NULL;
    int rc = 0;
    if (!copy) return -1;
    for (char *n = strtok_r(copy, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < NCASES && strcmp(cases[i].name, n); i++) continue;
        if (i == NCASES) {
            fprintf(stderr, "posixtest: unknown case \"%s\" (see --list)\n", n);
            rc = -1;
        } else {
            sel[i] = true;
        }
    }
    free(copy);
    return rc;
}

static int parse_id(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *s == 0 || *end || v > 0xFFFFFFFEul) return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct pt_opts *o, bool *list)
{
    static const struct option lo[] = {{"skip", required_argument, NULL, 's'},
                                       {"only", required_argument, NULL, 'o'},
                                       {"list", no_argument, NULL, 'l'},
                                       {"uid", required_argument, NULL, 'u'},
                                       {"gid", required_argument, NULL, 'g'},
                                       {"other-dir", required_argument, NULL, 'x'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    bool only[NCASES] = {false}, any_only = false, have_uid = false, have_gid = false;
    unsigned v;
    int ch;
    static char dir[PATH_MAX], other[PATH_MAX];
    o->timeout = 60;
    while ((ch = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
        switch (ch) {
        case 'v': o->verbose = true; break;
        case 's':
            if (mark_names(optarg, o->skipped) < 0) return -1;
            break;
        case 'o':
            if (mark_names(optarg, only) < 0) return -1;
            any_only = true;
            break;
        case 'l': *list = true; break;
        case 'u':
            if (parse_id(optarg, &v) < 0 || v == 0) {
                fprintf(stderr, "posixtest: --uid needs a non-zero number\n");
                return -1;
            }
            o->uid = v;
            have_uid = true;
            break;
        case 'g':
            if (parse_id(optarg, &v) < 0) {
                fprintf(stderr, "posixtest: --gid needs a number\n");
                return -1;
            }
            o->gid = v;
            have_gid = true;
            break;
        case 'x':
            if (!realpath(optarg, other)) {
                fprintf(stderr, "posixtest: --other-dir %s: %s\n", optarg, strerror(errno));
                return -1;
            }
            o->other = other;
            break;
        case 't':
            if (parse_id(optarg, &v) < 0 || v == 0 || v > 3600) {
                fprintf(stderr, "posixtest: --timeout needs 1..3600 seconds\n");
                return -1;
            }
            o->timeout = v;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (have_uid != have_gid) {
        fprintf(stderr, "posixtest: --uid and --gid go together\n");
        return -1;
    }
    o->have_user = have_uid;
    for (size_t i = 0; i < NCASES; i++) o->run[i] = !any_only || only[i];
    if (*list) return 0;
    if (optind != argc - 1) {
        usage(stderr);
        return -1;
    }
    if (!realpath(argv[optind], dir)) {
        fprintf(stderr, "posixtest: %s: %s\n", argv[optind], strerror(errno));
        return -1;
    }
    o->dir = dir;
    return 0;
}

int main(int argc, char **argv)
{
    struct pt_opts o = {0};
    struct pt_report *rep;
    struct statfs sf;
    bool list = false;
    size_t planned = 0, n = 0, passed = 0, failed = 0, skipped = 0;
    char why[3 * PATH_MAX], failures[4096] = "";

    if (parse_args(argc, argv, &o, &list) < 0) return 2;
    if (list) {
        for (size_t i = 0; i < NCASES; i++)
            if (o.run[i])
                printf("%-26s %s%s%s%s\n", cases[i].name, cases[i].what,
                       cases[i].needs & NEED_ROOT ? " [root]" : "",
                       cases[i].needs & NEED_USER ? " [--uid/--gid]" : "",
                       cases[i].needs & NEED_OTHER ? " [--other-dir]" : "");
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rep == MAP_FAILED) {
        perror("posixtest: mmap");
        return 2;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (statfs(o.dir, &sf) < 0) {
        fprintf(stderr, "posixtest: statfs %s: %s\n", o.dir, strerror(errno));
        return 2;
    }
    for (size_t i = 0; i < NCASES; i++) planned += o.run[i];
    printf("TAP version 13\n1..%zu\n", planned);
    printf("# posixtest on %s (%s, f_type 0x%lx), euid %d%s\n", o.dir, fs_name((long)sf.f_type),
           (unsigned long)sf.f_type, (int)geteuid(), o.have_user ? ", with --uid/--gid" : "");

    for (size_t i = 0; i < NCASES; i++) {
        const struct pt_case *c = &cases[i];
        const char *skip = NULL;
        if (!o.run[i]) continue;
        n++;
        if (o.skipped[i])
            skip = "skipped by --skip";
        else if ((c->needs & NEED_ROOT) && geteuid() != 0)
            skip = "needs root";
        else if ((c->needs & NEED_USER) && !o.have_user)
            skip = "needs --uid/--gid";
        else if ((c->needs & NEED_OTHER) && !o.other)
            skip = "needs --other-dir";
        if (skip) {
            printf("ok %zu - %s # SKIP %s\n", n, c->name, skip);
            skipped++;
            continue;
        }
        if (o.verbose) printf("# %s: %s\n", c->name, c->what);
        why[0] = 0;
        if (run_case(&o, c, rep, why, sizeof why)) {
            printf("ok %zu - %s\n", n, c->name);
            passed++;
        } else {
            size_t fl = strlen(failures);
            printf("not ok %zu - %s # %s\n", n, c->name, why);
            snprintf(failures + fl, sizeof failures - fl, "%s%s", fl ? ", " : "", c->name);
            failed++;
        }
    }
    printf("# %zu passed, %zu failed, %zu skipped, of %zu cases\n", passed, failed, skipped,
           planned);
    if (failed) printf("# failed: %s\n", failures);
    return failed ? 1 : 0;
}
