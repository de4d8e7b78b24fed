//! Encoding pixmaps for C: `pixcache_pixmap_encode` (to memory, freed with
//! `pixcache_bytes_free`), `pixcache_pixmap_save_as` (a named format, saved atomically), and
//! thumbnails (`pixcache_pixmap_load_scaled`).

use std::ffi::c_char;
use std::ptr;

use super::boundary::{call, call_keeping_error, into_raw, null_error, try_path, try_ref};
use super::pixmap::{PixcacheFormat, PixcachePixmap};
use crate::error::{Error, ErrorKind, Result};
use crate::images::animation::into_format;
use crate::images::encode::{self, FileFormat};
use crate::images::thumbnail::{self, Filter};
use crate::pixmap::Pixmap;

/// An image file format code (`PIXCACHE_IMAGE_*`). Passed as a plain integer: any value is
/// safe to pass (an unknown one is reported as `PIXCACHE_RESULT_INVALID_ARGUMENT`).
pub type PixcacheImageFormat = u32;

/// Not a file format: what a failed `pixcache_image_info` leaves in its `out`.
pub const PIXCACHE_IMAGE_UNKNOWN: PixcacheImageFormat = 0;
/// PNG: lossless; grey, RGB and RGBA pixmaps keep their channels.
pub const PIXCACHE_IMAGE_PNG: PixcacheImageFormat = 1;
/// JPEG: lossy, no alpha (pixmaps with alpha are composited over black).
pub const PIXCACHE_IMAGE_JPEG: PixcacheImageFormat = 2;
/// GIF: decoded (first frame, or any frame with `pixcache_pixmap_load_frame`), not encoded.
pub const PIXCACHE_IMAGE_GIF: PixcacheImageFormat = 3;
/// BMP: encoded as 24-bit RGB (alpha composited over black).
pub const PIXCACHE_IMAGE_BMP: PixcacheImageFormat = 4;
/// WebP: encoded lossless; grey, RGB and RGBA kept.
pub const PIXCACHE_IMAGE_WEBP: PixcacheImageFormat = 5;
/// ICO: decoded, not encoded (`pixcache_image_info` reports the sizes of the entry loading
/// picks: most bits per pixel, then largest).
pub const PIXCACHE_IMAGE_ICO: PixcacheImageFormat = 6;

fn file_format(code: PixcacheImageFormat) -> Result<FileFormat> {
    Ok(match code {
        PIXCACHE_IMAGE_PNG => FileFormat::Png,
        PIXCACHE_IMAGE_JPEG => FileFormat::Jpeg,
        PIXCACHE_IMAGE_GIF => FileFormat::Gif,
        PIXCACHE_IMAGE_BMP => FileFormat::Bmp,
        PIXCACHE_IMAGE_WEBP => FileFormat::WebP,
        PIXCACHE_IMAGE_ICO => FileFormat::Ico,
        other => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{other} is not an image file format (expected 1 to 6)"),
            ))
        }
    })
}

/// JPEG's quality as the core takes it; other formats ignore it, whatever it is.
fn quality(file: FileFormat, q: i32) -> Result<u32> {
    if file != FileFormat::Jpeg {
        return Ok(0);
    }
    u32::try_from(q).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("quality {q} is out of range (1 to 100, or 0 for the default)"),
        )
    })
}

