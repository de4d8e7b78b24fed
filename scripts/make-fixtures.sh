#!/usr/bin/env bash
# Regenerates the image fixtures in tests/fixtures/. Two families:
#
# 1. Animation fixtures (read by c-tests/test_animation.c and tests/animation.rs):
#    - anim.gif, anim.png (APNG), anim.webp: built by tests/animation.rs (`write_fixtures`): a
#      GIF from the image crate's GifEncoder, an APNG and an animated WebP assembled chunk by
#      chunk (8x6: red, green, green with a blue rectangle; delays 100, 50, 250 ms);
#    - libwebp.webp: made by libwebp's img2webp from three 4x4 PPM frames (red, green, green
#      with a blue top-left 2x2 block; lossless; 100, 50, 250 ms).
#    tests/animation.rs checks that the committed files are current (`fixtures_are_current`).
#
# 2. Files from other encoders (ImageMagick, libwebp, Qt), read by tests/fixtures.rs. All are
#    made from one picture, "up": 16x32 (w x h), four 8x16 quadrants, top-left red #ff0000,
#    top-right green #00ff00, bottom-left blue #0000ff, bottom-right yellow #ffff00 (block
#    aligned, so JPEG keeps the colours within a few levels), and "alpha": the same quadrants
#    with alpha 255, 170, 85 and 0. Animations use three 12x10 frames: red with a blue 4x4
#    top-left block, green, blue with a yellow 4x4 bottom-right block.
#    - im-orient-K.jpg (K = 1..8): ImageMagick (libjpeg-turbo), quality 95, 4:4:4. The stored
#      pixels are "up" turned by the inverse of EXIF orientation K (-flop, -rotate 180, -flip,
#      -transpose, -rotate 270, -transverse, -rotate 90), so that each file, shown as its
#      orientation says, is "up". The tag is set with `convert -orient NAME` (ImageMagick only
#      rewrites an EXIF segment the input already has, so a first JPEG at quality 100 carries
#      a 1-entry EXIF made by this script, orientation 1, and the second pass sets K).
#    - im-anim.gif: ImageMagick, the three frames, delays 70, 150, 300 ms (-delay 7/15/30), loop 0.
#    - im-rgb24.bmp (BMP3: 24-bit, BITMAPINFOHEADER) and im-rgba32.bmp (32-bit BGRA with alpha
#      bit masks, BITMAPV5HEADER): ImageMagick, "up" and "alpha".
#    - im-rgba.png: ImageMagick, "alpha" (8-bit RGBA, no date chunks).
#    - im-anim.apng: ImageMagick's apng: coder, only when it can write one (in ImageMagick 6 it
#      goes through ffmpeg); otherwise skipped with a message.
#    - webp-lossless.webp: cwebp -lossless -exact of "alpha"; webp-lossy.webp: cwebp -q 90
#      -sharp_yuv of "up"; webp-orient-6.webp: cwebp -lossless of "up" turned -rotate 270,
#      with webpmux -set exif (a 1-entry EXIF, orientation 6); webp-anim.webp: img2webp, the
#      three frames, delays 120, 40, 200 ms, frame 2 lossy (-q 80), frames 1 and 3 lossless.
#    - qt-rgb.png, qt-rgb.jpg (quality 95), qt-rgb.bmp from "up", qt-rgba.png from "alpha":
#      QImage::save of Qt 6 (a program built here); skipped with a message without Qt 6.
#    The tool versions and each file's size are written to tests/fixtures/README.md, and what
#    ImageMagick's `identify` says of each file (width height orientation frames delays) to
#    tests/fixtures/identify.txt; tests/fixtures.rs holds these values as constants and checks
#    them against that file.
#
#   scripts/make-fixtures.sh [--foreign-only]     (--foreign-only: part 2 only, no cargo)
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fixtures

if [ "${1:-}" != "--foreign-only" ]; then
    cargo test --test animation write_fixtures -- --ignored --exact
fi

