//! The opt-in features beside Qt's rules (removal callbacks, peeks, takes, the count limit,
//! explicit costs, trims, live images, statistics over time), through the Rust core.
//! `tests/model.rs` checks the same operations against a model on random sequences; these are
//! the cases named one by one.

use std::sync::{Arc, Mutex};

use pixcache::{Cache, ErrorKind, Format, Key, Pixmap, Reason, Removal, RemovedKey, TrimLevel};

fn pm(w: u32, h: u32) -> Pixmap {
    Pixmap::new(w, h, Format::Rgba8888).unwrap()
}

/// A 16 KB pixmap (64x64x32 bits).
fn p16() -> Pixmap {
    pm(64, 64)
}

/// What a callback saw: (reason, key as text or "#key", cost, pixmap's cache_key).
type Seen = Arc<Mutex<Vec<(Reason, String, i64, u64)>>>;

fn record(cache: &Cache) -> Seen {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    cache.set_removal_callback(Some(Arc::new(move |r: &Removal<'_>| {
        let key = match r.key {
            RemovedKey::Name(n) => n.to_owned(),
            RemovedKey::Key(_) => "#key".to_owned(),
        };
        log.lock()
            .unwrap()
            .push((r.reason, key, r.cost_kb, r.pixmap.cache_key()));
    })));
    seen
}

fn reasons(seen: &Seen) -> Vec<(Reason, String)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(r, k, _, _)| (*r, k.clone()))
        .collect()
}

#[test]
fn callback_reports_every_removal_once_with_its_reason() {
    let c = Cache::new(64);
    let seen = record(&c);
    let a = p16();
    for k in ["a", "b", "c", "d"] {
        c.insert(k, &a).unwrap();
    }
    c.insert("e", p16()).unwrap(); // evicts "a" for room
    c.insert("b", p16()).unwrap(); // replaces "b"
    assert!(c.remove("c"));
    assert!(!c.remove("c"));
    let mut k = c.insert_key(p16()).unwrap(); // fits: d, e, b, key
    c.replace(&mut k, p16()).unwrap(); // replaces the key's entry
    assert!(c.take("b").is_some());
    c.set_limit(16); // lowers the limit: "d" and "e" go
    c.set_limit(64);
    for key in ["f", "g", "h"] {
        c.insert(key, p16()).unwrap();
    }
    c.trim(TrimLevel::Moderate); // 64 KB -> 32: the key's entry and "f" go
    c.clear(); // "g", then "h" (least recent first)
               // A refused insert reports nothing for the refused pixmap, only the entry it removed.
    c.insert("x", p16()).unwrap();
    assert_eq!(
        c.insert("x", pm(1024, 1024)).unwrap_err().kind(),
        ErrorKind::Refused
    );
    assert_eq!(
        reasons(&seen),
        vec![
            (Reason::Evicted, "a".into()),
            (Reason::Replaced, "b".into()),
            (Reason::Removed, "c".into()),
            (Reason::Replaced, "#key".into()),
            (Reason::Taken, "b".into()),
            (Reason::LimitLowered, "d".into()),
            (Reason::LimitLowered, "e".into()),
            (Reason::Trimmed, "#key".into()),
            (Reason::Trimmed, "f".into()),
            (Reason::Cleared, "g".into()),
            (Reason::Cleared, "h".into()),
            (Reason::Replaced, "x".into()),
        ]
    );
    assert!(seen.lock().unwrap().iter().all(|e| e.2 == 16), "costs");
    let stats = c.stats();
    assert_eq!(stats.removals[Reason::Evicted as usize], 1);
    assert_eq!(stats.removals[Reason::LimitLowered as usize], 2);
    assert_eq!(stats.removals[Reason::Replaced as usize], 3);
    assert_eq!(stats.removals.iter().sum::<u64>(), 12);
    assert_eq!(stats.peak_kb, 64);
    // Removed: no more calls.
    c.set_removal_callback(None);
    c.insert("y", p16()).unwrap();
    c.clear();
    assert_eq!(reasons(&seen).len(), 12);
}

