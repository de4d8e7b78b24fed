//! Thumbnail timing: a 4000x3000 JPEG (quality 90, a photo-like pattern) decoded and scaled to
//! fit 256x256 with each filter, median of 5 runs. Run with
//! `cargo run --release --example thumbnail_bench`. Prints figures; asserts nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageReader, RgbImage};
use pixcache::images::thumbnail::{self, fitted_size, Filter};

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn time(rounds: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let (w, h) = (4000, 3000);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let img = RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed & 15) as u32;
        image::Rgb([
            ((x / 7 + n) % 256) as u8,
            ((y / 5 + x / 50 + n) % 256) as u8,
            (((x ^ y) / 30 + n) % 256) as u8,
        ])
    });
    let path = std::env::temp_dir().join(format!("pixcache-bench-{}.jpg", std::process::id()));
    let pm = pixcache::decode::from_image(DynamicImage::ImageRgb8(img)).unwrap();
    pixcache::images::encode::save(&pm, &path).unwrap();
    drop(pm);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "input: {w}x{h} JPEG, quality 90, {size} bytes; target: fit 256x256 -> {:?}",
        fitted_size(w, h, 256, 256)
    );
    let rounds = 5;
    let decode = |p: &Path| {
        ImageReader::open(p)
            .unwrap()
            .with_guessed_format()
            .unwrap()
            .decode()
            .unwrap()
    };
    let d = time(rounds, || drop(decode(&path)));
    println!(
        "decode only                     {:>8.1} ms",
        d.as_secs_f64() * 1e3
    );
    for filter in [Filter::CatmullRom, Filter::Lanczos3, Filter::Triangle] {
        let t = time(rounds, || {
            drop(thumbnail::load_scaled(&path, 256, 256, filter).unwrap())
        });
        let decoded = decode(&path);
        let s = time(rounds, || {
            drop(thumbnail::scale(decoded.clone(), 256, 192, filter).unwrap());
        });
        println!(
            "load_scaled {:<12} total {:>8.1} ms   (scaling alone {:>6.1} ms, incl. a clone)",
            format!("{filter:?}"),
            t.as_secs_f64() * 1e3,
            s.as_secs_f64() * 1e3
        );
    }
    let decoded = decode(&path);
    let s = time(rounds, || drop(decoded.thumbnail(256, 256)));
    println!(
        "image's DynamicImage::thumbnail (area average), scaling alone {:>6.1} ms",
        s.as_secs_f64() * 1e3
    );
    std::fs::remove_file(&path).unwrap();
}