command -v img2webp >/dev/null || { echo "img2webp not found: apt-get install webp" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ppm() { # ppm FILE PIXEL... (16 pixels of 4x4, each "r g b" in octal escapes)
    local file=$1; shift
    { printf 'P6\n4 4\n255\n'; for p in "$@"; do printf "$p"; done; } >"$file"
}
R='\377\000\000' G='\000\377\000' B='\000\000\377'
if [ "${1:-}" != "--foreign-only" ]; then
    ppm "$tmp/0.ppm" $R $R $R $R  $R $R $R $R  $R $R $R $R  $R $R $R $R
    ppm "$tmp/1.ppm" $G $G $G $G  $G $G $G $G  $G $G $G $G  $G $G $G $G
    ppm "$tmp/2.ppm" $B $B $G $G  $B $B $G $G  $G $G $G $G  $G $G $G $G
    img2webp -lossless -d 100 "$tmp/0.ppm" -d 50 "$tmp/1.ppm" -d 250 "$tmp/2.ppm" \
        -o "$out/libwebp.webp"
fi

# ---- Part 2: other encoders -------------------------------------------------------------
# The real ImageMagick (a stand-in script may shadow `convert` on PATH).
im=/usr/bin/convert; [ -x "$im" ] || im=$(command -v convert || true)
idf=/usr/bin/identify; [ -x "$idf" ] || idf=$(command -v identify || true)
[ -n "$im" ] && [ -n "$idf" ] && "$im" -version | grep -q ImageMagick \
    || { echo "ImageMagick not found: apt-get install imagemagick" >&2; exit 1; }
for t in cwebp webpmux; do
    command -v $t >/dev/null || { echo "$t not found: apt-get install webp" >&2; exit 1; }
done
rm -f "$out"/im-* "$out"/webp-* "$out"/qt-*

# The pictures.
"$im" -size 8x16 xc:'#ff0000' xc:'#00ff00' +append \
    \( -size 8x16 xc:'#0000ff' xc:'#ffff00' +append \) -append -depth 8 "$tmp/up.ppm"
"$im" \( -size 8x16 xc:'#ff0000ff' xc:'#00ff00aa' +append \) \
      \( -size 8x16 xc:'#0000ff55' xc:'#ffff0000' +append \) -append \
      -depth 8 -define png:exclude-chunks=date,time "PNG32:$tmp/alpha.png"
"$im" "$tmp/up.ppm" -define png:exclude-chunks=date,time "PNG24:$tmp/up.png"
frame() { # frame FILE BACKGROUND [BLOCK-COLOUR X0,Y0 X1,Y1]
    if [ $# -gt 2 ]; then
        "$im" -size 12x10 "xc:$2" -fill "$3" -draw "rectangle $4 $5" -depth 8 "$1"
    else
        "$im" -size 12x10 "xc:$2" -depth 8 "$1"
    fi
}
frame "$tmp/f0.ppm" '#ff0000' '#0000ff' 0,0 3,3
frame "$tmp/f1.ppm" '#00ff00'
frame "$tmp/f2.ppm" '#0000ff' '#ffff00' 8,6 11,9
for i in 0 1 2; do "$im" "$tmp/f$i.ppm" -define png:exclude-chunks=date,time "PNG24:$tmp/f$i.png"; done

# EXIF: "Exif\0\0", a big-endian TIFF header, IFD0 with one entry, Orientation (0x0112) SHORT.
tiff_orientation() { # the TIFF part, orientation $1
    printf 'MM\000\052\000\000\000\010\000\001\001\022\000\003\000\000\000\001\000'"\\$(printf %03o "$1")"'\000\000\000\000\000\000'
}
{ printf 'Exif\000\000'; tiff_orientation 1; } >"$tmp/exif.app1"

# ImageMagick: EXIF orientations 1..8.
names=(x TopLeft TopRight BottomRight BottomLeft LeftTop RightTop RightBottom LeftBottom)
inverse=(x "" "-flop" "-rotate 180" "-flip" "-transpose" "-rotate 270" "-transverse" "-rotate 90")
for k in 1 2 3 4 5 6 7 8; do
    # shellcheck disable=SC2086 # the transform is two words
    "$im" "$tmp/up.ppm" -profile "$tmp/exif.app1" ${inverse[$k]} -quality 100 -sampling-factor 1x1 \
        "$tmp/stage$k.jpg"
    "$im" "$tmp/stage$k.jpg" -orient "${names[$k]}" -quality 95 -sampling-factor 1x1 \
        "$out/im-orient-$k.jpg"
    got=$("$idf" -format '%[EXIF:Orientation]' "$out/im-orient-$k.jpg")
    [ "$got" = "$k" ] || { echo "im-orient-$k.jpg: EXIF orientation $got, not $k" >&2; exit 1; }
    # ImageMagick's own reading: shown upright, the file is "up" (within JPEG's error).
    ae=$("$im" "$out/im-orient-$k.jpg" -auto-orient "$tmp/up.ppm" -metric AE -fuzz 6% \
        -compare -format '%[distortion]' info: 2>/dev/null || true)
    [ "$ae" = "0" ] || { echo "im-orient-$k.jpg: -auto-orient differs from up in $ae pixels" >&2; exit 1; }
done

# ImageMagick: an animated GIF, BMPs, a PNG with alpha.
"$im" -delay 7 "$tmp/f0.ppm" -delay 15 "$tmp/f1.ppm" -delay 30 "$tmp/f2.ppm" -loop 0 "$out/im-anim.gif"
"$im" "$tmp/up.ppm" "BMP3:$out/im-rgb24.bmp"
"$im" "$tmp/alpha.png" "BMP:$out/im-rgba32.bmp"
"$im" "$tmp/alpha.png" -define png:exclude-chunks=date,time "PNG32:$out/im-rgba.png"
if "$im" -delay 7 "$tmp/f0.ppm" -delay 15 "$tmp/f1.ppm" -delay 30 "$tmp/f2.ppm" \
        "apng:$tmp/anim.apng" 2>"$tmp/apng.err" && [ -s "$tmp/anim.apng" ]; then
    cp "$tmp/anim.apng" "$out/im-anim.apng"
else
    echo "skipped im-anim.apng: this ImageMagick cannot write APNG (ImageMagick 6 writes it through" \
        "its ffmpeg delegate: apt-get install ffmpeg) $(head -c 200 "$tmp/apng.err" | tr '\n' ' ')" >&2
fi

# libwebp.
cwebp -quiet -lossless -exact "$tmp/alpha.png" -o "$out/webp-lossless.webp"
cwebp -quiet -q 90 -sharp_yuv "$tmp/up.png" -o "$out/webp-lossy.webp"
"$im" "$tmp/up.ppm" -rotate 270 -define png:exclude-chunks=date,time "PNG24:$tmp/up6.png"
cwebp -quiet -lossless "$tmp/up6.png" -o "$tmp/up6.webp"
tiff_orientation 6 >"$tmp/exif6.tiff"
webpmux -set exif "$tmp/exif6.tiff" "$tmp/up6.webp" -o "$out/webp-orient-6.webp" >/dev/null
img2webp -loop 0 -lossless -d 120 "$tmp/f0.png" -lossy -q 80 -d 40 "$tmp/f1.png" \
    -lossless -d 200 "$tmp/f2.png" -o "$out/webp-anim.webp" >/dev/null

# Qt: QImage::save.
qt_version=""
if pkg-config --exists Qt6Gui 2>/dev/null && command -v g++ >/dev/null; then
    cat >"$tmp/qtsave.cpp" <<'CPP'
// qtsave UP ALPHA OUTDIR: saves the pictures with QImage::save as Qt 6 writes them.
#include <QCoreApplication>
#include <QImage>
#include <QString>
#include <cstdio>
int main(int argc, char **argv) {
    QCoreApplication app(argc, argv); // image format plugins (JPEG) are found through it
    if (argc != 4) return 2;
    QImage up(QString::fromLocal8Bit(argv[1])), alpha(QString::fromLocal8Bit(argv[2]));
    if (up.isNull() || alpha.isNull()) { std::fprintf(stderr, "qtsave: cannot read input\n"); return 1; }
    up = up.convertToFormat(QImage::Format_RGB32);
    alpha = alpha.convertToFormat(QImage::Format_ARGB32);
    const QString dir = QString::fromLocal8Bit(argv[3]) + "/";
    bool ok = up.save(dir + "qt-rgb.png", "PNG") && up.save(dir + "qt-rgb.jpg", "JPG", 95)
        && up.save(dir + "qt-rgb.bmp", "BMP") && alpha.save(dir + "qt-rgba.png", "PNG");
    if (!ok) { std::fprintf(stderr, "qtsave: a save failed\n"); return 1; }
    std::printf("%s\n", qVersion());
    return 0;
}
CPP
    # shellcheck disable=SC2046 # pkg-config prints several flags
    if g++ -std=c++17 -fPIC "$tmp/qtsave.cpp" -o "$tmp/qtsave" $(pkg-config --cflags --libs Qt6Gui); then
        qt_version=$(QT_QPA_PLATFORM=offscreen "$tmp/qtsave" "$tmp/up.ppm" "$tmp/alpha.png" "$out")
    else
        echo "skipped the Qt fixtures: the Qt program does not build" >&2
    fi
else
    echo "skipped the Qt fixtures: Qt 6 not found (apt-get install qt6-base-dev)" >&2
fi

# What identify says, and the README.
{
    echo "# file width height orientation frames delays-cs (ImageMagick identify; orientation"
    echo "# as %[orientation], delays as %T per frame, comma separated)"
    for f in "$out"/im-* "$out"/webp-* "$out"/qt-*; do
        [ -e "$f" ] || continue
        n=$(basename "$f")
        first=$("$idf" -format '%w %h %[orientation]' "$f[0]")
        frames=$("$idf" -format '%T\n' "$f" | wc -l)
        delays=$("$idf" -format '%T,' "$f"); delays=${delays%,}
        echo "$n $first $frames $delays"
    done
} >"$out/identify.txt"

size() { stat -c %s "$1"; }
{
    echo "# Test fixtures"
    echo
    echo "Written by scripts/make-fixtures.sh (its header says what each picture is; do not edit"
    echo "by hand). Part 1 (anim.*, libwebp.webp) is read by tests/animation.rs and"
    echo "c-tests/test_animation.c; part 2 (im-*, webp-*, qt-*) by tests/fixtures.rs."
    echo "identify.txt is what ImageMagick's identify says of each part-2 file."
    echo
    echo "Tools: $("$im" -version | head -1 | sed "s/^Version: //; s/ https.*//"); libjpeg-turbo via ImageMagick;"
    echo "libwebp cwebp $(cwebp -version), img2webp/webpmux of the same package;"
    echo "Qt ${qt_version:-(not available: Qt files skipped)}."
    echo
    echo "| file | bytes | made by |"
    echo "| --- | --- | --- |"
    for f in "$out"/*; do
        n=$(basename "$f")
        case "$n" in
            README.md | identify.txt) continue ;;
            anim.*) tool="pixcache tests (image crate / hand-built chunks)" ;;
            libwebp.webp) tool="libwebp img2webp" ;;
            im-*) tool="ImageMagick convert" ;;
            webp-anim.webp) tool="libwebp img2webp" ;;
            webp-orient-6.webp) tool="libwebp cwebp + webpmux (EXIF)" ;;
            webp-*) tool="libwebp cwebp" ;;
            qt-*) tool="Qt QImage::save" ;;
            *) tool="?" ;;
        esac
        echo "| $n | $(size "$f") | $tool |"
    done
} >"$out/README.md"

total=0
for f in "$out"/*; do
    s=$(size "$f"); total=$((total + s))
    [ "$s" -lt 20480 ] || { echo "$f is $s bytes (over 20 KB)" >&2; exit 1; }
done
[ "$total" -lt 307200 ] || { echo "tests/fixtures is $total bytes (over 300 KB)" >&2; exit 1; }
ls -l "$out/"
echo "tests/fixtures: $total bytes"
