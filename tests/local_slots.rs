//! The thread-affine cache's generated keys, at their edges: each key names the map slot its
//! entry went to, so these tests make slots be reused in every way (a cache grown and shrunk so
//! that new keys land in high free slots, string and generated-key entries taking each other's
//! slots, limits of 0 and below, refusals, replace chains, clear, tick, flush, renew after a
//! panicking drop, keys of other caches and forged values) and check after every step that a
//! key is valid exactly while its entry is there (on the owning thread and through the shared
//! valid-key set), that lookups agree, and that every value is released exactly once.
//! `PIXCACHE_LOCAL_EDGE_CASES` sets the random cases (default 300).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use pixcache::garbage::Garbage;
use pixcache::key::{slot_of, Key};
use pixcache::local::LocalCache;
use pixcache::{Cache, ErrorKind, Pixmap};
use proptest::prelude::*;
use proptest::test_runner::Config;

#[derive(Debug)]
struct V {
    id: u64,
    log: Rc<RefCell<Vec<u64>>>,
}
impl Drop for V {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.id);
    }
}

struct H {
    c: LocalCache<V>,
    log: Rc<RefCell<Vec<u64>>>,
    next: u64,
    /// every value id handed in and not yet released
    held: HashSet<u64>,
    /// every key ever handed out (valid, refused, replaced)
    keys: Vec<Key>,
    quiet: bool,
}

impl H {
    fn new(limit: i32) -> H {
        H {
            c: LocalCache::new(limit),
            log: Rc::default(),
            next: 1,
            held: HashSet::new(),
            keys: Vec::new(),
            quiet: false,
        }
    }
    fn v(&mut self) -> V {
        let id = self.next;
        self.next += 1;
        self.held.insert(id);
        V {
            id,
            log: Rc::clone(&self.log),
        }
    }
    fn ins(&mut self, name: &str, cost: i64) -> Result<(), ErrorKind> {
        let v = self.v();
        let mut g = Garbage::new();
        let r = self
            .c
            .insert(name.as_bytes(), v, cost, &mut g)
            .map_err(|e| e.kind());
        drop(g);
        self.check();
        r
    }
    fn ins_key(&mut self, cost: i64) -> Result<Key, (Key, ErrorKind)> {
        let v = self.v();
        let mut g = Garbage::new();
        let r = self
            .c
            .insert_key(v, cost, &mut g)
            .map_err(|(k, e)| (k, e.kind()));
        drop(g);
        let k = match r {
            Ok(k) => k,
            Err((k, _)) => k,
        };
        if !k.is_invalid() {
            assert!(!self.keys.contains(&k), "key {k:?} handed out twice");
            self.keys.push(k);
        }
        self.check();
        r
    }
    fn replace(&mut self, k: &mut Key, cost: i64) -> Result<(), ErrorKind> {
        let v = self.v();
        let mut g = Garbage::new();
        let before = *k;
        let r = self.c.replace(k, v, cost, &mut g).map_err(|e| e.kind());
        drop(g);
        if *k != before {
            assert!(!self.keys.contains(k), "key {k:?} handed out twice");
            self.keys.push(*k);
        }
        self.check();
        r
    }
    fn remove_key(&mut self, k: Key) -> bool {
        let mut g = Garbage::new();
        let r = self.c.remove_key(k, &mut g);
        drop(g);
        self.check();
        r
    }
    fn remove(&mut self, n: &str) -> bool {
        let mut g = Garbage::new();
        let r = self.c.remove(n.as_bytes(), &mut g);
        drop(g);
        self.check();
        r
    }
    fn set_limit(&mut self, l: i32) {
        let mut g = Garbage::new();
        self.c.set_limit(l, &mut g);
        drop(g);
        self.check();
    }
    fn clear(&mut self) {
        let mut g = Garbage::new();
        self.c.clear(&mut g);
        drop(g);
        self.check();
    }
    fn tick(&mut self) {
        let mut g = Garbage::new();
        self.c.tick(&mut g);
        drop(g);
        self.check();
    }
    fn flush(&mut self) {
        let mut g = Garbage::new();
        self.c.flush_detached(&mut g);
        drop(g);
        self.check();
    }
    fn renew(&mut self) {
        drop(self.c.renew());
        self.check();
    }
    fn present(&self) -> HashSet<Key> {
        self.c
            .keys_by_recency()
            .into_iter()
            .filter_map(|k| k.err())
            .collect()
    }
    /// Validity == presence, on this thread and on another; releases exactly once.
    fn check(&mut self) {
        if self.quiet {
            return;
        }
        let present = self.present();
        assert_eq!(
            present.len(),
            self.c
                .keys_by_recency()
                .iter()
                .filter(|k| k.is_err())
                .count()
        );
        let vk = Arc::clone(self.c.valid_keys());
        let keys = self.keys.clone();
        let other: Vec<bool> =
            std::thread::spawn(move || keys.iter().map(|&k| vk.contains(k)).collect())
                .join()
                .unwrap();
        for (i, &k) in self.keys.iter().enumerate() {
            let p = present.contains(&k);
            assert_eq!(
                self.c.key_is_valid(k),
                p,
                "key #{i} {k:?} (slot {:?}) validity vs presence",
                slot_of(k)
            );
            assert_eq!(other[i], p, "key #{i} validity from another thread");
        }
        for k in &present {
            assert!(
                self.keys.contains(k),
                "an entry under a key never handed out"
            );
        }
        for id in self.log.borrow_mut().drain(..) {
            assert!(
                self.held.remove(&id),
                "value {id} released twice or never passed"
            );
        }
        assert_eq!(
            self.held.len(),
            self.c.stats().entries,
            "held values vs entries"
        );
    }
    /// find_key agrees with validity (touches recency: use on purpose)
    fn find_agrees(&mut self) {
        let keys = self.keys.clone();
        for k in keys {
            let valid = self.c.key_is_valid(k);
            assert_eq!(
                self.c.find_key(k).is_some(),
                valid,
                "find_key vs validity of {k:?}"
            );
        }
    }
}

