# meta: the metadata service. libmeta holds the namespace state machine
# (ns*.c, over LMDB), the Raft node (node.c, fsm.c) and the service
# (server.c); minikv-meta is the daemon around it.
noinst_LIBRARIES += meta/libmeta.a
meta_libmeta_a_SOURCES = \
	meta/ns.h meta/ns_int.h \
	meta/ns_store.c meta/ns_path.c meta/ns_obj.c meta/ns_list.c meta/ns_mpu.c \
	meta/ns_misc.c meta/ns_apply.c meta/ns_ino.c meta/ns_vshard.c \
	meta/node.h meta/node_int.h meta/node.c meta/fsm.c meta/member.c meta/nodes.h meta/nodes.c \
	meta/place.h meta/place.c meta/placer.h meta/placer.c \
	meta/meta.h meta/server.c meta/locks.h meta/locks.c
meta_libmeta_a_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS) $(RAFT_CFLAGS) $(UV_CFLAGS) $(CRYPTO_CFLAGS)

# For programs that embed the meta service.
META_LIBS = meta/libmeta.a $(MKV_LIBS) $(RAFT_LIBS) $(LMDB_LIBS) $(UV_LIBS) $(CRYPTO_LIBS)

sbin_PROGRAMS += meta/minikv-meta
meta_minikv_meta_SOURCES = meta/main.c
meta_minikv_meta_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
meta_minikv_meta_LDADD = $(META_LIBS)

check_PROGRAMS += tests/unit/test_ns
tests_unit_test_ns_SOURCES = tests/unit/test_ns.c
tests_unit_test_ns_CFLAGS = $(UNIT_CFLAGS) $(LMDB_CFLAGS)
tests_unit_test_ns_LDADD = $(META_LIBS) $(UNIT_LIBS)
TESTS += tests/unit/test_ns

check_PROGRAMS += tests/unit/test_locks
tests_unit_test_locks_SOURCES = tests/unit/test_locks.c
tests_unit_test_locks_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_locks_LDADD = $(META_LIBS) $(UNIT_LIBS)
TESTS += tests/unit/test_locks

check_PROGRAMS += tests/unit/test_raft
tests_unit_test_raft_SOURCES = tests/unit/test_raft.c
tests_unit_test_raft_CFLAGS = $(UNIT_CFLAGS) $(RAFT_CFLAGS) $(LMDB_CFLAGS)
tests_unit_test_raft_LDADD = $(META_LIBS) $(UNIT_LIBS)
TESTS += tests/unit/test_raft

check_PROGRAMS += tests/unit/test_raft_service
tests_unit_test_raft_service_SOURCES = tests/unit/test_raft_service.c
tests_unit_test_raft_service_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_raft_service_LDADD = $(META_LIBS) $(UNIT_LIBS)
TESTS += tests/unit/test_raft_service

check_PROGRAMS += tests/unit/test_place
tests_unit_test_place_SOURCES = tests/unit/test_place.c
tests_unit_test_place_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_place_LDADD = $(META_LIBS) $(UNIT_LIBS)
TESTS += tests/unit/test_place
