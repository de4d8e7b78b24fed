#!/usr/bin/env bash
# Packaging tests: install pixcache into a temporary prefix with the documented command
# (scripts/install.sh), then build and *run* a separate consumer project against the installed
# copy four ways: CMake find_package (shared, static) and pkg-config + make (shared, static).
# Also: the soname layout, a release-sized install (stripped, debug info installable apart),
# programs that run from a non-system prefix without LD_LIBRARY_PATH (pkg-config with an rpath,
# pixcache-static.pc, a CMake build tree and an installed CMake consumer), pixcache::qt6 (with
# and without Qt 6), relocating the installed tree, and a clear failure for a version mismatch.
# Needs cmake, pkg-config, make, a C/C++ compiler, binutils; Qt 6 for pixcache::qt6.
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

# Release-sized: no debug info installed by default (cargo's release build keeps it), a GNU
# debuglink to where PIXCACHE_INSTALL_DEBUG=ON puts it.
so="$lib/libpixcache.so.$version"
size=$(stat -c %s "$so")
[ "$size" -le $((4 * 1024 * 1024)) ] || fail "the installed libpixcache.so is $size bytes (at most 4 MB)"
has_debug_info() { readelf -S -W "$1" 2>/dev/null | grep -q '\.debug_info'; }
has_debug_info "$so" && fail "the installed libpixcache.so has debug info"
has_debug_info "$lib/libpixcache.a" && fail "the installed libpixcache.a has debug info"
readelf -S -W "$lib/libpixcache.a" | grep -q '\.llvmbc' && fail "the installed libpixcache.a carries LLVM bitcode"
readelf --string-dump=.gnu_debuglink "$so" | grep -q "libpixcache.so.$version.debug" || fail "no GNU debuglink in libpixcache.so"
[ -e "$lib/.debug" ] && fail "debug info installed without PIXCACHE_INSTALL_DEBUG=ON"
ok "release-sized: libpixcache.so $((size / 1024)) KB, libpixcache.a $(($(stat -c %s "$lib/libpixcache.a") / 1024 / 1024)) MB, no debug info, a debuglink"

debug_prefix="$work/with-debug"
PIXCACHE_INSTALL_DEBUG=ON PIXCACHE_CMAKE_BUILD_DIR="$work/install-build" scripts/install.sh "$debug_prefix" >"$work/install-debug.log" 2>&1 \
    || { cat "$work/install-debug.log"; fail "PIXCACHE_INSTALL_DEBUG=ON scripts/install.sh"; }
dbg="$debug_prefix/lib/.debug/libpixcache.so.$version.debug"
[ -f "$dbg" ] && has_debug_info "$dbg" || fail "PIXCACHE_INSTALL_DEBUG=ON installs $dbg with the debug info"
has_debug_info "$debug_prefix/lib/libpixcache.so.$version" && fail "the library itself stays stripped"
if command -v gdb >/dev/null 2>&1; then
    where() { gdb -nx -batch -ex 'info line pixcache_find' "$1" 2>&1; }
    where "$debug_prefix/lib/libpixcache.so.$version" | grep -q 'src/ffi/cache.rs' || fail "gdb does not find the debug info through the debuglink: $(where "$debug_prefix/lib/libpixcache.so.$version")"
    where "$so" | grep -q 'src/ffi/cache.rs' && fail "gdb finds source lines without the debug file"
    ok "PIXCACHE_INSTALL_DEBUG=ON: gdb finds the source lines through lib/.debug/ (and not without it)"
else
    ok "PIXCACHE_INSTALL_DEBUG=ON installs lib/.debug/libpixcache.so.$version.debug (gdb absent: lookup not tried)"
fi

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

# Installed with CMake, the consumer still finds libpixcache.so.0 (install RPATH from the link path).
b=$(run_cmake_consumer install "$prefix" -DCMAKE_INSTALL_PREFIX="$work/app" | tail -n1)
cmake --install "$b" >"$b-install.log" 2>&1 || { cat "$b-install.log"; fail "cmake --install (consumer)"; }
env -u LD_LIBRARY_PATH "$work/app/bin/consumer_c" >/dev/null && env -u LD_LIBRARY_PATH "$work/app/bin/consumer_cpp" >/dev/null \
    || fail "the installed CMake consumer runs without LD_LIBRARY_PATH"
ok "a CMake consumer, built and installed from a non-system prefix, runs (build and install RPATH)"

# The pkg-config lines the README gives, from a non-system prefix, no LD_LIBRARY_PATH.
out="$work/pc-readme"; mkdir -p "$out"
export PKG_CONFIG_PATH="$lib/pkgconfig"
# shellcheck disable=SC2046
cc c-tests/consumer/consumer.c -o "$out/shared" $(pkg-config --cflags --libs pixcache) -Wl,-rpath,$(pkg-config --variable=libdir pixcache) \
    || fail "the README's shared pkg-config line"
env -u LD_LIBRARY_PATH "$out/shared" >/dev/null || fail "the shared build runs without LD_LIBRARY_PATH"
# shellcheck disable=SC2046
cc c-tests/consumer/consumer.c -o "$out/static" $(pkg-config --cflags --libs pixcache-static) || fail "pkg-config pixcache-static"
"$out/static" >/dev/null || fail "the pixcache-static build runs"
needs_pixcache "$out/static" && fail "a pixcache-static build must not need libpixcache.so"
unset PKG_CONFIG_PATH
ok "pkg-config: pixcache with its rpath, and pixcache-static, from a non-system prefix"

# pixcache::qt6: a Qt program naming nothing but pixcache::qt6 builds and runs; without Qt 6,
# find_package(pixcache) still works and pixcache::qt6 is absent.
if pkg-config --exists Qt6Gui 2>/dev/null; then
    b="$work/cmake-qt6"
    cmake -S c-tests/consumer-qt -B "$b" -DCMAKE_PREFIX_PATH="$prefix" >"$b.log" 2>&1 || { cat "$b.log"; fail "cmake configure (pixcache::qt6)"; }
    cmake --build "$b" >>"$b.log" 2>&1 || { cat "$b.log"; fail "cmake build (pixcache::qt6)"; }
    QT_QPA_PLATFORM=offscreen "$b/consumer_qt" || fail "the pixcache::qt6 consumer runs"
    if cmake -S c-tests/consumer-qt -B "$work/cmake-noqt" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON >"$work/noqt.log" 2>&1; then
        fail "pixcache::qt6 exists although Qt 6 was not found"
    fi
    grep -q 'pixcache::qt6 is not defined' "$work/noqt.log" || { cat "$work/noqt.log"; fail "without Qt 6, find_package(pixcache) must succeed and pixcache::qt6 be absent"; }
    ok "pixcache::qt6: a Qt program naming only it builds and runs; without Qt 6 the package still loads, without it"
else
    echo "SKIPPED: pixcache::qt6 (Qt 6 development files are not installed: apt-get install qt6-base-dev)"
    [ "${CI:-}" != "true" ] || fail "CI must test pixcache::qt6"
fi

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
