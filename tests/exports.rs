//! The shared library exports only `pixcache_*` symbols (no Rust internals leak into the
//! dynamic symbol table, where they could clash with a host's own Rust code).

use std::path::Path;
use std::process::Command;

#[test]
fn only_pixcache_symbols_are_exported() {
    let exe = std::env::current_exe().unwrap();
    let lib = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("libpixcache.so");
    let out = match Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!("nm (binutils) is needed for this test: {e}"),
    };
    assert!(out.status.success(), "nm failed on {}", lib.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let symbols: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert!(
        symbols.contains(&"pixcache_find"),
        "pixcache_find is not exported"
    );
    let foreign: Vec<&&str> = symbols
        .iter()
        .filter(|s| !s.starts_with("pixcache_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "unexpected exported symbols: {foreign:?}"
    );
}
