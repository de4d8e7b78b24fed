//! Single flight (`Cache::find_or_insert_with`): concurrent callers for one missing key share one
//! production; failures reach every waiter and insert nothing; producers may use the cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use pixcache::{Cache, ErrorKind, Format, Pixmap, Source};

fn render(n: u32) -> pixcache::Result<Pixmap> {
    // Slow enough that the other threads arrive while it runs.
    std::thread::sleep(Duration::from_millis(2));
    Pixmap::new(8 + n % 4, 8, Format::Gray8)
}

#[test]
fn eight_threads_fifty_keys_each_produced_once() {
    let cache = Arc::new(Cache::default());
    let produced: Arc<Vec<AtomicUsize>> = Arc::new((0..50).map(|_| AtomicUsize::new(0)).collect());
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (cache, produced, barrier) = (cache.clone(), produced.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut sources = Vec::new();
                for i in 0..50u32 {
                    let k = (i + t * 7) % 50; // every thread walks the keys in its own order
                    let mut out = Pixmap::null();
                    let src = cache
                        .find_or_insert_with(&format!("img:{k}"), &mut out, || {
                            produced[k as usize].fetch_add(1, Ordering::SeqCst);
                            render(k)
                        })
                        .unwrap();
                    assert_eq!(out.width(), 8 + k % 4);
                    sources.push(src);
                }
                sources
            })
        })
        .collect();
    let sources: Vec<Source> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    for (k, n) in produced.iter().enumerate() {
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "key {k} was produced more than once"
        );
    }
    assert_eq!(
        sources.iter().filter(|s| **s == Source::Produced).count(),
        50
    );
    assert_eq!(sources.len(), 400);
    assert_eq!(cache.stats().entries, 50);
}

#[test]
fn a_failing_producer_fails_every_waiter_and_inserts_nothing() {
    let cache = Arc::new(Cache::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, calls, barrier) = (cache.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut out = Pixmap::null();
                cache.find_or_insert_with("broken", &mut out, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    Err(pixcache::Error::new(ErrorKind::Decode, "corrupt file"))
                })
            })
        })
        .collect();
    for t in threads {
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert_eq!(e.message(), "corrupt file");
    }
    // Every caller either produced or waited for a failing producer: at most 4, at least 1.
    let n = calls.load(Ordering::SeqCst);
    assert!((1..=4).contains(&n));
    assert!(cache.find("broken").is_none());
    assert_eq!(cache.stats().entries, 0);
    // A later call tries again.
    let mut out = Pixmap::null();
    let src = cache
        .find_or_insert_with("broken", &mut out, || Pixmap::new(1, 1, Format::Gray8))
        .unwrap();
    assert_eq!(src, Source::Produced);
}

#[test]
fn a_producer_may_use_the_cache_for_other_keys_but_not_its_own() {
    let cache = Cache::default();
    let mut out = Pixmap::null();
    let src = cache
        .find_or_insert_with("outer", &mut out, || {
            let mut inner = Pixmap::null();
            cache.find_or_insert_with("inner", &mut inner, || Pixmap::new(2, 2, Format::Gray8))?;
            cache.insert("side", &inner)?;
            let e = cache
                .find_or_insert_with("outer", &mut Pixmap::null(), || {
                    Pixmap::new(1, 1, Format::Gray8)
                })
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            Pixmap::new(3, 3, Format::Gray8)
        })
        .unwrap();
    assert_eq!(src, Source::Produced);
    assert_eq!(out.width(), 3);
    assert!(cache.find("inner").is_some() && cache.find("side").is_some());
    let mut again = Pixmap::null();
    assert_eq!(
        cache
            .find_or_insert_with("outer", &mut again, || unreachable!())
            .unwrap(),
        Source::Cached
    );
    assert_eq!(again.cache_key(), out.cache_key());
}

