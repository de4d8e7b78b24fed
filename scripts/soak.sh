#!/usr/bin/env bash
# Soak: builds c-tests/soak/soak.c against an installed (release) pixcache and runs it.
#   scripts/soak.sh [SECONDS [THREADS]]     (defaults: 20 s, 4 threads per core)
# For hours: scripts/soak.sh 14400
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PIXCACHE_CMAKE_BUILD_DIR="$work/install-build" scripts/install.sh "$work/prefix" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log"; exit 1; }
cc -std=c11 -Wall -Wextra -Werror -pedantic -O2 -g c-tests/soak/soak.c -o "$work/soak" -pthread \
    -I"$work/prefix/include" -L"$work/prefix/lib" -lpixcache -Wl,-rpath,"$work/prefix/lib"
"$work/soak" "${1:-20}" ${2:+"$2"}
