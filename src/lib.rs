//! pixcache: a memory-safe, thread-safe drop-in replacement for Qt's `QPixmapCache`.
//!
//! The crate has two layers (see `docs/ARCHITECTURE.md`):
//! - the Rust core, which knows nothing about C: [`Pixmap`] (values that share pixels),
//!   [`Lru`](lru::Lru) (the exact cost-bounded LRU algorithm), [`Cache`] (locking, Qt's rules,
//!   statistics), [`Key`], [`global()`] and [`decode`] (images in);
//! - [`ffi`], the `extern "C"` API that cbindgen turns into `include/pixcache.h`, which knows
//!   nothing about eviction.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

/// cbindgen:ignore
pub mod bytes;
/// cbindgen:ignore
pub mod cache;
/// cbindgen:ignore
pub mod error;
pub mod ffi;
/// cbindgen:ignore
mod flight;
/// cbindgen:ignore
pub mod garbage;
/// cbindgen:ignore
pub mod global;
/// cbindgen:ignore
pub mod images;
/// cbindgen:ignore
pub mod key;
/// cbindgen:ignore
mod live;
/// cbindgen:ignore
pub mod local;
/// cbindgen:ignore
pub mod lru;
/// cbindgen:ignore
pub mod name;
/// cbindgen:ignore
pub mod pixmap;
/// cbindgen:ignore
pub mod pressure;
/// cbindgen:ignore
pub mod removal;
/// cbindgen:ignore
pub mod shared;
/// cbindgen:ignore
pub mod sync;

pub use cache::{Cache, Source, Stats, TrimLevel, DEFAULT_LIMIT_KB};
pub use error::{Error, ErrorKind, Result};
pub use global::global;
pub use images::format::Format;
pub use images::{convert, decode, format};
pub use key::Key;
pub use pixmap::Pixmap;
pub use removal::{Reason, Removal, RemovalCallback, RemovedKey};
