# Real SCTP over UDP on the wire (RFC 6951): tshark captures on lo, filtered on the listener's
# UDP port (and a probe port, to know when the capture is live) and decoded as SCTP (`-d udp.port==PORT,sctp`), while `post connect` sends one message
# to `post listen sctp://`. The capture must show the handshake (INIT, INIT_ACK, COOKIE_ECHO,
# COOKIE_ACK), a DATA chunk carrying the message's bytes, and the graceful close (SHUTDOWN,
# SHUTDOWN_ACK, SHUTDOWN_COMPLETE). Needs root (capturing) and tshark; otherwise exit 77 (skip).
source "$(dirname "$0")/lib.sh" "$@"

if ((EUID != 0)); then
    echo "skip: capturing on lo needs root"
    exit 77
fi
if ! command -v tshark >/dev/null 2>&1; then
    echo "skip: tshark is missing (apt-get install tshark, or tools/setup.sh)"
    exit 77
fi

# SCTP chunk types (RFC 9260 section 3.2).
DATA=0 INIT=1 INIT_ACK=2 SHUTDOWN=7 SHUTDOWN_ACK=8 COOKIE_ECHO=10 COOKIE_ACK=11
SHUTDOWN_COMPLETE=14

start_listener sctp:// 127.0.0.1 --json --count 1
port=${LURL##*:}
MESSAGE="post on the wire $RANDOM$RANDOM"

# One line per packet, printed as it is captured (-l). tshark's "Capturing on" line (merged from
# its stderr) comes before its filter is live, and once under load the first packets of the
# association went uncaptured. So the capture also takes a probe port: probes go there until one
# of them is captured, and only then does the association start. No sleeps as synchronisation;
# tshark can take well over 20 s to start (dissector registration) under a parallel test run.
probe_port=$(random_port)
while [[ $probe_port == "$port" ]]; do probe_port=$(random_port); done
exec {tfd}< <(exec timeout 100 tshark -i lo -n -l -f "udp port $port or udp port $probe_port" \
    -d "udp.port==$port,sctp" -T fields -E separator='|' -e frame.number -e sctp.chunk_type \
    -e data.data -e udp.dstport 2>&1)
TSHARK_PID=$!
PIDS+=("$TSHARK_PID")
ready=0
deadline=$((SECONDS + 90))
while ((SECONDS < deadline)); do
    # A datagram to a port nobody listens on: the kernel drops it (an ICMP error at most).
    printf 'probe' >/dev/udp/127.0.0.1/"$probe_port" 2>/dev/null || true
    if read -r -t 0.5 -u "$tfd" line; then
        if [[ $line =~ ^[0-9]+\| && ${line##*|} == "$probe_port" ]]; then
            ready=1
            break
        fi
        last=$line
    fi
done
((ready)) || fail "tshark did not capture a probe datagram on lo within 90 s: ${last:-no output}"

printf '%s\n' "$MESSAGE" | timeout 20 "$POST" connect "$LURL" --json >"$TMP/events" 2>&1 ||
    fail "post connect exited $?: $(cat "$TMP/events")"
finish_listener "$TMP/listener"
[[ $LRC == 0 ]] || fail "listener exited $LRC: $(tail -3 "$TMP/listener")"
grep -q "\"$MESSAGE\"" "$TMP/listener" || fail "the listener did not get the message: $(cat "$TMP/listener")"

# Read packets until the association is gone (SHUTDOWN_COMPLETE, or an ABORT which fails below).
# Up to 45 s per line: on a loaded machine tshark prints "Capturing on" (from its dumpcap child)
# long before it has dissected the first packet (seen: nothing within 20 s, under three builds).
: >"$TMP/packets"
seen_end=0
while read -r -t 45 -u "$tfd" line; do
    # Packet lines only ("frame|types|data|port"), not tshark's own messages.
    [[ $line =~ ^[0-9]+\| ]] || continue
    [[ ${line##*|} == "$probe_port" ]] && continue # a late probe
    printf '%s\n' "$line" >>"$TMP/packets"
    types=$(cut -d'|' -f2 <<<"$line")
    if [[ ,$types, == *",$SHUTDOWN_COMPLETE,"* || ,$types, == *",6,"* ]]; then
        seen_end=1
        break
    fi
done
kill "$TSHARK_PID" 2>/dev/null || true
exec {tfd}<&-
((seen_end)) || fail "no SHUTDOWN_COMPLETE captured (45 s without a packet): $(cat "$TMP/packets")"

# Every chunk type seen, one per line (bundled chunks are comma-separated in one packet).
cut -d'|' -f2 "$TMP/packets" | tr ',' '\n' | sort -un >"$TMP/types"
for want in INIT INIT_ACK COOKIE_ECHO COOKIE_ACK DATA SHUTDOWN SHUTDOWN_ACK SHUTDOWN_COMPLETE; do
    grep -qx "${!want}" "$TMP/types" ||
        fail "no $want chunk (type ${!want}) on the wire; chunk types seen: $(tr '\n' ' ' <"$TMP/types")"
done
grep -qx 6 "$TMP/types" && fail "an ABORT (type 6) went on the wire: $(cat "$TMP/packets")"

# The DATA chunk's user data is the message (post connect sends each line without its newline).
hex=$(printf '%s' "$MESSAGE" | od -An -tx1 | tr -d ' \n')
cut -d'|' -f3 "$TMP/packets" | tr -d ':' | grep -q "$hex" ||
    fail "no DATA chunk carries the message bytes ($hex): $(cat "$TMP/packets")"
pass "SCTP over UDP port $port on the wire: handshake, DATA with the message, graceful shutdown ($(wc -l <"$TMP/packets") packets)"
