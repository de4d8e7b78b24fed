//! Removals: why an entry left a cache, the callback a caller may set to hear of it, and
//! [`Outgoing`], the bag that carries everything a write section let go of out of the lock.
//!
//! A write section (cache.rs) hands every entry it lets go of to an `Outgoing`, with the reason
//! it set before the operation. When nobody listens (no callback, no live images: every cache
//! by default, and always the Qt-compatible ones) the keys are dropped at once and only the
//! values are kept, as a [`Garbage`] bag. Otherwise each departure keeps its key and reason.
//! After the lock is released, [`Outgoing::finish`] calls the callback once per departure, in
//! the order they left, on the thread that caused them, and then drops the values, so that a
//! callback (or a foreign pixmap's release) may use the cache again.

use std::sync::Arc;

use crate::garbage::Garbage;
use crate::key::Key;
use crate::lru::{EntryKey, Sink};
use crate::pixmap::Pixmap;

/// Why an entry left a cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// Evicted to make room for an insert (cost or count limit).
    Evicted = 0,
    /// Trimmed: a memory-pressure trim, `trim_to`, the idle tick or `flush_detached`.
    Trimmed = 1,
    /// Evicted because a limit (KB or count) was lowered.
    LimitLowered = 2,
    /// Removed by `remove`.
    Removed = 3,
    /// Replaced: a string insert under its key (which removes the old entry first, even when the
    /// new pixmap is then refused), or `replace` of its generated key.
    Replaced = 4,
    /// Cleared (`clear`).
    Cleared = 5,
    /// Taken out by `take`: its pixmap went to the caller.
    Taken = 6,
}

impl Reason {
    /// How many reasons there are (the length of [`crate::Stats::removals`]).
    pub const COUNT: usize = 7;

    /// Every reason, in the order of their numbers.
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::Evicted,
        Reason::Trimmed,
        Reason::LimitLowered,
        Reason::Removed,
        Reason::Replaced,
        Reason::Cleared,
        Reason::Taken,
    ];

    /// True for the reasons where the cache chose the entry (room, trims, limits), as opposed
    /// to a caller naming it.
    pub fn is_eviction(self) -> bool {
        matches!(
            self,
            Reason::Evicted | Reason::Trimmed | Reason::LimitLowered
        )
    }
}

/// The key of an entry that left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovedKey<'a> {
    /// A string key.
    Name(&'a str),
    /// A generated key (no longer valid).
    Key(Key),
}

/// What a removal callback is told.
#[derive(Debug)]
pub struct Removal<'a> {
    /// Why the entry left.
    pub reason: Reason,
    /// Its key.
    pub key: RemovedKey<'a>,
    /// Its pixmap (clone it to keep it).
    pub pixmap: &'a Pixmap,
    /// What it cost, in KB.
    pub cost_kb: i64,
}

/// A removal callback: called once per entry that leaves the cache, after the cache's lock is
/// released, on the thread whose call made it leave. It may use the cache.
pub type RemovalCallback = Arc<dyn Fn(&Removal<'_>) + Send + Sync>;

/// An entry that left, kept with its key for the callback or the live set.
pub(crate) struct Departure {
    pub key: EntryKey,
    pub hash: u64,
    pub pixmap: Pixmap,
    pub cost: i64,
    pub reason: Reason,
}

/// What a write section lets go of; see the module documentation. As small as a [`Garbage`]
/// bag while nobody listens (the departures and the callback live in a box made only when
/// someone does): the insert paths build one per call.
pub(crate) struct Outgoing {
    /// Values to drop after unlocking (also when departures are kept: pixmaps that were never
    /// entries, such as a refused insert's).
    pub garbage: Garbage<Pixmap>,
    /// The reason given to the next entries taken.
    pub reason: Reason,
    listening: Option<Box<Listening>>,
}

/// Departures kept for a callback or the live set.
struct Listening {
    departures: Vec<Departure>,
    callback: Option<RemovalCallback>,
}

impl Outgoing {
    /// An empty bag (allocates nothing); departures are kept only after [`Outgoing::listen`].
    #[inline]
    pub fn new() -> Self {
        Outgoing {
            garbage: Garbage::new(),
            reason: Reason::Evicted,
            listening: None,
        }
    }

    /// Keeps each departure's key from now on; `callback` is called for each in
    /// [`Outgoing::finish`].
    #[cold]
    pub fn listen(&mut self, callback: Option<RemovalCallback>) {
        self.listening = Some(Box::new(Listening {
            departures: Vec::new(),
            callback,
        }));
    }

    /// A value to drop after unlocking that is not a departing entry.
    #[inline]
    pub fn push(&mut self, value: Pixmap) {
        self.garbage.push(value);
    }

    /// Takes an entry that left for `reason`.
    #[inline]
    pub fn depart(&mut self, key: EntryKey, hash: u64, pixmap: Pixmap, cost: i64, reason: Reason) {
        match &mut self.listening {
            None => self.garbage.push(pixmap),
            Some(l) => l.departures.push(Departure {
                key,
                hash,
                pixmap,
                cost,
                reason,
            }),
        }
    }

    /// [`Outgoing::depart`] for an entry whose pixmap goes to the caller (a take): a share is
    /// kept for the callback only if someone listens.
    #[inline]
    pub fn depart_to_caller(
        &mut self,
        key: EntryKey,
        hash: u64,
        pixmap: Pixmap,
        cost: i64,
        reason: Reason,
    ) -> Pixmap {
        if let Some(l) = &mut self.listening {
            l.departures.push(Departure {
                key,
                hash,
                pixmap: pixmap.clone(),
                cost,
                reason,
            });
        }
        pixmap
    }

    /// The departures kept so far (under the lock: the live set takes shares of some).
    pub fn departures(&self) -> &[Departure] {
        self.listening
            .as_ref()
            .map_or(&[], |l| l.departures.as_slice())
    }

    /// After unlocking: calls the callback once per departure, in order, then drops everything.
    #[inline]
    pub fn finish(&mut self) {
        if let Some(l) = self.listening.take() {
            Self::report(*l);
        }
    }

    #[cold]
    fn report(listening: Listening) {
        let Listening {
            departures,
            callback,
        } = listening;
        let Some(callback) = callback else {
            return;
        };
        // If a callback panics, the departures not yet reported are dropped with the iterator
        // as the panic unwinds (no callback for them), and nothing leaks.
        for d in departures {
            let key = match &d.key {
                EntryKey::Name(n) => RemovedKey::Name(n.as_str()),
                EntryKey::Id(id) => RemovedKey::Key(Key::from_raw(*id)),
            };
            callback(&Removal {
                reason: d.reason,
                key,
                pixmap: &d.pixmap,
                cost_kb: d.cost,
            });
        }
    }
}

impl Sink<Pixmap> for Outgoing {
    #[inline]
    fn take(&mut self, key: EntryKey, hash: u64, value: Pixmap, cost: i64) {
        let reason = self.reason;
        self.depart(key, hash, value, cost, reason);
    }

    #[inline]
    fn wants_keys(&self) -> bool {
        self.listening.is_some()
    }

    #[inline]
    fn take_value(&mut self, value: Pixmap) {
        self.garbage.push(value);
    }

    fn reserve(&mut self, additional: usize) {
        match &mut self.listening {
            None => self.garbage.reserve(additional),
            Some(l) => l.departures.reserve(additional),
        }
    }
}
