# dtls:// end to end with the `post` tool: a DTLS echo listener with a generated certificate,
# messages both ways with their boundaries, and a client that does not trust the CA refused with
# the verification check named.
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_pki.sh"
require_program openssl
make_pki "$TMP/pki"

start_listener dtls:// 127.0.0.1 --echo --json --cert "$TMP/pki/server.pem" \
    --key "$TMP/pki/server.key"
[[ $LISTEN_LINE == *'"dtls"'* ]] || fail "dtls listener does not list a dtls stack: $LISTEN_LINE"
port=${LURL##*:}
printf 'first datagram\nsecond\n' |
    timeout 10 "$POST" connect "dtls://localhost:$port" --ca "$TMP/pki/ca.pem" --count 2 \
        --json >"$TMP/events" || fail "dtls connect exited $?: $(cat "$TMP/events")"
json_lines "$TMP/events"
python3 - "$TMP/events" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
ready = [e for e in ev if e["event"] == "ready"]
assert ready and ready[0]["stack"] == ["dtls", "udp"], ev
got = [e["message"] for e in ev if e["event"] == "received"]
assert got == ["first datagram", "second"], got
PY
pass "dtls echo over dtls://localhost:$port"

# The system store does not know the test CA.
rc=0
echo hello | timeout 20 "$POST" connect "dtls://localhost:$port" 2>"$TMP/err" || rc=$?
[[ $rc != 0 && $rc != 124 ]] || fail "untrusted dtls server: exit $rc"
grep -q "certificate verify failed" "$TMP/err" ||
    fail "untrusted dtls server: no verification error: $(cat "$TMP/err")"
stop_listener
pass "untrusted dtls server refused: $(grep -m1 'certificate verify failed' "$TMP/err")"
