#!/usr/bin/env bash
# Drop-in without recompiling: unmodified Qt 6 programs served by libpixcache-qt6.so.
#   1. install pixcache (with libpixcache-qt6.so and pixcache-run) into a temporary prefix;
#   2. the library exports exactly Qt's 21 QPixmapCache symbols, under Qt_6, and nothing else;
#   3. c-tests/qt6/behaviour (a QPixmapCache program built against Qt only) prints the same
#      transcript with Qt's cache, through pixcache-run, and linked with pixcache::qt6_replace;
#      --stats shows that pixcache served the calls;
#   4. c-tests/qt6/idle_trim: Qt's idle trimming in real time (string and generated keys, a
#      refused insert starts no timer), the same with and without pixcache-run (about 35 s);
#   5. c-tests/qt6/widgets (Fusion, item views, graphics effects, cached graphics items, QIcon,
#      its own cache calls) renders identical frames with and without pixcache-run, also under
#      valgrind;
#   6. Qt's thread rule by default, --any-thread serves other threads;
#   7. a Qt of another version, or one lacking a symbol: everything forwarded to Qt's own cache,
#      one line on stderr;
#   8. children do not inherit the preload unless --inherit; --check;
#   9. a real application from Debian's packages (Qt Designer) under Xvfb: starts, paints, quits
#      cleanly with traffic in --stats.
# Without Qt 6 (or, for step 9, Xvfb, xdotool and designer-qt6) it says what was skipped (and
# fails under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
skip() {
    echo "SKIPPED: $*"
    if [ "${CI:-}" = "true" ]; then echo "CI must run this (.ci/run installs what it needs)." >&2; exit 1; fi
}
fail() { echo "FAILED: $*" >&2; exit 1; }

if ! pkg-config --exists Qt6Widgets 2>/dev/null; then
    skip "the drop-in tests: Qt 6 development files are not installed (apt-get install qt6-base-dev)"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
PIXCACHE_CMAKE_BUILD_DIR="$work/install-build" scripts/install.sh "$prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log"; exit 1; }
lib="$prefix/lib/libpixcache-qt6.so"
run="$prefix/bin/pixcache-run"
[ -f "$lib" ] || fail "the install has no $lib"
[ -x "$run" ] || fail "the install has no $run"
pass=0

echo "# exports: Qt's 21 QPixmapCache symbols under Qt_6, nothing else"
nm -D --defined-only /usr/lib/x86_64-linux-gnu/libQt6Gui.so.6 2>/dev/null | awk '/QPixmapCache/ { print $3 }' | sort >"$work/qt.syms" ||
    nm -D --defined-only "$(pkg-config --variable=libdir Qt6Gui)/libQt6Gui.so.6" | awk '/QPixmapCache/ { print $3 }' | sort >"$work/qt.syms"
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sort >"$work/ours.syms"
[ "$(wc -l <"$work/qt.syms")" -eq 21 ] || fail "expected 21 QPixmapCache symbols in libQt6Gui, found $(wc -l <"$work/qt.syms")"
diff "$work/qt.syms" "$work/ours.syms" || fail "libpixcache-qt6.so's exports differ from libQt6Gui's QPixmapCache symbols"
size=$(stat -c %s "$lib")
echo "21 symbols, all @@Qt_6; $((size / 1024)) KB"
pass=$((pass + 1))

cmake -S c-tests/qt6 -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" -DPIXCACHE_LINKED=ON \
    -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" -j2 >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
b="$work/build"
# The programs must not know pixcache: only the linked variant may name it.
# (Output to a file first: grep -q closing the pipe early would fail the pipeline under pipefail.)
ldd "$b/behaviour" "$b/widgets" >"$work/ldd-qt-only.txt"
if grep -q pixcache "$work/ldd-qt-only.txt"; then fail "the Qt-only programs link pixcache"; fi
export QT_QPA_PLATFORM=offscreen

