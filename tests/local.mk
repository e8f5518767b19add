# Tests: cmocka unit programs (one per module), integration scripts driving
# real processes and clients, fuzz targets. See tests/README.md.
EXTRA_DIST += tests/lsan.supp tests/README.md

UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(UV_CFLAGS)
UNIT_LIBS = $(CMOCKA_LIBS)

check_PROGRAMS += tests/unit/test_wire
tests_unit_test_wire_SOURCES = tests/unit/test_wire.c
tests_unit_test_wire_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_wire_LDADD = $(MKV_LIBS) $(UNIT_LIBS)

check_PROGRAMS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(MKV_LIBS) $(UNIT_LIBS)

TESTS += tests/unit/test_wire tests/unit/test_config
