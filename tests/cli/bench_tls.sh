# `post bench tls --json` produces one JSON object with every documented field, each a positive
# number (the targets are not checked here: they depend on the machine). Run as
# `bash bench_tls.sh path/to/post`.
source "$(dirname "$0")/lib.sh" "$@"

if ! "$POST" plugins 2>/dev/null | grep -q "layer tls:"; then
    echo "note: the tls plugin is not loaded (see \`post plugins\`); test skipped"
    exit 0
fi

timeout 100 "$POST" bench tls --json --seconds 0.3 >"$TMP/bench.json" 2>"$TMP/err" ||
    fail "bench tls exited $?: $(cat "$TMP/err")"
python3 - "$TMP/bench.json" <<'PY'
import json, math, sys
doc = json.load(open(sys.argv[1]))
def positive(v, what):
    assert isinstance(v, (int, float)) and not isinstance(v, bool), (what, v)
    assert math.isfinite(v) and v > 0, (what, v)
for key in ("throughput_gbps", "rtt_p50_us", "rtt_p99_us", "full_handshakes_per_s",
            "resumed_handshakes_per_s"):
    for side in ("post", "asio", "ratio"):
        positive(doc[key][side], f"{key}.{side}")
for key in ("resumed_over_full", "resumed_fraction"):
    for side in ("post", "asio"):
        positive(doc[key][side], f"{key}.{side}")
        if key == "resumed_fraction":  # every connection of the resumed loops resumed
            assert doc[key][side] == 1, (key, side, doc[key][side])
# OpenSSL alone, in memory: both loops ran, and every connection of the resumed one resumed.
mem = doc["openssl_in_memory"]
for key in ("full_handshakes_per_s", "resumed_handshakes_per_s", "resumed_over_full"):
    positive(mem[key], f"openssl_in_memory.{key}")
assert mem["resumed_fraction"] == 1, mem
# CPU per handshake of each loop's client and server threads. Only that each was measured:
# how they compare is performance, which tests do not assert (a short run under a sanitizer on a
# busy machine can make any of them larger than another).
cpu = doc["cpu_us_per_handshake"]
for kind in ("full", "resumed"):
    for side in ("post", "asio"):
        for thread in ("client", "server"):
            positive(cpu[kind][side][thread], f"cpu_us_per_handshake.{kind}.{side}.{thread}")
positive(doc["seconds"], "seconds")
positive(doc["round_trips"], "round_trips")
assert isinstance(doc["plugin_load_ms"], (int, float)) and doc["plugin_load_ms"] >= 0, doc
assert doc["stack"] == ["framer", "tls", "tcp"], doc["stack"]
assert doc["tls_version"] == "TLSv1.3", doc["tls_version"]
assert doc["cipher_suite"].startswith("TLS_"), doc["cipher_suite"]
for key in ("throughput_ratio_min", "post_resumed_over_full_min"):
    positive(doc["targets"][key], f"targets.{key}")
print(json.dumps(doc))
PY
pass "bench tls json"

"$POST" bench tls --only nonsense >/dev/null 2>&1 && fail "accepted --only nonsense"
pass "bench tls rejects an unknown phase"

# --rounds: the handshake loops run that many times; every loop counts each round's handshakes.
timeout 100 "$POST" bench tls --json --only handshakes --seconds 0.1 --rounds 3 \
    >"$TMP/rounds.json" 2>"$TMP/err" || fail "bench tls --rounds exited $?: $(cat "$TMP/err")"
python3 - "$TMP/rounds.json" "$TMP/bench.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["handshake_rounds"] == 3, doc["handshake_rounds"]
for key in ("full_handshakes_per_s", "resumed_handshakes_per_s"):
    for side in ("post", "asio", "ratio"):
        assert doc[key][side] > 0, (key, side, doc[key])
assert json.load(open(sys.argv[2]))["handshake_rounds"] == 1
PY
pass "bench tls --rounds"
"$POST" bench tls --rounds 0 >/dev/null 2>&1 && fail "accepted --rounds 0"
pass "bench tls rejects --rounds 0"

# --loops: only the in-memory loops run; the socket loops report nothing (null in JSON).
timeout 100 "$POST" bench tls --json --only handshakes --seconds 0.1 \
    --loops memory-full,memory-resumed >"$TMP/memory.json" 2>"$TMP/err" ||
    fail "bench tls --loops memory-* exited $?: $(cat "$TMP/err")"
