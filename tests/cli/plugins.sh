# `post plugins --json` lists tcp, udp and framer; a corrupt plugin found through
# POST_PLUGIN_PATH is listed as refused with its file and a reason, and the tool still works.
source "$(dirname "$0")/lib.sh" "$@"

check_layers() {
    python3 - "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
layers = {l["name"]: l for p in doc["plugins"] for l in p["layers"]}
for name in ("tcp", "udp", "framer"):
    assert name in layers, f"layer {name} missing: {sorted(layers)}"
assert layers["framer"]["lower"] == "stream" and layers["framer"]["upper"] == "message", layers["framer"]
assert layers["tcp"]["lower"] == "none" and layers["tcp"]["upper"] == "stream", layers["tcp"]
assert layers["udp"]["upper"] == "datagram" or layers["udp"]["upper"] == "message", layers["udp"]
for p in doc["plugins"]:
    assert p["file"] and p["name"] and p["version"] and "major" in p["abi"], p
PY
}

timeout 10 "$POST" plugins --json >"$TMP/plugins.json" || fail "post plugins --json exited $?"
check_layers "$TMP/plugins.json"
timeout 10 "$POST" plugins >"$TMP/plugins.txt" || fail "post plugins exited $?"
grep -q "layer tcp" "$TMP/plugins.txt" || fail "text listing lacks tcp: $(cat "$TMP/plugins.txt")"
pass "plugins listed"

mkdir "$TMP/bad"
printf 'this is not an ELF file\n' >"$TMP/bad/libpost-corrupt.so"
export POST_PLUGIN_PATH=$TMP/bad
timeout 10 "$POST" plugins --json >"$TMP/with-bad.json" || fail "post plugins exited $? with a corrupt plugin"
check_layers "$TMP/with-bad.json"
python3 - "$TMP/with-bad.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
bad = [r for r in doc["refused"] if r["file"].endswith("libpost-corrupt.so")]
assert bad, doc["refused"]
assert bad[0]["reason"].strip(), bad
PY
timeout 10 "$POST" plugins | grep -q "libpost-corrupt.so: " || fail "text listing lacks the refused plugin"
pass "corrupt plugin refused: $(timeout 10 "$POST" plugins | grep 'libpost-corrupt.so')"

# Still works: an echo exchange with the corrupt plugin on the path.
start_listener tcp:// 127.0.0.1 --echo
echo hello | timeout 10 "$POST" connect "$LURL" --count 1 >"$TMP/reply" || fail "connect exited $?"
[[ $(cat "$TMP/reply") == hello ]] || fail "no echo with a corrupt plugin present"
stop_listener
pass "exchange works with a corrupt plugin on the path"

# POST_PLUGIN_PATH takes precedence over the configured path: a copy of the udp plugin found
# there is the one loaded, and the build's own copy is refused as a duplicate.
mkdir "$TMP/mine"
cp "$POST_BINARY_DIR/lib/post/plugins/libpost-udp.so" "$TMP/mine/"
POST_PLUGIN_PATH=$TMP/mine timeout 10 "$POST" plugins --json >"$TMP/precedence.json" ||
    fail "post plugins exited $? with POST_PLUGIN_PATH"
python3 - "$TMP/precedence.json" "$TMP/mine/libpost-udp.so" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
udp = [p for p in doc["plugins"] if p["name"] == "udp"]
assert len(udp) == 1 and udp[0]["file"] == sys.argv[2], udp
dup = [r for r in doc["refused"] if r["file"].endswith("libpost-udp.so") and r["file"] != sys.argv[2]]
assert dup and "already loaded" in dup[0]["reason"], doc["refused"]
PY
pass "POST_PLUGIN_PATH takes precedence"
