//! The thread-safe pixmap cache: `QPixmapCache`'s operations on one [`Lru`] behind one lock.
//!
//! Responsibilities, and where each lives:
//! - hashing string keys (rapidhash, random seed per cache) *before* taking the lock;
//! - the lock (`lock.rs`): lookups share it through their thread's reader slot and record their
//!   hits there (`recency.rs`); everything else takes it whole and first replays those hits, so
//!   the order is exactly the one of doing each hit at once;
//! - recovery when a panic ever interrupted an operation (the cache is reset rather than
//!   trusted: see [`Cache::with_state`]);
//! - Qt's rules that sit above `QCache`: string re-insert removes first, `replace` re-keys,
//!   costs come from the pixmap, the idle trim;
//! - statistics;
//! - dropping every pixmap the cache lets go of *after* the lock is released, so a foreign
//!   pixmap's release callback may call back into the cache without deadlock.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::flight::{Flights, Role};
use crate::garbage::Garbage;
use crate::key::{Key, KeySource};
use crate::live::{held_elsewhere, Live, LiveEntry};
use crate::lru::{EntryKey, Freed, KeyRef, Lru, RefuseReason};
use crate::name::Name;
use crate::pixmap::Pixmap;
use crate::removal::{Outgoing, Reason, RemovalCallback};
use crate::sync::clock::Clock;
use crate::sync::fork::{self, AtFork, Taken};
use crate::sync::lock::{self, BrLock, WriteGuard, READER_SLOTS};
use crate::sync::recency::{replay, Batch, Order, ReaderLog, Record};
use crate::sync::spares::Spares;

/// Qt's default limit, in KB.
pub const DEFAULT_LIMIT_KB: i32 = 10 * 1024;

/// Counters and sizes of a cache, read atomically together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries now in the cache.
    pub entries: usize,
    /// Sum of their costs, in KB.
    pub total_kb: i64,
    /// The limit, in KB, as set.
    pub limit_kb: i32,
    /// Lookups (string or key) that found a pixmap.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Successful inserts (string, key and replace).
    pub inserts: u64,
    /// Entries evicted to make room or by a lowered limit or a trim (not removes or clears).
    pub evictions: u64,
    /// Inserts refused because the pixmap costs more than the whole limit.
    pub refused: u64,
    /// Entries that left the cache, by [`Reason`] (indexed by `reason as usize`).
    pub removals: [u64; Reason::COUNT],
    /// The highest total, in KB, since the cache was made or its statistics reset.
    pub peak_kb: i64,
    /// The count limit (0: none).
    pub count_limit: usize,
    /// Live images ([`Cache::set_live_images`]): evicted entries still held by a caller, and
    /// the sum of their costs in KB (outside `total_kb` and the budget).
    pub live_entries: usize,
    /// See `live_entries`.
    pub live_kb: i64,
}

/// What [`State::extras`] holds while an opt-in extra is on.
#[derive(Default)]
struct Extras {
    /// Called for each entry that leaves (removal.rs).
    on_removal: Option<RemovalCallback>,
    /// Evicted entries still held by callers (live.rs), while live images are on.
    live: Option<Live>,
}

struct State {
    lru: Lru<Pixmap>,
    stats: Stats,
    /// The opt-in extras (a removal callback, live images); `None` while none is on, so that
    /// Qt's paths test one pointer.
    extras: Option<Box<Extras>>,
    /// Total at the previous [`Cache::tick`] (Qt's `ps`), to tell an idle cache from a busy one.
    tick_total: i64,
    /// Where this cache's generated keys come from (under the lock: no shared atomic per key).
    keys: KeySource,
    /// Whether lookups stamp their hits, and which reader slot may record without (recency.rs).
    order: Order,
    /// Hits taken out of the logs by a full log's replay, replayed beside lookups
    /// ([`Cache::replay_full_log`]); empty whenever a writer comes in.
    batch: Mutex<Batch>,
    /// Set while an operation changes the state under the write lock: still set
    /// when the next operation comes, it means a panic interrupted one, and the state is reset.
    dirty: bool,
}

impl State {
    fn new(limit_kb: i32) -> Self {
        State {
            lru: Lru::new(i64::from(limit_kb)),
            stats: Stats {
                limit_kb,
                ..Stats::default()
            },
            extras: None,
            tick_total: 0,
            keys: KeySource::new(),
            order: Order::default(),
            batch: Mutex::default(),
            dirty: false,
        }
    }

    /// True when the state cannot be trusted and must be reset: a panic interrupted a write
    /// section (`dirty`) or a replay beside lookups (the recency list's or the batch's lock is
    /// poisoned: the order is half replayed).
    fn broken(&self) -> bool {
        self.dirty || self.lru.is_poisoned() || self.batch.is_poisoned()
    }

    /// A lookup with the state to itself: moves the entry to the front; counts it if `count` is
    /// 1.
    #[inline(always)]
    fn get<R>(&mut self, hash: u64, key: KeyRef<'_>, read: impl Read<R>) -> Lookup<R> {
        match self.lru.get(hash, key) {
            Some(pm) => {
                self.stats.hits += 1;
                // The state is whole again: `read` (a visit callback, perhaps) may panic without
                // making the next caller throw the cache away.
                self.dirty = false;
                Lookup::Hit(read.read(pm))
            }
            None => Lookup::missed(key, &mut self.stats.misses),
        }
    }

    /// A lookup that missed the LRU with live images on: a live entry under `key` is found,
    /// and goes back into the cache as the most recently used entry if it fits (if it does not,
    /// it stays live).
    #[cold]
    fn revive<R>(
        &mut self,
        hash: u64,
        key: KeyRef<'_>,
        read: impl Read<R>,
        out: &mut Outgoing,
    ) -> Lookup<R> {
        if self.live().and_then(|l| l.get(hash, key)).is_none() {
            return Lookup::missed(key, &mut self.stats.misses);
        }
        let Some(entry) = self.live_mut().and_then(|l| l.take(hash, key)) else {
            return Lookup::missed(key, &mut self.stats.misses);
        };
        out.reason = Reason::Evicted;
        let before = self.lru.len();
        let back = self.lru.insert(
            hash,
            entry.key.clone(),
            entry.pixmap.clone(),
            entry.cost,
            out,
        );
        self.evicted_on_insert(before, back.is_ok());
        match back {
            Ok(_) => {
                self.stats.peak_kb = self.stats.peak_kb.max(self.lru.total());
                out.push(entry.pixmap);
                self.get(hash, key, read)
            }
            Err(refused) => {
                out.push(refused.value);
                self.stats.hits += 1;
                self.dirty = false;
                let result = read.read(&entry.pixmap);
                if let Some(live) = self.live_mut() {
                    live.keep(entry, &mut out.garbage);
                }
                Lookup::Hit(result)
            }
        }
    }

    /// Counts `n` entries the cache chose to let go of (room, trims, limits) for `reason`.
    #[inline]
    fn evicted(&mut self, reason: Reason, n: usize) {
        self.stats.evictions += n as u64;
        self.stats.removals[reason as usize] += n as u64;
    }

    /// Counts the evictions of an insert into the LRU that held `before` entries.
    #[inline]
    fn evicted_on_insert(&mut self, before: usize, inserted: bool) {
        let n = before + usize::from(inserted) - self.lru.len();
        if n != 0 {
            self.evicted(Reason::Evicted, n);
        }
    }

    /// The pixmap under `key`, in the cache or live (held), without touching recency.
    fn peek(&self, hash: u64, key: KeyRef<'_>) -> Option<&Pixmap> {
        match self.lru.peek(hash, key) {
            Some((_, pm)) => Some(pm),
            None => self.live()?.get(hash, key).map(|e| &e.pixmap),
        }
    }

    /// Evicts least recently used entries until the total is at most `target`, for `reason`;
    /// counts them. Returns how many went.
    fn trim(&mut self, target: i64, reason: Reason, out: &mut Outgoing) -> usize {
        out.reason = reason;
        let n = self.lru.trim(target, out);
        self.evicted(reason, n);
        n
    }

    /// True when a miss in the LRU must also look at the live set.
    #[inline(always)]
    fn has_live(&self) -> bool {
        self.extras.is_some() && self.live().is_some_and(|l| l.len() > 0)
    }

    /// The live set, while live images are on.
    #[inline]
    fn live(&self) -> Option<&Live> {
        self.extras.as_deref().and_then(|e| e.live.as_ref())
    }

    /// [`State::live`], to change.
    #[inline]
    fn live_mut(&mut self) -> Option<&mut Live> {
        self.extras.as_deref_mut().and_then(|e| e.live.as_mut())
    }

    /// The extras, made on first use.
    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Drops the extras once none is on.
    fn tidy_extras(&mut self) {
        if self
            .extras
            .as_ref()
            .is_some_and(|e| e.on_removal.is_none() && e.live.is_none())
        {
            self.extras = None;
        }
    }

    /// Under the write lock, at the end of a section with live images on: prunes the live set
    /// and keeps there the evicted entries a caller still holds.
    #[cold]
    fn settle(&mut self, out: &mut Outgoing) {
        if let Some(live) = self.live_mut() {
            live.prune(&mut out.garbage);
            let kept: Vec<LiveEntry> = out
                .departures()
                .iter()
                .filter(|d| d.reason.is_eviction() && held_elsewhere(&d.pixmap))
                .map(|d| LiveEntry {
                    key: d.key.clone(),
                    hash: d.hash,
                    pixmap: d.pixmap.clone(),
                    cost: d.cost,
                })
                .collect();
            for entry in kept {
                live.keep(entry, &mut out.garbage);
            }
        }
    }

