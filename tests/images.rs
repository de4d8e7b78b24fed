//! Image decoding and encoding through the C API (`pixcache_pixmap_load*`, `_save`, `_convert`,
//! `pixcache_set_decode_limits`), fed with images this test encodes itself with the `image`
//! crate: exact round trips for the lossless formats, the `_as` conversions, truncated and
//! corrupted inputs, decompression-bomb headers, the process-wide decoding limits, and saving.
//!
//! The decoding limits are process-wide and the tests of this file run on parallel threads:
//! every test holds [`LIMITS`] for reading, and the one test that changes the limits holds it
//! for writing, so no decode ever runs under limits it did not expect.
//!
//! A tracking global allocator records, per thread, the largest single allocation requested, so
//! the bomb tests can check that a header claiming gigabytes makes no gigabyte allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use image::{
    DynamicImage, GrayAlphaImage, GrayImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba,
    RgbaImage,
};
use pixcache::ffi::error::{pixcache_last_error, pixcache_last_result, PixcacheResult};
use pixcache::ffi::pixmap::{
    pixcache_pixmap_convert, pixcache_pixmap_depth, pixcache_pixmap_format, pixcache_pixmap_free,
    pixcache_pixmap_height, pixcache_pixmap_load, pixcache_pixmap_load_as,
    pixcache_pixmap_load_from_memory, pixcache_pixmap_load_from_memory_as, pixcache_pixmap_new,
    pixcache_pixmap_new_null, pixcache_pixmap_pixels, pixcache_pixmap_pixels_mut,
    pixcache_pixmap_save, pixcache_pixmap_stride, pixcache_pixmap_width, pixcache_pixmap_wrap,
    pixcache_set_decode_limits, PixcacheFormat, PixcachePixmap, PIXCACHE_FORMAT_BGRA8888,
    PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED, PIXCACHE_FORMAT_BGRX8888, PIXCACHE_FORMAT_GRAY8,
    PIXCACHE_FORMAT_RGB888, PIXCACHE_FORMAT_RGBA8888, PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED,
};

// ---------------------------------------------------------------------------------------------
// Allocation tracking

/// Forwards to the system allocator, noting the largest request made by each thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations made while the thread is being torn down are simply not noted.
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size);
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are ours; noting a size touches only a `Cell` in a const-initialised thread local,
// which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through it) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as `dealloc`, and the caller upholds `realloc`'s contract for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f`, returning its result, the time it took and the largest single allocation it (or
/// anything else on this thread) requested meanwhile.
fn measured<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    LARGEST.with(|l| l.set(0));
    let start = Instant::now();
    let value = f();
    let elapsed = start.elapsed();
    (value, elapsed, LARGEST.with(Cell::get))
}

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Serialising the process-wide decoding limits

static LIMITS: RwLock<()> = RwLock::new(());

/// Held by every test that decodes under the default limits.
fn default_limits() -> RwLockReadGuard<'static, ()> {
    LIMITS.read().unwrap_or_else(|e| e.into_inner())
}

/// Held by the one test that changes the limits.
fn exclusive_limits() -> RwLockWriteGuard<'static, ()> {
    LIMITS.write().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Pixmap handles

/// An owned pixmap handle, freed with `pixcache_pixmap_free` on drop.
struct Pm(NonNull<PixcachePixmap>);

impl Drop for Pm {
    fn drop(&mut self) {
        // SAFETY: the handle came from pixcache, is live, and this is its only owner.
        unsafe { pixcache_pixmap_free(self.0.as_ptr()) }
    }
}

impl Pm {
    fn ptr(&self) -> *const PixcachePixmap {
        self.0.as_ptr()
    }

    fn width(&self) -> u32 {
        // SAFETY: a live handle.
        unsafe { pixcache_pixmap_width(self.ptr()) }
    }

    fn height(&self) -> u32 {
        // SAFETY: a live handle.
        unsafe { pixcache_pixmap_height(self.ptr()) }
    }

    fn format(&self) -> PixcacheFormat {
        // SAFETY: a live handle.
        unsafe { pixcache_pixmap_format(self.ptr()) }
    }

    fn depth(&self) -> u32 {
        // SAFETY: a live handle.
        unsafe { pixcache_pixmap_depth(self.ptr()) }
    }

    fn stride(&self) -> usize {
        // SAFETY: a live handle.
        unsafe { pixcache_pixmap_stride(self.ptr()) }
    }

    /// All `height * stride` bytes of a raster pixmap.
    fn bytes(&self) -> &[u8] {
        // SAFETY: a live handle.
        let px = unsafe { pixcache_pixmap_pixels(self.ptr()) };
        assert!(!px.is_null(), "a decoded pixmap has no pixels");
        let len = self.stride() * self.height() as usize;
        // SAFETY: pixcache documents `height` rows of `stride` bytes at `px`, valid while the
        // handle is neither modified nor freed, which `&self` guarantees for the slice's life.
        unsafe { std::slice::from_raw_parts(px, len) }
    }

    /// Row `y` without its padding.
    fn row(&self, y: u32) -> &[u8] {
        let bpp = bytes_per_pixel(self.format());
        let start = y as usize * self.stride();
        &self.bytes()[start..start + self.width() as usize * bpp]
    }

    /// The packed pixels (rows without padding), for comparing with an `image` buffer.
    fn packed(&self) -> Vec<u8> {
        (0..self.height())
            .flat_map(|y| self.row(y).to_vec())
            .collect()
    }

    fn pixel(&self, x: u32, y: u32) -> Vec<u8> {
        let bpp = bytes_per_pixel(self.format());
        self.row(y)[x as usize * bpp..(x as usize + 1) * bpp].to_vec()
    }

    /// Checks what every raster pixmap must satisfy, and reads every byte.
    fn check_invariants(&self, what: &str) {
        let (w, h, f) = (self.width(), self.height(), self.format());
        assert!(w > 0 && h > 0, "{what}: a decoded pixmap is {w}x{h}");
        assert!(
            (1..=4).contains(&f) || (6..=8).contains(&f),
            "{what}: format {f}"
        );
        let row = w as usize * bytes_per_pixel(f);
        assert_eq!(
            self.stride(),
            (row + 3) & !3,
            "{what}: stride of {w}x{h} format {f}"
        );
        assert_eq!(self.depth() as usize, bytes_per_pixel(f) * 8);
        let sum: u64 = self.bytes().iter().map(|&b| u64::from(b)).sum();
        std::hint::black_box(sum);
    }
}

fn bytes_per_pixel(format: PixcacheFormat) -> usize {
    match format {
        PIXCACHE_FORMAT_RGBA8888
        | PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED
        | PIXCACHE_FORMAT_BGRA8888
        | PIXCACHE_FORMAT_BGRX8888
        | PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED => 4,
        PIXCACHE_FORMAT_RGB888 => 3,
        PIXCACHE_FORMAT_GRAY8 => 1,
        other => panic!("not a raster format: {other}"),
    }
}

/// A failed call: its result code and message.
#[derive(Debug)]
struct Failure {
    code: PixcacheResult,
    message: String,
}

