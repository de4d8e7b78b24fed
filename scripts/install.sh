#!/usr/bin/env bash
# Builds libpixcache (release) and installs it into a prefix:
#   scripts/install.sh [PREFIX]        (default: $PREFIX, else /usr/local)
# Installs the shared library (with its soname links), the static library (both without debug
# info), pixcache.h, pixcache.hpp, pixcache_qt.hpp, lib/pkgconfig/pixcache.pc and
# pixcache-static.pc, lib/cmake/pixcache/ (find_package), and with Qt 6 libpixcache-qt6.so and
# bin/pixcache-run. PIXCACHE_INSTALL_DEBUG=ON also installs the debug info (lib/.debug/, found by
# gdb). Uses CMake to drive cargo: see cmake/CMakeLists.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-${PREFIX:-/usr/local}}"
build="${PIXCACHE_CMAKE_BUILD_DIR:-target/cmake-build}"
cmake -S cmake -B "$build" -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DPIXCACHE_INSTALL_DEBUG="${PIXCACHE_INSTALL_DEBUG:-OFF}" >/dev/null
cmake --build "$build"
cmake --install "$build"
