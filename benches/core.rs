//! Criterion benchmarks of the Rust core (no FFI), on QPixmapCache's workloads, next to the
//! well-known Rust caches and a bare map, to show what exact LRU and thread safety cost:
//!
//! - `pixcache`: `pixcache::Cache` (one lock, exact LRU, Qt's rules);
//! - `floor/map`: a `Mutex<HashMap<String, Pixmap>>` with rapidhash (pixcache's hasher): hash + probe + clone, no
//!   recency at all (the floor for a locked cache);
//! - `lru`: `lru::LruCache` (exact LRU, bounded by entry count) behind a `Mutex`;
//! - `quick_cache`: `quick_cache::sync::Cache` with a weighter (approximate S3-FIFO-like policy,
//!   sharded, lock per shard): what giving up exact LRU buys.
//!
//! Run: `cargo bench --bench core` (or scripts/bench.sh criterion).

use std::collections::HashMap;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pixcache::{Cache, Format, Key, Pixmap};

const HOT: usize = 500;
const ZIPF_KEYS: usize = 20_000;

fn keys(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:/theme/{i}@2x")).collect()
}

fn zipf_trace(n: usize, s: f64, len: usize) -> Vec<usize> {
    let weights: Vec<f64> = (1..=n).map(|i| 1.0 / (i as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|&c| c < u).min(n - 1)
        })
        .collect()
}

fn pixmap() -> Pixmap {
    Pixmap::new(64, 64, Format::Bgra8888Premultiplied).unwrap()
}

fn bench_find_hit(c: &mut Criterion) {
    let hot = keys(HOT, "icon");
    let pm = pixmap();
    let mut g = c.benchmark_group("string find hit (500 hot keys)");

    let cache = Cache::default();
    for k in &hot {
        cache.insert(k, &pm).unwrap();
    }
    let mut i = 0;
    g.bench_function("pixcache", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            black_box(cache.find(&hot[i]))
        })
    });

    let map: Mutex<HashMap<String, Pixmap, rapidhash::fast::RandomState>> =
        Mutex::new(hot.iter().map(|k| (k.clone(), pm.clone())).collect());
    g.bench_function("floor/map", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            black_box(map.lock().unwrap().get(hot[i].as_str()).cloned())
        })
    });

    let lru = Mutex::new(lru::LruCache::with_hasher(
        NonZeroUsize::new(640).unwrap(),
        rapidhash::fast::RandomState::default(),
    ));
    for k in &hot {
        lru.lock().unwrap().put(k.clone(), pm.clone());
    }
    g.bench_function("lru", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            black_box(lru.lock().unwrap().get(hot[i].as_str()).cloned())
        })
    });

    let qc = quick_cache::sync::Cache::with_weighter(640, 10240, PixWeight);
    for k in &hot {
        qc.insert(k.clone(), pm.clone());
    }
    g.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            black_box(qc.get(hot[i].as_str()))
        })
    });
    g.finish();
}

#[derive(Clone)]
struct PixWeight;
impl quick_cache::Weighter<String, Pixmap> for PixWeight {
    fn weight(&self, _: &String, v: &Pixmap) -> u64 {
        v.cost_kb() as u64
    }
}

fn bench_misc(c: &mut Criterion) {
    let hot = keys(HOT, "icon");
    let absent = keys(HOT, "absent");
    let many = keys(200_000, "thumb");
    let pm = pixmap();
    let cache = Cache::default();
    for k in &hot {
        cache.insert(k, &pm).unwrap();
    }
    let mut i = 0;
    c.bench_function("pixcache/string find miss", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            black_box(cache.find(&absent[i]))
        })
    });
    c.bench_function("pixcache/string insert+evict", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            black_box(cache.insert(&many[i], &pm))
        })
    });
    c.bench_function("pixcache/key insert+evict", |b| {
        b.iter(|| black_box(cache.insert_key(&pm).ok()))
    });
    cache.clear();
    let ks: Vec<Key> = (0..HOT).map(|_| cache.insert_key(&pm).unwrap()).collect();
    let mut g = c.benchmark_group("key find hit (500 keys)");
    g.bench_function("pixcache find_key (returns a share)", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            black_box(cache.find_key(ks[i]))
        })
    });
    let mut out = Pixmap::null();
    g.bench_function("pixcache find_key_into (as the C API)", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            black_box(cache.find_key_into(ks[i], &mut out))
        })
    });
    // The yardstick of the performance target: a bare HashMap lookup (rapidhash, no lock, no
    // recency), returning a share as a cache must.
    let bare: HashMap<u64, Pixmap, rapidhash::fast::RandomState> =
        ks.iter().map(|k| (k.to_raw(), pm.clone())).collect();
    g.bench_function("bare HashMap get + clone", |b| {
        b.iter(|| {
            i = (i + 1) % HOT;
            black_box(bare.get(&ks[i].to_raw()).cloned())
        })
    });
    g.finish();
}

fn bench_zipf(c: &mut Criterion) {
    let names = keys(ZIPF_KEYS, "zipf");
    let trace = zipf_trace(ZIPF_KEYS, 0.9, 1 << 20);
    let pm = pixmap();
    let mut g = c.benchmark_group("zipf(0.9) read-through");

    let cache = Cache::default();
    let mut i = 0;
    g.bench_function("pixcache", |b| {
        b.iter(|| {
            i = (i + 1) & ((1 << 20) - 1);
            let k = &names[trace[i]];
            if cache.find(k).is_none() {
                let _ = cache.insert(k, &pm);
            }
        })
    });

    let lru = Mutex::new(lru::LruCache::with_hasher(
        NonZeroUsize::new(640).unwrap(),
        rapidhash::fast::RandomState::default(),
    ));
    g.bench_function("lru", |b| {
        b.iter(|| {
            i = (i + 1) & ((1 << 20) - 1);
            let k = &names[trace[i]];
            let mut l = lru.lock().unwrap();
            if l.get(k.as_str()).cloned().is_none() {
                l.put(k.clone(), pm.clone());
            }
        })
    });

    let qc = quick_cache::sync::Cache::with_weighter(640, 10240, PixWeight);
    g.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = (i + 1) & ((1 << 20) - 1);
            let k = &names[trace[i]];
            if qc.get(k.as_str()).is_none() {
                qc.insert(k.clone(), pm.clone());
            }
        })
    });
    g.finish();

    // Hit ratios over one pass of the trace: exact LRU gives Qt's 0.4185; approximate policies
    // differ (printed, not timed).
    let cache = Cache::default();
    let exact = trace
        .iter()
        .filter(|&&z| {
            let hit = cache.find(&names[z]).is_some();
            if !hit {
                let _ = cache.insert(&names[z], &pm);
            }
            hit
        })
        .count();
    let qc = quick_cache::sync::Cache::with_weighter(640, 10240, PixWeight);
    let approx = trace
        .iter()
        .filter(|&&z| {
            let hit = qc.get(names[z].as_str()).is_some();
            if !hit {
                qc.insert(names[z].clone(), pm.clone());
            }
            hit
        })
        .count();
    println!(
        "zipf hit ratio: pixcache (exact LRU) {:.4}, quick_cache {:.4}",
        exact as f64 / trace.len() as f64,
        approx as f64 / trace.len() as f64
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_find_hit, bench_misc, bench_zipf
}
criterion_main!(benches);
