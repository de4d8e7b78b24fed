#!/usr/bin/env bash
# Runs every code block of README.md as a user would, so that the README cannot drift.
#
# Each fenced block must be preceded by a marker line saying what to do with it (a block without
# one fails this test):
#   <!-- readme-test: commands -->        the two top commands: `scripts/demo.sh` is run, and
#                                         `scripts/test.sh` (the command running this) must be
#                                         what .ci/run runs
#   <!-- readme-test: file PATH [qt] -->  written to PATH in the user's working directory
#   <!-- readme-test: run repo [qt] -->   run verbatim (bash -e) from the repository's root
#   <!-- readme-test: run work [qt] -->   run verbatim from the user's working directory
#   <!-- readme-test: compile [qt] -->    a C++ translation unit: compiled (-c) against the
#                                         installed pixcache (and Qt 6 Widgets with `qt`)
#   <!-- readme-test: performance -->     a table whose rows must equal docs/PERFORMANCE.md's
#   <!-- readme-test: fragment -->        not run (its text must say it is a fragment)
# Blocks run in order in one shell, as in one terminal session, with HOME set to a fresh
# directory: `~/.local` is a prefix of this test's own. Blocks marked `qt` need Qt 6 (skipped
# loudly without it; under CI=true that is a failure) and run with QT_QPA_PLATFORM=offscreen.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
readme="$repo/README.md"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
fail() { echo "test-readme: $*" >&2; exit 1; }

lines=$(wc -l <"$readme")
[ "$lines" -le 310 ] || fail "README.md has $lines lines; keep it to about 300 (details go to docs/)"

# The minimum Rust version the README states is Cargo.toml's.
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
grep -q "Rust \*\*$msrv or newer\*\*" "$readme" || fail "README.md does not state 'Rust **$msrv or newer**' (Cargo.toml's rust-version)"

have_qt=yes
pkg-config --exists Qt6Widgets 2>/dev/null || have_qt=no
if [ "$have_qt" = no ]; then
    echo "SKIPPED: Qt 6 is not installed (apt-get install qt6-base-dev); the README's Qt blocks did not run."
    [ "${CI:-}" != "true" ] || fail "CI must run the README's Qt blocks"
fi

# Split the README into blocks: $scratch/blocks/NNN.{marker,body}.
mkdir -p "$scratch/blocks"
awk -v dir="$scratch/blocks" '
    /^<!-- readme-test: .* -->$/ { marker = $0; sub(/^<!-- readme-test: /, "", marker); sub(/ -->$/, "", marker); next }
    /^```/ && !inside {
        inside = 1; n++
        name = sprintf("%s/%03d", dir, n)
        printf "%s\n", (marker == "" ? "MISSING line " NR : marker) > (name ".marker")
        printf "" > (name ".body")
        marker = ""; next
    }
    /^```/ && inside { inside = 0; next }
    inside { print > (name ".body"); next }
    /^[^[:space:]]/ && !/^<!--/ && !/^\|/ { marker = "" }
    /^\|/ && marker != "performance" { marker = "" }
    /^\|/ && marker == "performance" { print > (dir "/performance.rows") }
' "$readme"

work="$scratch/work"
mkdir -p "$work" "$scratch/home"
script="$scratch/session.sh"
{
    echo 'set -euo pipefail'
    echo "export HOME='$scratch/home' QT_QPA_PLATFORM=offscreen"
    # cargo and rustup keep their own homes (the crates already downloaded, the toolchains).
    echo "export CARGO_HOME='${CARGO_HOME:-$HOME/.cargo}' RUSTUP_HOME='${RUSTUP_HOME:-$HOME/.rustup}'"
} >"$script"

