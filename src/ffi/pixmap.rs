//! `PixcachePixmap`: pixmap values for C. Each handle is a `Box<Pixmap>`; copies made with
//! `pixcache_pixmap_clone` share pixels (reference counted), and writing detaches.

use std::ffi::{c_char, c_void};
use std::ptr;

use super::boundary::{
    call, call_keeping_error, free, into_raw, null_error, try_bytes_n, try_mut, try_path, try_ref,
    Handle,
};
use crate::error::{Error, ErrorKind};
use crate::images::decode;
use crate::images::format::Format;
use crate::pixmap::{Pixmap, Release};

/// A pixmap value, like `QPixmap`: owned by exactly one owner, freed with
/// `pixcache_pixmap_free`. Behind the handle is a Rust `Box<Pixmap>`, itself a reference-counted
/// share of pixels: `pixcache_pixmap_clone` and the cache's lookups make more shares of the same
/// pixels; `pixcache_pixmap_pixels_mut` detaches first, so shared pixels never change.
///
/// A handle may be moved between threads, and different handles sharing pixels may be used on
/// different threads at once. One handle must not be used by two threads at once if either call
/// modifies it (assign, pixels_mut, free, or as the `out` of a find): that is a data race.
pub struct PixcachePixmap {
    _opaque: [u8; 0],
}

impl Handle for PixcachePixmap {
    type Target = Pixmap;
}

