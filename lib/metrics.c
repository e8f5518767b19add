/* minikv: histograms rendered in Prometheus text format. */
#include <stdio.h>

#include "minikv/metrics.h"

const double mkv_hist_bounds[MKV_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   10.0, 1e300 /* +Inf */
};

void mkv_hist_observe(struct mkv_hist *h, uint64_t ns)
{
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < MKV_HIST_BUCKETS - 1 && s > mkv_hist_bounds[i]) i++;
    __atomic_fetch_add(&h->bucket[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_ns, ns, __ATOMIC_RELAXED);
}

void mkv_hist_read(const struct mkv_hist *h, struct mkv_hist *out)
{
    for (int i = 0; i < MKV_HIST_BUCKETS; i++)
        out->bucket[i] = __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
    out->count = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
    out->sum_ns = __atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED);
}

void mkv_hist_merge(struct mkv_hist *dst, const struct mkv_hist *src)
{
    struct mkv_hist s;
    mkv_hist_read(src, &s);
    for (int i = 0; i < MKV_HIST_BUCKETS; i++) dst->bucket[i] += s.bucket[i];
    dst->count += s.count;
    dst->sum_ns += s.sum_ns;
}

int mkv_hist_render(struct mkv_buf *b, const char *name, const char *labels,
                    const struct mkv_hist *h)
{
    struct mkv_hist s;
    uint64_t cum = 0;
    const char *sep = labels && *labels ? "," : "";
    int rv = 0;
    mkv_hist_read(h, &s);
    for (int i = 0; i < MKV_HIST_BUCKETS; i++) {
        cum += s.bucket[i];
        if (i == MKV_HIST_BUCKETS - 1)
            rv |= mkv_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels ? labels : "",
                                 sep, (unsigned long long)cum);
        else
            rv |= mkv_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels ? labels : "",
                                 sep, mkv_hist_bounds[i], (unsigned long long)cum);
    }
    if (labels && *labels) {
        rv |= mkv_buf_printf(b, "%s_sum{%s} %.9f\n", name, labels, (double)s.sum_ns / 1e9);
        rv |= mkv_buf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)s.count);
    } else {
        rv |= mkv_buf_printf(b, "%s_sum %.9f\n", name, (double)s.sum_ns / 1e9);
        rv |= mkv_buf_printf(b, "%s_count %llu\n", name, (unsigned long long)s.count);
    }
    return rv ? -12 : 0;
}
