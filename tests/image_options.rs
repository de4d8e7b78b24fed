//! Loads with options of their own, EXIF orientation, header sizes refused as `TOO_LARGE`
//! before decoding, and header-only queries, through the C API (`src/ffi/image.rs`), on images
//! this test makes itself with the `image` crate (JPEGs get an EXIF segment spliced in).
//!
//! The process-wide decoding limits are shared by the tests of this file, which run on parallel
//! threads: every test holds [`LIMITS`] for reading, the ones that change the limits for writing.

use std::ffi::{CStr, CString};
use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
use pixcache::ffi::cache::{pixcache_cache_free, pixcache_cache_new, pixcache_find_or_load};
use pixcache::ffi::error::{pixcache_last_error, pixcache_last_result, PixcacheResult};
use pixcache::ffi::image::*;
use pixcache::ffi::pixmap::*;

static LIMITS: RwLock<()> = RwLock::new(());

fn shared_limits() -> RwLockReadGuard<'static, ()> {
    LIMITS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive_limits() -> RwLockWriteGuard<'static, ()> {
    LIMITS.write().unwrap_or_else(|e| e.into_inner())
}

/// An owned pixmap handle.
#[derive(Debug)]
struct Pm(*mut PixcachePixmap);

impl Drop for Pm {
    fn drop(&mut self) {
        // SAFETY: a live handle, freed once.
        unsafe { pixcache_pixmap_free(self.0) }
    }
}

impl Pm {
    fn size(&self) -> (u32, u32) {
        // SAFETY: a live handle.
        unsafe {
            (
                pixcache_pixmap_width(self.0),
                pixcache_pixmap_height(self.0),
            )
        }
    }
    fn format(&self) -> PixcacheFormat {
        // SAFETY: a live handle.
        unsafe { pixcache_pixmap_format(self.0) }
    }
    /// The pixel at (x, y) of an RGB888 pixmap.
    fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        assert_eq!(self.format(), PIXCACHE_FORMAT_RGB888);
        // SAFETY: a live raster handle: `height` rows of `stride` bytes.
        unsafe {
            let stride = pixcache_pixmap_stride(self.0);
            let px = pixcache_pixmap_pixels(self.0);
            let at = px.add(y as usize * stride + x as usize * 3);
            [*at, *at.add(1), *at.add(2)]
        }
    }
}

#[derive(Debug)]
struct Failure {
    code: PixcacheResult,
    message: String,
}

fn outcome(ptr: *mut PixcachePixmap) -> Result<Pm, Failure> {
    if ptr.is_null() {
        // SAFETY: pixcache_last_error returns a valid C string.
        let message = unsafe { CStr::from_ptr(pixcache_last_error()) }
            .to_string_lossy()
            .into_owned();
        let code = pixcache_last_result();
        assert_ne!(code, PixcacheResult::Ok, "NULL without an error");
        Err(Failure { code, message })
    } else {
        assert_eq!(pixcache_last_result(), PixcacheResult::Ok);
        Ok(Pm(ptr))
    }
}

