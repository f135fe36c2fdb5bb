# sctp:// end to end with the `post` tool, real processes over loopback UDP (SCTP over UDP,
# RFC 6951): `post listen` + `post connect` exchange lines; a client killed without a word and
# restarted from the same port restarts the association (RFC 9260 5.2.4); our client against usrsctp's own
# /usr/lib/usrsctp/echo_server (SCTP port 7) gets its echo; usrsctp's tsctp as a client sends
# 100 messages of 1200 bytes to `post listen`. The usrsctp programs come with the Debian package
# libusrsctp-examples (tools/setup.sh installs it); without it those parts are skipped, saying so.
source "$(dirname "$0")/lib.sh" "$@"

USRSCTP=/usr/lib/usrsctp

# wait_output FILE TEXT: until FILE (a listener's output, written as it happens) contains TEXT.
wait_output() {
    local i
    for i in $(seq 1 200); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "no '$2' in $1 within 10 s: $(tail -3 "$1")"
}

# wait_udp_bound PORT: until some process has a UDP socket bound to PORT (a condition, polled;
# the usrsctp programs print nothing when they are ready).
wait_udp_bound() {
    local i
    for i in $(seq 1 200); do
        ss -Hlun "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    fail "nothing bound UDP port $1 within 10 s"
}

# 1. post <-> post.
start_listener sctp:// 127.0.0.1 --echo --json
[[ $LISTEN_LINE == *'"sctp","udp"'* ]] || fail "sctp listener does not list [sctp, udp]: $LISTEN_LINE"
printf 'first line\nsecond line\n' |
    timeout 10 "$POST" connect "$LURL" --count 2 --json >"$TMP/events" ||
    fail "sctp connect exited $?: $(cat "$TMP/events")"
json_lines "$TMP/events"
python3 - "$TMP/events" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
ready = [e for e in ev if e["event"] == "ready"]
assert ready and ready[0]["stack"] == ["sctp", "udp"], ev
got = [e["message"] for e in ev if e["event"] == "received"]
assert got == ["first line", "second line"], got
closed = [e for e in ev if e["event"] == "closed"]
assert closed and "error" not in closed[-1], closed
PY
stop_listener
pass "sctp echo between two post processes over $LURL"

# 2. Our client against usrsctp's echo_server (SCTP port 7 inside, UDP encapsulation port given
# as its first argument; the default would be 9899).
if [[ -x $USRSCTP/echo_server ]]; then
    port=$(random_port)
    timeout 30 "$USRSCTP/echo_server" "$port" >"$TMP/echo_server.out" 2>&1 &
    ECHO_PID=$!
    PIDS+=("$ECHO_PID")
    wait_udp_bound "$port"
    cat >"$TMP/port7.yaml" <<'YAML'
version: 1
name: sctp-to-echo-server
description: usrsctp's echo_server listens on SCTP port 7.
protocols:
  sctp: { port: 7 }
YAML
    printf 'hello usrsctp\nsecond\n' |
        timeout 20 "$POST" connect "sctp://127.0.0.1:$port" --policy "$TMP/port7.yaml" --count 2 \
            --json >"$TMP/echo_events" 2>"$TMP/echo_err" ||
        fail "connect to echo_server exited $?: $(cat "$TMP/echo_events" "$TMP/echo_err")"
    python3 - "$TMP/echo_events" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
got = [e["message"] for e in ev if e["event"] == "received"]
assert got == ["hello usrsctp", "second"], ev
PY
    kill "$ECHO_PID" 2>/dev/null || true
    pass "our sctp client got its echo from $USRSCTP/echo_server on UDP port $port"
else
    echo "note: $USRSCTP/echo_server is missing (apt-get install libusrsctp-examples); echo_server interop skipped"
fi

# 3. usrsctp's tsctp as the client: 100 messages of 1200 bytes to SCTP port 5000 (our default)
# over UDP to our listener; -E is tsctp's own UDP encapsulation port, -U ours.
if [[ -x $USRSCTP/tsctp ]]; then
    start_listener sctp:// 127.0.0.1 --json --count 100
    port=${LURL##*:}
    tsctp_udp=$(random_port)
    [[ $tsctp_udp != "$port" ]] || tsctp_udp=$((port + 1))
    timeout 20 "$USRSCTP/tsctp" -E "$tsctp_udp" -U "$port" -p 5000 -l 1200 -n 100 127.0.0.1 \
        >"$TMP/tsctp.out" 2>&1 || fail "tsctp exited $?: $(tail -5 "$TMP/tsctp.out")"
    finish_listener "$TMP/tsctp_events"
    [[ $LRC == 0 ]] || fail "listener exited $LRC after tsctp: $(tail -3 "$TMP/tsctp_events")"
    python3 - "$TMP/tsctp_events" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
sizes = [e["size"] for e in ev if e["event"] == "received"]
assert len(sizes) == 100 and set(sizes) == {1200}, (len(sizes), set(sizes))
PY
    pass "tsctp sent 100 x 1200 bytes to post listen on $LURL"
else
    echo "note: $USRSCTP/tsctp is missing (apt-get install libusrsctp-examples); tsctp interop skipped"
fi

# 4. Association restart across processes: a client killed with SIGKILL sends no ABORT, so the
# listener still has its association; a new client from the same UDP port (and SCTP port)
# sends INIT for it. The listener reports the restart on the old carrier, as an error, and the
# restarted association arrives as a new carrier that receives the new client's message.
start_listener sctp:// 127.0.0.1 --json --count 2
cport=$(random_port)
[[ $cport != "${LURL##*:}" ]] || cport=$((cport + 1))
exec {feed}> >(exec "$POST" connect "$LURL" --local "127.0.0.1:$cport" >"$TMP/first_client" 2>&1)
FIRST=$!
PIDS+=("$FIRST")
echo before >&"$feed"
wait_output "$LOUT" '"message":"before"'
kill -KILL "$FIRST"
exec {feed}>&-
wait "$FIRST" 2>/dev/null || true
printf 'after\n' | timeout 10 "$POST" connect "$LURL" --local "127.0.0.1:$cport" --json \
    >"$TMP/second_client" 2>&1 || fail "the restarted client exited $?: $(cat "$TMP/second_client")"
finish_listener "$TMP/restart_events"
[[ $LRC == 0 ]] || fail "listener exited $LRC after the restart: $(tail -3 "$TMP/restart_events")"
python3 - "$TMP/restart_events" "$cport" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
kinds = [e["event"] for e in ev]
# One carrier received "before"; the restart ended it with an error; a second carrier (the
# restarted association, same peer address and port) received "after".
assert kinds == ["ready", "received", "error", "ready", "received", "closed"], ev
assert [e["message"] for e in ev if e["event"] == "received"] == ["before", "after"], ev
assert "restarted the association" in ev[2]["reason"], ev[2]
assert ev[0]["remote"] == ev[3]["remote"] == "127.0.0.1:" + sys.argv[2], ev
PY
pass "a client killed and restarted from UDP port $cport restarted the association on $LURL"
