//! Fuzz targets for pixcache, driven through the C API exactly as a C caller uses it.
//!
//! - [`pixcache_fuzz_ops`]: a random sequence of cache operations on a small cache, checked
//!   against a simple model (a most-recent-first list with Qt's rules) after every step;
//! - [`pixcache_fuzz_decode`]: arbitrary bytes into the image decoders, the format converter,
//!   the `_as` variants, the loads with options of their own (`_with`) and the header-only
//!   `pixcache_image_info_from_memory`; whatever decodes is encoded again
//!   (`pixcache_pixmap_encode`: PNG and WebP must give the same pixels back, JPEG and BMP the
//!   same size); small inputs are also written to a temporary file for the path-only entry
//!   points (`pixcache_image_info`, `pixcache_image_frames`, `pixcache_pixmap_load_frame`,
//!   `pixcache_pixmap_load_scaled`);
//! - [`pixcache_fuzz_keys`]: forged, stale and cross-cache keys mixed with real ones.
//!
//! Any disagreement with the model, any caught panic (`PIXCACHE_RESULT_PANIC`: a pixcache bug)
//! and any crash aborts, which libFuzzer reports with the input. Each target is also replayed
//! over the seed corpus and the regression inputs by `cargo test` (see the tests below).
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use pixcache::ffi::animation::{pixcache_image_frames, pixcache_pixmap_load_frame};
use pixcache::ffi::cache::*;
use pixcache::ffi::encode::{
    pixcache_bytes_free, pixcache_pixmap_encode, pixcache_pixmap_load_scaled,
};
use pixcache::ffi::error::{pixcache_last_result, PixcacheResult};
use pixcache::ffi::image::*;
use pixcache::ffi::key::{pixcache_key_equal, PixcacheKey};
use pixcache::ffi::pixmap::*;

/// Reads the fuzz input one value at a time; runs out gracefully.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..8 {
            v = v << 8 | u64::from(self.byte()?);
        }
        Some(v)
    }
}

fn no_panic() {
    assert_ne!(
        pixcache_last_result(),
        PixcacheResult::Panic,
        "pixcache caught a panic (a bug)"
    );
}

static RELEASED: AtomicUsize = AtomicUsize::new(0);
unsafe extern "C" fn count_release(_: *mut c_void) {
    RELEASED.fetch_add(1, Ordering::SeqCst);
}

/// A pool of pixmaps of different costs: (handle, cost in KB).
struct Pool {
    pms: Vec<(*mut PixcachePixmap, i64)>,
}

impl Pool {
    fn new() -> Self {
        // SAFETY: plain constructor calls; every handle is freed in Drop.
        let pms = unsafe {
            vec![
                (pixcache_pixmap_new_null(), 1),
                (pixcache_pixmap_new(1, 1, PIXCACHE_FORMAT_GRAY8), 1),
                (pixcache_pixmap_new(10, 10, PIXCACHE_FORMAT_RGBA8888), 1),
                (pixcache_pixmap_new(64, 64, PIXCACHE_FORMAT_RGBA8888), 16),
                (pixcache_pixmap_new(100, 100, PIXCACHE_FORMAT_RGB888), 29),
                (
                    pixcache_pixmap_wrap(64, 64, 32, ptr::null_mut(), Some(count_release)),
                    16,
                ),
                (pixcache_pixmap_new(300, 300, PIXCACHE_FORMAT_RGBA8888), 351),
            ]
        };
        Pool { pms }
    }
    fn pick(&self, b: u8) -> (*mut PixcachePixmap, i64) {
        self.pms[usize::from(b) % self.pms.len()]
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (pm, _) in &self.pms {
            // SAFETY: each handle came from the pool's constructor and is freed once.
            unsafe { pixcache_pixmap_free(*pm) };
        }
    }
}

#[derive(Clone, PartialEq, Debug)]
enum MKey {
    Name(usize),
    Id(u64),
}

/// The model: entries most recent first, with Qt's rules.
struct Model {
    entries: Vec<(MKey, i64, u64)>,
    limit: i64,
}