fn load_mem(data: &[u8], options: Option<&PixcacheLoadOptions>) -> Result<Pm, Failure> {
    let options = options.map_or(ptr::null(), |o| o as *const _);
    // SAFETY: a valid slice, options NULL or valid.
    outcome(unsafe { pixcache_pixmap_load_from_memory_with(data.as_ptr(), data.len(), options) })
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn load_path(path: &Path, options: Option<&PixcacheLoadOptions>) -> Result<Pm, Failure> {
    let options = options.map_or(ptr::null(), |o| o as *const _);
    // SAFETY: a C string, options NULL or valid.
    outcome(unsafe { pixcache_pixmap_load_with(c_path(path).as_ptr(), options) })
}

fn too_large(r: Result<Pm, Failure>, what: &str) -> String {
    match r {
        Ok(pm) => panic!("{what}: decoded, {:?}", pm.size()),
        Err(f) => {
            assert_eq!(f.code, PixcacheResult::TooLarge, "{what}: {}", f.message);
            f.message
        }
    }
}

fn info_mem(data: &[u8]) -> Result<PixcacheImageInfo, Failure> {
    let mut info = PixcacheImageInfo {
        width: 7,
        height: 7,
        stored_width: 7,
        stored_height: 7,
        format: 99,
        orientation: 99,
        has_alpha: 99,
    };
    // SAFETY: a valid slice and struct.
    let ok = unsafe { pixcache_image_info_from_memory(data.as_ptr(), data.len(), &mut info) };
    info_outcome(ok, info)
}

fn info_path(path: &Path) -> Result<PixcacheImageInfo, Failure> {
    // SAFETY: all zero is a valid struct.
    let mut info = PixcacheImageInfo {
        width: 7,
        height: 7,
        stored_width: 7,
        stored_height: 7,
        format: 99,
        orientation: 99,
        has_alpha: 99,
    };
    // SAFETY: a C string and a valid struct.
    let ok = unsafe { pixcache_image_info(c_path(path).as_ptr(), &mut info) };
    info_outcome(ok, info)
}

fn info_outcome(ok: bool, info: PixcacheImageInfo) -> Result<PixcacheImageInfo, Failure> {
    if ok {
        assert_eq!(pixcache_last_result(), PixcacheResult::Ok);
        Ok(info)
    } else {
        assert_eq!(
            info.format, PIXCACHE_IMAGE_UNKNOWN,
            "a failure leaves `out` unknown"
        );
        assert_eq!((info.width, info.height, info.has_alpha), (0, 0, -1));
        // SAFETY: pixcache_last_error returns a valid C string.
        let message = unsafe { CStr::from_ptr(pixcache_last_error()) }
            .to_string_lossy()
            .into_owned();
        Err(Failure {
            code: pixcache_last_result(),
            message,
        })
    }
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "pixcache-image-options-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Forged headers

fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
    png
}

fn gif_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&w.to_le_bytes());
    gif.extend_from_slice(&h.to_le_bytes());
    gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    gif.push(0x2C);
    gif.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0, 0]);
    gif.extend_from_slice(&[2, 2, 0x4C, 0x01, 0, 0x3B]);
    gif
}

/// A BMP file header and BITMAPINFOHEADER (40 bytes) claiming `w` x `h`, no pixels.
fn bmp_claiming(w: i32, h: i32) -> Vec<u8> {
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&w.to_le_bytes());
    bmp.extend_from_slice(&h.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    bmp
}

/// A BMP with a BITMAPCOREHEADER (12 bytes, 16-bit sizes) claiming `w` x `h`.
fn bmp_core_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&26u32.to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&26u32.to_le_bytes());
    bmp.extend_from_slice(&12u32.to_le_bytes());
    bmp.extend_from_slice(&w.to_le_bytes());
    bmp.extend_from_slice(&h.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp
}

