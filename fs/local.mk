# fs: the FUSE client. minikv-fuse is installed in sbin and also as
# mount.minikv, so that mount(8) and /etc/fstab can use it (type minikv).
sbin_PROGRAMS += fs/minikv-fuse
fs_minikv_fuse_SOURCES = fs/fs_int.h fs/main.c fs/fs.c fs/inode.c fs/meta_ops.c fs/data_ops.c fs/etag.c fs/locks.c \
	fs/dnames.c
fs_minikv_fuse_CFLAGS = $(AM_CFLAGS) $(FUSE3_CFLAGS) $(UV_CFLAGS) $(CRYPTO_CFLAGS)
fs_minikv_fuse_LDADD = $(MKV_LIBS) $(FUSE3_LIBS) -lpthread

# mount.minikv: the name mount(8) looks for.
install-exec-hook: install-mount-helper
install-mount-helper:
	$(MKDIR_P) $(DESTDIR)$(sbindir)
	cd $(DESTDIR)$(sbindir) && rm -f mount.minikv && $(LN_S) minikv-fuse mount.minikv
uninstall-hook: uninstall-mount-helper
uninstall-mount-helper:
	rm -f $(DESTDIR)$(sbindir)/mount.minikv
noinst_SCRIPTS = fs/mount.minikv
CLEANFILES += fs/mount.minikv
fs/mount.minikv: fs/minikv-fuse$(EXEEXT)
	$(AM_V_GEN)rm -f $@ && $(LN_S) minikv-fuse$(EXEEXT) $@
.PHONY: install-mount-helper uninstall-mount-helper
