# shellcheck shell=bash
# Shared helpers for tools/test.sh and tools/demo.sh. Source it; do not run it.
#
#   post_install_packages             install the Debian packages the build needs (root only)
#   post_configure DIR [cmake args]   configure DIR with Ninja and ccache
#   post_build DIR [targets]          build DIR (everything, or the given targets)
#   post_configure_build DIR [args]   both of the above, building everything
#
# Paths given to these helpers are relative to the repository root, which is also where the
# helpers run cmake from (POST_ROOT).

POST_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export POST_ROOT

# Exactly what a build, the tests (sanitizers, fuzzers, loopback peers) and the demo need.
POST_PACKAGES=(
    g++ cmake ninja-build pkg-config ccache
    libboost-dev libboost-filesystem-dev libboost-test-dev
    libssl-dev libgnutls28-dev libusrsctp-dev libusrsctp-examples
    libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev
    libhttp-parser-dev  # the http plugin (layer http1) parses with it
    libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
    iproute2 clang libclang-rt-14-dev socat netcat-openbsd python3
    openssl curl nginx-light nftables
    ngtcp2-server ngtcp2-client  # post bench quic: the gtlsserver/gtlsclient baseline
    # cli_sctp_wire: dissects SCTP over UDP in a capture on lo.
    tshark
)

post_log() { printf '==> %s\n' "$*" >&2; }

# Prints the packages of POST_PACKAGES that are not installed, one per line.
post_missing_packages() {
    local pkg status
    for pkg in "${POST_PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "installed" ]] || printf '%s\n' "$pkg"
    done
}

post_install_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        post_log "dpkg-query not found: not a Debian system; assuming the build dependencies are present"
        return 0
    fi
    local missing
    mapfile -t missing < <(post_missing_packages)
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if ((EUID != 0)); then
        printf 'error: these Debian packages are missing and installing them needs root:\n  %s\n' \
            "${missing[*]}" >&2
        printf 'run: sudo apt-get install -y --no-install-recommends %s\n' "${missing[*]}" >&2
        return 1
    fi
    post_log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # wireshark-common (pulled in by tshark) asks whether non-root users may capture. Answer
    # no, which is also the non-interactive default; the capture test runs as root anyway.
    if command -v debconf-set-selections >/dev/null 2>&1; then
        echo 'wireshark-common wireshark-common/install-setuid boolean false' |
            debconf-set-selections || true
    fi
    apt-get update -q || return 1
    apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
}

post_jobs() { nproc 2>/dev/null || echo 2; }

post_configure() {
    local dir="$1"
    shift
    # A folder configured earlier with another generator cannot be switched to Ninja in place.
    if [[ -f "$POST_ROOT/$dir/CMakeCache.txt" ]] &&
        ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$POST_ROOT/$dir/CMakeCache.txt"; then
        printf 'error: %s was configured with another generator than Ninja; remove it first\n' \
            "$dir" >&2
        return 1
    fi
    local launcher=()
    if command -v ccache >/dev/null 2>&1; then
        launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
    fi
    post_log "configuring $dir $*"
    cmake -S "$POST_ROOT" -B "$POST_ROOT/$dir" -G Ninja "${launcher[@]}" "$@"
}

post_build() {
    local dir="$1"
    shift
    post_log "building $dir ${*:-(all)}"
    if (($# > 0)); then
        cmake --build "$POST_ROOT/$dir" -j"$(post_jobs)" --target "$@"
    else
        cmake --build "$POST_ROOT/$dir" -j"$(post_jobs)"
    fi
}

post_configure_build() {
    local dir="$1"
    shift
    post_configure "$dir" "$@" && post_build "$dir"
}
