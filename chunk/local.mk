# chunk: the chunk store library (one data directory of one chunk server).
# See docs/design-chunk.md for the on-disk formats.
noinst_LIBRARIES += chunk/libchunkstore.a
chunk_libchunkstore_a_SOURCES = \
	chunk/store.h chunk/store_int.h chunk/store.c \
	chunk/wal.h chunk/wal.c \
	chunk/index.h chunk/index.c \
	chunk/io.h chunk/io.c \
	chunk/xform.h chunk/xform.c \
	chunk/flush.c chunk/read.c chunk/recover.c chunk/compact.c
chunk_libchunkstore_a_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS) $(LMDB_CFLAGS) $(URING_CFLAGS) \
	$(ZSTD_CFLAGS) $(LZ4_CFLAGS) $(CRYPTO_CFLAGS)

# Programs that link the store add $(CHUNKSTORE_LIBS).
CHUNKSTORE_LIBS = chunk/libchunkstore.a $(MKV_LIBS) $(LMDB_LIBS) $(URING_LIBS) $(ZSTD_LIBS) \
	$(LZ4_LIBS) $(CRYPTO_LIBS)

check_PROGRAMS += tests/unit/test_store
tests_unit_test_store_SOURCES = tests/unit/test_store.c tests/unit/test_store_util.c \
	tests/unit/test_store_util.h tests/unit/test_store_faults.c tests/unit/test_store_space.c
tests_unit_test_store_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/chunk
tests_unit_test_store_CFLAGS = $(UNIT_CFLAGS) $(LMDB_CFLAGS) $(URING_CFLAGS)
tests_unit_test_store_LDADD = $(CHUNKSTORE_LIBS) $(UNIT_LIBS)
TESTS += tests/unit/test_store

if FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz_wal
tests_fuzz_fuzz_wal_SOURCES = tests/fuzz/fuzz_wal.c
tests_fuzz_fuzz_wal_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/chunk
tests_fuzz_fuzz_wal_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS) $(LMDB_CFLAGS)
tests_fuzz_fuzz_wal_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_wal_LDADD = $(CHUNKSTORE_LIBS)
FUZZ_TARGETS += tests/fuzz/fuzz_wal
endif