/// The callback runs after the cache is unlocked: it may use the cache (here it re-inserts
/// what was evicted under another name, and reads the cache), on the thread that caused it.
#[test]
fn callback_may_use_the_cache() {
    let c = Arc::new(Cache::new(32));
    let weak = Arc::downgrade(&c);
    let me = std::thread::current().id();
    let calls = Arc::new(Mutex::new(0));
    let n = Arc::clone(&calls);
    c.set_removal_callback(Some(Arc::new(move |r: &Removal<'_>| {
        assert_eq!(std::thread::current().id(), me);
        *n.lock().unwrap() += 1;
        let c = weak.upgrade().unwrap();
        if let RemovedKey::Name(name) = r.key {
            if !name.starts_with("old-") && r.reason == Reason::Evicted {
                assert!(c.find(name).is_none());
                c.insert(&format!("old-{name}"), pm(1, 1)).unwrap();
            }
        }
    })));
    c.insert("a", p16()).unwrap();
    c.insert("b", p16()).unwrap();
    c.insert("c", p16()).unwrap(); // evicts "a"; the callback inserts "old-a" (1 KB), evicting "b"
    assert!(c.find("old-a").is_some());
    assert!(*calls.lock().unwrap() >= 2);
    c.set_removal_callback(None);
}

#[test]
fn peek_and_contains_touch_neither_recency_nor_statistics() {
    let c = Cache::new(48);
    let a = p16();
    c.insert("a", &a).unwrap();
    c.insert("b", p16()).unwrap();
    let k = c.insert_key(pm(1, 1)).unwrap();
    let before = c.stats();
    assert!(c.contains("a") && !c.contains("zz") && c.contains_key(k));
    assert!(c.peek("a").unwrap().shares_pixels_with(&a));
    assert!(c.peek("zz").is_none());
    assert!(c.peek_key(k).is_some() && c.peek_key(Key::INVALID).is_none());
    assert_eq!(c.stats(), before, "no hits or misses counted");
    // "a" is still the least recently used: the next insert evicts it.
    c.insert("c", p16()).unwrap();
    assert!(!c.contains("a") && c.contains("b"));
}

#[test]
fn take_hands_the_pixmap_over_and_invalidates_the_key() {
    let c = Cache::new(64);
    let a = p16();
    c.insert("a", &a).unwrap();
    let k = c.insert_key(&a).unwrap();
    let got = c.take("a").unwrap();
    assert!(got.shares_pixels_with(&a));
    assert!(c.take("a").is_none() && !c.contains("a"));
    assert!(c.take_key(k).is_some());
    assert!(!c.key_is_valid(k) && c.take_key(k).is_none());
    assert_eq!(c.total_used(), 0);
    assert_eq!(c.stats().removals[Reason::Taken as usize], 2);
}

#[test]
fn count_limit_and_cost_limit_both_hold() {
    let c = Cache::new(1000);
    assert_eq!(c.count_limit(), 0);
    for i in 0..5 {
        c.insert(&i.to_string(), pm(1, 1)).unwrap();
    }
    assert_eq!(c.set_count_limit(3), 2);
    assert_eq!(c.stats().entries, 3);
    assert!(!c.contains("0") && !c.contains("1") && c.contains("4"));
    c.insert("5", pm(1, 1)).unwrap();
    assert_eq!(c.stats().entries, 3);
    assert!(!c.contains("2"));
    // The cost limit still evicts on its own.
    c.insert_with_cost("big", pm(1, 1), 999).unwrap(); // 3 + 999 > 1000: two go
    assert_eq!(c.stats().entries, 2);
    assert_eq!(c.stats().count_limit, 3);
    assert_eq!(c.set_count_limit(0), 0);
    for i in 0..10 {
        c.insert_with_cost(&format!("z{i}"), pm(1, 1), 0).unwrap();
    }
    assert_eq!(c.stats().entries, 12, "no count limit");
}

