/* minikv: configuration as one table of options.
 *
 * Each program declares a table of mkv_option entries pointing into its own
 * settings struct. Values come from, in increasing priority: the table's
 * defaults, a config file (--config FILE, "name = value" lines, '#'
 * comments, optional [section] headers of which only the program's own
 * section and the unnamed top are read), and command-line flags (--name
 * VALUE or --name=VALUE; booleans also as --name / --no-name). --help
 * output is generated from the same table, so it cannot drift. */
#ifndef MKV_CONFIG_H
#define MKV_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

enum mkv_opt_type {
    MKV_OPT_STR = 1, /* char *, owned by the settings struct (mkv_config_free) */
    MKV_OPT_INT,     /* long long */
    MKV_OPT_BOOL,    /* int, 0 or 1 */
    MKV_OPT_SIZE,    /* uint64_t bytes; accepts K, M, G, T suffixes (powers of 1024) */
    MKV_OPT_DURATION /* uint64_t milliseconds; accepts ms, s, m, h suffixes */
};

struct mkv_option
{
    const char *name; /* flag --name and config-file key */
    int type;
    size_t offset;    /* of the field in the settings struct */
    const char *def;  /* default, as text (NULL: none) */
    const char *arg;  /* placeholder in --help ("DIR") */
    const char *help; /* one line */
    /* Optional check of the parsed text; fills err and returns -EINVAL. */
    int (*validate)(const char *value, char *err, size_t errlen);
};

#define MKV_OPT(name, type, st, field, def, arg, help, v) \
    {name, type, offsetof(st, field), def, arg, help, v}

/* Applies defaults, then the config file named by --config (if any), then
 * flags. Stops at the first argument that is not an option (or after "--")
 * and stores its index in *first_arg. --help and --version are not handled
 * here: a program checks for them before calling. Returns 0 or -EINVAL with
 * a message in err. */
MKV_API int mkv_config_load(const struct mkv_option *opts, size_t n, void *settings,
                            const char *section, int argc, char **argv, int *first_arg,
                            char *err, size_t errlen);
/* Sets one option by name from text; -ENOENT if the name is unknown. */
MKV_API int mkv_config_set(const struct mkv_option *opts, size_t n, void *settings,
                           const char *name, const char *value, char *err, size_t errlen);
/* Reads a config file into settings. */
MKV_API int mkv_config_file(const struct mkv_option *opts, size_t n, void *settings,
                            const char *section, const char *path, char *err, size_t errlen);
/* Frees the STR options of settings. */
MKV_API void mkv_config_free(const struct mkv_option *opts, size_t n, void *settings);
/* Prints the options with their defaults, one per line, as --help does. */
MKV_API void mkv_config_usage(FILE *out, const struct mkv_option *opts, size_t n);

/* Parsers shared by the table and by programs. Return 0 or -EINVAL. */
MKV_API int mkv_parse_size(const char *s, uint64_t *out);
MKV_API int mkv_parse_duration_ms(const char *s, uint64_t *out);
/* Splits "host:port" (IPv4, [IPv6] or a name); host gets at most hostlen-1 bytes. */
MKV_API int mkv_parse_hostport(const char *s, char *host, size_t hostlen, int *port);
/* Validator for HOST:PORT options. */
MKV_API int mkv_validate_hostport(const char *value, char *err, size_t errlen);

/* 1 when argv holds --help or -h before any "--". */
MKV_API int mkv_wants_help(int argc, char **argv);
MKV_API int mkv_wants_version(int argc, char **argv);

#endif /* MKV_CONFIG_H */
