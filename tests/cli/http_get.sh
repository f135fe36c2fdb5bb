# `post get` against nginx on loopback: https:// with our own CA (--ca) and http://, a served
# binary file compared byte for byte, a 404 (exit 1, body still written with -o), --json, and a
# certificate the system does not trust (non-zero exit naming the failed check). Skipped (77)
# without nginx or the http plugin. Run as `bash http_get.sh path/to/post`.
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/tls_pki.sh"

nginx=/usr/sbin/nginx
[[ -x $nginx ]] || nginx=$(command -v nginx || true)
if [[ -z $nginx ]]; then
    echo "skipped: nginx is not installed"
    exit 77
fi
"$POST" plugins 2>/dev/null | grep -q http1 || { echo "skipped: the http plugin is not built"; exit 77; }
require_program openssl
make_pki "$TMP/pki"
CA=$TMP/pki/ca.pem

dir=$TMP/nginx
mkdir -p "$dir/www" "$dir/tmp"
head -c 300000 /dev/urandom >"$dir/www/blob.bin"
echo "post get page $RANDOM" >"$dir/www/page.txt"
npid=""
for attempt in 1 2 3 4 5 6 7 8; do
    sport=$(random_port)
    pport=$((sport + 1))
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
        listen 127.0.0.1:$sport ssl;
        listen 127.0.0.1:$pport;
        server_name localhost;
        ssl_certificate $TMP/pki/server.pem;
        ssl_certificate_key $TMP/pki/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $dir/www;
    }
}
EOF
    timeout 60 "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout" 2>&1 &
    npid=$!
    PIDS+=("$npid")
    wait_port "$sport" "$npid" 10 && wait_port "$pport" "$npid" 5 && break
    kill "$npid" 2>/dev/null || true
    wait "$npid" 2>/dev/null || true
    grep -q "Address already in use" "$dir/error.log" "$dir/stdout" 2>/dev/null ||
        fail "nginx did not start: $(cat "$dir/stdout" "$dir/error.log" 2>/dev/null | tail -5)"
    npid=""
done
[[ -n $npid ]] || fail "nginx did not start on free ports"

# https with our CA: the binary file arrives intact.
rc=0
timeout 20 "$POST" get "https://localhost:$sport/blob.bin" --ca "$CA" -o "$dir/got.bin" \
    2>"$dir/err" || rc=$?
[[ $rc == 0 ]] || fail "post get https exited $rc: $(cat "$dir/err")"
cmp "$dir/www/blob.bin" "$dir/got.bin" || fail "https: the fetched file differs from the served one"
pass "post get https:// fetched $(stat -c %s "$dir/got.bin") bytes identical to the file"

# http to stdout.
rc=0
timeout 20 "$POST" get "http://127.0.0.1:$pport/page.txt" >"$dir/page.txt" 2>"$dir/err" || rc=$?
[[ $rc == 0 ]] || fail "post get http exited $rc: $(cat "$dir/err")"
cmp "$dir/www/page.txt" "$dir/page.txt" || fail "http: got '$(head -c 200 "$dir/page.txt")'"
pass "post get http:// wrote the page to stdout"

# --json: status, fields, length and the stack that won.
rc=0
timeout 20 "$POST" get "https://localhost:$sport/page.txt" --ca "$CA" --json >"$dir/json" \
    2>"$dir/err" || rc=$?
[[ $rc == 0 ]] || fail "post get --json exited $rc: $(cat "$dir/err")"
grep -q '"status":200' "$dir/json" || fail "--json: no status 200 in $(cat "$dir/json")"
grep -q '"stack":"http1/tls/tcp"' "$dir/json" || fail "--json: not over http1/tls/tcp: $(cat "$dir/json")"
grep -q "\"body-length\":$(stat -c %s "$dir/www/page.txt")" "$dir/json" ||
    fail "--json: wrong body length: $(cat "$dir/json")"
grep -q '"server":"nginx' "$dir/json" || fail "--json: no server field: $(cat "$dir/json")"
pass "post get --json reports $(cat "$dir/json")"

# A missing file: nginx's 404 page is written, the exit code is 1.
rc=0
timeout 20 "$POST" get "http://127.0.0.1:$pport/missing" -o "$dir/404.html" 2>"$dir/err" || rc=$?
[[ $rc == 1 ]] || fail "404: exit $rc, expected 1: $(cat "$dir/err")"
grep -q "HTTP status 404" "$dir/err" || fail "404: no message on stderr: $(cat "$dir/err")"
grep -qi "not found" "$dir/404.html" || fail "404: the body was not written: $(head -c 200 "$dir/404.html")"
pass "404: exit 1 with '$(cat "$dir/err")'"

# Without --ca the system trust store does not know our CA.
rc=0
timeout 20 "$POST" get "https://localhost:$sport/page.txt" >"$dir/untrusted" 2>"$dir/err" || rc=$?
[[ $rc != 0 ]] || fail "untrusted certificate: exit 0"
grep -q "certificate verify failed" "$dir/err" || fail "untrusted certificate: $(cat "$dir/err")"
[[ ! -s $dir/untrusted ]] || fail "untrusted certificate: printed $(head -c 100 "$dir/untrusted")"
pass "untrusted certificate: exit $rc, $(head -c 200 "$dir/err")"

# Nothing listening: a clear error.
rc=0
closed=$(random_port)
timeout 20 "$POST" get "http://127.0.0.1:$closed/" >/dev/null 2>"$dir/err" || rc=$?
[[ $rc != 0 ]] || fail "refused: exit 0"
grep -q "post get: http://127.0.0.1:$closed/" "$dir/err" || fail "refused: $(cat "$dir/err")"
pass "refused: exit $rc, $(head -c 200 "$dir/err")"
