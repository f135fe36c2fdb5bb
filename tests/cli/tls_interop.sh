# TLS interop of the `post` tool with real peers on loopback: nginx (HTTPS server), curl (HTTPS
# client), openssl s_client and s_server. Each section skips, with a note, when its peer is not
# installed. The PKI is generated per run (tls_pki.sh). Run as `bash tls_interop.sh path/to/post`.
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_pki.sh"

require_program openssl
make_pki "$TMP/pki"
CA=$TMP/pki/ca.pem
CERT=$TMP/pki/server.pem
KEY=$TMP/pki/server.key

# start_tls_stream_listener STDIN_FILE STDOUT_FILE [SETUP]: `post listen --stream
# tls://127.0.0.1:PORT` with our server certificate, on a free port (retrying when the port is
# taken), returned once it reports that it listens. Sets PORT, LPID and LERR (its stderr and -v
# trace from then on). SETUP, when given, is a command run before each attempt (for FIFOs that
# one attempt uses up).
start_tls_stream_listener() {
    local input=$1 output=$2 setup=${3:-} attempt line fd
    for attempt in 1 2 3 4 5 6 7 8; do
        [[ -z $setup ]] || $setup
        PORT=$(random_port)
        # -v: the trace tells how the stream ended (see wait_listener).
        exec {fd}< <(exec timeout 30 "$POST" -v listen --stream "tls://127.0.0.1:$PORT" \
            --cert "$CERT" --key "$KEY" <"$input" 2>&1 >"$output")
        LPID=$!
        PIDS+=("$LPID")
        line=
        while read -r -t 10 -u "$fd" line && [[ $line == trace* ]]; do :; done
        if [[ $line == *listening* ]]; then
            LERR=$(mktemp -p "$TMP" lerr.XXXXXX)
            cat <&"$fd" >"$LERR" &
            PIDS+=($!)
            exec {fd}<&-
            return 0
        fi
        echo "note: tls stream listener on port $PORT did not start (${line:-no output}); retrying" >&2
        kill "$LPID" 2>/dev/null || true
        exec {fd}<&-
    done
    fail "could not start a tls stream listener"
}

# wait_listener WHAT: wait for the stream listener to exit; fail unless it exited 0 (the caller
# checks what the listener received).
wait_listener() {
    local rc=0
    wait "$LPID" || rc=$?
    [[ $rc == 0 ]] ||
        fail "$1: post listen exited $rc: $(cat "$LERR")"
}

