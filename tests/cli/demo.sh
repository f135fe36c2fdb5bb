# `post demo` runs the whole show on loopback and exits 0.
source "$(dirname "$0")/lib.sh" "$@"

rc=0
timeout 60 "$POST" demo >"$TMP/out" 2>&1 || rc=$?
cat "$TMP/out"
[[ $rc == 0 ]] || fail "post demo exited $rc"
grep -q "^demo: ok" "$TMP/out" || fail "no success line"
grep -q "^reliable: ok, stack framer/tcp won" "$TMP/out" || fail "reliable exchange not summarised"
grep -q "^datagram: ok, stack udp won" "$TMP/out" || fail "datagram exchange not summarised"
pass "demo"
