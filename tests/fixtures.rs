//! Files written by other encoders (ImageMagick, libwebp, Qt), decoded through the C API. The
//! files and the pictures they hold are described at the top of scripts/make-fixtures.sh, which
//! writes them to tests/fixtures/ with tests/fixtures/identify.txt (what ImageMagick's
//! `identify` says of each) and tests/fixtures/README.md (tools and versions).
//!
//! "up" is 16x32 with four 8x16 quadrants: red, green (top), blue, yellow (bottom); "alpha" is
//! the same with alpha 255, 170, 85, 0. The animations have three 12x10 frames.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;

use pixcache::ffi::animation::{pixcache_image_frames, pixcache_pixmap_load_frame};
use pixcache::ffi::encode::{
    pixcache_bytes_free, pixcache_pixmap_encode, pixcache_pixmap_load_scaled,
};
use pixcache::ffi::error::{pixcache_last_error, pixcache_last_result, PixcacheResult};
use pixcache::ffi::image::*;
use pixcache::ffi::pixmap::*;

const W: u32 = 16;
const H: u32 = 32;
const RED: [u8; 4] = [255, 0, 0, 255];
const GREEN: [u8; 4] = [0, 255, 0, 255];
const BLUE: [u8; 4] = [0, 0, 255, 255];
const YELLOW: [u8; 4] = [255, 255, 0, 255];
const ALPHAS: [u8; 4] = [255, 170, 85, 0];

/// "up" at (x, y) (upright, 16x32), with alpha 255, or "alpha"'s alpha when `alpha`.
fn up(x: u32, y: u32, alpha: bool) -> [u8; 4] {
    let q = usize::from(x >= W / 2) + 2 * usize::from(y >= H / 2);
    let mut c = [RED, GREEN, BLUE, YELLOW][q];
    if alpha {
        c[3] = ALPHAS[q];
    }
    c
}

