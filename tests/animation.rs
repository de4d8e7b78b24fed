//! Animated images through the C API (`pixcache_image_frames`, `pixcache_pixmap_load_frame`),
//! on animations this test builds itself: a GIF with the `image` crate's `GifEncoder`, and an
//! APNG and an animated WebP assembled chunk by chunk (the `image` crate 0.25 encodes neither;
//! the WebP frames are its lossless `WebPEncoder`'s bitstreams in ANMF chunks). Each has a
//! partial frame, so the composited canvas is checked, not only the frame data. The fixtures in
//! tests/fixtures/ (scripts/make-fixtures.sh) are written by `write_fixtures` here, plus one
//! made by libwebp's img2webp, checked by `libwebp_fixture_decodes` as an outside encoder.
//!
//! The decoding limits are process-wide: every test holds [`LOCK`].

use std::ffi::{CStr, CString};
use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::webp::WebPEncoder;
use image::{Delay, Frame, ImageEncoder, Rgba, RgbaImage};
use pixcache::ffi::animation::{pixcache_image_frames, pixcache_pixmap_load_frame};
use pixcache::ffi::error::{pixcache_last_error, pixcache_last_result, PixcacheResult};
use pixcache::ffi::pixmap::{
    pixcache_pixmap_format, pixcache_pixmap_free, pixcache_pixmap_height, pixcache_pixmap_pixels,
    pixcache_pixmap_stride, pixcache_pixmap_width, pixcache_set_decode_limits, PixcachePixmap,
    PIXCACHE_FORMAT_RGB888, PIXCACHE_FORMAT_RGBA8888,
};

static LOCK: Mutex<()> = Mutex::new(());

const W: u32 = 8;
const H: u32 = 6;
const RED: [u8; 4] = [255, 0, 0, 255];
const GREEN: [u8; 4] = [0, 255, 0, 255];
const BLUE: [u8; 4] = [0, 0, 255, 255];
/// The partial frame 2: a BLUE rectangle at (PX, PY) of PW x PH over frame 1.
const PX: u32 = 2;
const PY: u32 = 1;
const PW: u32 = 4;
const PH: u32 = 2;
const DELAYS: [u32; 3] = [100, 50, 250];

/// The canvas after each frame: RED, GREEN, then GREEN with the BLUE rectangle.
fn expected(n: usize) -> RgbaImage {
    RgbaImage::from_fn(W, H, |x, y| {
        let inside = (PX..PX + PW).contains(&x) && (PY..PY + PH).contains(&y);
        Rgba(match n {
            0 => RED,
            1 => GREEN,
            _ if inside => BLUE,
            _ => GREEN,
        })
    })
}

fn solid(w: u32, h: u32, c: [u8; 4]) -> RgbaImage {
    RgbaImage::from_pixel(w, h, Rgba(c))
}

/// The `image` crate's `GifEncoder` writes every frame at (0, 0) with disposal "background";
/// the bytes are patched afterwards: every frame's disposal becomes "keep" and the third frame
/// moves to (PX, PY).
pub fn gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.set_repeat(Repeat::Infinite).unwrap();
        let frames = [
            Frame::from_parts(solid(W, H, RED), 0, 0, Delay::from_numer_denom_ms(100, 1)),
            Frame::from_parts(solid(W, H, GREEN), 0, 0, Delay::from_numer_denom_ms(50, 1)),
            Frame::from_parts(
                solid(PW, PH, BLUE),
                0,
                0,
                Delay::from_numer_denom_ms(250, 1),
            ),
        ];
        enc.encode_frames(frames).unwrap();
    }
    let table = |flags: u8| {
        if flags & 0x80 != 0 {
            3 << ((flags & 7) + 1)
        } else {
            0
        }
    };
    let skip_sub_blocks = |out: &[u8], mut at: usize| {
        while out[at] != 0 {
            at += 1 + out[at] as usize;
        }
        at + 1
    };
    let mut at = 13 + table(out[10]);
    let mut image = 0;
    while out[at] != 0x3B {
        match out[at] {
            0x21 => {
                if out[at + 1] == 0xF9 {
                    out[at + 3] = (out[at + 3] & !0b1_1100) | (1 << 2);
                }
                at = skip_sub_blocks(&out, at + 2);
            }
            0x2C => {
                if image == 2 {
                    out[at + 1..at + 3].copy_from_slice(&(PX as u16).to_le_bytes());
                    out[at + 3..at + 5].copy_from_slice(&(PY as u16).to_le_bytes());
                }
                image += 1;
                at = skip_sub_blocks(&out, at + 10 + table(out[at + 9]) + 1);
            }
            other => panic!("unexpected GIF block {other:#x}"),
        }
    }
    assert_eq!(image, 3);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// zlib data of `raw` in stored (uncompressed) deflate blocks.
