//! Animated images for C: `pixcache_image_frames` (frame count and delays) and
//! `pixcache_pixmap_load_frame`.

use std::ffi::c_char;
use std::ptr;

use super::boundary::{call, into_raw, null_error, try_path};
use super::pixmap::optional_format;
use super::pixmap::{PixcacheFormat, PixcachePixmap};
use crate::images::animation::{self, into_format};

/// Counts the frames of the image file at `path` and reads their delays: an animated GIF, APNG
/// or animated WebP has its frames; any other image this build decodes has 1 frame, delay 0.
/// `*count` is set to the frame count (0 on failure); the first `min(count, delays_cap)`
/// delays, in milliseconds (rounded to nearest), are written to `delays_ms`, which may be NULL
/// when `delays_cap` is 0. A GIF delay of 0 is reported as 0 (viewers often show such frames
/// for about 100 ms).
///
/// Every frame is decoded to be counted, one at a time (memory stays a few canvases, see
/// `pixcache_pixmap_load_frame`). Returns false with the last error set on failure
/// (`NULL_ARGUMENT`: `path`, `count`, or `delays_ms` with a non-zero `delays_cap`; `IO`,
/// `DECODE`, `TOO_LARGE` as `pixcache_pixmap_load`; `DECODE` also for an animation with no
/// frame at all, such as a GIF with a screen but no image). A success counts at least 1 frame.
#[no_mangle]
pub unsafe extern "C" fn pixcache_image_frames(
    path: *const c_char,
    count: *mut usize,
    delays_ms: *mut u32,
    delays_cap: usize,
) -> bool {
    // SAFETY: C API contract: `count` is NULL or writable.
    if let Some(c) = unsafe { count.as_mut() } {
        *c = 0;
    }
    call(false, || {
        if count.is_null() {
            return Err(null_error("count"));
        }
        if delays_ms.is_null() && delays_cap > 0 {
            return Err(null_error("delays_ms"));
        }
        // SAFETY: C API contract: `path` is NULL or a NUL-terminated string.
        let path = unsafe { try_path(path, "path") }?;
        let n = animation::frame_delays(path, |i, delay| {
            if i < delays_cap {
                // SAFETY: C API contract: `delays_ms` has `delays_cap` writable elements, and
                // `i < delays_cap` (so it is not NULL).
                unsafe { delays_ms.add(i).write(delay) };
            }
        })?;
        // SAFETY: checked non-NULL; writable per the C API contract.
        unsafe { *count = n };
        Ok(true)
    })
}

/// Decodes frame `n` (from 0) of the image file at `path`. For an animated GIF, APNG or WebP,
/// the frame is the full canvas after frame `n` is drawn (earlier frames' disposal and blending
/// applied, as the `image` crate composes them), in RGBA8888; any other image has only frame
/// 0, which is `pixcache_pixmap_load`'s pixmap. `format` is a `PIXCACHE_FORMAT_*` code to
/// convert to, or 0 for the format described.
///
/// The frames before `n` are decoded and dropped one at a time. Decoding is refused
/// (`TOO_LARGE`) unless 5 canvases of width x height x 4 bytes fit within the allocation limit
/// of `pixcache_set_decode_limits`, whose width and height limits apply too. NULL with the last
/// error set on failure: `INVALID_ARGUMENT` when `n` is not below the frame count (the message
/// says how many frames there are) or for an unknown format; otherwise as `pixcache_pixmap_load`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pixmap_load_frame(
    path: *const c_char,
    n: usize,
    format: PixcacheFormat,
) -> *mut PixcachePixmap {
    call(ptr::null_mut(), || {
        let format = optional_format(format)?;
        // SAFETY: C API contract: `path` is NULL or a NUL-terminated string.
        let path = unsafe { try_path(path, "path") }?;
        into_raw(into_format(animation::load_frame(path, n)?, format)?)
    })
}
