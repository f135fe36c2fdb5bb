# udp:// exchange with echo (the built-in policy drops its reliability requirement for udp://),
# and an oversized datagram: its error is printed and the exit code is non-zero.
source "$(dirname "$0")/lib.sh" "$@"

start_listener udp:// 127.0.0.1 --echo --json
[[ $LISTEN_LINE == *'"udp"'* ]] || fail "udp listener does not list a udp stack: $LISTEN_LINE"
printf 'ping 1\nping 2\n' | timeout 10 "$POST" connect "$LURL" --count 2 --json >"$TMP/events" ||
    fail "udp connect exited $?: $(cat "$TMP/events")"
json_lines "$TMP/events"
python3 - "$TMP/events" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
ready = [e for e in ev if e["event"] == "ready"]
assert ready and ready[0]["stack"][-1] == "udp", ev
got = [e["message"] for e in ev if e["event"] == "received"]
assert got == ["ping 1", "ping 2"], got
PY
pass "udp echo over $LURL"

# 100000 bytes do not fit in one UDP datagram.
head -c 100000 /dev/zero | tr '\0' 'x' >"$TMP/big"
rc=0
timeout 10 "$POST" connect "$LURL" --file "$TMP/big" 2>"$TMP/err" || rc=$?
[[ $rc != 0 ]] || fail "oversized udp message: exit code 0"
[[ $rc != 124 ]] || fail "oversized udp message: timed out"
[[ -s $TMP/err ]] || fail "oversized udp message: no error printed"
grep -q "100000" "$TMP/err" || fail "oversized udp message: error does not name the size: $(cat "$TMP/err")"
stop_listener
pass "oversized udp message refused (exit $rc): $(head -1 "$TMP/err")"