# stats_line FILE: the "pixcache:" line of FILE, which must show calls served and hits.
stats_line() {
    local line
    line=$(grep '^pixcache: ' "$1" | grep -v 'built for' || true)
    [ "$(printf '%s\n' "$line" | grep -c .)" -eq 1 ] || fail "expected one 'pixcache:' statistics line in $1, got: $(cat "$1")"
    [[ "$line" =~ ^pixcache:\ [1-9][0-9]*\ calls,\ [1-9][0-9]*\ hits,\ [0-9]+\ misses,\ [1-9][0-9]*\ inserts ]] ||
        fail "the statistics show no traffic served by pixcache: $line"
    echo "$line"
}

echo "# behaviour: Qt's cache vs pixcache-run vs linked, transcripts compared"
"$b/behaviour" 100 2000 >"$work/qt.txt" 2>/dev/null
"$run" --stats "$b/behaviour" 100 2000 >"$work/preloaded.txt" 2>"$work/preloaded.err"
diff "$work/qt.txt" "$work/preloaded.txt" >"$work/diff.txt" || { head -20 "$work/diff.txt"; fail "behaviour differs through pixcache-run"; }
stats_line "$work/preloaded.err"
ldd "$b/behaviour_linked" >"$work/ldd-linked.txt"
grep -q libpixcache-qt6 "$work/ldd-linked.txt" || fail "behaviour_linked does not load libpixcache-qt6.so"
PIXCACHE_QT6_STATS=1 "$b/behaviour_linked" 100 2000 >"$work/linked.txt" 2>"$work/linked.err"
diff "$work/qt.txt" "$work/linked.txt" >"$work/diff.txt" || { head -20 "$work/diff.txt"; fail "behaviour differs when linked"; }
stats_line "$work/linked.err"
echo "identical: $(wc -l <"$work/qt.txt") lines"
pass=$((pass + 1))

echo "# lifecycle: application objects made, destroyed, made again elsewhere; workers; Qt vs pixcache-run"
for scenario in worker-total worker-flush before-app recreate recreate-widgets clear-between same-thread; do
    "$b/lifecycle" "$scenario" >"$work/life-qt.txt" 2>/dev/null
    "$run" "$b/lifecycle" "$scenario" >"$work/life-px.txt" 2>/dev/null
    diff "$work/life-qt.txt" "$work/life-px.txt" >"$work/diff.txt" ||
        { cat "$work/diff.txt"; fail "lifecycle $scenario differs through pixcache-run"; }
    grep -q '=0 .*=0 .*=0' "$work/life-qt.txt" && fail "lifecycle $scenario: Qt itself served nothing (a broken scenario)"
done
echo "7 scenarios identical"
pass=$((pass + 1))

echo "# idle trimming: Qt's 30 s timer, Qt's cache vs pixcache-run, five scenarios at once (about 35 s)"
for scenario in A B C D E; do
    "$b/idle_trim" "$scenario" >"$work/idle-qt-$scenario.txt" 2>/dev/null &
    "$run" "$b/idle_trim" "$scenario" >"$work/idle-px-$scenario.txt" 2>/dev/null &
done
wait
for scenario in A B C D E; do
    qt=$(cat "$work/idle-qt-$scenario.txt")
    px=$(cat "$work/idle-px-$scenario.txt")
    echo "Qt: $qt   pixcache-run: $px"
    [ -n "$qt" ] && [ "$qt" = "$px" ] || fail "idle trimming scenario $scenario differs through pixcache-run"
done
pass=$((pass + 1))

echo "# widgets: frames pixel for pixel, Qt's cache vs pixcache-run"
"$b/widgets" 24 >"$work/frames-qt.txt" 2>/dev/null
"$run" --stats "$b/widgets" 24 >"$work/frames-px.txt" 2>"$work/frames-px.err"
diff "$work/frames-qt.txt" "$work/frames-px.txt" || fail "frames differ through pixcache-run"
stats_line "$work/frames-px.err"
echo "identical: $(wc -l <"$work/frames-qt.txt") frames"
pass=$((pass + 1))

