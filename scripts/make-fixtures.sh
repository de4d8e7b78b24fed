#!/usr/bin/env bash
# Regenerates the animation fixtures in tests/fixtures/ (read by c-tests/test_animation.c and
# tests/animation.rs):
# - anim.gif, anim.png (APNG), anim.webp: built by tests/animation.rs (`write_fixtures`): a GIF
#   from the image crate's GifEncoder, an APNG and an animated WebP assembled chunk by chunk
#   (8x6: red, green, green with a blue rectangle; delays 100, 50, 250 ms);
# - libwebp.webp: made by libwebp's img2webp (apt-get install webp) from three 4x4 PPM frames
#   (red, green, green with a blue top-left 2x2 block; lossless; 100, 50, 250 ms), as an
#   animation from an encoder other than ours.
# tests/animation.rs checks that the committed files are current (`fixtures_are_current`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --test animation write_fixtures -- --ignored --exact

command -v img2webp >/dev/null || { echo "img2webp not found: apt-get install webp" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ppm() { # ppm FILE PIXEL... (16 pixels of 4x4, each "r g b" in octal escapes)
    local file=$1; shift
    { printf 'P6\n4 4\n255\n'; for p in "$@"; do printf "$p"; done; } >"$file"
}
R='\377\000\000' G='\000\377\000' B='\000\000\377'
ppm "$tmp/0.ppm" $R $R $R $R  $R $R $R $R  $R $R $R $R  $R $R $R $R
ppm "$tmp/1.ppm" $G $G $G $G  $G $G $G $G  $G $G $G $G  $G $G $G $G
ppm "$tmp/2.ppm" $B $B $G $G  $B $B $G $G  $G $G $G $G  $G $G $G $G
img2webp -lossless -d 100 "$tmp/0.ppm" -d 50 "$tmp/1.ppm" -d 250 "$tmp/2.ppm" \
    -o tests/fixtures/libwebp.webp
ls -l tests/fixtures/