    /// Removes the entry under `key` for `reason` (and forgets a live image under it); true
    /// when there was one (or a live image).
    #[inline]
    fn remove(&mut self, hash: u64, key: KeyRef<'_>, reason: Reason, out: &mut Outgoing) -> bool {
        let live = self.forget_live(hash, key, out);
        match self.lru.remove(hash, key) {
            Some((key, pm, cost)) => {
                self.stats.removals[reason as usize] += 1;
                out.depart(key, hash, pm, cost, reason);
                true
            }
            None => live,
        }
    }

    /// Takes the entry under `key` out of the cache (or the live set) and returns its pixmap.
    fn take(&mut self, hash: u64, key: KeyRef<'_>, out: &mut Outgoing) -> Option<Pixmap> {
        let live = self.take_live(hash, key, out);
        match self.lru.remove(hash, key) {
            Some((key, pm, cost)) => {
                if let Some(stale) = live {
                    out.push(stale);
                }
                self.stats.removals[Reason::Taken as usize] += 1;
                Some(out.depart_to_caller(key, hash, pm, cost, Reason::Taken))
            }
            None => live,
        }
    }

    /// Forgets a live image under `key`, if live images are on; true if there was one still
    /// held (findable).
    #[inline]
    fn forget_live(&mut self, hash: u64, key: KeyRef<'_>, out: &mut Outgoing) -> bool {
        match self.take_live(hash, key, out) {
            Some(pm) => {
                out.push(pm);
                true
            }
            None => false,
        }
    }

    /// Takes the live image under `key` out of the live set: its pixmap if someone still holds
    /// it (it was findable), else `None` (an entry nobody holds is let go of, unfound).
    #[inline]
    fn take_live(&mut self, hash: u64, key: KeyRef<'_>, out: &mut Outgoing) -> Option<Pixmap> {
        let entry = self.live_mut()?.take(hash, key)?;
        if held_elsewhere(&entry.pixmap) {
            Some(entry.pixmap)
        } else {
            out.push(entry.pixmap);
            None
        }
    }

    /// Inserts under a key known to be absent, costing `cost` KB; counts the outcome.
    fn insert(
        &mut self,
        hash: u64,
        key: EntryKey,
        pm: Pixmap,
        cost: i64,
        out: &mut Outgoing,
    ) -> Result<()> {
        // The key is the cache's again: an evicted entry under it is no longer findable.
        self.forget_live(hash, key.as_key_ref(), out);
        let before = self.lru.len();
        out.reason = Reason::Evicted;
        let result = self.lru.insert(hash, key, pm, cost, out);
        self.evicted_on_insert(before, result.is_ok());
        match result {
            Ok(_) => {
                self.stats.inserts += 1;
                self.stats.peak_kb = self.stats.peak_kb.max(self.lru.total());
                Ok(())
            }
            Err(refused) => {
                out.push(refused.value);
                if refused.reason == RefuseReason::TooCostly {
                    self.stats.refused += 1;
                }
                Err(refusal_error(refused.reason, cost, self.lru.limit()))
            }
        }
    }
}

/// What a lookup found.
enum Lookup<R> {
    /// The entry, as the lookup read it.
    Hit(R),
    /// Nothing.
    Miss,
    /// Nothing, and it was no lookup: a name that is not UTF-8, an invalid argument for the
    /// caller to report. Lookups do not check names first (every stored name is UTF-8, so other
    /// bytes can only miss); only a miss checks, once, and is counted only if the name is valid.
    NotUtf8,
}

/// What a lookup into a caller's pixmap found: `found` is `None` when the key's bytes are not
/// UTF-8; `old` is what the caller's pixmap held, if the lookup replaced it (dropping it may run
/// a foreign release callback, so the caller chooses when).
pub(crate) struct Swapped {
    pub found: Option<bool>,
    pub old: Option<Pixmap>,
}

impl Swapped {
    /// Drops what the caller's pixmap held and returns `found`: for a caller whose borrow of
    /// that pixmap has ended, so that a release callback the drop runs may use its handle.
    pub fn settle(self) -> Option<bool> {
        drop(self.old);
        self.found
    }
}

impl From<Lookup<Option<Pixmap>>> for Swapped {
    #[inline(always)]
    fn from(lookup: Lookup<Option<Pixmap>>) -> Self {
        let found = lookup.found();
        Swapped {
            found,
            old: lookup.hit().flatten(),
        }
    }
}

/// What a lookup does with the pixmap it found, while the cache is locked. Any closure taking
/// the pixmap does that; [`ShareInto`] also uses the reader slot's spare shares (spares.rs).
trait Read<R> {
    fn read(self, cached: &Pixmap) -> R;

    /// [`Read::read`] through a reader slot: `cached` is the pixmap in LRU slot `slot`, and
    /// `cached_at` finds the pixmap in any LRU slot.
    #[inline(always)]
    fn read_spared<'a>(
        self,
        cached: &'a Pixmap,
        _slot: u32,
        _spares: &mut Spares,
        _cached_at: impl FnOnce(u32) -> Option<&'a Pixmap>,
    ) -> R
    where
        Self: Sized,
    {
        self.read(cached)
    }
}

impl<R, F: FnOnce(&Pixmap) -> R> Read<R> for F {
    #[inline(always)]
    fn read(self, cached: &Pixmap) -> R {
        self(cached)
    }
}

/// Makes a pixmap share what a lookup found, unless it already does; gives back what it held
/// before (to be dropped by the caller after the lock is released), if anything.
struct ShareInto<'a>(&'a mut Pixmap);

impl Read<Option<Pixmap>> for ShareInto<'_> {
    #[inline(always)]
    fn read(self, cached: &Pixmap) -> Option<Pixmap> {
        (!self.0.shares_pixels_with(cached)).then(|| std::mem::replace(self.0, cached.clone()))
    }

    #[inline(always)]
    fn read_spared<'a>(
        self,
        cached: &'a Pixmap,
        slot: u32,
        spares: &mut Spares,
        cached_at: impl FnOnce(u32) -> Option<&'a Pixmap>,
    ) -> Option<Pixmap> {
        if self.0.shares_pixels_with(cached) {
            return None;
        }
        // Back first: `take_back` looks for the entry the last share went out from.
        let old = std::mem::replace(self.0, Pixmap::null());
        let unkept = spares.take_back(old, cached_at);
        *self.0 = spares.share(slot, cached);
        unkept
    }
}

impl<R> Lookup<R> {
    /// The outcome of finding nothing under `key`, counted in `misses` if the key is a valid
    /// one.
    fn missed(key: KeyRef<'_>, misses: &mut u64) -> Self {
        match key {
            KeyRef::Name(bytes) if !bytes::is_utf8(bytes) => Lookup::NotUtf8,
            _ => {
                *misses += 1;
                Lookup::Miss
            }
        }
    }

    fn hit(self) -> Option<R> {
        match self {
            Lookup::Hit(r) => Some(r),
            Lookup::Miss | Lookup::NotUtf8 => None,
        }
    }

    /// Whether something was found; `None` when the key was not UTF-8.
    fn found(&self) -> Option<bool> {
        match self {
            Lookup::Hit(_) => Some(true),
            Lookup::Miss => Some(false),
            Lookup::NotUtf8 => None,
        }
    }
}

/// How much a trim for memory pressure ([`Cache::trim`]) lets go of: each level keeps a fraction
/// of the cache's current total (not of its limit: under pressure memory is released even from
/// a cache that is below its limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrimLevel {
    /// Keep half (Android `TRIM_MEMORY_RUNNING_MODERATE` / `UI_HIDDEN`, Glide's half trim).
    Moderate,
    /// Keep a quarter (Android `TRIM_MEMORY_RUNNING_LOW` / `BACKGROUND`).
    Low,
    /// Keep an eighth (Android `TRIM_MEMORY_RUNNING_CRITICAL` / `MODERATE`).
    Critical,
    /// Keep nothing (Android `TRIM_MEMORY_COMPLETE`, Glide `clearMemory`).
    Complete,
}

impl TrimLevel {
    /// Every level, mildest first.
    pub const ALL: [TrimLevel; 4] = [
        TrimLevel::Moderate,
        TrimLevel::Low,
        TrimLevel::Critical,
        TrimLevel::Complete,
    ];

    /// The total a trim at this level leaves at most, from a total of `total` KB.
    pub fn target(self, total: i64) -> i64 {
        match self {
            TrimLevel::Moderate => total / 2,
            TrimLevel::Low => total / 4,
            TrimLevel::Critical => total / 8,
            TrimLevel::Complete => 0,
        }
    }
}

/// Where [`Cache::find_or_insert_with`] got its pixmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// It was in the cache.
    Cached,
    /// This call ran the producer (and cached the result if it fits).
    Produced,
    /// Another thread was producing it; this call waited and shares that result.
    Waited,
}

/// A size-bounded, exact-LRU pixmap cache, safe to share between threads.
pub struct Cache {
    state: BrLock<State, Reader>,
    /// Stamps for hits while several threads look things up (recency.rs), on its own line.
    clock: PaddedClock,
    hasher: rapidhash::fast::RandomState,
    /// Whether hits are stamped (`Order::is_stamped`), as the last write section left it: read
    /// before taking a reader slot, so that a lookup can read the time first thing (see
    /// [`Cache::lookup_reading`]). Only a hint: the order itself decides under the slot.
    stamping: AtomicBool,
    flights: Flights,
}

#[repr(align(128))]
struct PaddedClock(Clock);