if command -v valgrind >/dev/null 2>&1; then
    echo "# widgets under valgrind memcheck, through pixcache-run (errors fail)"
    "$run" --inherit --stats valgrind -q --error-exitcode=99 --leak-check=no "$b/widgets" 4 \
        >"$work/frames-vg.txt" 2>"$work/frames-vg.err" || { tail -40 "$work/frames-vg.err"; fail "valgrind reported errors"; }
    head -4 "$work/frames-qt.txt" | diff - "$work/frames-vg.txt" || fail "frames differ under valgrind"
    stats_line "$work/frames-vg.err"
    pass=$((pass + 1))
else
    skip "the valgrind run of the widgets program: valgrind is not installed"
fi

echo "# threads: Qt's rule by default, every thread with --any-thread"
grep -q '^thread: find = 0$' "$work/preloaded.txt" || fail "an off-thread find was served by default"
"$run" --any-thread "$b/behaviour" 1 10 >"$work/any.txt" 2>/dev/null
grep -q '^thread: find = 1$' "$work/any.txt" || fail "--any-thread did not serve the other thread's find"
grep -q '^thread: insert = 1$' "$work/any.txt" || fail "--any-thread: the other thread's insert failed"
grep -q '^after the thread: limit = 1$' "$work/any.txt" || fail "--any-thread: the other thread's setCacheLimit was ignored"
echo "off-thread calls refused by default, served with --any-thread"
pass=$((pass + 1))

echo "# another Qt version, or one lacking a symbol: every call forwarded to Qt's own cache, one line says why"
PIXCACHE_QT6_QT_VERSION=6.99.0 "$run" --stats "$b/behaviour" 100 2000 >"$work/other.txt" 2>"$work/other.err"
diff "$work/qt.txt" "$work/other.txt" >/dev/null || fail "forwarding to Qt's cache changed the behaviour"
[ "$(grep -c '^pixcache: ' "$work/other.err")" -eq 1 ] || fail "expected exactly one pixcache line, got: $(grep '^pixcache' "$work/other.err")"
grep -q "^pixcache: libpixcache-qt6 was built for Qt 6\.[0-9]* but this program runs Qt 6\.99\.0; QPixmapCache stays Qt's own$" "$work/other.err" ||
    fail "no version-mismatch line: $(cat "$work/other.err")"
grep '^pixcache: ' "$work/other.err"
# A Qt lacking one of the symbols (a test seam hides it): every call forwarded, one line says
# which. Without Key::operator== (whose stand-in compares the pointers, as Qt's does) the
# transcript is Qt's; without clear() (whose calls then do nothing) the program still runs to
# its end: a missing symbol is never a jump to nowhere.
eq=_ZNK12QPixmapCache3KeyeqERKS0_
PIXCACHE_QT6_TEST_HIDE_SYMBOL=$eq "$run" --stats "$b/behaviour" 100 2000 >"$work/lacking.txt" 2>"$work/lacking.err"
diff "$work/qt.txt" "$work/lacking.txt" >/dev/null || fail "forwarding for a missing symbol changed the behaviour"
[ "$(grep -c '^pixcache: ' "$work/lacking.err")" -eq 1 ] || fail "expected exactly one pixcache line, got: $(grep '^pixcache' "$work/lacking.err")"
grep -q "^pixcache: Qt 6\.[0-9.]* lacks QPixmapCache symbols ($eq); QPixmapCache stays Qt's own (calls to those do nothing)$" "$work/lacking.err" ||
    fail "no missing-symbol line: $(cat "$work/lacking.err")"
grep '^pixcache: ' "$work/lacking.err"
PIXCACHE_QT6_TEST_HIDE_SYMBOL=_ZN12QPixmapCache5clearEv "$run" "$b/behaviour" 10 200 >"$work/noclear.txt" 2>"$work/noclear.err" ||
    fail "without Qt's clear() the program did not run to its end (status $?): $(tail -3 "$work/noclear.err")"
