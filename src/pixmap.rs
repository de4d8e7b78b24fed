//! The pixmap value type: a cheap, reference-counted handle to immutable-while-shared pixels.
//!
//! A [`Pixmap`] behaves like `QPixmap`: cloning shares the pixels (one atomic increment), and
//! writing through [`Pixmap::pixels_mut`] first detaches (copies the pixels if anyone else shares
//! them), so a pixmap held by the cache can never change behind the cache's back.
//!
//! Two kinds of pixel storage exist:
//! - *raster*: pixels owned by pixcache, in one of the [`Format`]s, rows padded to 4 bytes;
//! - *foreign*: pixels owned by a toolkit (a `QPixmap`, a `GdkPixbuf`, ...). pixcache only knows
//!   their size and depth (for the cost) and an opaque token, and runs a release function exactly
//!   once when the last share is dropped.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::images::format::Format;
use crate::shared::Shared;
use crate::sync::tally::Tally;

/// The largest depth (bits per pixel) a foreign pixmap may declare: Qt's widest is 128 (RGBA32FPx4).
pub const MAX_FOREIGN_DEPTH: u32 = 128;

/// The largest raster pixmap pixcache will try to allocate, in bytes (1 TiB): anything larger is
/// a mistake or an attack, reported as [`ErrorKind::TooLarge`] without asking the allocator.
pub const MAX_PIXMAP_BYTES: usize = 1 << 40;

/// A release function for foreign pixels, run once when the last share is dropped.
pub type ReleaseFn = Box<dyn FnOnce() + Send + Sync>;

/// What a foreign pixmap runs once when its last share is dropped: a [`ReleaseFn`] closure, or
/// a C function called with the token as its pointer argument ([`Release::c_function`]), which
/// costs no allocation (a boxed closure around the C API's release function was a `malloc` and
/// a `free` for every foreign pixmap).
pub struct Release(ReleaseKind);

enum ReleaseKind {
    Closure(ReleaseFn),
    CFunction(unsafe extern "C" fn(*mut c_void)),
}

impl Release {
    /// Runs `f(token as *mut c_void)`, with the foreign pixmap's token, when the last share is
    /// dropped.
    ///
    /// # Safety
    /// That call must be sound once, from any thread.
    pub unsafe fn c_function(f: unsafe extern "C" fn(*mut c_void)) -> Self {
        Release(ReleaseKind::CFunction(f))
    }

    fn run(self, token: usize) {
        match self.0 {
            ReleaseKind::Closure(f) => f(),
            // SAFETY: `Release::c_function`'s caller promised this call is sound once, from any
            // thread; `self` is consumed, so it runs at most once.
            ReleaseKind::CFunction(f) => unsafe { f(token as *mut c_void) },
        }
    }
}

impl From<ReleaseFn> for Release {
    fn from(f: ReleaseFn) -> Self {
        Release(ReleaseKind::Closure(f))
    }
}

/// Source of [`Pixmap::cache_key`] values: every distinct pixel buffer gets a new serial.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Pixel buffers alive in the process (raster and foreign), for leak checks; kept per thread so
/// that making a pixmap touches no shared line (`tally.rs`).
static LIVE: Tally = Tally::new();

/// How many pixel buffers (raster or foreign; shares count once) are alive in the process.
/// A leak check: after everything is freed and every cache cleared, it returns to its baseline.
pub fn live_pixel_buffers() -> usize {
    LIVE.sum()
}

/// A pixmap value. The default is the null pixmap.
#[derive(Clone, Default)]
pub struct Pixmap {
    data: Option<Shared<PixelData>>,
}

struct PixelData {
    /// The [`Pixmap::cache_key`], drawn from [`NEXT_SERIAL`] when first asked for (0 until
    /// then): most pixmaps are never asked, and drawing it at creation was a shared atomic
    /// increment for every pixmap made.
    serial: AtomicU64,
    width: u32,
    height: u32,
    storage: Storage,
}

enum Storage {
    Raster {
        format: Format,
        stride: usize,
        bytes: Vec<u8>,
    },
    Foreign {
        depth: u32,
        token: usize,
        release: Option<Release>,
    },
}

impl Drop for PixelData {
    fn drop(&mut self) {
        LIVE.add(-1);
        if let Storage::Foreign { release, token, .. } = &mut self.storage {
            if let Some(release) = release.take() {
                release.run(*token);
            }
        }
    }
}

/// Bytes per row for `width` pixels of `format`, padded to 4 bytes like `QImage` and Cairo.
fn stride_for(width: u32, format: Format) -> Option<usize> {
    let row = (width as usize).checked_mul(format.bytes_per_pixel() as usize)?;
    row.checked_add(3).map(|r| r & !3)
}

