//! Build script: generates include/pixcache.h with cbindgen and gives the shared library its
//! soname.
//!
//! The header is generated into OUT_DIR on every build and copied to include/ only when its bytes
//! differ (so timestamps do not churn). With `PIXCACHE_VERIFY_HEADER=1` a difference fails the
//! build instead: CI uses that to prove the committed header is the generated one.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let crate_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for path in ["src", "cbindgen.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=PIXCACHE_VERIFY_HEADER");

    // The ABI major version is the soname's: a C program linked today keeps working with every
    // 0.x.y release, and a breaking change would bump it (see README, "ABI stability").
    let major: u32 = env::var("CARGO_PKG_VERSION_MAJOR")
        .unwrap()
        .parse()
        .unwrap();
    let minor: u32 = env::var("CARGO_PKG_VERSION_MINOR")
        .unwrap()
        .parse()
        .unwrap();
    let patch: u32 = env::var("CARGO_PKG_VERSION_PATCH")
        .unwrap()
        .parse()
        .unwrap();
    // The C harness (tests/c_harness.rs) drives the `cc` crate outside a build script, so it needs
    // the target triple that cargo only gives build scripts.
    println!(
        "cargo:rustc-env=PIXCACHE_BUILD_TARGET={}",
        env::var("TARGET").unwrap()
    );
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpixcache.so.{major}");
    }

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    config.after_includes = Some(format!(
        "\n/** The version of this header: compare with pixcache_version() at run time. */\n\
         #define PIXCACHE_VERSION_MAJOR {major}\n\
         #define PIXCACHE_VERSION_MINOR {minor}\n\
         #define PIXCACHE_VERSION_PATCH {patch}\n\
         /** MAJOR * 10000 + MINOR * 100 + PATCH, for preprocessor comparisons. */\n\
         #define PIXCACHE_VERSION_NUMBER {}\n\
         #define PIXCACHE_VERSION_STRING \"{major}.{minor}.{patch}\"\n\
         \n/**\n * pixcache_stats(cache): the statistics of a cache, as pixcache_stats_v2. PixcacheStats grew\n\
          \x20* in 0.2; the library still exports 0.1's pixcache_stats, returning 0.1's shorter struct, for\n\
          \x20* programs built against 0.1's header.\n */\n\
         #define pixcache_stats(cache) pixcache_stats_v2(cache)\n",
        major * 10000 + minor * 100 + patch
    ));
    let generated = out_dir.join("pixcache.h");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can generate the header from src/")
        .write_to_file(&generated);

    let new = fs::read(&generated).expect("header was just written");
    let committed_path = crate_dir.join("include").join("pixcache.h");
    let committed = fs::read(&committed_path).unwrap_or_default();
    if new != committed {
        if env::var_os("PIXCACHE_VERIFY_HEADER").is_some_and(|v| v == "1") {
            panic!(
                "include/pixcache.h is stale: it differs from the header generated from src/. \
                 Run `cargo build` without PIXCACHE_VERIFY_HEADER and commit include/pixcache.h."
            );
        }
        fs::create_dir_all(committed_path.parent().unwrap()).expect("can create include/");
        fs::write(&committed_path, &new).expect("can write include/pixcache.h");
    }
}