fn options(max_width: u32, max_height: u32, max_alloc: u64) -> PixcacheLoadOptions {
    PixcacheLoadOptions {
        max_width,
        max_height,
        max_alloc,
        ..pixcache_load_options_default()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Sizes from the header, TOO_LARGE before decoding

#[test]
fn header_sizes_over_the_limits_are_too_large_and_named() {
    let _limits = shared_limits();
    for (what, data, dims) in [
        (
            "BMP 100000x100000",
            bmp_claiming(100_000, 100_000),
            "100000x100000",
        ),
        (
            "BMP 100000 x -100000 (top-down)",
            bmp_claiming(100_000, -100_000),
            "100000x100000",
        ),
        ("BMP 20000x10", bmp_claiming(20_000, 10), "20000x10"),
        (
            "BMP 10 x i32::MIN",
            bmp_claiming(10, i32::MIN),
            "10x2147483648",
        ),
        (
            "BMP core header 60000x60000",
            bmp_core_claiming(60_000, 60_000),
            "60000x60000",
        ),
        (
            "PNG 100000x100000",
            png_claiming(100_000, 100_000),
            "100000x100000",
        ),
        (
            "GIF 65535x65535",
            gif_claiming(65_535, 65_535),
            "65535x65535",
        ),
    ] {
        let message = too_large(load_mem(&data, None), what);
        assert!(message.contains(dims), "{what}: {message}");
        // The same through the path API, which names the file too.
        let dir = TempDir::new("bombs");
        let path = dir.write("bomb.img", &data);
        let message = too_large(load_path(&path, None), what);
        assert!(
            message.contains(dims) && message.contains("bomb.img"),
            "{what}: {message}"
        );
        // SAFETY: a valid slice.
        let pm = unsafe { pixcache_pixmap_load_from_memory(data.as_ptr(), data.len()) };
        too_large(outcome(pm), what);
    }
}

#[test]
fn the_bmp_decoders_own_cap_is_too_large_even_within_the_limits() {
    let _limits = shared_limits();
    // Per-call limits far above the BMP decoder's 65,535: the cap itself is the refusal.
    let roomy = options(1 << 20, 1 << 20, u64::MAX);
    for (w, h) in [(70_000, 10), (10, 70_000), (100_000, 100_000)] {
        let message = too_large(load_mem(&bmp_claiming(w, h), Some(&roomy)), "BMP over cap");
        assert!(message.contains(&format!("{w}x{h}")), "{message}");
        assert!(message.contains("65535"), "{message}");
    }
    // Under the cap, a header with no pixels is a decoding error, not a size one.
    let f = load_mem(&bmp_claiming(100, 100), Some(&roomy)).unwrap_err();
    assert_eq!(f.code, PixcacheResult::Decode, "{}", f.message);
}

#[test]
fn every_formats_limit_errors_are_too_large() {
    let _limits = shared_limits();
    let rgba = RgbaImage::from_fn(100, 70, |x, y| image::Rgba([x as u8, y as u8, 9, 255]));
    for format in [
        ImageFormat::Png,
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
        assert!(
            load_mem(&data, None).is_ok(),
            "{format:?} under the defaults"
        );
        let m = too_large(load_mem(&data, Some(&options(64, 0, 0))), "width");
        assert!(m.contains("100x70"), "{format:?}: {m}");
        too_large(load_mem(&data, Some(&options(0, 64, 0))), "height");
        // 100 x 70 needs 7,000 bytes at the very least.
        too_large(load_mem(&data, Some(&options(0, 0, 5_000))), "alloc");
        // Just enough for the decoder's buffer but not the conversion beside it.
        too_large(load_mem(&data, Some(&options(0, 0, 28_000))), "alloc");
        assert!(
            load_mem(&data, Some(&options(100, 70, 0))).is_ok(),
            "{format:?} at the limit"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Limits per call, and read back

#[test]
fn limits_are_read_back_and_options_override_them_per_call() {
    let _limits = exclusive_limits();
    let (mut w, mut h, mut a) = (0u32, 0u32, 0u64);
    // SAFETY: valid pointers, or NULL.
    unsafe {
        pixcache_decode_limits(&mut w, &mut h, &mut a);
        assert_eq!((w, h, a), (16_384, 16_384, 512 << 20));
        pixcache_decode_limits(ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        assert_eq!(pixcache_last_result(), PixcacheResult::Ok);
        pixcache_set_decode_limits(32, 48, 1 << 20);
        let mut only_h = 0;
        pixcache_decode_limits(ptr::null_mut(), &mut only_h, ptr::null_mut());
        assert_eq!(only_h, 48);
        pixcache_decode_limits(&mut w, &mut h, &mut a);
        assert_eq!((w, h, a), (32, 48, 1 << 20));
    }
    let d = pixcache_load_options_default();
    assert_eq!(
        d,
        PixcacheLoadOptions {
            size: std::mem::size_of::<PixcacheLoadOptions>(),
            format: PIXCACHE_FORMAT_INVALID,
            apply_orientation: true,
            max_width: 32,
            max_height: 48,
            max_alloc: 1 << 20,
        }
    );
    let unsized_options = PixcacheLoadOptions { size: 0, ..d };
    let mut one = Vec::new();
    image::RgbImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut one), image::ImageFormat::Png)
        .unwrap();
    // SAFETY: a live buffer and options struct.
    let refused = unsafe {
        pixcache::ffi::image::pixcache_pixmap_load_from_memory_with(
            one.as_ptr(),
            one.len(),
            &unsized_options,
        )
    };
    assert!(
        refused.is_null(),
        "a struct whose size is not set is refused"
    );
    assert_eq!(pixcache_last_result(), PixcacheResult::InvalidArgument);
    let png = encode(
        &RgbImage::from_fn(100, 100, |x, y| image::Rgb([x as u8, y as u8, 1])).into(),
        ImageFormat::Png,
    );
    // The process-wide limits refuse it, NULL options too; options of its own let it through,
    // and 0 in the options means the process-wide limit.
    too_large(load_mem(&png, None), "process-wide 32x48");
    let pm = load_mem(&png, Some(&options(100, 100, 0))).unwrap();
    assert_eq!(
        (pm.size(), pm.format()),
        ((100, 100), PIXCACHE_FORMAT_RGB888)
    );
    too_large(
        load_mem(&png, Some(&options(100, 0, 0))),
        "height from the process",
    );
    // The format option converts, an unknown one is an invalid argument.
    let gray = PixcacheLoadOptions {
        format: PIXCACHE_FORMAT_GRAY8,
        ..options(100, 100, 0)
    };
    assert_eq!(
        load_mem(&png, Some(&gray)).unwrap().format(),
        PIXCACHE_FORMAT_GRAY8
    );
    let bad = PixcacheLoadOptions {
        format: 77,
        ..options(100, 100, 0)
    };
    assert_eq!(
        load_mem(&png, Some(&bad)).unwrap_err().code,
        PixcacheResult::InvalidArgument
    );
    pixcache_set_decode_limits(0, 0, 0);
    assert!(load_mem(&png, None).is_ok());
    // The struct was a copy: it still holds the old limits.
    too_large(load_mem(&png, Some(&d)), "copied defaults");
}

#[test]
fn bad_arguments_are_reported() {
    let _limits = shared_limits();
    // SAFETY: NULL is allowed and reported.
    unsafe {
        assert!(pixcache_pixmap_load_with(ptr::null(), ptr::null()).is_null());
        assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
        assert!(pixcache_pixmap_load_from_memory_with(ptr::null(), 0, ptr::null()).is_null());
        assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
        assert!(!pixcache_image_info(c"/x.png".as_ptr(), ptr::null_mut()));
        assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
        assert!(!pixcache_image_info_from_memory(
            ptr::null(),
            3,
            ptr::null_mut()
        ));
        assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
    }
    assert_eq!(
        info_mem(b"not an image at all").unwrap_err().code,
        PixcacheResult::Decode
    );
    assert_eq!(
        info_path(Path::new("/nonexistent-pixcache/x.png"))
            .unwrap_err()
            .code,
        PixcacheResult::Io
    );
    assert_eq!(
        load_path(Path::new("/nonexistent-pixcache/x.png"), None)
            .unwrap_err()
            .code,
        PixcacheResult::Io
    );
    assert_eq!(
        load_mem(b"garbage", None).unwrap_err().code,
        PixcacheResult::Decode
    );
}

// ---------------------------------------------------------------------------------------------
// 3. EXIF orientation

const W: u32 = 32;
const H: u32 = 48;
/// Six colours far apart, one per 16 x 16 block (a JPEG reproduces a flat MCU closely).
const COLOURS: [[u8; 3]; 6] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [0, 255, 255],
    [255, 0, 255],
];

/// The colour of stored block (bx, by): 2 columns, 3 rows.
fn block(bx: u32, by: u32) -> [u8; 3] {
    COLOURS[(by * 2 + bx) as usize]
}

fn stored() -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| image::Rgb(block(x / 16, y / 16)))
}

/// A TIFF structure with one IFD entry: Orientation = `o`.
fn exif(o: u16, big_endian: bool) -> Vec<u8> {
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut t = if big_endian {
        b"MM".to_vec()
    } else {
        b"II".to_vec()
    };
    t.extend_from_slice(&u16b(42));
    t.extend_from_slice(&u32b(8));
    t.extend_from_slice(&u16b(1));
    t.extend_from_slice(&u16b(0x0112));
    t.extend_from_slice(&u16b(3));
    t.extend_from_slice(&u32b(1));
    t.extend_from_slice(&u16b(o));
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&u32b(0));
    t
}

