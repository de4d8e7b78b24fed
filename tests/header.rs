//! The committed C header is exactly what the build generates from src/ffi/ (cbindgen).
//!
//! build.rs writes the fresh header to OUT_DIR on every build and copies it to include/ when it
//! differs; `PIXCACHE_VERIFY_HEADER=1 cargo build` (run by scripts/test.sh) fails instead of
//! copying, which is what proves, on a clean checkout, that the committed header is current.
//! This test catches the remaining case: include/pixcache.h edited by hand after a build.

#[test]
fn committed_header_matches_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/pixcache.h"));
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/pixcache.h");
    let committed = std::fs::read_to_string(committed_path).expect("include/pixcache.h exists");
    assert!(
        committed == generated,
        "include/pixcache.h differs from the header cbindgen generates: rebuild and commit it"
    );
}

#[test]
fn header_declares_every_exported_function() {
    let header = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/include/pixcache.h"));
    for name in [
        "pixcache_global",
        "pixcache_cache_new",
        "pixcache_cache_free",
        "pixcache_cache_limit",
        "pixcache_set_cache_limit",
        "pixcache_find",
        "pixcache_find_key",
        "pixcache_insert",
        "pixcache_insert_key",
        "pixcache_replace",
        "pixcache_remove",
        "pixcache_remove_key",
        "pixcache_clear",
        "pixcache_key_is_valid",
        "pixcache_key_equal",
        "pixcache_total_used",
        "pixcache_flush_detached",
        "pixcache_stats_v2",
        "pixcache_reset_stats",
        "pixcache_set_removal_callback",
        "pixcache_contains",
        "pixcache_contains_n",
        "pixcache_contains_key",
        "pixcache_peek",
        "pixcache_peek_n",
        "pixcache_peek_key",
        "pixcache_take",
        "pixcache_take_n",
        "pixcache_take_key",
        "pixcache_count_limit",
        "pixcache_set_count_limit",
        "pixcache_insert_with_cost",
        "pixcache_insert_with_cost_n",
        "pixcache_insert_key_with_cost",
        "pixcache_trim",
        "pixcache_trim_to",
        "pixcache_set_live_images",
        "pixcache_live_images",
        "pixcache_find_or_load_as",
        "pixcache_file_key",
        "pixcache_last_error",
        "pixcache_pixmap_new_null",
        "pixcache_pixmap_new",
        "pixcache_pixmap_clone",
        "pixcache_pixmap_assign",
        "pixcache_pixmap_free",
        "pixcache_pixmap_is_null",
        "pixcache_pixmap_is_detached",
        "pixcache_pixmap_width",
        "pixcache_pixmap_height",
        "pixcache_pixmap_depth",
        "pixcache_pixmap_format",
        "pixcache_pixmap_stride",
        "pixcache_pixmap_pixels",
        "pixcache_pixmap_pixels_mut",
        "pixcache_pixmap_cache_key",
        "pixcache_pixmap_wrap",
        "pixcache_pixmap_user_data",
        "pixcache_pixmap_load",
        "pixcache_pixmap_load_from_memory",
        "pixcache_pixmap_encode",
        "pixcache_bytes_free",
        "pixcache_pixmap_save_as",
        "pixcache_pixmap_load_scaled",
        "pixcache_image_frames",
        "pixcache_pixmap_load_frame",
        "pixcache_pixmap_load_with",
        "pixcache_pixmap_load_from_memory_with",
        "pixcache_load_options_default",
        "pixcache_decode_limits",
        "pixcache_image_info",
        "pixcache_image_info_from_memory",
        "pixcache_watch_memory_pressure",
        "pixcache_pressure_watch_stop",
        "pixcache_pressure_watch_trims",
    ] {
        let declared = header.lines().any(|line| {
            !line.trim_start().starts_with('*')
                && line
                    .split([' ', '*'])
                    .any(|word| word.starts_with(&format!("{name}(")))
        });
        assert!(declared, "{name} is not declared in the header");
    }
}

/// Everything the header defines carries the library's prefix: nothing from the Rust core leaks
/// into a C program's namespace.
#[test]
fn header_names_are_prefixed() {
    let header = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/include/pixcache.h"));
    for line in header.lines() {
        if let Some(rest) = line.strip_prefix("#define ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            // One lowercase macro: the name 0.1 programs call, mapped to the function that
            // returns today's struct (src/ffi/legacy.rs keeps 0.1's symbol).
            // Function-like, so that only calls are renamed (not members or other names).
            if name == "pixcache_stats(cache)" {
                assert_eq!(
                    rest.split_whitespace().nth(1),
                    Some("pixcache_stats_v2(cache)")
                );
                continue;
            }
            assert!(name.starts_with("PIXCACHE_"), "unprefixed macro {name}");
        }
        if let Some(rest) = line.strip_prefix("typedef ") {
            if !line.contains('{') {
                // `typedef T Name;` or a function pointer `typedef R (*Name)(args);`
                let name = match rest.split_once("(*") {
                    Some((_, after)) => after.split(')').next().unwrap_or_default(),
                    None => rest
                        .trim_end_matches(';')
                        .rsplit(' ')
                        .next()
                        .unwrap_or_default(),
                };
                assert!(
                    name.starts_with("Pixcache"),
                    "unprefixed typedef in: {line}"
                );
            }
        }
        if line.starts_with("typedef") && line.contains('{') {
            let tag = line.split_whitespace().nth(2).unwrap_or_default();
            assert!(tag.starts_with("Pixcache"), "unprefixed type in: {line}");
        }
    }
}