/// Allocates `len` zeroed bytes, reporting failure instead of aborting.
fn zeroed_bytes(len: usize) -> Result<Vec<u8>> {
    if len > MAX_PIXMAP_BYTES {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("{len} bytes of pixels exceed the maximum of {MAX_PIXMAP_BYTES} bytes"),
        ));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    // A static message: formatting one could itself fail to allocate.
    let refused = || Error::new(ErrorKind::OutOfMemory, "cannot allocate the pixels");
    let layout = std::alloc::Layout::array::<u8>(len).map_err(|_| refused())?;
    // Zeroed by the allocator rather than written: for a large block that is fresh pages from
    // the kernel, already zero and not resident until drawn on (a 256 MiB pixmap made with
    // `resize` was 256 MiB resident at once and took 110 ms; this way +0 MB and no time).
    // SAFETY: `layout` has a non-zero size. `alloc_zeroed` returns null (handled) or a block of
    // `len` zeroed bytes from the global allocator with `u8`'s alignment: what a `Vec<u8>` of
    // capacity `len` owns and frees with that same layout, and all `len` bytes are initialised.
    let bytes = unsafe {
        let ptr = std::alloc::alloc_zeroed(layout);
        if ptr.is_null() {
            return Err(refused());
        }
        Vec::from_raw_parts(ptr, len, len)
    };
    Ok(bytes)
}

/// Cost in KB of a `width` x `height` image of `depth` bits per pixel: Qt's
/// `max(1, width * height * depth / 8 / 1024)`, computed without overflow.
pub fn cost_kb(width: u32, height: u32, depth: u32) -> i64 {
    let bits = u128::from(width) * u128::from(height) * u128::from(depth);
    let kb = bits / (8 * 1024);
    kb.clamp(1, i64::MAX as u128) as i64
}

/// A share of the same pixels (what inserting a `&Pixmap` stores).
impl From<&Pixmap> for Pixmap {
    fn from(pm: &Pixmap) -> Self {
        pm.clone()
    }
}

impl Pixmap {
    /// The null pixmap: no pixels, 0 x 0, depth 0. It costs 1 KB and can be cached, as in Qt.
    pub fn null() -> Self {
        Pixmap { data: None }
    }

    /// Shares `storage` as a new pixmap. Fails with [`ErrorKind::OutOfMemory`] (dropping
    /// `storage`, which runs no release callback) when the allocator refuses the shared block.
    fn from_storage(width: u32, height: u32, storage: Storage) -> Result<Self> {
        // Counted before the block exists: a refused block is dropped below, which counts down.
        LIVE.add(1);
        let data = Shared::try_new(PixelData {
            serial: AtomicU64::new(0),
            width,
            height,
            storage,
        })
        .map_err(|mut refused| {
            // As promised to callers: a release callback is dropped without being run.
            if let Storage::Foreign { release, .. } = &mut refused.storage {
                drop(release.take());
            }
            drop(refused);
            // A static message: formatting one could itself fail to allocate.
            Error::new(
                ErrorKind::OutOfMemory,
                "cannot allocate a pixmap's shared block",
            )
        })?;
        Ok(Pixmap { data: Some(data) })
    }

    /// A zeroed raster pixmap. A zero width or height gives the null pixmap, as `QPixmap(0, h)` does.
    ///
    /// Fails with [`ErrorKind::TooLarge`] when the size cannot be represented and with
    /// [`ErrorKind::OutOfMemory`] when the allocator refuses it; it never aborts.
    pub fn new(width: u32, height: u32, format: Format) -> Result<Self> {
        if width == 0 || height == 0 {
            return Ok(Pixmap::null());
        }
        let too_large = || {
            Error::new(
                ErrorKind::TooLarge,
                format!(
                    "a {width}x{height} pixmap of depth {} is too large",
                    format.depth()
                ),
            )
        };
        let stride = stride_for(width, format).ok_or_else(too_large)?;
        let len = stride.checked_mul(height as usize).ok_or_else(too_large)?;
        let bytes = zeroed_bytes(len)?;
        Self::from_storage(
            width,
            height,
            Storage::Raster {
                format,
                stride,
                bytes,
            },
        )
    }

