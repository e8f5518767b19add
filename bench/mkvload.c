/* mkvload: an S3 load generator for benchmarks (not a test).
 *
 *   mkvload --endpoint http://127.0.0.1:8080 --op put|get|head|list
 *           [--size 4K] [--concurrency 16] [--duration 10s] [--keys 1000]
 *           [--bucket bench] [--prefix obj] [--unsigned] [--json]
 *
 * Each of --concurrency threads keeps one HTTP/1.1 connection open and
 * issues requests back to back, SigV4-signed (UNSIGNED-PAYLOAD) with
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or unsigned for plain HTTP
 * servers such as nginx (the reference). GET/HEAD read keys PREFIX-0 ..
 * PREFIX-(keys-1), which `--op put --fill` creates first. Prints
 * operations per second, throughput and latency percentiles. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { OP_PUT, OP_GET, OP_HEAD, OP_LIST };

struct opts
{
    char host[256];
    int port;
    int op;
    uint64_t size;
    int concurrency;
    double duration;
    uint64_t keys;
    const char *bucket;
    const char *prefix;
    int unsigned_req;
    int fill;
    int json;
    const char *access;
    const char *secret;
    const char *region;
};

struct worker
{
    struct opts *o;
    int id;
    pthread_t thread;
    uint64_t ops, errors, bytes;
    uint32_t *lat_us; /* one per op, up to cap */
    size_t nlat, caplat;
    uint64_t fill_from, fill_to;
    char err[256];
};

static volatile int stop_flag;

#define MKV_MINI(a, b) ((a) < (b) ? (a) : (b))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    uint64_t m = 1;
    if (end == s || v < 0) return -1;
    switch (*end) {
    case 'k': case 'K': m = 1024; end++; break;
    case 'm': case 'M': m = 1024 * 1024; end++; break;
    case 'g': case 'G': m = 1024ull * 1024 * 1024; end++; break;
    }
    if (*end) return -1;
    *out = (uint64_t)(v * (double)m);
    return 0;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

/* Writes the Authorization and x-amz-* headers for a request. */
static void sign(const struct opts *o, const char *method, const char *path, const char *query,
                 char *headers, size_t cap)
{
    char amz[17], date8[9], creq[2048], sts[1024], hash[65], sig[65], scope[128], hostport[300];
    unsigned char k[32], h[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(amz, sizeof amz, "%Y%m%dT%H%M%SZ", &tm);
    memcpy(date8, amz, 8);
    date8[8] = '\0';
    snprintf(hostport, sizeof hostport, "%s:%d", o->host, o->port);
    snprintf(creq, sizeof creq,
             "%s\n%s\n%s\nhost:%s\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:%s\n\n"
             "host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD",
             method, path, query, hostport, amz);
    SHA256((const unsigned char *)creq, strlen(creq), h);
    hex(h, 32, hash);
    snprintf(scope, sizeof scope, "%s/%s/s3/aws4_request", date8, o->region);
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz, scope, hash);
    {
        char kstart[300];
        snprintf(kstart, sizeof kstart, "AWS4%s", o->secret);
        hmac256(kstart, strlen(kstart), date8, k);
        hmac256(k, 32, o->region, k);
        hmac256(k, 32, "s3", k);
        hmac256(k, 32, "aws4_request", k);
        hmac256(k, 32, sts, h);
    }
    hex(h, 32, sig);
    snprintf(headers, cap,
             "x-amz-date: %s\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"
             "Authorization: AWS4-HMAC-SHA256 Credential=%s/%s, "
             "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=%s\r\n",
             amz, o->access, scope, sig);
}

static int connect_to(const struct opts *o)
{
    struct sockaddr_in sin = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0) return -1;
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &sin.sin_addr) != 1 || connect(fd, (struct sockaddr *)&sin, sizeof sin)) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one response; returns the status, or -1. Body bytes are counted
 * and discarded. */
