# Messages from `post connect` reach `post listen` over tcp://, on IPv4 and IPv6 loopback, one
# line per message; the listener exits 0 after --count messages.
source "$(dirname "$0")/lib.sh" "$@"

hosts=(127.0.0.1)
if have_ipv6; then hosts+=("[::1]"); else echo "note: no ::1 on this machine, IPv6 skipped"; fi

for host in "${hosts[@]}"; do
    start_listener tcp:// "$host" --count 4
    printf 'alpha\nbeta gamma\n\nlast without newline' >"$TMP/in"
    timeout 10 "$POST" connect "$LURL" <"$TMP/in" || fail "connect to $LURL exited $?"
    finish_listener "$TMP/out"
    [[ $LRC == 0 ]] || fail "listener on $LURL exited $LRC: $(cat "$TMP/out")"
    # The third message is the empty line; the last one had no newline. (The listener takes
    # all four: one that left early could reset the connection under the client's last write.)
    printf 'alpha\nbeta gamma\n\nlast without newline\n' | diff - "$TMP/out" ||
        fail "wrong messages over $LURL"
    pass "tcp exchange over $LURL"
done