impl Model {
    fn total(&self) -> i64 {
        self.entries.iter().map(|e| e.1).sum()
    }
    fn pos(&self, k: &MKey) -> Option<usize> {
        self.entries.iter().position(|e| &e.0 == k)
    }
    fn trim(&mut self, target: i64) {
        while self.total() > target && !self.entries.is_empty() {
            self.entries.pop();
        }
    }
    fn get(&mut self, k: &MKey) -> Option<u64> {
        let i = self.pos(k)?;
        let e = self.entries.remove(i);
        let pm = e.2;
        self.entries.insert(0, e);
        Some(pm)
    }
    fn remove(&mut self, k: &MKey) -> bool {
        self.pos(k).map(|i| self.entries.remove(i)).is_some()
    }
    fn put(&mut self, k: MKey, cost: i64, pm: u64) -> bool {
        if cost > self.limit {
            return false;
        }
        self.trim(self.limit - cost);
        self.entries.insert(0, (k, cost, pm));
        true
    }
}

const NAMES: [&str; 6] = ["", "a", "b", "icon:open", "icon:save", "théme/x@2x"];
const LIMITS: [i32; 8] = [0, -5, 16, 17, 50, 100, 400, 2000];

/// Target 1: operation sequences over the C API against the model.
#[no_mangle]
pub unsafe extern "C" fn pixcache_fuzz_ops(data: *const u8, len: usize) -> i32 {
    let bytes = if len == 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    let mut input = Input { data: bytes };
    let names: Vec<CString> = NAMES.iter().map(|n| CString::new(*n).unwrap()).collect();
    let pool = Pool::new();
    let released_before = RELEASED.load(Ordering::SeqCst);
    unsafe {
        let first = input.byte().unwrap_or(0);
        let limit = LIMITS[usize::from(first) % LIMITS.len()];
        let cache = pixcache_cache_new(limit);
        let out = pixcache_pixmap_new_null();
        let mut model = Model {
            entries: Vec::new(),
            limit: i64::from(limit),
        };
        // Every generated key handed out, with the model's name for it.
        let mut keys: Vec<PixcacheKey> = Vec::new();
        while let Some(op) = input.byte() {
            let arg = input.byte().unwrap_or(0);
            let key_at = |keys: &Vec<PixcacheKey>, b: u8| {
                if keys.is_empty() {
                    PixcacheKey { id: 0 }
                } else {
                    keys[usize::from(b) % keys.len()]
                }
            };
            match op % 12 {
                0 => {
                    let n = usize::from(arg) % NAMES.len();
                    let (pm, cost) = pool.pick(input.byte().unwrap_or(0));
                    let got = pixcache_insert(cache, names[n].as_ptr(), pm);
                    model.remove(&MKey::Name(n));
                    let want = model.put(MKey::Name(n), cost, pixcache_pixmap_cache_key(pm));
                    assert_eq!(got, want, "insert(\"{}\") cost {cost}", NAMES[n]);
                }
                1 => {
                    let (pm, cost) = pool.pick(arg);
                    let k = pixcache_insert_key(cache, pm);
                    assert_ne!(
                        k.id, 0,
                        "insert_key never returns the all-zero key for a valid pixmap"
                    );
                    let want = model.put(MKey::Id(k.id), cost, pixcache_pixmap_cache_key(pm));
                    assert_eq!(pixcache_key_is_valid(cache, k), want, "insert_key validity");
                    keys.push(k);
                }
                2 => {
                    let n = usize::from(arg) % NAMES.len();
                    let with_out = arg & 0x80 != 0;
                    let got = pixcache_find(
                        cache,
                        names[n].as_ptr(),
                        if with_out { out } else { ptr::null_mut() },
                    );
                    let want = model.get(&MKey::Name(n));
                    assert_eq!(got, want.is_some(), "find(\"{}\")", NAMES[n]);
                    if let (true, Some(pm)) = (with_out, want) {
                        assert_eq!(
                            pixcache_pixmap_cache_key(out),
                            pm,
                            "find returns what was inserted"
                        );
                    }
                }
                3 => {
                    let k = key_at(&keys, arg);
                    let got = pixcache_find_key(cache, k, out);
                    let want = model.get(&MKey::Id(k.id)).filter(|_| k.id != 0);
                    assert_eq!(got, want.is_some(), "find_key");
                    if let Some(pm) = want {
                        assert_eq!(pixcache_pixmap_cache_key(out), pm);
                    }
                }
                4 => {
                    let mut k = key_at(&keys, arg);
                    let old = k;
                    let (pm, cost) = pool.pick(input.byte().unwrap_or(0));
                    let valid = old.id != 0 && model.pos(&MKey::Id(old.id)).is_some();
                    let got = pixcache_replace(cache, &mut k, pm);
                    let want = if valid {
                        model.remove(&MKey::Id(old.id));
                        // The new key is unknown to the model until the call returns.
                        got && model.put(MKey::Id(k.id), cost, pixcache_pixmap_cache_key(pm))
                    } else {
                        false
                    };
                    assert_eq!(got, want, "replace");
                    if valid && !got {
                        assert!(
                            cost > model.limit,
                            "replace refused only for a pixmap over the limit"
                        );
                    }
                    if !got {
                        assert!(
                            pixcache_key_equal(k, old),
                            "a failed replace leaves the key alone"
                        );
                    } else {
                        assert!(!pixcache_key_equal(k, old), "replace gives a new key");
                        keys.push(k);
                    }
                }
                5 => {
                    let n = usize::from(arg) % NAMES.len();
                    assert_eq!(
                        pixcache_remove(cache, names[n].as_ptr()),
                        model.remove(&MKey::Name(n))
                    );
                }
                6 => {
                    let k = key_at(&keys, arg);
                    let want = k.id != 0 && model.remove(&MKey::Id(k.id));
                    assert_eq!(pixcache_remove_key(cache, k), want, "remove_key");
                }
                7 => {
                    pixcache_clear(cache);
                    model.entries.clear();
                }
                8 => {
                    let l = LIMITS[usize::from(arg) % LIMITS.len()];
                    pixcache_set_cache_limit(cache, l);
                    model.limit = i64::from(l);
                    model.trim(model.limit.max(0));
                    if l <= 0 {
                        model.entries.clear();
                    }
                    assert_eq!(pixcache_cache_limit(cache), l);
                }
                9 => {
                    pixcache_flush_detached(cache);
                    let t = model.total();
                    model.trim(t * 3 / 4);
                }
                10 => {
                    let forged = PixcacheKey {
                        id: input.u64().unwrap_or(u64::from(arg)),
                    };
                    let want = forged.id != 0 && model.pos(&MKey::Id(forged.id)).is_some();
                    assert_eq!(pixcache_key_is_valid(cache, forged), want, "forged key");
                }
                _ => {
                    // A lookup of every name, in a fixed order (the model refreshes the same way).
                    for (n, name) in names.iter().enumerate() {
                        let got = pixcache_find(cache, name.as_ptr(), out);
                        assert_eq!(got, model.get(&MKey::Name(n)).is_some());
                    }
                }
            }
            no_panic();
            // After every step: totals, entries and every key's validity.
            assert_eq!(
                i64::from(pixcache_total_used(cache)),
                model.total(),
                "total"
            );
            assert_eq!(
                pixcache_stats_v2(cache).entries,
                model.entries.len(),
                "entries"
            );
            for k in &keys {
                assert_eq!(
                    pixcache_key_is_valid(cache, *k),
                    model.pos(&MKey::Id(k.id)).is_some(),
                    "key validity"
                );
            }
        }
        pixcache_pixmap_free(out);
        pixcache_cache_free(cache);
    }
    drop(pool);
    assert_eq!(
        RELEASED.load(Ordering::SeqCst) - released_before,
        1,
        "the foreign pixmap is released exactly once"
    );
    0
}

