# `post listen --echo` sends every message back; `post connect --count N` waits for N replies.
# Also over HOST:PORT without a scheme, where the default policy picks the stack.
source "$(dirname "$0")/lib.sh" "$@"

for prefix in tcp:// ""; do
    start_listener "$prefix" 127.0.0.1 --echo
    printf 'one\ntwo\nthree\n' | timeout 10 "$POST" connect "$LURL" --count 3 >"$TMP/replies" ||
        fail "connect to $LURL exited $?"
    printf 'one\ntwo\nthree\n' | diff - "$TMP/replies" || fail "wrong echoes from $LURL"
    stop_listener
    pass "echo over ${LURL}"
done
