#!/usr/bin/env bash
# Builds libpixcache, installs it into $PREFIX (default: ~/.local; any writable prefix works),
# then compiles two demos against the *installed* copy with pkg-config and runs them:
#   c-tests/demo.c            the find-or-render idiom, LRU eviction, errors
#   examples/contact_sheet.c  four threads loading images through the cache (decoding each
#                             once), statistics, and a contact sheet of what stayed cached
#                             (written to target/contact-sheet.png)
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

sheet="$(dirname "$out")/contact_sheet"
# shellcheck disable=SC2046
"$CC" -std=c11 -Wall -Wextra -O2 -D_GNU_SOURCE examples/contact_sheet.c -o "$sheet" -pthread \
    $(pkg-config --cflags --libs pixcache) -Wl,-rpath,"$(pkg-config --variable=libdir pixcache)"
echo "--- running the contact sheet example"
mkdir -p target
"$sheet" "${1:-}" "$PWD/target/contact-sheet.png"