/// What each reader slot of the lock keeps: its log of hits to replay (recency.rs) and its spare
/// shares of cached pixmaps (spares.rs).
#[derive(Debug, Default)]
struct Reader {
    log: ReaderLog,
    spares: Spares,
}

impl Reader {
    /// Under the write lock: takes out of every reader slot the spares of the LRU slots in
    /// `freed` (`None`: all of them), to be dropped after unlocking; `None` when there were none.
    /// Out of line: most write sections free no slot that has a spare.
    #[inline(never)]
    fn release_spares(
        readers: &mut [&mut Reader; READER_SLOTS],
        freed: Option<Freed>,
    ) -> Option<Garbage<Pixmap>> {
        if readers.iter().all(|r| r.spares.is_empty()) {
            return None;
        }
        let mut garbage = Garbage::new();
        for reader in readers.iter_mut() {
            match freed.as_ref().and_then(Freed::slots) {
                Some(slots) => {
                    for &slot in slots {
                        reader.spares.release(slot, &mut garbage);
                    }
                }
                None => reader.spares.release_all(&mut garbage),
            }
        }
        Some(garbage)
    }
}

impl Cache {
    /// [`Cache::new`], shared, and registered for `fork(2)`: a child of a multi-threaded process
    /// can use it (`fork.rs`). What the C API's caches and the global cache are.
    pub fn new_shared(limit_kb: i32) -> Arc<Self> {
        let cache = Arc::new(Cache::new(limit_kb));
        let weak: Weak<dyn AtFork> = Arc::downgrade(&(Arc::clone(&cache) as Arc<dyn AtFork>));
        fork::register(weak);
        cache
    }

    /// An empty cache holding at most `limit_kb` KB (nothing when `limit_kb <= 0`). A cache made
    /// this way is not known to the `fork(2)` handlers: see [`Cache::new_shared`].
    pub fn new(limit_kb: i32) -> Self {
        Cache {
            state: BrLock::new(State::new(limit_kb), Reader::default),
            clock: PaddedClock(Clock::new()),
            hasher: rapidhash::fast::RandomState::default(),
            stamping: AtomicBool::new(false),
            flights: Flights::default(),
        }
    }

    fn hash(&self, key: KeyRef<'_>) -> u64 {
        match key {
            KeyRef::Name(bytes) => {
                let mut h = self.hasher.build_hasher();
                h.write(bytes);
                h.finish()
            }
            KeyRef::Id(id) => id_hash(Key::from_raw(id)),
        }
    }

    /// Runs `f` on the locked state. Pixmaps `f` puts in the garbage are dropped after the lock
    /// is released. If a panic ever interrupted an operation (the state is left `dirty`), the
    /// next caller resets the state to an empty cache with the same limit (its invariants can no
    /// longer be trusted) and the old one is dropped outside the lock too: one panic never wedges
    /// or corrupts the cache for everyone else.
    ///
    /// Entries `f` lets go of (through the [`Outgoing`] bag) are reported to the removal
    /// callback, if one is set, after the lock is released (removal.rs).
    fn with_state<R>(&self, f: impl FnOnce(&mut State, &mut Outgoing) -> R) -> R {
        let mut out = Outgoing::new();
        let result = self.with_state_only(|s| {
            if let Some(extras) = &s.extras {
                out.listen(extras.on_removal.clone());
            }
            let result = f(s, &mut out);
            if s.extras.is_some() {
                s.settle(&mut out);
            }
            result
        });
        out.finish();
        drop(out);
        result
    }

