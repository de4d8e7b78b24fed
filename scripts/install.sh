#!/usr/bin/env bash
# Builds libpixcache (release) and installs it into a prefix:
#   scripts/install.sh [PREFIX]        (default: $PREFIX, else /usr/local)
# Installs the shared library (with its soname links), the static library, pixcache.h,
# pixcache.hpp, lib/pkgconfig/pixcache.pc and lib/cmake/pixcache/ (find_package). Uses CMake to
# drive cargo: see cmake/CMakeLists.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-${PREFIX:-/usr/local}}"
build="${PIXCACHE_CMAKE_BUILD_DIR:-target/cmake-build}"
cmake -S cmake -B "$build" -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
cmake --build "$build"
cmake --install "$build"
