# Benchmarks (not tests): the load tool and the scripts that run it beside
# the references. See docs/benchmarks.md.
noinst_PROGRAMS += bench/mkvload
bench_mkvload_SOURCES = bench/mkvload.c
bench_mkvload_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS) -Wno-missing-prototypes
bench_mkvload_LDADD = $(CRYPTO_LIBS) -lpthread
EXTRA_DIST += bench/s3bench.sh

# Namespace operations through the client library, beside etcd (metabench.sh).
noinst_PROGRAMS += bench/metaload
bench_metaload_SOURCES = bench/metaload.c
bench_metaload_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
bench_metaload_LDADD = $(MKV_LIBS)
EXTRA_DIST += bench/metabench.sh bench/etcdput.py bench/clusterbench.sh bench/benchlib.sh

# A plain FUSE passthrough (low-level API): the reference bench/fs.sh runs
# beside the minikv mount. fuse3 is a hard requirement of configure.
noinst_PROGRAMS += bench/passthrough
bench_passthrough_SOURCES = bench/passthrough.c
bench_passthrough_CFLAGS = $(AM_CFLAGS) $(FUSE3_CFLAGS)
bench_passthrough_LDADD = $(FUSE3_LIBS)
EXTRA_DIST += bench/fs.sh
