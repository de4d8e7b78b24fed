#!/usr/bin/env bash
# Packaging tests: install pixcache into a temporary prefix with the documented command
# (scripts/install.sh), then build and *run* a separate consumer project against the installed
# copy four ways: CMake find_package (shared, static) and pkg-config + make (shared, static).
# Also: the soname layout, a release-sized install (stripped, debug info installable apart and
# found by readelf and gdb through the debuglink), programs that run from a non-system prefix
# without LD_LIBRARY_PATH and load the prefix's libpixcache (pkg-config with an rpath,
# pixcache-static.pc, a CMake build tree, an installed CMake consumer; and, as controls, that
# they do not without the rpath or the install-RPATH setting), a C-only CMake consumer,
# pixcache::qt6 (with and without Qt 6, and with the consumer's own Qt), relocating the installed
# tree, and a clear failure for a version mismatch.
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
# grep -q for the end of a pipeline: it reads all its input. (grep -q exits at the first match,
# the writer then dies of SIGPIPE and, under pipefail, a match reads as a failure: for the
# 4 MB of `readelf -S libpixcache.a`, a .debug_info section would have gone unnoticed.)
has() { grep "$@" >/dev/null; }

# The directory from which the dynamic loader takes libpixcache.so.N for a program, with no
# LD_LIBRARY_PATH ("not found" if nowhere; empty if the program does not need it).
pixcache_dir_of() {
    env -u LD_LIBRARY_PATH ldd "$1" | awk '$1 ~ /^libpixcache\.so/ {
        if ($3 == "not") print "not found"; else { sub(/\/[^\/]*$/, "", $3); print $3 } }'
}
# <program> <lib dir>: it loads libpixcache from that directory and runs, no LD_LIBRARY_PATH.
runs_from() {
    local d; d=$(pixcache_dir_of "$1")
    [ -n "$d" ] && [ "$d" != "not found" ] && [ "$d" -ef "$2" ] \
        || { echo "$1 takes libpixcache from '${d:-nowhere}', not $2" >&2; return 1; }
    env -u LD_LIBRARY_PATH "$1" >/dev/null || { echo "$1 failed" >&2; return 1; }
}
# <program> <lib dir>: it does NOT find libpixcache in that directory by itself (a control:
# the prefix is not one the loader searches anyway, so the rpath checks above mean something).
misses() {
    local d; d=$(pixcache_dir_of "$1")
    [ -n "$d" ] || { echo "$1 does not need libpixcache" >&2; return 1; }
    [ "$d" = "not found" ] || ! [ "$d" -ef "$2" ]
}

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
readelf -d "$lib/libpixcache.so.$version" | has "Library soname: \[libpixcache.so.$major\]" || fail "soname is libpixcache.so.$major"
ok "soname libpixcache.so.$major with the .so.$major and .so links"
cmp -s include/pixcache.h "$prefix/include/pixcache.h" || fail "installed header is the committed one"

# Release-sized: no debug info installed by default (cargo's release build keeps it), a GNU
# debuglink to where PIXCACHE_INSTALL_DEBUG=ON puts it.
so="$lib/libpixcache.so.$version"
size=$(stat -c %s "$so")
[ "$size" -le $((4 * 1024 * 1024)) ] || fail "the installed libpixcache.so is $size bytes (at most 4 MB)"
has_debug_info() { readelf -S -W "$1" 2>/dev/null | has '\.debug_info'; }
has_debug_info "$so" && fail "the installed libpixcache.so has debug info"
has_debug_info "$lib/libpixcache.a" && fail "the installed libpixcache.a has debug info"
readelf -S -W "$lib/libpixcache.a" | has '\.llvmbc' && fail "the installed libpixcache.a carries LLVM bitcode"
readelf --string-dump=.gnu_debuglink "$so" | has "libpixcache.so.$version.debug" || fail "no GNU debuglink in libpixcache.so"
[ -e "$lib/.debug" ] && fail "debug info installed without PIXCACHE_INSTALL_DEBUG=ON"
ok "release-sized: libpixcache.so $((size / 1024)) KB, libpixcache.a $(($(stat -c %s "$lib/libpixcache.a") / 1024 / 1024)) MB, no debug info, a debuglink"