/// A pixel format code. Formats are passed as plain integers (any value is safe to pass: an
/// unknown one is reported as `PIXCACHE_RESULT_INVALID_ARGUMENT`). Codes are never renumbered:
/// new formats get new codes.
///
/// Every raster format, its bytes in memory (the same on every host) and the toolkits' names for
/// the same bytes on little-endian hosts (x86, ARM); "premul" is premultiplied alpha, "X" a byte
/// written 0xFF and ignored on reading. Rows are padded to a multiple of 4 bytes (as `QImage`
/// and cairo do; for GL that is the default `GL_UNPACK_ALIGNMENT` of 4).
///
/// | PIXCACHE_FORMAT_           | bytes          | Qt `QImage::Format_`     | cairo `CAIRO_FORMAT_` | Skia `SkColorType` / `SkAlphaType`   | SDL `SDL_PIXELFORMAT_`                    | GL format / type                                         |
/// |----------------------------|----------------|--------------------------|-----------------------|--------------------------------------|-------------------------------------------|----------------------------------------------------------|
/// | RGBA8888 (1)               | R G B A        | `RGBA8888`               | none                  | `kRGBA_8888` / `kUnpremul`           | `RGBA32` (= `ABGR8888`)                   | `GL_RGBA` / `GL_UNSIGNED_BYTE`                           |
/// | BGRA8888_PREMULTIPLIED (2) | B G R A premul | `ARGB32_Premultiplied`   | `ARGB32`              | `kBGRA_8888` / `kPremul`             | `BGRA32` (= `ARGB8888`), premul           | `GL_BGRA` / `GL_UNSIGNED_BYTE`, premul                   |
/// | RGB888 (3)                 | R G B          | `RGB888`                 | none                  | none (`kRGB_888x` has 4 bytes)       | `RGB24`                                   | `GL_RGB` / `GL_UNSIGNED_BYTE`                            |
/// | GRAY8 (4)                  | Y              | `Grayscale8` (see below) | none (`A8` is alpha)  | `kGray_8` / `kOpaque`                | none                                      | `GL_RED` / `GL_UNSIGNED_BYTE` (`GL_LUMINANCE` in GLES 2) |
/// | BGRA8888 (6)               | B G R A        | `ARGB32`                 | none                  | `kBGRA_8888` / `kUnpremul`           | `BGRA32` (= `ARGB8888`)                   | `GL_BGRA` / `GL_UNSIGNED_BYTE`                           |
/// | BGRX8888 (7)               | B G R X        | `RGB32`                  | `RGB24`               | `kBGRA_8888` / `kOpaque` (X is 0xFF) | `BGRX32` (= `XRGB8888`, SDL 2's `RGB888`) | `GL_BGRA` / `GL_UNSIGNED_BYTE` (alpha reads 1.0)         |
/// | RGBA8888_PREMULTIPLIED (8) | R G B A premul | `RGBA8888_Premultiplied` | none                  | `kRGBA_8888` / `kPremul`             | `RGBA32` (= `ABGR8888`), premul           | `GL_RGBA` / `GL_UNSIGNED_BYTE`, premul                   |
///
/// (SDL's pixel formats do not say whether alpha is premultiplied: blend premultiplied pixels
/// with `SDL_BLENDMODE_BLEND_PREMULTIPLIED` in SDL 3, premultiplied GL textures with
/// `glBlendFunc(GL_ONE, GL_ONE_MINUS_SRC_ALPHA)`.)
///
/// Converting (`pixcache_pixmap_convert`, `pixcache_pixmap_load_as`, `pixcache_find_or_load_as`)
/// goes from any raster format to any other, with Qt's `QImage::convertToFormat` rules:
/// - exact: between formats that store alpha the same way (RGBA8888 and BGRA8888; the two
///   premultiplied formats; RGB888 and BGRX8888), which only reorder bytes, and every opaque
///   pixel (alpha 255) between any two formats but GRAY8;
/// - premultiplying is Qt's `qPremultiply` (`t = c * a; (t + (t >> 8) + 0x80) >> 8`), and
///   unpremultiplying Qt's `qUnpremultiply` (`min(255, (c * 255 + a / 2) / a)`; alpha 0 gives
///   0, 0, 0, 0). Unpremultiplying then premultiplying gives every premultiplied pixel back;
///   straight to premultiplied and back loses precision at low alpha (at alpha 1 every colour
///   comes back as 0 or 255), and a straight pixel of alpha 0 loses its colour;
/// - to a format without alpha (RGB888, BGRX8888, GRAY8) alpha is dropped, not composited over
///   black: a pixel keeps its straight (unpremultiplied) colour, as Qt's `Format_ARGB32` and
///   `Format_ARGB32_Premultiplied` become `Format_RGB32`. (`pixcache_pixmap_save` to JPEG or BMP
///   composites over black instead.) BGRX8888's X byte is written 0xFF and ignored on reading;
/// - to GRAY8 loses colour: grey is Qt's `qGray` of the straight colour,
///   `(r * 11 + g * 16 + b * 5) / 32` (Qt 6's own `Format_Grayscale8` conversion weighs colours
///   in linear light instead, and gives other values); from GRAY8 the grey is copied to R, G, B.
pub type PixcacheFormat = u32;

/// Not a raster format: what `pixcache_pixmap_format` reports for the null pixmap.
pub const PIXCACHE_FORMAT_INVALID: PixcacheFormat = 0;
/// 32 bits: 8-bit R, G, B, A in that byte order, straight alpha.
pub const PIXCACHE_FORMAT_RGBA8888: PixcacheFormat = 1;
/// 32 bits: 8-bit B, G, R, A in that byte order, premultiplied alpha. This is Qt's
/// `QImage::Format_ARGB32_Premultiplied` and Cairo's `CAIRO_FORMAT_ARGB32` on little-endian hosts.
pub const PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED: PixcacheFormat = 2;
/// 24 bits: 8-bit R, G, B.
pub const PIXCACHE_FORMAT_RGB888: PixcacheFormat = 3;
/// 8 bits: luminance.
pub const PIXCACHE_FORMAT_GRAY8: PixcacheFormat = 4;
/// A foreign pixmap (`pixcache_pixmap_wrap`): pixcache knows its depth, not its layout.
pub const PIXCACHE_FORMAT_FOREIGN: PixcacheFormat = 5;
/// 32 bits: 8-bit B, G, R, A in that byte order, straight alpha. Qt's `QImage::Format_ARGB32`
/// on little-endian hosts.
pub const PIXCACHE_FORMAT_BGRA8888: PixcacheFormat = 6;
/// 32 bits: 8-bit B, G, R and a byte written 0xFF and ignored on reading (opaque). Qt's
/// `QImage::Format_RGB32` and Cairo's `CAIRO_FORMAT_RGB24` on little-endian hosts.
pub const PIXCACHE_FORMAT_BGRX8888: PixcacheFormat = 7;
/// 32 bits: 8-bit R, G, B, A in that byte order, premultiplied alpha. Qt's
/// `QImage::Format_RGBA8888_Premultiplied`, Skia's `kRGBA_8888_SkColorType` with
/// `kPremul_SkAlphaType`, the usual premultiplied `GL_RGBA` texture.
pub const PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED: PixcacheFormat = 8;