/// The pixels of a raster pixmap converted to RGBA8888, row after row without padding.
unsafe fn rgba_rows(pm: *const PixcachePixmap) -> Vec<u8> {
    unsafe {
        let c = pixcache_pixmap_convert(pm, PIXCACHE_FORMAT_RGBA8888);
        no_panic();
        assert!(!c.is_null(), "every raster pixmap converts");
        let (w, h) = (
            pixcache_pixmap_width(c) as usize,
            pixcache_pixmap_height(c) as usize,
        );
        let stride = pixcache_pixmap_stride(c);
        let px = pixcache_pixmap_pixels(c);
        let mut out = Vec::with_capacity(w * h * 4);
        for y in 0..h {
            out.extend_from_slice(std::slice::from_raw_parts(px.add(y * stride), w * 4));
        }
        pixcache_pixmap_free(c);
        out
    }
}

/// Encodes a decoded pixmap as PNG, WebP, BMP and JPEG (quality from `q`) and decodes each
/// back: PNG and WebP are lossless (the same pixels, compared in RGBA8888), BMP and JPEG keep
/// the size.
unsafe fn encode_round_trips(pm: *const PixcachePixmap, q: u8) {
    unsafe {
        let size = (pixcache_pixmap_width(pm), pixcache_pixmap_height(pm));
        let original = rgba_rows(pm);
        for (format, quality) in [
            (PIXCACHE_IMAGE_PNG, 0),
            (PIXCACHE_IMAGE_WEBP, 0),
            (PIXCACHE_IMAGE_BMP, 0),
            (PIXCACHE_IMAGE_JPEG, i32::from(q % 101)),
        ] {
            let mut bytes = ptr::null_mut();
            let mut len = 0;
            let ok = pixcache_pixmap_encode(pm, format, quality, &mut bytes, &mut len);
            no_panic();
            if !ok {
                // JPEG refuses more than 65,535 pixels a side; nothing else may fail here.
                assert_eq!(
                    pixcache_last_result(),
                    PixcacheResult::Unsupported,
                    "encode {size:?} as {format}"
                );
                assert!(bytes.is_null() && len == 0);
                continue;
            }
            let back = pixcache_pixmap_load_from_memory(bytes, len);
            no_panic();
            pixcache_bytes_free(bytes, len);
            assert!(!back.is_null(), "{size:?} encoded as {format} decodes");
            assert_eq!(
                (pixcache_pixmap_width(back), pixcache_pixmap_height(back)),
                size,
                "{format} keeps the size"
            );
            if format == PIXCACHE_IMAGE_PNG || format == PIXCACHE_IMAGE_WEBP {
                assert!(
                    rgba_rows(back) == original,
                    "{size:?} through {format} gives other pixels"
                );
            }
            pixcache_pixmap_free(back);
        }
    }
}

