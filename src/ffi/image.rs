//! Image files beyond `pixcache_pixmap_load`: loads with options of their own
//! (`PixcacheLoadOptions`: format, EXIF orientation, limits for one call), the process-wide
//! decoding limits read back, and header-only queries (`pixcache_image_info`).

use std::ffi::c_char;
use std::ptr;

use super::boundary::{call, into_raw, null_error, try_bytes_n, try_path};
use super::pixmap::{PixcacheFormat, PixcachePixmap, PIXCACHE_FORMAT_INVALID};
use crate::error::Result;
use crate::images::decode::{self, FileFormat, ImageInfo, LoadOptions};

/// How `pixcache_pixmap_load_with` and `pixcache_pixmap_load_from_memory_with` decode. Start
/// from `pixcache_load_options_default()` (which sets `size`) and change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixcacheLoadOptions {
    /// `sizeof(PixcacheLoadOptions)` as the caller's header declares it, set by
    /// `pixcache_load_options_default()`. It lets a later pixcache, whose struct may have grown,
    /// tell a caller's older struct from its own; today only this size is accepted, any other
    /// value is `PIXCACHE_RESULT_INVALID_ARGUMENT`.
    pub size: usize,
    /// `PIXCACHE_FORMAT_INVALID`: the image's natural format (as `pixcache_pixmap_load`);
    /// otherwise the raster format to convert to (as `pixcache_pixmap_load_as`).
    pub format: PixcacheFormat,
    /// Turn the image as its EXIF orientation says (JPEG, PNG, WebP), as browsers show it.
    /// `pixcache_pixmap_load*` and `pixcache_find_or_load*` always do.
    pub apply_orientation: bool,
    /// Largest width and height accepted, as stored in the file (before orientation), for this
    /// call only; 0: the process-wide limit in force.
    pub max_width: u32,
    /// See `max_width`.
    pub max_height: u32,
    /// Largest allocation decoding may make, in bytes, for this call only; 0: the process-wide
    /// limit in force.
    pub max_alloc: u64,
}

/// The options `pixcache_pixmap_load` uses now: the natural format, the orientation applied, and
/// the process-wide decoding limits in force (`pixcache_set_decode_limits`), copied: later
/// changes to the process-wide limits do not change the struct.
#[no_mangle]
pub extern "C" fn pixcache_load_options_default() -> PixcacheLoadOptions {
    let fallback = PixcacheLoadOptions {
        size: std::mem::size_of::<PixcacheLoadOptions>(),
        format: PIXCACHE_FORMAT_INVALID,
        apply_orientation: true,
        max_width: decode::DEFAULT_MAX_DIMENSION,
        max_height: decode::DEFAULT_MAX_DIMENSION,
        max_alloc: decode::DEFAULT_MAX_ALLOC,
    };
    call(fallback, || {
        let (max_width, max_height, max_alloc) = decode::limits_in_force();
        Ok(PixcacheLoadOptions {
            max_width,
            max_height,
            max_alloc,
            ..fallback
        })
    })
}

/// Reads the process-wide decoding limits in force (`pixcache_set_decode_limits`): largest
/// width, largest height, largest allocation in bytes. Any pointer may be NULL (that value is
/// not written).
#[no_mangle]
pub unsafe extern "C" fn pixcache_decode_limits(
    max_width: *mut u32,
    max_height: *mut u32,
    max_alloc: *mut u64,
) {
    call((), || {
        let (w, h, alloc) = decode::limits_in_force();
        // SAFETY: C API contract: each pointer is NULL or points to a writable value of its type.
        unsafe {
            if let Some(out) = max_width.as_mut() {
                *out = w;
            }
            if let Some(out) = max_height.as_mut() {
                *out = h;
            }
            if let Some(out) = max_alloc.as_mut() {
                *out = alloc;
            }
        }
        Ok(())
    })
}

/// The Rust options a C options pointer stands for (NULL: the defaults).
///
/// # Safety
/// `options` is NULL or points to a readable `PixcacheLoadOptions`.
unsafe fn load_options(options: *const PixcacheLoadOptions) -> Result<LoadOptions> {
    let in_force = LoadOptions::in_force();
    // SAFETY: forwarded to the caller.
    let Some(o) = (unsafe { options.as_ref() }) else {
        return Ok(in_force);
    };
    if o.size != std::mem::size_of::<PixcacheLoadOptions>() {
        return Err(crate::error::Error::new(
            crate::error::ErrorKind::InvalidArgument,
            format!(
                "options.size is {}, not sizeof(PixcacheLoadOptions) = {}: start from pixcache_load_options_default()",
                o.size,
                std::mem::size_of::<PixcacheLoadOptions>()
            ),
        ));
    }
    let or = |v: u32, d: u32| if v == 0 { d } else { v };
    Ok(LoadOptions {
        format: super::pixmap::optional_format(o.format)?,
        apply_orientation: o.apply_orientation,
        max_width: or(o.max_width, in_force.max_width),
        max_height: or(o.max_height, in_force.max_height),
        max_alloc: if o.max_alloc == 0 {
            in_force.max_alloc
        } else {
            o.max_alloc
        },
    })
}

/// `pixcache_pixmap_load` as `options` say (NULL: `pixcache_load_options_default()`): the
/// format to convert to, whether to apply the EXIF orientation, and the decoding limits for
/// this call. NULL with the last error set on failure: `NULL_ARGUMENT` (`path`),
/// `INVALID_ARGUMENT` (an unknown `options->format`), `IO`, `DECODE`, `TOO_LARGE` (over the
/// limits, checked against the file's header before decoding, with the size in the message).
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_load_with(
    path: *const c_char,
    options: *const PixcacheLoadOptions,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        // SAFETY: C API contract: `path` is NULL or a NUL-terminated string, `options` NULL or
        // a readable struct.
        let (path, options) = unsafe { (try_path(path, "path")?, load_options(options)?) };
        into_raw(decode::load_with(path, &options)?)
    })
}

