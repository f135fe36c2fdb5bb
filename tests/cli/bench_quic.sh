# `post bench quic --json` in a small, fast run: one JSON object with both contenders' bulk
# throughput (ours over [quic, udp], gtlsclient GETting from gtlsserver) and their ratio, the
# receiver child's byte count equal to what was sent, the stream open rate over forks of one
# connection, and the 0-RTT time to first byte (every early attempt accepted, each resuming).
# No speed is asserted: a Debug build in a
# parallel test run says nothing about it. Without gtlsserver/gtlsclient (ngtcp2-server,
# ngtcp2-client), openssl or the quic plugin: exit 77 (skip), saying why.
source "$(dirname "$0")/lib.sh" "$@"

for p in gtlsserver gtlsclient openssl; do
    # gtlsserver is in /usr/sbin, which PATH may lack (the benchmark looks there too).
    if ! command -v "$p" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$p ]]; then
        echo "skip: $p is missing (apt-get install ngtcp2-server ngtcp2-client openssl)"
        exit 77
    fi
done
require_layer quic

bytes=300000 # not a multiple of 64 KiB: the last message is shorter
timeout 100 "$POST" bench quic --json --bytes $bytes --runs 1 --streams 120 --batch 30 \
    --handshakes 4 \
    >"$TMP/bench.json" 2>"$TMP/err" || fail "bench quic exited $?: $(cat "$TMP/err")"
python3 - "$TMP/bench.json" $bytes <<'PY'
import json, math, sys
doc = json.load(open(sys.argv[1]))
nbytes = int(sys.argv[2])
def positive(v, what):
    assert isinstance(v, (int, float)) and not isinstance(v, bool), (what, v)
    assert math.isfinite(v) and v > 0, (what, v)
assert doc["bench"] == "quic" and doc["bytes"] == nbytes, doc
assert doc["warmup_bytes"] == nbytes, doc  # min(--bytes, 8 MB): one untimed transfer first
t = doc["throughput"]
assert len(t["runs"]) == 1, t
run = t["runs"][0]
assert run["receiver_bytes"] == nbytes, run  # the child counted every byte sent
for key in ("ours_mbs", "ours_whole_mbs", "ours_seconds", "ours_whole_seconds",
            "ours_receiver_seconds", "gtls_whole_mbs", "gtls_whole_seconds",
            "gtls_tiny_get_seconds", "ratio_whole"):
    positive(run[key], key)
assert run["ours_whole_seconds"] >= run["ours_seconds"], run  # whole includes the handshake
# The net baseline figure (wall time minus a 1-byte GET's) may vanish in noise at this size.
if run["gtls_mbs"] is not None:
    positive(run["gtls_mbs"], "gtls_mbs")
    assert abs(run["ratio"] - run["ours_mbs"] / run["gtls_mbs"]) < 1e-6, run
assert abs(run["ratio_whole"] - run["ours_whole_mbs"] / run["gtls_whole_mbs"]) < 1e-6, run
s = doc["streams"]
assert s["count"] == 120 and s["echoed"] == 120, s
positive(s["per_s"], "streams per_s")
assert s["forked_as_streams"] >= 120, s  # forks were streams of one connection, not new ones
assert s["baseline"] is None and s["note"], s
z = doc["zero_rtt"]
assert z["connections"] == 4, z
positive(z["full_ms_median"], "full_ms_median")
positive(z["zero_rtt_ms_median"], "zero_rtt_ms_median")
# Every 0-RTT connection resumed and had its early data accepted; the ticketless ones did not.
assert z["early_accepted"] == 4 and z["early_rejected"] == 0 and z["resumed"] == 4, z
print(json.dumps({"throughput": run, "streams_per_s": s["per_s"], "zero_rtt": z}))
PY
pass "bench quic json: both contenders' throughput, the child's byte count, streams/s, 0-RTT"

# Nonsense is a usage error, not a crash.
"$POST" bench quic --bytes 0 >/dev/null 2>&1 && fail "accepted --bytes 0"
"$POST" bench quic --runs 0 >/dev/null 2>&1 && fail "accepted --runs 0"
"$POST" bench quic --handshakes 0 >/dev/null 2>&1 && fail "accepted --handshakes 0"
pass "bench quic refuses bad options"
