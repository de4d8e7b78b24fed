#!/usr/bin/env bash
# Miri: runs the unit tests of the core's own unsafe memory code under Miri's undefined-behaviour
# and data-race checker: shared.rs (the reference-counted pixel block: a release decrement or
# acquire fence weakened to relaxed is reported as a race), tally.rs (per-thread cells written
# with plain stores), token.rs, affine.rs (the thread-affine cache's owner rule) and slots.rs
# (the cells any thread reads while the owner writes). The rest of the core's unsafe code is inline assembly, system
# calls and the lock, which Miri cannot run or which the lock's own tests, the sanitizers and
# valgrind cover.
# Miri needs a nightly toolchain with the miri and rust-src components. If it is not installed,
# this installs it (rustup, from static.rust-lang.org); if that is impossible (no network), the
# step says so loudly and is skipped: it is the one test that needs a download beyond the
# package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    if ! timeout 300 rustup toolchain install nightly --profile minimal --component miri,rust-src >/dev/null 2>&1 \
        || ! cargo +nightly miri --version >/dev/null 2>&1; then
        echo "SKIPPED: Miri: a nightly toolchain with miri could not be installed (rustup toolchain install nightly --component miri,rust-src)."
        exit 0
    fi
fi
CARGO_TARGET_DIR=target/miri cargo +nightly miri test --lib -- shared:: tally:: token:: affine:: slots::