/// The format a `format` argument names, where `PIXCACHE_FORMAT_INVALID` (0) means "the
/// image's own" (`None`): the loaders' and encoders' one mapping.
pub(crate) fn optional_format(code: PixcacheFormat) -> Result<Option<Format>, Error> {
    if code == PIXCACHE_FORMAT_INVALID {
        return Ok(None);
    }
    format_from_code(code).map(Some)
}

pub(crate) fn format_from_code(code: PixcacheFormat) -> Result<Format, Error> {
    match code {
        PIXCACHE_FORMAT_RGBA8888 => Ok(Format::Rgba8888),
        PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED => Ok(Format::Bgra8888Premultiplied),
        PIXCACHE_FORMAT_RGB888 => Ok(Format::Rgb888),
        PIXCACHE_FORMAT_GRAY8 => Ok(Format::Gray8),
        PIXCACHE_FORMAT_BGRA8888 => Ok(Format::Bgra8888),
        PIXCACHE_FORMAT_BGRX8888 => Ok(Format::Bgrx8888),
        PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED => Ok(Format::Rgba8888Premultiplied),
        other => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{other} is not a raster pixel format (expected 1 to 4 or 6 to 8)"),
        )),
    }
}

fn format_code(pm: &Pixmap) -> PixcacheFormat {
    match pm.format() {
        Some(Format::Rgba8888) => PIXCACHE_FORMAT_RGBA8888,
        Some(Format::Bgra8888Premultiplied) => PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED,
        Some(Format::Rgb888) => PIXCACHE_FORMAT_RGB888,
        Some(Format::Gray8) => PIXCACHE_FORMAT_GRAY8,
        Some(Format::Bgra8888) => PIXCACHE_FORMAT_BGRA8888,
        Some(Format::Bgrx8888) => PIXCACHE_FORMAT_BGRX8888,
        Some(Format::Rgba8888Premultiplied) => PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED,
        None if pm.is_foreign() => PIXCACHE_FORMAT_FOREIGN,
        None => PIXCACHE_FORMAT_INVALID,
    }
}

/// A release function for a foreign pixmap's pixels. It runs exactly once, on whichever thread
/// drops the last share, outside every lock of pixcache (it may call pixcache, also on the cache
/// or the handle whose call is running it: that handle already holds its new pixmap). It must
/// not free the cache whose call is running it (`pixcache_cache_free` itself excepted), and
/// must not throw a C++ exception or `longjmp` out: unwinding into pixcache is undefined
/// behaviour.
pub type PixcacheReleaseFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Reads a pixmap argument.
///
/// # Safety
/// `pm` is NULL or a live pixmap handle no other thread modifies during the call.
unsafe fn pixmap<'a>(pm: *const PixcachePixmap, name: &str) -> Result<&'a Pixmap, Error> {
    // SAFETY: forwarded to the caller.
    unsafe { try_ref(pm, name) }
}

