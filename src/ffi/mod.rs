//! The C API. cbindgen turns this module into `include/pixcache.h`.
//!
//! One file per exported concept: [`boundary`] (panic catching, pointer helpers),
//! [`error`] (result codes, last error), [`pixmap`], [`image`] (loads with options, header
//! queries), [`cache`], [`key`], [`version`],
//! [`pressure`] (the opt-in memory-pressure watcher); and
//! `vector_state` (the caller's dirty AVX state, cleared on entry).
//! This layer only translates: it checks pointers and strings, calls the Rust core, and maps
//! errors to result codes. It knows nothing about eviction.
//!
//! # Safety: one contract for every function
//! Functions taking pointers are `unsafe extern "C"`: C cannot express their contract, so it is
//! stated once here and in the README ("API conventions") rather than on each function:
//! - a handle argument is NULL (reported as `PIXCACHE_RESULT_NULL_ARGUMENT`, never dereferenced)
//!   or a live handle from pixcache that has not been freed;
//! - a pixmap handle is not modified by another thread during the call (caches may be shared
//!   freely);
//! - a string is NULL or NUL-terminated; a `(data, len)` buffer has `len` readable bytes;
//! - a release callback may be called once, from any thread, and does not unwind.
#![allow(clippy::missing_safety_doc)]

pub mod animation;
pub mod boundary;
pub mod cache;
pub mod encode;
pub mod error;
pub mod image;
pub mod key;
/// cbindgen:ignore
pub mod legacy;
pub mod local;
pub mod pixmap;
pub mod pressure;
pub mod removal;
mod vector_state;
pub mod version;
