# `post connect --stream` and `post listen --stream`: plain bytes both ways, so the peer can be
# socat. Run as `bash stream.sh path/to/post`.
source "$(dirname "$0")/lib.sh" "$@"

"$POST" connect --help 2>&1 | grep -q -- '--stream' || fail "post connect has no --stream flag"
CONNECT=("$POST" connect --stream)
LISTEN=("$POST" listen --stream)
command -v socat >/dev/null || { echo "note: socat not installed, skipped"; exit 0; }

# start_stream_listener STDIN_FILE STDOUT_FILE: a stream listener on a free port (retrying when
# the port is taken), started once it reports that it listens. Sets PORT, LPID, LERR.
start_stream_listener() {
    local input=$1 output=$2 attempt line fd
    for attempt in 1 2 3 4 5 6 7 8; do
        PORT=$(random_port)
        exec {fd}< <(exec timeout 30 "${LISTEN[@]}" "tcp://127.0.0.1:$PORT" <"$input" 2>&1 >"$output")
        LPID=$!
        PIDS+=("$LPID")
        if read -r -t 10 -u "$fd" line && [[ $line == *listening* ]]; then
            LERR=$(mktemp -p "$TMP" lerr.XXXXXX)
            cat <&"$fd" >"$LERR" &
            PIDS+=($!)
            exec {fd}<&-
            return 0
        fi
        echo "note: stream listener on port $PORT did not start (${line:-no output}); retrying" >&2
        kill "$LPID" 2>/dev/null || true
        exec {fd}<&-
    done
    fail "could not start a stream listener"
}

# Bytes that are not lines: no trailing newline, a NUL, about 200 KiB in all.
seq 1 40000 >"$TMP/seq"
{ head -c 204000 "$TMP/seq"; printf '\n\0tail without newline'; } >"$TMP/data"

# --- connect to socat's echo server: everything comes back, exit 0 ---
exec {sfd}< <(exec timeout 30 socat -d -d TCP-LISTEN:0,bind=127.0.0.1,reuseaddr PIPE 2>&1)
PIDS+=($!)
line=
while read -r -t 10 -u "$sfd" line; do [[ $line == *"listening on"* ]] && break; done
[[ $line == *"listening on"* ]] || fail "socat did not start: ${line:-no output}"
port=${line##*:}
cat <&"$sfd" >/dev/null &
PIDS+=($!)
timeout 20 "${CONNECT[@]}" "tcp://127.0.0.1:$port" <"$TMP/data" >"$TMP/echoed" 2>"$TMP/err" ||
    fail "connect to socat exited $?: $(cat "$TMP/err")"
cmp -s "$TMP/data" "$TMP/echoed" ||
    fail "socat echo differs: sent $(wc -c <"$TMP/data") bytes, got $(wc -c <"$TMP/echoed")"
pass "stream connect to socat echoes $(wc -c <"$TMP/data") bytes"

# --- listen for one stream; socat sends to it and reads its answer ---
printf 'answer from post\nno newline at the end' >"$TMP/reply"
start_stream_listener "$TMP/reply" "$TMP/lout"
port=$PORT
# -u: socat only reads from the connection (its side stays open until our listener closes).
timeout 20 socat -u TCP:127.0.0.1:"$port" STDOUT >"$TMP/from_listener" ||
    fail "socat reading from the stream listener exited $?"
LRC=0
wait "$LPID" || LRC=$?
[[ $LRC == 0 ]] || fail "stream listener exited $LRC: $(cat "$LERR")"
cmp -s "$TMP/reply" "$TMP/from_listener" || fail "socat got '$(cat "$TMP/from_listener")'"
pass "stream listener answered socat"

start_stream_listener /dev/null "$TMP/lout2"
port=$PORT
timeout 20 socat -u "$TMP/data" TCP:127.0.0.1:"$port" || fail "socat sending to the listener exited $?"
LRC=0
wait "$LPID" || LRC=$?
[[ $LRC == 0 ]] || fail "stream listener exited $LRC: $(cat "$LERR")"
cmp -s "$TMP/data" "$TMP/lout2" ||
    fail "listener wrote $(wc -c <"$TMP/lout2") bytes, socat sent $(wc -c <"$TMP/data")"
pass "stream listener received $(wc -c <"$TMP/data") bytes from socat"

# --- errors: exit 1 with a message, never a hang ---
port=$(random_port)
rc=0
timeout 20 "${CONNECT[@]}" "tcp://127.0.0.1:$port" </dev/null >/dev/null 2>"$TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "connect to a closed port exited $rc, expected 1"
grep -q "cannot connect" "$TMP/err" || fail "no reason given: $(cat "$TMP/err")"
pass "refused connection: exit 1 ($(head -c 120 "$TMP/err"))"

rc=0
timeout 10 "${CONNECT[@]}" "tcp://[nonsense" </dev/null >/dev/null 2>"$TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "bad URL exited $rc, expected 1"
[[ -s $TMP/err ]] || fail "bad URL: no message"
pass "bad URL: exit 1 ($(head -c 120 "$TMP/err"))"
