# `post bench racing --json` produces one JSON object with every documented field, each a
# positive number. The targets are not checked: a benchmark is measured, not asserted. Needs root
# (the benchmark builds its own network namespace); skipped with exit 77 otherwise, and the
# benchmark itself must then refuse with a clear message.
# Run as `bash bench_racing.sh path/to/post`.
source "$(dirname "$0")/lib.sh" "$@"

if [[ $(id -u) != 0 ]]; then
    rc=0
    "$POST" bench racing --runs 1 >/dev/null 2>"$TMP/err" || rc=$?
    [[ $rc != 0 ]] || fail "bench racing ran without root"
    grep -q "post bench racing: needs root (network namespaces)" "$TMP/err" ||
        fail "unexpected refusal: $(cat "$TMP/err")"
    echo "SKIP: needs root (network namespaces)"
    exit 77
fi
for tool in nft curl ip; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: needs '$tool'"; exit 77; }
done

timeout 100 "$POST" bench racing --runs 2 --json >"$TMP/bench.json" 2>"$TMP/err" ||
    fail "bench racing exited $?: $(cat "$TMP/err")"
python3 - "$TMP/bench.json" <<'PY'
import json, math, sys
doc = json.load(open(sys.argv[1]))
def positive(v, what):
    assert isinstance(v, (int, float)) and not isinstance(v, bool), (what, v)
    assert math.isfinite(v) and v > 0, (what, v)
assert doc["bench"] == "racing", doc
assert doc["runs"] == 2 and doc["attempt_delay_ms"] == 250, doc
positive(doc["port"], "port")
assert doc["stack"] == ["framer", "tcp"], doc["stack"]
for key in ("post_first_ms", "post_repeat_ms", "curl_connect_ms", "curl_wall_ms"):
    s = doc[key]
    positive(s["median"], f"{key}.median")
    positive(s["p90"], f"{key}.p90")
    assert s["median"] <= s["p90"], (key, s)
    assert len(s["samples"]) == 2, (key, s)
    for v in s["samples"]:
        positive(v, f"{key}.samples")
positive(doc["first_over_curl"], "first_over_curl")
# Not a target but the set-up: with IPv6 dropped, both first connects wait the attempt delay.
for key in ("post_first_ms", "curl_connect_ms"):
    assert doc[key]["median"] >= 0.9 * doc["attempt_delay_ms"], (key, doc[key])
positive(doc["targets"]["first_over_curl_max"], "targets.first_over_curl_max")
positive(doc["targets"]["repeat_median_ms_max"], "targets.repeat_median_ms_max")
for k in ("first_over_curl", "repeat"):
    assert doc["verdicts"][k] in ("ok", "MISSED"), (k, doc["verdicts"])
print(json.dumps({k: doc[k] for k in ("post_first_ms", "post_repeat_ms", "curl_connect_ms")}))
PY
pass "bench racing json"

"$POST" bench racing --runs 0 >/dev/null 2>&1 && fail "accepted --runs 0"
pass "bench racing rejects --runs 0"
