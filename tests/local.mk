# Tests: cmocka unit programs (one per module), integration scripts driving
# real processes and clients, fuzz targets. See tests/README.md.
EXTRA_DIST += tests/lsan.supp tests/README.md

UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(UV_CFLAGS)
UNIT_LIBS = $(CMOCKA_LIBS)

check_PROGRAMS += tests/unit/test_wire
tests_unit_test_wire_SOURCES = tests/unit/test_wire.c
tests_unit_test_wire_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_wire_LDADD = $(MKV_LIBS) $(UNIT_LIBS)

check_PROGRAMS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(MKV_LIBS) $(UNIT_LIBS)

TESTS += tests/unit/test_wire tests/unit/test_config

# Fuzz targets (configure --enable-fuzz with CC=clang). Each component's
# local.mk adds its targets to FUZZ_TARGETS inside "if FUZZ". `make fuzz`
# builds them; `make fuzz-run` runs each for FUZZ_SECONDS on its corpus
# (tests/fuzz/corpus/NAME, seeds committed) and fails on any crash.
FUZZ_SECONDS = 20
EXTRA_DIST += tests/fuzz/corpus
if FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz_wire
tests_fuzz_fuzz_wire_SOURCES = tests/fuzz/fuzz_wire.c
tests_fuzz_fuzz_wire_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_wire_LDADD = $(MKV_LIBS)
FUZZ_TARGETS += tests/fuzz/fuzz_wire
endif
fuzz: $(FUZZ_TARGETS)
fuzz-run: fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  n=$$(basename $$t); c=$(abs_top_srcdir)/tests/fuzz/corpus/$${n#fuzz_}; \
	  w=$$(mktemp -d); cp -r $$c/. $$w/ 2>/dev/null || true; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  ./$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $$w >$$n.fuzz.log 2>&1 \
	    || { tail -n 60 $$n.fuzz.log; rm -rf $$w; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|Done' $$n.fuzz.log | head -2; rm -rf $$w; \
	done
.PHONY: fuzz fuzz-run

check_PROGRAMS += tests/unit/test_net
tests_unit_test_net_SOURCES = tests/unit/test_net.c
tests_unit_test_net_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_net_LDADD = $(MKV_LIBS) $(UNIT_LIBS)
TESTS += tests/unit/test_net

# Integration tests: real processes and real clients on 127.0.0.1 (see
# tests/integration/lib.sh). The longest run first so that `make -j check`
# overlaps them with the short ones.
INTEGRATION_TESTS = \
	tests/integration/t_cluster_move.sh \
	tests/integration/t_s3api.sh \
	tests/integration/t_awscli.sh \
	tests/integration/t_cluster_data.sh \
	tests/integration/t_bigobject.sh \
	tests/integration/t_inline.sh \
	tests/integration/t_crash.sh \
	tests/integration/t_cluster_changes.sh \
	tests/integration/t_fuse_s3.sh \
	tests/integration/t_fuse_mount.sh \
	tests/integration/t_diskfull.sh \
	tests/integration/t_fuse_tools.sh \
	tests/integration/t_cluster_partition.sh \
	tests/integration/t_cluster_failover.sh \
	tests/integration/t_cluster_factor.sh \
	tests/integration/t_cluster_repair.sh \
	tests/integration/t_fuse_fragment.sh \
	tests/integration/t_fuse_faults.sh \
	tests/integration/t_fuse_multi.sh \
	tests/integration/t_fuse_posix.sh \
	tests/integration/t_txn.sh \
	tests/integration/t_meta_group.sh \
	tests/integration/t_restart.sh \
	tests/integration/t_endpoints.sh \
	tests/integration/t_cluster_nodes.sh \
	tests/integration/t_server_mount.sh \
	tests/integration/t_corrupt.sh \
	tests/integration/t_s3cmd.sh \
	tests/integration/t_auth.sh \
	tests/integration/t_badinput.sh \
	tests/integration/t_range.sh \
	tests/integration/t_fuse_full.sh \
	tests/integration/t_libs3.sh
TESTS += $(INTEGRATION_TESTS)
SH_LOG_COMPILER = $(BASH)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/lib.sh tests/integration/s3req.py \
	tests/integration/badinput.py tests/integration/crashload.py tests/integration/crashverify.py tests/integration/failload.py \
	tests/integration/bigobject.py tests/integration/linearize.py tests/integration/txnload.py

# The POSIX test program (tests/posix/README): run by t_fuse_posix.sh
# against a mount and, as the control, against a local directory.
check_PROGRAMS += tests/posix/posixtest
tests_posix_posixtest_SOURCES = tests/posix/posixtest.c
tests_posix_posixtest_CFLAGS = $(AM_CFLAGS) -pthread
tests_posix_posixtest_LDADD = -lpthread
EXTRA_DIST += tests/posix/README tests/posix/run-local.sh

# The client library against a real meta service and chunk server.
check_PROGRAMS += tests/unit/test_client
tests_unit_test_client_SOURCES = tests/unit/test_client.c
tests_unit_test_client_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_unit_test_client_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_client_LDADD = $(CHUNKSERVER_LIBS) $(META_LIBS) $(UNIT_LIBS)
TESTS += tests/unit/test_client
