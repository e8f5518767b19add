/* Unit tests: option tables, config files, value parsers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "minikv/config.h"

struct settings
{
    char *data;
    char *listen;
    long long workers;
    int fsync;
    uint64_t segment;
    uint64_t timeout_ms;
};

static const struct mkv_option opts[] = {
    MKV_OPT("data", MKV_OPT_STR, struct settings, data, NULL, "DIR", "data directory", NULL),
    MKV_OPT("listen", MKV_OPT_STR, struct settings, listen, "127.0.0.1:8080", "HOST:PORT",
            "address", mkv_validate_hostport),
    MKV_OPT("workers", MKV_OPT_INT, struct settings, workers, "2", "N", "threads", NULL),
    MKV_OPT("fsync", MKV_OPT_BOOL, struct settings, fsync, "1", NULL, "sync writes", NULL),
    MKV_OPT("segment-size", MKV_OPT_SIZE, struct settings, segment, "256M", "SIZE", "segment",
            NULL),
    MKV_OPT("timeout", MKV_OPT_DURATION, struct settings, timeout_ms, "30s", "DUR", "timeout",
            NULL),
};

static void parsers(void **state)
{
    (void)state;
    uint64_t v;
    char host[64];
    int port;
    assert_int_equal(mkv_parse_size("64M", &v), 0);
    assert_true(v == 64ull << 20);
    assert_int_equal(mkv_parse_size("1GiB", &v), 0);
    assert_true(v == 1ull << 30);
    assert_int_equal(mkv_parse_size("12", &v), 0);
    assert_true(v == 12);
    assert_int_equal(mkv_parse_size("-1", &v), -EINVAL);
    assert_int_equal(mkv_parse_size("3X", &v), -EINVAL);
    assert_int_equal(mkv_parse_size("99999999999999999999T", &v), -EINVAL);
    assert_int_equal(mkv_parse_duration_ms("250ms", &v), 0);
    assert_true(v == 250);
    assert_int_equal(mkv_parse_duration_ms("2m", &v), 0);
    assert_true(v == 120000);
    assert_int_equal(mkv_parse_duration_ms("5", &v), 0);
    assert_true(v == 5000);
    assert_int_equal(mkv_parse_hostport("127.0.0.1:7000", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7000);
    assert_int_equal(mkv_parse_hostport("[::1]:80", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(mkv_parse_hostport("nohost", host, sizeof host, &port), -EINVAL);
    assert_int_equal(mkv_parse_hostport("h:70000", host, sizeof host, &port), -EINVAL);
    assert_int_equal(mkv_parse_hostport(":80", host, sizeof host, &port), -EINVAL);
}

static void defaults_file_and_flags(void **state)
{
    (void)state;
    char path[] = "/tmp/mkv-config-XXXXXX", err[256];
    struct settings s = {0};
    int fd = mkstemp(path), first;
    FILE *f = fdopen(fd, "w");
    char *argv[] = {"prog", "--config", path, "--workers=8", "--no-fsync", "serve", NULL};
    fprintf(f, "# comment\nlisten = 127.0.0.1:9000\n[other]\nworkers = 99\n[server]\n"
               "segment-size = 1G\ntimeout = \"500ms\"\n");
    fclose(f);
    assert_int_equal(mkv_config_load(opts, MKV_ARRAY_SIZE(opts), &s, "server", 6, argv, &first,
                                     err, sizeof err),
                     0);
    assert_string_equal(s.listen, "127.0.0.1:9000"); /* file over default */
    assert_int_equal(s.workers, 8);                  /* flag over default; [other] ignored */
    assert_int_equal(s.fsync, 0);
    assert_true(s.segment == 1ull << 30);
    assert_true(s.timeout_ms == 500);
    assert_null(s.data);
    assert_int_equal(first, 5);
    assert_string_equal(argv[first], "serve");
    mkv_config_free(opts, MKV_ARRAY_SIZE(opts), &s);
    unlink(path);
}

static void errors_name_the_option(void **state)
{
    (void)state;
    char err[256];
    struct settings s = {0};
    char *a1[] = {"prog", "--listen", "nowhere", NULL};
    char *a2[] = {"prog", "--bogus", NULL};
    char *a3[] = {"prog", "--workers", NULL};
    char *a4[] = {"prog", "--config", "/nonexistent/minikv.conf", NULL};
    assert_int_equal(mkv_config_load(opts, MKV_ARRAY_SIZE(opts), &s, NULL, 3, a1, NULL, err,
                                     sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "nowhere"));
    assert_int_equal(mkv_config_load(opts, MKV_ARRAY_SIZE(opts), &s, NULL, 2, a2, NULL, err,
                                     sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "--bogus"));
    assert_int_equal(mkv_config_load(opts, MKV_ARRAY_SIZE(opts), &s, NULL, 2, a3, NULL, err,
                                     sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "needs a value"));
    assert_int_equal(mkv_config_load(opts, MKV_ARRAY_SIZE(opts), &s, NULL, 3, a4, NULL, err,
                                     sizeof err),
                     -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/minikv.conf"));
    mkv_config_free(opts, MKV_ARRAY_SIZE(opts), &s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parsers),
        cmocka_unit_test(defaults_file_and_flags),
        cmocka_unit_test(errors_name_the_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