/// Turns what a pixcache call returned into a handle or the thread's last error, checking that
/// the last error agrees with the return value.
fn outcome(ptr: *mut PixcachePixmap) -> Result<Pm, Failure> {
    let code = pixcache_last_result();
    // SAFETY: pixcache_last_error never returns NULL and its text is NUL-terminated and valid
    // until the next pixcache call on this thread; it is copied at once.
    let message = unsafe { CStr::from_ptr(pixcache_last_error()) }
        .to_string_lossy()
        .into_owned();
    match NonNull::new(ptr) {
        Some(p) => {
            let pm = Pm(p);
            assert_eq!(code, PixcacheResult::Ok, "a handle came with an error");
            assert_eq!(message, "", "a handle came with an error message");
            Ok(pm)
        }
        None => {
            assert_ne!(code, PixcacheResult::Ok, "NULL came without an error");
            assert!(!message.is_empty(), "NULL came without an error message");
            Err(Failure { code, message })
        }
    }
}

fn decode(data: &[u8]) -> Result<Pm, Failure> {
    // SAFETY: `data` is a live slice: non-NULL (even when empty) with `len` readable bytes.
    outcome(unsafe { pixcache_pixmap_load_from_memory(data.as_ptr(), data.len()) })
}

fn decode_as(data: &[u8], format: PixcacheFormat) -> Result<Pm, Failure> {
    // SAFETY: as in `decode`.
    outcome(unsafe { pixcache_pixmap_load_from_memory_as(data.as_ptr(), data.len(), format) })
}

fn convert(pm: &Pm, format: PixcacheFormat) -> Result<Pm, Failure> {
    // SAFETY: a live handle.
    outcome(unsafe { pixcache_pixmap_convert(pm.ptr(), format) })
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn load_file(path: &Path) -> Result<Pm, Failure> {
    let path = c_path(path);
    // SAFETY: a NUL-terminated string that outlives the call.
    outcome(unsafe { pixcache_pixmap_load(path.as_ptr()) })
}

fn load_file_as(path: &Path, format: PixcacheFormat) -> Result<Pm, Failure> {
    let path = c_path(path);
    // SAFETY: as in `load_file`.
    outcome(unsafe { pixcache_pixmap_load_as(path.as_ptr(), format) })
}

/// Saves `pm` to `path`: Ok, or the failure's code.
fn save(pm: &Pm, path: &Path) -> Result<(), PixcacheResult> {
    let path = c_path(path);
    // SAFETY: a live handle and a NUL-terminated string that outlive the call.
    let ok = unsafe { pixcache_pixmap_save(pm.ptr(), path.as_ptr()) };
    let code = pixcache_last_result();
    assert_eq!(
        ok,
        code == PixcacheResult::Ok,
        "save returned {ok} with {code:?}"
    );
    if ok {
        Ok(())
    } else {
        Err(code)
    }
}

fn expect_ok(r: Result<Pm, Failure>, what: &str) -> Pm {
    match r {
        Ok(pm) => pm,
        Err(f) => panic!("{what}: {:?}: {}", f.code, f.message),
    }
}

fn expect_err(r: Result<Pm, Failure>, what: &str) -> Failure {
    match r {
        Ok(pm) => panic!(
            "{what}: decoded a {}x{} pixmap of format {}, expected an error",
            pm.width(),
            pm.height(),
            pm.format()
        ),
        Err(f) => f,
    }
}

// ---------------------------------------------------------------------------------------------
// Test images

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .unwrap_or_else(|e| panic!("encoding {:?} as {format:?}: {e}", image.color()));
    out.into_inner()
}

/// An RGBA pattern with varied colour and alpha (including 0 and 255).
fn rgba_pattern(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        Rgba([
            (x * 37 + y * 11) as u8,
            (x * 5 + y * 53) as u8,
            (x * y * 7 + 3) as u8,
            match (x + y) % 5 {
                0 => 255,
                1 => 0,
                2 => 128,
                _ => (x * 29 + y * 17 + 1) as u8,
            },
        ])
    })
}

fn rgb_pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 41 + y) as u8, (y * 23 + 7) as u8, (x * y + 90) as u8])
    })
}

fn gray_pattern(w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| Luma([(x * 19 + y * 31 + 5) as u8]))
}

/// Opaque RGBA from a small palette, plus fully transparent black: what a GIF keeps exactly.
fn palette_pattern(w: u32, h: u32) -> RgbaImage {
    const COLOURS: [[u8; 4]; 6] = [
        [255, 0, 0, 255],
        [0, 255, 0, 255],
        [0, 0, 255, 255],
        [12, 34, 56, 255],
        [250, 250, 250, 255],
        [0, 0, 0, 0],
    ];
    RgbaImage::from_fn(w, h, |x, y| Rgba(COLOURS[((x / 2 + y * 3) % 6) as usize]))
}

