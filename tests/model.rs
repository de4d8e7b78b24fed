//! Model-based property test of [`pixcache::Cache`].
//!
//! Random operation sequences run against the cache and against [`Model`], a deliberately naive
//! restatement of the rules in `docs/spec.md` (a `Vec` of entries, most recently used
//! first, O(n) everything). After every step the checker compares every return value, which
//! pixmap a lookup found (by `Pixmap::cache_key`), the validity of every generated key ever handed
//! out (copies from before a `replace` and the never-valid keys of refused inserts included), the
//! recency order of all entries (`names_by_recency`, which does not touch recency),
//! `total_used`, `limit` and every counter of `stats`.
//!
//! In half the cases ("sweep") the checker also finds every entry from least to most recently
//! used after each step, which verifies which pixmap each entry holds while leaving the recency
//! order as it was. In release mode every pixmap is foreign with a counting release function,
//! and the checker verifies that each one has been released exactly when no entry holds it.
//!
//! The model's costs come from its own formula, never from `Pixmap::cost_kb`.
//!
//! The opt-in operations are in the model too (peeks, contains, takes, the count limit, explicit
//! costs, trims, `reset_stats`; live images stay off, see tests/extras.rs). Every run installs a
//! removal callback that records each departure (reason, key, pixmap, cost); after every step
//! the departures it heard of must be exactly the ones the model expects, in the same order:
//! each entry that leaves is reported once, and nothing else is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pixcache::{
    Cache, ErrorKind, Format, Key, Pixmap, Reason, Removal, RemovedKey, Stats, TrimLevel,
    DEFAULT_LIMIT_KB,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// The string key pool: the empty string, near-duplicates (trailing space, case) and non-ASCII.
const NAMES: [&str; 8] = ["", "a", "b", "c", "icon", "icon ", "Icon", "ünï/çödé.png"];

/// The pixmap an operation inserts.
#[derive(Clone, Copy, Debug)]
enum Pm {
    Null,
    Rgba(u32, u32),
    Gray(u32, u32),
    Foreign {
        w: u32,
        h: u32,
        depth: u32,
    },
    /// A foreign pixmap costing one KB more than the current limit (any pixmap when limit < 0).
    OverLimit,
    /// A foreign pixmap costing exactly the current limit (a 0x0 one, 1 KB, when the limit is < 1).
    AtLimit,
    /// The pixmap of the previous insert, shared again (a null pixmap when there was none).
    Again,
}

/// Which generated key an operation uses.
#[derive(Clone, Copy, Debug)]
enum KeySel {
    /// `Key::INVALID`.
    Invalid,
    /// Any key handed out so far (live, stale, or never valid), by index modulo their number.
    Any(usize),
    /// A key the model says is live, by index modulo their number (else like `Any`).
    Live(usize),
    /// A made-up raw value.
    Forged(u64),
}

/// The cost of an explicit-cost insert.
#[derive(Clone, Copy, Debug)]
enum CostSel {
    Value(i64),
    /// Exactly the current limit (0 when the limit is negative: refused).
    AtLimit,
    /// One more than the current limit (0 when the limit is negative).
    OverLimit,
}

/// A target for `trim_to`.
#[derive(Clone, Copy, Debug)]
enum TrimTarget {
    Value(i64),
    Total,
    TotalMinusOne,
}

/// A limit for `set_limit`.
#[derive(Clone, Copy, Debug)]
enum NewLimit {
    Value(i32),
    Total,
    TotalMinusOne,
    TotalPlusOne,
}

#[derive(Clone, Debug)]
enum Op {
    Find(usize),
    Touch(usize),
    FindKey(KeySel),
    TouchKey(KeySel),
    Insert(usize, Pm),
    InsertKey(Pm),
    Replace(KeySel, Pm),
    Remove(usize),
    RemoveKey(KeySel),
    Clear,
    SetLimit(NewLimit),
    FlushDetached,
    Tick,
    Contains(usize),
    ContainsKey(KeySel),
    Peek(usize),
    PeekKey(KeySel),
    Take(usize),
    TakeKey(KeySel),
    SetCountLimit(usize),
    InsertWithCost(usize, Pm, CostSel),
    InsertKeyWithCost(Pm, CostSel),
    Trim(TrimLevel),
    TrimTo(TrimTarget),
    ResetStats,
}

/// Deliberate mistakes the model can be told to make, to show that the checker catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    None,
    /// `find` answers but does not make the entry the most recently used.
    FindDoesNotRefresh,
    /// A refused string insert keeps the previous entry under that string.
    RefusedInsertKeepsOld,
    /// `tick` always takes one entry, never the 3/4 trim.
    TickAlwaysTakesOne,
    /// `clear` resets the tick baseline to 0 (an earlier version of the library did).
    ClearResetsTickBaseline,
    /// `clear` reports its entries most recently used first (the library: least recently used
    /// first, as evictions go). Only the removal callback shows the order.
    ClearReportsMostRecentFirst,
    /// An insert makes room for its cost only, never for the count limit.
    CountLimitIgnored,
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum MKey {
    Name(String),
    Id(Key),
}

#[derive(Clone, Debug)]
struct Entry {
    key: MKey,
    cost: i64,
    /// `Pixmap::cache_key` of the stored pixmap.
    pm: u64,
}

/// An entry that left the cache, as the removal callback reports it (or as the model expects).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Departure {
    reason: Reason,
    key: MKey,
    /// `Pixmap::cache_key` of its pixmap.
    pm: u64,
    cost: i64,
}

#[derive(Debug)]
struct Model {
    /// Most recently used first.
    entries: Vec<Entry>,
    limit: i32,
    /// 0: none.
    count_limit: usize,
    /// Total at the previous tick or flush (Qt's `ps`).
    baseline: i64,
    hits: u64,
    misses: u64,
    inserts: u64,
    evictions: u64,
    refused: u64,
    removals: [u64; Reason::COUNT],
    peak: i64,
    /// Entries that left during the current step, in the order they left.
    departed: Vec<Departure>,
    flaw: Flaw,
}