fn zlib_stored(raw: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// PNG image data (filter 0 on every row) of an RGBA image.
fn idat_data(img: &RgbaImage) -> Vec<u8> {
    let mut raw = Vec::new();
    for row in img.as_raw().chunks(img.width() as usize * 4) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    zlib_stored(&raw)
}

fn fctl(seq: u32, (w, h, x, y): (u32, u32, u32, u32), delay_ms: u32) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [seq, w, h, x, y] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    d.extend_from_slice(&(delay_ms as u16).to_be_bytes());
    d.extend_from_slice(&1000u16.to_be_bytes());
    d.extend_from_slice(&[0, 0]); // dispose none, blend source
    d
}

pub fn apng() -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&W.to_be_bytes());
    ihdr.extend_from_slice(&H.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut actl = 3u32.to_be_bytes().to_vec();
    actl.extend_from_slice(&0u32.to_be_bytes());
    chunk(&mut out, b"acTL", &actl);
    chunk(&mut out, b"fcTL", &fctl(0, (W, H, 0, 0), DELAYS[0]));
    chunk(&mut out, b"IDAT", &idat_data(&solid(W, H, RED)));
    let mut seq = 1;
    for (rect, colour, delay) in [
        ((W, H, 0, 0), GREEN, DELAYS[1]),
        ((PW, PH, PX, PY), BLUE, DELAYS[2]),
    ] {
        chunk(&mut out, b"fcTL", &fctl(seq, rect, delay));
        let mut fdat = (seq + 1).to_be_bytes().to_vec();
        fdat.extend_from_slice(&idat_data(&solid(rect.0, rect.1, colour)));
        chunk(&mut out, b"fdAT", &fdat);
        seq += 2;
    }
    chunk(&mut out, b"IEND", &[]);
    out
}

fn riff_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

fn u24(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes()[..3]);
}

/// The VP8L chunk (header included) of a lossless WebP encoding of `img`.
fn vp8l_chunk(img: &RgbaImage) -> Vec<u8> {
    let mut file = Vec::new();
    WebPEncoder::new_lossless(&mut file)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgba8,
        )
        .unwrap();
    let mut at = 12;
    while at + 8 <= file.len() {
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        let end = at + 8 + len + len % 2;
        if &file[at..at + 4] == b"VP8L" {
            return file[at..end.min(file.len())].to_vec();
        }
        at = end;
    }
    panic!("no VP8L chunk in the encoder's output");
}