/// Asserts that `pm` holds exactly `expected_packed` (tightly packed rows), row by row, with
/// the given size and format and rows padded to a 4-byte stride.
fn assert_pixels(pm: &Pm, w: u32, h: u32, format: PixcacheFormat, expected_packed: &[u8]) {
    assert_eq!(
        (pm.width(), pm.height(), pm.format()),
        (w, h, format),
        "size or format"
    );
    let row = w as usize * bytes_per_pixel(format);
    assert_eq!(pm.stride(), (row + 3) & !3, "stride");
    assert_eq!(pm.stride() % 4, 0);
    assert_eq!(pm.bytes().len(), pm.stride() * h as usize);
    for y in 0..h {
        let expected = &expected_packed[y as usize * row..(y as usize + 1) * row];
        assert_eq!(pm.row(y), expected, "row {y}");
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Exact round trips

#[test]
fn png_round_trips_exactly_in_the_natural_format() {
    let _limits = default_limits();
    // Odd widths so RGB888 and GRAY8 rows need padding (15 -> 16 and 5 -> 8 bytes).
    let rgba = rgba_pattern(7, 5);
    let pm = expect_ok(
        decode(&encode(&rgba.clone().into(), ImageFormat::Png)),
        "RGBA8 PNG",
    );
    assert_pixels(&pm, 7, 5, PIXCACHE_FORMAT_RGBA8888, rgba.as_raw());
    assert_eq!(pm.depth(), 32);

    let rgb = rgb_pattern(5, 3);
    let pm = expect_ok(
        decode(&encode(&rgb.clone().into(), ImageFormat::Png)),
        "RGB8 PNG",
    );
    assert_pixels(&pm, 5, 3, PIXCACHE_FORMAT_RGB888, rgb.as_raw());
    assert_eq!((pm.stride(), pm.depth()), (16, 24));

    let gray = gray_pattern(5, 3);
    let pm = expect_ok(
        decode(&encode(&gray.clone().into(), ImageFormat::Png)),
        "L8 PNG",
    );
    assert_pixels(&pm, 5, 3, PIXCACHE_FORMAT_GRAY8, gray.as_raw());
    assert_eq!((pm.stride(), pm.depth()), (8, 8));

    // Every width from 1 to 9, so every padding amount (0 to 3 bytes) is seen for both.
    for w in 1..=9 {
        let rgb = rgb_pattern(w, 2);
        let pm = expect_ok(
            decode(&encode(&rgb.clone().into(), ImageFormat::Png)),
            "RGB8",
        );
        assert_pixels(&pm, w, 2, PIXCACHE_FORMAT_RGB888, rgb.as_raw());
        let gray = gray_pattern(w, 2);
        let pm = expect_ok(
            decode(&encode(&gray.clone().into(), ImageFormat::Png)),
            "L8",
        );
        assert_pixels(&pm, w, 2, PIXCACHE_FORMAT_GRAY8, gray.as_raw());
    }

    // Other PNG colour types reach the natural formats too: grey+alpha becomes RGBA8888 (grey
    // replicated), 16-bit colour RGB888 and 16-bit grey GRAY8 (values multiples of 257 map
    // exactly to v / 257).
    let la = GrayAlphaImage::from_fn(3, 2, |x, y| {
        image::LumaA([(x * 70 + y) as u8, (y * 99) as u8])
    });
    let pm = expect_ok(decode(&encode(&la.clone().into(), ImageFormat::Png)), "LA8");
    let expected: Vec<u8> = la
        .pixels()
        .flat_map(|p| [p.0[0], p.0[0], p.0[0], p.0[1]])
        .collect();
    assert_pixels(&pm, 3, 2, PIXCACHE_FORMAT_RGBA8888, &expected);

    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(3, 2, |x, y| {
        Rgb([(x * 40) as u16 * 257, (y * 90) as u16 * 257, 255 * 257])
    });
    let pm = expect_ok(
        decode(&encode(
            &DynamicImage::ImageRgb16(rgb16.clone()),
            ImageFormat::Png,
        )),
        "RGB16",
    );
    let expected: Vec<u8> = rgb16.as_raw().iter().map(|&v| (v / 257) as u8).collect();
    assert_pixels(&pm, 3, 2, PIXCACHE_FORMAT_RGB888, &expected);

    let l16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(3, 2, |x, y| Luma([(x * 50 + y * 7) as u16 * 257]));
    let pm = expect_ok(
        decode(&encode(
            &DynamicImage::ImageLuma16(l16.clone()),
            ImageFormat::Png,
        )),
        "L16",
    );
    let expected: Vec<u8> = l16.as_raw().iter().map(|&v| (v / 257) as u8).collect();
    assert_pixels(&pm, 3, 2, PIXCACHE_FORMAT_GRAY8, &expected);
}

#[test]
fn bmp_round_trips_exactly() {
    let _limits = default_limits();
    // 24-bit BMP: RGB888 (BMP rows are padded to 4 bytes in the file too: a different layout).
    for w in [1, 2, 3, 5, 8] {
        let rgb = rgb_pattern(w, 3);
        let pm = expect_ok(
            decode(&encode(&rgb.clone().into(), ImageFormat::Bmp)),
            "BMP24",
        );
        assert_pixels(&pm, w, 3, PIXCACHE_FORMAT_RGB888, rgb.as_raw());
    }
    // 32-bit BMP with alpha: RGBA8888, alpha kept.
    let rgba = rgba_pattern(5, 4);
    let pm = expect_ok(
        decode(&encode(&rgba.clone().into(), ImageFormat::Bmp)),
        "BMP32",
    );
    assert_pixels(&pm, 5, 4, PIXCACHE_FORMAT_RGBA8888, rgba.as_raw());
    // 8-bit grey BMP (a grey palette): palette data decodes as colour, RGB888 with r = g = b
    // (so qGray gives the grey back exactly: (11 + 16 + 5) * v / 32 = v).
    let gray = gray_pattern(5, 3);
    let pm = expect_ok(
        decode(&encode(&gray.clone().into(), ImageFormat::Bmp)),
        "BMP8",
    );
    let expected: Vec<u8> = gray.as_raw().iter().flat_map(|&v| [v, v, v]).collect();
    assert_pixels(&pm, 5, 3, PIXCACHE_FORMAT_RGB888, &expected);
    let back = expect_ok(convert(&pm, PIXCACHE_FORMAT_GRAY8), "to gray");
    assert_pixels(&back, 5, 3, PIXCACHE_FORMAT_GRAY8, gray.as_raw());
}

#[test]
fn gif_first_frame_round_trips_exactly() {
    let _limits = default_limits();
    // Six colours (one of them fully transparent black) fit a GIF palette exactly.
    for (w, h) in [(1, 1), (6, 4), (13, 7), (64, 64)] {
        let img = palette_pattern(w, h);
        let pm = expect_ok(
            decode(&encode(&img.clone().into(), ImageFormat::Gif)),
            "GIF",
        );
        // GIF always decodes with alpha.
        assert_pixels(&pm, w, h, PIXCACHE_FORMAT_RGBA8888, img.as_raw());
    }
    // An animated GIF: only the first frame is decoded.
    let first = palette_pattern(4, 3);
    let second = RgbaImage::from_pixel(4, 3, Rgba([9, 9, 9, 255]));
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        for f in [&first, &second] {
            enc.encode_frame(image::Frame::new(f.clone())).unwrap();
        }
    }
    let pm = expect_ok(decode(&out), "animated GIF");
    assert_pixels(&pm, 4, 3, PIXCACHE_FORMAT_RGBA8888, first.as_raw());
}

#[test]
fn webp_lossless_round_trips_exactly() {
    let _limits = default_limits();
    // image 0.25's own WebP encoder is lossless only (VP8L), which is what this needs.
    let rgba = rgba_pattern(9, 7);
    let data = encode(&rgba.clone().into(), ImageFormat::WebP);
    let pm = expect_ok(decode(&data), "RGBA WebP");
    // VP8L keeps the colour of fully transparent pixels, so the comparison is exact.
    assert_pixels(&pm, 9, 7, PIXCACHE_FORMAT_RGBA8888, rgba.as_raw());

    let rgb = rgb_pattern(5, 3);
    let pm = expect_ok(
        decode(&encode(&rgb.clone().into(), ImageFormat::WebP)),
        "RGB WebP",
    );
    assert_pixels(&pm, 5, 3, PIXCACHE_FORMAT_RGB888, rgb.as_raw());
}

#[test]
fn ico_round_trips_exactly() {
    let _limits = default_limits();
    // image's ICO encoder embeds a PNG; its decoder accepts only RGBA PNGs inside an ICO.
    for (w, h) in [(1, 1), (7, 5), (16, 16), (48, 48)] {
        let rgba = rgba_pattern(w, h);
        let pm = expect_ok(
            decode(&encode(&rgba.clone().into(), ImageFormat::Ico)),
            "ICO",
        );
        assert_pixels(&pm, w, h, PIXCACHE_FORMAT_RGBA8888, rgba.as_raw());
    }
    // A classic BMP-in-ICO (32-bit BGRA, bottom-up, with an AND mask), built by hand.
    let rgba = rgba_pattern(5, 3);
    let pm = expect_ok(decode(&bmp_ico(&rgba)), "BMP-in-ICO");
    assert_pixels(&pm, 5, 3, PIXCACHE_FORMAT_RGBA8888, rgba.as_raw());
}

/// A one-entry ICO holding a 32-bit BMP of `img` (AND mask all zero: alpha is in the pixels).
fn bmp_ico(img: &RgbaImage) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let mask_row = w.div_ceil(32) * 4;
    let mut dib = Vec::new();
    dib.extend_from_slice(&40u32.to_le_bytes());
    dib.extend_from_slice(&(w as i32).to_le_bytes());
    dib.extend_from_slice(&(2 * h as i32).to_le_bytes()); // XOR image + AND mask
    dib.extend_from_slice(&1u16.to_le_bytes()); // planes
    dib.extend_from_slice(&32u16.to_le_bytes()); // bits per pixel
    dib.extend_from_slice(&0u32.to_le_bytes()); // BI_RGB
    dib.extend_from_slice(&(w * h * 4 + mask_row * h).to_le_bytes());
    dib.extend_from_slice(&[0; 16]); // resolution, colours used, colours important
    for y in (0..h).rev() {
        for x in 0..w {
            let [r, g, b, a] = img.get_pixel(x, y).0;
            dib.extend_from_slice(&[b, g, r, a]);
        }
    }
    dib.extend(std::iter::repeat_n(0u8, (mask_row * h) as usize));
    let mut ico = vec![0, 0, 1, 0, 1, 0];
    ico.extend_from_slice(&[w as u8, h as u8, 0, 0]);
    ico.extend_from_slice(&1u16.to_le_bytes());
    ico.extend_from_slice(&32u16.to_le_bytes());
    ico.extend_from_slice(&(dib.len() as u32).to_le_bytes());
    ico.extend_from_slice(&22u32.to_le_bytes());
    ico.extend_from_slice(&dib);
    ico
}