    /// A raster pixmap over `bytes`, which hold `height` rows of `stride` bytes each.
    pub fn from_bytes(
        width: u32,
        height: u32,
        format: Format,
        stride: usize,
        bytes: Vec<u8>,
    ) -> Result<Self> {
        if width == 0 || height == 0 {
            return Ok(Pixmap::null());
        }
        let min_stride = (width as usize)
            .checked_mul(format.bytes_per_pixel() as usize)
            .ok_or_else(|| Error::new(ErrorKind::TooLarge, "row length overflows"))?;
        let needed = stride.checked_mul(height as usize);
        if stride < min_stride || needed != Some(bytes.len()) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{} bytes do not hold {height} rows of stride {stride} for width {width}",
                    bytes.len()
                ),
            ));
        }
        Self::from_storage(
            width,
            height,
            Storage::Raster {
                format,
                stride,
                bytes,
            },
        )
    }

    /// A foreign pixmap: pixels owned elsewhere, described by size and depth (bits per pixel,
    /// at most [`MAX_FOREIGN_DEPTH`]) and identified by `token`. `release` runs exactly once, on
    /// whichever thread drops the last share. On error `release` is dropped without being run.
    pub fn foreign(
        width: u32,
        height: u32,
        depth: u32,
        token: usize,
        release: Option<ReleaseFn>,
    ) -> Result<Self> {
        Self::foreign_with(width, height, depth, token, release.map(Release::from))
    }

    /// [`Pixmap::foreign`] with any [`Release`].
    pub fn foreign_with(
        width: u32,
        height: u32,
        depth: u32,
        token: usize,
        release: Option<Release>,
    ) -> Result<Self> {
        if depth > MAX_FOREIGN_DEPTH {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("depth {depth} is above the maximum of {MAX_FOREIGN_DEPTH} bits per pixel"),
            ));
        }
        Self::from_storage(
            width,
            height,
            Storage::Foreign {
                depth,
                token,
                release,
            },
        )
    }

    /// True when this holds a share of pixel data (every pixmap but [`Pixmap::null`]'s).
    #[inline]
    pub(crate) fn has_pixel_data(&self) -> bool {
        self.data.is_some()
    }

    /// True when the pixmap has no pixels (width or height is 0), like `QPixmap::isNull`.
    pub fn is_null(&self) -> bool {
        self.width() == 0 || self.height() == 0
    }

    /// True when this pixmap has pixels and nothing else (no other pixmap, not the cache) shares
    /// them. False for the null pixmap, as `QPixmap::isDetached` is.
    pub fn is_detached(&self) -> bool {
        self.data.as_ref().is_some_and(Shared::is_unique)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.data.as_ref().map_or(0, |d| d.width)
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.data.as_ref().map_or(0, |d| d.height)
    }

    /// Bits per pixel; 0 for the null pixmap.
    pub fn depth(&self) -> u32 {
        match self.data.as_deref().map(|d| &d.storage) {
            None => 0,
            Some(Storage::Raster { format, .. }) => format.depth(),
            Some(Storage::Foreign { depth, .. }) => *depth,
        }
    }

    /// The raster format, or `None` for the null pixmap and for foreign pixmaps.
    pub fn format(&self) -> Option<Format> {
        match self.data.as_deref().map(|d| &d.storage) {
            Some(Storage::Raster { format, .. }) => Some(*format),
            _ => None,
        }
    }

    /// True for a pixmap made by [`Pixmap::foreign`].
    pub fn is_foreign(&self) -> bool {
        matches!(
            self.data.as_deref().map(|d| &d.storage),
            Some(Storage::Foreign { .. })
        )
    }

    /// The foreign token, or `None` for raster and null pixmaps.
    pub fn foreign_token(&self) -> Option<usize> {
        match self.data.as_deref().map(|d| &d.storage) {
            Some(Storage::Foreign { token, .. }) => Some(*token),
            _ => None,
        }
    }

    /// Bytes per row of a raster pixmap; 0 otherwise.
    pub fn stride(&self) -> usize {
        match self.data.as_deref().map(|d| &d.storage) {
            Some(Storage::Raster { stride, .. }) => *stride,
            _ => 0,
        }
    }

    /// The pixels of a raster pixmap (`height` rows of [`Pixmap::stride`] bytes).
    pub fn pixels(&self) -> Option<&[u8]> {
        match self.data.as_deref().map(|d| &d.storage) {
            Some(Storage::Raster { bytes, .. }) => Some(bytes),
            _ => None,
        }
    }

    /// Detaches (copies the pixels if they are shared), then gives write access to them.
    /// `Ok(None)` for the null pixmap; an error for a foreign pixmap or when the copy cannot be
    /// allocated (the pixmap is then unchanged).
    pub fn pixels_mut(&mut self) -> Result<Option<&mut Vec<u8>>> {
        let Some(data) = self.data.as_mut() else {
            return Ok(None);
        };
        if Shared::get_mut(data).is_none() {
            let copy = match &data.storage {
                Storage::Raster {
                    format,
                    stride,
                    bytes,
                } => {
                    let mut new_bytes = Vec::new();
                    new_bytes.try_reserve_exact(bytes.len()).map_err(|_| {
                        Error::new(
                            ErrorKind::OutOfMemory,
                            "cannot allocate a copy of the pixels to detach the pixmap",
                        )
                    })?;
                    new_bytes.extend_from_slice(bytes);
                    Self::from_storage(
                        data.width,
                        data.height,
                        Storage::Raster {
                            format: *format,
                            stride: *stride,
                            bytes: new_bytes,
                        },
                    )?
                }
                Storage::Foreign { .. } => return Err(foreign_pixels_error()),
            };
            *self = copy;
        }
        let data = self
            .data
            .as_mut()
            .and_then(Shared::get_mut)
            .expect("a freshly detached pixmap is unique");
        match &mut data.storage {
            Storage::Raster { bytes, .. } => Ok(Some(bytes)),
            Storage::Foreign { .. } => Err(foreign_pixels_error()),
        }
    }

    /// Identifies the shared pixels, like `QPixmap::cacheKey`: two pixmaps have the same key
    /// exactly when they share pixels. 0 for the null pixmap. Never reused within a process.
    pub fn cache_key(&self) -> u64 {
        self.data.as_ref().map_or(0, |d| {
            let serial = d.serial.load(Ordering::Relaxed);
            if serial != 0 {
                return serial;
            }
            // First asked: draw one; if another thread drew one for the same pixels meanwhile,
            // theirs is the key (a drawn serial that is not kept is simply never used).
            let fresh = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
            match d
                .serial
                .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => fresh,
                Err(winner) => winner,
            }
        })
    }

    /// True when both share the same pixels (or both are the plain null pixmap).
    pub fn shares_pixels_with(&self, other: &Pixmap) -> bool {
        match (&self.data, &other.data) {
            (Some(a), Some(b)) => Shared::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// Cost in KB when cached: `max(1, width * height * depth / 8 / 1024)`.
    pub fn cost_kb(&self) -> i64 {
        cost_kb(self.width(), self.height(), self.depth())
    }
}

fn foreign_pixels_error() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "a foreign pixmap's pixels belong to its toolkit; pixcache has none to give",
    )
}

