# contrib: systemd units (installed with the configured paths) and
# Kubernetes manifests (shipped, not installed).
systemdunits = contrib/systemd/minikv.service contrib/systemd/minikv-meta.service \
	contrib/systemd/minikv-chunk.service contrib/systemd/minikv-s3gw.service
systemdsystemunit_DATA = $(systemdunits)
CLEANFILES += $(systemdunits)
EXTRA_DIST += $(systemdunits:=.in) contrib/k8s
contrib/systemd/%.service: $(srcdir)/contrib/systemd/%.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib/systemd && sed -e 's|@bindir@|$(bindir)|g' -e 's|@sbindir@|$(sbindir)|g' \
	  -e 's|@sysconfdir@|$(sysconfdir)|g' -e 's|@docdir@|$(docdir)|g' $< >$@

# The example configuration, for the administrator to copy.
exampledir = $(sysconfdir)/minikv
dist_example_DATA = minikv.conf.example
dist_doc_DATA = README.md
