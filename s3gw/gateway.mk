# minikv-s3gw: S3 operations, key store, metrics and the daemon, on top of
# the HTTP/auth library described in s3gw/local.mk.
noinst_LIBRARIES += s3gw/libgateway.a
s3gw_libgateway_a_SOURCES = s3gw/gateway.h s3gw/gw.h s3gw/gateway.c s3gw/authn.h s3gw/authn.c \
	s3gw/keys.c s3gw/metrics.c s3gw/s3_object.c s3gw/s3_bucket.c s3gw/s3_mpu.c s3gw/s3_txn.c
s3gw_libgateway_a_CPPFLAGS = $(AM_CPPFLAGS) $(LLHTTP_CPPFLAGS)
s3gw_libgateway_a_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS) $(CRYPTO_CFLAGS) $(JANSSON_CFLAGS)
GATEWAY_LIBS = s3gw/libgateway.a $(S3HTTP_LIBS) $(JANSSON_LIBS)

sbin_PROGRAMS += s3gw/minikv-s3gw
s3gw_minikv_s3gw_SOURCES = s3gw/main.c
s3gw_minikv_s3gw_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
s3gw_minikv_s3gw_LDADD = $(GATEWAY_LIBS)