# Without Qt 6 the install builds everything else, and says what it left out.
noqt_prefix="$work/without-qt"
cmake -S cmake -B "$work/install-build-noqt" -DCMAKE_INSTALL_PREFIX="$noqt_prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON >"$work/install-noqt.log" 2>&1 \
    && cmake --build "$work/install-build-noqt" >>"$work/install-noqt.log" 2>&1 \
    && cmake --install "$work/install-build-noqt" >>"$work/install-noqt.log" 2>&1 \
    || { cat "$work/install-noqt.log"; fail "the install without Qt 6"; }
grep -q 'Qt 6 (Gui) not found: libpixcache-qt6.so and pixcache-run are not built' "$work/install-noqt.log" \
    || fail "the install without Qt 6 does not say what it left out"
for f in lib/libpixcache.so "lib/libpixcache.so.$version" lib/libpixcache.a include/pixcache.h include/pixcache.hpp \
         lib/pkgconfig/pixcache.pc lib/cmake/pixcache/pixcacheConfig.cmake; do
    [ -e "$noqt_prefix/$f" ] || fail "the install without Qt 6 lacks $f"
done
[ -e "$noqt_prefix/lib/libpixcache-qt6.so" ] || [ -e "$noqt_prefix/bin/pixcache-run" ] \
    && fail "the install without Qt 6 has the Qt replacement"
ok "without Qt 6: the library, headers, pkg-config and CMake files install; the Qt replacement is left out, and said so"

debug_prefix="$work/with-debug"
PIXCACHE_INSTALL_DEBUG=ON PIXCACHE_CMAKE_BUILD_DIR="$work/install-build" scripts/install.sh "$debug_prefix" >"$work/install-debug.log" 2>&1 \
    || { cat "$work/install-debug.log"; fail "PIXCACHE_INSTALL_DEBUG=ON scripts/install.sh"; }
dbg="$debug_prefix/lib/.debug/libpixcache.so.$version.debug"
[ -f "$dbg" ] && has_debug_info "$dbg" || fail "PIXCACHE_INSTALL_DEBUG=ON installs $dbg with the debug info"
has_debug_info "$debug_prefix/lib/libpixcache.so.$version" && fail "the library itself stays stripped"
# readelf follows the debuglink (checking its CRC) the way gdb does: <libdir>/.debug/<name>.
debug_cus() { readelf --debug-dump=info --dwarf-depth=1 "$1" 2>&1 || true; }
cus=$(debug_cus "$debug_prefix/lib/libpixcache.so.$version")
grep -q "loaded from $debug_prefix/lib/\.debug/libpixcache\.so\.$version\.debug" <<<"$cus" \
    || fail "readelf does not load the debug info through the debuglink: $(head -n3 <<<"$cus")"
grep -q 'DW_AT_name.*src/lib\.rs/@/pixcache' <<<"$cus" || fail "the debug file has no compile unit of pixcache"
grep -q 'DW_TAG_compile_unit' <<<"$(debug_cus "$so")" && fail "readelf finds debug info without the debug file"
ok "PIXCACHE_INSTALL_DEBUG=ON: readelf loads the debug info through the debuglink (and none without it)"
if command -v gdb >/dev/null 2>&1; then
    where() { gdb -nx -batch -ex 'info line pixcache_find' "$1" 2>&1; }
    where "$debug_prefix/lib/libpixcache.so.$version" | has 'src/ffi/cache.rs' || fail "gdb does not find the debug info through the debuglink: $(where "$debug_prefix/lib/libpixcache.so.$version")"
    where "$so" | has 'src/ffi/cache.rs' && fail "gdb finds source lines without the debug file"
    ok "PIXCACHE_INSTALL_DEBUG=ON: gdb finds the source lines through lib/.debug/ (and not without it)"
else
    echo "SKIPPED: gdb's lookup of the debug info (gdb is not installed)"
fi

needs_pixcache() { readelf -d "$1" | has "NEEDED.*\[libpixcache.so.$major\]"; }