/// Reads a getter's pixmap argument, returning `default` for NULL (with the error set).
///
/// # Safety
/// As [`pixmap`].
unsafe fn get<T>(pm: *const PixcachePixmap, default: T, read: impl FnOnce(&Pixmap) -> T) -> T {
    // SAFETY: forwarded to the caller.
    call(default, || unsafe { pixmap(pm, "pm") }.map(read))
}

/// A new null pixmap (0 x 0, depth 0), like `QPixmap()`. It can be cached, costing 1 KB.
/// Free it with `pixcache_pixmap_free`.
#[no_mangle]
pub extern "C" fn pixcache_pixmap_new_null() -> *mut PixcachePixmap {
    call(ptr::null_mut(), || into_raw(Pixmap::null()))
}

/// A new raster pixmap of `width` x `height` pixels in `format`, all bytes zero. A zero width
/// or height gives a null pixmap, as `QPixmap(0, h)` does.
///
/// Returns NULL with the last error set when the format is unknown
/// (`PIXCACHE_RESULT_INVALID_ARGUMENT`), the size cannot be represented
/// (`PIXCACHE_RESULT_TOO_LARGE`), or the memory cannot be allocated
/// (`PIXCACHE_RESULT_OUT_OF_MEMORY`). It never aborts.
#[no_mangle]
pub extern "C" fn pixcache_pixmap_new(
    width: u32,
    height: u32,
    format: PixcacheFormat,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        let format = format_from_code(format)?;
        into_raw(Pixmap::new(width, height, format)?)
    })
}

/// A new handle sharing `pm`'s pixels (cheap: no pixels are copied). NULL if `pm` is NULL.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_clone(pm: *const PixcachePixmap) -> *mut PixcachePixmap {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    call(ptr::null_mut(), || {
        into_raw(unsafe { pixmap(pm, "pm") }?.clone())
    })
}

/// Makes `dst` share `src`'s pixels (`dst = src` for `QPixmap`). What `dst` held before is
/// released. Either being NULL is an error and changes nothing.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_assign(
    dst: *mut PixcachePixmap,
    src: *const PixcachePixmap,
) {
    call((), || {
        // SAFETY: C API contract: `src` is NULL or a live pixmap handle.
        let value = unsafe { pixmap(src, "src") }?.clone();
        // SAFETY: C API contract: `dst` is NULL or a live handle no other thread uses now. The
        // borrow of `src` has ended, so `dst == src` does not alias.
        let old = std::mem::replace(unsafe { try_mut(dst, "dst") }?, value);
        // Dropped only now, with `dst` already holding the new pixmap and no borrow of it left:
        // the old pixels' release callback may read or assign `dst` itself.
        drop(old);
        Ok(())
    })
}

/// Frees a pixmap handle. Its pixels are freed when no other handle and no cache shares them.
/// NULL does nothing. Using `pm` afterwards, or freeing it twice, is undefined behaviour.
/// Leaves the last error as it was (so cleanup can run before the error is read).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_free(pm: *mut PixcachePixmap) {
    // SAFETY: C API contract: `pm` is NULL or a live handle that C gives up here.
    call_keeping_error(|| unsafe { free(pm) })
}

/// True when `pm` has no pixels (width or height 0), like `QPixmap::isNull`. NULL gives true
/// (with the last error set).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_is_null(pm: *const PixcachePixmap) -> bool {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe { get(pm, true, Pixmap::is_null) }
}

/// True when `pm` has pixels and shares them with nothing: no other handle, and not the cache.
/// False for the null pixmap (as `QPixmap::isDetached`) and for NULL (with the last error set).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_is_detached(pm: *const PixcachePixmap) -> bool {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe { get(pm, false, Pixmap::is_detached) }
}

/// Width in pixels (0 for the null pixmap and for NULL).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_width(pm: *const PixcachePixmap) -> u32 {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe { get(pm, 0, Pixmap::width) }
}

/// Height in pixels (0 for the null pixmap and for NULL).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_height(pm: *const PixcachePixmap) -> u32 {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe { get(pm, 0, Pixmap::height) }
}