/// A JPEG of [`stored`] with an APP1 Exif segment saying orientation `o`, right after SOI.
fn jpeg_oriented(o: u16) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100)
        .encode_image(&stored())
        .unwrap();
    let tiff = exif(o, o.is_multiple_of(2));
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    jpeg.splice(2..2, app1);
    jpeg
}

/// Where stored pixel (sx, sy) lands under EXIF orientation `o`, and the shown size.
fn shown(o: u16) -> ((u32, u32), impl Fn(u32, u32) -> (u32, u32)) {
    let size = if o >= 5 { (H, W) } else { (W, H) };
    let map = move |x: u32, y: u32| -> (u32, u32) {
        // The stored pixel shown at (x, y).
        match o {
            1 => (x, y),
            2 => (W - 1 - x, y),
            3 => (W - 1 - x, H - 1 - y),
            4 => (x, H - 1 - y),
            5 => (y, x),
            6 => (y, H - 1 - x),
            7 => (W - 1 - y, H - 1 - x),
            8 => (W - 1 - y, x),
            _ => unreachable!(),
        }
    };
    (size, map)
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(&p, q)| p.abs_diff(q) < 40)
}

/// Checks that `pm` shows [`stored`] turned as orientation `o` says (at the centre of every
/// 16 x 16 block of the shown image).
fn assert_oriented(pm: &Pm, o: u16, what: &str) {
    let (size, map) = shown(o);
    assert_eq!(pm.size(), size, "{what}: orientation {o}");
    for y in (8..size.1).step_by(16) {
        for x in (8..size.0).step_by(16) {
            let (sx, sy) = map(x, y);
            let want = block(sx / 16, sy / 16);
            let got = pm.rgb(x, y);
            assert!(
                close(got, want),
                "{what}: orientation {o} at ({x}, {y}): {got:?}, want {want:?}"
            );
        }
    }
}

