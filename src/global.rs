//! The process-wide cache that `QPixmapCache`'s static functions use.

use std::sync::Arc;

use crate::sync::once::Published;

use crate::cache::{Cache, DEFAULT_LIMIT_KB};

/// The global cache: made on first use with Qt's default limit (10240 KB), never dropped (no work
/// in global destructors), usable from any thread at any time.
pub fn global() -> &'static Cache {
    // Not a `OnceLock`: a fork while another thread makes the cache would leave the child's copy
    // of it "being made" for ever (`sync/once.rs`). Two threads racing to make it each make one;
    // the loser's is dropped (and its fork registration pruned).
    static GLOBAL: Published<Arc<Cache>> = Published::new();
    GLOBAL.get_or(|| Cache::new_shared(DEFAULT_LIMIT_KB))
}