# ---- nginx serves HTTPS; our stream carrier fetches a page ---------------------------------
nginx_section() {
    local nginx=/usr/sbin/nginx
    [[ -x $nginx ]] || nginx=$(command -v nginx || true)
    if [[ -z $nginx ]]; then
        echo "skipped: nginx is not installed (nginx interop not tested)"
        return 0
    fi
    local dir=$TMP/nginx port attempt npid="" body rc
    mkdir -p "$dir/www" "$dir/tmp"
    body="post interop page $RANDOM$RANDOM"
    printf '<html><body>%s</body></html>\n' "$body" >"$dir/www/page.html"
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$(random_port)
        cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 64; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        # nginx 1.22's default stops at TLS 1.2.
        ssl_protocols TLSv1.2 TLSv1.3;
        root $dir/www;
    }
}
EOF
        timeout 60 "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
            >"$dir/stdout" 2>&1 &
        npid=$!
        PIDS+=("$npid")
        wait_port "$port" "$npid" 10 && break
        kill "$npid" 2>/dev/null || true
        wait "$npid" 2>/dev/null || true
        grep -q "Address already in use" "$dir/error.log" "$dir/stdout" 2>/dev/null ||
            fail "nginx did not start: $(cat "$dir/stdout" "$dir/error.log" 2>/dev/null | tail -5)"
        npid=""
    done
    [[ -n $npid ]] || fail "nginx did not start on a free port"

    local request='GET /page.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
    rc=0
    printf "$request" | timeout 20 "$POST" -v connect --stream "tls://localhost:$port" --ca "$CA" \
        >"$dir/got" 2>"$dir/err" || rc=$?
    grep -q "^HTTP/1.1 200" "$dir/got" ||
        fail "nginx answered (exit $rc): $(head -c 300 "$dir/got"); $(grep -v '^trace' "$dir/err")"
    grep -qF "$body" "$dir/got" || fail "the page body is missing from: $(head -c 500 "$dir/got")"
    grep -q "handshake complete with .*TLSv1.3" "$dir/err" ||
        fail "not TLS 1.3: $(grep 'handshake complete' "$dir/err")"
    # nginx closes its socket without reading our close_notify (sent when stdin ended), and its
    # kernel resets the connection: after nginx's own close_notify that is still a clean end.
    [[ $rc == 0 ]] ||
        fail "post connect --stream to nginx exited $rc: $(grep -v '^trace' "$dir/err")"
    pass "post connect --stream tls:// fetched a page from nginx over TLS 1.3"

    # https:// means TLS over TCP too (and port 443 when none is given).
    rc=0
    printf "$request" | timeout 20 "$POST" -v connect --stream "https://localhost:$port" \
        --ca "$CA" >"$dir/got3" 2>"$dir/err3" || rc=$?
    grep -q "^HTTP/1.1 200" "$dir/got3" ||
        fail "https:// (exit $rc): $(head -c 300 "$dir/got3"); $(grep -v '^trace' "$dir/err3")"
    grep -q "attempt-won .*\[tls, tcp\]" "$dir/err3" ||
        fail "https:// did not win over [tls, tcp]: $(grep attempt "$dir/err3")"
    pass "post connect --stream https:// fetched the page over [tls, tcp]"

    # The system trust store does not know our CA: verification must fail, loudly.
    rc=0
    printf "$request" | timeout 20 "$POST" connect --stream "tls://localhost:$port" \
        >"$dir/got2" 2>"$dir/err2" || rc=$?
    [[ $rc != 0 ]] || fail "connect without --ca exited 0 (output: $(head -c 200 "$dir/got2"))"
    grep -q "certificate verify failed" "$dir/err2" ||
        fail "connect without --ca: no 'certificate verify failed' in: $(cat "$dir/err2")"
    [[ ! -s $dir/got2 ]] || fail "connect without --ca printed data: $(head -c 200 "$dir/got2")"
    pass "without --ca: exit $rc, $(grep -o 'certificate verify failed[^(]*' "$dir/err2" | head -1)"

    kill "$npid" 2>/dev/null || true
    wait "$npid" 2>/dev/null || true
}

# ---- curl fetches from our listener, which answers with a canned HTTP response --------------
curl_section() {
    if ! command -v curl >/dev/null; then
        echo "skipped: curl is not installed (curl interop not tested)"
        return 0
    fi
    local dir=$TMP/curl body rc
    mkdir -p "$dir"
    body="hello from post listen $RANDOM$RANDOM"
    printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "${#body}" "$body" >"$dir/response"
    start_tls_stream_listener "$dir/response" "$dir/request"
    rc=0
    # --resolve: localhost is the name the certificate holds; the listener is on IPv4 only.
    timeout 20 curl -sS -v --cacert "$CA" --resolve "localhost:$PORT:127.0.0.1" \
        "https://localhost:$PORT/" -o "$dir/body" 2>"$dir/curl.log" || rc=$?
    [[ $rc == 0 ]] || fail "curl exited $rc: $(grep -v '^[<>{}] ' "$dir/curl.log" | tail -15)"
    [[ $(cat "$dir/body") == "$body" ]] || fail "curl got '$(head -c 200 "$dir/body")'"
    grep -q "SSL connection using TLSv1.3" "$dir/curl.log" ||
        fail "curl -v does not show TLS 1.3: $(grep -i 'SSL connection' "$dir/curl.log")"
    wait_listener "curl"
    grep -q "^GET / HTTP/1.1" "$dir/request" ||
        fail "the listener did not receive curl's request: $(head -c 200 "$dir/request")"
    pass "curl --cacert fetched '$body' from post listen --stream over TLS 1.3"
}

