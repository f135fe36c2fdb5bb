# `post bench sctp --json` in a small, fast run: one JSON object with both contenders'
# throughput (ours over [sctp, udp], usrsctp's tsctp) and their ratio for 1200 B and 8 KiB
# messages, and the head-of-line phases (urgent messages on a forked carrier, and on the bulk
# carrier) with every urgent message accounted for. No speed is asserted: a Debug build in a
# parallel test run says nothing about it. Without tsctp (libusrsctp-examples) or the sctp
# plugin: exit 77 (skip), saying why.
source "$(dirname "$0")/lib.sh" "$@"

if [[ ! -x /usr/lib/usrsctp/tsctp ]]; then
    echo "skip: /usr/lib/usrsctp/tsctp is missing (apt-get install libusrsctp-examples)"
    exit 77
fi
require_layer sctp

timeout 80 "$POST" bench sctp --json --bytes 1048576 --runs 1 --seconds 0.5 \
    >"$TMP/bench.json" 2>"$TMP/err" || fail "bench sctp exited $?: $(cat "$TMP/err")"
python3 - "$TMP/bench.json" <<'PY'
import json, math, sys
doc = json.load(open(sys.argv[1]))
def positive(v, what):
    assert isinstance(v, (int, float)) and not isinstance(v, bool), (what, v)
    assert math.isfinite(v) and v > 0, (what, v)
assert doc["bench"] == "sctp", doc
for size in ("1200", "8192"):
    t = doc["throughput"][size]
    assert t["message_size"] == int(size), t
    assert len(t["runs"]) == 1, t
    for where in (t["runs"][0], t["median"]):
        for key in ("ours_mbs", "tsctp_mbs", "ratio"):
            positive(where[key], f"throughput {size} {key}")
        assert abs(where["ratio"] - where["ours_mbs"] / where["tsctp_mbs"]) < 1e-6, where
hol = doc["hol"]
assert hol["fork"] == "stream", hol  # the sctp layer multistreams: fork() opens a stream
for phase in ("own_stream", "same_stream"):
    p = hol[phase]
    assert p["stack"] == ["sctp", "udp"], p
    assert p["sent"] > 0 and p["delivered"] == p["sent"] and p["drained"], p
    for key in ("p50_us", "p99_us", "max_us"):
        positive(p[key], f"{phase} {key}")
    # In half a second on a loaded machine no whole 1 MiB bulk message may have arrived yet
    # while urgent ones go first: present and not negative is all that can be asked.
    assert isinstance(p["bulk_mbps"], (int, float)) and p["bulk_mbps"] >= 0, p
positive(hol["p99_ratio"], "p99_ratio")
print(json.dumps({k: doc["throughput"][k]["median"] for k in doc["throughput"]}))
PY
pass "bench sctp json: both contenders' throughput and their ratio, head-of-line on streams"

# Nonsense is a usage error, not a crash.
"$POST" bench sctp --bytes 12 >/dev/null 2>&1 && fail "accepted --bytes 12"
"$POST" bench sctp --runs 0 >/dev/null 2>&1 && fail "accepted --runs 0"
pass "bench sctp refuses bad options"