blocks=0
for marker_file in "$scratch"/blocks/*.marker; do
    [ -e "$marker_file" ] || continue
    body="${marker_file%.marker}.body"
    read -r kind arg1 arg2 <"$marker_file" || true
    blocks=$((blocks + 1))
    qt=no
    { [ "${arg1:-}" = qt ] || [ "${arg2:-}" = qt ]; } && qt=yes
    if [ "$qt" = yes ] && [ "$have_qt" = no ]; then
        echo "SKIPPED (no Qt 6): README block $(basename "${body%.body}") ($kind ${arg1:-})"
        continue
    fi
    case "$kind" in
    MISSING)
        fail "README.md's code block at line ${arg2:-?} has no <!-- readme-test: ... --> marker (run it here or mark it a fragment)" ;;
    commands)
        while read -r cmd _; do
            case "$cmd" in
            "" | "#"*) ;;
            scripts/test.sh) grep -q "scripts/test.sh" .ci/run || fail ".ci/run does not run scripts/test.sh, the README's test command" ;;
            *) printf 'cd %q\necho "+ %s"\n%s\n' "$repo" "$cmd" "$cmd" >>"$script" ;;
            esac
        done <"$body" ;;
    file)
        dest="$work/$arg1"
        mkdir -p "$(dirname "$dest")"
        cp "$body" "$dest" ;;
    run)
        case "$arg1" in
        repo) printf 'cd %q\n' "$repo" >>"$script" ;;
        work) printf 'cd %q\n' "$work" >>"$script" ;;
        *) fail "unknown run directory '$arg1' in $(cat "$marker_file")" ;;
        esac
        # Echo each command, then run the block verbatim.
        while IFS= read -r line; do printf 'echo %q\n' "+ $line" >>"$script"; done <"$body"
        cat "$body" >>"$script" ;;
    compile)
        unit="$scratch/unit$blocks.cpp"
        cp "$body" "$unit"
        flags='$(pkg-config --cflags pixcache)'
        [ "$qt" = yes ] && flags="$flags \$(pkg-config --cflags Qt6Widgets) -fPIC"
        printf 'echo "+ compile README block %s"\nc++ -std=c++17 -Wall -Wextra -Werror -c %q -o %q %s\n' \
            "$blocks" "$unit" "${unit%.cpp}.o" "$flags" >>"$script" ;;
    fragment)
        grep -qi fragment "$body" || fail "a block marked as a fragment must say so in its text" ;;
    *)
        fail "unknown README marker: $(cat "$marker_file")" ;;
    esac
done
[ "$blocks" -ge 8 ] || fail "found only $blocks marked blocks in README.md"

if grep -q '^<!-- readme-test: performance -->$' "$readme"; then
    [ -s "$scratch/blocks/performance.rows" ] || fail "no table follows the performance marker"
fi
# The performance table: each row (workload, Qt, pixcache, ratio) must be a row of
# docs/PERFORMANCE.md's tables, with the same cells, and the ratio must be pixcache / Qt.
if [ -s "$scratch/blocks/performance.rows" ]; then
    norm() { sed 's/\*\*//g; s/[[:space:]]*|[[:space:]]*/|/g; s/^|//; s/|$//'; }
    norm <"$scratch/blocks/performance.rows" | tail -n +3 >"$scratch/readme.rows"
    norm <docs/PERFORMANCE.md >"$scratch/perf.rows"
    while IFS='|' read -r name qt px ratio _; do
        grep -qxF "$name|$qt|$px|$ratio" <(cut -d'|' -f1-4 "$scratch/perf.rows") ||
            fail "README performance row '$name | $qt | $px | $ratio' is not a row of docs/PERFORMANCE.md"
        want=$(awk -v q="$qt" -v p="$px" 'BEGIN { printf "%.2fx", p / q }')
        [ "$want" = "$ratio" ] || fail "README performance row '$name': $px / $qt is $want, not $ratio"
    done <"$scratch/readme.rows"
fi

echo "--- running the README's blocks (HOME=$scratch/home)"
bash "$script"
echo "README: $blocks blocks checked, every one ran or compiled"