    /// [`Cache::with_state`] for operations that let go of at most what they return themselves
    /// (lookups): no garbage bag to build and drop on the hottest path.
    fn with_state_only<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.with_logs(|s, _| f(s))
    }

    /// [`Cache::with_state_only`] that also sees the reader slots' logs (emptied: every hit they
    /// recorded has been replayed into the LRU order).
    fn with_logs<R>(&self, f: impl FnOnce(&mut State, &[&mut Reader; READER_SLOTS]) -> R) -> R {
        self.with_guard(self.state.write(lock::me()), f)
    }

    /// [`Cache::with_logs`] under a write guard already taken.
    fn with_guard<R>(
        &self,
        guard: WriteGuard<'_, State, Reader>,
        f: impl FnOnce(&mut State, &[&mut Reader; READER_SLOTS]) -> R,
    ) -> R {
        // What the section lets go of, dropped after the guard: declared before it, so that this
        // holds when `f` unwinds too.
        let mut broken_state = None;
        let mut reset_spares = None;
        let mut freed_spares = None;
        let mut guard = guard;
        let result = {
            let (state, mut readers) = guard.parts();
            if state.broken() {
                let limit = state.stats.limit_kb;
                broken_state = Some(std::mem::replace(state, State::new(limit)));
                // The logs name slots of the old state's LRU, and count its lookups; the spares
                // are shares of its pixmaps.
                readers.iter_mut().for_each(|r| r.log.reset());
                reset_spares = Reader::release_spares(&mut readers, None);
            }
            state.dirty = true;
            debug_assert!(
                state.batch.get_mut().is_ok_and(|b| b.is_empty()),
                "a batch left to a writer"
            );
            let mut logs = readers.each_mut().map(|r| &mut r.log);
            replay(&mut state.order, &mut logs, |slot| state.lru.touch(slot));
            let result = f(state, &readers);
            // A spare must not outlive its entry (spares.rs): the spares of every slot `f` freed
            // go with the entries, after unlocking.
            if state.lru.freed_any() {
                let freed = state.lru.take_freed();
                freed_spares = Reader::release_spares(&mut readers, Some(freed));
            }
            self.note_stamping(&state.order);
            state.dirty = false;
            result
        };
        drop(guard);
        drop(freed_spares);
        drop(reset_spares);
        drop(broken_state);
        result
    }

    /// How many times a lookup found a spare share that was not a share of its entry's pixmap
    /// and handed out a new share instead (`spares.rs`): 0 unless a write path forgot to report
    /// a freed slot. For tests.
    #[doc(hidden)]
    pub fn spare_mismatches(&self) -> u64 {
        self.with_logs(|_, readers| readers.iter().map(|r| r.spares.mismatches()).sum())
    }

    /// Under the write lock: keeps [`Cache::stamping`] in step with the order (written only
    /// when it changes, so that the line stays shared between the cores that read it).
    fn note_stamping(&self, order: &Order) {
        let stamped = order.is_stamped();
        if self.stamping.load(Ordering::Relaxed) != stamped {
            self.stamping.store(stamped, Ordering::Relaxed);
        }
    }

    /// The limit in KB, as set (even when negative).
    pub fn limit(&self) -> i32 {
        self.with_state(|s, _| s.stats.limit_kb)
    }

    /// Sets the limit; evicts least recently used entries at once until the total fits.
    pub fn set_limit(&self, limit_kb: i32) {
        self.with_state(|s, out| {
            s.stats.limit_kb = limit_kb;
            out.reason = Reason::LimitLowered;
            let n = s.lru.set_limit(i64::from(limit_kb), out);
            s.evicted(Reason::LimitLowered, n);
        })
    }

    /// Finds the pixmap under a string key, making it the most recently used.
    pub fn find(&self, key: &str) -> Option<Pixmap> {
        self.lookup(KeyRef::Name(key.as_bytes()), |pm| pm.clone())
            .hit()
    }

    /// Like [`Cache::find`] without copying the pixmap out (`QPixmapCache::find(key, nullptr)`):
    /// answers and refreshes recency.
    pub fn touch(&self, key: &str) -> bool {
        self.lookup(KeyRef::Name(key.as_bytes()), |_| ())
            .hit()
            .is_some()
    }

    /// Finds the pixmap under a generated key, making it the most recently used.
    pub fn find_key(&self, key: Key) -> Option<Pixmap> {
        self.lookup(KeyRef::Id(key.to_raw()), |pm| pm.clone()).hit()
    }

    /// Like [`Cache::find_key`] without copying the pixmap out.
    pub fn touch_key(&self, key: Key) -> bool {
        self.lookup(KeyRef::Id(key.to_raw()), |_| ())
            .hit()
            .is_some()
    }

    /// Finds the pixmap under a string key and makes `out` share it, as `QPixmapCache::find(key,
    /// &pixmap)` assigns: on a miss `out` is untouched. If `out` already shares the cached pixels
    /// nothing is copied (no reference-count traffic); otherwise what `out` held before is dropped
    /// after the lock is released.
    pub fn find_into(&self, key: &str, out: &mut Pixmap) -> bool {
        self.find_into_share(KeyRef::Name(key.as_bytes()), out)
            .hit()
            .is_some()
    }

    /// [`Cache::find_into`] with the key as bytes (the C API's view of a key). `None` when the
    /// bytes are not UTF-8: no stored key is, so nothing was found, and such a call is an invalid
    /// argument for the caller to report (it does not count as a miss in [`Cache::stats`]).
    #[inline(always)]
    pub fn find_bytes_into(&self, key: &[u8], out: &mut Pixmap) -> Option<bool> {
        self.find_bytes_swap(key, out).settle()
    }

    /// [`Cache::touch`] with the key as bytes (see [`Cache::find_bytes_into`]).
    pub fn touch_bytes(&self, key: &[u8]) -> Option<bool> {
        self.lookup(KeyRef::Name(key), |_| ()).found()
    }

    /// [`Cache::find_into`] for a generated key.
    pub fn find_key_into(&self, key: Key, out: &mut Pixmap) -> bool {
        self.find_into_share(KeyRef::Id(key.to_raw()), out)
            .hit()
            .is_some()
    }

    /// Finds the pixmap under a string key (as bytes, see [`Cache::find_bytes_into`]), makes it
    /// the most recently used, and calls `visit` with it *while the cache is locked*: no share is
    /// made (no reference count is touched), so reading the cached pixmap this way costs less
    /// than [`Cache::find_bytes_into`]. `Some(Some(r))` on a hit, `Some(None)` on a miss, `None`
    /// when the bytes are not UTF-8.
    ///
    /// `visit` holds up every writer (and every thread sharing this thread's reader slot) while
    /// it runs: keep it short. It must not use this cache: a call on it from inside
    /// `visit` unwinds with an [`ErrorKind::Reentrant`](crate::ErrorKind) error instead of
    /// waiting for itself forever (`lock.rs`).
    ///
    /// If `visit` panics, the cache is intact (`State::get` marks the state whole before
    /// calling it).
    pub fn visit_bytes<R>(
        &self,
        key: &[u8],
        visit: impl FnOnce(&Pixmap) -> R,
    ) -> Option<Option<R>> {
        let lookup = self.lookup(KeyRef::Name(key), visit);
        lookup.found().map(|_| lookup.hit())
    }

    /// [`Cache::visit_bytes`] for a generated key: `Some(r)` on a hit.
    pub fn visit_key<R>(&self, key: Key, visit: impl FnOnce(&Pixmap) -> R) -> Option<R> {
        self.lookup(KeyRef::Id(key.to_raw()), visit).hit()
    }

    /// A lookup that makes `out` share what it finds. What `out` held before (if the lookup
    /// replaced it) comes back in the hit, to be dropped by the caller after the lock is
    /// released.
    #[inline(always)]
    fn find_into_share(&self, key: KeyRef<'_>, out: &mut Pixmap) -> Lookup<Option<Pixmap>> {
        self.lookup_reading(key, ShareInto(out))
    }

    /// [`Cache::find_bytes_into`] that hands back what `out` held instead of dropping it, for a
    /// caller that reached `out` through a pointer a release callback may also use (the C API):
    /// it drops the old pixmap once its borrow of `out` has ended.
    #[inline(always)]
    pub(crate) fn find_bytes_swap(&self, key: &[u8], out: &mut Pixmap) -> Swapped {
        Swapped::from(self.find_into_share(KeyRef::Name(key), out))
    }

    /// [`Cache::find_key_into`] that hands back what `out` held (see [`Cache::find_bytes_swap`]).
    pub(crate) fn find_key_swap(&self, key: Key, out: &mut Pixmap) -> Swapped {
        Swapped::from(self.find_into_share(KeyRef::Id(key.to_raw()), out))
    }

    fn lookup<R>(&self, key: KeyRef<'_>, read: impl FnOnce(&Pixmap) -> R) -> Lookup<R> {
        self.lookup_reading(key, read)
    }

    /// A lookup, counted in the hit/miss statistics, that `read`s what it finds.
    ///
    /// It runs under this thread's reader slot: it finds the entry without touching the LRU
    /// order and records the hit in the slot's log (recency.rs), so lookups from different
    /// threads write no cache line in common. When the log is full, this thread replays every
    /// log ([`Cache::replay_full_log`]). A thread whose slot may not record yet (it is not the
    /// owner and hits are not stamped), or a cache left dirty by a panic, does the lookup under
    /// the write lock instead, which also admits the slot.
    #[inline]
    fn lookup_reading<R>(&self, key: KeyRef<'_>, read: impl Read<R>) -> Lookup<R> {
        let hash = self.hash(key);
        let me = lock::me();
        // While hits are stamped, the time is read now, before the slot is taken: reading it
        // waits for everything before it to complete (`clock.rs`), which costs least here,
        // before the loads of the lock's and the table's lines that another core may hold (a
        // 2-thread read-mostly run: 1.37x one thread with the time read here, 1.24x after taking
        // the slot, 1.12x after the probe). Why a time read before the slot is still right: it
        // lies inside this call, after everything the caller did before it (the fence); a hit
        // of another thread that happened-before this call has the smaller stamp, and one that
        // merely overlaps this call may be ordered either way, as any overlapping calls may.
        // Writers replay every log before anything else, so each record lands among the hits
        // recorded since the last replay, which is all the stamps order.
        let early = self
            .stamping
            .load(Ordering::Relaxed)
            .then(|| self.clock.0.now());
        let mut guard = self.state.read(me);
        let mut read = Some(read);
        let my_slot = guard.slot();
        let (result, full) = {
            let (state, reader) = guard.parts();
            let Reader { log, spares } = reader;
            if state.dirty {
                (None, false)
            } else {
                match state.lru.peek(hash, key) {
                    // A live image may be there: look under the write lock.
                    None if state.has_live() => (None, false),
                    None => return Lookup::missed(key, &mut log.misses),
                    Some((slot, pm)) => {
                        match state
                            .order
                            .record_at(&self.clock.0, early, my_slot, log, slot)
                        {
                            Record::Done => {
                                log.hits += 1;
                                let lru = &state.lru;
                                (
                                    read.take().map(|read| {
                                        read.read_spared(pm, slot, spares, |s| lru.value_at(s))
                                    }),
                                    state.order.must_replay(my_slot, log),
                                )
                            }
                            Record::NotAdmitted => (None, false),
                        }
                    }
                }
            }
        };
        drop(guard);
        if full {
            self.replay_full_log(my_slot);
        }
        match read {
            None => result.map_or(Lookup::Miss, Lookup::Hit),
            // Not done under the reader slot: do it under the write lock.
            Some(read) => self.lookup_exclusive(my_slot, hash, key, read),
        }
    }

    /// Replays every log, for reader slot `reader` whose log is full (`Order::must_replay`).
    ///
    /// Only taking the hits out of the logs needs the write lock ([`Batch::take`]). The write
    /// lock then becomes this thread's reader slot ([`WriteGuard::downgrade`]), and the replay
    /// runs while the other threads' lookups go on: they never read the LRU links it writes.
    /// A writer waits for the slot, so the batch is replayed, whole, before anyone else replays
    /// or changes anything. Out of line, as [`Cache::lookup_exclusive`].
    #[inline(never)]
    fn replay_full_log(&self, reader: usize) {
        let me = lock::me();
        let mut guard = self.state.write(me);
        // A broken state is reset by `with_guard`.
        if guard.parts().0.broken() {
            return self.with_guard(guard, |s, _| s.order.replayed_by(reader));
        }
        {
            let (state, readers) = guard.parts();
            state.dirty = true;
            state.order.replayed_by(reader);
            let mut logs = readers.map(|r| &mut r.log);
            let batch = state
                .batch
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            batch.take(&mut state.order, &mut logs);
            self.note_stamping(&state.order);
            state.dirty = false;
        }
        // Nothing was freed and no spare let go of: the write section leaves nothing behind.
        let mut guard = guard.downgrade(me);
        let (state, _) = guard.parts();
        let mut batch = state.batch.lock().unwrap_or_else(PoisonError::into_inner);
        let mut touches = state.lru.touches();
        batch.replay(|slot| touches.touch(slot));
    }

    /// The lookup of [`Cache::lookup_reading`] under the write lock: for a reader slot not
    /// admitted yet (`admit`), or a state a panic left dirty. Out of line, so that the shared path does not carry
    /// [`Cache::with_guard`] in its stack frame.
    #[cold]
    #[inline(never)]
    fn lookup_exclusive<R>(
        &self,
        admit: usize,
        hash: u64,
        key: KeyRef<'_>,
        read: impl Read<R>,
    ) -> Lookup<R> {
        self.with_state(|s, out| {
            s.order.admit(admit);
            if s.has_live() && !s.lru.contains(hash, key) {
                s.revive(hash, key, read, out)
            } else {
                s.get(hash, key, read)
            }
        })
    }

    /// Finds `key`, or produces, caches and returns its pixmap, once: concurrent callers asking for
    /// the same missing key wait for the one producer instead of producing again; callers for
    /// other keys are never blocked by it. `produce` runs outside every lock (it may use the
    /// cache, for other keys). On success `out` shares the pixmap (even if it was too large to
    /// cache). If the producer fails, this call and every waiter fail with its error, and nothing
    /// is inserted; a later call tries again. A producer asking for its own key gets an error
    /// instead of a deadlock.
    pub fn find_or_insert_with(
        &self,
        key: &str,
        out: &mut Pixmap,
        produce: impl FnOnce() -> Result<Pixmap>,
    ) -> Result<Source> {
        if self.find_into(key, out) {
            return Ok(Source::Cached);
        }
        // The re-check runs under the flights table's lock: it peeks into a pixmap of its own,
        // so that nothing `out` held is let go of (running a release callback) under that lock.
        let mut found = Pixmap::null();
        let role = self.flights.join(key, || {
            // A peek: it lets go of nothing under the flights table's lock (a find may, with
            // live images on: it prunes them and puts one back, dropping pixmaps and reporting
            // removals, whose callbacks may use flights). Not counted, as a re-check is no
            // lookup of the caller's; a hit is what another thread just inserted, as recent.
            match self.peek_with(KeyRef::Name(key.as_bytes()), Pixmap::clone) {
                Some(pm) => {
                    found = pm;
                    false
                }
                None => true,
            }
        });
        // Whatever `out` held is dropped after it holds the new pixmap (a release callback may
        // read the caller's handle), and outside every lock.
        let (value, source) = match role {
            None => (found, Source::Cached),
            Some(Role::Wait(flight)) => (flight.wait()?, Source::Waited),
            Some(Role::Lead(lead)) => {
                let result = produce();
                if let Ok(pm) = &result {
                    // Too large to cache is not the producer's failure: the caller still gets it.
                    let _ = self.insert(key, pm);
                }
                lead.finish(result.clone());
                (result?, Source::Produced)
            }
        };
        drop(std::mem::replace(out, value));
        Ok(source)
    }

    /// Inserts `pm` under a string key. Any previous entry under `key` is removed first, so a
    /// refused insert leaves the key empty (as in Qt). Refused ([`ErrorKind::Refused`]) when the
    /// pixmap costs more than the limit.
    ///
    /// `pm` is a `&Pixmap` (the cache takes a share of it) or a `Pixmap` (the cache takes it, with
    /// no reference count to touch); so for the other inserts.
    pub fn insert(&self, key: &str, pm: impl Into<Pixmap>) -> Result<()> {
        let pm = pm.into();
        let cost = pm.cost_kb();
        self.insert_costing(key, pm, cost)
    }

    /// [`Cache::insert`] with the entry's cost given in KB instead of computed from the pixmap
    /// (for pixmaps whose memory is not width × height × depth: GPU textures, foreign pixmaps).
    /// A negative cost is an [`ErrorKind::InvalidArgument`] (nothing changes); the cost limit
    /// and refusal apply to `cost_kb` as to a computed cost.
    pub fn insert_with_cost(&self, key: &str, pm: impl Into<Pixmap>, cost_kb: i64) -> Result<()> {
        check_cost(cost_kb)?;
        self.insert_costing(key, pm.into(), cost_kb)
    }

    fn insert_costing(&self, key: &str, pm: Pixmap, cost: i64) -> Result<()> {
        let hash = self.hash(KeyRef::Name(key.as_bytes()));
        // Allocate the stored key before locking (no allocation under the lock), fallibly.
        let stored = EntryKey::Name(
            Name::new(key)
                .map_err(|_| Error::new(ErrorKind::OutOfMemory, "cannot allocate the key"))?,
        );
        self.with_state(|s, out| {
            s.remove(hash, KeyRef::Name(key.as_bytes()), Reason::Replaced, out);
            s.insert(hash, stored, pm, cost, out)
        })
    }

    /// Inserts `pm` under a new generated key and returns it. When refused, the error comes with
    /// the fresh key that was never valid, which (as in Qt) is still not equal to
    /// [`Key::INVALID`].
    pub fn insert_key(&self, pm: impl Into<Pixmap>) -> std::result::Result<Key, (Key, Error)> {
        let pm = pm.into();
        let cost = pm.cost_kb();
        self.insert_key_costing(pm, cost)
    }

    /// [`Cache::insert_key`] with the entry's cost given in KB (see [`Cache::insert_with_cost`]).
    /// A negative cost is an [`ErrorKind::InvalidArgument`] that comes with the invalid key.
    pub fn insert_key_with_cost(
        &self,
        pm: impl Into<Pixmap>,
        cost_kb: i64,
    ) -> std::result::Result<Key, (Key, Error)> {
        check_cost(cost_kb).map_err(|e| (Key::INVALID, e))?;
        self.insert_key_costing(pm.into(), cost_kb)
    }

    fn insert_key_costing(&self, pm: Pixmap, cost: i64) -> std::result::Result<Key, (Key, Error)> {
        self.with_state(|s, out| {
            let key = s.keys.fresh();
            s.insert(id_hash(key), EntryKey::Id(key.to_raw()), pm, cost, out)
                .map(|()| key)
                .map_err(|e| (key, e))
        })
    }

    /// Replaces the entry of a valid generated key: the old entry is removed, `pm` is inserted
    /// under a new key, and `*key` is updated to it (copies of the old key become invalid).
    /// Fails with [`ErrorKind::InvalidKey`] (inserting nothing) when `*key` is not valid here, and
    /// with [`ErrorKind::Refused`] when `pm` is too costly: the old entry is then gone and `*key`
    /// is left as it was, invalid.
    pub fn replace(&self, key: &mut Key, pm: impl Into<Pixmap>) -> Result<()> {
        let pm = pm.into();
        let old = *key;
        *key = self.with_state(|s, out| {
            let previous = if old.is_invalid() {
                None
            } else {
                s.lru.remove(id_hash(old), KeyRef::Id(old.to_raw()))
            };
            match previous {
                Some((old_key, previous, old_cost)) => {
                    s.stats.removals[Reason::Replaced as usize] += 1;
                    out.depart(old_key, id_hash(old), previous, old_cost, Reason::Replaced);
                }
                // A live image (evicted, still held: its key is valid) is replaced too; its
                // removal was reported when it was evicted.
                None if !old.is_invalid()
                    && s.forget_live(id_hash(old), KeyRef::Id(old.to_raw()), out) => {}
                None => {
                    // Dropped after unlocking, like everything the cache lets go of: it may be
                    // the last share of a foreign pixmap, whose release may call the cache.
                    out.push(pm);
                    return Err(invalid_key_error(old));
                }
            }
            let new_key = s.keys.fresh();
            let cost = pm.cost_kb();
            s.insert(
                id_hash(new_key),
                EntryKey::Id(new_key.to_raw()),
                pm,
                cost,
                out,
            )
            .map(|()| new_key)
        })?;
        Ok(())
    }

    /// Removes the entry under a string key; false when there was none.
    pub fn remove(&self, key: &str) -> bool {
        self.remove_entry(KeyRef::Name(key.as_bytes()))
    }

    /// Removes the entry of a generated key; false when the key is not valid here.
    pub fn remove_key(&self, key: Key) -> bool {
        !key.is_invalid() && self.remove_entry(KeyRef::Id(key.to_raw()))
    }

    fn remove_entry(&self, key: KeyRef<'_>) -> bool {
        let hash = self.hash(key);
        self.with_state(|s, out| s.remove(hash, key, Reason::Removed, out))
    }

    /// Removes every entry; every generated key becomes invalid.
    pub fn clear(&self) {
        self.with_state(|s, out| {
            out.reason = Reason::Cleared;
            s.stats.removals[Reason::Cleared as usize] += s.lru.len() as u64;
            s.lru.clear(out);
            if let Some(live) = s.live_mut() {
                live.clear(&mut out.garbage);
            }
        })
    }

    /// True while the entry of `key` is in this cache. Does not touch recency.
    pub fn key_is_valid(&self, key: Key) -> bool {
        if key.is_invalid() {
            return false;
        }
        self.contains_ref(KeyRef::Id(key.to_raw()))
    }

    /// True when `key` would be found: in the cache, or live (live images on). Touches neither
    /// recency nor statistics.
    pub fn contains(&self, key: &str) -> bool {
        self.contains_ref(KeyRef::Name(key.as_bytes()))
    }

    /// [`Cache::key_is_valid`]: true when the entry of a generated key would be found.
    pub fn contains_key(&self, key: Key) -> bool {
        self.key_is_valid(key)
    }

    fn contains_ref(&self, key: KeyRef<'_>) -> bool {
        self.peek_with(key, |_| ()).is_some()
    }

    /// Looks `key` up and calls `read` with its pixmap, touching neither recency nor the
    /// statistics (a look that is no use). Finds live entries too, without putting them back.
    fn peek_with<R>(&self, key: KeyRef<'_>, read: impl FnOnce(&Pixmap) -> R) -> Option<R> {
        let hash = self.hash(key);
        let mut guard = self.state.read(lock::me());
        let (state, _) = guard.parts();
        if !state.dirty {
            return state.peek(hash, key).map(read);
        }
        drop(guard);
        // A state a panic left broken: the write lock resets it first.
        self.with_state(|s, _| s.peek(hash, key).map(read))
    }

    /// The pixmap under a string key, as a share, touching neither recency nor statistics.
    pub fn peek(&self, key: &str) -> Option<Pixmap> {
        self.peek_with(KeyRef::Name(key.as_bytes()), Pixmap::clone)
    }

    /// [`Cache::peek`] for a generated key.
    pub fn peek_key(&self, key: Key) -> Option<Pixmap> {
        if key.is_invalid() {
            return None;
        }
        self.peek_with(KeyRef::Id(key.to_raw()), Pixmap::clone)
    }

    /// Takes the entry under a string key out of the cache and returns its pixmap (the removal
    /// callback hears of it as [`Reason::Taken`]). A live entry is taken too.
    pub fn take(&self, key: &str) -> Option<Pixmap> {
        let key = KeyRef::Name(key.as_bytes());
        let hash = self.hash(key);
        self.with_state(|s, out| s.take(hash, key, out))
    }

    /// [`Cache::take`] for a generated key (which becomes invalid).
    pub fn take_key(&self, key: Key) -> Option<Pixmap> {
        if key.is_invalid() {
            return None;
        }
        let key = KeyRef::Id(key.to_raw());
        let hash = self.hash(key);
        self.with_state(|s, out| s.take(hash, key, out))
    }

    /// Sum of the entries' costs in KB (exact; Qt 6.4 divides by 1024 once too often).
    pub fn total_used(&self) -> i64 {
        self.with_state(|s, _| s.lru.total())
    }

    /// `QPixmapCache::flushDetachedPixmaps()`: trims least recently used entries until the total
    /// is at most three quarters of what it was. Returns how many entries went.
    pub fn flush_detached(&self) -> usize {
        self.with_state(|s, out| {
            let total = s.lru.total();
            let n = s.trim(idle_trim_target(total, true), Reason::Trimmed, out);
            s.tick_total = s.lru.total();
            n
        })
    }

    /// One tick of Qt 6.4's idle timer, for hosts that drive it from their own event loop: when
    /// the total is unchanged since the previous tick the cache is trimmed to three quarters,
    /// otherwise only the least recently used entry goes. Returns how many entries went.
    pub fn tick(&self) -> usize {
        self.with_state(|s, out| {
            let total = s.lru.total();
            let n = s.trim(
                idle_trim_target(total, total == s.tick_total),
                Reason::Trimmed,
                out,
            );
            s.tick_total = s.lru.total();
            n
        })
    }

    /// Trims for memory pressure: evicts least recently used entries until the total is at
    /// most the fraction of itself that `level` keeps (see [`TrimLevel`]). Returns how many
    /// entries went.
    pub fn trim(&self, level: TrimLevel) -> usize {
        self.with_state(|s, out| {
            let target = level.target(s.lru.total());
            s.trim(target, Reason::Trimmed, out)
        })
    }

    /// Evicts least recently used entries until the total is at most `kb` KB (a negative `kb`
    /// empties the cache). The limit is unchanged. Returns how many entries went.
    pub fn trim_to(&self, kb: i64) -> usize {
        self.with_state(|s, out| s.trim(kb.max(0), Reason::Trimmed, out))
    }

    /// The counters and sizes, read together.
    pub fn stats(&self) -> Stats {
        let mut out = Outgoing::new();
        let stats = self.with_logs(|s, logs| {
            // Live entries nobody holds any more are not reported.
            if let Some(live) = s.live_mut() {
                live.prune(&mut out.garbage);
            }
            let (live_entries, live_kb) = s.live().map_or((0, 0), |l| (l.len(), l.kb()));
            Stats {
                entries: s.lru.len(),
                total_kb: s.lru.total(),
                hits: s.stats.hits + logs.iter().map(|r| r.log.hits).sum::<u64>(),
                misses: s.stats.misses + logs.iter().map(|r| r.log.misses).sum::<u64>(),
                count_limit: s.lru.count_limit(),
                live_entries,
                live_kb,
                ..s.stats
            }
        });
        out.finish();
        stats
    }

    /// Sets the counters of [`Cache::stats`] (hits, misses, inserts, evictions, refused,
    /// removals) to zero and the peak to the current total.
    pub fn reset_stats(&self) {
        let mut guard = self.state.write(lock::me());
        let (state, mut readers) = guard.parts();
        // Lookups are counted in the reader slots' logs too (see `stats`).
        for reader in readers.iter_mut() {
            reader.log.hits = 0;
            reader.log.misses = 0;
        }
        state.stats = Stats {
            limit_kb: state.stats.limit_kb,
            peak_kb: state.lru.total(),
            ..Stats::default()
        };
    }

    /// The count limit (0: none).
    pub fn count_limit(&self) -> usize {
        self.with_state(|s, _| s.lru.count_limit())
    }

    /// Sets a limit on the number of entries beside the KB limit (0: none, the default and
    /// Qt's behaviour). Lowering it evicts least recently used entries at once; inserts evict
    /// until both limits hold. Returns how many entries went.
    pub fn set_count_limit(&self, n: usize) -> usize {
        self.with_state(|s, out| {
            out.reason = Reason::LimitLowered;
            let n = s.lru.set_count_limit(n, out);
            s.evicted(Reason::LimitLowered, n);
            n
        })
    }

    /// Sets (or, with `None`, removes) the callback called once for each entry that leaves
    /// the cache, with its key, pixmap and [`Reason`] (see [`RemovalCallback`]). Never called
    /// for a pixmap a failed insert refused (it never was an entry).
    pub fn set_removal_callback(&self, callback: Option<RemovalCallback>) {
        // The old callback (and whatever it captured) is dropped after unlocking.
        let old = self.with_state(|s, _| {
            let old = std::mem::replace(&mut s.extras_mut().on_removal, callback);
            s.tidy_extras();
            old
        });
        drop(old);
    }

    /// Turns live images on or off (off by default): while on, an entry evicted (for room, by
    /// a trim or a lowered limit) whose pixmap a caller still holds stays findable under its
    /// key for as long as it is held, outside the budget (live.rs). A lookup that finds one
    /// puts it back into the cache as the most recently used entry, if it fits. Turning it off
    /// lets go of the live set.
    pub fn set_live_images(&self, on: bool) {
        self.with_state(|s, out| {
            if on {
                s.extras_mut().live.get_or_insert_with(Live::default);
            } else if let Some(mut live) = s.extras.as_mut().and_then(|e| e.live.take()) {
                live.clear(&mut out.garbage);
                s.tidy_extras();
            }
        })
    }

    /// Whether live images are on.
    pub fn live_images(&self) -> bool {
        self.with_state(|s, _| s.live().is_some())
    }

    /// String keys (as `Some`) and generated keys (as `None`), most recently used first, for tests
    /// and diagnostics.
    pub fn names_by_recency(&self) -> Vec<Option<String>> {
        self.with_state(|s, _| {
            s.lru
                .keys_by_recency()
                .into_iter()
                .map(|k| match k {
                    EntryKey::Name(n) => Some(n.as_str().to_owned()),
                    EntryKey::Id(_) => None,
                })
                .collect()
        })
    }
}

