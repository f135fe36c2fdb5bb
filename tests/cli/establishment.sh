# Establishment end to end, in a network namespace of its own (tests/netns/topology.sh): racing
# across families with IPv6 silently dropped, a refused port, slow and failing DNS, interface
# rules, every candidate dead, and the winner remembered across runs. Every assertion is on the
# lines of `post connect --trace` and on the times they carry (+ms from the first event); the
# only clock read here is the wall time of a run that must end by its connection timeout.
#
# Needs root; skipped (exit 77) otherwise. Run as `bash establishment.sh path/to/post`.
source "$(dirname "$0")/../netns/topology.sh"
netns_require_root_or_skip
netns_enter "$@"
source "$(dirname "$0")/lib.sh" "$@"
netns_setup
netns_dns_start

# connect_trace OUT URL [options...]: `post connect --trace` with nothing to send; its output
# (stdout and stderr) goes to OUT, its exit code to CRC, its wall time in ms to CMS.
connect_trace() {
    local out=$1 t0
    shift
    t0=$EPOCHREALTIME
    CRC=0
    timeout 20 "$POST" connect --trace "$@" </dev/null >"$out" 2>&1 || CRC=$?
    CMS=$(python3 -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" \
        "$t0" "$EPOCHREALTIME")
}

# connect_until OUT REGEX URL [options...]: as connect_trace, but the carrier stays open (stdin
# is a fifo we hold) until an output line matches REGEX (or 5 s without output), so that events
# after ready are seen too.
connect_until() {
    local out=$1 pattern=$2 fd wfd line pid
    shift 2
    rm -f "$TMP/stdin.fifo"
    mkfifo "$TMP/stdin.fifo"
    : >"$out"
    exec {fd}< <(exec timeout 20 "$POST" connect --trace "$@" <"$TMP/stdin.fifo" 2>&1)
    pid=$!
    exec {wfd}>"$TMP/stdin.fifo"
    while IFS= read -r -t 5 -u "$fd" line; do
        printf '%s\n' "$line" >>"$out"
        [[ $line =~ $pattern ]] && break
    done
    exec {wfd}>&-
    cat <&"$fd" >>"$out"
    exec {fd}<&-
    CRC=0
    wait "$pid" || CRC=$?
}

# The trace parser every check starts with: `events` (ms, kind, remote, stack, detail), helpers,
# and ARGS from KEY=VALUE arguments.
cat >"$TMP/trace_lib.py" <<'PY'
import re, sys
LOG = sys.argv[1]
ARGS = dict(a.split("=", 1) for a in sys.argv[2:])
TEXT = open(LOG, encoding="utf-8", errors="replace").read()
LINES = TEXT.splitlines()
LINE = re.compile(r"^trace \+([0-9.]+)ms (\S+) (\S+)(?: \[([^\]]*)\])?(?:: (.*))?$")
events = []
for l in LINES:
    m = LINE.match(l)
    if m:
        events.append({"ms": float(m[1]), "kind": m[2], "remote": m[3], "stack": m[4] or "",
                       "detail": m[5] or "", "line": l})

def fail(why):
    sys.exit(f"FAIL: {ARGS.get('name', '?')}: {why}\n--- output of post connect:\n{TEXT}")

def check(cond, why):
    if not cond:
        fail(why)

def addr(e):
    """The remote endpoint an attempt event is about: the first word of its detail."""
    return e["detail"].split(" ")[0].rstrip(":")

def host_of(endpoint):
    """"10.0.0.1:80" -> "10.0.0.1", "[fd99::1]:80" -> "fd99::1"; a bare address stays."""
    if endpoint.startswith("["):
        return endpoint[1:endpoint.index("]")]
    return endpoint.split(":")[0] if endpoint.count(":") == 1 else endpoint

def local_of(e):
    """"... from ADDR (IFACE)" in an attempt's detail: (address without port, IFACE), or None
    when the attempt was not bound to a local address."""
    m = re.search(r" from (\S+) \(([^)]*)\)", e["detail"])
    return (host_of(m[1]), m[2]) if m else None

def of(kind, address=None):
    return [e for e in events if e["kind"] == kind and (address is None or addr(e) == address)]

def only(kind):
    es = of(kind)
    check(len(es) == 1, f"expected exactly one {kind}, got {len(es)}")
    return es[0]

V6 = f"[fd99::1]:{ARGS.get('port', '?')}"
V4 = f"10.99.0.1:{ARGS.get('port', '?')}"
PY
# check_trace NAME FILE [KEY=VALUE...] <<'PY' ...checks... PY
check_trace() {
    local name=$1 file=$2
    shift 2
    { cat "$TMP/trace_lib.py"; cat; } | python3 - "$file" "name=$name" "$@" || exit 1
    pass "$name"
}

policy_file() { # policy_file NAME YAML-LINES...: a policy over [framer, tcp] with extra lines
    local f="$TMP/$1.yaml"
    shift
    {
        echo "version: 1"
        echo "name: $(basename "$f" .yaml)"
        echo "stacks:"
        echo "  - [framer, tcp]"
        printf '%s\n' "$@"
    } >"$f"
    echo "$f"
}

# listen_at URL: `post listen URL` in the background, once it says it listens. Our namespace is
# fresh, so fixed ports cannot clash; listeners live until the test ends.
listen_at() {
    local fd line
    exec {fd}< <(exec timeout 100 "$POST" listen "$1" 2>&1)
    PIDS+=("$!")
    read -r -t 10 -u "$fd" line || true
    [[ $line == *listening* ]] || fail "post listen $1 did not start: ${line:-no output}"
    cat <&"$fd" >"$TMP/listener-${1//[^0-9a-z]/_}.log" &
    exec {fd}<&-
}

# listen_dual PORT: both families on PORT. The tcp layer's [::] listener takes IPv6 only (so that
# a v4 listener can share its port), hence two listeners.
listen_dual() {
    listen_at "tcp://[::]:$1"
    listen_at "tcp://0.0.0.0:$1"
}

# ---- 1. IPv6 silently dropped: v4 after the attempt delay wins ------------------------------
P=9001
listen_dual "$P"
netns_drop_v6 "$P"
connect_trace "$TMP/s1.out" "tcp://dual.test:$P"
[[ $CRC == 0 ]] || fail "1: connect exited $CRC: $(cat "$TMP/s1.out")"
check_trace "1: v6 dropped, v4 wins after the attempt delay" "$TMP/s1.out" "port=$P" <<'PY'
starts = of("attempt-started")
check(starts and addr(starts[0]) == V6, f"the first attempt is not {V6}")
v4 = of("attempt-started", V4)
check(v4, f"no attempt to {V4}")
gap = v4[0]["ms"] - starts[0]["ms"]
check(240 <= gap <= 500, f"v4 started {gap:.1f} ms after v6 (attempt delay 250 ms)")
won = only("attempt-won")
check(addr(won) == V4, f"the winner is {addr(won)}, not {V4}")
check(of("attempt-cancelled", V6), f"the attempt to {V6} was not cancelled")
check(not of("attempt-failed", V6), "the dropped v6 attempt failed instead of being cancelled")
check(won["ms"] < 1000, f"ready after {won['ms']:.1f} ms")
check(TEXT.count("post: connected to") == 1, "not exactly one ready")
PY

# ---- 2. refused on v6: v4 starts at once ----------------------------------------------------
P=9002
listen_at "tcp://10.99.0.1:$P"
connect_trace "$TMP/s2.out" "tcp://dual.test:$P"
[[ $CRC == 0 ]] || fail "2: connect exited $CRC: $(cat "$TMP/s2.out")"
check_trace "2: v6 refused, v4 at once" "$TMP/s2.out" "port=$P" <<'PY'
starts = of("attempt-started")
check(starts and addr(starts[0]) == V6, f"the first attempt is not {V6}")
failed = of("attempt-failed", V6)
check(failed and "refused" in failed[0]["detail"].lower(),
      f"the attempt to {V6} did not fail as refused")
v4 = of("attempt-started", V4)
check(v4, f"no attempt to {V4}")
check(v4[0]["ms"] - failed[0]["ms"] < 50,
      f"v4 started {v4[0]['ms'] - failed[0]['ms']:.1f} ms after the refusal")
check(v4[0]["ms"] - starts[0]["ms"] < 125,
      f"v4 started {v4[0]['ms'] - starts[0]['ms']:.1f} ms after v6: the attempt delay was waited")
won = only("attempt-won")
check(addr(won) == V4, f"the winner is {addr(won)}, not {V4}")
PY

# ---- 3. slow AAAA: ready over A after the resolution delay, before the AAAA answer ----------
# (Once a carrier is ready the resolver is cancelled, so the late AAAA answer is not traced.)
P=9003
listen_dual "$P"
connect_until "$TMP/s3.out" 'attempt-won' "tcp://slow6.test:$P"
[[ $CRC == 0 ]] || fail "3: connect exited $CRC: $(cat "$TMP/s3.out")"
check_trace "3: slow AAAA, ready over A" "$TMP/s3.out" "port=$P" <<'PY'
answers = of("resolve-answer")
a = [e for e in answers if re.match(r"A:? ", e["detail"])]
aaaa = [e for e in answers if re.match(r"AAAA:? ", e["detail"])]
check(a and "10.99.0.1" in a[0]["detail"], "no A answer with 10.99.0.1 in the trace")
won = only("attempt-won")
check(addr(won) == V4, f"the winner is {addr(won)}, not {V4}")
check(won["ms"] < 400, f"ready after {won['ms']:.1f} ms: not before the AAAA answer (400 ms)")
check(not aaaa or won["ms"] < aaaa[0]["ms"], "ready came after the AAAA answer")
v4 = of("attempt-started", V4)
check(v4 and v4[0]["ms"] >= 45,
      f"the A attempt started at {v4[0]['ms']:.1f} ms, before the 50 ms resolution delay")
check(not of("attempt-started", V6), "an IPv6 attempt started before the AAAA answer")
PY

# ---- 4. failing DNS: the error names the name and both families -----------------------------
connect_trace "$TMP/s4.out" "tcp://fail.test:9"
[[ $CRC != 0 ]] || fail "4: connect to fail.test succeeded: $(cat "$TMP/s4.out")"
check_trace "4: both families fail to resolve" "$TMP/s4.out" <<'PY'
err = [l for l in LINES if l.startswith("post:")]
check(err, "no error line")
e = " ".join(err)
check("fail.test" in e, "the error does not name fail.test")
check("AAAA" in e and re.search(r"(^|[^A])A:", e), "the error does not name both families")
PY

# ---- 5. interface rules pick the local address ----------------------------------------------
P=9005
listen_at "tcp://10.99.0.1:$P"
avoid=$(policy_file avoid-tunnel "selection:" "  interface: { avoid: [tunnel] }")
prefer=$(policy_file prefer-tunnel "selection:" "  interface: { prefer: [tunnel] }")
connect_trace "$TMP/s5a.out" "tcp://10.99.0.1:$P" --policy "$avoid"
[[ $CRC == 0 ]] || fail "5: connect (avoid) exited $CRC: $(cat "$TMP/s5a.out")"
connect_trace "$TMP/s5p.out" "tcp://10.99.0.1:$P" --policy "$prefer"
[[ $CRC == 0 ]] || fail "5: connect (prefer) exited $CRC: $(cat "$TMP/s5p.out")"
winner_local='
won = only("attempt-won")
started = [e for e in of("attempt-started") if e["ms"] <= won["ms"]]
mine = local_of(won) or (local_of(started[-1]) if len(started) == 1 else None)
check(len(started) == 1 or local_of(won), "cannot tell which attempt won")
check(mine, "the winning attempt is not bound to a local address (no \" from \")")
'
check_trace "5: interface avoid: [tunnel]" "$TMP/s5a.out" "port=$P" <<PY
$winner_local
check(mine[0] != "10.97.0.1" and mine[1] != "tun9", f"the winner is bound to {mine}")
PY
check_trace "5: interface prefer: [tunnel]" "$TMP/s5p.out" "port=$P" <<PY
$winner_local
check(mine == ("10.97.0.1", "tun9"), f"the winner is bound to {mine}, not 10.97.0.1 (tun9)")
PY

# ---- 5b. locals of equal rank start side by side ---------------------------------------------
# prefer: [ethernet] ranks racing0 (10.99.0.1) and backup0 (10.98.0.1) equally: one group,
# started together; tun9 (not preferred) would only come an attempt delay later.
prefer_eth=$(policy_file prefer-ethernet "selection:" "  interface: { prefer: [ethernet] }")
connect_trace "$TMP/s5b.out" "tcp://10.99.0.1:$P" --policy "$prefer_eth"
[[ $CRC == 0 ]] || fail "5b: connect exited $CRC: $(cat "$TMP/s5b.out")"
check_trace "5b: equal-rank locals race simultaneously" "$TMP/s5b.out" "port=$P" <<'PY'
started = of("attempt-started")
locals_ = {local_of(e)[0]: e["ms"] for e in started if local_of(e)}
check("10.99.0.1" in locals_ and "10.98.0.1" in locals_,
      f"not one attempt from each ethernet address: {locals_}")
check(abs(locals_["10.99.0.1"] - locals_["10.98.0.1"]) < 20,
      f"the two ethernet attempts started {abs(locals_['10.99.0.1'] - locals_['10.98.0.1']):.1f} ms apart")
won = only("attempt-won")
check("10.97.0.1" not in locals_ or locals_["10.97.0.1"] > won["ms"],
      "the tunnel's attempt started before the winner, though the policy prefers ethernet")
PY

# ---- 6. every candidate dead: the error lists each attempt, in time -------------------------
short=$(policy_file short-timeout "connection: { timeout: 2s }")
P=9006 # nothing listens: v4 refused
netns_drop_v6 "$P"
connect_trace "$TMP/s6a.out" "tcp://dual.test:$P" --policy "$short"
[[ $CRC != 0 ]] || fail "6: connect succeeded: $(cat "$TMP/s6a.out")"
check_trace "6: v6 dropped, v4 refused" "$TMP/s6a.out" "port=$P" "wall=$CMS" <<'PY'
e = "\n".join(l for l in LINES if not l.startswith("trace "))
# The end, on the trace's clock (which starts with establishment, not with the process: a
# sanitizer build on a loaded machine can take a second just to start).
closed = of("closed")
check(closed, "no closed event in the trace")
check(1900 <= closed[-1]["ms"] <= 3000,
      f"the carrier ended {closed[-1]['ms']:.0f} ms after establishment began (timeout 2 s)")
wall = int(ARGS["wall"])
check(wall <= 12000, f"post connect took {wall} ms in all: it hung")
check(re.search(re.escape(V6) + r"[^;\n]*(timed out|still running)", e),
      f"the error does not say {V6} timed out")
check(re.search(re.escape(V4) + r"[^;\n]*refused", e, re.I), f"the error does not say {V4} refused")
PY
P=9016
netns_drop_v6 "$P"
netns_drop_v4 "$P"
connect_trace "$TMP/s6b.out" "tcp://dual.test:$P" --policy "$short"
[[ $CRC != 0 ]] || fail "6: connect succeeded: $(cat "$TMP/s6b.out")"
check_trace "6: both families dropped" "$TMP/s6b.out" "port=$P" "wall=$CMS" <<'PY'
e = "\n".join(l for l in LINES if not l.startswith("trace "))
# The end, on the trace's clock (which starts with establishment, not with the process: a
# sanitizer build on a loaded machine can take a second just to start).
closed = of("closed")
check(closed, "no closed event in the trace")
check(1900 <= closed[-1]["ms"] <= 3000,
      f"the carrier ended {closed[-1]['ms']:.0f} ms after establishment began (timeout 2 s)")
wall = int(ARGS["wall"])
check(wall <= 12000, f"post connect took {wall} ms in all: it hung")
for a in (V6, V4):
    check(re.search(re.escape(a) + r"[^;\n]*(timed out|still running)", e),
          f"the error does not say {a} timed out")
PY

# ---- 7. the winner is remembered across runs ------------------------------------------------
P=9007
listen_dual "$P"
netns_drop_v6 "$P"
connect_trace "$TMP/s7a.out" "tcp://dual.test:$P" --associations "$TMP/assoc.json"
[[ $CRC == 0 ]] || fail "7: first connect exited $CRC: $(cat "$TMP/s7a.out")"
[[ -s $TMP/assoc.json ]] || fail "7: no association file after the first run"
check_trace "7: first run learns v4" "$TMP/s7a.out" "port=$P" <<'PY'
check(addr(only("attempt-won")) == V4, "the first run did not win over v4")
PY
connect_trace "$TMP/s7b.out" "tcp://dual.test:$P" --associations "$TMP/assoc.json"
[[ $CRC == 0 ]] || fail "7: second connect exited $CRC: $(cat "$TMP/s7b.out")"
check_trace "7: second run starts with the learned winner" "$TMP/s7b.out" "port=$P" <<'PY'
starts = of("attempt-started")
check(starts and addr(starts[0]) == V4, f"the first attempt is not the learned {V4}")
won = only("attempt-won")
check(addr(won) == V4, f"the winner is {addr(won)}")
check(not [e for e in of("attempt-started", V6) if e["ms"] <= won["ms"]],
      "a v6 attempt started before ready")
check(won["ms"] < 50, f"ready after {won['ms']:.1f} ms")
PY
