/* minikv gateway: the S3 error table (see s3err.h). */
#include "s3err.h"

struct s3err_row
{
    int status;
    const char *code;
    const char *message;
};

static const struct s3err_row s3err_rows[MKV_S3__COUNT] = {
#define MKV_S3_ROW(id, st, cd, msg) [MKV_S3_##id] = {st, cd, msg},
    MKV_S3_ERRORS(MKV_S3_ROW)
#undef MKV_S3_ROW
};

/* Anything outside the table is a bug in the caller; answer as for an
 * internal error rather than read out of bounds. */
static const struct s3err_row *s3err_row(enum mkv_s3_error e)
{
    if ((unsigned)e >= (unsigned)MKV_S3__COUNT) return &s3err_rows[MKV_S3_INTERNAL];
    return &s3err_rows[e];
}

int mkv_s3_error_status(enum mkv_s3_error e)
{
    return s3err_row(e)->status;
}

const char *mkv_s3_error_code(enum mkv_s3_error e)
{
    return s3err_row(e)->code;
}

const char *mkv_s3_error_message(enum mkv_s3_error e)
{
    return s3err_row(e)->message;
}
