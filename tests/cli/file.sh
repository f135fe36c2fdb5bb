# --file sends a whole file as one message (newlines included).
source "$(dirname "$0")/lib.sh" "$@"

seq 1 40000 >"$TMP/payload" # about 230 KB, many lines
start_listener tcp:// 127.0.0.1 --json --count 1
timeout 10 "$POST" connect "$LURL" --file "$TMP/payload" </dev/null || fail "connect exited $?"
finish_listener "$TMP/events"
[[ $LRC == 0 ]] || fail "listener exited $LRC"
python3 - "$TMP/events" "$TMP/payload" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
rec = [e for e in ev if e["event"] == "received"]
data = open(sys.argv[2]).read()
assert len(rec) == 1, ev
assert rec[0]["size"] == len(data) and rec[0]["message"] == data, rec[0]["size"]
PY
pass "a $(stat -c %s "$TMP/payload")-byte file arrived as one message"