#[test]
fn exif_orientation_is_applied_on_every_load_unless_turned_off() {
    let _limits = shared_limits();
    let dir = TempDir::new("orientation");
    let cache = pixcache_cache_new(1 << 20);
    for o in 1..=8u16 {
        let jpeg = jpeg_oriented(o);
        let path = dir.write(&format!("o{o}.jpg"), &jpeg);
        // SAFETY: a valid slice / C string.
        let by_memory =
            outcome(unsafe { pixcache_pixmap_load_from_memory(jpeg.as_ptr(), jpeg.len()) });
        assert_oriented(&by_memory.unwrap(), o, "load_from_memory");
        // SAFETY: a C string.
        let by_path = outcome(unsafe { pixcache_pixmap_load(c_path(&path).as_ptr()) });
        assert_oriented(&by_path.unwrap(), o, "load");
        // SAFETY: a C string.
        let as_rgb = outcome(unsafe {
            pixcache_pixmap_load_as(c_path(&path).as_ptr(), PIXCACHE_FORMAT_RGB888)
        });
        assert_oriented(&as_rgb.unwrap(), o, "load_as");
        assert_oriented(
            &load_mem(&jpeg, None).unwrap(),
            o,
            "load_from_memory_with(NULL)",
        );
        assert_oriented(&load_path(&path, None).unwrap(), o, "load_with(NULL)");
        // find_or_load loads (and caches) it turned.
        let out = Pm(pixcache_pixmap_new_null());
        // SAFETY: live handles, a C string.
        assert!(unsafe { pixcache_find_or_load(cache, c_path(&path).as_ptr(), out.0) });
        assert_oriented(&out, o, "find_or_load");
        // Off: the pixels as stored.
        let off = PixcacheLoadOptions {
            apply_orientation: false,
            ..pixcache_load_options_default()
        };
        assert_oriented(&load_mem(&jpeg, Some(&off)).unwrap(), 1, "orientation off");
        assert_oriented(
            &load_path(&path, Some(&off)).unwrap(),
            1,
            "orientation off (path)",
        );
        // What info says agrees.
        let info = info_path(&path).unwrap();
        assert_eq!(info.orientation, u32::from(o));
        assert_eq!((info.width, info.height), shown(o).0);
        assert_eq!((info.stored_width, info.stored_height), (W, H));
        assert_eq!(info.format, PIXCACHE_IMAGE_JPEG);
        assert_eq!(info.has_alpha, 0);
    }
    // SAFETY: the cache made above.
    unsafe { pixcache_cache_free(cache) };
}