#[test]
fn grow_shrink_reuse_high_slots() {
    let mut h = H::new(2000);
    let mut ks = Vec::new();
    for _ in 0..1500 {
        ks.push(h.ins_key(1).unwrap());
    }
    // interleave strings
    for i in 0..300 {
        h.ins(&format!("s{i}"), 1).unwrap();
    }
    let slots: HashSet<u32> = ks.iter().map(|&k| slot_of(k).unwrap()).collect();
    assert_eq!(slots.len(), 1500);
    h.set_limit(10);
    h.find_agrees();
    h.set_limit(5000);
    // new keys go to high free slots
    let mut new = Vec::new();
    for _ in 0..2000 {
        new.push(h.ins_key(1).unwrap());
    }
    let reused = new
        .iter()
        .filter(|&&k| slots.contains(&slot_of(k).unwrap()))
        .count();
    assert!(reused > 100, "slots reused: {reused}");
    for &k in &ks {
        if !h.c.key_is_valid(k) {
            let mut s = k;
            assert_eq!(h.replace(&mut s, 1), Err(ErrorKind::InvalidKey));
            assert_eq!(s, k);
            assert!(!h.remove_key(k));
        }
    }
    h.find_agrees();
    // remove every other new key, then strings fill those slots, then keys again
    for &k in new.iter().step_by(2) {
        assert!(h.remove_key(k));
        assert!(!h.remove_key(k));
    }
    for i in 0..1000 {
        h.ins(&format!("t{i}"), 1).unwrap();
    }
    for _ in 0..500 {
        h.ins_key(1).unwrap();
    }
    h.find_agrees();
    h.tick();
    h.tick();
    h.flush();
    h.find_agrees();
    h.clear();
    h.find_agrees();
    for _ in 0..100 {
        h.ins_key(1).unwrap();
    }
    h.find_agrees();
}

