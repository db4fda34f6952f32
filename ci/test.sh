#!/usr/bin/env bash
# The one command that runs every test, on a fresh machine too: it installs what the tests need
# (Debian packages, rustup components), then runs each part and prints one summary line per part.
# Usage: ci/test.sh            (all parts)
#        ci/test.sh fmt test   (only the named parts)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Reused across clones so that CI does not rebuild the world each time.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/telemetry-pipeline/target}"
export CARGO_TERM_COLOR=never
# Snapshots are compared, never written, and redacted fields must still match in full.
export INSTA_UPDATE=no INSTA_REQUIRE_FULL_MATCH=1
logs="${TEST_LOG_DIR:-$CARGO_TARGET_DIR/test-logs}"
mkdir -p "$logs"

need_apt=()
need() { command -v "$1" >/dev/null 2>&1 || need_apt+=("$2"); }

setup() {
    need cc gcc
    need sqlite3 sqlite3
    need x86_64-w64-mingw32-gcc gcc-mingw-w64-x86-64
    need musl-gcc musl-tools
    if [ ${#need_apt[@]} -gt 0 ]; then
        echo "installing: ${need_apt[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    fi
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
    rustup target add x86_64-pc-windows-gnu x86_64-unknown-linux-musl
    cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
}

part_fmt() { cargo fmt --all -- --check; }
part_clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }
part_test() {
    cargo nextest run --workspace --exclude sim --locked --no-fail-fast \
        && cargo test --workspace --doc --locked
}
# The simulator's scenarios at CI size, one at a time: several run on real time with timing
# checks (back-off bounds) that should not compete with each other for two cores.
part_sim() { cargo test -p sim --locked -- --test-threads=1; }

# The Windows agent must keep building: a change that breaks it fails here, not on a user's PC.
part_windows() { cargo build --locked --release -p agent --target x86_64-pc-windows-gnu; }

all_parts=(fmt clippy test sim windows)
parts=("${@:-${all_parts[@]}}")

passed=0 failed=0 failed_names=()
start_all=$(date +%s)
if ! setup >"$logs/setup.log" 2>&1; then
    echo "setup: FAILED (see $logs/setup.log)"; tail -n 30 "$logs/setup.log"; exit 1
fi
echo "setup: ok"
for part in "${parts[@]}"; do
    start=$(date +%s)
    if "part_$part" >"$logs/$part.log" 2>&1; then
        status=ok; passed=$((passed + 1))
    else
        status=FAILED; failed=$((failed + 1)); failed_names+=("$part")
    fi
    secs=$(( $(date +%s) - start ))
    # The test runner's own closing lines, then ours.
    if [ "$part" = test ] || [ "$part" = sim ]; then grep -E '^\s+Summary|^test result' "$logs/$part.log" | tail -n 3; fi
    echo "$part: $status (${secs}s)"
    if [ "$status" = FAILED ]; then tail -n 60 "$logs/$part.log"; fi
done
echo "total time: $(( $(date +%s) - start_all ))s; logs in $logs"
echo "parts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
