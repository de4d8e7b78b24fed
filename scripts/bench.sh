#!/usr/bin/env bash
# Benchmarks (figures, not tests): installs pixcache (release) into a temporary prefix, builds
# benches/ against it and Qt 6, and runs:
#   1. benches/qt_vs_pixcache: Qt 6's QPixmapCache vs pixcache (C API and Qt adapter), ns/op,
#      medians of ROUNDS rounds (default 5), ratios, and the Zipf hit ratios;
#   2. cargo bench: Criterion benchmarks of the Rust core against lru, quick_cache and a bare map;
#   3. benches/threads: Zipf read-through on the global cache with 1, 2, 4, 8 threads;
#   4. benches/memory: bytes of overhead per entry with 1,000,000 tiny entries;
#   5. benches/latency: single-call latency percentiles, write-heavy, 1, 2, 4 threads;
#   6. qt-preload: the same unmodified qt_vs_pixcache binary run with Qt's own cache and through
#      pixcache-run (libpixcache-qt6.so preloaded): its "Qt 6" column is then served by pixcache,
#      so the ratio of the two runs' Qt columns is what an unmodified program gains or loses.
# Usage: scripts/bench.sh [qt|criterion|threads|memory|latency|qt-preload ...]   (default: all)
#   ROUNDS=n (qt, default 5); THREADS_SECONDS=s (default 2); THREADS_WORKLOAD=read-through,
#   read-mostly, paint (read-mostly, each hit reading the found pixels), both (the default: the
#   first two) or all; THREADS_ROUNDS=n (default 3; the threads table gives medians).
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
which=("${@:-qt criterion threads memory latency qt-preload}")
which=(${which[*]})
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PIXCACHE_CMAKE_BUILD_DIR="$work/install-build" scripts/install.sh "$work/prefix" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log"; exit 1; }
cmake -S benches -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" -j2 >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
for w in "${which[@]}"; do
    case "$w" in
        qt) echo "## Qt 6 QPixmapCache vs pixcache"; "$work/build/qt_vs_pixcache" "${ROUNDS:-5}" ;;
        criterion) echo "## Criterion (Rust core)"; cargo bench --bench core ;;
        threads) echo "## threads"; "$work/build/threads" "${THREADS_SECONDS:-2}" "${THREADS_WORKLOAD:-both}" "${THREADS_ROUNDS:-3}" ;;
        memory) echo "## memory"; "$work/build/memory" ;;
        latency) echo "## latency"; "$work/build/latency" "${LATENCY_SECONDS:-2}" ;;
        qt-preload)
            echo "## an unmodified Qt program: Qt's own cache vs pixcache-run (QPixmapCache column)"
            "$work/build/qt_vs_pixcache" "${ROUNDS:-5}" 2>/dev/null | grep '^| [a-zA-Z]' >"$work/qt-own.txt"
            "$work/prefix/bin/pixcache-run" "$work/build/qt_vs_pixcache" "${ROUNDS:-5}" 2>/dev/null |
                grep '^| [a-zA-Z]' >"$work/qt-preloaded.txt"
            echo "| workload | Qt 6.4's cache | through pixcache-run | ratio |"
            echo "|---|---:|---:|---:|"
            # Column 3 of each table is its QPixmapCache figure (ns/op).
            paste -d'|' "$work/qt-own.txt" "$work/qt-preloaded.txt" | tail -n +2 |
                awk -F'|' '{ q = $3 + 0; p = $9 + 0; gsub(/^ +| +$/, "", $2); printf "| %s | %.1f | %.1f | %.2fx |\n", $2, q, p, p / q }' ;;
        *) echo "unknown benchmark $w" >&2; exit 2 ;;
    esac
done
