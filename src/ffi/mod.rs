//! The C API. cbindgen turns this module into `include/pixcache.h`.
//!
//! One file per exported concept: [`boundary`] (panic catching, pointer helpers),
//! [`error`] (result codes, last error), [`pixmap`], [`cache`], [`key`], [`version`].
//! This layer only translates: it checks pointers and strings, calls the Rust core, and maps
//! errors to result codes. It knows nothing about eviction.

pub mod boundary;
pub mod cache;
pub mod error;
pub mod key;
pub mod pixmap;
pub mod version;
