#!/usr/bin/env bash
# Builds libpixcache (release), lays it out as an installed library under $PREFIX
# (default: target/demo-prefix), then compiles the C demo (c-tests/demo.c) against that copy
# and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${PREFIX:-$PWD/target/demo-prefix}"
CC="${CC:-cc}"

cargo build --release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
major=${version%%.*}

mkdir -p "$PREFIX/lib" "$PREFIX/include" "$PREFIX/bin"
install -m 644 include/pixcache.h "$PREFIX/include/"
install -m 755 target/release/libpixcache.so "$PREFIX/lib/libpixcache.so.$version"
ln -sf "libpixcache.so.$version" "$PREFIX/lib/libpixcache.so.$major"
ln -sf "libpixcache.so.$major" "$PREFIX/lib/libpixcache.so"

"$CC" -std=c11 -Wall -Wextra -O2 -I"$PREFIX/include" c-tests/demo.c -o "$PREFIX/bin/pixcache-demo" \
    -L"$PREFIX/lib" -lpixcache -Wl,-rpath,"$PREFIX/lib"
"$PREFIX/bin/pixcache-demo"