/// `fork(2)` (`fork.rs`): the forking thread takes the flights table, then the whole lock (the
/// same order as `find_or_insert_with`), so that no other thread is inside and nothing is half
/// changed; the child frees them and forgets the flights of the threads it lost.
impl AtFork for Cache {
    fn before_fork(&self) -> Taken {
        match self.flights.before_fork() {
            Taken::All => {}
            other => return other,
        }
        let state = self.state.before_fork();
        if state != Taken::All {
            self.flights.after_fork_in_parent();
        }
        state
    }

    fn after_fork_in_parent(&self) {
        self.state.after_fork_in_parent();
        self.flights.after_fork_in_parent();
    }

    fn after_fork_in_child(&self) {
        self.state.after_fork_in_child();
        self.flights.after_fork_in_child();
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(DEFAULT_LIMIT_KB)
    }
}

/// Qt 6.4's idle trim: what a cache's total is trimmed to when its timer fires, `idle` when the
/// total has not changed since the previous firing (three quarters; else only the least
/// recently used entry goes). `flushDetachedPixmaps()` always trims as if idle.
pub(crate) fn idle_trim_target(total: i64, idle: bool) -> i64 {
    if idle {
        total * 3 / 4
    } else {
        total - 1
    }
}

/// The error for an insert the LRU refused, costing `cost` KB under a limit of `limit` KB.
pub(crate) fn refusal_error(reason: RefuseReason, cost: i64, limit: i64) -> Error {
    match reason {
        RefuseReason::TooCostly => Error::new(
            ErrorKind::Refused,
            format!("a pixmap costing {cost} KB does not fit the cache limit of {limit} KB"),
        ),
        RefuseReason::OutOfMemory => Error::new(
            ErrorKind::OutOfMemory,
            "the cache's table cannot grow: out of memory",
        ),
    }
}