[ "$(tail -n1 "$work/noclear.txt")" = done ] || fail "without Qt's clear() the transcript stops early"
echo "a missing symbol: forwarded, its calls do nothing, the program runs to its end"
pass=$((pass + 1))

echo "# children: no inherited preload unless --inherit; --check"
child=$("$run" bash -c 'printf %s "${LD_PRELOAD:-}"')
[ -z "$child" ] || fail "a child inherited LD_PRELOAD=$child"
child=$("$run" --inherit bash -c 'printf %s "${LD_PRELOAD:-}"')
[[ "$child" == *libpixcache-qt6.so* ]] || fail "--inherit: the child did not get the preload ($child)"
# A run nested in another gets its own options only (no --any-thread, no --stats leaking in).
"$run" --any-thread --stats --inherit "$run" "$b/behaviour" 1 10 >"$work/nested.txt" 2>"$work/nested.err"
grep -q '^thread: find = 0$' "$work/nested.txt" || fail "a nested pixcache-run inherited --any-thread"
grep -q '^pixcache: ' "$work/nested.err" && fail "a nested pixcache-run inherited --stats: $(cat "$work/nested.err")"
"$run" --check "$b/widgets" || fail "--check says the widgets program is not served"
# An inherited preload does not make a program look like a Qt program.
if LD_PRELOAD="$lib" "$run" --check /bin/sh >/dev/null 2>&1; then fail "--check counts an inherited preload"; fi
if "$run" --check /bin/sh >"$work/check.txt"; then fail "--check says /bin/sh is served"; fi
grep -q '^no: /bin/sh: does not load libQt6Gui' "$work/check.txt" || fail "--check /bin/sh: $(cat "$work/check.txt")"
cat "$work/check.txt"
pass=$((pass + 1))

echo "# a real application: Qt Designer under Xvfb, through pixcache-run"
designer=/usr/lib/qt6/bin/designer
if ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null || [ ! -x "$designer" ]; then
    skip "the real-application run: needs Xvfb, xdotool and designer-qt6 (apt-get install xvfb xauth xdotool designer-qt6)"
else
    # Xvfb picks a free display number and writes it to fd 3 once it accepts connections.
    Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>"$work/display" >"$work/xvfb.log" 2>&1 &
    xvfb=$!
    trap 'kill $xvfb 2>/dev/null; rm -rf "$work"' EXIT
    for _ in $(seq 1 100); do [ -s "$work/display" ] && break; sleep 0.1; done
    [ -s "$work/display" ] || { cat "$work/xvfb.log"; fail "Xvfb did not start"; }
    display=":$(head -n1 "$work/display")"
    (
        export DISPLAY="$display" QT_QPA_PLATFORM=xcb
        "$run" --stats "$designer" >"$work/designer.out" 2>"$work/designer.err" &
        app=$!
        win=$(timeout 30 xdotool search --sync --onlyvisible --name "Qt Designer" | head -1)
        [ -n "$win" ] || { kill "$app"; fail "Qt Designer showed no window"; }
        sleep 2
        # Qt Designer opens with its "New Form" dialog: close it, then quit with Ctrl+Q.
        dialog=$(xdotool search --onlyvisible --name "New Form" | head -1 || true)
        if [ -n "$dialog" ]; then xdotool windowfocus --sync "$dialog" key Escape; sleep 1; fi
        xdotool windowfocus --sync "$win" key ctrl+q
        for _ in $(seq 1 40); do kill -0 "$app" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$app" 2>/dev/null; then kill "$app"; fail "Qt Designer did not quit"; fi
        wait "$app" || fail "Qt Designer exited with status $?: $(tail -5 "$work/designer.err")"
    )
    stats_line "$work/designer.err"
    kill "$xvfb" 2>/dev/null || true
    pass=$((pass + 1))
fi

echo "$pass passed, 0 failed"
