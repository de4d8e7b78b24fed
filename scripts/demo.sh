#!/usr/bin/env bash
# Builds libpixcache, installs it into $PREFIX (default: ~/.local; any writable prefix works),
# then compiles the C demo (c-tests/demo.c) against the *installed* copy with pkg-config and
# runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${PREFIX:-$HOME/.local}"
CC="${CC:-cc}"

scripts/install.sh "$PREFIX"

export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
out="$(mktemp -d)/pixcache-demo"
# shellcheck disable=SC2046 # pkg-config output is a list of flags
"$CC" -std=c11 -Wall -Wextra -O2 c-tests/demo.c -o "$out" \
    $(pkg-config --cflags --libs pixcache) -Wl,-rpath,"$(pkg-config --variable=libdir pixcache)"
echo "--- running the demo against $PREFIX/lib/libpixcache.so"
"$out"
