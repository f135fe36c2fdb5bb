# shellcheck shell=bash
# A network topology for end-to-end tests of establishment (racing, resolution, interfaces),
# built inside private namespaces so that the host is never touched. Source it; do not run it.
#
#   source "$SRC/tests/netns/topology.sh"
#   netns_require_root_or_skip    # not root, or no namespaces: "SKIP: why", exit 77
#   netns_enter "$@"              # re-runs the calling script inside its own namespaces
#   source "$SRC/tests/cli/lib.sh" "$@"
#   netns_setup                   # interfaces and /etc/hosts below
#   netns_drop_v6 9001            # TCP to [fd99::1]:9001 vanishes silently
#   netns_dns_start               # names below served by tests/netns/dns_server.py
#
# The topology (one namespace; every address is local, so any of them reaches any other):
#   racing0  10.99.0.1/24  fd99::1/64   the "remote" both families of dual.test point at
#   backup0  10.98.0.1/24  fd98::1/64   a second ethernet-like interface
#   tun9     10.97.0.1/24               a tunnel (ip tuntap), for interface rules
#   /etc/hosts   dual.test -> fd99::1 and 10.99.0.1, v4only.test -> 10.99.0.1
#   DNS (netns_dns_start)  slow6.test: AAAA fd99::1 answered 400 ms late, A 10.99.0.1 at once;
#                          fail.test: SERVFAIL for both
#
# Why the namespaces are entered by re-running the script (and not with `ip netns add`): nothing
# named is created, so nothing can be left behind. The script runs as PID 1 of a new PID
# namespace too: when it ends, however it ends (ctest's timeout kills `unshare`, which kills its
# child), the kernel kills every process still inside, and with them go the network namespace,
# its interfaces and nft rules, and the bind mounts over /etc/hosts and /etc/resolv.conf.

NETNS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETNS_SKIP_CODE=77 # ctest: SKIP_RETURN_CODE 77

# netns_require_root_or_skip: exit 77 with "SKIP: <why>" unless this process can build the
# topology (root, the tools, and a kernel that lets us create namespaces).
netns_require_root_or_skip() {
    local why="" tool
    if [[ $(id -u) != 0 ]]; then
        why="needs root (network namespaces, interfaces, nft, bind mounts)"
    else
        for tool in unshare ip nft mount python3; do
            if ! command -v "$tool" >/dev/null 2>&1; then
                why="needs '$tool' (tools/setup.sh installs it)"
                break
            fi
        done
    fi
    if [[ -z $why && ${POST_NETNS_INSIDE:-} != 1 ]] &&
        ! unshare --net --mount --pid --fork true 2>/dev/null; then
        why="cannot create namespaces here (unshare --net --mount --pid failed)"
    fi
    if [[ -n $why ]]; then
        echo "SKIP: $why"
        exit "$NETNS_SKIP_CODE"
    fi
}

# netns_enter "$@": unless already inside, re-run the calling script with the same arguments in
# new network, mount and PID namespaces (it does not return then: the script's exit code is
# unshare's). Inside: mounts are private (our bind mounts never reach the host), /sys shows this
# network namespace (interface types are read from /sys/class/net), and lo is up.
netns_enter() {
    if [[ ${POST_NETNS_INSIDE:-} != 1 ]]; then
        export POST_NETNS_INSIDE=1
        exec unshare --net --mount --pid --fork --mount-proc --kill-child bash "$0" "$@"
    fi
    mount --make-rprivate /
    mount -t sysfs sysfs /sys
    ip link set lo up
}

# _netns_fail MESSAGE: lib.sh's fail when it is loaded, else the same by hand.
_netns_fail() {
    if declare -F fail >/dev/null; then fail "$@"; fi
    echo "FAIL: $*" >&2
    exit 1
}

_netns_inside_or_fail() {
    [[ ${POST_NETNS_INSIDE:-} == 1 ]] || _netns_fail "${FUNCNAME[1]}: call netns_enter first"
}

# _netns_run CMD...: run a set-up command; its failure fails the test with the command line.
_netns_run() {
    local out
    out=$("$@" 2>&1) || _netns_fail "netns: '$*' failed: $out"
}

# _netns_tmp: a folder for the files we bind-mount; lib.sh's $TMP when there is one.
_netns_tmp() {
    if [[ -z ${NETNS_TMP:-} ]]; then
        if [[ -n ${TMP:-} && -d ${TMP:-} ]]; then
            NETNS_TMP=$TMP
        else
            NETNS_TMP=$(mktemp -d)
        fi
    fi
}

# _netns_track PID: let lib.sh's cleanup stop PID (the PID namespace would anyway).
_netns_track() {
    if declare -p PIDS >/dev/null 2>&1; then PIDS+=("$1"); fi
}