#[test]
fn jpeg_keeps_size_and_approximate_colours() {
    let _limits = default_limits();
    // Four 16x16 quadrants of flat colour (whole MCUs even with 4:2:0 chroma subsampling).
    const QUADRANTS: [[u8; 3]; 4] = [[200, 30, 40], [20, 180, 60], [40, 60, 220], [128, 128, 128]];
    let img = RgbImage::from_fn(32, 32, |x, y| {
        Rgb(QUADRANTS[(x / 16 + 2 * (y / 16)) as usize])
    });
    let pm = expect_ok(decode(&encode(&img.into(), ImageFormat::Jpeg)), "JPEG");
    assert_eq!(
        (pm.width(), pm.height(), pm.format()),
        (32, 32, PIXCACHE_FORMAT_RGB888)
    );
    for (i, colour) in QUADRANTS.iter().enumerate() {
        let (x, y) = (8 + 16 * (i as u32 % 2), 8 + 16 * (i as u32 / 2));
        let got = pm.pixel(x, y);
        for c in 0..3 {
            let d = (i32::from(got[c]) - i32::from(colour[c])).abs();
            assert!(d <= 12, "quadrant {i} at ({x},{y}): {got:?} vs {colour:?}");
        }
    }
    // A grey JPEG decodes to GRAY8, rows padded (13 -> 16 bytes).
    let gray = GrayImage::from_pixel(13, 9, Luma([77]));
    let pm = expect_ok(
        decode(&encode(&gray.into(), ImageFormat::Jpeg)),
        "grey JPEG",
    );
    assert_eq!(
        (pm.width(), pm.height(), pm.format(), pm.stride()),
        (13, 9, PIXCACHE_FORMAT_GRAY8, 16)
    );
    assert!(pm.packed().iter().all(|&v| v.abs_diff(77) <= 3));
}

#[test]
fn files_load_through_the_path_api() {
    let _limits = default_limits();
    let dir = TempDir::new("load");
    let rgb = rgb_pattern(6, 5);
    let path = dir.path().join("pic.png");
    std::fs::write(&path, encode(&rgb.clone().into(), ImageFormat::Png)).unwrap();
    let pm = expect_ok(load_file(&path), "load");
    assert_pixels(&pm, 6, 5, PIXCACHE_FORMAT_RGB888, rgb.as_raw());
    // The format comes from the contents, not the extension.
    let misnamed = dir.path().join("really-a-png.jpg");
    std::fs::write(&misnamed, encode(&rgb.clone().into(), ImageFormat::Png)).unwrap();
    let pm = expect_ok(load_file(&misnamed), "misnamed");
    assert_pixels(&pm, 6, 5, PIXCACHE_FORMAT_RGB888, rgb.as_raw());
    let pm = expect_ok(load_file_as(&path, PIXCACHE_FORMAT_GRAY8), "load_as");
    let expected: Vec<u8> = rgb.pixels().map(|p| gray(p.0[0], p.0[1], p.0[2])).collect();
    assert_pixels(&pm, 6, 5, PIXCACHE_FORMAT_GRAY8, &expected);

    let f = expect_err(load_file(&dir.path().join("missing.png")), "missing file");
    assert_eq!(f.code, PixcacheResult::Io, "{}", f.message);
    let f = expect_err(load_file(dir.path()), "a directory");
    assert_eq!(f.code, PixcacheResult::Io, "{}", f.message);
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"this is not an image at all").unwrap();
    let f = expect_err(load_file(&junk), "junk");
    assert!(
        matches!(f.code, PixcacheResult::Decode | PixcacheResult::Io),
        "{f:?}"
    );
    let f = expect_err(load_file_as(&path, 0), "format 0");
    assert_eq!(f.code, PixcacheResult::InvalidArgument);
    // SAFETY: NULL is a documented argument (reported as NULL_ARGUMENT).
    let f = expect_err(
        outcome(unsafe { pixcache_pixmap_load(ptr::null()) }),
        "NULL",
    );
    assert_eq!(f.code, PixcacheResult::NullArgument);
}

#[test]
fn bad_memory_arguments_are_reported() {
    let _limits = default_limits();
    let png = encode(&rgb_pattern(2, 2).into(), ImageFormat::Png);
    // SAFETY: NULL data is a documented error, never dereferenced.
    let f = expect_err(
        outcome(unsafe { pixcache_pixmap_load_from_memory(ptr::null(), 0) }),
        "NULL data",
    );
    assert_eq!(f.code, PixcacheResult::NullArgument);
    // SAFETY: as above.
    let f = expect_err(
        outcome(unsafe { pixcache_pixmap_load_from_memory_as(ptr::null(), 0, 1) }),
        "NULL data (as)",
    );
    assert_eq!(f.code, PixcacheResult::NullArgument);
    let f = expect_err(decode(&[]), "empty");
    assert_eq!(f.code, PixcacheResult::Decode);
    let f = expect_err(decode(b"plain text, not an image"), "text");
    assert_eq!(f.code, PixcacheResult::Decode);
    for bad in [0, 5, 9, 99, u32::MAX] {
        let f = expect_err(decode_as(&png, bad), "bad format");
        assert_eq!(f.code, PixcacheResult::InvalidArgument, "format {bad}");
    }
    // A recognised but not enabled format (TIFF's signature) is a decoding error.
    let f = expect_err(decode(b"II*\0\x08\0\0\0\0\0\0\0\0\0\0\0"), "TIFF");
    assert_eq!(f.code, PixcacheResult::Decode);
}

// ---------------------------------------------------------------------------------------------
// 2. The `_as` variants and the conversion rules of src/images/convert.rs

/// Qt's `qPremultiply`: `t = c * a; c' = (t + (t >> 8) + 0x80) >> 8`.
fn premultiply(c: u8, a: u8) -> u8 {
    let t = u32::from(c) * u32::from(a);
    ((t + (t >> 8) + 0x80) >> 8) as u8
}

/// `c = min(255, (c' * 255 + a / 2) / a)`, 0 when `a == 0`.
fn unpremultiply(c: u8, a: u8) -> u8 {
    if a == 0 {
        0
    } else {
        ((u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8
    }
}

/// Qt's `qGray`: `(r * 11 + g * 16 + b * 5) / 32`.
fn gray(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 11 + u32::from(g) * 16 + u32::from(b) * 5) / 32) as u8
}

/// One straight RGBA pixel as `format` stores it, per the rules on `PixcacheFormat`: formats
/// without alpha drop it (the straight colour stays).
fn expected_pixel(format: PixcacheFormat, [r, g, b, a]: [u8; 4]) -> Vec<u8> {
    let p = |c| premultiply(c, a);
    match format {
        PIXCACHE_FORMAT_RGBA8888 => vec![r, g, b, a],
        PIXCACHE_FORMAT_BGRA8888 => vec![b, g, r, a],
        PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED => vec![p(b), p(g), p(r), a],
        PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED => vec![p(r), p(g), p(b), a],
        PIXCACHE_FORMAT_RGB888 => vec![r, g, b],
        PIXCACHE_FORMAT_BGRX8888 => vec![b, g, r, 255],
        PIXCACHE_FORMAT_GRAY8 => vec![gray(r, g, b)],
        other => panic!("format {other}"),
    }
}