/// `max(1, width * height * depth / 8 / 1024)` KB.
fn qt_cost(w: u32, h: u32, depth: u32) -> i64 {
    let kb = u128::from(w) * u128::from(h) * u128::from(depth) / 8 / 1024;
    i64::try_from(kb.max(1)).expect("test costs fit i64")
}

impl Model {
    fn new(limit: i32, flaw: Flaw) -> Self {
        Model {
            entries: Vec::new(),
            limit,
            count_limit: 0,
            baseline: 0,
            hits: 0,
            misses: 0,
            inserts: 0,
            evictions: 0,
            refused: 0,
            removals: [0; Reason::COUNT],
            peak: 0,
            departed: Vec::new(),
            flaw,
        }
    }

    fn total(&self) -> i64 {
        self.entries.iter().map(|e| e.cost).sum()
    }

    fn position(&self, key: &MKey) -> Option<usize> {
        self.entries.iter().position(|e| &e.key == key)
    }

    fn contains(&self, key: &MKey) -> bool {
        self.position(key).is_some()
    }

    /// An entry leaves for `reason`: counted, and expected from the removal callback.
    fn depart(&mut self, e: Entry, reason: Reason) {
        self.removals[reason as usize] += 1;
        if matches!(
            reason,
            Reason::Evicted | Reason::Trimmed | Reason::LimitLowered
        ) {
            self.evictions += 1;
        }
        self.departed.push(Departure {
            reason,
            key: e.key,
            pm: e.pm,
            cost: e.cost,
        });
    }

    /// Evicts least recently used entries (for `reason`) until the total is at most `target`
    /// and there are at most `max_len` entries.
    fn trim(&mut self, target: i64, max_len: usize, reason: Reason) -> usize {
        let mut n = 0;
        // A target of 0 or less leaves nothing, also entries that cost 0 (explicit costs).
        while self.total() > target || self.entries.len() > max_len || target <= 0 {
            let Some(e) = self.entries.pop() else { break };
            self.depart(e, reason);
            n += 1;
        }
        n
    }

