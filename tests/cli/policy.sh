# `post policy check` passes on every shipped policy and reports file:line:col on bad ones;
# `post policy explain` ranks candidates and says why the others are excluded.
source "$(dirname "$0")/lib.sh" "$@"

shopt -s nullglob
policies=("$SRC"/policies/*.yaml)
[[ ${#policies[@]} -gt 0 ]] || fail "no shipped policies in $SRC/policies"
timeout 10 "$POST" policy check "${policies[@]}" >"$TMP/out" 2>&1 || fail "shipped policies: $(cat "$TMP/out")"
for p in "${policies[@]}"; do
    grep -qE "^$p: ok \([0-9]+ candidate stacks?\)$" "$TMP/out" || fail "no ok line for $p: $(cat "$TMP/out")"
done
pass "${#policies[@]} shipped policies check ok"

# An unknown key and a bad preference level.
cat >"$TMP/bad.yaml" <<'YAML'
version: 1
name: bad
selection:
  reliability: requier
raceing:
  attempt-delay: 10ms
YAML
# Broken YAML syntax.
printf 'version: 1\nselection: { reliability: require\n' >"$TMP/broken.yaml"
for f in "$TMP/bad.yaml" "$TMP/broken.yaml"; do
    rc=0
    timeout 10 "$POST" policy check "${policies[0]}" "$f" >"$TMP/out" 2>&1 || rc=$?
    [[ $rc == 1 ]] || fail "policy check $f: exit $rc: $(cat "$TMP/out")"
    grep -qE "^$f:[0-9]+:[0-9]+: " "$TMP/out" || fail "no file:line:col for $f: $(cat "$TMP/out")"
    grep -q "${policies[0]}: ok" "$TMP/out" || fail "the good file was not reported alongside $f"
    pass "bad policy reported: $(grep -E "^$f:" "$TMP/out" | head -2 | tr '\n' ' ')"
done
grep -q "raceing" "$TMP/out" || true

# explain: the interactive policy over tcp:// on today's plugins.
timeout 10 "$POST" policy explain "$SRC/policies/interactive.yaml" --remote tcp://127.0.0.1:4433 \
    >"$TMP/explain" || fail "explain exited $?"
grep -q "^candidate stacks" "$TMP/explain" || fail "no candidates: $(cat "$TMP/explain")"
grep -qE "^  1\. framer/tcp" "$TMP/explain" || fail "framer/tcp is not first: $(cat "$TMP/explain")"
grep -q "^excluded stacks" "$TMP/explain" || fail "no excluded section: $(cat "$TMP/explain")"
grep -qE "^  quic/udp: .+" "$TMP/explain" || fail "quic/udp exclusion not explained: $(cat "$TMP/explain")"
# interactive.yaml has interface rules: explain judges them against this host's interfaces.
grep -q "^local addresses on this host" "$TMP/explain" || fail "no locals: $(cat "$TMP/explain")"
grep -qE "^  127\.0\.0\.1 lo \(loopback\)" "$TMP/explain" || fail "lo not listed: $(cat "$TMP/explain")"
pass "explain (text)"

timeout 10 "$POST" policy explain "$SRC/policies/datagram.yaml" --remote udp://127.0.0.1:9 --json \
    >"$TMP/explain.json" || fail "explain --json exited $?"
python3 - "$TMP/explain.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
c = doc["candidates"]
assert c and c[0]["stack"] == ["udp"] and c[0]["rank"] == 1 and "score" in c[0], c
assert all("udp" in x["stack"] for x in c), c
assert doc["excluded"] and all(x["reason"] for x in doc["excluded"]), doc["excluded"]
assert doc["constraint"] == ["udp"], doc
PY
pass "explain (json)"