#[test]
fn limit_zero_and_refusals() {
    let mut h = H::new(0);
    let mut refused = Vec::new();
    for _ in 0..50 {
        let (k, e) = h.ins_key(0).unwrap_err();
        assert_eq!(e, ErrorKind::Refused);
        assert!(!k.is_invalid());
        assert_eq!(slot_of(k), Some(0));
        refused.push(k);
    }
    assert_eq!(h.ins("a", 0), Err(ErrorKind::Refused));
    h.set_limit(10);
    for _ in 0..100 {
        h.ins_key(1).unwrap();
    }
    // too costly
    for _ in 0..10 {
        let (k, e) = h.ins_key(11).unwrap_err();
        assert_eq!(e, ErrorKind::Refused);
        refused.push(k);
    }
    for &k in &refused {
        assert!(!h.c.key_is_valid(k));
        assert!(h.c.find_key(k).is_none());
        assert!(!h.remove_key(k));
        let mut s = k;
        assert_eq!(h.replace(&mut s, 1), Err(ErrorKind::InvalidKey));
        assert_eq!(s, k);
    }
    h.set_limit(0);
    h.find_agrees();
    h.set_limit(-5);
    assert!(h.ins_key(0).is_err());
    h.set_limit(3);
    let k = h.ins_key(3).unwrap();
    assert!(h.c.key_is_valid(k));
    h.find_agrees();
}

#[test]
fn replace_chains() {
    let mut h = H::new(5);
    let mut k = h.ins_key(1).unwrap();
    let first = k;
    let mut chain = vec![k];
    for i in 0..200 {
        h.replace(&mut k, 1 + (i % 5)).unwrap();
        chain.push(k);
        // other entries compete for the slot
        if i % 7 == 0 {
            h.ins_key(1).unwrap();
            h.ins(&format!("n{}", i % 3), 1).unwrap();
        }
        if !h.c.key_is_valid(k) {
            // evicted by the competitors
            k = h.ins_key(1).unwrap();
        }
    }
    for &old in &chain[..chain.len() - 1] {
        if old != k {
            assert!(!h.c.key_is_valid(old));
        }
    }
    // too costly replace: old removed, key unchanged and invalid
    let before = k;
    if h.c.key_is_valid(k) {
        assert_eq!(h.replace(&mut k, 6), Err(ErrorKind::Refused));
        assert_eq!(k, before);
        assert!(!h.c.key_is_valid(k));
    }
    assert!(!h.c.key_is_valid(first));
    h.find_agrees();
}

#[test]
fn string_and_key_share_slots() {
    let mut h = H::new(1);
    let k = h.ins_key(1).unwrap();
    let s = slot_of(k).unwrap();
    h.ins("x", 1).unwrap(); // evicts k, takes its slot
    assert!(!h.c.key_is_valid(k));
    assert!(h.c.find_key(k).is_none());
    assert!(!h.remove_key(k));
    assert!(h.c.contains(b"x"));
    let k2 = h.ins_key(1).unwrap();
    assert_eq!(slot_of(k2), Some(s));
    assert!(!h.c.contains(b"x"));
    assert!(!h.remove("x"));
    h.find_agrees();
}

