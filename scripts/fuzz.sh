#!/usr/bin/env bash
# Fuzzing with libFuzzer on the stable toolchain (cargo-fuzz needs nightly): builds fuzz/ as a
# static library instrumented with rustc's stable SanitizerCoverage flags, links each target's
# one-line C entry point with clang -fsanitize=fuzzer, and runs every target.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     (default: 20 s; ops decode keys)
#
# Seeds come from fuzz/corpus/<target>/ (read-only); new inputs go to a scratch corpus under
# target/fuzz-corpus/. A crash is saved to fuzz/regressions/<target>/ (commit it: `cargo test
# --manifest-path fuzz/Cargo.toml` replays every regression input forever) and fails the run.
# Needs clang with libFuzzer (Debian: clang, libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
targets=("${@:-ops decode keys}")
targets=(${targets[*]})

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cforce-frame-pointers"
triple=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps the instrumentation off build scripts (they link without libFuzzer).
cargo build --release --quiet --manifest-path fuzz/Cargo.toml --target "$triple" --target-dir target/fuzz
lib="target/fuzz/$triple/release/libpixcache_fuzz.a"

total_runs=0
for t in "${targets[@]}"; do
    bin="target/fuzz/fuzz_$t"
    clang -g -fsanitize=fuzzer "fuzz/harness/$t.c" "$lib" -lpthread -ldl -lm -o "$bin"
    scratch="target/fuzz-corpus/$t"
    mkdir -p "$scratch" "fuzz/regressions/$t"
    log="target/fuzz/fuzz_$t.log"
    echo "# fuzz target $t: $seconds s"
    if ! "$bin" "$scratch" "fuzz/corpus/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
            -artifact_prefix="fuzz/regressions/$t/" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "FAILED: fuzz target $t found a crash; the input is in fuzz/regressions/$t/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "$t: $runs executions, $(ls "$scratch" | wc -l) corpus inputs, 0 crashes ($(grep -m1 -o 'cov: [0-9]*' "$log" | tail -1 || true))"
    total_runs=$((total_runs + runs))
done
echo "fuzzing: $total_runs executions over ${#targets[@]} targets, 0 crashes"
