#!/usr/bin/env bash
# examples/cairo_gallery.c, for real: built against the freshly built libpixcache and cairo, run
# on its demo images, and its page checked pixel by pixel (c-tests/cairo/check_gallery.c).
# Needs libcairo2-dev (pkg-config cairo); without it, says so (and fails under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! pkg-config --exists cairo 2>/dev/null; then
    echo "SKIPPED: cairo is not installed (apt-get install libcairo2-dev); the cairo example did not run."
    [ "${CI:-}" = "true" ] && { echo "CI must run the cairo example." >&2; exit 1; }
    exit 0
fi

cargo build --lib -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The library under its soname, as an install lays it out.
ln -s "$PWD/target/debug/libpixcache.so" "$work/libpixcache.so.0"
ln -s "$PWD/target/debug/libpixcache.so" "$work/libpixcache.so"
link=(-Iinclude -L"$work" -lpixcache -Wl,-rpath,"$work")

cc -std=c11 -Wall -Wextra -Werror -O2 examples/cairo_gallery.c -o "$work/cairo_gallery" \
    $(pkg-config --cflags --libs cairo) "${link[@]}"
cc -std=c11 -Wall -Wextra -Werror -O2 c-tests/cairo/check_gallery.c -o "$work/check_gallery" "${link[@]}"

"$work/cairo_gallery" "$work/gallery.png"
"$work/check_gallery" "$work/gallery.png"
echo "cairo example: ok"