pub fn animated_webp() -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x02 | 0x10, 0, 0, 0]; // animation, alpha
    u24(&mut vp8x, W - 1);
    u24(&mut vp8x, H - 1);
    riff_chunk(&mut body, b"VP8X", &vp8x);
    riff_chunk(&mut body, b"ANIM", &[0, 0, 0, 0, 0, 0]);
    // x and y offsets are stored halved: the partial frame sits at an even (PX, PY).
    let (px, py) = (PX, PY - 1);
    for (rect, colour, delay) in [
        ((W, H, 0, 0), RED, DELAYS[0]),
        ((W, H, 0, 0), GREEN, DELAYS[1]),
        ((PW, PH, px, py), BLUE, DELAYS[2]),
    ] {
        let mut anmf = Vec::new();
        u24(&mut anmf, rect.2 / 2);
        u24(&mut anmf, rect.3 / 2);
        u24(&mut anmf, rect.0 - 1);
        u24(&mut anmf, rect.1 - 1);
        u24(&mut anmf, delay);
        anmf.push(0b10); // do not blend, no disposal
        anmf.extend_from_slice(&vp8l_chunk(&solid(rect.0, rect.1, colour)));
        riff_chunk(&mut body, b"ANMF", &anmf);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// WebP offsets are even, so its partial frame is one row higher than the others'.
fn expected_webp(n: usize) -> RgbaImage {
    let mut img = expected(n.min(1));
    if n == 2 {
        for y in PY - 1..PY - 1 + PH {
            for x in PX..PX + PW {
                img.put_pixel(x, y, Rgba(BLUE));
            }
        }
    }
    img
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("pixcache-anim-{name}-{}", std::process::id()));
        drop(std::fs::remove_dir_all(&p));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        drop(std::fs::remove_dir_all(&self.0));
    }
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn last_error() -> String {
    // SAFETY: pixcache_last_error never returns NULL; the text lives until the next call.
    unsafe { CStr::from_ptr(pixcache_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn frames(path: &Path, cap: usize) -> Result<(usize, Vec<u32>), PixcacheResult> {
    let p = c_path(path);
    let mut count = usize::MAX;
    let mut delays = vec![u32::MAX; cap + 2];
    // SAFETY: `p` is NUL-terminated; `delays` has `cap` (+2) writable elements.
    let ok = unsafe { pixcache_image_frames(p.as_ptr(), &mut count, delays.as_mut_ptr(), cap) };
    if !ok {
        assert_eq!(count, 0);
        return Err(pixcache_last_result());
    }
    // Nothing past `cap` is written.
    assert_eq!(&delays[cap..], &[u32::MAX, u32::MAX]);
    delays.truncate(cap.min(count));
    Ok((count, delays))
}

/// Frame `n` as packed RGBA8888 rows, or the failure's code.
fn frame(path: &Path, n: usize, format: u32) -> Result<(u32, u32, u32, Vec<u8>), PixcacheResult> {
    let p = c_path(path);
    // SAFETY: `p` is NUL-terminated.
    let pm = unsafe { pixcache_pixmap_load_frame(p.as_ptr(), n, format) };
    if pm.is_null() {
        return Err(pixcache_last_result());
    }
    let out = read(pm);
    // SAFETY: a live handle, freed once.
    unsafe { pixcache_pixmap_free(pm) };
    Ok(out)
}

fn read(pm: *mut PixcachePixmap) -> (u32, u32, u32, Vec<u8>) {
    // SAFETY: `pm` is a live handle; its pixels are height x stride bytes.
    unsafe {
        let (w, h, f) = (
            pixcache_pixmap_width(pm),
            pixcache_pixmap_height(pm),
            pixcache_pixmap_format(pm),
        );
        let stride = pixcache_pixmap_stride(pm);
        let bpp = if f == PIXCACHE_FORMAT_RGB888 { 3 } else { 4 };
        let px = std::slice::from_raw_parts(pixcache_pixmap_pixels(pm), stride * h as usize);
        let packed = px
            .chunks(stride)
            .flat_map(|r| &r[..w as usize * bpp])
            .copied()
            .collect();
        (w, h, f, packed)
    }
}

fn check_animation(name: &str, bytes: &[u8], expect: fn(usize) -> RgbaImage) {
    let dir = Dir::new(name);
    let path = dir.write(name, bytes);
    assert_eq!(frames(&path, 8), Ok((3, DELAYS.to_vec())), "{name}");
    // A short delay buffer gets the first delays; the count is still the whole.
    assert_eq!(frames(&path, 2), Ok((3, DELAYS[..2].to_vec())), "{name}");
    assert_eq!(frames(&path, 0), Ok((3, vec![])), "{name}");
    for n in 0..3 {
        let (w, h, f, px) = frame(&path, n, 0).unwrap();
        assert_eq!(
            (w, h, f),
            (W, H, PIXCACHE_FORMAT_RGBA8888),
            "{name} frame {n}"
        );
        assert_eq!(px, expect(n).into_raw(), "{name} frame {n}");
    }
    // Converted on request.
    let (_, _, f, px) = frame(&path, 2, PIXCACHE_FORMAT_RGB888).unwrap();
    assert_eq!(f, PIXCACHE_FORMAT_RGB888);
    assert_eq!(&px[..3], &expect(2).as_raw()[..3]);
    // Past the end: INVALID_ARGUMENT, saying how many frames there are.
    assert_eq!(frame(&path, 3, 0), Err(PixcacheResult::InvalidArgument));
    assert!(last_error().contains("3 frames"), "{}", last_error());
    assert_eq!(
        frame(&path, usize::MAX, 0),
        Err(PixcacheResult::InvalidArgument)
    );
    assert_eq!(frame(&path, 0, 99), Err(PixcacheResult::InvalidArgument));
}

#[test]
fn gif_frames() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    check_animation("a.gif", &gif(), expected);
}

#[test]
fn apng_frames() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    check_animation("a.png", &apng(), expected);
}

#[test]
fn animated_webp_frames() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    check_animation("a.webp", &animated_webp(), expected_webp);
}

#[test]
fn still_images_have_one_frame() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Dir::new("still");
    let mut png = Vec::new();
    solid(3, 2, RED)
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let path = dir.write("s.png", &png);
    assert_eq!(frames(&path, 4), Ok((1, vec![0])));
    let (w, h, f, px) = frame(&path, 0, 0).unwrap();
    assert_eq!((w, h, f), (3, 2, PIXCACHE_FORMAT_RGBA8888));
    assert_eq!(px, solid(3, 2, RED).into_raw());
    assert_eq!(frame(&path, 1, 0), Err(PixcacheResult::InvalidArgument));
    assert!(last_error().contains("1 frame"), "{}", last_error());

    // Not images, missing files, NULL.
    let junk = dir.write("junk.gif", b"GIF89a garbage");
    assert_eq!(frames(&junk, 1), Err(PixcacheResult::Decode));
    assert_eq!(frame(&junk, 0, 0), Err(PixcacheResult::Decode));
    let text = dir.write("t.txt", b"hello");
    assert_eq!(frames(&text, 1), Err(PixcacheResult::Decode));
    assert_eq!(
        frames(&dir.0.join("missing.gif"), 1),
        Err(PixcacheResult::Io)
    );
    let mut count = 7usize;
    // SAFETY: NULL arguments are documented errors.
    unsafe {
        assert!(!pixcache_image_frames(
            std::ptr::null(),
            &mut count,
            std::ptr::null_mut(),
            0
        ));
        assert_eq!(
            (pixcache_last_result(), count),
            (PixcacheResult::NullArgument, 0)
        );
        let p = c_path(&path);
        assert!(!pixcache_image_frames(
            p.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0
        ));
        assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
        assert!(!pixcache_image_frames(
            p.as_ptr(),
            &mut count,
            std::ptr::null_mut(),
            1
        ));
        assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
        assert!(pixcache_pixmap_load_frame(std::ptr::null(), 0, 0).is_null());
        assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
    }
}