/// `pixcache_pixmap_load_from_memory` (`len` bytes at `data`, which must not be NULL) as
/// `options` say (NULL: the defaults); see `pixcache_pixmap_load_with`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_load_from_memory_with(
    data: *const u8,
    len: usize,
    options: *const PixcacheLoadOptions,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        if data.is_null() {
            return Err(null_error("data"));
        }
        // SAFETY: C API contract: `data` points to `len` readable bytes (checked non-NULL),
        // `options` is NULL or a readable struct.
        let (bytes, options) = unsafe {
            (
                try_bytes_n(data.cast(), len, "data")?,
                load_options(options)?,
            )
        };
        into_raw(decode::load_from_memory_with(bytes, &options)?)
    })
}

// File format codes (`PIXCACHE_IMAGE_*`): one set, in encode.rs, for encoding and for
// `pixcache_image_info`.
pub use super::encode::{
    PixcacheImageFormat, PIXCACHE_IMAGE_BMP, PIXCACHE_IMAGE_GIF, PIXCACHE_IMAGE_ICO,
    PIXCACHE_IMAGE_JPEG, PIXCACHE_IMAGE_PNG, PIXCACHE_IMAGE_UNKNOWN, PIXCACHE_IMAGE_WEBP,
};

/// What `pixcache_image_info` reads from an image's header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixcacheImageInfo {
    /// Width as `pixcache_pixmap_load` gives the image: after its EXIF orientation (orientations
    /// 5 to 8 swap width and height).
    pub width: u32,
    /// Height after the EXIF orientation.
    pub height: u32,
    /// Width as stored in the file, before orientation (what the decoding limits apply to).
    pub stored_width: u32,
    /// Height as stored in the file.
    pub stored_height: u32,
    /// A `PIXCACHE_IMAGE_*` code.
    pub format: PixcacheImageFormat,
    /// The EXIF orientation, 1 to 8 (1: upright, or no EXIF orientation).
    pub orientation: u32,
    /// 1 if the decoded image has an alpha channel (loading then gives RGBA8888: always so for
    /// GIF), 0 if not, -1 if the header does not say (read from a header no decoder takes).
    pub has_alpha: i32,
}

impl PixcacheImageInfo {
    const UNKNOWN: PixcacheImageInfo = PixcacheImageInfo {
        width: 0,
        height: 0,
        stored_width: 0,
        stored_height: 0,
        format: PIXCACHE_IMAGE_UNKNOWN,
        orientation: 0,
        has_alpha: -1,
    };

    fn from_info(info: ImageInfo) -> Self {
        PixcacheImageInfo {
            width: info.width,
            height: info.height,
            stored_width: info.stored_width,
            stored_height: info.stored_height,
            format: match info.format {
                FileFormat::Png => PIXCACHE_IMAGE_PNG,
                FileFormat::Jpeg => PIXCACHE_IMAGE_JPEG,
                FileFormat::Gif => PIXCACHE_IMAGE_GIF,
                FileFormat::Bmp => PIXCACHE_IMAGE_BMP,
                FileFormat::WebP => PIXCACHE_IMAGE_WEBP,
                FileFormat::Ico => PIXCACHE_IMAGE_ICO,
            },
            orientation: u32::from(info.orientation),
            has_alpha: info.has_alpha.map_or(-1, i32::from),
        }
    }
}

/// Writes `result` (or, on failure, the unknown info) to `out`, NULL-checked first.
///
/// # Safety
/// `out` is NULL or points to a writable `PixcacheImageInfo`.
unsafe fn write_info(
    out: *mut PixcacheImageInfo,
    result: impl FnOnce() -> Result<ImageInfo>,
) -> bool {
    call(false, || {
        // SAFETY: C API contract: `out` is NULL or points to a writable struct.
        let out = unsafe { out.as_mut() }.ok_or_else(|| null_error("out"))?;
        *out = PixcacheImageInfo::UNKNOWN;
        *out = PixcacheImageInfo::from_info(result()?);
        Ok(true)
    })
}

/// Reads the header of the image file at `path` into `*out` without decoding a pixel (at most
/// its first megabyte is read): the size after and before its EXIF orientation, the format,
/// whether it has alpha, the orientation. The decoding limits do not apply: an image too large
/// to load reports its size, and so does a file cut short after its header. True on success;
/// false with the last error set (`NULL_ARGUMENT`, `IO`, `DECODE`) and `*out` zeroed (format
/// `PIXCACHE_IMAGE_UNKNOWN`, has_alpha -1) otherwise (`out` NULL: nothing written).
#[no_mangle]
pub unsafe extern "C" fn pixcache_image_info(
    path: *const c_char,
    out: *mut PixcacheImageInfo,
) -> bool {
    // SAFETY: C API contract: `out` is NULL or writable; `path` is NULL or a NUL-terminated
    // string.
    unsafe { write_info(out, || decode::image_info(try_path(path, "path")?)) }
}

/// `pixcache_image_info` for `len` bytes at `data` (which must not be NULL).
#[no_mangle]
pub unsafe extern "C" fn pixcache_image_info_from_memory(
    data: *const u8,
    len: usize,
    out: *mut PixcacheImageInfo,
) -> bool {
    // SAFETY: C API contract: `out` is NULL or writable; `data` points to `len` readable bytes
    // (checked non-NULL).
    unsafe {
        write_info(out, || {
            if data.is_null() {
                return Err(null_error("data"));
            }
            decode::image_info_from_memory(try_bytes_n(data.cast(), len, "data")?)
        })
    }
}
