#!/bin/bash
# Hostile and broken requests (tests/integration/badinput.py): malformed and
# oversized requests, short and long bodies, wrong and expired signatures,
# bad names, multipart misuse, 10,000 idle connections. Each gets the right
# S3 error, the server keeps serving, and nothing stored is lost.
. "$top_srcdir/tests/integration/lib.sh"
mkv_start_server
"$PY" "$top_srcdir/tests/integration/badinput.py" || fail "bad-input cases (see above)"
kill -0 "$SERVER_PID" || fail "the server died"
mkv_stop_server
if grep -E "AddressSanitizer|runtime error|LeakSanitizer" "$T/server.log"; then fail "sanitizer report"; fi
log "ok"
