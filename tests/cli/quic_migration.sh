# QUIC connection migration when the path's local address disappears (issue 7, "Mobility"):
# in a network namespace of our own, the client has two interfaces, mig0 and mig1, with one
# address each; the policy requires one of them and prefers mig0, so the carrier starts from
# mig0's address. Mid-transfer that address is removed (`ip addr del`): the kernel hears it
# from netlink, moves the connection to the other address the policy allows (trace
# `migration`, then `migrated`), the server finds the connection by its connection ID, and
# every message still arrives, once and in order, on the same carrier. Assertions are on
# `post connect --trace` and the listener's output.
#
# Needs root; skipped (exit 77) otherwise. Run as `bash quic_migration.sh path/to/post`.
source "$(dirname "$0")/../netns/topology.sh"
netns_require_root_or_skip
netns_enter "$@"
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_pki.sh"
require_program openssl
require_layer quic
make_pki "$TMP/pki"

# The server on srv0; the client's addresses on mig0 and mig1. Every address is local to the
# namespace, so each reaches the server.
_netns_ethernet srv0
_netns_ethernet mig0
_netns_ethernet mig1
ip addr add 10.99.0.1/24 dev srv0
ip addr add 10.98.0.2/24 dev mig0
ip addr add 10.96.0.2/24 dev mig1

cat >"$TMP/quic.yaml" <<YAML
version: 1
name: quic-migration
stacks:
  - [quic, udp]
protocols:
  quic: { cert-file: $TMP/pki/server.pem, key-file: $TMP/pki/server.key, ca-file: $TMP/pki/ca.pem,
          server-name: localhost, idle-timeout: 20s }
selection:
  interface:
    require: [mig0, mig1]
    prefer: [mig0]
YAML

start_listener quic:// 10.99.0.1 --policy "$TMP/quic.yaml" --echo
count=150
# One line every 20 ms: a transfer of about 3 s, long enough to cut its path in the middle.
(
    for i in $(seq 1 "$count"); do
        echo "message $i"
        sleep 0.02
    done
) | timeout 40 "$POST" connect "$LURL" --policy "$TMP/quic.yaml" --trace \
    --count "$count" >"$TMP/client" 2>&1 &
CPID=$!
PIDS+=("$CPID")

# The carrier is up from 10.98.0.2 and messages flow: then the address goes.
for _ in $(seq 1 200); do
    n=$(grep -c '^message ' "$TMP/client" || true)
    ((n >= 20)) && break
    sleep 0.05
done
((n >= 20)) || fail "the transfer did not start: $(cat "$TMP/client")"
grep -q 'attempt-won .*from 10.98.0.2' "$TMP/client" ||
    fail "the carrier did not start from 10.98.0.2: $(cat "$TMP/client")"
ip addr del 10.98.0.2/24 dev mig0
removed_at=$n

rc=0
wait "$CPID" || rc=$?
((rc == 0)) || fail "connect exited $rc: $(cat "$TMP/client")"
python3 - "$TMP/client" "$count" "$removed_at" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
count, removed_at = int(sys.argv[2]), int(sys.argv[3])
got = [l for l in lines if l.startswith("message ")]
want = [f"message {i}" for i in range(1, count + 1)]
assert got == want, f"echoes not once and in order: {len(got)} of {count}"
assert removed_at < count, "the address went after the transfer"
mig = [l for l in lines if " migration " in l or " migrated " in l]
assert any("moving from 10.98.0.2:" in l and "to 10.96.0.2 (local address 10.98.0.2 removed)" in l
           for l in mig), mig
assert any("migrated" in l and "now from 10.96.0.2:" in l for l in mig), mig
assert not [l for l in lines if l.startswith("trace") and " closed " in l and "error" in l], lines
print(f"address removed after {removed_at} echoes; all {count} arrived in order; " + mig[-1])
PY
pass "the connection moved to 10.96.0.2 when 10.98.0.2 was removed, and every message arrived"
stop_listener
# The listener kept its one carrier: the moved client's datagrams were no new connection.
! grep -q 'failed before it was ready' "$LOUT" ||
    fail "the listener reported the moved path as a failed connection: $(cat "$LOUT")"
pass "the listener reported no stray connection"