/// Encodes a raster pixmap to memory as `format` (`PIXCACHE_IMAGE_PNG`, `_JPEG`, `_WEBP` or
/// `_BMP`). `quality` is JPEG's, 1 (smallest) to 100 (best), or 0 for the default, 90; other
/// formats ignore it.
///
/// What is encoded: PNG and WebP (lossless) keep grey, RGB and RGBA as they are, and a
/// BGRA8888_PREMULTIPLIED pixmap is unpremultiplied to straight RGBA first, so
/// `pixcache_pixmap_load_from_memory` gives back the same pixels (the premultiplied ones in
/// RGBA8888; WebP has no grey model, so grey comes back as RGB888 with r = g = b). JPEG has no alpha: a pixmap with alpha is composited over black (its
/// premultiplied colour; `pixcache_pixmap_convert` to RGB888 instead drops alpha, as Qt's
/// `convertToFormat` does); grey stays grey. BMP is
/// 24-bit RGB, alpha composited over black.
///
/// On success `*bytes` holds a new buffer of `*len` bytes, to free with `pixcache_bytes_free`.
/// On failure returns false, sets `*bytes` to NULL and `*len` to 0 (when they are not NULL) and
/// the last error: `NULL_ARGUMENT`; `INVALID_ARGUMENT` for the null pixmap, an unknown format
/// or a JPEG quality outside 0..100; `UNSUPPORTED` for a foreign pixmap, GIF or ICO, or an
/// image the format cannot hold (JPEG is at most 65,535 pixels wide); `OUT_OF_MEMORY`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_encode(
    pm: *const PixcachePixmap,
    format: PixcacheImageFormat,
    quality: i32,
    bytes: *mut *mut u8,
    len: *mut usize,
) -> bool {
    // SAFETY: C API contract: `bytes` and `len` are NULL or writable.
    unsafe {
        if let Some(b) = bytes.as_mut() {
            *b = ptr::null_mut();
        }
        if let Some(l) = len.as_mut() {
            *l = 0;
        }
    }
    call(false, || {
        if bytes.is_null() {
            return Err(null_error("bytes"));
        }
        if len.is_null() {
            return Err(null_error("len"));
        }
        // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
        let pm: &Pixmap = unsafe { try_ref(pm, "pm") }?;
        let file = file_format(format)?;
        let encoded = encode::encode(pm, file, self::quality(file, quality)?)?;
        let boxed = encoded.into_boxed_slice();
        let n = boxed.len();
        let raw = Box::into_raw(boxed).cast::<u8>();
        // SAFETY: both checked non-NULL above; the C API contract makes them writable.
        unsafe {
            *bytes = raw;
            *len = n;
        }
        Ok(true)
    })
}

/// Frees a buffer from `pixcache_pixmap_encode`; `len` is the length it gave. NULL does
/// nothing. Leaves the last error as it was.
#[no_mangle]
pub unsafe extern "C" fn pixcache_bytes_free(bytes: *mut u8, len: usize) {
    call_keeping_error(|| {
        if !bytes.is_null() {
            let slice = ptr::slice_from_raw_parts_mut(bytes, len);
            // SAFETY: C API contract: `bytes` and `len` came from `pixcache_pixmap_encode`,
            // which made them with `Box::<[u8]>::into_raw`, and are given back once.
            drop(unsafe { Box::from_raw(slice) });
        }
    })
}

/// Encodes `pm` as `format` (see `pixcache_pixmap_encode`, also for `quality`) and saves it to
/// `path` (any bytes but NUL; the extension does not matter) atomically, as
/// `pixcache_pixmap_save` does: a temporary file in the same directory, flushed and renamed over
/// `path`. A failed save leaves an existing file untouched and no temporary file. Returns false
/// with the last error set on failure (the codes of `pixcache_pixmap_encode`, and `IO`).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_save_as(
    pm: *const PixcachePixmap,
    path: *const c_char,
    format: PixcacheImageFormat,
    quality: i32,
) -> bool {
    call(false, || {
        // SAFETY: C API contract: `pm` is NULL or a live pixmap handle.
        let pm: &Pixmap = unsafe { try_ref(pm, "pm") }?;
        // SAFETY: C API contract: `path` is NULL or a NUL-terminated string.
        let path = unsafe { try_path(path, "path") }?;
        let file = file_format(format)?;
        encode::save_as(pm, path, file, self::quality(file, quality)?)?;
        Ok(true)
    })
}

/// Decodes the image file at `path` (as `pixcache_pixmap_load`) and scales it down to fit
/// within `max_width` x `max_height`, keeping its aspect ratio (each side rounded to nearest,
/// at least 1 pixel); an image that fits already is not scaled (never upscaled). A bound of 0
/// leaves that side unbounded. Scaling uses a Catmull-Rom (bicubic) filter, on premultiplied
/// colour for images with alpha. `format` is a `PIXCACHE_FORMAT_*` code to convert to, or 0 for
/// the natural format of `pixcache_pixmap_load`.
///
/// JPEGs are decoded at full size before scaling (no DCT-scaled decoding in this build). The
/// decoding limits (`pixcache_set_decode_limits`) apply, and the scaling's buffers count
/// against the allocation limit. NULL with the last error set on failure (as
/// `pixcache_pixmap_load`; `INVALID_ARGUMENT` for an unknown format).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_load_scaled(
    path: *const c_char,
    max_width: u32,
    max_height: u32,
    format: PixcacheFormat,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        let format = super::pixmap::optional_format(format)?;
        // SAFETY: C API contract: `path` is NULL or a NUL-terminated string.
        let path = unsafe { try_path(path, "path") }?;
        let pm = thumbnail::load_scaled(path, max_width, max_height, Filter::CatmullRom)?;
        into_raw(into_format(pm, format)?)
    })
}