/// A GIF of `frames` full frames of `size` x `size`, each its own grey.
fn long_gif(frames: u32, size: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        let all = (0..frames).map(|i| {
            let v = (i * 20) as u8;
            Frame::from_parts(
                solid(size, size, [v, v, v, 255]),
                0,
                0,
                Delay::from_numer_denom_ms(10, 1),
            )
        });
        enc.encode_frames(all).unwrap();
    }
    out
}

#[test]
fn frames_are_streamed_within_the_limits() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Dir::new("limits");
    let size = 64;
    let canvas = u64::from(size * size * 4);
    let path = dir.write("long.gif", &long_gif(12, size));
    // Twelve frames are 12 canvases; the limit allows 6: streaming reaches the last one.
    pixcache_set_decode_limits(0, 0, 6 * canvas);
    let got = frames(&path, 0).map(|(n, _)| n);
    let last = frame(&path, 11, 0).map(|(_, _, _, px)| px[0]);
    // Below the 5 canvases an animation decoder may hold: refused before decoding.
    pixcache_set_decode_limits(0, 0, 4 * canvas);
    let small = frame(&path, 0, 0).map(|_| ());
    let small_msg = last_error();
    // The width limit applies to animations too.
    pixcache_set_decode_limits(size - 1, 0, 0);
    let narrow = frames(&path, 0).map(|(n, _)| n);
    pixcache_set_decode_limits(0, 0, 0);
    assert_eq!(got, Ok(12));
    assert_eq!(last, Ok(220));
    assert_eq!(small, Err(PixcacheResult::TooLarge), "{small_msg}");
    assert_eq!(narrow, Err(PixcacheResult::TooLarge));
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Writes tests/fixtures/anim.{gif,png,webp} (run by scripts/make-fixtures.sh).
#[test]
#[ignore = "writes the committed fixtures; run by scripts/make-fixtures.sh"]
fn write_fixtures() {
    let dir = fixtures();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("anim.gif"), gif()).unwrap();
    std::fs::write(dir.join("anim.png"), apng()).unwrap();
    std::fs::write(dir.join("anim.webp"), animated_webp()).unwrap();
}

/// The committed fixtures are what this file builds (so the C test checks the same frames).
#[test]
fn fixtures_are_current() {
    let dir = fixtures();
    assert_eq!(std::fs::read(dir.join("anim.gif")).unwrap(), gif());
    assert_eq!(std::fs::read(dir.join("anim.png")).unwrap(), apng());
    assert_eq!(
        std::fs::read(dir.join("anim.webp")).unwrap(),
        animated_webp()
    );
}

/// tests/fixtures/libwebp.webp: made by libwebp's img2webp (scripts/make-fixtures.sh) from
/// three lossless 4x4 frames: red, green, then green with a blue top-left 2x2 block, delays
/// 100, 50, 250 ms. libwebp stores frame 3 as a 2x2 sub-rectangle, frames 2 and 3 "blended".
#[test]
fn libwebp_fixture_decodes() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = fixtures().join("libwebp.webp");
    assert_eq!(frames(&path, 4), Ok((3, vec![100, 50, 250])));
    let canvas = |n: usize| -> Vec<u8> {
        (0..16)
            .flat_map(|i| {
                let (x, y) = (i % 4, i / 4);
                match n {
                    0 => RED,
                    _ if n == 2 && x < 2 && y < 2 => BLUE,
                    _ => GREEN,
                }
            })
            .collect()
    };
    for n in 0..3 {
        let (w, h, _, px) = frame(&path, n, PIXCACHE_FORMAT_RGBA8888).unwrap();
        assert_eq!((w, h), (4, 4));
        // image-webp 0.2 blends an opaque frame over the canvas with a rounding error of 1
        // (255 becomes 254) when libwebp marks it "blend": allowed here, nothing more.
        let worst = px.iter().zip(canvas(n)).map(|(a, b)| a.abs_diff(b)).max();
        assert!(worst <= Some(1), "frame {n}: {px:?}");
    }
}
