# Connecting to a closed port fails with exit code 1 and the reason on stderr.
source "$(dirname "$0")/lib.sh" "$@"

for attempt in 1 2 3 4 5; do
    port=$(random_port)
    # Make sure nothing listens there (bash's /dev/tcp connects or fails at once on loopback).
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
done
rc=0
timeout 15 "$POST" connect "tcp://127.0.0.1:$port" </dev/null >"$TMP/out" 2>"$TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "expected exit code 1, got $rc: $(cat "$TMP/err")"
grep -qi "refused" "$TMP/err" || fail "no reason on stderr: $(cat "$TMP/err")"
grep -q "127.0.0.1:$port" "$TMP/err" || fail "the failed attempt is not listed: $(cat "$TMP/err")"
pass "connection refused: $(head -3 "$TMP/err")"

# Listening on a port another program holds for TCP fails by name, instead of listening over
# the default policy's other stacks alone.
start_listener tcp:// 127.0.0.1
taken=${LURL#tcp://}
rc=0
timeout 15 "$POST" listen "$taken" </dev/null >"$TMP/out" 2>"$TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "listen on a taken port: expected exit code 1, got $rc: $(cat "$TMP/err")"
grep -q "the port is taken" "$TMP/err" || fail "no reason on stderr: $(cat "$TMP/err")"
grep -q "tcp\] on $taken" "$TMP/err" || fail "the taken stack is not named: $(cat "$TMP/err")"
stop_listener
pass "listen on a taken port: $(head -2 "$TMP/err" | tr '\n' ' ')"

# A stack that cannot take the server role (quic without a certificate) is left out before it
# binds, with a warning, while the others listen; so a QUIC client is refused at once (the port
# is closed for UDP) instead of waiting for an answer until its deadline.
start_listener "" 127.0.0.1
port=${LURL##*:}
[[ $LISTEN_LINE == *"stacks: framer/tcp)"* ]] || fail "expected [framer, tcp] alone: $LISTEN_LINE"
rc=0
started=$SECONDS
timeout 15 "$POST" connect "quic://127.0.0.1:$port" </dev/null >"$TMP/out" 2>"$TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "quic to a listener without a certificate: expected exit code 1, got $rc"
((SECONDS - started < 5)) || fail "quic was refused only after $((SECONDS - started)) s"
stop_listener
grep -q "warning: not listening over \[quic, udp\]: quic: the server role needs a certificate" \
    "$LOUT" || fail "no warning for the quic stack: $(cat "$LOUT")"
pass "listen without a certificate leaves quic out: $(head -1 "$LOUT")"
