# minikv-chunk: the chunk store served over the wire protocol. (The store
# library itself is described in chunk/local.mk.)
noinst_LIBRARIES += chunk/libchunkserver.a
chunk_libchunkserver_a_SOURCES = chunk/chunk.h chunk/server.c chunk/options.c chunk/fill.h chunk/fill.c
chunk_libchunkserver_a_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
CHUNKSERVER_LIBS = chunk/libchunkserver.a $(CHUNKSTORE_LIBS)

sbin_PROGRAMS += chunk/minikv-chunk
chunk_minikv_chunk_SOURCES = chunk/main.c
chunk_minikv_chunk_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
chunk_minikv_chunk_LDADD = $(CHUNKSERVER_LIBS)