# ---- openssl s_client talks to our listener: a line each way --------------------------------
s_client_section() {
    local dir=$TMP/s_client rc helper
    mkdir -p "$dir"
    # Our listener must not close (which it does when its stdin ends) before s_client's line has
    # arrived: s_client reads the socket before its stdin and would quit at our close_notify
    # without sending. So the listener's stdin and stdout are FIFOs held by a helper that writes
    # our line, waits for s_client's line on the listener's output, and only then ends our input.
    # A fresh pair for each attempt to start the listener (a failed one uses them up).
    s_client_helper() {
        [[ -z ${helper:-} ]] || kill "$helper" 2>/dev/null || true
        rm -f "$dir/to_listener" "$dir/from_listener"
        mkfifo "$dir/to_listener" "$dir/from_listener"
        (
            exec 3>"$dir/to_listener" 4<"$dir/from_listener" # as the listener opens them
            printf 'line from post listen\n' >&3
            IFS= read -r -t 15 line <&4 && printf '%s\n' "$line" >"$dir/from_client"
        ) &
        helper=$!
        PIDS+=("$helper")
    }
    helper=
    start_tls_stream_listener "$dir/to_listener" "$dir/from_listener" s_client_helper
    rc=0
    # -quiet implies -ign_eof: s_client keeps reading after its stdin ends, until our listener
    # closes. -verify_return_error makes an unverified chain or address fatal.
    printf 'line from s_client\n' | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" \
        -CAfile "$CA" -verify_ip 127.0.0.1 -verify_return_error -quiet \
        >"$dir/s_client.out" 2>"$dir/s_client.err" || rc=$?
    [[ $rc == 0 ]] || fail "openssl s_client exited $rc: $(tail -5 "$dir/s_client.err")"
    grep -qx "line from post listen" "$dir/s_client.out" ||
        fail "s_client got '$(head -c 200 "$dir/s_client.out")'"
    wait "$helper" || true
    wait_listener "s_client"
    grep -qx "line from s_client" "$dir/from_client" 2>/dev/null ||
        fail "the listener did not pass on s_client's line: '$(cat "$dir/from_client" 2>/dev/null)'"
    pass "openssl s_client and post listen --stream exchanged a line each way"
}

# ---- resumption across runs: a ticket saved by run 1 in --associations FILE resumes run 2 ---
resumption_section() {
    local dir=$TMP/resume port attempt line fd spid="" rc run
    mkdir -p "$dir"
    local assoc=$dir/associations.json
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$(random_port)
        # -rev answers each line reversed (and reads nothing from stdin); two connections.
        exec {fd}< <(exec timeout 60 openssl s_server -accept "127.0.0.1:$port" -cert "$CERT" \
            -key "$KEY" -rev -naccept 2 2>&1)
        spid=$!
        PIDS+=("$spid")
        line=
        while read -r -t 10 -u "$fd" line; do
            [[ $line == ACCEPT* || $line == *rror* ]] && break
        done
        [[ $line == ACCEPT* ]] && break
        kill "$spid" 2>/dev/null || true
        exec {fd}<&-
        spid=""
    done
    [[ -n $spid ]] || fail "openssl s_server did not start (${line:-no output})"
    cat <&"$fd" >"$dir/s_server.log" &
    PIDS+=($!)
    exec {fd}<&-

    for run in 1 2; do
        rc=0
        printf 'resume me\n' | timeout 20 "$POST" -v connect --stream "tls://localhost:$port" \
            --ca "$CA" --associations "$assoc" >"$dir/out$run" 2>"$dir/trace$run" || rc=$?
        [[ $rc == 0 ]] || fail "run $run against s_server exited $rc: $(grep -v '^trace' "$dir/trace$run" | tail -5)"
        grep -qx "em emuser" "$dir/out$run" || fail "run $run: s_server answered '$(cat "$dir/out$run")'"
    done
    grep -q "full handshake" "$dir/trace1" || fail "run 1: no 'full handshake' in its -v trace"
    grep -q "resumed session" "$dir/trace1" && fail "run 1 claims a resumed session"
    grep -q "resumed session" "$dir/trace2" ||
        fail "run 2 did not resume: $(grep -E 'handshake|ticket|session' "$dir/trace2" | head -5)"
    [[ -f $assoc ]] || fail "no association file was written"
    local mode
    mode=$(stat -c %a "$assoc")
    [[ $mode == 600 ]] || fail "association file has mode $mode, expected 600"
    pass "run 2 resumed the session run 1 saved in --associations (mode $mode)"
    wait "$spid" 2>/dev/null || true
}

nginx_section
curl_section
s_client_section
resumption_section