impl std::fmt::Debug for Pixmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pixmap")
            .field("width", &self.width())
            .field("height", &self.height())
            .field("depth", &self.depth())
            .field("cache_key", &self.cache_key())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn cost_follows_qt() {
        assert_eq!(cost_kb(10, 10, 32), 1);
        assert_eq!(cost_kb(64, 64, 32), 16);
        assert_eq!(cost_kb(64, 65, 32), 16);
        assert_eq!(cost_kb(0, 0, 0), 1);
        let max = u128::from(u32::MAX);
        assert_eq!(
            cost_kb(u32::MAX, u32::MAX, 128) as u128,
            max * max * 128 / 8192
        );
        assert_eq!(Pixmap::null().cost_kb(), 1);
    }

    #[test]
    fn clone_shares_and_write_detaches() {
        let mut a = Pixmap::new(4, 4, Format::Rgba8888).unwrap();
        assert!(a.is_detached());
        let b = a.clone();
        assert!(!a.is_detached() && !b.is_detached());
        assert_eq!(a.cache_key(), b.cache_key());
        a.pixels_mut().unwrap().unwrap()[0] = 7;
        assert!(a.is_detached() && b.is_detached());
        assert_ne!(a.cache_key(), b.cache_key());
        assert_eq!(b.pixels().unwrap()[0], 0);
        // The null pixmap has nothing to be detached from: false, as QPixmap::isDetached says.
        let null = Pixmap::null();
        assert!(!null.is_detached() && !null.clone().is_detached());
        assert_eq!(a.pixels().unwrap()[0], 7);
    }

    #[test]
    fn absurd_sizes_fail_cleanly() {
        let e = Pixmap::new(1 << 30, 1 << 30, Format::Rgba8888).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::TooLarge | ErrorKind::OutOfMemory
        ));
        assert!(Pixmap::new(0, 5, Format::Gray8).unwrap().is_null());
    }

    #[test]
    fn stride_is_padded_to_four() {
        let p = Pixmap::new(3, 2, Format::Rgb888).unwrap();
        assert_eq!(p.stride(), 12);
        assert_eq!(p.pixels().unwrap().len(), 24);
        assert_eq!(p.depth(), 24);
    }

    #[test]
    fn foreign_release_runs_once_on_last_drop() {
        static RELEASED: AtomicUsize = AtomicUsize::new(0);
        let p = Pixmap::foreign(
            8,
            8,
            32,
            42,
            Some(Box::new(|| {
                RELEASED.fetch_add(1, Ordering::SeqCst);
            })),
        )
        .unwrap();
        let q = p.clone();
        drop(p);
        assert_eq!(RELEASED.load(Ordering::SeqCst), 0);
        assert_eq!(q.foreign_token(), Some(42));
        assert!(q.pixels().is_none());
        drop(q);
        assert_eq!(RELEASED.load(Ordering::SeqCst), 1);
    }
}