python3 - "$TMP/memory.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
mem = doc["openssl_in_memory"]
assert mem["full_handshakes_per_s"] > 0 and mem["resumed_handshakes_per_s"] > 0, mem
for key in ("full_handshakes_per_s", "resumed_handshakes_per_s"):
    assert doc[key]["post"] is None and doc[key]["asio"] is None, (key, doc[key])
for kind in ("full", "resumed"):
    for side in ("post", "asio"):
        assert doc["cpu_us_per_handshake"][kind][side] == {"client": None, "server": None}, doc
PY
pass "bench tls --loops memory-full,memory-resumed"

# In text, a loop left out has no figure ("n/a"), never "nan"; the in-memory line shows only
# when one of its loops ran.
timeout 100 "$POST" bench tls --only handshakes --seconds 0.1 --loops post-resumed \
    >"$TMP/one.txt" 2>"$TMP/err" || fail "bench tls --loops post-resumed exited $?: $(cat "$TMP/err")"
grep -qi "nan" "$TMP/one.txt" && fail "nan in the text output: $(cat "$TMP/one.txt")"
grep -Eq "^full handshakes/s +n/a +n/a +n/a" "$TMP/one.txt" || fail "full line: $(cat "$TMP/one.txt")"
grep -Eq "^resumed handshakes/s +[0-9]+ +n/a +n/a" "$TMP/one.txt" ||
    fail "resumed line: $(cat "$TMP/one.txt")"
grep -q "OpenSSL alone" "$TMP/one.txt" && fail "in-memory line without its loops"
grep -Eq "CPU per handshake.*resumed: post [0-9]+ / [0-9]+, asio n/a / n/a" "$TMP/one.txt" ||
    fail "CPU line: $(cat "$TMP/one.txt")"
pass "bench tls --loops post-resumed prints n/a for the loops left out"

# --cross: each client against the other contender's server; every connection of both resumed
# loops resumes (our client against Asio's server, Asio's client against ours).
timeout 100 "$POST" bench tls --json --only handshakes --seconds 0.1 --cross \
    >"$TMP/cross.json" 2>"$TMP/err" || fail "bench tls --cross exited $?: $(cat "$TMP/err")"
python3 - "$TMP/cross.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["cross"] is True, doc.get("cross")
for side in ("post", "asio"):
    assert doc["resumed_fraction"][side] == 1, (side, doc["resumed_fraction"])
    assert doc["full_handshakes_per_s"][side] > 0, (side, doc["full_handshakes_per_s"])
PY
grep -q '"cross":false' "$TMP/bench.json" || fail "an uncrossed run does not say cross: false"
pass "bench tls --cross"
"$POST" bench tls --cross --seconds 0.1 >/dev/null 2>"$TMP/err" &&
    fail "accepted --cross with the throughput phase"
grep -q -- "--cross needs --only handshakes" "$TMP/err" || fail "--cross error: $(cat "$TMP/err")"
pass "bench tls --cross refuses the phases that send messages"

# --tls-version tls1.2: both contenders pinned to TLS 1.2 (checked from what they negotiated),
# and the resumed loop resumes.
timeout 100 "$POST" bench tls --json --only handshakes --seconds 0.1 --tls-version tls1.2 \
    >"$TMP/tls12.json" 2>"$TMP/err" ||
    fail "bench tls --tls-version tls1.2 exited $?: $(cat "$TMP/err")"
python3 - "$TMP/tls12.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["tls_version"] == "TLSv1.2", doc["tls_version"]
assert doc["cipher_suite"] == "ECDHE-ECDSA-AES128-GCM-SHA256", doc["cipher_suite"]
for side in ("post", "asio"):
    assert doc["resumed_fraction"][side] == 1, (side, doc["resumed_fraction"])
    assert doc["full_handshakes_per_s"][side] > 0, (side, doc["full_handshakes_per_s"])
assert doc["openssl_in_memory"]["resumed_fraction"] == 1, doc["openssl_in_memory"]
PY
pass "bench tls --tls-version tls1.2"
"$POST" bench tls --tls-version tls1.1 >/dev/null 2>&1 && fail "accepted --tls-version tls1.1"
pass "bench tls rejects --tls-version tls1.1"
