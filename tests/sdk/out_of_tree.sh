#!/usr/bin/env bash
# The SDK from a third party's seat (registered by tests/sdk.cmake):
#  1. install this build tree to a temporary prefix;
#  2. build docs/examples/checksum-plugin against it with find_package(PostSockets);
#  3. build an application against PostSockets::kernel, and again with pkg-config, and run it;
#  4. build a one-file plugin with nothing but `pkg-config --cflags postsockets-sdk`;
#  5. the installed `post plugins --json` lists the checksum plugin and its layer;
#  6. `post listen` and `post connect` carry "hello" over [checksum, framer, tcp] on loopback,
#     and a policy asking the checksum layer for an unknown algorithm is refused with its reason.
set -euo pipefail

usage() {
    echo "usage: $0 --source-dir DIR --build-dir DIR [--cxx CXX] [--launcher L] [--cxxflags F]" \
        "[--build-type T] [--libdir lib] [--bindir bin]" >&2
    exit 2
}

src="" build="" cxx="${CXX:-c++}" launcher="" cxxflags="" build_type="" libdir=lib bindir=bin
while (($#)); do
    (($# >= 2)) || usage
    case "$1" in
    --source-dir) src="$2" ;;
    --build-dir) build="$2" ;;
    --cxx) cxx="$2" ;;
    --launcher) launcher="$2" ;;
    --cxxflags) cxxflags="$2" ;;
    --build-type) build_type="$2" ;;
    --libdir) libdir="$2" ;;
    --bindir) bindir="$2" ;;
    *) usage ;;
    esac
    shift 2
