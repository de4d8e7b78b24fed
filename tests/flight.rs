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

/// The C API's single flight (`pixcache_find_or_insert_with`): a failing producer's own result
/// code and message reach its caller and every waiter.
mod c_api {
    use std::ffi::{c_char, c_int, c_void, CStr, CString};
    use std::ptr;
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use pixcache::ffi::cache::{
        pixcache_cache_free, pixcache_cache_new, pixcache_file_key, pixcache_find,
        pixcache_find_or_insert_with, pixcache_find_or_load, pixcache_stats_v2 as pixcache_stats,
        PixcacheCache,
    };
    use pixcache::ffi::error::{
        pixcache_last_error, pixcache_last_result, pixcache_result_str, pixcache_set_error,
        PixcacheResult,
    };
    use pixcache::ffi::pixmap::{pixcache_pixmap_load, pixcache_pixmap_new, PixcachePixmap};

    fn last_error() -> String {
        // SAFETY: pixcache_last_error returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(pixcache_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    /// What a call left on its thread.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Outcome {
        ok: bool,
        code: PixcacheResult,
        message: String,
    }

    fn outcome(ok: bool) -> Outcome {
        Outcome {
            ok,
            code: pixcache_last_result(),
            message: last_error(),
        }
    }

    /// Leaves an error of this thread's own (`INVALID_ARGUMENT`, format 77).
    fn own_error() {
        assert!(pixcache_pixmap_new(1, 1, 77).is_null());
        assert_eq!(pixcache_last_result(), PixcacheResult::InvalidArgument);
    }

    struct Cache(*mut PixcacheCache);

    impl Cache {
        fn new() -> Self {
            Cache(pixcache_cache_new(1000))
        }
    }

    impl Drop for Cache {
        fn drop(&mut self) {
            // SAFETY: made by pixcache_cache_new, freed once.
            unsafe { pixcache_cache_free(self.0) }
        }
    }

    /// The producer's state, behind its `user_data`.
    struct Producing {
        cache: usize, // *mut PixcacheCache, for the waiter's thread
        path: CString,
        /// The flight's key: the file's (`pixcache_file_key`, what find_or_load joins).
        key: CString,
        by_load: bool,
        waiter: Option<JoinHandle<(Outcome, bool)>>,
        loader: Option<Outcome>,
    }

    unsafe extern "C" fn late(user_data: *mut c_void, _pm: *mut PixcachePixmap) -> bool {
        // SAFETY: `user_data` is the waiter's `bool`.
        unsafe { *user_data.cast::<bool>() = true };
        false
    }

