# A throwaway PKI for the TLS tests of the `post` tool, made with the openssl program. Sourced
# after lib.sh. Nothing generated is checked in: each run makes its own keys in $TMP.
#
# make_pki DIR: writes DIR/ca.pem (a CA), DIR/server.pem + DIR/server.key (a server certificate
# for localhost with subjectAltName DNS:localhost, IP:127.0.0.1, signed by that CA).
# ECDSA P-256 keys: generated in milliseconds, so the tests stay fast.

# require_program NAME...: skip the whole test (exit 0 with a note) when one is missing.
require_program() {
    local p
    for p in "$@"; do
        if ! command -v "$p" >/dev/null 2>&1 && [[ ! -x $p ]]; then
            echo "note: $p is not installed; test skipped"
            exit 0
        fi
    done
}

make_pki() {
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=post interop test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
        >"$dir/pki.log" 2>&1 || fail "openssl could not make the CA: $(cat "$dir/pki.log")"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" \
        >>"$dir/pki.log" 2>&1 || fail "openssl could not make the server key: $(cat "$dir/pki.log")"
    cat >"$dir/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" \
        >>"$dir/pki.log" 2>&1 || fail "openssl could not sign the server certificate: $(cat "$dir/pki.log")"
    openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" >/dev/null 2>&1 ||
        fail "the generated server certificate does not verify against its CA"
    chmod 600 "$dir"/*.key
}

# wait_port PORT PID [SECONDS]: wait until something accepts TCP connections on 127.0.0.1:PORT,
# polling (the programs we wait for print nothing when they are ready). Fails early when PID (the
# program that should listen) has exited, and after SECONDS (default 10).
wait_port() {
    local port=$1 pid=$2 limit=${3:-10} start=$SECONDS
    while ((SECONDS - start < limit)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.02 # polling interval: there is no event to wait for
    done
    return 1
}
