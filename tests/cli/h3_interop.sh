# HTTP/3 interop with Debian's ngtcp2 examples (nghttp3 inside): `post get` over [h3, quic, udp]
# against gtlsserver serving a directory (a small file and one of a few MB compared with cmp, a
# 404 with exit 1, --json naming the h3 stack), and gtlsclient against `post listen` with an h3
# policy and --echo (the POSTed file comes back as the response body, status 200). Skipped (77)
# without gtlsserver/gtlsclient (packages ngtcp2-server, ngtcp2-client) or the h3 layer.
# Run as `bash h3_interop.sh path/to/post`.
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_pki.sh"

for p in gtlsserver gtlsclient; do
    command -v "$p" >/dev/null 2>&1 || { echo "skipped: $p is not installed"; exit 77; }
done
"$POST" plugins 2>/dev/null | grep -qw h3 || { echo "skipped: the h3 layer is not built"; exit 77; }
require_program openssl
make_pki "$TMP/pki"
CA=$TMP/pki/ca.pem

cat >"$TMP/h3.yaml" <<EOF2
version: 1
name: h3
stacks:
  - [h3, quic, udp]
protocols:
  quic: { idle-timeout: 10s }
connection: { timeout: 10s }
EOF2

# wait_udp PORT PID: until something is bound to UDP 127.0.0.1:PORT (gtlsserver prints nothing
# when it is ready, and UDP has no handshake to try): polling, as wait_port does for TCP.
wait_udp() {
    local port=$1 pid=$2 start=$SECONDS
    while ((SECONDS - start < 10)); do
        kill -0 "$pid" 2>/dev/null || return 1
        ss -Hunl "sport = :$port" 2>/dev/null | grep -q . && return 0
        sleep 0.02 # polling interval: there is no event to wait for
    done
    return 1
}

www=$TMP/www
mkdir -p "$www"
echo "hello over HTTP/3 $RANDOM" >"$www/hello.txt"
head -c 3000000 /dev/urandom >"$www/big.bin"

# --- post get against gtlsserver ---------------------------------------------------------------
gpid=""
for attempt in 1 2 3 4 5; do
    gport=$(random_port)
    timeout 60 gtlsserver -q -d "$www" 127.0.0.1 "$gport" "$TMP/pki/server.key" \
        "$TMP/pki/server.pem" >"$TMP/gtlsserver.log" 2>&1 &
    gpid=$!
    PIDS+=("$gpid")
    wait_udp "$gport" "$gpid" && break
    kill "$gpid" 2>/dev/null || true
    gpid=""
done
[[ -n $gpid ]] || fail "gtlsserver did not start: $(tail -5 "$TMP/gtlsserver.log")"

rc=0
timeout 20 "$POST" get "https://127.0.0.1:$gport/hello.txt" --policy "$TMP/h3.yaml" --ca "$CA" \
    -o "$TMP/hello.got" 2>"$TMP/err" || rc=$?
[[ $rc == 0 ]] || fail "post get over h3 exited $rc: $(cat "$TMP/err")"
cmp "$www/hello.txt" "$TMP/hello.got" || fail "h3: got '$(head -c 200 "$TMP/hello.got")'"
pass "post get https:// over h3 from gtlsserver: $(cat "$TMP/hello.got")"

rc=0
timeout 30 "$POST" get "https://127.0.0.1:$gport/big.bin" --policy "$TMP/h3.yaml" --ca "$CA" \
    -o "$TMP/big.got" 2>"$TMP/err" || rc=$?
[[ $rc == 0 ]] || fail "post get of 3 MB over h3 exited $rc: $(cat "$TMP/err")"
cmp "$www/big.bin" "$TMP/big.got" || fail "h3: the 3 MB file differs"
pass "post get over h3: $(stat -c %s "$TMP/big.got") bytes identical to the served file"

rc=0
timeout 20 "$POST" get "https://127.0.0.1:$gport/hello.txt" --policy "$TMP/h3.yaml" --ca "$CA" \
    --json >"$TMP/json" 2>"$TMP/err" || rc=$?
[[ $rc == 0 ]] || fail "post get --json over h3 exited $rc: $(cat "$TMP/err")"
grep -q '"status":200' "$TMP/json" || fail "--json: no status 200 in $(cat "$TMP/json")"
grep -q '"stack":"h3/quic/udp"' "$TMP/json" || fail "--json: not over h3/quic/udp: $(cat "$TMP/json")"
pass "post get --json over h3: $(cat "$TMP/json")"

rc=0
timeout 20 "$POST" get "https://127.0.0.1:$gport/missing" --policy "$TMP/h3.yaml" --ca "$CA" \
    -o "$TMP/404.got" 2>"$TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "404 over h3: exit $rc, expected 1: $(cat "$TMP/err")"
grep -q "HTTP status 404" "$TMP/err" || fail "404 over h3: $(cat "$TMP/err")"
pass "404 over h3: exit 1 with '$(cat "$TMP/err")'"

# Without --ca the certificate is refused before any request.
rc=0
timeout 20 "$POST" get "https://127.0.0.1:$gport/hello.txt" --policy "$TMP/h3.yaml" \
    >"$TMP/untrusted" 2>"$TMP/err" || rc=$?
[[ $rc == 2 ]] || fail "untrusted over h3: exit $rc, expected 2: $(cat "$TMP/err")"
grep -q "certificate verify failed" "$TMP/err" || fail "untrusted over h3: $(cat "$TMP/err")"
pass "untrusted certificate over h3: exit 2, $(head -c 200 "$TMP/err")"

# --- gtlsclient against post listen --------------------------------------------------------------
start_listener "https://" 127.0.0.1 --policy "$TMP/h3.yaml" --cert "$TMP/pki/server.pem" \
    --key "$TMP/pki/server.key" --echo
lport=${LURL##*:}
mkdir -p "$TMP/dl"
head -c 200000 /dev/urandom >"$TMP/upload.bin"
rc=0
# POST the file to /upload.bin; --download writes the response body to dl/upload.bin.
timeout 20 gtlsclient --exit-on-all-streams-close --download="$TMP/dl" -m POST \
    -d "$TMP/upload.bin" 127.0.0.1 "$lport" "https://127.0.0.1:$lport/upload.bin" \
    >"$TMP/gtlsclient.log" 2>&1 || rc=$?
[[ $rc == 0 ]] || fail "gtlsclient exited $rc: $(grep -v '^\s*$' "$TMP/gtlsclient.log" | tail -20)"
grep -q ":status: 200" "$TMP/gtlsclient.log" ||
    fail "gtlsclient: no status 200: $(grep -i 'status\|http' "$TMP/gtlsclient.log" | head)"
cmp "$TMP/upload.bin" "$TMP/dl/upload.bin" || fail "gtlsclient: the echoed body differs"
pass "gtlsclient POSTed $(stat -c %s "$TMP/upload.bin") bytes to post listen over h3 and got them back, status 200"
stop_listener
