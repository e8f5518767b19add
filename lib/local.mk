# libminikv: code shared by every program (wire protocol, client library,
# configuration, logging, checksums), built once.
noinst_LIBRARIES += lib/libminikv.a
lib_libminikv_a_SOURCES = \
	lib/minikv/common.h \
	lib/minikv/err.h lib/err.c \
	lib/minikv/log.h lib/log.c \
	lib/minikv/crc32c.h lib/crc32c.c \
	lib/minikv/buf.h lib/buf.c \
	lib/minikv/config.h lib/config.c \
	lib/minikv/wire.h lib/wire.c \
	lib/minikv/metrics.h lib/metrics.c \
	lib/minikv/net.h lib/net.c \
	lib/minikv/client.h lib/client_priv.h lib/client.c lib/client_auth.c lib/stream.c lib/route.c \
	lib/minikv/names.h lib/names.c \
	lib/minikv/trust.h lib/trust.c \
	lib/minikv/auth.h lib/auth.c \
	lib/minikv/vshard.h lib/vshard.c
lib_libminikv_a_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS) $(CRYPTO_CFLAGS)

# llhttp, compiled from Debian's node-llhttp sources (configure --with-llhttp).
noinst_LIBRARIES += lib/libllhttp.a
nodist_lib_libllhttp_a_SOURCES = lib/llhttp/api.c lib/llhttp/http.c lib/llhttp/llhttp.c \
	lib/llhttp/llhttp.h
lib_libllhttp_a_CPPFLAGS = -I$(top_builddir)/lib/llhttp
lib_libllhttp_a_CFLAGS = -O2 -w $(filter -fsanitize% -fno-omit-frame-pointer -g --coverage,$(MKV_CFLAGS))
BUILT_SOURCES += lib/llhttp/llhttp.h
CLEANFILES += lib/llhttp/api.c lib/llhttp/http.c lib/llhttp/llhttp.c lib/llhttp/llhttp.h
lib/llhttp/%.c: $(LLHTTP_DIR)/%.c
	$(AM_V_GEN)$(MKDIR_P) lib/llhttp && cp $< $@
lib/llhttp/llhttp.h: $(LLHTTP_INC)/llhttp.h
	$(AM_V_GEN)$(MKDIR_P) lib/llhttp && cp $< $@

# The header is generated: objects that include it must wait for it.
$(lib_libllhttp_a_OBJECTS): lib/llhttp/llhttp.h
LLHTTP_CPPFLAGS = -I$(top_builddir)/lib/llhttp
MKV_LIBS = lib/libminikv.a $(UV_LIBS) $(CRYPTO_LIBS)