    /// Starts a waiter for its own key, waits until it has missed (and a little longer), then
    /// fails by loading its path with `pixcache_pixmap_load`, as its last pixcache call.
    unsafe extern "C" fn load_and_fail(user_data: *mut c_void, _pm: *mut PixcachePixmap) -> bool {
        // SAFETY: `user_data` is the caller's `Producing`, used by this thread only.
        let p = unsafe { &mut *user_data.cast::<Producing>() };
        let cache = p.cache as *mut PixcacheCache;
        // SAFETY: a live cache.
        let misses = unsafe { pixcache_stats(cache) }.misses;
        let (path, key, by_load, cache_addr) = (p.path.clone(), p.key.clone(), p.by_load, p.cache);
        p.waiter = Some(thread::spawn(move || {
            own_error();
            let cache = cache_addr as *mut PixcacheCache;
            let mut produced = false;
            // SAFETY: a live cache and C string; `late` gets a live `bool`.
            let ok = unsafe {
                if by_load {
                    pixcache_find_or_load(cache, path.as_ptr(), ptr::null_mut())
                } else {
                    pixcache_find_or_insert_with(
                        cache,
                        key.as_ptr(),
                        Some(late),
                        (&raw mut produced).cast(),
                        ptr::null_mut(),
                    )
                }
            };
            (outcome(ok), produced)
        }));
        for _ in 0..10_000 {
            // SAFETY: a live cache.
            if unsafe { pixcache_stats(cache) }.misses > misses {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(30));
        // SAFETY: a C string.
        assert!(unsafe { pixcache_pixmap_load(p.path.as_ptr()) }.is_null());
        p.loader = Some(outcome(false));
        false
    }

    /// Runs `load_and_fail` for `path` with one waiter until the waiter did wait (timing only);
    /// returns the caller's, the waiter's and the loader's outcomes.
    fn io_flight(path: &CString, by_load: bool) -> (Outcome, Outcome, Outcome) {
        // find_or_load's flights are keyed by the file's identity (a file that exists).
        let mut buf = vec![0u8; 4096];
        // SAFETY: a C string and a buffer of `buf.len()` bytes.
        let n = unsafe { pixcache_file_key(path.as_ptr(), 0, buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n < buf.len(), "the file's key");
        buf.truncate(n);
        // No file, no identity: the flight is under the path (find_or_load is not used then).
        let key = if n == 0 {
            path.clone()
        } else {
            CString::new(buf).unwrap()
        };
        for round in 0..5 {
            let cache = Cache::new();
            let mut p = Producing {
                cache: cache.0 as usize,
                path: path.clone(),
                key: key.clone(),
                by_load,
                waiter: None,
                loader: None,
            };
            own_error();
            // SAFETY: a live cache and C string; `load_and_fail` gets `p`.
            let ok = unsafe {
                pixcache_find_or_insert_with(
                    cache.0,
                    key.as_ptr(),
                    Some(load_and_fail),
                    (&raw mut p).cast(),
                    ptr::null_mut(),
                )
            };
            let caller = outcome(ok);
            let (waiter, produced) = p.waiter.take().unwrap().join().unwrap();
            // SAFETY: a live cache and C string.
            assert!(!unsafe { pixcache_find(cache.0, key.as_ptr(), ptr::null_mut()) });
            // A find_or_load that came late loads the file itself: the loader's bare message.
            if !produced && waiter.message == caller.message {
                return (caller, waiter, p.loader.unwrap());
            }
            eprintln!("round {round}: the waiter came after the flight ended; again");
        }
        panic!("the waiter never waited for the producer");
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pixcache-flight-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_producers_io_and_decode_errors_reach_the_caller_and_a_waiter() {
        let dir = temp_dir("codes");
        let missing = dir.join("missing.png");
        let garbage = dir.join("garbage.png");
        std::fs::write(&garbage, b"not an image, whatever the name says\n").unwrap();
        // A missing file has no identity: find_or_load fails before any flight (IO, checked in
        // find_or_load_keeps_io_and_decode); a producer of the caller's fails with the loader's IO.
        for (path, code, loads) in [
            (&missing, PixcacheResult::Io, &[false][..]),
            (&garbage, PixcacheResult::Decode, &[false, true][..]),
        ] {
            let path = CString::new(path.to_str().unwrap()).unwrap();
            for &by_load in loads {
                let (caller, waiter, loader) = io_flight(&path, by_load);
                assert_eq!(loader.code, code);
                assert_eq!(caller.code, code, "{caller:?}; the loader: {loader:?}");
                assert!(!caller.ok);
                assert!(caller.message.contains(&loader.message), "{caller:?}");
                assert!(caller.message.contains(path.to_str().unwrap()));
                // The waiter holds an error of its own before it waits: it gets the producer's.
                assert_eq!(waiter, caller, "by_load: {by_load}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn find_or_load_keeps_io_and_decode() {
        let dir = temp_dir("load");
        let missing = CString::new(dir.join("missing.png").to_str().unwrap()).unwrap();
        let garbage = dir.join("garbage.png");
        std::fs::write(&garbage, b"not an image either, just text").unwrap();
        let garbage = CString::new(garbage.to_str().unwrap()).unwrap();
        let cache = Cache::new();
        for (path, code) in [
            (&missing, PixcacheResult::Io),
            (&garbage, PixcacheResult::Decode),
        ] {
            // SAFETY: a live cache and C strings.
            let ok = unsafe { pixcache_find_or_load(cache.0, path.as_ptr(), ptr::null_mut()) };
            let got = outcome(ok);
            assert!(!got.ok);
            assert_eq!(got.code, code, "{got:?}");
            assert!(got.message.contains(path.to_str().unwrap()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    unsafe extern "C" fn silent(_user_data: *mut c_void, _pm: *mut PixcachePixmap) -> bool {
        false
    }

    /// `(code, message, then a successful call)` for `pixcache_set_error`.
    type Explicit = (c_int, *const c_char, bool);

    unsafe extern "C" fn explicit(user_data: *mut c_void, _pm: *mut PixcachePixmap) -> bool {
        // SAFETY: `user_data` is an `Explicit`.
        let (code, message, then_succeed) = unsafe { *user_data.cast::<Explicit>() };
        // SAFETY: `message` is NULL or a C string.
        unsafe { pixcache_set_error(code, message) };
        if then_succeed {
            // SAFETY: the global cache.
            let _ = unsafe { pixcache_stats(pixcache::ffi::cache::pixcache_global()) };
            assert_eq!(pixcache_last_result(), PixcacheResult::Ok);
        }
        false
    }

    fn produce(
        cache: &Cache,
        key: &CStr,
        f: pixcache::ffi::cache::PixcacheProduceFn,
        data: *mut c_void,
    ) -> Outcome {
        // SAFETY: a live cache and C string; `f` gets `data`.
        let ok = unsafe {
            pixcache_find_or_insert_with(cache.0, key.as_ptr(), f, data, ptr::null_mut())
        };
        outcome(ok)
    }

    #[test]
    fn a_producer_that_sets_no_error_is_producer_failed() {
        let cache = Cache::new();
        own_error(); // an earlier error is not the producer's
        let got = produce(&cache, c"silent:key", Some(silent), ptr::null_mut());
        assert!(!got.ok);
        assert_eq!(got.code, PixcacheResult::ProducerFailed);
        assert!(got.message.contains("silent:key"), "{got:?}");
        assert!(!got.message.contains("77"), "{got:?}");
    }

    #[test]
    fn a_producer_may_set_its_own_error() {
        let cache = Cache::new();
        let mut e: Explicit = (
            PixcacheResult::Decode as c_int,
            c"my codec says no".as_ptr(),
            false,
        );
        let got = produce(&cache, c"own:key", Some(explicit), (&raw mut e).cast());
        assert_eq!(got.code, PixcacheResult::Decode);
        assert!(got.message.contains("my codec says no") && got.message.contains("own:key"));
        // A NULL message: the code's own text.
        e = (PixcacheResult::Io as c_int, ptr::null(), false);
        let got = produce(&cache, c"own:key", Some(explicit), (&raw mut e).cast());
        assert_eq!(got.code, PixcacheResult::Io);
        // SAFETY: pixcache_result_str returns a static C string.
        let text = unsafe { CStr::from_ptr(pixcache_result_str(PixcacheResult::Io as c_int)) };
        assert!(got.message.contains(text.to_str().unwrap()), "{got:?}");
        // An unknown code is the producer's mistake.
        e = (1234, c"unused".as_ptr(), false);
        let got = produce(&cache, c"own:key", Some(explicit), (&raw mut e).cast());
        assert_eq!(got.code, PixcacheResult::InvalidArgument);
        assert!(got.message.contains("1234") && !got.message.contains("unused"));
        // Only the producer's last result counts.
        e = (PixcacheResult::Io as c_int, c"gone".as_ptr(), true);
        let got = produce(&cache, c"own:key", Some(explicit), (&raw mut e).cast());
        assert_eq!(got.code, PixcacheResult::ProducerFailed);
        // SAFETY: a live cache.
        assert_eq!(unsafe { pixcache_stats(cache.0) }.entries, 0);
    }

    #[test]
    fn set_error_validates_and_never_crashes() {
        // SAFETY: NULL or C strings.
        unsafe {
            pixcache_set_error(PixcacheResult::Refused as c_int, c"too big".as_ptr());
            assert_eq!(pixcache_last_result(), PixcacheResult::Refused);
            assert_eq!(last_error(), "too big");
            pixcache_set_error(PixcacheResult::Io as c_int, c"a\xff\xfeb\nc".as_ptr());
            assert_eq!(pixcache_last_result(), PixcacheResult::Io);
            assert_eq!(last_error(), "a\u{fffd}\u{fffd}b c");
            pixcache_set_error(PixcacheResult::Io as c_int, c"".as_ptr());
            assert_eq!(last_error(), "an I/O error occurred");
            for bad in [-1, 15, c_int::MAX, c_int::MIN] {
                pixcache_set_error(bad, ptr::null());
                assert_eq!(pixcache_last_result(), PixcacheResult::InvalidArgument);
                assert!(last_error().contains(&bad.to_string()));
            }
            pixcache_set_error(PixcacheResult::Ok as c_int, c"ignored".as_ptr());
            assert_eq!(pixcache_last_result(), PixcacheResult::Ok);
            assert_eq!(last_error(), "");
        }
    }
}
