# Message properties on the command line: --niceness, --lifetime, --immediate, --idempotent,
# --unordered and --unreliable
# reach every message (and every --echo reply), --json reports the send events, an expired
# message never reaches the listener, and bad values are usage errors (exit 2).
source "$(dirname "$0")/lib.sh" "$@"

# 1. Properties are applied and visible in the send events, on both sides.
start_listener tcp:// 127.0.0.1 --json --echo --count 2 --niceness 3 --lifetime 10s
printf 'one\ntwo\n' |
    timeout 10 "$POST" connect "$LURL" --json --count 2 --niceness 7 --lifetime 5s --immediate \
        --idempotent --unordered --unreliable >"$TMP/client" || fail "connect with properties exited $?"
finish_listener "$TMP/listener"
[[ $LRC == 0 ]] || fail "listener exited $LRC"
json_lines "$TMP/client"
json_lines "$TMP/listener"
python3 - "$TMP/client" "$TMP/listener" <<'PY'
import json, sys
cli = [json.loads(l) for l in open(sys.argv[1])]
srv = [json.loads(l) for l in open(sys.argv[2])]
sent = [e for e in cli if e["event"] == "sent"]
assert [e["index"] for e in sent] == [0, 1], sent
for e in sent:
    assert e["niceness"] == 7 and e["lifetime_ms"] == 5000, e
    assert e["immediate"] is True and e["idempotent"] is True, e
    # TCP delivers in order and reliably all the same: the framer ignores both.
    assert e["ordered"] is False and e["reliable"] is False, e
    assert isinstance(e["id"], int) and e["size"] == 3, e
# The framer acknowledges delivery to the peer's application: every message is acked, with
# the same id and index as its `sent`.
acked = [e for e in cli if e["event"] == "acked"]
assert sorted((e["id"], e["index"]) for e in acked) == sorted((e["id"], e["index"]) for e in sent), (acked, sent)
assert [e["message"] for e in cli if e["event"] == "received"] == ["one", "two"], cli
assert not [e for e in cli if e["event"] in ("expired", "send-error", "error")], cli

rec = {e["id"]: e["message"] for e in srv if e["event"] == "received"}
echoes = [e for e in srv if e["event"] == "sent"]
assert len(echoes) == 2, srv
for e in echoes:
    assert e["niceness"] == 3 and e["lifetime_ms"] == 10000, e
    assert "immediate" not in e and "idempotent" not in e and "ordered" not in e and "reliable" not in e, e
    assert rec[e["in_reply_to"]] in ("one", "two") and e["size"] == 3, (e, rec)
PY
pass "properties applied and reported (client and --echo replies)"

# 2. A message whose lifetime is over before it can be sent expires: the sender reports it,
# exits 1, and the listener never sees it. A second connection's message, sent afterwards,
# proves the listener was receiving.
start_listener tcp:// 127.0.0.1 --json --count 1
rc=0
echo never | timeout 10 "$POST" connect "$LURL" --json --lifetime 0ms >"$TMP/expired" \
    2>"$TMP/expired.err" || rc=$?
[[ $rc == 1 ]] || fail "an expired message: exit $rc, expected 1"
json_lines "$TMP/expired"
grep -q 'expired' "$TMP/expired.err" || fail "no expiry on stderr: $(cat "$TMP/expired.err")"
echo marker | timeout 10 "$POST" connect "$LURL" >/dev/null || fail "second connect exited $?"
finish_listener "$TMP/listener2"
[[ $LRC == 0 ]] || fail "listener exited $LRC"
python3 - "$TMP/expired" "$TMP/listener2" <<'PY'
import json, sys
cli = [json.loads(l) for l in open(sys.argv[1])]
srv = [json.loads(l) for l in open(sys.argv[2])]
exp = [e for e in cli if e["event"] == "expired"]
assert len(exp) == 1 and exp[0]["index"] == 0 and exp[0]["lifetime_ms"] == 0, cli
assert exp[0]["size"] == 5 and isinstance(exp[0]["id"], int), exp
assert not [e for e in cli if e["event"] in ("sent", "acked")], cli
got = [e["message"] for e in srv if e["event"] == "received"]
assert got == ["marker"], got
PY
pass "lifetime 0ms: expired, exit 1, nothing delivered"

# 3. Bad values: a clear message naming the option, exit 2, for both commands.
bad() {
    local rc=0
    timeout 10 "$POST" "$@" </dev/null >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
    [[ $rc == 2 ]] || fail "post $*: exit $rc, expected 2 ($(cat "$TMP/bad.err"))"
    local opt=${3%%=*}
    grep -q -- "$opt" "$TMP/bad.err" || fail "post $*: the error does not name $opt: $(cat "$TMP/bad.err")"
}
for cmd in connect listen; do
    bad "$cmd" tcp://127.0.0.1:9 --niceness -1
    bad "$cmd" tcp://127.0.0.1:9 --niceness urgent
    bad "$cmd" tcp://127.0.0.1:9 --niceness 1.5
    bad "$cmd" tcp://127.0.0.1:9 --lifetime 250
    bad "$cmd" tcp://127.0.0.1:9 --lifetime soon
    bad "$cmd" tcp://127.0.0.1:9 --lifetime -5ms
done
grep -q "not a duration" "$TMP/bad.err" || fail "lifetime error is unclear: $(cat "$TMP/bad.err")"
pass "bad property values are usage errors"