done
[[ -n "$src" && -n "$build" ]] || usage
build_type="${build_type:-Debug}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/post-sdk-test.XXXXXX")"
prefix="$tmp/prefix"
listener_pid=""
cleanup() {
    if [[ -n "$listener_pid" ]] && kill -0 "$listener_pid" 2>/dev/null; then
        kill "$listener_pid" 2>/dev/null || true
        wait "$listener_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

step() { printf '\n--- %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
show() { # file: print it indented, for failure reports
    sed 's/^/    | /' "$1" >&2 || true
}

# Everything the test runs gets a deadline: a hung tool fails the test instead of ctest's timeout.
run() { timeout --kill-after=5 120 "$@"; }

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake_project() { # source build-dir
    local flags=(-DCMAKE_BUILD_TYPE="$build_type" -DCMAKE_CXX_COMPILER="$cxx"
        -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
    [[ -n "$launcher" ]] && flags+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher")
    if [[ -n "$cxxflags" ]]; then
        flags+=(-DCMAKE_CXX_FLAGS="$cxxflags" -DCMAKE_EXE_LINKER_FLAGS="$cxxflags"
            -DCMAKE_SHARED_LINKER_FLAGS="$cxxflags" -DCMAKE_MODULE_LINKER_FLAGS="$cxxflags")
    fi
    run cmake -S "$1" -B "$2" "${generator[@]}" "${flags[@]}" >"$2.log" 2>&1 &&
        run cmake --build "$2" >>"$2.log" 2>&1 || {
        show "$2.log"
        fail "configure/build of $1 against the installed package failed"
    }
    # It must have used the package just installed, not something else on the system.
    grep -q "^PostSockets_DIR:PATH=$prefix/" "$2/CMakeCache.txt" ||
        fail "$1 found PostSockets outside $prefix: $(grep '^PostSockets_DIR' "$2/CMakeCache.txt")"
}

exports_descriptor() { nm -D --defined-only "$1" | grep -qw post_plugin_descriptor; }

# --- 1. install --------------------------------------------------------------------------------
step "install $build to $prefix"
run cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || {
    show "$tmp/install.log"
    fail "cmake --install failed"
}
for f in include/post/sdk.hpp include/post/sdk/abi.hpp include/post.hpp \
    "$libdir/cmake/PostSockets/PostSocketsConfig.cmake" \
    "$libdir/cmake/PostSockets/PostSocketsConfigVersion.cmake" \
    "$libdir/cmake/PostSockets/PostSocketsTargets.cmake" \
    "$libdir/cmake/PostSockets/PostPluginSDK.cmake" \
    "$libdir/pkgconfig/postsockets.pc" "$libdir/pkgconfig/postsockets-sdk.pc" \
    "$libdir/libpostsockets.so" "$bindir/post"; do
    [[ -e "$prefix/$f" ]] || fail "not installed: $f"
done
post="$prefix/$bindir/post"

# --- 2. the example plugin, with CMake ---------------------------------------------------------
step "build docs/examples/checksum-plugin against the installed package"
plugin_dir="$tmp/checksum"
cmake_project "$src/docs/examples/checksum-plugin" "$plugin_dir"
[[ -f "$plugin_dir/libpost-checksum.so" ]] ||
    fail "libpost-checksum.so not built; $plugin_dir has: $(ls "$plugin_dir")"
exports_descriptor "$plugin_dir/libpost-checksum.so" ||
    fail "libpost-checksum.so does not export post_plugin_descriptor"

# --- 3. an application, with CMake and with pkg-config -----------------------------------------
step "build and run an application against PostSockets::kernel"
cmake_project "$src/tests/sdk/app" "$tmp/app"
run "$tmp/app/post_sdk_app" || fail "the application built with CMake failed to run"

export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
step "build and run the application with pkg-config postsockets"
kernel_flags="$(pkg-config --cflags --libs postsockets)" || fail "pkg-config postsockets failed"
read -r -a pc_kernel <<<"$kernel_flags"
read -r -a extra <<<"$cxxflags"
compiler=("$cxx")
[[ -n "$launcher" ]] && compiler=("$launcher" "$cxx")
run "${compiler[@]}" -std=c++20 "${extra[@]}" "$src/tests/sdk/app/main.cpp" "${pc_kernel[@]}" \
    -o "$tmp/app-pc" || fail "the application does not build with pkg-config postsockets"
LD_LIBRARY_PATH="$prefix/$libdir" run "$tmp/app-pc" ||
    fail "the application built with pkg-config failed to run"

# --- 4. a one-file plugin, with pkg-config only ------------------------------------------------
step "build a one-file plugin with pkg-config postsockets-sdk"
sdk_cflags="$(pkg-config --cflags postsockets-sdk)" || fail "pkg-config postsockets-sdk failed"
read -r -a pc_sdk <<<"$sdk_cflags"
# The .pc files are relocatable (paths relative to ${pcfiledir}): compare resolved folders.
sdk_include=""
for flag in "${pc_sdk[@]}"; do
    [[ "$flag" == -I* ]] && sdk_include="$(realpath -m "${flag#-I}")"
done
[[ "$sdk_include" == "$(realpath -m "$prefix/include")" ]] ||
    fail "pkg-config --cflags postsockets-sdk does not point to $prefix/include: '$sdk_cflags'"
run "${compiler[@]}" -std=c++20 -Wall -Wextra -fPIC -shared -fvisibility=hidden \
    -fvisibility-inlines-hidden "${extra[@]}" "${pc_sdk[@]}" "$src/tests/sdk/one_file_plugin.cpp" \
    -o "$tmp/libpost-one-file.so" || fail "the one-file plugin does not build"
exports_descriptor "$tmp/libpost-one-file.so" ||
    fail "the one-file plugin does not export post_plugin_descriptor"

# --- 5. the installed tool finds the plugin ----------------------------------------------------
# The installed tool must find its own plugins and configuration with no help but the plugin
# path for the third-party plugin.
unset POST_CONFIG
export POST_PLUGIN_PATH="$plugin_dir"

step "post plugins --json lists the checksum plugin"
run "$post" plugins --json >"$tmp/plugins.json" 2>"$tmp/plugins.err" || {
    show "$tmp/plugins.err"
    fail "post plugins --json failed"
}
cmake -DJSON_FILE="$tmp/plugins.json" -DPLUGIN=checksum -DLAYER=checksum \
    -P "$src/tests/sdk/find_plugin.cmake" || {
    show "$tmp/plugins.err"
    fail "post plugins --json does not list the checksum plugin and layer"
}

# --- 6. a message through [checksum, framer, tcp] ----------------------------------------------
policy="$tmp/checksum.yaml"
cat >"$policy" <<'EOF'
version: 1
name: checksum-test
description: Messages carry a CRC-32 end to end, over the framer and TCP.
stacks:
  - [checksum, framer, tcp]
protocols:
  checksum: { algorithm: crc32 }
EOF

port_in_use() {
    if command -v ss >/dev/null 2>&1; then
        ss -Htan "sport = :$1" | grep -q .
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
is_listening() {
    if command -v ss >/dev/null 2>&1; then
        ss -Htln "sport = :$1" | grep -q .
    else
        return 1
    fi
}

step "post listen / post connect over [checksum, framer, tcp]"
port=""
for attempt in 1 2 3 4 5 6 7 8; do
    candidate=$((20000 + ($$ * 31 + attempt * 7919) % 20000))
    port_in_use "$candidate" && continue
    timeout --kill-after=5 60 "$post" listen "tcp://127.0.0.1:$candidate" --policy "$policy" \
        --count 1 >"$tmp/listen.out" 2>"$tmp/listen.err" &
    listener_pid=$!
    # No event to wait on from outside the process: poll the socket table (up to 15 s).
    for _ in $(seq 150); do
        kill -0 "$listener_pid" 2>/dev/null || break
        if is_listening "$candidate"; then
            port="$candidate"
            break
        fi
        sleep 0.1
    done
    [[ -n "$port" ]] && break
    if kill -0 "$listener_pid" 2>/dev/null; then
        show "$tmp/listen.err"
        fail "post listen did not start listening on 127.0.0.1:$candidate within 15 s"
    fi
    wait "$listener_pid" || true
    listener_pid=""
    # Lost a race for the port: try another; anything else is a real failure.
    grep -qi "in use" "$tmp/listen.err" || {
        show "$tmp/listen.err"
        fail "post listen exited before listening"
    }
done
[[ -n "$port" ]] || fail "no free port found for the listener"

echo hello | run "$post" connect "tcp://127.0.0.1:$port" --policy "$policy" \
    >"$tmp/connect.out" 2>"$tmp/connect.err" || {
    show "$tmp/connect.err"
    fail "post connect failed"
}
listen_status=0
wait "$listener_pid" || listen_status=$?
listener_pid=""
grep -q hello "$tmp/listen.out" || {
    printf 'listener stdout:\n' >&2
    show "$tmp/listen.out"
    printf 'listener stderr:\n' >&2
    show "$tmp/listen.err"
    fail "the listener did not print the message sent through [checksum, framer, tcp]"
}
((listen_status == 0)) || {
    show "$tmp/listen.err"
    fail "post listen --count 1 exited with status $listen_status after the message"
}
echo "the listener received: $(head -n 3 "$tmp/listen.out")"

step "a bad checksum option is refused with the layer's reason"
sed 's/algorithm: crc32/algorithm: md5/' "$policy" >"$tmp/md5.yaml"
if echo hello | run "$post" connect "tcp://127.0.0.1:$port" --policy "$tmp/md5.yaml" \
    >"$tmp/md5.out" 2>&1; then
    fail "post connect accepted a policy with checksum algorithm md5"
fi
grep -q "unsupported algorithm 'md5'" "$tmp/md5.out" || {
    show "$tmp/md5.out"
    fail "the refusal does not carry the checksum layer's reason"
}

echo
echo "PASS: out-of-tree plugin and application build, install and run"