/// One straight RGBA pixel composited over black, as RGB (what saving to BMP or JPEG writes).
fn over_black([r, g, b, a]: [u8; 4]) -> Vec<u8> {
    vec![premultiply(r, a), premultiply(g, a), premultiply(b, a)]
}

const FORMATS: [PixcacheFormat; 7] = [
    PIXCACHE_FORMAT_RGBA8888,
    PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED,
    PIXCACHE_FORMAT_RGB888,
    PIXCACHE_FORMAT_GRAY8,
    PIXCACHE_FORMAT_BGRA8888,
    PIXCACHE_FORMAT_BGRX8888,
    PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED,
];

#[test]
fn load_as_converts_to_every_format_by_the_documented_rules() {
    let _limits = default_limits();
    // Chosen pixels: opaque, half, fully transparent with colour, rounding cases, alpha 1.
    let chosen: [[u8; 4]; 8] = [
        [255, 0, 0, 255],
        [0, 255, 0, 128],
        [10, 20, 30, 0],
        [200, 100, 50, 200],
        [1, 2, 3, 1],
        [255, 255, 255, 127],
        [99, 180, 7, 254],
        [0, 0, 0, 255],
    ];
    let img = RgbaImage::from_fn(3, 3, |x, y| Rgba(chosen[((x + 3 * y) % 8) as usize]));
    let png = encode(&img.clone().into(), ImageFormat::Png);
    for format in FORMATS {
        let pm = expect_ok(decode_as(&png, format), "load_from_memory_as");
        assert_eq!((pm.width(), pm.height(), pm.format()), (3, 3, format));
        assert_eq!(pm.stride() % 4, 0);
        for (x, y, p) in img.enumerate_pixels() {
            assert_eq!(
                pm.pixel(x, y),
                expected_pixel(format, p.0),
                "format {format}, pixel {:?} at ({x},{y})",
                p.0
            );
        }
        // `_as` is the natural decode followed by `pixcache_pixmap_convert`.
        let natural = expect_ok(decode(&png), "natural");
        let converted = expect_ok(convert(&natural, format), "convert");
        assert_eq!(converted.packed(), pm.packed(), "format {format}");
    }

    // Back from premultiplied: unpremultiplying inverts premultiplying (here exactly, for
    // these pixels), and fully transparent pixels become 0.
    let bgra = expect_ok(
        decode_as(&png, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED),
        "bgra",
    );
    let straight = expect_ok(convert(&bgra, PIXCACHE_FORMAT_RGBA8888), "to straight");
    for (x, y, p) in img.enumerate_pixels() {
        let [r, g, b, a] = p.0;
        let expected = [
            unpremultiply(premultiply(r, a), a),
            unpremultiply(premultiply(g, a), a),
            unpremultiply(premultiply(b, a), a),
            a,
        ];
        assert_eq!(straight.pixel(x, y), expected, "({x},{y})");
        if a == 0 {
            assert_eq!(expected, [0, 0, 0, 0]);
        }
    }
    assert_eq!(straight.pixel(0, 0), [255, 0, 0, 255]);
    assert_eq!(straight.pixel(1, 0), [0, 255, 0, 128]);

    // Opaque colour (RGB888 natural) to every format: alpha 255, nothing to premultiply.
    let rgb = rgb_pattern(5, 3);
    let png = encode(&rgb.clone().into(), ImageFormat::Png);
    for format in FORMATS {
        let pm = expect_ok(decode_as(&png, format), "rgb as");
        for (x, y, p) in rgb.enumerate_pixels() {
            let [r, g, b] = p.0;
            assert_eq!(pm.pixel(x, y), expected_pixel(format, [r, g, b, 255]));
        }
    }

    // Grey to colour replicates the grey value; the same formats hold for a GIF, a BMP, etc.
    let grey = gray_pattern(5, 3);
    let png = encode(&grey.clone().into(), ImageFormat::Png);
    for format in FORMATS {
        let pm = expect_ok(decode_as(&png, format), "grey as");
        for (x, y, p) in grey.enumerate_pixels() {
            let v = p.0[0];
            let expected = match format {
                PIXCACHE_FORMAT_GRAY8 => vec![v],
                PIXCACHE_FORMAT_RGB888 => vec![v, v, v],
                _ => vec![v, v, v, 255],
            };
            assert_eq!(pm.pixel(x, y), expected, "format {format} ({x},{y})");
        }
    }
    let gif = encode(&palette_pattern(6, 4).into(), ImageFormat::Gif);
    for format in FORMATS {
        let pm = expect_ok(decode_as(&gif, format), "gif as");
        for (x, y, p) in palette_pattern(6, 4).enumerate_pixels() {
            assert_eq!(pm.pixel(x, y), expected_pixel(format, p.0));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Truncated and corrupted inputs

/// Small valid files of every format, named.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "png-rgba",
            encode(&rgba_pattern(7, 5).into(), ImageFormat::Png),
        ),
        (
            "png-gray",
            encode(&gray_pattern(9, 4).into(), ImageFormat::Png),
        ),
        (
            "gif",
            encode(&palette_pattern(8, 6).into(), ImageFormat::Gif),
        ),
        (
            "bmp-rgb",
            encode(&rgb_pattern(5, 4).into(), ImageFormat::Bmp),
        ),
        (
            "bmp-rgba",
            encode(&rgba_pattern(4, 3).into(), ImageFormat::Bmp),
        ),
        (
            "ico-png",
            encode(&rgba_pattern(6, 6).into(), ImageFormat::Ico),
        ),
        ("ico-bmp", bmp_ico(&rgba_pattern(5, 3))),
        (
            "webp",
            encode(&rgba_pattern(9, 7).into(), ImageFormat::WebP),
        ),
        (
            "jpeg",
            encode(&rgb_pattern(16, 16).into(), ImageFormat::Jpeg),
        ),
        (
            "jpeg-gray",
            encode(&gray_pattern(11, 9).into(), ImageFormat::Jpeg),
        ),
    ]
}

/// What a failure to decode untrusted bytes may report.
fn acceptable_failure(code: PixcacheResult) -> bool {
    matches!(
        code,
        PixcacheResult::Decode | PixcacheResult::Io | PixcacheResult::TooLarge
    )
}

