# Benchmarks (not tests): the load tool and the scripts that run it beside
# the references. See docs/benchmarks.md.
noinst_PROGRAMS += bench/mkvload
bench_mkvload_SOURCES = bench/mkvload.c
bench_mkvload_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS) -Wno-missing-prototypes
bench_mkvload_LDADD = $(CRYPTO_LIBS) -lpthread
EXTRA_DIST += bench/s3bench.sh
