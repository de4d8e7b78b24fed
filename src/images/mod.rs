//! Pixels in and between formats, apart from the cache: [`format`] (the pixel formats and their
//! layouts), [`convert`] (exact conversions between them) and [`decode`] (image files in, within
//! limits, and encoding out).

/// cbindgen:ignore
pub mod animation;
/// cbindgen:ignore
pub mod convert;
/// cbindgen:ignore
pub mod decode;
/// cbindgen:ignore
pub mod encode;
/// cbindgen:ignore
pub mod file_key;
/// cbindgen:ignore
pub mod format;
/// cbindgen:ignore
pub mod thumbnail;
