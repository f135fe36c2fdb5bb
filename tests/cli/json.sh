# --json prints one JSON object per line per event, with the documented fields.
source "$(dirname "$0")/lib.sh" "$@"

start_listener tcp:// 127.0.0.1 --json --echo --count 2
echo "$LISTEN_LINE" >"$TMP/listener"
printf 'first\nsecond\n' | timeout 10 "$POST" connect "$LURL" --json --count 2 >"$TMP/client" ||
    fail "connect exited $?"
finish_listener "$TMP/rest"
cat "$TMP/rest" >>"$TMP/listener"
[[ $LRC == 0 ]] || fail "listener exited $LRC"
json_lines "$TMP/listener"
json_lines "$TMP/client"
python3 - "$TMP/listener" "$TMP/client" <<'PY'
import json, sys
srv = [json.loads(l) for l in open(sys.argv[1])]
cli = [json.loads(l) for l in open(sys.argv[2])]
kinds = lambda evs: [e["event"] for e in evs]

assert srv[0]["event"] == "listening" and srv[0]["local"].endswith(tuple("0123456789")), srv[0]
assert ["framer", "tcp"] in srv[0]["stacks"], srv[0]
ready = [e for e in srv if e["event"] == "ready"]
assert len(ready) == 1 and ready[0]["stack"] == ["framer", "tcp"] and ready[0]["remote"], ready
rec = [e for e in srv if e["event"] == "received"]
assert [(e["message"], e["size"]) for e in rec] == [("first", 5), ("second", 6)], rec
assert all(isinstance(e["id"], int) for e in rec), rec
echoed = [e for e in srv if e["event"] == "sent"]
assert [e["size"] for e in echoed] == [5, 6], echoed
assert srv[-1]["event"] == "closed", srv

assert kinds(cli)[0] == "ready", cli
assert cli[0]["stack"] == ["framer", "tcp"] and cli[0]["local"] and cli[0]["remote"], cli[0]
sent = [e for e in cli if e["event"] == "sent"]
assert [e["size"] for e in sent] == [5, 6], sent
assert len({e["id"] for e in sent}) == 2, sent
assert [e["message"] for e in cli if e["event"] == "received"] == ["first", "second"], cli
assert kinds(cli)[-1] == "closed", cli
PY
pass "json events"
