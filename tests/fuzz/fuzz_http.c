/* Fuzz target: the HTTP server's whole request path. Each input is what a
 * client sends on one connection (then it closes its side); the server
 * side of a socketpair is handed to a real mkv_http_server, whose loop runs
 * until the connection is gone. The handler reads bodies, streams and
 * answers, so parsing, body delivery, pipelining, discard, error answers
 * and closing all run. Nothing may crash, hang or leak. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "http.h"

static uv_loop_t loop;
static struct mkv_http_server *srv;
static const char blob[4096];

struct hctx
{
    size_t got;
    int writes;
};

static void body_cb(struct mkv_http_req *r, int status, const uint8_t *data, size_t len)
{
    struct hctx *h = r->data;
    (void)data;
    if (status < 0) {
        if (status != -ECONNRESET) {
            (void)mkv_http_respond(r, 400, NULL, 0, "bad", 3);
            free(h);
            r->data = NULL;
        }
        return;
    }
    h->got += len;
    if (len) {
        if (h->got > 100 && h->got < 300) {
            mkv_http_pause_body(r); /* and straight back: exercises the flags */
            mkv_http_resume_body(r);
        }
        return;
    }
    (void)mkv_http_respond(r, 200, NULL, 0, "done", 4);
    free(h);
    r->data = NULL;
}

static void write_cb(struct mkv_http_req *r, int status, void *arg)
{
    struct hctx *h = arg;
    (void)r;
    (void)status;
    if (--h->writes == 0) free(h);
}

static void on_request(struct mkv_http_req *r, void *ctx)
{
    struct mkv_http_header hd[] = {{"X-Path", r->path[0] ? "p" : "e"}};
    char q[64];
    (void)ctx;
    r->data = NULL;
    (void)mkv_http_header(r, "host");
    (void)mkv_http_query(r, "a", q, sizeof q);
    switch (r->path[1]) {
    case 'e': { /* read the body */
        struct hctx *h = calloc(1, sizeof *h);
        if (!h) break;
        r->data = h;
        if (mkv_http_read_body(r, body_cb)) {
            free(h);
            r->data = NULL;
            (void)mkv_http_respond(r, 500, NULL, 0, NULL, 0);
        }
        return;
    }
    case 's': { /* streamed, chunked or with a length, maybe short */
        struct hctx *h = calloc(1, sizeof *h);
        int64_t len = r->path[2] == 'c' ? -1 : 3000;
        if (!h) break;
        if (mkv_http_start(r, 200, hd, 1, len)) {
            free(h);
            break;
        }
        h->writes = 1; /* held until finish */
        for (int i = 0; i < 3; i++)
            if (mkv_http_write(r, blob, 1000 - (r->path[2] == 't') * 500, write_cb, h) == 0)
                h->writes++;
        (void)mkv_http_finish(r);
        if (--h->writes == 0) free(h);
        return;
    }
    case 'c': mkv_http_close_after(r); break;
    default: break;
    }
    (void)mkv_http_respond(r, 200, hd, 1, "ok", 2);
}

static void on_abort(struct mkv_http_req *r, void *ctx)
{
    (void)ctx;
    free(r->data);
}

static const struct mkv_http_handler handler = {on_request, on_abort};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    char sink[65536];
    size_t off = 0;
    if (!srv) {
        struct mkv_http_server_opts o = {.max_request_line = 512, .max_header_bytes = 2048,
                                         .max_headers = 16, .header_timeout_ms = 200,
                                         .idle_timeout_ms = 200, .body_timeout_ms = 200};
        char err[128];
        uv_loop_init(&loop);
        if (mkv_http_server_start(&loop, &o, &handler, NULL, &srv, err, sizeof err)) abort();
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 0;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    if (mkv_http_server_adopt(srv, sv[1])) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    /* feed the input in a few writes, letting the server run in between */
    for (int rounds = 0; mkv_http_server_connections(srv) > 0 && rounds < 100000; rounds++) {
        if (off < size) {
            size_t n = size - off < 700 ? size - off : 700;
            ssize_t k = send(sv[0], data + off, n, MSG_NOSIGNAL);
            if (k > 0) off += (size_t)k;
            if (off == size) shutdown(sv[0], SHUT_WR);
        } else if (size == 0 && rounds == 0) {
            shutdown(sv[0], SHUT_WR);
        }
        while (recv(sv[0], sink, sizeof sink, 0) > 0)
            ;
        uv_run(&loop, off < size ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    }
    close(sv[0]);
    /* closes finish on the next turns */
    while (mkv_http_server_connections(srv) > 0) uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