#[test]
fn cross_cache_keys() {
    let mut a = H::new(100);
    let mut b = H::new(100);
    let ka: Vec<Key> = (0..50).map(|_| a.ins_key(1).unwrap()).collect();
    let kb: Vec<Key> = (0..50).map(|_| b.ins_key(1).unwrap()).collect();
    for (&x, &y) in ka.iter().zip(&kb) {
        assert_eq!(slot_of(x), slot_of(y));
        assert!(!b.c.key_is_valid(x) && !a.c.key_is_valid(y));
        assert!(b.c.find_key(x).is_none() && a.c.find_key(y).is_none());
        assert!(!b.remove_key(x) && !a.remove_key(y));
        let mut s = x;
        assert_eq!(b.replace(&mut s, 1), Err(ErrorKind::InvalidKey));
    }
    // process-wide cache keys
    let cache = Cache::new(1000);
    let mut pk = Vec::new();
    for i in 0..50 {
        let pm = Pixmap::foreign(1024, 1, 8, 0, None).unwrap();
        let _ = i;
        pk.push(cache.insert_key(pm).unwrap());
    }
    for &k in &pk {
        assert_eq!(slot_of(k), None);
        assert!(!a.c.key_is_valid(k));
        assert!(a.c.find_key(k).is_none());
        assert!(!a.remove_key(k));
        let mut s = k;
        assert_eq!(a.replace(&mut s, 1), Err(ErrorKind::InvalidKey));
    }
    for &k in &ka {
        assert!(!cache.key_is_valid(k));
        assert!(cache.find_key(k).is_none());
        assert!(!cache.remove_key(k));
    }
    // forged values
    for x in 0u64..100_000 {
        let k = Key::from_raw(x.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        assert!(!a.c.key_is_valid(k) || ka.contains(&k));
    }
}

#[test]
fn renew_forgets_everything() {
    let mut h = H::new(100);
    let old: Vec<Key> = (0..80).map(|_| h.ins_key(1).unwrap()).collect();
    for i in 0..10 {
        h.ins(&format!("s{i}"), 1).unwrap();
    }
    let vk = Arc::clone(h.c.valid_keys());
    h.renew();
    for &k in &old {
        assert!(!vk.contains(k));
        assert!(!h.c.key_is_valid(k));
    }
    let new: Vec<Key> = (0..80).map(|_| h.ins_key(1).unwrap()).collect();
    for &k in &old {
        assert!(!h.c.key_is_valid(k) && h.c.find_key(k).is_none());
    }
    for &k in &new {
        assert!(vk.contains(k));
    }
    h.find_agrees();
}

#[derive(Clone, Debug)]
enum Op {
    Ins(u8, i64),
    InsKey(i64),
    Replace(usize, i64),
    Remove(u8),
    RemoveKey(usize),
    FindKey(usize),
    Find(u8),
    Clear,
    SetLimit(i32),
    Tick,
    Flush,
    Renew,
    Bulk(u16, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let cost = prop_oneof![Just(0i64), 1..=8i64, Just(40)];
    prop_oneof![
        3 => (0..20u8, cost.clone()).prop_map(|(n, c)| Op::Ins(n, c)),
        5 => cost.clone().prop_map(Op::InsKey),
        3 => (0..1000usize, cost).prop_map(|(k, c)| Op::Replace(k, c)),
        2 => (0..20u8).prop_map(Op::Remove),
        2 => (0..1000usize).prop_map(Op::RemoveKey),
        3 => (0..1000usize).prop_map(Op::FindKey),
        2 => (0..20u8).prop_map(Op::Find),
        1 => Just(Op::Clear),
        2 => prop_oneof![Just(0), Just(-1), 1..=30i32, Just(500)].prop_map(Op::SetLimit),
        1 => Just(Op::Tick),
        1 => Just(Op::Flush),
        1 => Just(Op::Renew),
        1 => (1..300u16, any::<bool>()).prop_map(|(n, s)| Op::Bulk(n, s)),
    ]
}

proptest! {
    #![proptest_config(Config {
        cases: std::env::var("PIXCACHE_LOCAL_EDGE_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300),
        ..Config::default()
    })]
    #[test]
    fn random_ops_keep_validity_equal_to_presence(limit in prop_oneof![Just(20), Just(500), 1..=10i32], ops in proptest::collection::vec(op(), 1..150)) {
        let mut h = H::new(limit);
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for op in &ops {
            *counts.entry(match op { Op::Bulk(..) => "bulk", _ => "other" }).or_default() += 1;
            let key = |h: &H, i: usize| if h.keys.is_empty() { Key::INVALID } else { h.keys[i % h.keys.len()] };
            match *op {
                Op::Ins(n, c) => { let _ = h.ins(&format!("n{n}"), c); }
                Op::InsKey(c) => { let _ = h.ins_key(c); }
                Op::Replace(i, c) => {
                    let mut k = key(&h, i);
                    let before = k;
                    let was_valid = h.c.key_is_valid(k);
                    let r = h.replace(&mut k, c);
                    if !was_valid { prop_assert_eq!(r, Err(ErrorKind::InvalidKey)); prop_assert_eq!(k, before); }
                    prop_assert!(!h.c.key_is_valid(before) || k == before);
                }
                Op::Remove(n) => { h.remove(&format!("n{n}")); }
                Op::RemoveKey(i) => {
                    let k = key(&h, i);
                    let v = h.c.key_is_valid(k);
                    prop_assert_eq!(h.remove_key(k), v);
                    prop_assert!(!h.c.key_is_valid(k));
                }
                Op::FindKey(i) => {
                    let k = key(&h, i);
                    let v = h.c.key_is_valid(k);
                    prop_assert_eq!(h.c.find_key(k).is_some(), v);
                }
                Op::Find(n) => { let _ = h.c.find(format!("n{n}").as_bytes()); }
                Op::Clear => h.clear(),
                Op::SetLimit(l) => h.set_limit(l),
                Op::Tick => h.tick(),
                Op::Flush => h.flush(),
                Op::Renew => h.renew(),
                Op::Bulk(n, strings) => {
                    h.quiet = true;
                    for i in 0..n {
                        if strings && i % 2 == 0 { let _ = h.ins(&format!("b{i}"), 0); } else { let _ = h.ins_key(i64::from(i % 2)); }
                    }
                    h.quiet = false;
                    h.check();
                }
            }
        }
        h.find_agrees();
        let held = h.held.len();
        let log = Rc::clone(&h.log);
        let before = log.borrow().len();
        drop(h.c);
        prop_assert_eq!(log.borrow().len() - before, held);
    }
}