run_cmake_consumer() { # <name> <prefix> [cmake args...]: configures, builds, runs CTest
    local name=$1 pfx=$2; shift 2
    local b="$work/cmake-$name"
    cmake -S c-tests/consumer -B "$b" -DCMAKE_PREFIX_PATH="$pfx" "$@" >"$b.log" 2>&1 || { cat "$b.log"; fail "cmake configure ($name)"; }
    cmake --build "$b" >>"$b.log" 2>&1 || { cat "$b.log"; fail "cmake build ($name)"; }
    (cd "$b" && env -u LD_LIBRARY_PATH ctest --output-on-failure) >&2 || fail "ctest ($name)"
    echo "$b"
}

# From the build tree, with no LD_LIBRARY_PATH: CMake wrote the imported library's directory
# into the build RPATH.
b=$(run_cmake_consumer shared "$prefix" | tail -n1)
needs_pixcache "$b/consumer_c" || fail "the shared consumer links libpixcache.so.$major"
runs_from "$b/consumer_c" "$lib" && runs_from "$b/consumer_cpp" "$lib" \
    || fail "the CMake consumer runs from its build tree with the prefix's libpixcache, no LD_LIBRARY_PATH"
ok "CMake find_package(pixcache 0.1) + pixcache::pixcache, shared: built, runs from the build tree (no LD_LIBRARY_PATH)"

b=$(run_cmake_consumer static "$prefix" -Dpixcache_USE_STATIC_LIBS=ON | tail -n1)
needs_pixcache "$b/consumer_c" && fail "the static consumer must not need libpixcache.so"
env -u LD_LIBRARY_PATH "$b/consumer_c" >/dev/null || fail "the static CMake consumer runs"
ok "CMake find_package(pixcache 0.1) + pixcache::pixcache, static: built, ran (CTest)"

# A project with only C enabled (the README's form): the package must not go looking for Qt 6
# there (Qt's package errors out without C++).
b="$work/cmake-c-only"
cmake -S c-tests/consumer-c-only -B "$b" -DCMAKE_PREFIX_PATH="$prefix" >"$b.log" 2>&1 || { cat "$b.log"; fail "cmake configure (C only)"; }
cmake --build "$b" >>"$b.log" 2>&1 || { cat "$b.log"; fail "cmake build (C only)"; }
runs_from "$b/consumer_c_only" "$lib" || fail "the C-only consumer runs"
ok "CMake, a C-only project: find_package(pixcache) works (no Qt lookup), the program runs"

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

# Installed with CMake, the consumer still finds libpixcache.so.0: INSTALL_RPATH_USE_LINK_PATH on
# the target (the README's form) or CMAKE_INSTALL_RPATH_USE_LINK_PATH for all targets keeps the
# library's directory in the install RPATH. Without either, CMake drops the RPATH on install and
# the installed program cannot find the library: the control that shows the setting is needed.
install_consumer() { # <name> [cmake args...]: builds, installs into $work/<name>-app
    local name=$1; shift
    local b; b=$(run_cmake_consumer "$name" "$prefix" -DCMAKE_INSTALL_PREFIX="$work/$name-app" "$@" | tail -n1)
    cmake --install "$b" >"$b-install.log" 2>&1 || { cat "$b-install.log"; fail "cmake --install ($name)"; }
}
install_consumer install
runs_from "$work/install-app/bin/consumer_c" "$lib" && runs_from "$work/install-app/bin/consumer_cpp" "$lib" \
    || fail "the installed CMake consumer (INSTALL_RPATH_USE_LINK_PATH) runs without LD_LIBRARY_PATH"
install_consumer install-var -DCONSUMER_SET_INSTALL_RPATH=OFF -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON
runs_from "$work/install-var-app/bin/consumer_c" "$lib" \
    || fail "the installed CMake consumer (CMAKE_INSTALL_RPATH_USE_LINK_PATH) runs without LD_LIBRARY_PATH"