/// An explicit cost is a number of KB: never negative.
pub(crate) fn check_cost(cost_kb: i64) -> Result<()> {
    if cost_kb < 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("the cost must not be negative (got {cost_kb} KB)"),
        ));
    }
    Ok(())
}

/// Generated keys are already uniformly scrambled (see key.rs): they are their own hash.
fn id_hash(key: Key) -> u64 {
    key.to_raw()
}

/// The error for a generated key that is not valid in a cache.
pub fn invalid_key_error(key: Key) -> Error {
    if key.is_invalid() {
        Error::new(
            ErrorKind::InvalidKey,
            "the key is the invalid (all-zero) key",
        )
    } else {
        Error::new(
            ErrorKind::InvalidKey,
            "the key is not valid in this cache: its entry was evicted, removed, replaced or cleared, or the key belongs to another cache",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::format::Format;
    use std::sync::Arc;

    fn pm(w: u32, h: u32) -> Pixmap {
        Pixmap::new(w, h, Format::Rgba8888).unwrap()
    }

    #[test]
    fn qt_probe_facts() {
        let c = Cache::new(128);
        let p64 = pm(64, 64);
        for i in 0..20 {
            c.insert(&i.to_string(), &p64).unwrap();
        }
        assert_eq!(c.total_used(), 128);
        assert_eq!((0..20).filter(|i| c.touch(&i.to_string())).count(), 8);
    }

    /// A visit sees the cached pixmap itself (no share is made), counts and refreshes as a find
    /// does, and tells a miss from bytes that are not UTF-8; a visit that calls the cache again
    /// gets a `Reentrant` error instead of a deadlock, and the cache is intact afterwards.
    #[test]
    fn visits_read_in_place_and_refuse_reentry() {
        let c = Cache::new(3);
        let (a, b) = (pm(10, 10), pm(10, 10));
        c.insert("a", &a).unwrap();
        c.insert("b", &b).unwrap();
        let k = c.insert_key(&a).unwrap();
        let shares = |p: &Pixmap| !p.is_detached();
        assert_eq!(
            c.visit_bytes(b"a", |found| (found.shares_pixels_with(&a), shares(found))),
            Some(Some((true, true)))
        );
        assert_eq!(c.visit_bytes(b"zz", |_| ()), Some(None));
        assert_eq!(c.visit_bytes(b"\xff", |_| ()), None);
        assert_eq!(
            c.visit_key(k, |found| found.shares_pixels_with(&a)),
            Some(true)
        );
        let stats = c.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
        // Visited last, "a" and the key entry outlive "b" when "c" needs room.
        c.insert("c", &b).unwrap();
        assert!(c.touch("a") && c.key_is_valid(k) && !c.touch("b"));

        let reentry = c.visit_bytes(b"a", |_| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.touch("a")))
                .err()
                .and_then(|payload| payload.downcast_ref::<Error>().map(Error::kind))
        });
        assert_eq!(reentry, Some(Some(Some(ErrorKind::Reentrant))));
        assert!(c.touch("a") && c.touch("c") && c.key_is_valid(k));

        // A visitor that panics (here the re-entry's error, not caught) costs nobody the cache,
        // whether this thread is the only one looking things up or not.
        for alone in [true, false] {
            if !alone {
                std::thread::scope(|s| {
                    s.spawn(|| c.touch("c"));
                });
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c.visit_bytes(b"a", |_| c.touch("a"))
            }));
            let payload = outcome.expect_err("the inner call unwinds through the visit");
            assert_eq!(
                payload.downcast_ref::<Error>().map(Error::kind),
                Some(ErrorKind::Reentrant)
            );
            assert!(
                c.touch("a") && c.touch("c") && c.key_is_valid(k),
                "cache intact"
            );
        }
    }

    /// Names that are not UTF-8 find nothing and are not counted, from a thread alone (its hits
    /// unstamped) or next to another one (stamped); real misses are counted.
    #[test]
    fn bytes_that_are_not_utf8_are_not_lookups() {
        let c = Cache::new(1024);
        let mut out = Pixmap::null();
        c.insert("ok", pm(1, 1)).unwrap();
        let lookups = |c: &Cache| (c.stats().hits, c.stats().misses);
        for round in 0..2 {
            let before = lookups(&c);
            for _ in 0..2048 {
                assert_eq!(c.find_bytes_into(b"ok\xff", &mut out), None);
                assert_eq!(c.touch_bytes(b"\xc3"), None);
                assert_eq!(c.touch_bytes(b"icon:/theme/\xff12@2x.png"), None);
            }
            assert_eq!(lookups(&c), before, "round {round}");
            assert_eq!(c.touch_bytes(b"absent"), Some(false));
            assert_eq!(c.touch_bytes("\u{e9}t\u{e9}".as_bytes()), Some(false));
            assert_eq!(c.find_bytes_into(b"ok", &mut out), Some(true));
            assert_eq!(lookups(&c), (before.0 + 1, before.1 + 2), "round {round}");
            // Another thread's lookup: the next round's hits are stamped.
            std::thread::scope(|s| {
                s.spawn(|| c.touch("ok"));
            });
        }
    }

    #[test]
    fn failed_string_insert_empties_the_key() {
        let c = Cache::new(20);
        c.insert("x", pm(10, 10)).unwrap();
        let e = c.insert("x", pm(256, 256)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(c.find("x").is_none());
    }

    #[test]
    fn replace_rekeys_and_invalidates_copies() {
        let c = Cache::default();
        let mut k = c.insert_key(pm(64, 64)).unwrap();
        let copy = k;
        c.replace(&mut k, pm(10, 10)).unwrap();
        assert_ne!(k, copy);
        assert!(!c.key_is_valid(copy));
        assert_eq!(c.find_key(k).unwrap().width(), 10);
        assert_eq!(
            c.replace(&mut Key::INVALID.clone(), pm(1, 1))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(c.stats().entries, 1);
    }

    #[test]
    fn refused_key_insert_gives_a_never_valid_non_default_key() {
        let c = Cache::new(0);
        let (k, e) = c.insert_key(pm(1, 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert_ne!(k, Key::INVALID);
        assert!(!c.key_is_valid(k));
    }

    #[test]
    fn keys_belong_to_their_cache() {
        let a = Cache::default();
        let b = Cache::default();
        let k = a.insert_key(pm(1, 1)).unwrap();
        b.insert_key(pm(1, 1)).unwrap();
        assert!(a.key_is_valid(k));
        assert!(!b.key_is_valid(k));
        assert!(b.find_key(k).is_none());
    }

    #[test]
    fn flush_detached_trims_to_three_quarters() {
        let c = Cache::default();
        let p = pm(64, 64);
        for i in 0..100 {
            c.insert(&i.to_string(), &p).unwrap();
        }
        assert_eq!(c.total_used(), 1600);
        c.flush_detached();
        assert_eq!(c.total_used(), 1200);
        assert!(!c.touch("24") && c.touch("25") && c.touch("99"));
    }

    #[test]
    fn tick_takes_one_entry_when_busy_and_a_quarter_when_idle() {
        let c = Cache::default();
        let p = pm(64, 64);
        for i in 0..8 {
            c.insert(&i.to_string(), &p).unwrap();
        }
        assert_eq!(c.tick(), 1); // total changed since the last tick (0 -> 128)
        assert_eq!(c.tick(), 2); // unchanged: 112 -> 84 KB, so two 16 KB entries go
        assert_eq!(c.total_used(), 80);
    }

    /// Threads take turns (each hit happens after the previous thread's, handed over through a
    /// mutex), so the exact recency order is known: the cache must end in exactly that order,
    /// although the hits were recorded in different threads' logs and replayed later.
    /// Two threads take the cache in turns, each for long enough to fill and replay its reader
    /// log many times (and for the cache to stop stamping), with lookups, inserts and removes;
    /// after every turn the order must be exactly the one a simple model gives.
    #[test]
    fn threads_taking_turns_keep_the_exact_order() {
        use std::sync::mpsc;
        let c = Arc::new(Cache::new(100_000));
        let p = pm(1, 1);
        let (to_a, a_rx) = mpsc::channel::<Option<u64>>();
        let (to_b, b_rx) = mpsc::channel::<Option<u64>>();
        let (done_tx, done) = mpsc::channel::<(Vec<String>, bool)>();
        // The model: names, most recent first; it travels with the turn.
        let model = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let worker = |rx: mpsc::Receiver<Option<u64>>| {
            let (c, p, model, done_tx) = (c.clone(), p.clone(), model.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let mut out = Pixmap::null();
                while let Some(mut x) = rx.recv().unwrap() {
                    let mut model = model.lock().unwrap();
                    let (mut unstamped, mut ops) = (false, 0);
                    // Long enough for this turn's thread to be the only one recording: it then
                    // records without stamps (recency.rs), and the next turn switches back.
                    while ops < 3000 || (!unstamped && ops < 500_000) {
                        ops += 1;
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let name = ((x >> 33) % 80).to_string();
                        let at = model.iter().position(|n| *n == name);
                        match (x >> 20) % 10 {
                            0 => {
                                c.insert(&name, &p).unwrap();
                                if let Some(at) = at {
                                    model.remove(at);
                                }
                                model.insert(0, name);
                            }
                            1 => {
                                assert_eq!(c.remove(&name), at.is_some());
                                if let Some(at) = at {
                                    model.remove(at);
                                }
                            }
                            _ => {
                                assert_eq!(c.find_into(&name, &mut out), at.is_some());
                                if let Some(at) = at {
                                    let n = model.remove(at);
                                    model.insert(0, n);
                                }
                            }
                        }
                        unstamped |= !c.is_stamped();
                    }
                    done_tx.send((model.clone(), unstamped)).unwrap();
                }
            })
        };
        let (a, b) = (worker(a_rx), worker(b_rx));
        for turn in 0..8u64 {
            let to = if turn % 2 == 0 { &to_a } else { &to_b };
            to.send(Some(turn + 1)).unwrap();
            let (expected, unstamped) = done.recv().unwrap();
            let got: Vec<String> = c.names_by_recency().into_iter().flatten().collect();
            assert_eq!(got, expected, "after turn {turn}");
            assert!(unstamped, "turn {turn} never recorded unstamped");
        }
        to_a.send(None).unwrap();
        to_b.send(None).unwrap();
        a.join().unwrap();
        b.join().unwrap();
    }

    impl Cache {
        /// Whether hits are stamped now (more than one thread has been looking things up).
        fn is_stamped(&self) -> bool {
            self.with_logs(|s, _| s.order.is_stamped())
        }

        /// How many spare shares the reader slots hold.
        fn spares_held(&self) -> usize {
            self.with_logs(|_, readers| readers.iter().map(|r| r.spares.len()).sum())
        }
    }

    /// A foreign 64x64 pixmap (16 KB) whose release records its token in `released`.
    fn recorded(token: usize, released: &Arc<std::sync::Mutex<Vec<usize>>>) -> Pixmap {
        let released = released.clone();
        let release = Box::new(move || released.lock().unwrap().push(token));
        Pixmap::foreign(64, 64, 32, token, Some(release)).unwrap()
    }

    /// Lookups through a reader slot keep the shares their callers' handles give back as spares
    /// (spares.rs), and hand them out again. A spare goes with its entry: removing, evicting or
    /// clearing releases the pixmap at once, and a slot reused by another entry never hands out
    /// the old spare.
    #[test]
    fn spare_shares_go_with_their_entries() {
        let released = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gone = || released.lock().unwrap().clone();
        let c = Cache::new(64); // four 16 KB pixmaps
        for (key, token) in [("a", 1), ("b", 2), ("c", 3)] {
            c.insert(key, recorded(token, &released)).unwrap();
        }
        // Another thread's lookup first: this thread's lookups are then stamped.
        std::thread::scope(|s| {
            s.spawn(|| c.touch("c"));
        });
        let mut out = Pixmap::null();
        for _ in 0..3 {
            for key in ["a", "b", "c"] {
                assert!(c.find_into(key, &mut out));
            }
        }
        assert_eq!(out.foreign_token(), Some(3));
        assert_eq!(c.spares_held(), 2, "a's and b's shares came back as spares");

        assert!(c.remove("a"));
        assert_eq!(gone(), [1], "a's spare went with it");
        // "d" takes the slot "a" left: finding it gives d's pixmap.
        c.insert("d", recorded(4, &released)).unwrap();
        assert!(c.find_into("d", &mut out));
        assert_eq!(out.foreign_token(), Some(4));
        assert!(c.find_into("b", &mut out) && c.find_into("d", &mut out));
        assert_eq!(out.foreign_token(), Some(4));
        // Recency, most recent first: d, b, c. "e" fills the cache; "f" evicts c, "g" evicts b
        // (both with spares), "h" evicts d, which `out` still holds.
        c.insert("e", recorded(5, &released)).unwrap();
        assert_eq!(gone(), [1]);
        c.insert("f", recorded(6, &released)).unwrap();
        c.insert("g", recorded(7, &released)).unwrap();
        c.insert("h", recorded(8, &released)).unwrap();
        assert_eq!(gone(), [1, 3, 2], "evicted with their spares");
        assert!(!c.touch("d"));
        c.clear();
        let mut after_clear = gone();
        after_clear.sort_unstable();
        assert_eq!(
            after_clear,
            [1, 2, 3, 5, 6, 7, 8],
            "all but the one `out` holds"
        );
        assert_eq!(c.spares_held(), 0);
        drop(out);
        assert_eq!(gone().len(), 8);
    }

    /// Makes this thread find "a", "b", "a" through its reader slot (after another thread's
    /// lookup), so that b's share comes back as a spare; returns the handle.
    fn keep_a_spare_of_b(c: &Cache) -> Pixmap {
        std::thread::scope(|s| {
            s.spawn(|| c.touch("a"));
        });
        let mut out = Pixmap::null();
        for key in ["a", "b", "a"] {
            assert!(c.find_into(key, &mut out));
        }
        assert_eq!(c.spares_held(), 1, "b's share came back as a spare");
        out
    }

    /// A spare goes with its entry: once b is removed (its last share, the spare, released with
    /// it) and x takes its LRU slot, a find of x through the same reader slot hands out x.
    #[test]
    fn a_spare_never_outlives_its_entry() {
        let released = Arc::new(std::sync::Mutex::new(Vec::new()));
        let c = Cache::new(1000);
        c.insert("a", recorded(1, &released)).unwrap();
        c.insert("b", recorded(2, &released)).unwrap();
        let mut out = keep_a_spare_of_b(&c);
        assert!(c.remove("b"));
        assert_eq!(*released.lock().unwrap(), [2], "b released as it went");
        c.insert("x", recorded(9, &released)).unwrap(); // in the slot b left
        assert!(c.find_into("x", &mut out));
        assert_eq!(out.foreign_token(), Some(9));
    }

    /// Threads finding into their own handles, with misses inserting and evicting all the
    /// while: every find gets its own key's pixmap, and every pixmap is released once.
    #[test]
    fn lookups_from_several_threads_find_their_own_keys_and_release_everything() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let made = AtomicUsize::new(0);
        let released = Arc::new(AtomicUsize::new(0));
        let c = Cache::new(40 * 16); // 40 of the 100 keys fit
        let ops = if cfg!(miri) { 200 } else { 20_000 };
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (c, made, released) = (&c, &made, released.clone());
                s.spawn(move || {
                    let mut out = Pixmap::null();
                    let mut x = t + 1;
                    for _ in 0..ops {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        // Skewed towards low keys, so that threads share hot entries.
                        let key = ((x >> 33) % 100 * ((x >> 20) % 100) / 100) as usize;
                        let name = key.to_string();
                        if c.find_into(&name, &mut out) {
                            assert_eq!(out.foreign_token(), Some(key));
                        } else {
                            let released = released.clone();
                            let release = Box::new(move || {
                                released.fetch_add(1, Ordering::Relaxed);
                            });
                            made.fetch_add(1, Ordering::Relaxed);
                            let pm = Pixmap::foreign(64, 64, 32, key, Some(release)).unwrap();
                            c.insert(&name, pm).unwrap();
                        }
                    }
                });
            }
        });
        assert_eq!(c.spare_mismatches(), 0, "a spare outlived its entry");
        c.clear();
        assert_eq!(
            released.load(Ordering::Relaxed),
            made.load(Ordering::Relaxed)
        );
        assert!(
            made.load(Ordering::Relaxed) > 100,
            "keys were evicted and inserted again"
        );
    }

    #[test]
    fn hits_from_several_threads_replay_in_their_real_order() {
        use std::sync::{Arc, Condvar, Mutex};
        for threads in [2usize, 3, 8] {
            let c = Arc::new(Cache::new(1000));
            let p = pm(1, 1);
            let n = 200;
            for i in 0..n {
                c.insert(&i.to_string(), &p).unwrap();
            }
            // A fixed pseudo-random visiting order, with repeats; long enough for every log to
            // fill twice (and be set aside, see `Order::must_replay`).
            let mut x = 12345u64;
            let visits: Vec<usize> = (0..5000)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 33) as usize % n
                })
                .collect();
            let turn = Arc::new((Mutex::new(0usize), Condvar::new()));
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (c, turn, visits) = (c.clone(), turn.clone(), visits.clone());
                    std::thread::spawn(move || {
                        let mut out = Pixmap::null();
                        for (i, v) in visits.iter().enumerate().skip(t).step_by(threads) {
                            let (lock, cv) = &*turn;
                            let mut at =
                                cv.wait_while(lock.lock().unwrap(), |at| *at != i).unwrap();
                            assert!(c.find_into(&v.to_string(), &mut out));
                            *at += 1;
                            cv.notify_all();
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            // Expected: most recently visited first, then the never-visited in insertion order
            // reversed.
            let mut expected: Vec<usize> = Vec::new();
            for &v in visits
                .iter()
                .rev()
                .chain((0..n).rev().collect::<Vec<_>>().iter())
            {
                if !expected.contains(&v) {
                    expected.push(v);
                }
            }
            let got: Vec<usize> = c
                .names_by_recency()
                .into_iter()
                .map(|k| k.unwrap().parse().unwrap())
                .collect();
            assert_eq!(got, expected, "{threads} threads");
            assert_eq!(c.stats().hits, visits.len() as u64);
        }
    }

    /// Threads look up their own keys round and round, each more keys than a log holds, so
    /// full logs are replayed beside the others' lookups, while a writer inserts, removes and
    /// lists the entries by recency (which replays everything). However the replays and the
    /// writes interleave, each thread's keys must be in the order it found them: most recent
    /// first, cyclically. A writer that got in between a batch being taken and replayed (the
    /// window `WriteGuard::downgrade` closes) would replay newer hits before it. (From review.)
    #[test]
    fn replays_beside_lookups_keep_each_threads_order_under_writers() {
        use std::sync::atomic::{AtomicBool, Ordering};
        for threads in [2usize, 3, 4, 9] {
            let per = 5000usize;
            let c = Arc::new(Cache::new(1 << 24));
            let p = pm(1, 1);
            for t in 0..threads {
                for k in 0..per {
                    c.insert(&format!("{t}-{k}"), &p).unwrap();
                }
            }
            let stop = Arc::new(AtomicBool::new(false));
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
                    std::thread::spawn(move || {
                        let mut out = Pixmap::null();
                        let mut i = 0usize;
                        while !stop.load(Ordering::Relaxed) || i < 4 * per {
                            assert!(c.find_into(&format!("{t}-{}", i % per), &mut out));
                            i += 1;
                        }
                    })
                })
                .collect();
            let start = std::time::Instant::now();
            let mut snapshots = 0;
            while start.elapsed() < std::time::Duration::from_millis(1000) {
                c.insert(&format!("w{}", snapshots % 7), &p).unwrap();
                c.remove(&format!("w{}", (snapshots + 3) % 7));
                let names = c.names_by_recency();
                snapshots += 1;
                for t in 0..threads {
                    let prefix = format!("{t}-");
                    let mine: Vec<usize> = names
                        .iter()
                        .filter_map(|n| n.as_deref()?.strip_prefix(&prefix)?.parse().ok())
                        .collect();
                    assert_eq!(mine.len(), per);
                    for w in mine.windows(2) {
                        assert_eq!(
                            w[1],
                            (w[0] + per - 1) % per,
                            "thread {t} of {threads}, snapshot {snapshots}: {:?}",
                            &mine[..8]
                        );
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            workers.into_iter().for_each(|w| w.join().unwrap());
        }
    }

    /// A replay beside lookups that a panic interrupted (it holds the reader slot, not the write
    /// lock, so nothing marks the state dirty) leaves the order half replayed: the next writer
    /// resets the cache instead of trusting it.
    #[test]
    fn a_replay_interrupted_beside_lookups_resets_the_cache() {
        let c = Cache::default();
        c.insert("a", pm(1, 1)).unwrap();
        let me = lock::me();
        let mut access = c.state.read(me);
        let (state, _) = access.parts();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _touches = state.lru.touches();
            panic!("a replay interrupted");
        }));
        assert!(r.is_err());
        drop(access);
        c.insert("b", pm(1, 1)).unwrap();
        assert!(c.find("a").is_none(), "the cache was trusted");
        assert!(c.find("b").is_some());
    }

    #[test]
    fn poisoned_lock_resets_instead_of_wedging() {
        let c = Cache::default();
        c.insert("a", pm(1, 1)).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.with_state(|_, _| panic!("boom"));
        }));
        assert!(r.is_err());
        assert!(c.find("a").is_none());
        c.insert("b", pm(1, 1)).unwrap();
        assert!(c.find("b").is_some());
    }
}