#[test]
fn truncated_inputs_fail_cleanly() {
    let _limits = default_limits();
    let mut lenient = Vec::new();
    let mut codes = std::collections::BTreeMap::new();
    for (name, data) in samples() {
        let full = expect_ok(decode(&data), name);
        full.check_invariants(name);
        // Every prefix length (the samples are at most a few KB).
        for len in 0..data.len() {
            match decode(&data[..len]) {
                Err(f) => {
                    *codes.entry((name, format!("{:?}", f.code))).or_insert(0) += 1;
                    assert_ne!(
                        f.code,
                        PixcacheResult::Panic,
                        "{name}[..{len}]: {}",
                        f.message
                    );
                    assert!(
                        acceptable_failure(f.code),
                        "{name}[..{len}] of {}: {:?}: {}",
                        data.len(),
                        f.code,
                        f.message
                    );
                }
                Ok(pm) => {
                    pm.check_invariants(&format!("{name}[..{len}]"));
                    assert_eq!(
                        (pm.width(), pm.height(), pm.format()),
                        (full.width(), full.height(), full.format()),
                        "{name}[..{len}] decoded with another size or format"
                    );
                    let same = pm.packed() == full.packed();
                    lenient.push((name, len, data.len(), same));
                }
            }
        }
    }
    // Decoders may accept a file that lacks only its trailer (GIF's ';', PNG's IEND, WebP's
    // padding) and give the full image. JPEG is different: zune-jpeg, like libjpeg (and so Qt),
    // decodes a JPEG cut anywhere in its entropy-coded data and fills the missing blocks, so a
    // truncated JPEG "succeeds" with the right size and partly wrong pixels. Anything else
    // decoded from a prefix fails here.
    eprintln!("failures by format and result: {codes:?}");
    let mut jpeg_partial = 0;
    for &(name, len, full, same) in &lenient {
        let missing = full - len;
        if name.starts_with("jpeg") && !same {
            jpeg_partial += 1;
            continue;
        }
        assert!(
            same && missing <= 12,
            "{name}: a prefix of {len} of {full} bytes decoded (same pixels as the full file: {same})"
        );
    }
    eprintln!(
        "{} prefixes decoded to the full image, {jpeg_partial} JPEG prefixes to a partial one",
        lenient.len() - jpeg_partial
    );
}

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn corrupted_inputs_never_panic() {
    let _limits = default_limits();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut slowest = (Duration::ZERO, String::new());
    let mut biggest = (0usize, String::new());
    for (name, data) in samples() {
        let (mut decoded, mut failed) = (0, 0);
        for i in 0..300 {
            let mut bytes = data.clone();
            let edits = 1 + rng.below(4);
            let mut what = Vec::new();
            for _ in 0..edits {
                // Mostly in the headers, where the sizes are.
                let at = if rng.below(2) == 0 {
                    rng.below(bytes.len().min(64))
                } else {
                    rng.below(bytes.len())
                };
                bytes[at] = match rng.below(4) {
                    0 => 0xFF,
                    1 => 0x00,
                    2 => bytes[at] ^ (1 << rng.below(8)),
                    _ => rng.next() as u8,
                };
                what.push(format!("[{at}]={:#04x}", bytes[at]));
            }
            let label = format!("{name} #{i} {}", what.join(" "));
            let format = (i % 5) as PixcacheFormat; // 0: natural, 1..=4: `_as`
            let (result, elapsed, largest) = measured(|| {
                if format == 0 {
                    decode(&bytes)
                } else {
                    decode_as(&bytes, format)
                }
            });
            if elapsed > slowest.0 {
                slowest = (elapsed, label.clone());
            }
            if largest > biggest.0 {
                biggest = (largest, label.clone());
            }
            match result {
                Ok(pm) if pm.width() == 0 || pm.height() == 0 => {
                    // An image with no pixels is refused (`a_zero_sized_gif_is_refused`).
                    panic!("{label}: decoded to the null pixmap");
                }
                Ok(pm) => {
                    decoded += 1;
                    pm.check_invariants(&label);
                    if format != 0 {
                        assert_eq!(pm.format(), format, "{label}");
                    }
                }
                Err(f) => {
                    failed += 1;
                    assert_ne!(f.code, PixcacheResult::Panic, "{label}: {}", f.message);
                    assert!(acceptable_failure(f.code), "{label}: {f:?}");
                }
            }
        }
        eprintln!("{name}: {decoded} corrupted copies decoded, {failed} refused");
    }
    eprintln!("slowest: {:?} ({})", slowest.0, slowest.1);
    eprintln!("largest allocation: {} bytes ({})", biggest.0, biggest.1);
    assert!(slowest.0 < Duration::from_secs(2), "slow: {slowest:?}");
    // The decoding limit (512 MiB) bounds the image; pixcache may copy it once more.
    assert!(biggest.0 <= 512 * MIB, "allocation: {biggest:?}");
}

#[test]
fn a_zero_sized_gif_is_refused() {
    let _limits = default_limits();
    // Every other decoder refuses an image with no pixels (PNG: "Invalid image dimensions", BMP,
    // JPEG: "width or height is set to zero"). A GIF whose logical screen is 0 x 0, 1 x 0 or
    // 0 x 1 (the frame inside it may be 1 x 1) instead "succeeds" with a 0 x 0 pixmap of format
    // PIXCACHE_FORMAT_INVALID and PIXCACHE_RESULT_OK, even through `_as`, which then returns
    // another format than the one asked for.
    for (sw, sh) in [(0, 0), (1, 0), (0, 1), (8, 0)] {
        let gif = gif_claiming(sw, sh, 1, 1);
        for format in [0, PIXCACHE_FORMAT_RGBA8888] {
            let r = if format == 0 {
                decode(&gif)
            } else {
                decode_as(&gif, format)
            };
            let f = expect_err(r, &format!("GIF screen {sw}x{sh} as {format}"));
            assert_eq!(f.code, PixcacheResult::Decode);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Bomb-shaped inputs

/// A real PNG whose IHDR is rewritten to claim `w` x `h` (with a valid CRC); its IDAT stays.
fn png_claiming(w: u32, h: u32, colour_type: u8) -> Vec<u8> {
    let mut png = encode(&rgba_pattern(4, 4).into(), ImageFormat::Png);
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    png[25] = colour_type;
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A GIF with a `sw` x `sh` logical screen and one `fw` x `fh` frame of almost no data.
fn gif_claiming(sw: u16, sh: u16, fw: u16, fh: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&sw.to_le_bytes());
    gif.extend_from_slice(&sh.to_le_bytes());
    gif.extend_from_slice(&[0x80, 0, 0]); // global colour table of 2 entries
    gif.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    gif.push(0x2C); // image descriptor
    gif.extend_from_slice(&[0, 0, 0, 0]);
    gif.extend_from_slice(&fw.to_le_bytes());
    gif.extend_from_slice(&fh.to_le_bytes());
    gif.push(0);
    gif.extend_from_slice(&[2, 2, 0x4C, 0x01, 0]); // LZW min size 2; clear, 0, end
    gif.push(0x3B);
    gif
}

/// A BMP (BITMAPINFOHEADER, `bpp` bits) claiming `w` x `h` with no pixel data.
fn bmp_claiming(w: i32, h: i32, bpp: u16) -> Vec<u8> {
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&54u32.to_le_bytes()); // file size (a lie, as in a bomb)
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&w.to_le_bytes());
    bmp.extend_from_slice(&h.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&bpp.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]); // BI_RGB, sizes, resolution, palette counts
    bmp
}

/// A real JPEG whose SOF0 claims `w` x `h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = encode(&rgb_pattern(8, 8).into(), ImageFormat::Jpeg);
    let sof = jpeg
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline JPEG has SOF0");
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

/// A real lossless WebP whose VP8L header claims `w` x `h` (at most 16384 each).
fn webp_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut webp = encode(&rgba_pattern(4, 4).into(), ImageFormat::WebP);
    assert_eq!(
        &webp[12..16],
        b"VP8L",
        "image's encoder writes a simple VP8L file"
    );
    assert_eq!(webp[20], 0x2F);
    let old = u32::from_le_bytes(webp[21..25].try_into().unwrap());
    let new = (old & 0xF000_0000) | ((h - 1) << 14) | (w - 1);
    webp[21..25].copy_from_slice(&new.to_le_bytes());
    webp
}

/// A one-entry ICO (entry size 0, i.e. 256) holding `inner`.
fn ico_holding(inner: &[u8]) -> Vec<u8> {
    let mut ico = vec![0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 32, 0];
    ico.extend_from_slice(&(inner.len() as u32).to_le_bytes());
    ico.extend_from_slice(&22u32.to_le_bytes());
    ico.extend_from_slice(inner);
    ico
}