#[test]
fn a_panicking_producer_releases_its_waiters() {
    let cache = Arc::new(Cache::default());
    let barrier = Arc::new(Barrier::new(2));
    let waiter = {
        let (cache, barrier) = (cache.clone(), barrier.clone());
        std::thread::spawn(move || {
            barrier.wait();
            std::thread::sleep(Duration::from_millis(5));
            cache.find_or_insert_with("p", &mut Pixmap::null(), || {
                Pixmap::new(1, 1, Format::Gray8)
            })
        })
    };
    let producer = {
        let (cache, barrier) = (cache.clone(), barrier.clone());
        std::thread::spawn(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                cache.find_or_insert_with("p", &mut Pixmap::null(), || {
                    barrier.wait();
                    std::thread::sleep(Duration::from_millis(30));
                    panic!("producer bug")
                })
            }));
        })
    };
    producer.join().unwrap();
    // The waiter either joined the doomed flight (and fails) or came after it (and produces).
    match waiter.join().unwrap() {
        Ok(src) => assert_eq!(src, Source::Produced),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Panic),
    }
}

#[test]
fn a_pixmap_too_large_to_cache_is_still_returned() {
    let cache = Cache::new(1);
    let mut out = Pixmap::null();
    let src = cache
        .find_or_insert_with("big", &mut out, || Pixmap::new(64, 64, Format::Rgba8888))
        .unwrap();
    assert_eq!(src, Source::Produced);
    assert_eq!(out.width(), 64);
    assert_eq!(cache.stats().entries, 0);
}

/// Producers that need each other's keys would wait for each other forever: whichever closes
/// the cycle gets an error instead, which fails its production and so every production in the
/// cycle. The cycles here: two producers in one cache, and three across two caches. A finished
/// wait is no edge: the same shapes without the cycle (and run one after the other) succeed.
#[test]
fn producers_waiting_in_a_cycle_get_an_error_instead_of_a_deadlock() {
    // (cache index, key, key its producer asks for, cache of that key)
    let shapes: [&[(usize, &str, &str, usize)]; 2] = [
        &[(0, "a", "b", 0), (0, "b", "a", 0)],
        &[(0, "a", "b", 1), (1, "b", "c", 0), (0, "c", "a", 0)],
    ];
    for shape in shapes {
        for round in 0..20 {
            let caches = Arc::new([Cache::default(), Cache::default()]);
            let barrier = Arc::new(Barrier::new(shape.len()));
            let (tx, rx) = std::sync::mpsc::channel();
            for &(c, key, wants, wants_cache) in shape {
                let (caches, barrier, tx) = (caches.clone(), barrier.clone(), tx.clone());
                std::thread::spawn(move || {
                    let mut out = Pixmap::null();
                    let r = caches[c].find_or_insert_with(key, &mut out, || {
                        // Every producer is running before any asks for its neighbour's key.
                        barrier.wait();
                        let mut inner = Pixmap::null();
                        caches[wants_cache].find_or_insert_with(wants, &mut inner, || render(0))?;
                        Ok(inner)
                    });
                    tx.send(r.map_err(|e| e.to_string())).unwrap();
                });
            }
            let results: Vec<_> = (0..shape.len())
                .map(|_| {
                    rx.recv_timeout(Duration::from_secs(10))
                        .unwrap_or_else(|_| panic!("deadlock: round {round} of {shape:?}"))
                })
                .collect();
            assert!(
                results.iter().all(|r| r.is_err()),
                "every production in the cycle fails: {results:?}"
            );
            assert!(
                results
                    .iter()
                    .any(|r| r.as_ref().unwrap_err().contains("cycle")),
                "one of them says why: {results:?}"
            );
            for (c, key, _, _) in shape {
                assert!(
                    caches[*c].find(key).is_none(),
                    "a failed production inserts nothing"
                );
            }
        }
    }
    // No cycle: a chain of producers waiting on each other completes.
    let cache = Arc::new(Cache::default());
    let barrier = Arc::new(Barrier::new(2));
    let chain: Vec<_> = [("x", Some("y")), ("y", None)]
        .into_iter()
        .map(|(key, wants)| {
            let (cache, barrier) = (cache.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut out = Pixmap::null();
                cache.find_or_insert_with(key, &mut out, || {
                    barrier.wait();
                    match wants {
                        Some(w) => {
                            let mut inner = Pixmap::null();
                            cache.find_or_insert_with(w, &mut inner, || render(1))?;
                            Ok(inner)
                        }
                        None => {
                            std::thread::sleep(Duration::from_millis(20));
                            render(2)
                        }
                    }
                })
            })
        })
        .collect();
    for t in chain {
        t.join()
            .unwrap()
            .expect("a chain without a cycle completes");
    }
}
