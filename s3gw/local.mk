# s3gw: the S3 gateway. This fragment builds the gateway's protocol layer
# (HTTP/1.1 server, TLS, SigV4/SigV2, aws-chunked, checksums, XML) as
# s3gw/libs3http.a; the S3 operations and the daemon link it through
# $(S3HTTP_LIBS).
noinst_LIBRARIES += s3gw/libs3http.a
s3gw_libs3http_a_SOURCES = \
	s3gw/s3err.h s3gw/s3err.c \
	s3gw/http.h s3gw/http_priv.h s3gw/http.c s3gw/http_out.c \
	s3gw/tls.h s3gw/tls.c \
	s3gw/auth.h s3gw/auth_priv.h s3gw/sigv4.c s3gw/sigv2.c \
	s3gw/chunked.h s3gw/chunked.c \
	s3gw/checksum.h s3gw/checksum.c \
	s3gw/xml.h s3gw/xml.c
s3gw_libs3http_a_CPPFLAGS = $(AM_CPPFLAGS) $(LLHTTP_CPPFLAGS)
s3gw_libs3http_a_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS) $(SSL_CFLAGS) $(CRYPTO_CFLAGS)
# llhttp.h is generated (copied from the node-llhttp package) at build time.
$(s3gw_libs3http_a_OBJECTS): lib/llhttp/llhttp.h

S3HTTP_LIBS = s3gw/libs3http.a lib/libllhttp.a $(MKV_LIBS) $(SSL_LIBS) $(CRYPTO_LIBS) $(UV_LIBS)
S3HTTP_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/s3gw $(LLHTTP_CPPFLAGS)

# Unit tests (cmocka).
check_PROGRAMS += tests/unit/test_http tests/unit/test_sigv4 tests/unit/test_chunked \
	tests/unit/test_xml
TESTS += tests/unit/test_http tests/unit/test_sigv4 tests/unit/test_chunked tests/unit/test_xml

# A real server in a loop thread, real sockets, TLS with a throwaway certificate.
tests_unit_test_http_SOURCES = tests/unit/test_http.c
tests_unit_test_http_CPPFLAGS = $(S3HTTP_CPPFLAGS)
tests_unit_test_http_CFLAGS = $(UNIT_CFLAGS) $(SSL_CFLAGS)
tests_unit_test_http_LDADD = $(S3HTTP_LIBS) $(UNIT_LIBS)

tests_unit_test_sigv4_SOURCES = tests/unit/test_sigv4.c
tests_unit_test_sigv4_CPPFLAGS = $(S3HTTP_CPPFLAGS)
tests_unit_test_sigv4_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sigv4_LDADD = $(S3HTTP_LIBS) $(UNIT_LIBS)


tests_unit_test_chunked_SOURCES = tests/unit/test_chunked.c
tests_unit_test_chunked_CPPFLAGS = $(S3HTTP_CPPFLAGS)
tests_unit_test_chunked_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_chunked_LDADD = $(S3HTTP_LIBS) $(UNIT_LIBS)

# XML parser and checksum known-answer tests share a program.
tests_unit_test_xml_SOURCES = tests/unit/test_xml.c
tests_unit_test_xml_CPPFLAGS = $(S3HTTP_CPPFLAGS)
tests_unit_test_xml_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_xml_LDADD = $(S3HTTP_LIBS) $(UNIT_LIBS)

# Fuzz targets (configure --enable-fuzz, CC=clang); seeds in tests/fuzz/corpus/NAME.
if FUZZ
noinst_PROGRAMS += tests/fuzz/fuzz_http tests/fuzz/fuzz_sigv4 tests/fuzz/fuzz_chunked \
	tests/fuzz/fuzz_xml
tests_fuzz_fuzz_http_SOURCES = tests/fuzz/fuzz_http.c
tests_fuzz_fuzz_http_CPPFLAGS = $(S3HTTP_CPPFLAGS)
tests_fuzz_fuzz_http_CFLAGS = $(AM_CFLAGS) $(UV_CFLAGS)
tests_fuzz_fuzz_http_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_http_LDADD = $(S3HTTP_LIBS)
tests_fuzz_fuzz_sigv4_SOURCES = tests/fuzz/fuzz_sigv4.c
tests_fuzz_fuzz_sigv4_CPPFLAGS = $(S3HTTP_CPPFLAGS)
tests_fuzz_fuzz_sigv4_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_sigv4_LDADD = $(S3HTTP_LIBS)
tests_fuzz_fuzz_chunked_SOURCES = tests/fuzz/fuzz_chunked.c
tests_fuzz_fuzz_chunked_CPPFLAGS = $(S3HTTP_CPPFLAGS)
tests_fuzz_fuzz_chunked_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_chunked_LDADD = $(S3HTTP_LIBS)
tests_fuzz_fuzz_xml_SOURCES = tests/fuzz/fuzz_xml.c
tests_fuzz_fuzz_xml_CPPFLAGS = $(S3HTTP_CPPFLAGS)
tests_fuzz_fuzz_xml_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_xml_LDADD = $(S3HTTP_LIBS)
FUZZ_TARGETS += tests/fuzz/fuzz_http tests/fuzz/fuzz_sigv4 tests/fuzz/fuzz_chunked \
	tests/fuzz/fuzz_xml
endif