#[test]
fn explicit_costs() {
    let c = Cache::new(100);
    c.insert_with_cost("tex", pm(1, 1), 60).unwrap();
    assert_eq!(c.total_used(), 60);
    let k = c.insert_key_with_cost(pm(1, 1), 30).unwrap();
    assert_eq!(c.total_used(), 90);
    c.insert_with_cost("more", pm(1, 1), 20).unwrap(); // evicts "tex"
    assert!(!c.contains("tex") && c.key_is_valid(k));
    let e = c.insert_with_cost("neg", pm(1, 1), -1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(!c.contains("neg"));
    let (bad, e) = c.insert_key_with_cost(pm(1, 1), -5).unwrap_err();
    assert_eq!((bad, e.kind()), (Key::INVALID, ErrorKind::InvalidArgument));
    assert_eq!(
        c.insert_with_cost("huge", pm(1, 1), 101)
            .unwrap_err()
            .kind(),
        ErrorKind::Refused
    );
    assert_eq!(c.total_used(), 50, "nothing evicted for a refused cost");
}

#[test]
fn trim_levels_and_trim_to() {
    let c = Cache::new(10_000);
    let fill = |c: &Cache| {
        c.clear();
        for i in 0..64 {
            c.insert_with_cost(&i.to_string(), pm(1, 1), 10).unwrap();
        }
    };
    for (level, left) in [
        (TrimLevel::Moderate, 320),
        (TrimLevel::Low, 160),
        (TrimLevel::Critical, 80),
        (TrimLevel::Complete, 0),
    ] {
        fill(&c);
        c.find("0"); // the most recently used survives every trim but the complete one
        let gone = c.trim(level);
        assert_eq!(c.total_used(), left, "{level:?}");
        assert_eq!(gone, (640 - left as usize) / 10);
        assert_eq!(c.contains("0"), left > 0, "{level:?} keeps the most recent");
    }
    fill(&c);
    assert_eq!(c.trim_to(95), 55);
    assert_eq!(c.total_used(), 90);
    assert_eq!(c.limit(), 10_000, "the limit is unchanged");
    assert_eq!(c.trim_to(-3), 9);
    assert_eq!(
        c.stats().removals[Reason::Trimmed as usize],
        32 + 48 + 56 + 64 + 55 + 9
    );
}

#[test]
fn live_images_stay_findable_while_held() {
    let c = Cache::new(32);
    c.set_live_images(true);
    assert!(c.live_images());
    let held = p16();
    let held_key = held.cache_key();
    c.insert("held", &held).unwrap();
    c.insert("dropped", p16()).unwrap();
    c.insert("x", p16()).unwrap(); // evicts "held" (still held here)
    c.insert("y", p16()).unwrap(); // evicts "dropped" (nobody holds it)
    assert!(!c.contains("dropped"));
    let s = c.stats();
    assert_eq!(
        (s.entries, s.total_kb, s.live_entries, s.live_kb),
        (2, 32, 1, 16)
    );
    assert!(c.contains("held"), "findable while held");
    // A find brings it back into the cache, as the most recent entry (evicting "x").
    let found = c.find("held").unwrap();
    assert_eq!(found.cache_key(), held_key);
    assert_eq!(c.stats().live_entries, 0);
    assert!(!c.contains("x") && c.contains("y"));
    drop(found);
    // Evicted again, then let go of by the caller: gone at the next write.
    c.insert("z", p16()).unwrap(); // evicts "y"
    c.insert("w", p16()).unwrap(); // evicts "held" -> live
    assert_eq!(c.stats().live_entries, 1);
    drop(held);
    assert!(!c.contains("held"), "no longer held: not found");
    assert_eq!(c.stats().live_entries, 0);
    assert_eq!(c.stats().live_kb, 0);
    // Removing or clearing a key also forgets its live entry; turning it off forgets all.
    let again = p16();
    c.insert("r", &again).unwrap();
    c.trim(TrimLevel::Complete);
    assert!(c.contains("r"));
    assert!(!c.remove("nothing"));
    c.remove("r");
    assert!(!c.contains("r"));
    c.insert("s", &again).unwrap();
    c.trim(TrimLevel::Complete);
    c.set_live_images(false);
    assert!(!c.contains("s"));
}

#[test]
fn live_images_are_off_by_default() {
    let c = Cache::new(16);
    let held = p16();
    c.insert("a", &held).unwrap();
    c.insert("b", p16()).unwrap();
    assert!(!c.contains("a") && c.find("a").is_none());
    assert_eq!(c.stats().live_entries, 0);
}

#[test]
fn stats_reset_keeps_sizes_and_restarts_counters() {
    let c = Cache::new(64);
    c.insert("a", p16()).unwrap();
    c.insert("b", p16()).unwrap();
    c.find("a");
    c.find("zz");
    c.remove("b");
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.inserts, s.peak_kb), (1, 1, 2, 32));
    c.reset_stats();
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.inserts, s.evictions), (0, 0, 0, 0));
    assert_eq!(s.removals, [0; Reason::COUNT]);
    assert_eq!(
        (s.entries, s.total_kb, s.limit_kb, s.peak_kb),
        (1, 16, 64, 16)
    );
    // Lookups from another thread (counted in its own reader slot) are reset too.
    std::thread::scope(|t| {
        t.spawn(|| {
            c.find("a");
        });
    });
    c.reset_stats();
    assert_eq!(c.stats().hits, 0);
}