#[test]
fn a_quarter_turn_counts_its_second_buffer_against_the_allocation_limit() {
    let _limits = shared_limits();
    // 32 x 48 RGB: 4,608 bytes decoded; turning needs another 4,608 while the first is alive.
    let jpeg = jpeg_oriented(6);
    too_large(load_mem(&jpeg, Some(&options(0, 0, 9_000))), "turned");
    let off = PixcacheLoadOptions {
        apply_orientation: false,
        ..options(0, 0, 9_300)
    };
    assert!(load_mem(&jpeg, Some(&off)).is_ok());
    assert!(
        load_mem(&jpeg_oriented(3), Some(&options(0, 0, 9_300))).is_ok(),
        "180 is in place"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Header-only queries

#[test]
fn info_reports_every_format() {
    let _limits = shared_limits();
    let rgba = RgbaImage::from_fn(12, 5, |x, y| image::Rgba([x as u8, y as u8, 3, 100]));
    let rgb: DynamicImage = DynamicImage::ImageRgba8(rgba.clone()).into_rgb8().into();
    for (format, img, code, alpha) in [
        (ImageFormat::Png, rgba.clone().into(), PIXCACHE_IMAGE_PNG, 1),
        (ImageFormat::Png, rgb.clone(), PIXCACHE_IMAGE_PNG, 0),
        (ImageFormat::Jpeg, rgb.clone(), PIXCACHE_IMAGE_JPEG, 0),
        (ImageFormat::Gif, rgba.clone().into(), PIXCACHE_IMAGE_GIF, 1),
        (ImageFormat::Bmp, rgb.clone(), PIXCACHE_IMAGE_BMP, 0),
        (
            ImageFormat::WebP,
            rgba.clone().into(),
            PIXCACHE_IMAGE_WEBP,
            1,
        ),
        (ImageFormat::Ico, rgba.clone().into(), PIXCACHE_IMAGE_ICO, 1),
    ] {
        let data = encode(&img, format);
        let info = info_mem(&data).unwrap();
        assert_eq!(
            info,
            PixcacheImageInfo {
                width: 12,
                height: 5,
                stored_width: 12,
                stored_height: 5,
                format: code,
                orientation: 1,
                has_alpha: alpha,
            },
            "{format:?}"
        );
    }
}

#[test]
fn info_reads_no_pixels() {
    let _limits = shared_limits();
    // Sizes no load would take.
    for (data, w, h, format) in [
        (
            png_claiming(60_000, 60_000),
            60_000,
            60_000,
            PIXCACHE_IMAGE_PNG,
        ),
        (
            bmp_claiming(100_000, -100_000),
            100_000,
            100_000,
            PIXCACHE_IMAGE_BMP,
        ),
        (
            gif_claiming(65_535, 65_535),
            65_535,
            65_535,
            PIXCACHE_IMAGE_GIF,
        ),
    ] {
        too_large(load_mem(&data, None), "the control: it does not load");
        let info = info_mem(&data).unwrap();
        assert_eq!((info.width, info.height, info.format), (w, h, format));
        let dir = TempDir::new("huge");
        let info = info_path(&dir.write("huge.img", &data)).unwrap();
        assert_eq!((info.width, info.height, info.format), (w, h, format));
    }
    // A file cut short after its header: it does not load, its header still reads.
    let dir = TempDir::new("truncated");
    for (format, code) in [
        (ImageFormat::Png, PIXCACHE_IMAGE_PNG),
        (ImageFormat::Jpeg, PIXCACHE_IMAGE_JPEG),
        (ImageFormat::Bmp, PIXCACHE_IMAGE_BMP),
        (ImageFormat::Gif, PIXCACHE_IMAGE_GIF),
    ] {
        let img: DynamicImage = RgbImage::from_fn(300, 200, |x, y| {
            image::Rgb([(x * y) as u8, y as u8, x as u8])
        })
        .into();
        let data = encode(&img, format);
        let cut = &data[..data.len() / 3];
        // (zune-jpeg decodes a cut JPEG, greying the missing part: no control for it.)
        if format != ImageFormat::Jpeg {
            assert!(load_mem(cut, None).is_err(), "{format:?} cut loads");
        }
        let path = dir.write("cut.img", cut);
        let info = info_path(&path).unwrap();
        assert_eq!(
            (info.width, info.height, info.format),
            (300, 200, code),
            "{format:?}"
        );
        assert_eq!(info_mem(cut).unwrap(), info);
    }
    // The header of a PNG alone (no IDAT): the alpha is unknown from there... unless the colour
    // type says so. An RGBA IHDR says it.
    let info = info_mem(&png_claiming(5, 5)).unwrap();
    assert_eq!(info.has_alpha, 1);
}

/// Limits raised past what the machine has: a header asking for more than the allocator gives
/// is OUT_OF_MEMORY, not an abort of the process (the decoders allocate infallibly, so pixcache
/// asks the allocator first). Only where the kernel refuses such an allocation outright
/// (`vm.overcommit_memory` 0 or 2 and the request above RAM + swap); said and skipped otherwise.
#[test]
fn limits_beyond_the_machine_are_out_of_memory_not_an_abort() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |field: &str| -> u64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX / 2048)
    };
    let machine = (kb("MemTotal:") + kb("SwapTotal:")).saturating_mul(1024);
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    let (w, h) = (100_000u32, 100_000u32); // 40 GB of RGBA
    if overcommit.trim() == "1" || u64::from(w) * u64::from(h) * 4 <= machine {
        eprintln!("skipped: this machine may grant {w}x{h} RGBA (overcommit {overcommit:?})");
        return;
    }
    let _guard = shared_limits();
    let mut o = pixcache_load_options_default();
    (o.max_width, o.max_height, o.max_alloc) = (u32::MAX, u32::MAX, u64::MAX);
    // 100000x100000 RGBA: an IHDR, one IDAT of a few bytes, IEND (58 bytes).
    const BOMB: [u8; 58] = [
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x01, 0x86, 0xa0, 0x00, 0x01, 0x86, 0xa0, 0x08, 0x06, 0x00, 0x00, 0x00, 0xa8,
        0x52, 0x0b, 0xc8, 0x00, 0x00, 0x00, 0x01, 0x49, 0x44, 0x41, 0x54, 0x78, 0x76, 0xe6, 0x84,
        0xe6, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    assert_eq!(
        &BOMB[16..24],
        [&w.to_be_bytes()[..], &h.to_be_bytes()[..]].concat()
    );
    let got = load_mem(&BOMB, Some(&o));
    match got {
        Err(f) => assert_eq!(f.code, PixcacheResult::OutOfMemory, "{}", f.message),
        Ok(_) => panic!("a {w}x{h} image decoded"),
    }
}
