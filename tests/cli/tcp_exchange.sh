# Messages from `post connect` reach `post listen` over tcp://, on IPv4 and IPv6 loopback, one
# line per message; the listener exits 0 after --count messages.
source "$(dirname "$0")/lib.sh" "$@"

hosts=(127.0.0.1)
if have_ipv6; then hosts+=("[::1]"); else echo "note: no ::1 on this machine, IPv6 skipped"; fi

for host in "${hosts[@]}"; do
    start_listener tcp:// "$host" --count 3
    printf 'alpha\nbeta gamma\n\nlast without newline' >"$TMP/in"
    timeout 10 "$POST" connect "$LURL" <"$TMP/in" || fail "connect to $LURL exited $?"
    finish_listener "$TMP/out"
    [[ $LRC == 0 ]] || fail "listener on $LURL exited $LRC: $(cat "$TMP/out")"
    # The third message is the empty line; --count 3 stops before the fourth.
    printf 'alpha\nbeta gamma\n\n' | diff - "$TMP/out" || fail "wrong messages over $LURL"
    pass "tcp exchange over $LURL"
done