/// Bits per pixel, as `QPixmap::depth` (0 for the null pixmap and for NULL).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_depth(pm: *const PixcachePixmap) -> u32 {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe { get(pm, 0, Pixmap::depth) }
}

/// The pixel format: a `PIXCACHE_FORMAT_*` code, `PIXCACHE_FORMAT_FOREIGN` for a foreign pixmap
/// (even one of width or height 0), `PIXCACHE_FORMAT_INVALID` for the null pixmap and for NULL.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_format(pm: *const PixcachePixmap) -> PixcacheFormat {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe { get(pm, PIXCACHE_FORMAT_INVALID, format_code) }
}

/// Bytes per row of a raster pixmap: width times bytes per pixel, rounded up to a multiple of 4
/// (as `QImage` and Cairo lay rows out). 0 for null and foreign pixmaps.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_stride(pm: *const PixcachePixmap) -> usize {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe { get(pm, 0, Pixmap::stride) }
}

/// Read-only pixels of a raster pixmap: `height` rows of `stride` bytes. NULL for the null
/// pixmap (no error), and for a foreign pixmap or NULL `pm` (with the last error set).
///
/// The pointer stays valid while `pm` is neither modified nor freed. Never write through it.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_pixels(pm: *const PixcachePixmap) -> *const u8 {
    call(ptr::null(), || {
        // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
        let pm = unsafe { pixmap(pm, "pm") }?;
        if pm.is_foreign() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a foreign pixmap's pixels belong to its toolkit; pixcache has none to give",
            ));
        }
        Ok(pm.pixels().map_or(ptr::null(), <[u8]>::as_ptr))
    })
}

/// Writable pixels of a raster pixmap. Detaches first: if the pixels are shared (with another
/// handle or a cache) they are copied, so nothing else sees the writes. NULL for the null pixmap
/// (no error), and for a foreign pixmap, NULL `pm`, or a copy that cannot be allocated (with the
/// last error set).
///
/// The pointer stays valid until `pm` is next modified, shared (clone, insert) or freed. Writing
/// through it after sharing `pm` would change the shared pixels: call this again instead.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_pixels_mut(pm: *mut PixcachePixmap) -> *mut u8 {
    call(ptr::null_mut(), || {
        // SAFETY: C API contract: `pm` is NULL or a live handle no other thread uses now.
        let pm = unsafe { try_mut(pm, "pm") }?;
        Ok(pm.pixels_mut()?.map_or(ptr::null_mut(), Vec::as_mut_ptr))
    })
}

/// Identifies `pm`'s shared pixels, like `QPixmap::cacheKey`: equal for handles that share
/// pixels, different otherwise, never reused within the process. 0 for the null pixmap and NULL.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_cache_key(pm: *const PixcachePixmap) -> u64 {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe { get(pm, 0, Pixmap::cache_key) }
}

/// A foreign pixmap: pixels owned by a toolkit (a `QPixmap`, a `GdkPixbuf`, an `SkImage`),
/// which pixcache caches by size and depth (cost `max(1, width * height * depth / 8 / 1024)` KB)
/// and identifies by `user_data`.
///
/// `release(user_data)` runs exactly once, when the last share (handle or cache entry) is
/// dropped, on whichever thread drops it, outside every lock of pixcache, so it may call back
/// into pixcache. `release` may be NULL. `depth` is at most 128. A zero width or height gives a
/// foreign pixmap that is null (`pixcache_pixmap_is_null`).
///
/// Returns NULL with the last error set on failure; `release` is then never called and the
/// caller keeps ownership of `user_data`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_wrap(
    width: u32,
    height: u32,
    depth: u32,
    user_data: *mut c_void,
    release: PixcacheReleaseFn,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        // SAFETY: forwarded to the caller.
        into_raw(unsafe { foreign(width, height, depth, user_data, release) }?)
    })
}

