#!/usr/bin/env bash
# The minimum supported Rust: builds the library, its tests and its benchmarks with the version
# Cargo.toml's `rust-version` names (the README states the same one; scripts/test-readme.sh
# checks that), using the committed Cargo.lock, so a newer language feature or a dependency that
# needs a newer compiler fails here instead of on a user's machine.
# The toolchain is installed with rustup (from static.rust-lang.org) if missing; where that is
# impossible (no rustup, no network) the step says so loudly and is skipped, as the Miri step is.
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "Cargo.toml has no rust-version" >&2; exit 1; }
if ! cargo "+$msrv" --version >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null 2>&1 ||
        ! timeout 300 rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1; then
        echo "SKIPPED: Rust $msrv (Cargo.toml's rust-version) could not be installed (rustup toolchain install $msrv); the minimum version was not checked."
        exit 0
    fi
fi
echo "Rust $msrv: $(rustc "+$msrv" --version)"
CARGO_TARGET_DIR=target/msrv cargo "+$msrv" check --locked --all-targets
echo "the library builds with Rust $msrv, Cargo.toml's rust-version"
