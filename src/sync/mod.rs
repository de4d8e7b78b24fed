//! The cache's concurrency machinery, none of which knows about pixmaps or eviction:
//!
//! - [`lock`]: the reader-slot lock around the cache's state (lookups share it, writers take it
//!   whole), whose waits spin briefly and then sleep ([`park`]);
//! - [`park`]: sleeping until a lock word changes (a futex on Linux);
//! - [`recency`]: hits recorded per reader slot and replayed in order by writers, so that
//!   lookups from several threads keep the LRU order exact without writing it themselves;
//! - [`clock`]: the stamps that order hits of different threads;
//! - [`prefetch`]: asking early for the log line a lookup is about to write;
//! - [`spares`]: shares of cached pixmaps a reader slot hands out and takes back uncounted;
//! - [`tally`]: the live-pixmap count, one cell per thread;
//! - [`token`]: which thread is calling;
//! - [`fork`]: what `fork(2)` does to all of the above (`pthread_atfork` handlers);
//! - [`once`]: values computed once with no "being computed" state a fork could copy;
//! - [`affine`]: a value one thread at a time may reach, with no lock (the thread-affine cache);
//! - [`slots`]: cells that never move, written by one thread, read by any (its valid keys).

/// cbindgen:ignore
pub mod affine;
/// cbindgen:ignore
pub mod clock;
/// cbindgen:ignore
pub mod fork;
/// cbindgen:ignore
pub mod lock;
/// cbindgen:ignore
pub mod once;
/// cbindgen:ignore
pub mod park;
/// cbindgen:ignore
pub mod prefetch;
/// cbindgen:ignore
pub mod recency;
/// cbindgen:ignore
pub mod slots;
pub(crate) mod spares;
/// cbindgen:ignore
pub mod tally;
/// cbindgen:ignore
pub mod token;
