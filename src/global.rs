//! The process-wide cache that `QPixmapCache`'s static functions use.

use std::sync::{Arc, OnceLock};

use crate::cache::{Cache, DEFAULT_LIMIT_KB};

/// The global cache: made on first use with Qt's default limit (10240 KB), never dropped (no work
/// in global destructors), usable from any thread at any time.
pub fn global() -> &'static Cache {
    static GLOBAL: OnceLock<Arc<Cache>> = OnceLock::new();
    GLOBAL.get_or_init(|| Cache::new_shared(DEFAULT_LIMIT_KB))
}
