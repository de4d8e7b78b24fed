#!/usr/bin/env bash
# Packaging tests: install pixcache into a temporary prefix with the documented command
# (scripts/install.sh), then build and *run* a separate consumer project against the installed
# copy four ways: CMake find_package (shared, static) and pkg-config + make (shared, static).
# Also: the soname layout, relocating the installed tree, and a clear failure for a version
# mismatch. Needs cmake, pkg-config, make, a C/C++ compiler, binutils.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
pass=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
fail() { echo "FAILED - $*" >&2; exit 1; }

echo "# install into $prefix"
PIXCACHE_CMAKE_BUILD_DIR="$work/install-build" scripts/install.sh "$prefix" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log"; fail "scripts/install.sh"; }
ok "scripts/install.sh installs into a prefix"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
major=${version%%.*}
lib="$prefix/lib"
for f in "include/pixcache.h" "include/pixcache.hpp" "lib/libpixcache.a" "lib/libpixcache.so.$version" \
         "lib/pkgconfig/pixcache.pc" "lib/cmake/pixcache/pixcacheConfig.cmake" \
         "lib/cmake/pixcache/pixcacheConfigVersion.cmake"; do
    [ -f "$prefix/$f" ] || fail "$f is installed"
done
ok "headers, libraries, pkg-config and CMake files are installed"
[ "$(readlink "$lib/libpixcache.so.$major")" = "libpixcache.so.$version" ] || fail "libpixcache.so.$major -> libpixcache.so.$version"
[ "$(readlink -f "$lib/libpixcache.so")" = "$(readlink -f "$lib/libpixcache.so.$version")" ] || fail "libpixcache.so -> the real file"
readelf -d "$lib/libpixcache.so.$version" | grep -q "Library soname: \[libpixcache.so.$major\]" || fail "soname is libpixcache.so.$major"
ok "soname libpixcache.so.$major with the .so.$major and .so links"
cmp -s include/pixcache.h "$prefix/include/pixcache.h" || fail "installed header is the committed one"

needs_pixcache() { readelf -d "$1" | grep -q "NEEDED.*\[libpixcache.so.$major\]"; }

run_cmake_consumer() { # <name> <prefix> [cmake args...]
    local name=$1 pfx=$2; shift 2
    local b="$work/cmake-$name"
    cmake -S c-tests/consumer -B "$b" -DCMAKE_PREFIX_PATH="$pfx" "$@" >"$b.log" 2>&1 || { cat "$b.log"; fail "cmake configure ($name)"; }
    cmake --build "$b" >>"$b.log" 2>&1 || { cat "$b.log"; fail "cmake build ($name)"; }
    (cd "$b" && ctest --output-on-failure) >&2 || fail "ctest ($name)"
    echo "$b"
}

b=$(run_cmake_consumer shared "$prefix" | tail -n1)
needs_pixcache "$b/consumer_c" || fail "the shared consumer links libpixcache.so.$major"
ok "CMake find_package(pixcache 0.1) + pixcache::pixcache, shared: built, ran (CTest)"

b=$(run_cmake_consumer static "$prefix" -Dpixcache_USE_STATIC_LIBS=ON | tail -n1)
needs_pixcache "$b/consumer_c" && fail "the static consumer must not need libpixcache.so"
ok "CMake find_package(pixcache 0.1) + pixcache::pixcache, static: built, ran (CTest)"

for mode in shared static; do
    out="$work/pc-$mode"; mkdir -p "$out"
    extra=(); [ "$mode" = static ] && extra=(STATIC=1)
    PKG_CONFIG_PATH="$lib/pkgconfig" make -s -C c-tests/consumer OUT="$out" "${extra[@]}" >"$out.log" 2>&1 \
        || { cat "$out.log"; fail "pkg-config build ($mode)"; }
    "$out/consumer_c" && "$out/consumer_cpp" || fail "pkg-config consumer runs ($mode)"
    if [ "$mode" = shared ]; then needs_pixcache "$out/consumer_c" || fail "pkg-config shared links the .so"
    else needs_pixcache "$out/consumer_c" && fail "pkg-config static must not need the .so"; fi
    ok "pkg-config --cflags --libs pixcache + make, $mode: built, ran"
done

# The example program builds against the installed copy and does what it says.
ex="$work/contact_sheet"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -pedantic -D_GNU_SOURCE examples/contact_sheet.c -o "$ex" -pthread \
    $(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs pixcache) -Wl,-rpath,"$lib" || fail "examples/contact_sheet.c builds"
(cd "$work" && "$ex" "" "$work/sheet.png") || fail "the contact sheet example runs"
[ "$(head -c 8 "$work/sheet.png" | od -An -tx1 | tr -d ' ')" = "89504e470d0a1a0a" ] || fail "it writes a PNG"
ok "examples/contact_sheet.c builds against the installed library, runs and writes a PNG"

# The installed tree is relocatable: move it, and both package files still find everything.
mv "$prefix" "$work/moved"
b=$(run_cmake_consumer moved "$work/moved" | tail -n1)
[ "$(PKG_CONFIG_PATH="$work/moved/lib/pkgconfig" pkg-config --variable=includedir pixcache)" -ef "$work/moved/include" ] \
    || fail "pkg-config follows the moved prefix"
ok "the installed tree is relocatable (CMake and pkg-config)"

if cmake -S c-tests/consumer-version-mismatch -B "$work/mismatch" -DCMAKE_PREFIX_PATH="$work/moved" >"$work/mismatch.log" 2>&1; then
    fail "find_package(pixcache 99) must fail"
fi
grep -q 'requested version "99"' "$work/mismatch.log" || { cat "$work/mismatch.log"; fail "CMake names the requested version"; }
grep -q "$version" "$work/mismatch.log" || { cat "$work/mismatch.log"; fail "CMake names the installed version"; }
ok "find_package(pixcache 99) fails with CMake's version message"

echo "$pass passed, 0 failed"
