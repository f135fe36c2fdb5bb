# `listen --count N` prints exactly N messages and exits 0, even when more are on the way.
source "$(dirname "$0")/lib.sh" "$@"

start_listener tcp:// 127.0.0.1 --count 2
# The client may see the listener go away mid-stream; only the listener is judged here.
printf 'm1\nm2\nm3\nm4\nm5\n' | timeout 10 "$POST" connect "$LURL" >/dev/null 2>&1 || true
finish_listener "$TMP/out"
[[ $LRC == 0 ]] || fail "listener exited $LRC: $(cat "$TMP/out")"
printf 'm1\nm2\n' | diff - "$TMP/out" || fail "listener did not stop after 2 messages"
pass "listen --count 2"