/// A foreign pixmap of `user_data` (see `pixcache_pixmap_wrap`). On failure `release` is not
/// called.
///
/// # Safety
/// `release`, if any, must be callable once with `user_data`, from any thread.
unsafe fn foreign(
    width: u32,
    height: u32,
    depth: u32,
    user_data: *mut c_void,
    release: PixcacheReleaseFn,
) -> Result<Pixmap, Error> {
    let token = user_data as usize;
    // SAFETY: the release runs `f(token as *mut c_void)`, i.e. `f(user_data)`, which the caller
    // promised may be called once, from any thread.
    let release = release.map(|f| unsafe { Release::c_function(f) });
    Pixmap::foreign_with(width, height, depth, token, release)
}

/// A foreign pixmap of `user_data` that owns it whatever happens: if it cannot be made,
/// `release(user_data)` runs before this returns the error. (The `*_wrapped` cache functions
/// make it first, so that every later failure drops it, which runs `release` too.)
///
/// # Safety
/// As [`foreign`].
pub(crate) unsafe fn foreign_owned(
    width: u32,
    height: u32,
    depth: u32,
    user_data: *mut c_void,
    release: PixcacheReleaseFn,
) -> Result<Pixmap, Error> {
    // SAFETY: forwarded to the caller.
    unsafe { foreign(width, height, depth, user_data, release) }.inspect_err(|_| {
        if let Some(f) = release {
            // SAFETY: as for `foreign`; the failed pixmap never took `release`, so this is
            // its one call.
            unsafe { f(user_data) }
        }
    })
}

/// The `user_data` of a foreign pixmap; NULL for raster and null pixmaps and for NULL `pm`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_user_data(pm: *const PixcachePixmap) -> *mut c_void {
    // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
    unsafe {
        get(pm, ptr::null_mut(), |pm| {
            pm.foreign_token()
                .map_or(ptr::null_mut(), |t| t as *mut c_void)
        })
    }
}

/// Decodes the image file at `path` (PNG, JPEG, GIF's first frame, BMP, WebP or ICO; the format
/// is read from the contents) into a new pixmap in its natural format: GRAY8 for grey images,
/// RGB888 for opaque colour, RGBA8888 otherwise.
///
/// Decoding is bounded (16384 x 16384 pixels, 512 MiB): a bomb or a corrupt file fails. Returns
/// NULL with the last error set (`IO`, `DECODE`, `TOO_LARGE`, `NULL_ARGUMENT`) on failure.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_load(path: *const c_char) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        // SAFETY: C API contract: `path` is NULL or a NUL-terminated string.
        let path = unsafe { try_path(path, "path") }?;
        into_raw(decode::load(path)?)
    })
}

/// Decodes an encoded image from `len` bytes at `data`, as `pixcache_pixmap_load` does.
/// `data` must not be NULL, even when `len` is 0.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_load_from_memory(
    data: *const u8,
    len: usize,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        if data.is_null() {
            return Err(null_error("data"));
        }
        // SAFETY: C API contract: `data` points to `len` readable bytes (checked non-NULL).
        let bytes = unsafe { try_bytes_n(data.cast(), len, "data") }?;
        into_raw(decode::load_from_memory(bytes)?)
    })
}

/// `pixcache_pixmap_load`, converted to `format` (see `pixcache_pixmap_convert`).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_load_as(
    path: *const c_char,
    format: PixcacheFormat,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        let format = format_from_code(format)?;
        // SAFETY: C API contract: `path` is NULL or a NUL-terminated string.
        let path = unsafe { try_path(path, "path") }?;
        into_raw(decode::load_as(path, format)?)
    })
}

/// `pixcache_pixmap_load_from_memory`, converted to `format`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_load_from_memory_as(
    data: *const u8,
    len: usize,
    format: PixcacheFormat,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        let format = format_from_code(format)?;
        if data.is_null() {
            return Err(null_error("data"));
        }
        // SAFETY: C API contract: `data` points to `len` readable bytes (checked non-NULL).
        let bytes = unsafe { try_bytes_n(data.cast(), len, "data") }?;
        into_raw(decode::load_from_memory_as(bytes, format)?)
    })
}

