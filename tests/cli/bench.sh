# `post bench tcp --json` produces one JSON object with every documented field.
source "$(dirname "$0")/lib.sh" "$@"

timeout 100 "$POST" bench tcp --json --seconds 0.3 >"$TMP/bench.json" || fail "bench exited $?"
python3 - "$TMP/bench.json" <<'PY'
import json, math, sys
doc = json.load(open(sys.argv[1]))
for key in ("throughput_gbps", "rtt_p50_us", "rtt_p99_us", "connections_per_s"):
    for side in ("post", "asio", "ratio"):
        v = doc[key][side]
        assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (key, side, v)
assert isinstance(doc["plugin_load_ms"], (int, float)) and doc["plugin_load_ms"] >= 0, doc
print(json.dumps(doc))
PY
pass "bench json"

# The same with the length-prefix framer, which the JSON names as the stack.
timeout 100 "$POST" bench tcp --json --seconds 0.2 --framer length-prefix >"$TMP/lp.json" ||
    fail "bench --framer length-prefix exited $?"
python3 - "$TMP/lp.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["stack"] == ["length-prefix", "tcp"], doc["stack"]
assert doc["throughput_gbps"]["post"] > 0, doc
PY
pass "bench --framer length-prefix"
"$POST" bench tcp --framer nonsense >/dev/null 2>&1 && fail "accepted --framer nonsense"
pass "bench rejects an unknown framer"