#[test]
fn bomb_headers_fail_fast_without_big_allocations() {
    let _limits = default_limits();
    let bombs: Vec<(&str, Vec<u8>)> = vec![
        ("PNG 100000x100000 RGBA", png_claiming(100_000, 100_000, 6)),
        ("PNG 100000x100000 grey", png_claiming(100_000, 100_000, 0)),
        (
            "PNG 16384x16384 RGBA (1 GiB)",
            png_claiming(16_384, 16_384, 6),
        ),
        ("PNG 2^31-1 x 1", png_claiming(0x7FFF_FFFF, 1, 6)),
        (
            "GIF screen+frame 65535x65535",
            gif_claiming(65_535, 65_535, 65_535, 65_535),
        ),
        (
            "GIF screen 65535x65535, frame 1x1",
            gif_claiming(65_535, 65_535, 1, 1),
        ),
        (
            "GIF screen 1x1, frame 65535x65535",
            gif_claiming(1, 1, 65_535, 65_535),
        ),
        (
            "GIF screen 16384x16384 (1 GiB)",
            gif_claiming(16_384, 16_384, 1, 1),
        ),
        (
            "GIF screen 1x1, frame 16384x16384",
            gif_claiming(1, 1, 16_384, 16_384),
        ),
        (
            "BMP 1000000x1000000",
            bmp_claiming(1_000_000, 1_000_000, 24),
        ),
        (
            "BMP 1000000 x -1000000",
            bmp_claiming(1_000_000, -1_000_000, 32),
        ),
        (
            "BMP i32::MAX x i32::MIN",
            bmp_claiming(i32::MAX, i32::MIN, 24),
        ),
        (
            "BMP 16384x16384 32-bit (1 GiB)",
            bmp_claiming(16_384, 16_384, 32),
        ),
        ("JPEG 65500x65500", jpeg_claiming(65_500, 65_500)),
        ("JPEG 16384x16384 (768 MiB)", jpeg_claiming(16_384, 16_384)),
        // image-webp 0.2.4 reads a VP8L size of 16384 as 0 (it masks `1 + (size - 1)` to 14
        // bits), so that claim fails as a decoding error; 16383 reaches the allocation limit.
        ("WebP 16384x16384", webp_claiming(16_384, 16_384)),
        ("WebP 16383x16383 (1 GiB)", webp_claiming(16_383, 16_383)),
        (
            "ICO holding a 100000x100000 PNG",
            ico_holding(&png_claiming(100_000, 100_000, 6)),
        ),
        (
            "ICO holding a 16384x16384 PNG",
            ico_holding(&png_claiming(16_384, 16_384, 6)),
        ),
        (
            "ICO holding a 16384x16384 BMP",
            ico_holding(&bmp_claiming(16_384, 32_768, 32)[14..]),
        ),
    ];
    let mut report = Vec::new();
    for (name, data) in &bombs {
        for format in [0, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED] {
            let (result, elapsed, largest) = measured(|| {
                if format == 0 {
                    decode(data)
                } else {
                    decode_as(data, format)
                }
            });
            let f = expect_err(result, name);
            assert!(
                matches!(f.code, PixcacheResult::TooLarge | PixcacheResult::Decode),
                "{name}: {f:?}"
            );
            report.push(format!(
                "{name}: {:?} in {elapsed:?}, largest allocation {largest} bytes: {}",
                f.code, f.message
            ));
            assert!(elapsed < Duration::from_secs(1), "{name}: took {elapsed:?}");
            assert!(largest < 64 * MIB, "{name}: allocated {largest} bytes");
        }
    }
    for line in report {
        eprintln!("{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// The process-wide limits: the only test that changes them.

#[test]
fn decode_limits_are_enforced_and_restored() {
    let _limits = exclusive_limits();
    let big_png = encode(&rgb_pattern(100, 100).into(), ImageFormat::Png);
    assert!(decode(&big_png).is_ok(), "100x100 under the default limits");

    pixcache_set_decode_limits(64, 64, 0);
    assert_eq!(pixcache_last_result(), PixcacheResult::Ok);
    let f = expect_err(decode(&big_png), "100x100 with 64x64 limits");
    assert_eq!(f.code, PixcacheResult::TooLarge, "{}", f.message);
    assert_eq!(f.code as i32, 4);
    let f = expect_err(
        decode_as(&big_png, PIXCACHE_FORMAT_GRAY8),
        "as, 64x64 limits",
    );
    assert_eq!(f.code, PixcacheResult::TooLarge);
    // Each dimension on its own.
    for (w, h, ok) in [
        (64, 64, true),
        (65, 10, false),
        (10, 65, false),
        (64, 1, true),
    ] {
        let png = encode(&rgb_pattern(w, h).into(), ImageFormat::Png);
        match decode(&png) {
            Ok(_) => assert!(ok, "{w}x{h} decoded"),
            Err(f) => {
                assert!(!ok, "{w}x{h}: {f:?}");
                assert_eq!(f.code, PixcacheResult::TooLarge, "{w}x{h}");
            }
        }
    }
    // Every format honours them, and so does loading from a file.
    let rgba = rgba_pattern(100, 70);
    for format in [
        ImageFormat::Gif,
        ImageFormat::Bmp,
        ImageFormat::Jpeg,
        ImageFormat::WebP,
        ImageFormat::Ico,
    ] {
        let img: DynamicImage = if format == ImageFormat::Jpeg {
            DynamicImage::ImageRgba8(rgba.clone()).into_rgb8().into()
        } else {
            rgba.clone().into()
        };
        let data = encode(&img, format);
        let f = expect_err(decode(&data), &format!("{format:?} 100x70"));
        assert_eq!(
            f.code,
            PixcacheResult::TooLarge,
            "{format:?}: {}",
            f.message
        );
    }
    let dir = TempDir::new("limits");
    let path = dir.path().join("big.png");
    std::fs::write(&path, &big_png).unwrap();
    let f = expect_err(load_file(&path), "file with 64x64 limits");
    assert_eq!(f.code, PixcacheResult::TooLarge);

    // (0, 0, 0) restores the defaults.
    pixcache_set_decode_limits(0, 0, 0);
    let pm = expect_ok(decode(&big_png), "100x100 after restoring");
    assert_pixels(
        &pm,
        100,
        100,
        PIXCACHE_FORMAT_RGB888,
        rgb_pattern(100, 100).as_raw(),
    );
    expect_ok(load_file(&path), "file after restoring");

    // The allocation limit: 32x32 RGBA is 4096 bytes of pixels.
    let small = encode(&rgba_pattern(32, 32).into(), ImageFormat::Png);
    pixcache_set_decode_limits(0, 0, 1000);
    let f = expect_err(decode(&small), "4 KB of pixels with a 1000-byte limit");
    assert_eq!(f.code, PixcacheResult::TooLarge, "{}", f.message);
    pixcache_set_decode_limits(0, 0, 0);
    expect_ok(decode(&small), "after restoring the allocation limit");

    // A zero for one limit restores only that default.
    pixcache_set_decode_limits(64, 0, 0);
    let tall = encode(&rgb_pattern(10, 100).into(), ImageFormat::Png);
    let wide = encode(&rgb_pattern(100, 10).into(), ImageFormat::Png);
    expect_ok(decode(&tall), "10x100 with max width 64");
    assert_eq!(
        expect_err(decode(&wide), "100x10").code,
        PixcacheResult::TooLarge
    );
    pixcache_set_decode_limits(0, 0, 0);
    expect_ok(decode(&wide), "100x10 after restoring");
}

#[test]
fn the_allocation_limit_covers_the_natural_format_conversion() {
    let _limits = exclusive_limits();
    // pixcache_set_decode_limits promises that a decode which "would allocate more than
    // max_alloc_bytes" fails with TOO_LARGE before allocating. The limit is handed to the `image`
    // decoder, which counts its own buffer (here grey+alpha, 2 bytes a pixel: 20,000 bytes), but
    // `decode::from_image` then converts grey+alpha to RGBA8888 (`into_rgba8`): a second buffer
    // twice that size, while the first is still alive. At the default limit, a 16384 x 16384
    // grey+alpha PNG (exactly 512 MiB decoded) becomes a 1 GiB allocation, 1.5 GiB at the peak.
    let la = GrayAlphaImage::from_fn(100, 100, |x, y| {
        image::LumaA([(x * 70 + y) as u8, (y * 99) as u8])
    });
    let png = encode(&la.into(), ImageFormat::Png);
    let limit = 20_000;
    pixcache_set_decode_limits(0, 0, limit as u64);
    let (result, _, largest) = measured(|| decode(&png));
    pixcache_set_decode_limits(0, 0, 0);
    if let Ok(pm) = result {
        assert!(
            largest <= limit,
            "a {}x{} format {} pixmap decoded under a {limit}-byte limit with a {largest}-byte \
             allocation",
            pm.width(),
            pm.height(),
            pm.format()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Saving

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("pixcache-images-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn save_then_load_back() {
    let _limits = default_limits();
    let dir = TempDir::new("save");
    let rgba = rgba_pattern(7, 5);
    let pm = expect_ok(
        decode(&encode(&rgba.clone().into(), ImageFormat::Png)),
        "source",
    );

    // PNG keeps straight RGBA exactly.
    let path = dir.path().join("a.png");
    save(&pm, &path).unwrap();
    let back = expect_ok(load_file(&path), "a.png");
    assert_pixels(&back, 7, 5, PIXCACHE_FORMAT_RGBA8888, rgba.as_raw());
    // Upper-case extensions are accepted.
    let path = dir.path().join("A.PNG");
    save(&pm, &path).unwrap();
    assert_pixels(
        &expect_ok(load_file(&path), "A.PNG"),
        7,
        5,
        1,
        rgba.as_raw(),
    );

    // Every source format saves to PNG as its straight RGBA.
    for format in FORMATS {
        let src = expect_ok(convert(&pm, format), "convert");
        let straight = expect_ok(convert(&src, PIXCACHE_FORMAT_RGBA8888), "straight");
        let path = dir.path().join(format!("f{format}.png"));
        save(&src, &path).unwrap();
        let back = expect_ok(load_file(&path), "f.png");
        let back = expect_ok(convert(&back, PIXCACHE_FORMAT_RGBA8888), "back");
        assert_eq!(back.packed(), straight.packed(), "format {format}");
    }

    // BMP: exact for opaque images (RGB, rows padded in the file and in the pixmap).
    let rgb = rgb_pattern(5, 3);
    let opaque = expect_ok(
        decode(&encode(&rgb.clone().into(), ImageFormat::Png)),
        "rgb",
    );
    for name in ["b.bmp", "B.BMP"] {
        let path = dir.path().join(name);
        save(&opaque, &path).unwrap();
        let back = expect_ok(load_file(&path), name);
        assert_pixels(&back, 5, 3, PIXCACHE_FORMAT_RGB888, rgb.as_raw());
    }
    let grey = gray_pattern(5, 3);
    let grey_pm = expect_ok(
        decode(&encode(&grey.clone().into(), ImageFormat::Png)),
        "grey",
    );
    let path = dir.path().join("g.bmp");
    save(&grey_pm, &path).unwrap();
    let back = expect_ok(load_file_as(&path, PIXCACHE_FORMAT_GRAY8), "g.bmp");
    assert_pixels(&back, 5, 3, PIXCACHE_FORMAT_GRAY8, grey.as_raw());
    // Translucent pixels are composited over black (the premultiplied colour).
    let path = dir.path().join("t.bmp");
    save(&pm, &path).unwrap();
    let back = expect_ok(load_file(&path), "t.bmp");
    let expected: Vec<u8> = rgba.pixels().flat_map(|p| over_black(p.0)).collect();
    assert_pixels(&back, 7, 5, PIXCACHE_FORMAT_RGB888, &expected);

    // JPEG: same size.
    for name in ["c.jpg", "c.jpeg", "C.JPG"] {
        let path = dir.path().join(name);
        save(&pm, &path).unwrap();
        let back = expect_ok(load_file(&path), name);
        assert_eq!((back.width(), back.height()), (7, 5), "{name}");
        assert_eq!(back.format(), PIXCACHE_FORMAT_RGB888, "{name}");
    }

    // Unsupported extensions, no extension.
    for name in ["d.tga", "d.gif", "d.tiff", "d.ico", "d", "d.png.txt"] {
        let path = dir.path().join(name);
        assert_eq!(save(&pm, &path), Err(PixcacheResult::Unsupported), "{name}");
        assert_eq!(PixcacheResult::Unsupported as i32, 8);
        assert!(!path.exists(), "{name} was written");
    }
    // The null pixmap has nothing to save; a missing directory is an I/O error.
    let null = Pm(NonNull::new(pixcache_pixmap_new_null()).unwrap());
    assert_eq!(
        save(&null, &dir.path().join("n.png")),
        Err(PixcacheResult::InvalidArgument)
    );
    assert_eq!(
        save(&pm, &dir.path().join("no/such/dir/x.png")),
        Err(PixcacheResult::Io)
    );
    // A foreign pixmap's pixels are not pixcache's to encode.
    // SAFETY: no release function, so `user_data` is never used.
    let foreign = unsafe { pixcache_pixmap_wrap(4, 4, 32, ptr::null_mut(), None) };
    let foreign = Pm(NonNull::new(foreign).unwrap());
    assert_eq!(
        save(&foreign, &dir.path().join("f.png")),
        Err(PixcacheResult::Unsupported)
    );
    // SAFETY: NULL arguments are documented errors.
    assert!(!unsafe { pixcache_pixmap_save(pm.ptr(), ptr::null()) });
    assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
    let path = c_path(&dir.path().join("x.png"));
    // SAFETY: as above; `path` is NUL-terminated and outlives the call.
    assert!(!unsafe { pixcache_pixmap_save(ptr::null(), path.as_ptr()) });
    assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);

    // A pixmap written through pixels_mut saves what was written.
    let blank = outcome(pixcache_pixmap_new(3, 2, PIXCACHE_FORMAT_RGB888));
    let blank = expect_ok(blank, "new");
    // SAFETY: a live handle used by this thread only.
    let px = unsafe { pixcache_pixmap_pixels_mut(blank.0.as_ptr()) };
    assert!(!px.is_null());
    // SAFETY: `px` points to height * stride = 2 * 12 writable bytes, valid until `blank` is
    // next modified, shared or freed.
    unsafe { std::slice::from_raw_parts_mut(px, 24) }
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 10) as u8);
    let path = dir.path().join("w.png");
    save(&blank, &path).unwrap();
    let back = expect_ok(load_file_as(&path, PIXCACHE_FORMAT_RGB888), "w.png");
    let expected: Vec<u8> = (0..2)
        .flat_map(|y| (0..9).map(move |i| ((y * 12 + i) * 10) as u8))
        .collect();
    assert_pixels(&back, 3, 2, PIXCACHE_FORMAT_RGB888, &expected);
}
