# Helpers for the end-to-end tests of the `post` tool. Sourced by each test script, which is run
# by ctest as `bash tests/cli/NAME.sh path/to/post` with POST_SOURCE_DIR and POST_BINARY_DIR set.
set -euo pipefail

POST=${1:?usage: $0 path/to/post}
[[ -x $POST ]] || { echo "FAIL: $POST is not an executable" >&2; exit 1; }
SRC=${POST_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TMP=$(mktemp -d)
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
pass() { echo "ok: $*"; }

# require_layer NAME: skip the whole test (exit 77, which ctest reports as skipped) when no
# loaded plugin provides the layer.
require_layer() {
    if ! "$POST" plugins 2>/dev/null | grep -q "layer $1:"; then
        echo "SKIP: the $1 layer is not loaded (see \`post plugins\`)"
        exit 77
    fi
}

# A port that nothing listens on right now (for the "connection refused" test).
# A port below the kernel's ephemeral range: one inside it may be the local port of some
# connection (another test's client), and binding it then fails for one protocol only.
random_port() {
    local low=32768 high
    read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    ((low > 12000)) || low=32768
    echo $((10000 + RANDOM % (low - 10000)))
}

have_ipv6() { grep -q '^00000000000000000000000000000001' /proc/net/if_inet6 2>/dev/null; }

# start_listener SCHEME_PREFIX HOST [listen options...]
# Starts `post listen` on a random free port (retrying when the port is taken) and waits until it
# reports that it listens, by reading its output: no sleeps. From then on a background `cat`
# drains its output into $LOUT, so that the listener never blocks on a full pipe. Sets:
#   LURL  the URL it listens on     LPID  its pid (the `timeout` wrapper)
#   LISTEN_LINE  its first line     LOUT  the file collecting the rest of its stdout and stderr
start_listener() {
    local prefix=$1 host=$2 attempt line fd
    shift 2
    for attempt in 1 2 3 4 5 6 7 8; do
        LURL="${prefix}${host}:$(random_port)"
        exec {fd}< <(exec timeout 30 "$POST" listen "$LURL" "$@" 2>&1)
        LPID=$!
        PIDS+=("$LPID")
        if read -r -t 10 -u "$fd" line && [[ $line == *listening* ]]; then
            LISTEN_LINE=$line
            LOUT=$(mktemp -p "$TMP" listener.XXXXXX)
            cat <&"$fd" >"$LOUT" &
            CATPID=$!
            exec {fd}<&-
            return 0
        fi
        echo "note: listener on $LURL did not start (${line:-no output}); retrying" >&2
        kill "$LPID" 2>/dev/null || true
        exec {fd}<&-
    done
    fail "could not start a listener on ${prefix}${host}"
}

# finish_listener FILE: wait for the listener to exit, set LRC to its exit code and copy the
# rest of its output to FILE.
finish_listener() {
    LRC=0
    wait "$LPID" || LRC=$?
    wait "$CATPID" || true
    cp "$LOUT" "$1"
}

# stop_listener: for listeners without --count.
stop_listener() {
    kill -TERM "$LPID" 2>/dev/null || true
    wait "$LPID" 2>/dev/null || true
    wait "$CATPID" 2>/dev/null || true
}

# json_lines FILE: every line of FILE is a JSON object (prints nothing, fails otherwise).
json_lines() {
    python3 - "$1" <<'PY'
import json, sys
for n, line in enumerate(open(sys.argv[1], encoding="utf-8", errors="replace"), 1):
    obj = json.loads(line)
    assert isinstance(obj, dict) and "event" in obj, f"line {n}: no event: {line!r}"
PY
}