/// Where the pixel stored at (x, y) of a `sw` x `sh` image with EXIF orientation `k` is shown
/// (the TIFF/EXIF definition: 2 mirrors, 6 turns 90 degrees clockwise, and so on).
fn shown_at(k: u32, sw: u32, sh: u32, x: u32, y: u32) -> (u32, u32) {
    match k {
        1 => (x, y),
        2 => (sw - 1 - x, y),
        3 => (sw - 1 - x, sh - 1 - y),
        4 => (x, sh - 1 - y),
        5 => (y, x),
        6 => (sh - 1 - y, x),
        7 => (sh - 1 - y, sw - 1 - x),
        8 => (y, sw - 1 - x),
        _ => unreachable!(),
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn last_error() -> String {
    // SAFETY: pixcache_last_error returns a valid C string.
    unsafe { CStr::from_ptr(pixcache_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A decoded image: size, natural format, RGBA8888 pixels (converted through the C API).
#[derive(Debug, Clone, PartialEq)]
struct Img {
    w: u32,
    h: u32,
    format: PixcacheFormat,
    rgba: Vec<u8>,
}

impl Img {
    fn at(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y * self.w + x) as usize * 4;
        self.rgba[i..i + 4].try_into().unwrap()
    }
}

/// Takes a pixmap handle (NULL: the last error, as a panic message) and frees it.
fn take(pm: *mut PixcachePixmap, what: &str) -> Img {
    assert!(!pm.is_null(), "{what}: {}", last_error());
    assert_eq!(pixcache_last_result(), PixcacheResult::Ok);
    // SAFETY: a live handle; the converted copy is a live RGBA8888 raster of `h` rows of
    // `stride` bytes; both freed once.
    unsafe {
        let (w, h) = (pixcache_pixmap_width(pm), pixcache_pixmap_height(pm));
        let format = pixcache_pixmap_format(pm);
        let c = pixcache_pixmap_convert(pm, PIXCACHE_FORMAT_RGBA8888);
        assert!(!c.is_null(), "{what}: convert: {}", last_error());
        let stride = pixcache_pixmap_stride(c);
        let px = pixcache_pixmap_pixels(c);
        let mut rgba = Vec::with_capacity((w * h * 4) as usize);
        for y in 0..h as usize {
            rgba.extend_from_slice(std::slice::from_raw_parts(
                px.add(y * stride),
                w as usize * 4,
            ));
        }
        pixcache_pixmap_free(c);
        pixcache_pixmap_free(pm);
        Img { w, h, format, rgba }
    }
}

fn load_with(name: &str, apply_orientation: bool) -> Img {
    let options = PixcacheLoadOptions {
        apply_orientation,
        ..pixcache_load_options_default()
    };
    let path = c_path(&fixture(name));
    // SAFETY: a C string and a valid options struct.
    take(
        unsafe { pixcache_pixmap_load_with(path.as_ptr(), &options) },
        name,
    )
}

fn load(name: &str) -> Img {
    load_with(name, true)
}

fn info(name: &str) -> PixcacheImageInfo {
    let mut out = PixcacheImageInfo {
        width: 0,
        height: 0,
        stored_width: 0,
        stored_height: 0,
        format: 0,
        orientation: 0,
        has_alpha: 9,
    };
    let path = c_path(&fixture(name));
    // SAFETY: a C string and a writable struct.
    let ok = unsafe { pixcache_image_info(path.as_ptr(), &mut out) };
    assert!(ok, "{name}: {}", last_error());
    // The same from memory.
    let bytes = std::fs::read(fixture(name)).unwrap();
    let mut mem = out;
    mem.width = 0;
    // SAFETY: a valid slice and a writable struct.
    assert!(unsafe { pixcache_image_info_from_memory(bytes.as_ptr(), bytes.len(), &mut mem) });
    assert_eq!(mem, out, "{name}: info from memory and from the file");
    out
}

fn frames(name: &str) -> (usize, Vec<u32>) {
    let path = c_path(&fixture(name));
    let mut count = 0;
    let mut delays = [u32::MAX; 8];
    // SAFETY: a C string; `delays` has 8 writable elements.
    let ok = unsafe { pixcache_image_frames(path.as_ptr(), &mut count, delays.as_mut_ptr(), 8) };
    assert!(ok, "{name}: {}", last_error());
    (count, delays[..count.min(8)].to_vec())
}

fn frame(name: &str, n: usize) -> Img {
    let path = c_path(&fixture(name));
    // SAFETY: a C string.
    take(
        unsafe { pixcache_pixmap_load_frame(path.as_ptr(), n, PIXCACHE_FORMAT_INVALID) },
        &format!("{name} frame {n}"),
    )
}

/// The largest difference of any channel of any pixel from `want(x, y)`, with where it is.
fn worst(img: &Img, want: impl Fn(u32, u32) -> [u8; 4]) -> (u8, (u32, u32), [u8; 4], [u8; 4]) {
    let mut worst = (0, (0, 0), [0; 4], [0; 4]);
    for y in 0..img.h {
        for x in 0..img.w {
            let (got, want) = (img.at(x, y), want(x, y));
            let d = (0..4).map(|i| got[i].abs_diff(want[i])).max().unwrap();
            if d > worst.0 {
                worst = (d, (x, y), got, want);
            }
        }
    }
    worst
}

fn assert_within(img: &Img, tolerance: u8, what: &str, want: impl Fn(u32, u32) -> [u8; 4]) {
    let (d, at, got, want) = worst(img, want);
    assert!(
        d <= tolerance,
        "{what}: off by {d} at {at:?}: {got:?}, expected {want:?}"
    );
}

/// The centre pixel of each quadrant of a `w` x `h` image.
fn centres(w: u32, h: u32) -> [(u32, u32); 4] {
    [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ]
}

#[test]
fn exif_orientations_load_upright() {
    for k in 1..=8 {
        let name = format!("im-orient-{k}.jpg");
        let img = load(&name);
        assert_eq!((img.w, img.h), (W, H), "{name}");
        assert_eq!(img.format, PIXCACHE_FORMAT_RGB888, "{name}");
        // The quadrant centres within ±16, as asked of JPEG; in fact every pixel is (the
        // quadrants are 8x8-block aligned, 4:4:4).
        for (x, y) in centres(W, H) {
            let (got, want) = (img.at(x, y), up(x, y, false));
            assert!(
                (0..3).all(|i| got[i].abs_diff(want[i]) <= 16),
                "{name} at ({x}, {y}): {got:?}, expected {want:?}"
            );
        }
        assert_within(&img, 16, &name, |x, y| up(x, y, false));

        let i = info(&name);
        let (sw, sh) = if k >= 5 { (H, W) } else { (W, H) };
        assert_eq!(
            i,
            PixcacheImageInfo {
                width: W,
                height: H,
                stored_width: sw,
                stored_height: sh,
                format: PIXCACHE_IMAGE_JPEG,
                orientation: k,
                has_alpha: 0,
            },
            "{name}"
        );
    }
}

#[test]
fn exif_orientations_unapplied_give_the_stored_layout() {
    for k in 1..=8 {
        let name = format!("im-orient-{k}.jpg");
        let img = load_with(&name, false);
        let (sw, sh) = if k >= 5 { (H, W) } else { (W, H) };
        assert_eq!((img.w, img.h), (sw, sh), "{name}");
        assert_within(&img, 16, &format!("{name}, stored"), |x, y| {
            let (ux, uy) = shown_at(k, sw, sh, x, y);
            up(ux, uy, false)
        });
    }
}

#[test]
fn webp_exif_orientation_from_webpmux() {
    let name = "webp-orient-6.webp";
    let img = load(name);
    assert_eq!((img.w, img.h), (W, H));
    assert_within(&img, 0, name, |x, y| up(x, y, false));
    let stored = load_with(name, false);
    assert_eq!((stored.w, stored.h), (H, W));
    assert_within(&stored, 0, "webp-orient-6.webp, stored", |x, y| {
        let (ux, uy) = shown_at(6, H, W, x, y);
        up(ux, uy, false)
    });
    let i = info(name);
    assert_eq!(
        (i.width, i.height, i.stored_width, i.stored_height),
        (W, H, H, W)
    );
    assert_eq!((i.format, i.orientation), (PIXCACHE_IMAGE_WEBP, 6));
}

/// The three animation frames, as the script draws them (12x10).
fn anim_frame(n: usize, x: u32, y: u32) -> [u8; 4] {
    match n {
        0 if x < 4 && y < 4 => BLUE,
        0 => RED,
        1 => GREEN,
        _ if x >= 8 && y >= 6 => YELLOW,
        _ => BLUE,
    }
}

/// The colour most pixels have.
fn dominant(img: &Img) -> [u8; 4] {
    let mut counts: Vec<([u8; 4], usize)> = Vec::new();
    for px in img.rgba.chunks_exact(4) {
        let px: [u8; 4] = px.try_into().unwrap();
        match counts.iter_mut().find(|(c, _)| *c == px) {
            Some((_, n)) => *n += 1,
            None => counts.push((px, 1)),
        }
    }
    counts.into_iter().max_by_key(|&(_, n)| n).unwrap().0
}

/// Whether every channel of `got` is within `tolerance` of `want`.
fn near(got: [u8; 4], want: [u8; 4], tolerance: u8) -> bool {
    (0..4).all(|i| got[i].abs_diff(want[i]) <= tolerance)
}

#[test]
fn imagemagick_animated_gif() {
    let name = "im-anim.gif";
    assert_eq!(frames(name), (3, vec![70, 150, 300]));
    for (n, colour) in [RED, GREEN, BLUE].into_iter().enumerate() {
        let img = frame(name, n);
        assert_eq!(
            (img.w, img.h, img.format),
            (12, 10, PIXCACHE_FORMAT_RGBA8888)
        );
        assert_eq!(dominant(&img), colour, "{name} frame {n}");
        assert_within(&img, 0, &format!("{name} frame {n}"), |x, y| {
            anim_frame(n, x, y)
        });
    }
    let i = info(name);
    assert_eq!((i.width, i.height, i.format), (12, 10, PIXCACHE_IMAGE_GIF));
}

#[test]
fn libwebp_animated_webp() {
    let name = "webp-anim.webp";
    assert_eq!(frames(name), (3, vec![120, 40, 200]));
    for (n, colour) in [RED, GREEN, BLUE].into_iter().enumerate() {
        let img = frame(name, n);
        assert_eq!(
            (img.w, img.h, img.format),
            (12, 10, PIXCACHE_FORMAT_RGBA8888)
        );
        assert!(
            near(dominant(&img), colour, 16),
            "{name} frame {n}: dominant {:?}",
            dominant(&img)
        );
        // Frame 1 is lossy (solid green: still within a few levels); frames 0 and 2 lossless
        // (image-webp blends an opaque frame over the canvas with a rounding error of 1, as
        // tests/animation.rs notes for libwebp.webp).
        let tolerance = if n == 1 { 16 } else { 1 };
        assert_within(&img, tolerance, &format!("{name} frame {n}"), |x, y| {
            anim_frame(n, x, y)
        });
    }
    // Past the last frame: INVALID_ARGUMENT.
    let path = c_path(&fixture(name));
    // SAFETY: a C string.
    let pm = unsafe { pixcache_pixmap_load_frame(path.as_ptr(), 3, 0) };
    assert!(pm.is_null());
    assert_eq!(pixcache_last_result(), PixcacheResult::InvalidArgument);
}

#[test]
fn apng_from_imagemagick_if_present() {
    // ImageMagick 6 writes APNG only through ffmpeg; the script skips the file without it.
    let name = "im-anim.apng";
    if !fixture(name).exists() {
        eprintln!("{name}: not made by this ImageMagick (no APNG writer), skipped");
        return;
    }
    assert_eq!(frames(name), (3, vec![70, 150, 300]));
    for (n, colour) in [RED, GREEN, BLUE].into_iter().enumerate() {
        assert_eq!(dominant(&frame(name, n)), colour, "{name} frame {n}");
    }
}

#[test]
fn lossless_files_decode_exactly() {
    // (file, natural format, with alpha)
    let cases = [
        ("im-rgb24.bmp", PIXCACHE_FORMAT_RGB888, false),
        ("im-rgba32.bmp", PIXCACHE_FORMAT_RGBA8888, true),
        ("im-rgba.png", PIXCACHE_FORMAT_RGBA8888, true),
        ("webp-lossless.webp", PIXCACHE_FORMAT_RGBA8888, true),
        ("qt-rgb.png", PIXCACHE_FORMAT_RGB888, false),
        ("qt-rgb.bmp", PIXCACHE_FORMAT_RGB888, false),
        ("qt-rgba.png", PIXCACHE_FORMAT_RGBA8888, true),
    ];
    for (name, format, alpha) in cases {
        let img = load(name);
        assert_eq!((img.w, img.h, img.format), (W, H, format), "{name}");
        // Every encoder here keeps the colour under alpha 0 (yellow), and so does pixcache.
        let (d, at, got, want) = worst(&img, |x, y| up(x, y, alpha));
        assert_eq!(d, 0, "{name}: at {at:?} {got:?}, expected {want:?}");
        let i = info(name);
        assert_eq!((i.width, i.height), (W, H), "{name}");
        assert_eq!(i.has_alpha, i32::from(alpha), "{name}: {i:?}");
    }
}

#[test]
fn lossy_files_decode_within_tolerance() {
    for name in ["webp-lossy.webp", "qt-rgb.jpg"] {
        let img = load(name);
        assert_eq!((img.w, img.h), (W, H), "{name}");
        for (x, y) in centres(W, H) {
            let (got, want) = (img.at(x, y), up(x, y, false));
            assert!(
                near(got, want, 16),
                "{name} at ({x}, {y}): {got:?}, expected {want:?}"
            );
        }
    }
}

fn scaled(name: &str, bw: u32, bh: u32) -> Img {
    let path = c_path(&fixture(name));
    // SAFETY: a C string.
    take(
        unsafe { pixcache_pixmap_load_scaled(path.as_ptr(), bw, bh, 0) },
        name,
    )
}

/// `pixcache_pixmap_load_scaled` decodes "as `pixcache_pixmap_load`", which turns the image as
/// its EXIF orientation says (it once used the image crate's reader directly and did not:
/// im-orient-6.jpg came back in its stored layout).
#[test]
fn load_scaled_applies_the_exif_orientation() {
    for k in 1..=8 {
        let name = format!("im-orient-{k}.jpg");
        let img = scaled(&name, 8, 16);
        assert_eq!((img.w, img.h), (8, 16), "{name} in 8x16");
        for (x, y) in centres(8, 16) {
            let want = up(x * 2, y * 2, false);
            assert!(
                near(img.at(x, y), want, 24),
                "{name} scaled at ({x}, {y}): {:?}, expected {want:?}",
                img.at(x, y)
            );
        }
    }
}

#[test]
fn load_scaled_fits_the_box() {
    // (file, box, expected size): never upscaled.
    let cases = [
        ("im-orient-1.jpg", (8, 8), (4, 8)),
        ("im-orient-1.jpg", (8, 16), (8, 16)),
        ("qt-rgb.png", (100, 100), (W, H)),
        ("im-rgba.png", (0, 16), (8, 16)),
        ("webp-lossless.webp", (5, 0), (5, 10)),
    ];
    for (name, (bw, bh), size) in cases {
        let img = scaled(name, bw, bh);
        assert_eq!((img.w, img.h), size, "{name} in {bw}x{bh}");
        assert!(bw == 0 || img.w <= bw);
        assert!(bh == 0 || img.h <= bh);
        if size == (8, 16) && name.ends_with(".jpg") {
            // Halved: each quadrant is 4x8; its inner pixels keep the colour.
            for (x, y) in centres(8, 16) {
                let want = up(x * 2, y * 2, false);
                assert!(
                    near(img.at(x, y), want, 24),
                    "{name} scaled at ({x}, {y}): {:?}, expected {want:?}",
                    img.at(x, y)
                );
            }
        }
    }
}

fn encode(name: &str, file_format: PixcacheImageFormat) -> Img {
    let path = c_path(&fixture(name));
    // SAFETY: a C string; the pixmap and the buffer are freed once.
    unsafe {
        let pm = pixcache_pixmap_load(path.as_ptr());
        assert!(!pm.is_null(), "{name}: {}", last_error());
        let mut bytes = ptr::null_mut();
        let mut len = 0;
        let ok = pixcache_pixmap_encode(pm, file_format, 0, &mut bytes, &mut len);
        pixcache_pixmap_free(pm);
        assert!(ok, "{name} to {file_format}: {}", last_error());
        let back = pixcache_pixmap_load_from_memory(bytes, len);
        pixcache_bytes_free(bytes, len);
        take(back, &format!("{name} through {file_format}"))
    }
}

#[test]
fn encode_round_trips_are_lossless() {
    for name in [
        "im-rgba.png",
        "im-rgb24.bmp",
        "webp-lossless.webp",
        "qt-rgba.png",
        "im-orient-7.jpg",
        "im-anim.gif",
    ] {
        let original = load(name);
        for format in [PIXCACHE_IMAGE_PNG, PIXCACHE_IMAGE_WEBP] {
            let back = encode(name, format);
            assert_eq!(
                (back.w, back.h),
                (original.w, original.h),
                "{name} via {format}"
            );
            assert!(
                back.rgba == original.rgba,
                "{name} via {format}: pixels differ: {:?}",
                worst(&back, |x, y| original.at(x, y))
            );
        }
    }
}

/// What `identify` said of each file when the script made it (tests/fixtures/identify.txt):
/// (file, width, height, orientation, frames, delays in centiseconds). identify's width and
/// height are as stored (before the orientation).
const IDENTIFY: [(&str, u32, u32, &str, usize, &str); 20] = [
    ("im-anim.gif", 12, 10, "Undefined", 3, "7,15,30"),
    ("im-orient-1.jpg", 16, 32, "TopLeft", 1, "0"),
    ("im-orient-2.jpg", 16, 32, "TopRight", 1, "0"),
    ("im-orient-3.jpg", 16, 32, "BottomRight", 1, "0"),
    ("im-orient-4.jpg", 16, 32, "BottomLeft", 1, "0"),
    ("im-orient-5.jpg", 32, 16, "LeftTop", 1, "0"),
    ("im-orient-6.jpg", 32, 16, "RightTop", 1, "0"),
    ("im-orient-7.jpg", 32, 16, "RightBottom", 1, "0"),
    ("im-orient-8.jpg", 32, 16, "LeftBottom", 1, "0"),
    ("im-rgb24.bmp", 16, 32, "Undefined", 1, "0"),
    ("im-rgba.png", 16, 32, "Undefined", 1, "0"),
    ("im-rgba32.bmp", 16, 32, "Undefined", 1, "0"),
    ("webp-anim.webp", 12, 10, "Undefined", 3, "12,4,20"),
    ("webp-lossless.webp", 16, 32, "Undefined", 1, "0"),
    ("webp-lossy.webp", 16, 32, "Undefined", 1, "0"),
    // ImageMagick 6.9.11 does not read a WebP's EXIF orientation: pixcache reports 6.
    ("webp-orient-6.webp", 32, 16, "Undefined", 1, "0"),
    ("qt-rgb.bmp", 16, 32, "Undefined", 1, "0"),
    ("qt-rgb.jpg", 16, 32, "Undefined", 1, "0"),
    ("qt-rgb.png", 16, 32, "Undefined", 1, "0"),
    ("qt-rgba.png", 16, 32, "Undefined", 1, "0"),
];

#[test]
fn identify_constants_match_the_committed_record() {
    let text = std::fs::read_to_string(fixture("identify.txt")).unwrap();
    let rows: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let ours: Vec<String> = IDENTIFY
        .iter()
        .map(|(f, w, h, o, n, d)| format!("{f} {w} {h} {o} {n} {d}"))
        .collect();
    assert_eq!(rows, ours, "regenerated fixtures: update IDENTIFY");
}

#[test]
fn image_info_agrees_with_identify() {
    for (name, w, h, orientation, n, delays_cs) in IDENTIFY {
        let i = info(name);
        assert_eq!(
            (i.stored_width, i.stored_height),
            (w, h),
            "{name}: stored size"
        );
        let want_orientation = match orientation {
            "Undefined" | "TopLeft" => 1,
            "TopRight" => 2,
            "BottomRight" => 3,
            "BottomLeft" => 4,
            "LeftTop" => 5,
            "RightTop" => 6,
            "RightBottom" => 7,
            "LeftBottom" => 8,
            other => panic!("{other}"),
        };
        if name == "webp-orient-6.webp" {
            // identify: Undefined (not read); the file's EXIF says 6.
            assert_eq!(i.orientation, 6, "{name}");
        } else {
            assert_eq!(i.orientation, want_orientation, "{name}");
        }
        let turned = i.orientation >= 5;
        assert_eq!(
            (i.width, i.height),
            if turned { (h, w) } else { (w, h) },
            "{name}: shown size"
        );
        let format = match name.rsplit('.').next().unwrap() {
            "jpg" => PIXCACHE_IMAGE_JPEG,
            "png" | "apng" => PIXCACHE_IMAGE_PNG,
            "gif" => PIXCACHE_IMAGE_GIF,
            "bmp" => PIXCACHE_IMAGE_BMP,
            "webp" => PIXCACHE_IMAGE_WEBP,
            other => panic!("{other}"),
        };
        assert_eq!(i.format, format, "{name}");
        // Frames and delays: identify's centiseconds are pixcache's milliseconds / 10.
        let (count, delays) = frames(name);
        assert_eq!(count, n, "{name}: frames");
        if n > 1 {
            let cs: Vec<String> = delays.iter().map(|d| (d / 10).to_string()).collect();
            assert_eq!(cs.join(","), delays_cs, "{name}: delays");
        }
        // A full load has the size info gives.
        let img = load(name);
        assert_eq!((img.w, img.h), (i.width, i.height), "{name}: load");
    }
}

/// `pixcache_find_or_load` on files other encoders wrote: the pixels `load` gives (upright for
/// the EXIF-oriented JPEG), found again without a decode, under the key `pixcache_file_key`
/// names.
#[test]
fn find_or_load_serves_other_encoders_files() {
    use pixcache::ffi::cache::{
        pixcache_cache_free, pixcache_cache_new, pixcache_file_key, pixcache_find,
        pixcache_find_or_load, pixcache_stats_v2,
    };
    let cache = pixcache_cache_new(10_240);
    for name in [
        "im-orient-6.jpg",
        "qt-rgb.png",
        "im-rgb24.bmp",
        "webp-lossless.webp",
    ] {
        let path = c_path(&fixture(name));
        for round in 0..2 {
            let out = pixcache_pixmap_new_null();
            // SAFETY: a live cache, C string and handle.
            assert!(
                unsafe { pixcache_find_or_load(cache, path.as_ptr(), out) },
                "{name}: {}",
                last_error()
            );
            let got = take(out, name);
            let want = load(name);
            assert_eq!(
                (got.w, got.h, &got.rgba),
                (want.w, want.h, &want.rgba),
                "{name}, round {round}"
            );
        }
        let mut key = vec![0u8; 4096];
        // SAFETY: a C string and a buffer of `key.len()` bytes.
        let n = unsafe { pixcache_file_key(path.as_ptr(), 0, key.as_mut_ptr().cast(), key.len()) };
        assert!(n > 0 && n < key.len());
        // SAFETY: a live cache and the NUL-terminated key just written.
        assert!(
            unsafe { pixcache_find(cache, key.as_ptr().cast(), ptr::null_mut()) },
            "{name}"
        );
    }
    // SAFETY: a live cache.
    let stats = unsafe { pixcache_stats_v2(cache) };
    assert_eq!(
        (stats.inserts, stats.entries),
        (4, 4),
        "each file decoded once"
    );
    // SAFETY: made above, freed once.
    unsafe { pixcache_cache_free(cache) };
}

/// Limits on a file another encoder wrote: ImageMagick's 16x32 BMP is refused by per-call
/// limits below its size (TOO_LARGE, naming it) and loads at its size; the same bytes with the
/// header's width and height raised to 100000 are TOO_LARGE from the header, before decoding.
#[test]
fn limits_on_other_encoders_files() {
    let path = c_path(&fixture("im-rgb24.bmp"));
    let mut o = pixcache_load_options_default();
    o.max_height = H - 1;
    // SAFETY: a C string and a valid options struct.
    let refused = unsafe { pixcache_pixmap_load_with(path.as_ptr(), &o) };
    assert!(refused.is_null());
    assert_eq!(pixcache_last_result(), PixcacheResult::TooLarge);
    assert!(
        last_error().contains(&format!("{W}x{H}")),
        "{}",
        last_error()
    );
    o.max_height = H;
    // SAFETY: as above.
    let img = take(
        unsafe { pixcache_pixmap_load_with(path.as_ptr(), &o) },
        "at the limit",
    );
    assert_eq!((img.w, img.h), (W, H));

    let mut bytes = std::fs::read(fixture("im-rgb24.bmp")).unwrap();
    assert_eq!(&bytes[..2], b"BM");
    bytes[18..22].copy_from_slice(&100_000i32.to_le_bytes());
    bytes[22..26].copy_from_slice(&100_000i32.to_le_bytes());
    // SAFETY: a live buffer; NULL options are the defaults.
    let pm =
        unsafe { pixcache_pixmap_load_from_memory_with(bytes.as_ptr(), bytes.len(), ptr::null()) };
    assert!(pm.is_null());
    assert_eq!(pixcache_last_result(), PixcacheResult::TooLarge);
    assert!(last_error().contains("100000x100000"), "{}", last_error());
}