/// Sets the process-wide decoding limits used by every `pixcache_pixmap_load*` and
/// `pixcache_find_or_load` call: images wider than `max_width` or taller than `max_height`
/// pixels, or whose decoding would allocate more than `max_alloc_bytes`, fail with
/// `PIXCACHE_RESULT_TOO_LARGE`: the dimensions are checked before decoding starts, and a decoder
/// is never allowed to allocate past `max_alloc_bytes` in all (it may use up to that much before
/// it finds it needs more). 0 for any of them restores its
/// default (16384, 16384, 512 MiB), which protects a desktop process from decompression bombs.
#[no_mangle]
pub extern "C" fn pixcache_set_decode_limits(
    max_width: u32,
    max_height: u32,
    max_alloc_bytes: u64,
) {
    call((), || {
        decode::set_limits(max_width, max_height, max_alloc_bytes);
        Ok(())
    })
}

/// Encodes a raster pixmap to the file at `path`, in the format its extension names
/// (case-insensitive): `.png` or `.webp` (lossless; grey, RGB or straight RGBA), `.jpg`/`.jpeg`
/// (quality 90, RGB composited over black, or grey) or `.bmp` (RGB, composited over black); see
/// `pixcache_pixmap_encode`. Returns false with the last error set on failure (`UNSUPPORTED`
/// extension or foreign pixmap, or a pixmap the format cannot hold, such as a JPEG over 65,535
/// pixels wide; `INVALID_ARGUMENT` for the null pixmap; `IO`).
///
/// The save is atomic: the image is encoded in memory, written to a new temporary file in the
/// same directory, flushed to disk and renamed over `path`. Readers see the old file or the
/// new one, never a part; a failed save leaves an existing file as it was and no temporary
/// file behind. A replaced file keeps its permission bits; a symbolic link at `path` is
/// replaced, not followed. Like any rename, it replaces a read-only file whose directory is
/// writable (Qt's `QSaveFile` refuses to); check the file's mode first if that matters.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_save(
    pm: *const PixcachePixmap,
    path: *const c_char,
) -> bool {
    call(false, || {
        // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
        let pm = unsafe { pixmap(pm, "pm") }?;
        // SAFETY: C API contract: `path` is NULL or a NUL-terminated string.
        let path = unsafe { try_path(path, "path") }?;
        crate::images::encode::save(pm, path)?;
        Ok(true)
    })
}

/// A new pixmap holding `pm`'s pixels converted to `format`: any raster format to any other, by
/// the rules on `PixcacheFormat` (Qt's: exact byte shuffles where alpha is stored alike,
/// `qPremultiply` / `qUnpremultiply`, alpha dropped, not composited, to formats without it,
/// grey by `qGray`). Converting to the same format shares the pixels. NULL with the last error
/// set for a foreign pixmap (`UNSUPPORTED`), an unknown format or out of memory.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_convert(
    pm: *const PixcachePixmap,
    format: PixcacheFormat,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        let format = format_from_code(format)?;
        // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
        let pm = unsafe { pixmap(pm, "pm") }?;
        into_raw(crate::images::convert::convert(pm, format)?)
    })
}

/// How many pixel buffers (raster or foreign) are alive in the process; handles and cache
/// entries that share pixels count once, and the null pixmap has none. A leak check for tests and
/// soak runs: once every pixmap is freed and every cache cleared, it is back to its baseline.
/// Exact when the threads that made and freed pixmaps have stopped doing so and synchronized
/// with the caller (joined, or through a lock); while they run it is approximate (each thread
/// counts in its own cell, and this sums the cells).
#[no_mangle]
pub extern "C" fn pixcache_live_pixmaps() -> usize {
    call(0, || Ok(crate::pixmap::live_pixel_buffers()))
}
