#!/usr/bin/env bash
# Runs every test of pixcache, in the order a failure is cheapest to read:
#   formatting, header freshness, clippy, the minimum supported Rust, Rust unit + property tests, the C/C++ harness
#   (c-tests/ linked against libpixcache.so), then the same harness under valgrind memcheck and
#   the sanitizers, Miri on the core's reference counting and ThreadSanitizer on the library's
#   unit tests (if a nightly toolchain can be had),
# then the packaging tests (install into a temporary prefix, consumers via CMake and pkg-config),
# then every code block of the README, run as written, and the cairo example,
# then the Qt tests (differential test against Qt 6's QPixmapCache; skipped, loudly, without Qt),
# then unmodified Qt programs served by libpixcache-qt6.so (and Qt Designer under Xvfb),
# then a brief run of every benchmark but Criterion's (so that `scripts/bench.sh` keeps working).
# Needs: Rust (cargo, rustfmt, clippy), a C/C++ compiler, clang, binutils, valgrind, cmake, pkg-config,
# and for the Qt tests qt6-base-dev.
# .ci/run installs those on a fresh Debian machine and then runs this script.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# have TOOL PACKAGE WHAT: true if TOOL is installed; otherwise says plainly that WHAT did not run
# (and fails under CI=true, where every pass must run).
have() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "SKIPPED: $1 is not installed (apt-get install $2); $3 did not run."
    if [ "${CI:-}" = "true" ]; then
        echo "CI must run $3." >&2
        exit 1
    fi
    return 1
}

# Every build below fails if include/pixcache.h is not exactly what cbindgen generates from src/
# (instead of silently rewriting it): the committed header must be current.
export PIXCACHE_VERIFY_HEADER=1

step "cargo fmt --check"
cargo fmt --check

step "build (and verify the committed header is current)"
cargo build --all-targets

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "the minimum supported Rust (Cargo.toml's rust-version) builds everything"
bash scripts/msrv.sh

step "cargo test (unit, property, header, exports, C/C++ harness)"
cargo test

step "C/C++ harness under valgrind memcheck (errors and leaks fail)"
if have valgrind valgrind "the valgrind pass"; then
    PIXCACHE_TEST_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect" \
        cargo test --test c_harness
fi

step "C/C++ harness under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer (clang)"
if have clang clang "the sanitizer pass"; then
    CC=clang CXX=clang++ \
    PIXCACHE_TEST_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
        cargo test --test c_harness
fi

step "Miri: shared.rs, tally.rs and token.rs under Miri's undefined-behaviour and data-race checks"
bash scripts/miri.sh

step "ThreadSanitizer: every unit test of the library, std instrumented too"
bash scripts/tsan.sh

step "allocation failure under an address-space limit (ulimit -v)"
bash scripts/test-oom.sh

step "fuzz targets: replay the seed corpus and regressions, then a short libFuzzer run of each"
cargo fmt --check --manifest-path fuzz/Cargo.toml
cargo clippy --quiet --manifest-path fuzz/Cargo.toml --all-targets --target-dir target/fuzz-check -- -D warnings
cargo test --manifest-path fuzz/Cargo.toml --target-dir target/fuzz-check
if have clang "clang libclang-rt-14-dev" "the libFuzzer runs"; then
    bash scripts/fuzz.sh "${PIXCACHE_FUZZ_SECONDS:-20}"
fi

step "soak: every operation from 4 threads per core on shared and private caches, then invariants"
bash scripts/soak.sh "${PIXCACHE_SOAK_SECONDS:-20}"

step "packaging: install into a temporary prefix, build and run consumers (CMake, pkg-config; shared, static)"
bash scripts/test-packaging.sh

step "README: every code block runs as written (a fresh HOME, ~/.local as the prefix)"
bash scripts/test-readme.sh

step "cairo: examples/cairo_gallery.c draws pixcache pixmaps in place; its page checked pixel by pixel"
bash scripts/test-cairo.sh

step "Qt: differential test against QPixmapCache, mutation test, widget example"
bash scripts/test-qt.sh

step "drop-in without recompiling: unmodified Qt programs through libpixcache-qt6.so / pixcache-run"
bash scripts/test-qt6-replace.sh

step "benchmarks: build, run each briefly (figures unchecked); the Zipf hit ratios of Qt and pixcache must match"
if pkg-config --exists Qt6Gui 2>/dev/null; then
    ROUNDS=1 THREADS_SECONDS=0.05 THREADS_ROUNDS=1 THREADS_WORKLOAD=all LATENCY_SECONDS=0.05 \
        bash scripts/bench.sh qt threads memory latency qt-preload
else
    echo "SKIPPED: the benchmarks need Qt 6 (apt-get install qt6-base-dev); they did not run."
    [ "${CI:-}" != "true" ] || { echo "CI must run the benchmarks' smoke run." >&2; exit 1; }
fi

step "all tests passed"