install_consumer install-none -DCONSUMER_SET_INSTALL_RPATH=OFF
misses "$work/install-none-app/bin/consumer_c" "$lib" \
    || fail "control: installed without the install-RPATH setting, the consumer should not find $lib"
ok "a CMake consumer from a non-system prefix, installed with INSTALL_RPATH_USE_LINK_PATH (or the CMAKE_ variable), runs (and not without)"

# The pkg-config lines the README gives, from a non-system prefix, no LD_LIBRARY_PATH.
out="$work/pc-readme"; mkdir -p "$out"
export PKG_CONFIG_PATH="$lib/pkgconfig"
# shellcheck disable=SC2046
cc c-tests/consumer/consumer.c -o "$out/shared" $(pkg-config --cflags --libs pixcache) -Wl,-rpath,$(pkg-config --variable=libdir pixcache) \
    || fail "the README's shared pkg-config line"
runs_from "$out/shared" "$lib" || fail "the shared build runs without LD_LIBRARY_PATH"
# shellcheck disable=SC2046
cc c-tests/consumer/consumer.c -o "$out/no-rpath" $(pkg-config --cflags --libs pixcache) || fail "pkg-config pixcache, no rpath"
misses "$out/no-rpath" "$lib" || fail "control: without the rpath, the loader should not find $lib"
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
    [ "$(pixcache_dir_of "$b/consumer_qt")" -ef "$lib" ] || fail "the pixcache::qt6 consumer takes libpixcache from $lib"
    qt_out=$(QT_QPA_PLATFORM=offscreen env -u LD_LIBRARY_PATH "$b/consumer_qt") || fail "the pixcache::qt6 consumer runs: $qt_out"
    case $qt_out in OK*) ;; *) fail "the pixcache::qt6 consumer prints OK: $qt_out" ;; esac
    cmake -S c-tests/consumer-qt -B "$work/cmake-qt6-first" -DCMAKE_PREFIX_PATH="$prefix" -DCONSUMER_FIND_QT6_FIRST=ON >"$work/qt6-first.log" 2>&1 \
        || { cat "$work/qt6-first.log"; fail "pixcache::qt6 must use the Qt6::Gui the consumer found (it may not look for Qt again)"; }
    # Without Qt 6 the configure succeeds (no error at all, not even one CMake carries on after).
    cmake -S c-tests/consumer-qt -B "$work/cmake-noqt" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON \
          -DCONSUMER_EXPECT_NO_QT6=ON >"$work/noqt.log" 2>&1 \
        && grep -q 'pixcache found without Qt 6; pixcache::qt6 absent' "$work/noqt.log" \
        || { cat "$work/noqt.log"; fail "without Qt 6, find_package(pixcache) must succeed and pixcache::qt6 be absent"; }
    ok "pixcache::qt6: a Qt program naming only it builds and runs; it uses the consumer's Qt; without Qt 6 the package still loads, without it"
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
runs_from "$b/consumer_c" "$work/moved/lib" || fail "the consumer built against the moved prefix uses it"
[ "$(PKG_CONFIG_PATH="$work/moved/lib/pkgconfig" pkg-config --variable=includedir pixcache)" -ef "$work/moved/include" ] \
    || fail "pkg-config follows the moved prefix"
[ "$(PKG_CONFIG_PATH="$work/moved/lib/pkgconfig" pkg-config --variable=libdir pixcache-static)" -ef "$work/moved/lib" ] \
    || fail "pixcache-static.pc follows the moved prefix"
ok "the installed tree is relocatable (CMake and pkg-config)"

if cmake -S c-tests/consumer-version-mismatch -B "$work/mismatch" -DCMAKE_PREFIX_PATH="$work/moved" >"$work/mismatch.log" 2>&1; then
    fail "find_package(pixcache 99) must fail"
fi
grep -q 'requested version "99"' "$work/mismatch.log" || { cat "$work/mismatch.log"; fail "CMake names the requested version"; }
grep -q "$version" "$work/mismatch.log" || { cat "$work/mismatch.log"; fail "CMake names the installed version"; }
ok "find_package(pixcache 99) fails with CMake's version message"

echo "$pass passed, 0 failed"
