/* minikv: latency histograms and counters for /metrics.
 *
 * A histogram has fixed bucket bounds (seconds) so that every component's
 * histograms render the same way in Prometheus text format. Updates are
 * relaxed atomics: any thread may observe, any thread may render. */
#ifndef MKV_METRICS_H
#define MKV_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "common.h"

#define MKV_HIST_BUCKETS 16
/* Upper bounds of the buckets in seconds, the last one being +Inf. */
MKV_API extern const double mkv_hist_bounds[MKV_HIST_BUCKETS];

struct mkv_hist
{
    uint64_t bucket[MKV_HIST_BUCKETS]; /* non-cumulative counts */
    uint64_t count;
    uint64_t sum_ns;
};

/* Records one observation of ns nanoseconds. */
MKV_API void mkv_hist_observe(struct mkv_hist *h, uint64_t ns);
/* Copies h into out with atomic loads. */
MKV_API void mkv_hist_read(const struct mkv_hist *h, struct mkv_hist *out);
/* Adds src into dst (for merging per-thread histograms). */
MKV_API void mkv_hist_merge(struct mkv_hist *dst, const struct mkv_hist *src);
/* Appends name_bucket{labels,le="..."} lines, name_sum and name_count.
 * labels is "" or 'op="GetObject"' (no braces). */
MKV_API int mkv_hist_render(struct mkv_buf *b, const char *name, const char *labels,
                            const struct mkv_hist *h);

static inline void mkv_counter_add(uint64_t *c, uint64_t v)
{
    __atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}
static inline uint64_t mkv_counter_get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

#endif /* MKV_METRICS_H */
