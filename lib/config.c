/* minikv: option tables, config files and generated --help. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "minikv/config.h"
#include "minikv/err.h"

int mkv_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1;
    if (!s || !*s || *s == '-') return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s) return -EINVAL;
    switch (toupper((unsigned char)*end)) {
    case '\0': break;
    case 'K':
        mul = 1ull << 10;
        end++;
        break;
    case 'M':
        mul = 1ull << 20;
        end++;
        break;
    case 'G':
        mul = 1ull << 30;
        end++;
        break;
    case 'T':
        mul = 1ull << 40;
        end++;
        break;
    default: return -EINVAL;
    }
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return -EINVAL;
    if (v > UINT64_MAX / mul) return -EINVAL;
    *out = v * mul;
    return 0;
}

int mkv_parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1000; /* a bare number is seconds */
    if (!s || !*s || *s == '-') return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s) return -EINVAL;
    if (strcmp(end, "ms") == 0) mul = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0') mul = 1000;
    else if (strcmp(end, "m") == 0) mul = 60000;
    else if (strcmp(end, "h") == 0) mul = 3600000;
    else return -EINVAL;
    if (v > UINT64_MAX / mul) return -EINVAL;
    *out = v * mul;
    return 0;
}

int mkv_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t hl;
    char *end;
    long p;
    if (!s || !*s) return -EINVAL;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -EINVAL;
        hl = (size_t)(rb - s - 1);
        s++;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen) return -EINVAL;
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535) return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int mkv_validate_hostport(const char *value, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (mkv_parse_hostport(value, host, sizeof host, &port))
        return mkv_errf(err, errlen, -EINVAL, "'%s' is not HOST:PORT", value);
    return 0;
}

static const struct mkv_option *find_opt(const struct mkv_option *opts, size_t n, const char *name,
                                         size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) return &opts[i];
    return NULL;
}

