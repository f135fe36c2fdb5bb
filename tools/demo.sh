#!/usr/bin/env bash
# Build the project and run `post demo`: a listener and a client on loopback with a shipped
# policy, printing what happened. Arguments are passed on to `post demo`.
#   tools/demo.sh [post demo options]
# POST_BUILD_DIR chooses the build folder (default: build).
set -euo pipefail

# shellcheck source=tools/setup.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$POST_ROOT"

build_dir="${POST_BUILD_DIR:-build}"

post_install_packages
# `post demo` needs the tool, the kernel and the plugins; building all of build/ covers them.
post_configure_build "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
exec "$POST_ROOT/$build_dir/bin/post" demo "$@"