    /// `find`: on a hit the entry becomes the most recently used.
    fn lookup(&mut self, key: &MKey) -> Option<u64> {
        match self.position(key) {
            Some(i) => {
                self.hits += 1;
                let pm = self.entries[i].pm;
                if self.flaw != Flaw::FindDoesNotRefresh {
                    let e = self.entries.remove(i);
                    self.entries.insert(0, e);
                }
                Some(pm)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// `peek` and `contains`: no recency, no statistics.
    fn peek(&self, key: &MKey) -> Option<u64> {
        self.position(key).map(|i| self.entries[i].pm)
    }

    /// Inserts under a key known to be absent: refused (evicting nothing) when the cost exceeds
    /// the limit, else evicts until `total + cost <= limit` and (with a count limit `n`) at most
    /// `n - 1` entries are left, and puts the entry first.
    fn put(&mut self, key: MKey, cost: i64, pm: u64) -> bool {
        // A limit of 0 or less holds nothing, not even an entry costing 0.
        if cost > i64::from(self.limit) || self.limit <= 0 {
            self.refused += 1;
            return false;
        }
        let room = match self.count_limit {
            0 => usize::MAX,
            _ if self.flaw == Flaw::CountLimitIgnored => usize::MAX,
            n => n - 1,
        };
        self.trim(i64::from(self.limit) - cost, room, Reason::Evicted);
        self.entries.insert(0, Entry { key, cost, pm });
        self.inserts += 1;
        self.peak = self.peak.max(self.total());
        true
    }

    /// Takes the entry under `key` out for `reason`; its pixmap.
    fn remove(&mut self, key: &MKey, reason: Reason) -> Option<u64> {
        let i = self.position(key)?;
        let e = self.entries.remove(i);
        let pm = e.pm;
        self.depart(e, reason);
        Some(pm)
    }

    /// String insert: the old entry under `name` goes first (replaced, also when the new one
    /// is then refused), then the new one is inserted.
    fn insert_name(&mut self, name: &str, cost: i64, pm: u64) -> bool {
        if self.flaw == Flaw::RefusedInsertKeepsOld && cost > i64::from(self.limit) {
            self.refused += 1;
            return false;
        }
        self.remove(&MKey::Name(name.to_owned()), Reason::Replaced);
        self.put(MKey::Name(name.to_owned()), cost, pm)
    }

    fn set_limit(&mut self, limit: i32) {
        self.limit = limit;
        self.trim(i64::from(limit), usize::MAX, Reason::LimitLowered);
    }

    fn set_count_limit(&mut self, n: usize) -> usize {
        self.count_limit = n;
        let max_len = if n == 0 { usize::MAX } else { n };
        self.trim(self.total(), max_len, Reason::LimitLowered)
    }

    /// Removes everything, least recently used first. Qt's `QPMCache::clear` stops the idle
    /// timer but leaves `ps` (the total at the previous tick) alone.
    fn clear(&mut self) {
        let mut gone = std::mem::take(&mut self.entries);
        if self.flaw != Flaw::ClearReportsMostRecentFirst {
            gone.reverse();
        }
        for e in gone {
            self.depart(e, Reason::Cleared);
        }
        if self.flaw == Flaw::ClearResetsTickBaseline {
            self.baseline = 0;
        }
    }

    fn flush_detached(&mut self) -> usize {
        let total = self.total();
        let n = self.trim(total * 3 / 4, usize::MAX, Reason::Trimmed);
        self.baseline = self.total();
        n
    }

    fn tick(&mut self) -> usize {
        let total = self.total();
        let target = if total == self.baseline && self.flaw != Flaw::TickAlwaysTakesOne {
            total * 3 / 4
        } else {
            total - 1
        };
        let n = self.trim(target, usize::MAX, Reason::Trimmed);
        self.baseline = self.total();
        n
    }

    /// A trim for memory pressure: keeps half, a quarter, an eighth or nothing of the total.
    /// The tick baseline is left alone.
    fn trim_level(&mut self, level: TrimLevel) -> usize {
        let total = self.total();
        let target = match level {
            TrimLevel::Moderate => total / 2,
            TrimLevel::Low => total / 4,
            TrimLevel::Critical => total / 8,
            TrimLevel::Complete => 0,
        };
        self.trim(target, usize::MAX, Reason::Trimmed)
    }

    fn trim_to(&mut self, kb: i64) -> usize {
        self.trim(kb.max(0), usize::MAX, Reason::Trimmed)
    }

    fn reset_stats(&mut self) {
        self.hits = 0;
        self.misses = 0;
        self.inserts = 0;
        self.evictions = 0;
        self.refused = 0;
        self.removals = [0; Reason::COUNT];
        self.peak = self.total();
    }

    fn stats(&self) -> Stats {
        Stats {
            entries: self.entries.len(),
            total_kb: self.total(),
            limit_kb: self.limit,
            hits: self.hits,
            misses: self.misses,
            inserts: self.inserts,
            evictions: self.evictions,
            refused: self.refused,
            removals: self.removals,
            peak_kb: self.peak,
            count_limit: self.count_limit,
            live_entries: 0,
            live_kb: 0,
        }
    }

    fn names(&self) -> Vec<Option<String>> {
        self.entries
            .iter()
            .map(|e| match &e.key {
                MKey::Name(s) => Some(s.clone()),
                MKey::Id(_) => None,
            })
            .collect()
    }

    fn live_keys(&self) -> Vec<Key> {
        self.entries
            .iter()
            .filter_map(|e| match e.key {
                MKey::Id(k) => Some(k),
                MKey::Name(_) => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The checker

// ---------------------------------------------------------------------------------------------

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

macro_rules! ensure_eq {
    ($lib:expr, $model:expr, $what:expr) => {{
        let (lib, model) = (&$lib, &$model);
        if lib != model {
            return Err(format!(
                "{}: library says {:?}, model says {:?}",
                $what, lib, model
            ));
        }
    }};
}

/// One released-counter per foreign pixmap made in release mode: (cache_key, release count).
type Releases = Vec<(u64, Arc<AtomicUsize>)>;

/// What the removal callback heard, in order.
type Heard = Arc<Mutex<Vec<Departure>>>;

struct Run {
    cache: Cache,
    model: Model,
    /// Every generated key handed out so far (and forged ones), in order.
    keys: Vec<Key>,
    /// The pixmap of the previous insert and its cost, for [`Pm::Again`].
    last: Option<(Pixmap, i64)>,
    /// Also verify, after every step, which pixmap each entry holds (see [`Run::check`]).
    sweep: bool,
    /// Release mode: every pixmap is foreign with a counting release function, and the test keeps
    /// no share of it except `last`.
    releases: Option<Releases>,
    /// Filled by the removal callback installed on `cache`; emptied by every check.
    heard: Heard,
}

/// How a run is set up.
#[derive(Clone, Copy, Debug)]
struct Setup {
    /// The starting limit: `None` is `Cache::default()` (10240 KB).
    limit: Option<i32>,
    sweep: bool,
    flaw: Flaw,
    release_mode: bool,
}

impl Setup {
    fn new(limit: Option<i32>) -> Self {
        Setup {
            limit,
            sweep: false,
            flaw: Flaw::None,
            release_mode: false,
        }
    }
}

impl Run {
    fn new(setup: Setup) -> Self {
        let cache = match setup.limit {
            Some(l) => Cache::new(l),
            None => Cache::default(),
        };
        let heard: Heard = Arc::default();
        let log = Arc::clone(&heard);
        // The callback keeps no share of the pixmap (release mode checks when each one goes).
        cache.set_removal_callback(Some(Arc::new(move |r: &Removal<'_>| {
            let key = match r.key {
                RemovedKey::Name(n) => MKey::Name(n.to_owned()),
                RemovedKey::Key(k) => MKey::Id(k),
            };
            log.lock().expect("callback log").push(Departure {
                reason: r.reason,
                key,
                pm: r.pixmap.cache_key(),
                cost: r.cost_kb,
            });
        })));
        Run {
            cache,
            model: Model::new(setup.limit.unwrap_or(DEFAULT_LIMIT_KB), setup.flaw),
            keys: Vec::new(),
            last: None,
            sweep: setup.sweep,
            releases: setup.release_mode.then(Vec::new),
            heard,
        }
    }

    fn make(&mut self, spec: Pm) -> Result<(Pixmap, i64), String> {
        if let (Pm::Again, Some((pm, cost))) = (spec, &self.last) {
            return Ok((pm.clone(), *cost));
        }
        let limit = self.model.limit;
        // (width, height, depth, raster format or None for foreign)
        let (w, h, depth, format) = match spec {
            Pm::Null | Pm::Again => (0, 0, 0, None),
            Pm::Rgba(w, h) => (w, h, 32, Some(Format::Rgba8888)),
            Pm::Gray(w, h) => (w, h, 8, Some(Format::Gray8)),
            Pm::Foreign { w, h, depth } => (w, h, depth, None),
            Pm::OverLimit => (1024, limit.max(0).unsigned_abs() + 1, 8, None),
            Pm::AtLimit if limit >= 1 => (1024, limit.unsigned_abs(), 8, None),
            Pm::AtLimit => (0, 0, 0, None),
        };
        let cost = qt_cost(w, h, depth);
        let pm = if let Some(releases) = &mut self.releases {
            let count = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&count);
            let release: Box<dyn FnOnce() + Send + Sync> = Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            let pm = Pixmap::foreign(w, h, depth, releases.len(), Some(release))
                .map_err(|e| format!("Pixmap::foreign: {e}"))?;
            releases.push((pm.cache_key(), count));
            pm
        } else if matches!(spec, Pm::Null | Pm::Again) {
            Pixmap::null()
        } else if let Some(format) = format {
            Pixmap::new(w, h, format).map_err(|e| format!("Pixmap::new: {e}"))?
        } else {
            Pixmap::foreign(w, h, depth, 7, None).map_err(|e| format!("Pixmap::foreign: {e}"))?
        };
        ensure_eq!(
            pm.cost_kb(),
            cost,
            format!("cost of {w}x{h} at depth {depth}")
        );
        self.last = Some((pm.clone(), cost));
        Ok((pm, cost))
    }

    fn key(&mut self, sel: KeySel) -> Key {
        let any = |keys: &[Key], i: usize| {
            if keys.is_empty() {
                Key::INVALID
            } else {
                keys[i % keys.len()]
            }
        };
        match sel {
            KeySel::Invalid => Key::INVALID,
            KeySel::Any(i) => any(&self.keys, i),
            KeySel::Live(i) => {
                let live = self.model.live_keys();
                if live.is_empty() {
                    any(&self.keys, i)
                } else {
                    live[i % live.len()]
                }
            }
            KeySel::Forged(raw) => {
                let k = Key::from_raw(raw);
                if !k.is_invalid() && !self.keys.contains(&k) {
                    self.keys.push(k);
                }
                k
            }
        }
    }

    /// A key the library just handed out: never the invalid key, never one seen before.
    fn new_key(&mut self, k: Key) -> Result<(), String> {
        ensure!(!k.is_invalid(), "a handed-out key is the invalid key");
        ensure!(
            !self.keys.contains(&k),
            "a handed-out key {k:?} equals an earlier one"
        );
        self.keys.push(k);
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Find(n) => {
                let got = self.cache.find(NAMES[n]).map(|p| p.cache_key());
                let want = self.model.lookup(&MKey::Name(NAMES[n].into()));
                ensure_eq!(got, want, "find (cache_key of the pixmap found)");
            }
            Op::Touch(n) => {
                let got = self.cache.touch(NAMES[n]);
                let want = self.model.lookup(&MKey::Name(NAMES[n].into())).is_some();
                ensure_eq!(got, want, "touch");
            }
            Op::FindKey(sel) => {
                let k = self.key(sel);
                let got = self.cache.find_key(k).map(|p| p.cache_key());
                let want = self.model.lookup(&MKey::Id(k));
                ensure_eq!(got, want, "find_key (cache_key of the pixmap found)");
            }
            Op::TouchKey(sel) => {
                let k = self.key(sel);
                let got = self.cache.touch_key(k);
                let want = self.model.lookup(&MKey::Id(k)).is_some();
                ensure_eq!(got, want, "touch_key");
            }
            Op::Insert(n, spec) => {
                let (pm, cost) = self.make(spec)?;
                let got = self.cache.insert(NAMES[n], &pm);
                drop(pm);
                let want = self.model.insert_name(NAMES[n], cost, self.last_key());
                ensure_eq!(got.is_ok(), want, "insert succeeded");
                if let Err(e) = got {
                    ensure_eq!(e.kind(), ErrorKind::Refused, "insert error kind");
                }
            }
            Op::InsertKey(spec) => {
                let (pm, cost) = self.make(spec)?;
                let got = self.cache.insert_key(&pm);
                drop(pm);
                let (k, ok) = match got {
                    Ok(k) => (k, true),
                    Err((k, e)) => {
                        ensure_eq!(e.kind(), ErrorKind::Refused, "insert_key error kind");
                        (k, false)
                    }
                };
                self.new_key(k)?;
                let want = self.model.put(MKey::Id(k), cost, self.last_key());
                ensure_eq!(ok, want, "insert_key succeeded");
            }
            Op::Replace(sel, spec) => {
                let old = self.key(sel);
                let (pm, cost) = self.make(spec)?;
                let mut k = old;
                let got = self.cache.replace(&mut k, &pm);
                drop(pm);
                if old.is_invalid() || !self.model.contains(&MKey::Id(old)) {
                    // Through an invalid key: fails, inserts nothing, leaves the key alone.
                    ensure!(
                        matches!(&got, Err(e) if e.kind() == ErrorKind::InvalidKey),
                        "replace through a key that is not valid: library says {got:?}, \
                         model says Err(InvalidKey)"
                    );
                    ensure_eq!(k, old, "key after a failed replace");
                } else {
                    self.model.remove(&MKey::Id(old), Reason::Replaced);
                    match got {
                        Ok(()) => {
                            ensure!(k != old, "replace kept the old key {old:?}");
                            self.new_key(k)?;
                            let want = self.model.put(MKey::Id(k), cost, self.last_key());
                            ensure_eq!(true, want, "replace succeeded");
                        }
                        Err(e) => {
                            ensure_eq!(e.kind(), ErrorKind::Refused, "replace error kind");
                            ensure_eq!(k, old, "key after a refused replace");
                            let want = self.model.put(MKey::Id(Key::INVALID), cost, 0);
                            ensure_eq!(false, want, "replace succeeded");
                        }
                    }
                }
            }
            Op::Remove(n) => {
                let got = self.cache.remove(NAMES[n]);
                let want = self
                    .model
                    .remove(&MKey::Name(NAMES[n].into()), Reason::Removed)
                    .is_some();
                ensure_eq!(got, want, "remove");
            }
            Op::RemoveKey(sel) => {
                let k = self.key(sel);
                let got = self.cache.remove_key(k);
                let want = self.model.remove(&MKey::Id(k), Reason::Removed).is_some();
                ensure_eq!(got, want, "remove_key");
            }
            Op::Clear => {
                self.cache.clear();
                self.model.clear();
            }
            Op::SetLimit(l) => {
                let total = self.model.total();
                let to_i32 = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
                let limit = match l {
                    NewLimit::Value(v) => v,
                    NewLimit::Total => to_i32(total),
                    NewLimit::TotalMinusOne => to_i32(total - 1),
                    NewLimit::TotalPlusOne => to_i32(total + 1),
                };
                self.cache.set_limit(limit);
                self.model.set_limit(limit);
            }
            Op::FlushDetached => {
                let got = self.cache.flush_detached();
                let want = self.model.flush_detached();
                ensure_eq!(got, want, "flush_detached (entries trimmed)");
            }
            Op::Tick => {
                let got = self.cache.tick();
                let want = self.model.tick();
                ensure_eq!(got, want, "tick (entries trimmed)");
            }
            Op::Contains(n) => {
                let got = self.cache.contains(NAMES[n]);
                let want = self.model.contains(&MKey::Name(NAMES[n].into()));
                ensure_eq!(got, want, "contains");
            }
            Op::ContainsKey(sel) => {
                let k = self.key(sel);
                let got = self.cache.contains_key(k);
                let want = self.model.contains(&MKey::Id(k));
                ensure_eq!(got, want, "contains_key");
            }
            Op::Peek(n) => {
                let got = self.cache.peek(NAMES[n]).map(|p| p.cache_key());
                let want = self.model.peek(&MKey::Name(NAMES[n].into()));
                ensure_eq!(got, want, "peek (cache_key of the pixmap found)");
            }
            Op::PeekKey(sel) => {
                let k = self.key(sel);
                let got = self.cache.peek_key(k).map(|p| p.cache_key());
                let want = self.model.peek(&MKey::Id(k));
                ensure_eq!(got, want, "peek_key (cache_key of the pixmap found)");
            }
            Op::Take(n) => {
                let got = self.cache.take(NAMES[n]).map(|p| p.cache_key());
                let want = self
                    .model
                    .remove(&MKey::Name(NAMES[n].into()), Reason::Taken);
                ensure_eq!(got, want, "take (cache_key of the pixmap taken)");
            }
            Op::TakeKey(sel) => {
                let k = self.key(sel);
                let got = self.cache.take_key(k).map(|p| p.cache_key());
                let want = self.model.remove(&MKey::Id(k), Reason::Taken);
                ensure_eq!(got, want, "take_key (cache_key of the pixmap taken)");
            }
            Op::SetCountLimit(n) => {
                let got = self.cache.set_count_limit(n);
                let want = self.model.set_count_limit(n);
                ensure_eq!(got, want, "set_count_limit (entries evicted)");
                ensure_eq!(self.cache.count_limit(), n, "count_limit");
            }
            Op::InsertWithCost(n, spec, sel) => {
                let cost = self.cost(sel);
                let (pm, _) = self.make(spec)?;
                let got = self.cache.insert_with_cost(NAMES[n], &pm, cost);
                drop(pm);
                if cost < 0 {
                    // Refused before anything: the entry under the name (if any) stays.
                    ensure!(
                        matches!(&got, Err(e) if e.kind() == ErrorKind::InvalidArgument),
                        "insert_with_cost at {cost} KB: library says {got:?}, \
                         model says Err(InvalidArgument)"
                    );
                } else {
                    let want = self.model.insert_name(NAMES[n], cost, self.last_key());
                    ensure_eq!(got.is_ok(), want, "insert_with_cost succeeded");
                    if let Err(e) = got {
                        ensure_eq!(e.kind(), ErrorKind::Refused, "insert_with_cost error kind");
                    }
                }
            }
            Op::InsertKeyWithCost(spec, sel) => {
                let cost = self.cost(sel);
                let (pm, _) = self.make(spec)?;
                let got = self.cache.insert_key_with_cost(&pm, cost);
                drop(pm);
                if cost < 0 {
                    ensure!(
                        matches!(&got, Err((k, e))
                            if k.is_invalid() && e.kind() == ErrorKind::InvalidArgument),
                        "insert_key_with_cost at {cost} KB: library says {got:?}, \
                         model says Err((Key::INVALID, InvalidArgument))"
                    );
                } else {
                    let (k, ok) = match got {
                        Ok(k) => (k, true),
                        Err((k, e)) => {
                            ensure_eq!(
                                e.kind(),
                                ErrorKind::Refused,
                                "insert_key_with_cost error kind"
                            );
                            (k, false)
                        }
                    };
                    self.new_key(k)?;
                    let want = self.model.put(MKey::Id(k), cost, self.last_key());
                    ensure_eq!(ok, want, "insert_key_with_cost succeeded");
                }
            }
            Op::Trim(level) => {
                let got = self.cache.trim(level);
                let want = self.model.trim_level(level);
                ensure_eq!(got, want, format!("trim({level:?}) (entries trimmed)"));
            }
            Op::TrimTo(t) => {
                let total = self.model.total();
                let kb = match t {
                    TrimTarget::Value(v) => v,
                    TrimTarget::Total => total,
                    TrimTarget::TotalMinusOne => total - 1,
                };
                let got = self.cache.trim_to(kb);
                let want = self.model.trim_to(kb);
                ensure_eq!(got, want, format!("trim_to({kb}) (entries trimmed)"));
            }
            Op::ResetStats => {
                self.cache.reset_stats();
                self.model.reset_stats();
            }
        }
        Ok(())
    }

    /// The cost an explicit-cost insert gives.
    fn cost(&self, sel: CostSel) -> i64 {
        let limit = i64::from(self.model.limit);
        match sel {
            CostSel::Value(v) => v,
            CostSel::AtLimit => limit.max(0),
            CostSel::OverLimit => (limit + 1).max(0),
        }
    }

    fn last_key(&self) -> u64 {
        self.last.as_ref().map_or(0, |(pm, _)| pm.cache_key())
    }

    /// Touch-free comparison of the whole observable state, and of the departures the removal
    /// callback heard of since the previous check with those the model expects.
    fn check(&mut self) -> Result<(), String> {
        let heard = std::mem::take(&mut *self.heard.lock().expect("callback log"));
        let expected = std::mem::take(&mut self.model.departed);
        ensure_eq!(
            heard,
            expected,
            "departures reported to the removal callback"
        );
        ensure_eq!(
            self.cache.names_by_recency(),
            self.model.names(),
            "entries by recency"
        );
        ensure_eq!(self.cache.total_used(), self.model.total(), "total_used");
        ensure_eq!(self.cache.limit(), self.model.limit, "limit");
        ensure_eq!(self.cache.stats(), self.model.stats(), "stats");
        ensure!(
            !self.cache.key_is_valid(Key::INVALID),
            "the invalid key is valid"
        );
        for &k in &self.keys {
            ensure_eq!(
                self.cache.key_is_valid(k),
                self.model.contains(&MKey::Id(k)),
                format!("key_is_valid({k:?})")
            );
        }
        if self.sweep {
            // Finding every entry from least to most recently used leaves the recency order as it
            // was, so this checks which pixmap each entry holds without perturbing anything.
            let order: Vec<Entry> = self.model.entries.iter().rev().cloned().collect();
            for e in order {
                let got = match &e.key {
                    MKey::Name(s) => self.cache.find(s),
                    MKey::Id(k) => self.cache.find_key(*k),
                };
                ensure_eq!(
                    got.map(|p| p.cache_key()),
                    Some(e.pm),
                    format!("pixmap under {:?}", e.key)
                );
                self.model.hits += 1;
            }
            ensure_eq!(
                self.cache.names_by_recency(),
                self.model.names(),
                "entries by recency after the sweep"
            );
            ensure_eq!(
                self.cache.stats(),
                self.model.stats(),
                "stats after the sweep"
            );
        }
        if let Some(releases) = &self.releases {
            // The test holds no share except `last`: a pixmap is released exactly when no entry
            // holds it any more.
            let held = self.last.as_ref().map(|(pm, _)| pm.cache_key());
            for (pm, count) in releases {
                let cached = self.model.entries.iter().any(|e| e.pm == *pm);
                let want = usize::from(!cached && held != Some(*pm));
                ensure_eq!(
                    count.load(Ordering::SeqCst),
                    want,
                    format!("release count of pixmap {pm} (cached: {cached})")
                );
            }
        }
        Ok(())
    }
}

/// Runs `ops` against a fresh cache and a model, checking after every step.
fn run_ops(setup: Setup, ops: &[Op]) -> Result<Run, String> {
    let mut run = Run::new(setup);
    run.check().map_err(|e| format!("before any op: {e}"))?;
    for (i, op) in ops.iter().enumerate() {
        run.step(op)
            .and_then(|()| run.check())
            .map_err(|e| format!("after op #{i} {op:?}: {e}"))?;
    }
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn pm_strategy() -> impl Strategy<Value = Pm> {
    let side = prop::sample::select(vec![0u32, 1, 10, 32, 64, 65, 100, 256]);
    let depth = prop::sample::select(vec![0u32, 1, 8, 16, 24, 32, 64, 128]);
    prop_oneof![
        2 => Just(Pm::Null),
        2 => Just(Pm::Rgba(1, 1)),
        4 => Just(Pm::Rgba(10, 10)),
        6 => Just(Pm::Rgba(64, 64)),
        3 => Just(Pm::Rgba(64, 65)),
        2 => Just(Pm::Gray(64, 64)),
        4 => (side.clone(), side, depth).prop_map(|(w, h, depth)| Pm::Foreign { w, h, depth }),
        1 => Just(Pm::OverLimit),
        1 => Just(Pm::AtLimit),
        2 => Just(Pm::Again),
    ]
}

fn key_strategy() -> impl Strategy<Value = KeySel> {
    prop_oneof![
        1 => Just(KeySel::Invalid),
        2 => (0..1000usize).prop_map(KeySel::Any),
        8 => (0..1000usize).prop_map(KeySel::Live),
        1 => any::<u64>().prop_map(KeySel::Forged),
    ]
}

fn limit_strategy() -> impl Strategy<Value = NewLimit> {
    // Limits that hold nothing, or no 16 KB pixmap, are drawn less often: they empty the cache.
    // Limits relative to the total are drawn less often too: on an empty cache they are 0 or -1.
    let tiny = vec![0, -1, i32::MIN, 1, 2, 15];
    let usable = vec![16, 17, 64, 128, 256, 1000, 4096, DEFAULT_LIMIT_KB, i32::MAX];
    let relative = vec![
        NewLimit::Total,
        NewLimit::TotalMinusOne,
        NewLimit::TotalPlusOne,
    ];
    prop_oneof![
        1 => prop::sample::select(tiny).prop_map(NewLimit::Value),
        6 => prop::sample::select(usable).prop_map(NewLimit::Value),
        2 => prop::sample::select(relative),
    ]
}

fn cost_strategy() -> impl Strategy<Value = CostSel> {
    let usable = vec![0, 1, 5, 16, 17, 100, 1000];
    let wild = vec![-1, -16, i64::MIN, i64::MAX];
    prop_oneof![
        6 => prop::sample::select(usable).prop_map(CostSel::Value),
        1 => prop::sample::select(wild).prop_map(CostSel::Value),
        1 => Just(CostSel::AtLimit),
        1 => Just(CostSel::OverLimit),
    ]
}

fn trim_target_strategy() -> impl Strategy<Value = TrimTarget> {
    let values = vec![i64::MIN, -1, 0, 1, 16, 64, 1000, i64::MAX];
    prop_oneof![
        3 => prop::sample::select(values).prop_map(TrimTarget::Value),
        1 => Just(TrimTarget::Total),
        1 => Just(TrimTarget::TotalMinusOne),
    ]
}

fn count_limit_strategy() -> impl Strategy<Value = usize> {
    // 0 (no count limit) often, so that the cost limit gets to work alone again.
    prop_oneof![
        3 => Just(0usize),
        1 => Just(1usize),
        4 => 2..=8usize,
        1 => Just(1000usize),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        24 => (name.clone(), pm_strategy()).prop_map(|(n, p)| Op::Insert(n, p)),
        18 => pm_strategy().prop_map(Op::InsertKey),
        10 => (key_strategy(), pm_strategy()).prop_map(|(k, p)| Op::Replace(k, p)),
        10 => name.clone().prop_map(Op::Find),
        5 => name.clone().prop_map(Op::Touch),
        8 => key_strategy().prop_map(Op::FindKey),
        3 => key_strategy().prop_map(Op::TouchKey),
        5 => name.clone().prop_map(Op::Remove),
        5 => key_strategy().prop_map(Op::RemoveKey),
        1 => Just(Op::Clear),
        5 => limit_strategy().prop_map(Op::SetLimit),
        2 => Just(Op::FlushDetached),
        4 => Just(Op::Tick),
        3 => name.clone().prop_map(Op::Contains),
        3 => key_strategy().prop_map(Op::ContainsKey),
        3 => name.clone().prop_map(Op::Peek),
        3 => key_strategy().prop_map(Op::PeekKey),
        3 => name.clone().prop_map(Op::Take),
        3 => key_strategy().prop_map(Op::TakeKey),
        3 => count_limit_strategy().prop_map(Op::SetCountLimit),
        8 => (name, pm_strategy(), cost_strategy())
            .prop_map(|(n, p, c)| Op::InsertWithCost(n, p, c)),
        6 => (pm_strategy(), cost_strategy()).prop_map(|(p, c)| Op::InsertKeyWithCost(p, c)),
        2 => prop::sample::select(TrimLevel::ALL.to_vec()).prop_map(Op::Trim),
        2 => trim_target_strategy().prop_map(Op::TrimTo),
        1 => Just(Op::ResetStats),
    ]
}

/// The starting limit: `None` is `Cache::default()` (10240 KB).
fn initial_limit_strategy() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![
        2 => Just(None),
        1 => prop::sample::select(vec![0, -1, 1, i32::MAX]).prop_map(Some),
        6 => prop::sample::select(vec![16, 17, 48, 128, 256, 1000, 4096]).prop_map(Some),
    ]
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Keep the crate's tree untouched: no proptest-regressions files.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// The cache agrees with the model after every step of a random sequence.
    #[test]
    fn cache_matches_model(
        limit in initial_limit_strategy(),
        sweep in any::<bool>(),
        ops in prop::collection::vec(op_strategy(), 0..=300),
    ) {
        if let Err(e) = run_ops(Setup { sweep, ..Setup::new(limit) }, &ops) {
            return Err(TestCaseError::fail(e));
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Every foreign pixmap's release function runs exactly once, exactly when the last share
    /// goes: the cache drops its share on eviction, remove, replace, clear and refusal.
    #[test]
    fn foreign_release_runs_exactly_once(
        limit in initial_limit_strategy(),
        mut ops in prop::collection::vec(op_strategy(), 0..=300),
    ) {
        ops.push(Op::Clear);
        let setup = Setup { release_mode: true, ..Setup::new(limit) };
        let mut run = match run_ops(setup, &ops) {
            Ok(run) => run,
            Err(e) => return Err(TestCaseError::fail(e)),
        };
        run.last = None;
        let Run { cache, releases, .. } = run;
        let releases = releases.expect("release mode");
        let counts = |releases: &Releases| -> Vec<usize> {
            releases.iter().map(|(_, c)| c.load(Ordering::SeqCst)).collect()
        };
        prop_assert!(counts(&releases).iter().all(|&n| n == 1), "{:?}", counts(&releases));
        drop(cache);
        prop_assert!(counts(&releases).iter().all(|&n| n == 1), "{:?}", counts(&releases));
    }
}

/// Fixed sequences on which each flawed model must be caught (and the faithful one must pass):
/// the checker can fail.
#[test]
fn checker_detects_flawed_models() {
    let p64 = Pm::Rgba(64, 64);
    let cases: [(Flaw, Option<i32>, Vec<Op>); 6] = [
        (
            Flaw::FindDoesNotRefresh,
            Some(48),
            vec![
                Op::Insert(1, p64),
                Op::Insert(2, p64),
                Op::Find(1),
                Op::Insert(3, p64),
                Op::Find(1),
            ],
        ),
        (
            Flaw::RefusedInsertKeepsOld,
            Some(20),
            vec![
                Op::Insert(1, Pm::Rgba(10, 10)),
                Op::Insert(1, Pm::OverLimit),
                Op::Find(1),
            ],
        ),
        (
            Flaw::TickAlwaysTakesOne,
            None,
            (0..NAMES.len())
                .map(|n| Op::Insert(n, p64))
                .chain([Op::Tick, Op::Tick])
                .collect(),
        ),
        // Qt's `QPMCache::clear` stops the idle timer but leaves `ps`, the total at the previous
        // tick, alone: after a clear and a refill to exactly that total, a tick is the 3/4 trim.
        (
            Flaw::ClearResetsTickBaseline,
            None,
            vec![
                Op::Insert(1, p64), // 16 KB
                Op::Insert(
                    2,
                    Pm::Foreign {
                        w: 100,
                        h: 64,
                        depth: 24,
                    },
                ), // 18 KB
                Op::Tick,           // total 34, changed since 0: one entry goes; baseline 18
                Op::Clear,          // baseline stays 18
                Op::InsertKey(Pm::Null),
                Op::InsertKey(Pm::Null),
                Op::Insert(1, p64), // total 18 again
                Op::Tick,           // unchanged: trimmed to 13 KB, all three entries go
            ],
        ),
        // Everything but the callback agrees: the order in which `clear` reports its entries.
        (
            Flaw::ClearReportsMostRecentFirst,
            None,
            vec![
                Op::Insert(1, p64),
                Op::InsertKey(p64),
                Op::Insert(2, Pm::Null),
                Op::Clear,
            ],
        ),
        (
            Flaw::CountLimitIgnored,
            None,
            vec![
                Op::SetCountLimit(2),
                Op::Insert(1, p64),
                Op::InsertWithCost(2, p64, CostSel::Value(0)),
                Op::InsertKeyWithCost(p64, CostSel::Value(3)),
            ],
        ),
    ];
    for (flaw, limit, ops) in cases {
        for sweep in [false, true] {
            let setup = Setup {
                sweep,
                ..Setup::new(limit)
            };
            if let Err(e) = run_ops(setup, &ops) {
                panic!("the faithful model fails on the {flaw:?} sequence: {e}");
            }
            match run_ops(Setup { flaw, ..setup }, &ops) {
                Ok(_) => panic!("the checker missed {flaw:?}"),
                Err(e) => {
                    if flaw == Flaw::ClearReportsMostRecentFirst {
                        assert!(e.contains("removal callback"), "{flaw:?} caught by: {e}");
                    }
                    eprintln!("{flaw:?} caught: {e}");
                }
            }
        }
    }
}

/// A few facts the random test relies on, pinned down directly.
#[test]
fn model_basics() {
    assert_eq!(Key::default(), Key::INVALID);
    assert_eq!(qt_cost(10, 10, 32), 1);
    assert_eq!(qt_cost(64, 64, 32), 16);
    assert_eq!(qt_cost(64, 65, 32), 16);
    assert_eq!(qt_cost(0, 0, 0), 1);
    let ops = [
        Op::InsertKey(Pm::Rgba(64, 64)),
        Op::Replace(KeySel::Live(0), Pm::Rgba(10, 10)),
        Op::Replace(KeySel::Any(0), Pm::Rgba(1, 1)),
        Op::Replace(KeySel::Live(0), Pm::OverLimit),
        Op::Replace(KeySel::Invalid, Pm::Null),
        Op::InsertKey(Pm::OverLimit),
        Op::SetLimit(NewLimit::Value(0)),
        Op::Insert(0, Pm::Null),
    ];
    let setup = Setup {
        sweep: true,
        ..Setup::new(Some(128))
    };
    let run = run_ops(setup, &ops).unwrap();
    // One key from the first insert, one from the first replace, one refused insert_key.
    assert_eq!(run.keys.len(), 3);
    assert!(run.keys.iter().all(|&k| !run.cache.key_is_valid(k)));
}

/// A fixed sequence through every new operation, on which every reason occurs: the checker
/// (callback departures included) agrees with the library, and the statistics add up.
#[test]
fn every_reason_is_checked() {
    let p64 = Pm::Rgba(64, 64);
    let ops = [
        Op::Insert(1, p64),
        Op::Insert(2, p64),
        Op::Insert(1, p64), // Replaced
        Op::InsertKey(p64),
        Op::Replace(KeySel::Live(0), p64), // Replaced
        Op::Contains(1),
        Op::ContainsKey(KeySel::Live(0)),
        Op::Peek(2),
        Op::PeekKey(KeySel::Live(0)),
        Op::Take(2),                  // Taken
        Op::TakeKey(KeySel::Live(0)), // Taken
        Op::Remove(1),                // Removed
        Op::InsertWithCost(3, p64, CostSel::Value(40)),
        Op::InsertWithCost(3, p64, CostSel::Value(-1)), // nothing changes
        Op::InsertKeyWithCost(p64, CostSel::Value(-5)), // nothing changes
        Op::InsertKeyWithCost(Pm::Null, CostSel::Value(0)),
        Op::InsertKeyWithCost(p64, CostSel::OverLimit), // refused
        Op::InsertWithCost(4, p64, CostSel::Value(20)), // Evicted (48 KB limit)
        Op::SetCountLimit(1),                           // LimitLowered
        Op::SetCountLimit(0),
        Op::InsertWithCost(5, Pm::Null, CostSel::Value(8)),
        Op::InsertWithCost(6, Pm::Null, CostSel::Value(8)),
        Op::Trim(TrimLevel::Moderate), // Trimmed
        Op::TrimTo(TrimTarget::TotalMinusOne),
        Op::SetLimit(NewLimit::Value(1000)),
        Op::Insert(1, p64),
        Op::Insert(2, p64),
        Op::SetLimit(NewLimit::Value(16)), // LimitLowered
        Op::Insert(3, Pm::Rgba(10, 10)),
        Op::Clear, // Cleared
    ];
    let setup = Setup {
        sweep: true,
        ..Setup::new(Some(48))
    };
    let run = run_ops(setup, &ops).unwrap();
    let stats = run.cache.stats();
    for reason in Reason::ALL {
        assert!(
            stats.removals[reason as usize] > 0,
            "no {reason:?} in {stats:?}"
        );
    }
    assert_eq!(stats.refused, 1);
    let run = run_ops(setup, &[ops.as_slice(), &[Op::ResetStats]].concat()).unwrap();
    assert_eq!(run.cache.stats().removals, [0; Reason::COUNT]);
}