static int set_value(const struct mkv_option *o, void *settings, const char *value, char *err,
                     size_t errlen)
{
    char *field = (char *)settings + o->offset;
    if (o->validate && value) {
        char msg[256] = "";
        int rv = o->validate(value, msg, sizeof msg);
        if (rv) {
            if (err && errlen) snprintf(err, errlen, "--%s: %s", o->name, msg);
            return rv;
        }
    }
    switch (o->type) {
    case MKV_OPT_STR: {
        char **dst = (char **)(void *)field;
        char *copy = value ? strdup(value) : NULL;
        if (value && !copy) return mkv_errf(err, errlen, -ENOMEM, "--%s", o->name);
        free(*dst);
        *dst = copy;
        return 0;
    }
    case MKV_OPT_INT: {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(value, &end, 0);
        if (errno || *end || end == value)
            return mkv_errf(err, errlen, -EINVAL, "--%s: '%s' is not an integer", o->name, value);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case MKV_OPT_BOOL: {
        int v;
        if (!strcmp(value, "1") || !strcasecmp(value, "yes") || !strcasecmp(value, "true") ||
            !strcasecmp(value, "on"))
            v = 1;
        else if (!strcmp(value, "0") || !strcasecmp(value, "no") || !strcasecmp(value, "false") ||
                 !strcasecmp(value, "off"))
            v = 0;
        else return mkv_errf(err, errlen, -EINVAL, "--%s: '%s' is not yes/no", o->name, value);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case MKV_OPT_SIZE: {
        uint64_t v;
        if (mkv_parse_size(value, &v))
            return mkv_errf(err, errlen, -EINVAL, "--%s: '%s' is not a size (e.g. 64M)", o->name,
                            value);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case MKV_OPT_DURATION: {
        uint64_t v;
        if (mkv_parse_duration_ms(value, &v))
            return mkv_errf(err, errlen, -EINVAL, "--%s: '%s' is not a duration (e.g. 30s)",
                            o->name, value);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    }
    return -EINVAL;
}

int mkv_config_set(const struct mkv_option *opts, size_t n, void *settings, const char *name,
                   const char *value, char *err, size_t errlen)
{
    const struct mkv_option *o = find_opt(opts, n, name, strlen(name));
    if (!o) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return -ENOENT;
    }
    return set_value(o, settings, value, err, errlen);
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s)) s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

int mkv_config_file(const struct mkv_option *opts, size_t n, void *settings, const char *section,
                    const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int lineno = 0, in_scope = 1, rv = 0;
    if (!f) return mkv_errf(err, errlen, -errno, "config file %s", path);
    while (fgets(line, sizeof line, f)) {
        char *s, *eq, *key, *val, sub[512];
        lineno++;
        s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *rb = strchr(s, ']');
            if (!rb) {
                rv = -EINVAL;
                snprintf(err, errlen, "%s:%d: unterminated section header", path, lineno);
                break;
            }
            *rb = '\0';
            in_scope = section && strcmp(trim(s + 1), section) == 0;
            continue;
        }
        if (!in_scope) continue;
        eq = strchr(s, '=');
        if (!eq) {
            rv = -EINVAL;
            snprintf(err, errlen, "%s:%d: expected 'name = value'", path, lineno);
            break;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        if (strlen(val) >= 2 && val[0] == '"' && val[strlen(val) - 1] == '"') {
            val[strlen(val) - 1] = '\0';
            val++;
        }
        rv = mkv_config_set(opts, n, settings, key, val, sub, sizeof sub);
        if (rv) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
            break;
        }
    }
    fclose(f);
    return rv;
}

static int config_load(const struct mkv_option *opts, size_t n, void *settings, const char *section,
                       int argc, char **argv, int *first_arg, char *err, size_t errlen);

int mkv_config_load(const struct mkv_option *opts, size_t n, void *settings, const char *section,
                    int argc, char **argv, int *first_arg, char *err, size_t errlen)
{
    int rv = config_load(opts, n, settings, section, argc, argv, first_arg, err, errlen);
    if (rv) mkv_config_free(opts, n, settings); /* what was set before the error */
    return rv;
}

static int config_load(const struct mkv_option *opts, size_t n, void *settings, const char *section,
                       int argc, char **argv, int *first_arg, char *err, size_t errlen)
{
    int i, rv;
    for (size_t k = 0; k < n; k++) {
        if (!opts[k].def) continue;
        rv = set_value(&opts[k], settings, opts[k].def, err, errlen);
        if (rv) return rv;
    }
    /* The config file first, wherever --config appears. */
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            rv = mkv_config_file(opts, n, settings, section, argv[i + 1], err, errlen);
            if (rv) return rv;
            i++;
        } else if (!strncmp(argv[i], "--config=", 9)) {
            rv = mkv_config_file(opts, n, settings, section, argv[i] + 9, err, errlen);
            if (rv) return rv;
        }
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *val = NULL;
        const struct mkv_option *o;
        size_t len;
        int negate = 0;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (strncmp(a, "--", 2) != 0) break;
        name = a + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 6 && !strncmp(name, "config", 6)) {
            if (!eq) i++;
            continue;
        }
        o = find_opt(opts, n, name, len);
        if (!o && len > 3 && !strncmp(name, "no-", 3)) {
            o = find_opt(opts, n, name + 3, len - 3);
            if (o && o->type == MKV_OPT_BOOL) negate = 1;
            else o = NULL;
        }
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)len, name);
            return -EINVAL;
        }
        if (eq) {
            val = eq + 1;
        } else if (o->type == MKV_OPT_BOOL) {
            val = negate ? "0" : "1";
        } else {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option '--%s' needs a value (%s)", o->name,
                         o->arg ? o->arg : "VALUE");
                return -EINVAL;
            }
            val = argv[++i];
        }
        rv = set_value(o, settings, val, err, errlen);
        if (rv) return rv;
    }
    if (first_arg) *first_arg = i;
    return 0;
}

void mkv_config_free(const struct mkv_option *opts, size_t n, void *settings)
{
    for (size_t k = 0; k < n; k++) {
        if (opts[k].type == MKV_OPT_STR) {
            char **p = (char **)(void *)((char *)settings + opts[k].offset);
            free(*p);
            *p = NULL;
        }
    }
}

void mkv_config_usage(FILE *out, const struct mkv_option *opts, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        char flag[128];
        const struct mkv_option *o = &opts[k];
        if (o->type == MKV_OPT_BOOL) snprintf(flag, sizeof flag, "--%s, --no-%s", o->name, o->name);
        else snprintf(flag, sizeof flag, "--%s %s", o->name, o->arg ? o->arg : "VALUE");
        fprintf(out, "  %-30s %s", flag, o->help);
        if (o->def && *o->def)
            fprintf(out, " (default: %s)",
                    o->type == MKV_OPT_BOOL ? (strcmp(o->def, "1") ? "no" : "yes") : o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-30s %s\n", "--config FILE",
            "read options from FILE (\"name = value\" lines)");
    fprintf(out, "  %-30s %s\n", "-h, --help", "show this help and exit");
    fprintf(out, "  %-30s %s\n", "--version", "show the version and exit");
}

int mkv_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) return 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    }
    return 0;
}

int mkv_wants_version(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) return 0;
        if (!strcmp(argv[i], "--version")) return 1;
    }
    return 0;
}
