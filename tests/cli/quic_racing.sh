# QUIC and TLS over TCP race (issue 7, racing): a policy lists [quic, udp] first and
# [framer, tls, tcp] after a stack delay, and a listener offers both on one port. With UDP
# open, QUIC wins; with UDP to that port silently dropped (nft, in a namespace of our own),
# the QUIC attempt gets no answer and TLS over TCP wins after the stack delay, and the carrier
# works. Assertions are on `post connect --trace` lines.
#
# Needs root; skipped (exit 77) otherwise. Run as `bash quic_racing.sh path/to/post`.
source "$(dirname "$0")/../netns/topology.sh"
netns_require_root_or_skip
netns_enter "$@"
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_pki.sh"
require_program openssl
require_layer quic
make_pki "$TMP/pki"
cat >"$TMP/race.yaml" <<YAML
version: 1
name: quic-or-tls
stacks:
  - [quic, udp]
  - [framer, tls, tcp]
protocols:
  quic: { cert-file: $TMP/pki/server.pem, key-file: $TMP/pki/server.key, ca-file: $TMP/pki/ca.pem }
  tls: { cert-file: $TMP/pki/server.pem, key-file: $TMP/pki/server.key, ca-file: $TMP/pki/ca.pem }
racing:
  stack-delay: 300ms
YAML

start_listener "" 127.0.0.1 --policy "$TMP/race.yaml" --echo
[[ $LISTEN_LINE == *quic/udp* && $LISTEN_LINE == *framer/tls/tcp* ]] ||
    fail "the listener does not offer both stacks: $LISTEN_LINE"
port=${LURL##*:}

# race OUT: one message through the race to localhost:PORT; the trace and echo go to OUT.
race() {
    echo "raced" | timeout 20 "$POST" connect "localhost:$port" --policy "$TMP/race.yaml" \
        --trace --count 1 >"$1" 2>&1 || fail "connect exited $?: $(cat "$1")"
    grep -qx "raced" "$1" || fail "no echo through the winner: $(cat "$1")"
}

# 1. UDP open: QUIC is first and wins before TLS over TCP is even tried.
race "$TMP/open"
grep -q 'attempt-won .*\[quic, udp\]' "$TMP/open" || fail "QUIC did not win: $(cat "$TMP/open")"
grep -q 'attempt-started .*\[framer, tls, tcp\]' "$TMP/open" &&
    fail "TLS over TCP was tried although QUIC answered: $(cat "$TMP/open")"
pass "with UDP open, [quic, udp] wins"

# 2. UDP to the port dropped without an answer: TLS over TCP wins after the stack delay.
nft add table inet quicdrop
nft add chain inet quicdrop in '{ type filter hook input priority 0; }'
nft add rule inet quicdrop in udp dport "$port" drop
race "$TMP/blocked"
python3 - "$TMP/blocked" <<'PY'
import re, sys
ev = []
for line in open(sys.argv[1]):
    m = re.match(r"trace \+([0-9.]+)ms (\S+) \S+(?: \[([^\]]*)\])?", line)
    if m:
        ev.append((float(m.group(1)), m.group(2), m.group(3) or ""))
started = {s: t for t, k, s in ev if k == "attempt-started"}
won = [(t, s) for t, k, s in ev if k == "attempt-won"]
assert "quic, udp" in started and "framer, tls, tcp" in started, ev
assert won and won[0][1] == "framer, tls, tcp", ev
# TLS over TCP started only after the attempt delay (250 ms) plus the stack delay (300 ms)
# gave QUIC its chance.
gap = started["framer, tls, tcp"] - started["quic, udp"]
assert gap >= 540, (gap, ev)
assert not [e for e in ev if e[1] == "attempt-won" and e[2] == "quic, udp"], ev
print(f"TLS/TCP started {gap:.0f} ms after QUIC and won at +{won[0][0]:.0f} ms")
PY
pass "with UDP dropped, [framer, tls, tcp] wins after the stack delay"
stop_listener
