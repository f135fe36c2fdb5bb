# `post bench hol --json` produces one JSON object with every documented field, with positive
# numbers. Never a ratio or a latency target: a Debug build in a parallel test run says nothing
# about speed.
source "$(dirname "$0")/lib.sh" "$@"

# 17 MiB bulk messages: above the framer's default max-message-size (16 MiB), which the
# benchmark's policy must raise, or every bulk message fails and no bulk byte arrives.
# Bulk throughput counts whole messages, so the window must fit a few 17 MiB messages even in an
# ASan build on a loaded machine (1 s once delivered none in CI).
bulk=$((17 << 20))
timeout 180 "$POST" bench hol --json --seconds 3 --bulk-size $bulk >"$TMP/hol.json" || fail "bench hol exited $?"
python3 - "$TMP/hol.json" <<'PY'
import json, math, sys
doc = json.load(open(sys.argv[1]))
assert doc["bench"] == "hol" and doc["seconds"] == 3 and doc["warmup_seconds"] == 0.5, doc
assert doc["bulk_size"] == 17 << 20 and doc["urgent_size"] == 1024, doc
assert doc["bulk_niceness"] == 9 and doc["urgent_niceness"] == 0, doc
pos = lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v > 0
env = doc["loopback"]
for side in ("ours", "raw", "lifetime"):
    r = env[side]
    for k in ("p50_us", "p99_us", "max_us"):
        assert pos(r["urgent"][k]), (side, k, r)
    assert r["urgent"]["p50_us"] <= r["urgent"]["p99_us"] <= r["urgent"]["max_us"], (side, r)
    assert pos(r["bulk_mbps"]) and pos(r["sent"]) and pos(r["delivered"]), (side, r)
    assert r["urgent"]["count"] == r["delivered"], (side, r)
    # Every urgent message is accounted for: delivered, expired, failed or lost.
    assert r["delivered"] + r.get("expired", 0) + r.get("send_errors", 0) + r["lost"] == r["sent"], (side, r)
    # Nothing may stay stuck: every phase settles every urgent message, and none goes missing.
    assert r["drained"] is True and r["lost"] == 0, (side, r)
assert env["ours"]["stack"] == ["framer", "tcp"], env["ours"]
assert pos(env["p99_ratio"]) and env["p99_ratio_target_max"] == 0.05, env
lt = env["lifetime"]
assert lt["lifetime_ms"] == 50, lt
for k in ("late", "expired", "raw_over_lifetime"):
    assert isinstance(lt[k], int) and lt[k] >= 0, (k, lt)
assert "netns" not in doc, doc   # only with --netns
print(json.dumps(env))
PY
# Bulk messages smaller than the issue's 1 MiB are refused.
if "$POST" bench hol --bulk-size 1000 >"$TMP/small.out" 2>&1; then fail "--bulk-size 1000 accepted"; fi
grep -q "bulk-size" "$TMP/small.out" || fail "no word on --bulk-size: $(cat "$TMP/small.out")"
pass "bench hol json"
