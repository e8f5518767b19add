# tools: minikvctl (admin CLI), minikv (the embedded single-node server),
# install-deps, test-all and quickstart.
bin_PROGRAMS += tools/minikvctl
tools_minikvctl_SOURCES = tools/minikvctl.c
tools_minikvctl_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
tools_minikvctl_LDADD = $(MKV_LIBS)

bin_PROGRAMS += tools/minikv
tools_minikv_SOURCES = tools/minikv.c
tools_minikv_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir) -DMKV_SBINDIR='"$(sbindir)"'
tools_minikv_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
tools_minikv_LDADD = $(GATEWAY_LIBS) $(CHUNKSERVER_LIBS) $(META_LIBS)

dist_noinst_SCRIPTS += tools/test-all tools/quickstart
