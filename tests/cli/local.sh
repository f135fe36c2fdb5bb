# `post connect --local` binds the source address; one that is not this host's fails with
# exit code 1 and the attempt's reason.
source "$(dirname "$0")/lib.sh" "$@"

start_listener tcp:// 127.0.0.1
echo "from a pinned local" | timeout 15 "$POST" connect "$LURL" --local 127.0.0.2 --trace \
    >"$TMP/out" 2>"$TMP/err" || fail "connect --local exited $?: $(cat "$TMP/err")"
grep -qE "attempt-started .* from 127\.0\.0\.2" "$TMP/err" || fail "no bound attempt: $(cat "$TMP/err")"
grep -qE "attempt-won .* from 127\.0\.0\.2:[0-9]+" "$TMP/err" || fail "not won from 127.0.0.2: $(cat "$TMP/err")"
pass "connect --local 127.0.0.2"

rc=0
timeout 15 "$POST" connect "$LURL" --local 192.0.2.9 </dev/null >"$TMP/out" 2>"$TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "expected exit code 1, got $rc: $(cat "$TMP/err")"
grep -q "bind to 192.0.2.9" "$TMP/err" || fail "the bind failure is not named: $(cat "$TMP/err")"
pass "connect --local 192.0.2.9 (not ours): $(tail -1 "$TMP/err")"

rc=0
timeout 15 "$POST" connect "$LURL" --local nonsense </dev/null >"$TMP/out" 2>"$TMP/err" || rc=$?
[[ $rc == 2 ]] || fail "expected a usage error (2), got $rc: $(cat "$TMP/err")"
pass "connect --local nonsense: usage error"
