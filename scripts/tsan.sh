#!/usr/bin/env bash
# ThreadSanitizer on the Rust side: every unit test of the library (the lock, the recency logs,
# spares, fork handlers, the cache's multi-threaded tests, single flight, shared pixels) built
# with -Zsanitizer=thread, std included (-Zbuild-std, so that std's own atomics and locks are
# instrumented too: without that TSan reports correctly synchronised code as racing).
# Needs a nightly toolchain with rust-src; where there is none it says so and is skipped (as
# Miri is), even under CI=true: the toolchain cannot be fetched without network beyond the
# package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly --version >/dev/null 2>&1 \
    || ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    echo "SKIPPED: ThreadSanitizer: no nightly toolchain with rust-src (rustup toolchain install nightly --component rust-src)."
    exit 0
fi
target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" CARGO_TARGET_DIR=target/tsan \
    cargo +nightly test -Zbuild-std --target "$target" --lib