static int read_response(int fd, char *buf, size_t cap, int head, uint64_t *body_bytes,
                         char *snippet, size_t snippet_cap)
{
    size_t have = 0;
    char *end = NULL;
    long long clen = -1;
    int status;
    *body_bytes = 0;
    while (!end) {
        ssize_t n = read(fd, buf + have, cap - have - 1);
        if (n <= 0) return -1;
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (!end && have >= cap - 1) return -1;
    }
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
    for (char *l = strstr(buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
        if (!strncasecmp(l + 2, "Content-Length:", 15)) clen = atoll(l + 17);
        if (!strncasecmp(l + 2, "Transfer-Encoding: chunked", 26)) return -1; /* not used by minikv for S3 */
    }
    if (head || status == 204 || status == 304) clen = 0;
    if (clen < 0) return -1;
    {
        size_t hdr = (size_t)(end + 4 - buf);
        uint64_t got = have - hdr;
        if (snippet_cap && status / 100 != 2)
            snprintf(snippet, snippet_cap, "%.*s", (int)MKV_MINI(got, snippet_cap - 1), buf + hdr);
        while ((long long)got < clen) {
            ssize_t n = read(fd, buf, cap);
            if (n <= 0) return -1;
            got += (uint64_t)n;
        }
        *body_bytes = got;
    }
    return status;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct opts *o = w->o;
    size_t bufcap = 1 << 20;
    char *buf = malloc(bufcap), req[4096], auth[1024], path[512], query[256], snippet[160] = "";
    char *payload = NULL;
    int fd = -1;
    uint64_t i = 0, seed = (uint64_t)w->id * 7919 + 1;
    if (!buf) return NULL;
    if (o->op == OP_PUT) {
        payload = malloc(o->size ? o->size : 1);
        if (!payload) return NULL;
        for (uint64_t k = 0; k < o->size; k++) payload[k] = (char)(k * 31 + (uint64_t)w->id);
    }
    while (!stop_flag) {
        const char *method = o->op == OP_PUT ? "PUT" : o->op == OP_HEAD ? "HEAD" : "GET";
        uint64_t key, body = 0;
        double t0;
        int status, n;
        if (w->fill_to) {
            if (w->fill_from + i >= w->fill_to) break;
            key = w->fill_from + i;
        } else {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            key = (seed >> 33) % o->keys;
        }
        i++;
        if (o->op == OP_LIST) {
            snprintf(path, sizeof path, "/%s", o->bucket);
            snprintf(query, sizeof query, "list-type=2&max-keys=100&prefix=%s", o->prefix);
        } else {
            snprintf(path, sizeof path, "%s%s/%s-%" PRIu64, o->bucket[0] ? "/" : "", o->bucket, o->prefix, key);
            query[0] = '\0';
        }
        if (fd < 0 && (fd = connect_to(o)) < 0) {
            snprintf(w->err, sizeof w->err, "connect: %s", strerror(errno));
            w->errors++;
            usleep(10000);
            continue;
        }
        auth[0] = '\0';
        if (!o->unsigned_req) sign(o, method, path, query, auth, sizeof auth);
        n = snprintf(req, sizeof req, "%s %s%s%s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Length: %" PRIu64 "\r\n\r\n",
                     method, path, query[0] ? "?" : "", query, o->host, o->port, auth,
                     o->op == OP_PUT ? o->size : 0);
        t0 = now_s();
        if (write_all(fd, req, (size_t)n) || (o->op == OP_PUT && o->size && write_all(fd, payload, o->size)) ||
            (status = read_response(fd, buf, bufcap, o->op == OP_HEAD, &body, snippet, sizeof snippet)) < 0) {
            snprintf(w->err, sizeof w->err, "connection failed: %s", strerror(errno));
            w->errors++;
            close(fd);
            fd = -1;
            continue;
        }
        if (status / 100 != 2) {
            snprintf(w->err, sizeof w->err, "HTTP %d %s", status, snippet);
            w->errors++;
            continue;
        }
        w->ops++;
        w->bytes += o->op == OP_PUT ? o->size : body;
        if (w->nlat == w->caplat) {
            size_t cap = w->caplat ? w->caplat * 2 : 4096;
            uint32_t *p = realloc(w->lat_us, cap * sizeof *p);
            if (!p) break;
            w->lat_us = p;
            w->caplat = cap;
        }
        w->lat_us[w->nlat++] = (uint32_t)((now_s() - t0) * 1e6);
    }
    if (fd >= 0) close(fd);
    free(buf);
    free(payload);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: mkvload --endpoint http://HOST:PORT --op put|get|head|list [options]\n"
               "  --size SIZE          object size for put (default 4K)\n"
               "  --concurrency N      connections, one thread each (default 16)\n"
               "  --duration SECONDS   how long to run (default 10)\n"
               "  --keys N             key space PREFIX-0..N-1 (default 1000)\n"
               "  --bucket NAME        bucket (default bench; \"\" for plain paths)\n"
               "  --prefix TEXT        key prefix (default obj)\n"
               "  --fill               put every key once, then stop (prepares get/head)\n"
               "  --unsigned           do not sign (for a plain HTTP reference server)\n"
               "  --json               print one JSON object\n"
               "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.\n");
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct worker *ws;
    const char *endpoint = NULL;
    double t0, elapsed;
    uint64_t ops = 0, errors = 0, bytes = 0;
    size_t nlat = 0, k = 0;
    uint32_t *all;
    const char *opname = "get";
    o.size = 4096;
    o.concurrency = 16;
    o.duration = 10;
    o.keys = 1000;
    o.bucket = "bench";
    o.prefix = "obj";
    o.region = "us-east-1";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--unsigned")) o.unsigned_req = 1;
        else if (!strcmp(a, "--fill")) o.fill = 1;
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!v) {
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--endpoint")) endpoint = v, i++;
        else if (!strcmp(a, "--op")) opname = v, i++;
        else if (!strcmp(a, "--size")) {
            if (parse_size(v, &o.size)) return fprintf(stderr, "mkvload: bad --size\n"), 2;
            i++;
        } else if (!strcmp(a, "--concurrency")) o.concurrency = atoi(v), i++;
        else if (!strcmp(a, "--duration")) o.duration = atof(v), i++;
        else if (!strcmp(a, "--keys")) o.keys = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--bucket")) o.bucket = v, i++;
        else if (!strcmp(a, "--prefix")) o.prefix = v, i++;
        else {
            fprintf(stderr, "mkvload: unknown option %s\n", a);
            return 2;
        }
    }
    if (!endpoint || sscanf(endpoint, "http://%255[^:]:%d", o.host, &o.port) != 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(opname, "put")) o.op = OP_PUT;
    else if (!strcmp(opname, "get")) o.op = OP_GET;
    else if (!strcmp(opname, "head")) o.op = OP_HEAD;
    else if (!strcmp(opname, "list")) o.op = OP_LIST;
    else return fprintf(stderr, "mkvload: --op must be put, get, head or list\n"), 2;
    o.access = getenv("AWS_ACCESS_KEY_ID");
    o.secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (!o.unsigned_req && (!o.access || !o.secret))
        return fprintf(stderr, "mkvload: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n"), 2;
    if (o.concurrency < 1 || o.keys < 1) return fprintf(stderr, "mkvload: bad concurrency or keys\n"), 2;
    if (o.fill && o.op != OP_PUT) return fprintf(stderr, "mkvload: --fill needs --op put\n"), 2;
    ws = calloc((size_t)o.concurrency, sizeof *ws);
    if (!ws) return 1;
    t0 = now_s();
    for (int i = 0; i < o.concurrency; i++) {
        ws[i].o = &o;
        ws[i].id = i;
        if (o.fill) {
            ws[i].fill_from = o.keys * (uint64_t)i / (uint64_t)o.concurrency;
            ws[i].fill_to = o.keys * (uint64_t)(i + 1) / (uint64_t)o.concurrency;
            if (ws[i].fill_to == ws[i].fill_from) continue;
        }
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
    }
    if (!o.fill) {
        while (now_s() - t0 < o.duration) usleep(20000);
        stop_flag = 1;
    }
    for (int i = 0; i < o.concurrency; i++)
        if (ws[i].thread) pthread_join(ws[i].thread, NULL);
    elapsed = now_s() - t0;
    for (int i = 0; i < o.concurrency; i++) {
        ops += ws[i].ops;
        errors += ws[i].errors;
        bytes += ws[i].bytes;
        nlat += ws[i].nlat;
    }
    all = malloc((nlat ? nlat : 1) * sizeof *all);
    for (int i = 0; i < o.concurrency; i++) {
        if (all && ws[i].nlat) memcpy(all + k, ws[i].lat_us, ws[i].nlat * sizeof *all);
        k += ws[i].nlat;
        if (ws[i].errors && ws[i].err[0]) fprintf(stderr, "mkvload: worker %d: %" PRIu64 " errors, last: %s\n", i, ws[i].errors, ws[i].err);
        free(ws[i].lat_us);
    }
    if (all && nlat) qsort(all, nlat, sizeof *all, cmp_u32);
#define PCT(p) (nlat ? all[(size_t)((double)(nlat - 1) * (p))] / 1000.0 : 0.0)
    if (o.json)
        printf("{\"op\":\"%s\",\"size\":%" PRIu64 ",\"concurrency\":%d,\"seconds\":%.2f,\"ops\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"ops_per_s\":%.1f,\"mib_per_s\":%.2f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
               "\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
               opname, o.size, o.concurrency, elapsed, ops, errors, (double)ops / elapsed,
               (double)bytes / elapsed / 1048576.0, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0));
    else
        printf("%s size=%" PRIu64 " c=%d: %" PRIu64 " ops in %.2fs = %.1f ops/s, %.2f MiB/s, "
               "p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms, errors %" PRIu64 "\n",
               opname, o.size, o.concurrency, ops, elapsed, (double)ops / elapsed,
               (double)bytes / elapsed / 1048576.0, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0), errors);
    free(all);
    free(ws);
    return errors && !ops ? 1 : 0;
}