/// A value whose drop panics (a release callback that panics, at the Rust level).
struct Boom(u32, Rc<RefCell<Vec<u32>>>);
impl Drop for Boom {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
        if self.0.is_multiple_of(3) && self.0 < 37 {
            panic!("release of {} panics", self.0);
        }
    }
}

#[test]
fn a_panicking_release_then_renew() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let log: Rc<RefCell<Vec<u32>>> = Rc::default();
    let mut c: LocalCache<Boom> = LocalCache::new(4);
    let mut keys = Vec::new();
    for i in 1..40u32 {
        let mut g = Garbage::new();
        if let Ok(k) = c.insert_key(Boom(i, Rc::clone(&log)), 1, &mut g) {
            keys.push(k);
        }
        // may panic: one value per bag here, so nothing else is lost
        let _ = catch_unwind(AssertUnwindSafe(move || drop(g)));
        let present: HashSet<Key> = c
            .keys_by_recency()
            .into_iter()
            .filter_map(|k| k.err())
            .collect();
        for &k in &keys {
            assert_eq!(c.key_is_valid(k), present.contains(&k));
        }
    }
    let valid = Arc::clone(c.valid_keys());
    let live: Vec<Key> = keys
        .iter()
        .copied()
        .filter(|&k| c.key_is_valid(k))
        .collect();
    assert_eq!(live.len(), 4);
    // renew; the old cache's drop panics on some values: the rest must still be released
    let old = c.renew();
    let r = catch_unwind(AssertUnwindSafe(move || drop(old)));
    let _ = r;
    for &k in &keys {
        assert!(!valid.contains(k) && !c.key_is_valid(k));
        assert!(c.find_key(k).is_none());
    }
    let mut released = log.borrow().clone();
    released.sort();
    // Only the last 4 (live at renew) and everything before them
    assert_eq!(
        released,
        (1..40u32).collect::<Vec<_>>(),
        "every value released exactly once"
    );
    let mut g = Garbage::new();
    let k = c.insert_key(Boom(100, Rc::clone(&log)), 1, &mut g).unwrap();
    assert!(valid.contains(k));
}