/// A temporary file holding one input, removed when dropped.
struct TempInput(std::path::PathBuf, CString);

impl TempInput {
    fn new(bytes: &[u8]) -> Option<TempInput> {
        use std::os::unix::ffi::OsStrExt;
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pixcache-fuzz-{}-{}.img",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, bytes).ok()?;
        let c = CString::new(path.as_os_str().as_bytes()).ok()?;
        Some(TempInput(path, c))
    }
}

impl Drop for TempInput {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Inputs at most this long, declaring at most `SMALL_PIXELS` pixels, also go through the
/// encoders and the path-only entry points (keeps the executions per second up).
const SMALL_INPUT: usize = 64 << 10;
const SMALL_PIXELS: u64 = 256 * 256;

/// The path-only entry points on the input written to a file: `pixcache_image_info` agrees
/// with the in-memory `info`; frame counts, frames and thumbnails are consistent.
unsafe fn path_entry_points(bytes: &[u8], info: Option<PixcacheImageInfo>) {
    let Some(file) = TempInput::new(bytes) else {
        return;
    };
    let path = file.1.as_ptr();
    let tail = |i: usize| bytes.len().checked_sub(1 + i).map_or(0, |at| bytes[at]);
    unsafe {
        let mut from_path = PixcacheImageInfo {
            width: 1,
            height: 1,
            stored_width: 1,
            stored_height: 1,
            format: 1,
            orientation: 1,
            has_alpha: 1,
        };
        let ok = pixcache_image_info(path, &mut from_path);
        no_panic();
        assert_eq!(ok, info.is_some(), "info from the file and from memory");
        if let Some(info) = info {
            assert_eq!(from_path, info, "info from the file and from memory");
        }

        let loaded = pixcache_pixmap_load(path);
        no_panic();
        let loaded_size = (!loaded.is_null()).then(|| {
            (
                pixcache_pixmap_width(loaded),
                pixcache_pixmap_height(loaded),
            )
        });
        pixcache_pixmap_free(loaded);

        // Frames: a count, delays no further than the capacity, frame 0 and the last decode,
        // one past the last is INVALID_ARGUMENT.
        const CAP: usize = 4;
        let mut count = usize::MAX;
        let mut delays = [u32::MAX; CAP + 1];
        let cap = usize::from(tail(5)) % (CAP + 1);
        let ok = pixcache_image_frames(path, &mut count, delays.as_mut_ptr(), cap);
        no_panic();
        if ok {
            assert!(
                count >= 1,
                "a count that succeeds has a frame (no frames is DECODE)"
            );
            assert!(
                delays[cap.min(count)..].iter().all(|&d| d == u32::MAX),
                "delays written past min(count, cap)"
            );
            let format = u32::from(tail(6)) % 5;
            for n in [0, count.max(1) - 1].into_iter().take(count) {
                let pm = pixcache_pixmap_load_frame(path, n, format);
                no_panic();
                if !pm.is_null() {
                    if count == 1 && format == 0 {
                        assert_eq!(
                            Some((pixcache_pixmap_width(pm), pixcache_pixmap_height(pm))),
                            loaded_size,
                            "frame 0 of a still image is pixcache_pixmap_load's pixmap"
                        );
                    }
                    pixcache_pixmap_free(pm);
                }
            }
            if count < 64 {
                let pm = pixcache_pixmap_load_frame(path, count, 0);
                no_panic();
                assert!(pm.is_null(), "frame {count} of {count}");
                assert_eq!(
                    pixcache_last_result(),
                    PixcacheResult::InvalidArgument,
                    "frame {count} of {count}"
                );
            }
        } else {
            assert_eq!(count, 0, "a failed count is 0");
        }

        // A thumbnail fits its box (0: unbounded) and is never larger than the image (a
        // header with a side of 0, regressions/decode/load-scaled-zero-height.gif, once made
        // thumbnail::fitted_size panic).
        let (bw, bh) = (u32::from(tail(7)) % 65, u32::from(tail(8)) % 65);
        let pm = pixcache_pixmap_load_scaled(path, bw, bh, u32::from(tail(9)) % 5);
        no_panic();
        if !pm.is_null() {
            let (w, h) = (pixcache_pixmap_width(pm), pixcache_pixmap_height(pm));
            assert!(w >= 1 && h >= 1);
            assert!(bw == 0 || w <= bw, "{w}x{h} in {bw}x{bh}");
            assert!(bh == 0 || h <= bh, "{w}x{h} in {bw}x{bh}");
            if let Some(info) = info {
                assert!(
                    u64::from(w) * u64::from(h)
                        <= u64::from(info.stored_width) * u64::from(info.stored_height),
                    "{w}x{h} from {info:?}: never upscaled"
                );
            }
            pixcache_pixmap_free(pm);
        }
    }
}

/// Target 2: arbitrary bytes into the decoders and the converter.
#[no_mangle]
pub unsafe extern "C" fn pixcache_fuzz_decode(data: *const u8, len: usize) -> i32 {
    static LIMITS_SET: std::sync::Once = std::sync::Once::new();
    // Keep each input's memory bounded well under libFuzzer's RSS limit.
    LIMITS_SET.call_once(|| pixcache_set_decode_limits(4096, 4096, 64 << 20));
    let data = if data.is_null() { [].as_ptr() } else { data };
    unsafe {
        let pm = pixcache_pixmap_load_from_memory(data, len);
        no_panic();
        if !pm.is_null() {
            let (w, h) = (pixcache_pixmap_width(pm), pixcache_pixmap_height(pm));
            let stride = pixcache_pixmap_stride(pm);
            assert!(stride >= w as usize * (pixcache_pixmap_depth(pm) as usize / 8));
            for format in 1..=4 {
                let c = pixcache_pixmap_convert(pm, format);
                no_panic();
                assert!(!c.is_null(), "every raster pixmap converts");
                assert_eq!(
                    (pixcache_pixmap_width(c), pixcache_pixmap_height(c)),
                    (w, h)
                );
                pixcache_pixmap_free(c);
            }
            pixcache_pixmap_free(pm);
        }
        let format = if len > 0 { u32::from(*data) % 6 } else { 1 };
        let pm = pixcache_pixmap_load_from_memory_as(data, len, format);
        no_panic();
        pixcache_pixmap_free(pm);

        // The header alone: whatever it says is well formed, and agrees with a full load.
        let mut info = PixcacheImageInfo {
            width: 0,
            height: 0,
            stored_width: 0,
            stored_height: 0,
            format: 0,
            orientation: 0,
            has_alpha: 0,
        };
        let has_info = pixcache_image_info_from_memory(data, len, &mut info);
        no_panic();
        if has_info {
            assert!((1..=6).contains(&info.format), "{info:?}");
            assert!((1..=8).contains(&info.orientation), "{info:?}");
            assert!((-1..=1).contains(&info.has_alpha), "{info:?}");
            let turned = info.orientation >= 5;
            let stored = if turned {
                (info.height, info.width)
            } else {
                (info.width, info.height)
            };
            assert_eq!(stored, (info.stored_width, info.stored_height), "{info:?}");
        }
        let small = len <= SMALL_INPUT
            && has_info
            && u64::from(info.stored_width) * u64::from(info.stored_height) <= SMALL_PIXELS;
        let pm = pixcache_pixmap_load_from_memory_with(data, len, ptr::null());
        no_panic();
        if !pm.is_null() {
            assert!(has_info, "an image that loads has a header");
            assert_eq!(
                (pixcache_pixmap_width(pm), pixcache_pixmap_height(pm)),
                (info.width, info.height),
                "load and info agree on the size"
            );
            if small {
                encode_round_trips(pm, if len > 10 { *data.add(len - 11) } else { 0 });
            }
            pixcache_pixmap_free(pm);
        }
        if len <= SMALL_INPUT && (small || !has_info) {
            path_entry_points(
                std::slice::from_raw_parts(data, len),
                has_info.then_some(info),
            );
        }

        // Options of its own, from the input's last bytes: any format code, orientation on or
        // off, small limits (bounded by the process-wide allocation limit set above).
        let tail = |i: usize| if len > i { *data.add(len - 1 - i) } else { 0 };
        let options = PixcacheLoadOptions {
            size: std::mem::size_of::<PixcacheLoadOptions>(),
            format: u32::from(tail(0)) % 10,
            apply_orientation: tail(1) & 1 == 1,
            max_width: u32::from(tail(2)) * 16,
            max_height: u32::from(tail(3)) * 16,
            max_alloc: u64::from(tail(4)) << 16,
        };
        let pm = pixcache_pixmap_load_from_memory_with(data, len, &options);
        no_panic();
        if !pm.is_null() {
            let (w, h) = (pixcache_pixmap_width(pm), pixcache_pixmap_height(pm));
            let max = |v: u32, limit: u32| if limit == 0 { v <= 4096 } else { v <= limit };
            assert!(
                (max(w, options.max_width) && max(h, options.max_height))
                    || (options.apply_orientation
                        && max(h, options.max_width)
                        && max(w, options.max_height)),
                "{w}x{h} under {options:?}"
            );
            pixcache_pixmap_free(pm);
        }
    }
    0
}

/// Target 3: forged, stale and cross-cache keys mixed with real ones, on two caches with no
/// eviction (liveness changes only by remove, replace and clear, which the model tracks).
#[no_mangle]
pub unsafe extern "C" fn pixcache_fuzz_keys(data: *const u8, len: usize) -> i32 {
    let bytes = if len == 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    let mut input = Input { data: bytes };
    unsafe {
        let caches = [pixcache_cache_new(i32::MAX), pixcache_cache_new(i32::MAX)];
        let pm = pixcache_pixmap_new(2, 2, PIXCACHE_FORMAT_GRAY8);
        let out = pixcache_pixmap_new_null();
        let mut live: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        let mut seen: Vec<PixcacheKey> = Vec::new();
        while let Some(op) = input.byte() {
            let c = usize::from(op >> 7);
            let arg = input.byte().unwrap_or(0);
            let any = |seen: &Vec<PixcacheKey>| {
                if seen.is_empty() {
                    PixcacheKey { id: u64::from(arg) }
                } else {
                    seen[usize::from(arg) % seen.len()]
                }
            };
            match op % 6 {
                0 => {
                    let k = pixcache_insert_key(caches[c], pm);
                    live[c].push(k.id);
                    seen.push(k);
                }
                1 => {
                    let k = any(&seen);
                    let want = live[c].contains(&k.id);
                    assert_eq!(pixcache_remove_key(caches[c], k), want);
                    live[c].retain(|&x| x != k.id);
                }
                2 => {
                    let mut k = any(&seen);
                    let old = k.id;
                    let want = live[c].contains(&old);
                    assert_eq!(pixcache_replace(caches[c], &mut k, pm), want);
                    if want {
                        live[c].retain(|&x| x != old);
                        live[c].push(k.id);
                        seen.push(k);
                    }
                }
                3 => {
                    pixcache_clear(caches[c]);
                    live[c].clear();
                }
                4 => {
                    let forged = PixcacheKey {
                        id: input.u64().unwrap_or(u64::from(arg)),
                    };
                    seen.push(forged);
                }
                _ => {
                    let k = any(&seen);
                    assert_eq!(
                        pixcache_find_key(caches[c], k, out),
                        live[c].contains(&k.id)
                    );
                }
            }
            no_panic();
            for k in &seen {
                for (i, cache) in caches.iter().enumerate() {
                    assert_eq!(
                        pixcache_key_is_valid(*cache, *k),
                        live[i].contains(&k.id),
                        "key {:#x} in cache {i}",
                        k.id
                    );
                }
            }
        }
        pixcache_pixmap_free(out);
        pixcache_pixmap_free(pm);
        for cache in caches {
            pixcache_cache_free(cache);
        }
    }
    0
}

#[cfg(test)]
mod tests {
    //! Replays the seed corpus and every regression input (a crash libFuzzer ever found is
    //! saved in fuzz/regressions/<target>/ and stays a test forever).
    use std::path::Path;

    fn replay(target: &str, run: unsafe extern "C" fn(*const u8, usize) -> i32) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for dir in [
            root.join("corpus").join(target),
            root.join("regressions").join(target),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let bytes = std::fs::read(entry.path()).unwrap();
                // SAFETY: a valid slice.
                unsafe { run(bytes.as_ptr(), bytes.len()) };
                n += 1;
            }
        }
        assert!(n > 0, "no inputs for {target}");
        println!("{target}: {n} inputs replayed");
    }

    #[test]
    fn replay_ops() {
        replay("ops", super::pixcache_fuzz_ops);
    }

    #[test]
    fn replay_decode() {
        replay("decode", super::pixcache_fuzz_decode);
    }

    #[test]
    fn replay_keys() {
        replay("keys", super::pixcache_fuzz_keys);
    }
}