/// Entries that cost 0 (explicit costs) still go when a trim or limit leaves nothing, and a
/// limit of 0 or less holds none of them.
#[test]
fn zero_cost_entries_go_with_complete_trims() {
    let c = Cache::new(100);
    c.insert_with_cost("a", pm(1, 1), 0).unwrap();
    c.insert_with_cost("b", pm(1, 1), 0).unwrap();
    assert_eq!(c.trim(TrimLevel::Complete), 2);
    c.insert_with_cost("a", pm(1, 1), 0).unwrap();
    assert_eq!(c.trim_to(-5), 1);
    c.insert_with_cost("a", pm(1, 1), 0).unwrap();
    c.set_limit(0);
    assert_eq!(c.stats().entries, 0);
    assert_eq!(
        c.insert_with_cost("z", pm(1, 1), 0).unwrap_err().kind(),
        ErrorKind::Refused
    );
    let empty = Cache::new(0);
    assert!(empty.insert_with_cost("z", pm(1, 1), 0).is_err());
    assert_eq!(empty.stats().entries, 0);
}

/// A live image nobody holds any more is not found, taken or removed; a replace through the
/// (still valid) key of a held one works.
#[test]
fn live_images_follow_their_holders() {
    let c = Cache::new(16);
    c.set_live_images(true);
    let held = p16();
    c.insert("a", &held).unwrap();
    c.insert("b", p16()).unwrap(); // "a" goes live
    assert!(c.contains("a"));
    drop(held);
    assert!(!c.contains("a"));
    assert!(c.take("a").is_none(), "unheld: not taken");
    assert!(!c.remove("a"), "unheld: not removed");

    let k_pm = p16();
    let mut k = c.insert_key(&k_pm).unwrap();
    c.insert("c", p16()).unwrap(); // the key's entry goes live
    assert!(c.key_is_valid(k));
    let new_pm = pm(2, 2);
    c.replace(&mut k, &new_pm).unwrap();
    assert!(c.peek_key(k).unwrap().shares_pixels_with(&new_pm));
    assert_eq!(c.stats().live_entries, 0, "the live image was replaced");
}

/// A find_or_insert_with re-check, with live images to prune, lets nothing go under the
/// flights table's lock: a release that a prune runs may call find_or_insert_with. (Live "a"
/// and "b"; the caller lets go of "a"; the call's first find prunes "a", whose release lets go
/// of the last handle of "b"; the re-check must not be what prunes "b".)
#[test]
fn flights_recheck_releases_nothing_under_its_lock() {
    let c = Arc::new(Cache::new(16));
    c.set_live_images(true);
    let weak = Arc::downgrade(&c);
    let nested = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&nested);
    let release_b: Box<dyn FnOnce() + Send + Sync> = Box::new(move || {
        let c = weak.upgrade().unwrap();
        let mut out = Pixmap::null();
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.find_or_insert_with("from-release", &mut out, || Ok(pm(1, 1)))
                .map(|_| ())
                .map_err(|e| e.kind())
        }));
        log.lock()
            .unwrap()
            .push(got.unwrap_or(Err(ErrorKind::Reentrant)));
    });
    let b = Pixmap::foreign(64, 64, 32, 2, Some(release_b)).unwrap();
    let b_handle = Arc::new(Mutex::new(Some(b.clone())));
    let b_for_a = Arc::clone(&b_handle);
    let release_a: Box<dyn FnOnce() + Send + Sync> = Box::new(move || {
        b_for_a.lock().unwrap().take();
    });
    let a = Pixmap::foreign(64, 64, 32, 1, Some(release_a)).unwrap();
    c.insert("a", &a).unwrap();
    c.insert("b", &b).unwrap();
    drop(b); // held through `b_handle` only
    c.insert("x", p16()).unwrap(); // "a" and "b" go live
    assert_eq!(c.stats().live_entries, 2);
    drop(a);
    let mut out = Pixmap::null();
    c.find_or_insert_with("zzz", &mut out, || Ok(pm(1, 1)))
        .unwrap();
    drop(out);
    c.insert("y", p16()).unwrap(); // prunes, if nothing did yet
    assert!(b_handle.lock().unwrap().is_none(), "a's release ran");
    assert_eq!(*nested.lock().unwrap(), vec![Ok(())]);
}
