# tools: minikvctl (admin CLI), minikv (the embedded single-node server),
# install-deps, test-all and quickstart.
bin_PROGRAMS += tools/minikvctl
tools_minikvctl_SOURCES = tools/minikvctl.c
tools_minikvctl_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
tools_minikvctl_LDADD = $(MKV_LIBS)

dist_noinst_SCRIPTS += tools/test-all
