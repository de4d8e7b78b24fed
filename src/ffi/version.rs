//! The library's version, from Cargo.toml (the header's `PIXCACHE_VERSION_*` macros come from
//! the same place, through build.rs).

use std::ffi::c_char;

/// The version of the library that is running, e.g. `"0.1.0"`: compare it with the header's
/// `PIXCACHE_VERSION_STRING` to detect a header/library mismatch. Static; never NULL.
#[no_mangle]
pub extern "C" fn pixcache_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