# _netns_ethernet NAME: an always-up, ethernet-like interface. A dummy when the kernel has the
# dummy driver; otherwise (some kernels are built without it and cannot load modules) one end
# of a veth pair whose other end, NAME-peer, stays here too and up, so NAME has a carrier.
_netns_ethernet() {
    local name=$1
    if ip link add "$name" type dummy 2>/dev/null; then
        _netns_run ip link set "$name" up
    else
        _netns_run ip link add "$name" type veth peer name "$name-peer"
        _netns_run ip link set "$name-peer" up
        _netns_run ip link set "$name" up
    fi
}

# _netns_tun_carrier NAME: a tun interface has no carrier (not IFF_RUNNING, so gathering
# counts it as down) until a process attaches to it. This one attaches and stays until killed.
_netns_tun_carrier() {
    local fd line
    exec {fd}< <(exec python3 -c '
import fcntl, os, signal, struct, sys
fd = os.open("/dev/net/tun", os.O_RDWR)
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", sys.argv[1].encode(), IFF_TUN | IFF_NO_PI))
print("ready", flush=True)
signal.pause()
' "$1" 2>&1)
    _netns_track $!
    read -r -t 10 -u "$fd" line || true
    exec {fd}<&-
    [[ $line == ready ]] || _netns_fail "netns: cannot attach to tun $1: ${line:-no answer}"
}

# netns_setup: the interfaces and /etc/hosts of the topology above.
netns_setup() {
    _netns_inside_or_fail
    _netns_tmp
    _netns_ethernet racing0
    _netns_run ip addr add 10.99.0.1/24 dev racing0
    _netns_run ip -6 addr add fd99::1/64 dev racing0 nodad
    _netns_ethernet backup0
    _netns_run ip addr add 10.98.0.1/24 dev backup0
    _netns_run ip -6 addr add fd98::1/64 dev backup0 nodad
    _netns_run ip tuntap add dev tun9 mode tun
    _netns_run ip addr add 10.97.0.1/24 dev tun9
    _netns_run ip link set tun9 up
    _netns_tun_carrier tun9

    cat >"$NETNS_TMP/hosts" <<'EOF'
127.0.0.1 localhost
::1 localhost
fd99::1 dual.test
10.99.0.1 dual.test
10.99.0.1 v4only.test
EOF
    _netns_run mount --bind "$NETNS_TMP/hosts" /etc/hosts
}

# _netns_nft_table: our output chain, created once.
_netns_nft_table() {
    nft list table inet post_netns >/dev/null 2>&1 && return 0
    _netns_run nft add table inet post_netns
    _netns_run nft add chain inet post_netns output '{ type filter hook output priority 0; policy accept; }'
}

# netns_drop_v6 PORT: TCP to [fd99::1]:PORT is dropped on the way out, silently: the SYN is
# never answered and connect() just waits, as behind a broken IPv6 path. (A reject or an
# unreachable route would fail at once, which is not what happy eyeballs is about.)
netns_drop_v6() {
    _netns_inside_or_fail
    _netns_nft_table
    _netns_run nft add rule inet post_netns output ip6 daddr fd99::1 tcp dport "$1" drop
}

# netns_drop_v4 PORT: the same for 10.99.0.1:PORT.
netns_drop_v4() {
    _netns_inside_or_fail
    _netns_nft_table
    _netns_run nft add rule inet post_netns output ip daddr 10.99.0.1 tcp dport "$1" drop
}

# netns_dns_start: the names below answered by tests/netns/dns_server.py on 127.0.0.1:53, the
# only name server in our resolv.conf. One try of one second per query, so that a lost answer
# shows quickly. Returns when the server says it is ready. Names in /etc/hosts still resolve
# from there (nsswitch: files before dns).
netns_dns_start() {
    _netns_inside_or_fail
    _netns_tmp
    local fd line
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$NETNS_TMP/resolv.conf"
    _netns_run mount --bind "$NETNS_TMP/resolv.conf" /etc/resolv.conf
    cat >"$NETNS_TMP/zone.json" <<'EOF'
{
  "slow6.test": {"A": ["10.99.0.1"], "AAAA": ["fd99::1"],
                 "behaviour": {"AAAA": {"delay-ms": 400}}},
  "fail.test":  {"behaviour": {"A": {"servfail": true}, "AAAA": {"servfail": true}}}
}
EOF
    exec {fd}< <(exec python3 "$NETNS_LIB_DIR/dns_server.py" --address 127.0.0.1 --port 53 \
        --zone "$NETNS_TMP/zone.json" 2>"$NETNS_TMP/dns_server.err")
    NETNS_DNS_PID=$!
    _netns_track "$NETNS_DNS_PID"
    read -r -t 10 -u "$fd" line || true
    # Keep reading its stdout in the background, so that it never blocks on a full pipe.
    cat <&"$fd" >/dev/null &
    exec {fd}<&-
    [[ $line == ready ]] ||
        _netns_fail "netns: dns_server.py did not start: ${line:-no output} $(cat "$NETNS_TMP/dns_server.err")"
}
