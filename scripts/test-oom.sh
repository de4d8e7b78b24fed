#!/usr/bin/env bash
# Allocation failure under an address-space limit (`ulimit -v`, in a subshell): builds
# c-tests/oom/oom.c against the freshly built library and runs it with 1.5 GB of address space.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --lib
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lib"
ln -s "$PWD/target/debug/libpixcache.so" "$work/lib/libpixcache.so.0"
ln -s libpixcache.so.0 "$work/lib/libpixcache.so"
cc -std=c11 -Wall -Wextra -Werror -pedantic -g c-tests/oom/oom.c -Iinclude -L"$work/lib" -lpixcache \
    -Wl,-rpath,"$work/lib" -o "$work/oom"
( ulimit -v 1500000 && "$work/oom" )
