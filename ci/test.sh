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
    need chromium chromium
    need chromedriver chromium-driver
    if [ ${#need_apt[@]} -gt 0 ]; then
        echo "installing: ${need_apt[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    fi
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
    cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
    rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
    # The CLI must match the wasm-bindgen crate exactly; --locked would pin a dependency version
    # that the crates.io index does not always have.
    local want
    want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
    [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$want" ] ||
        cargo install wasm-bindgen-cli --version "$want"
}

part_fmt() { cargo fmt --all -- --check; }
part_clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }
part_test() {
    cargo nextest run --workspace --locked --no-fail-fast && cargo test --workspace --doc --locked
}

# The dashboard in a real browser: builds the WebAssembly and the backend, lints the wasm build
# and the browser tests (off by default in the workspace), then runs them one at a time.
part_dashboard() {
    cargo build -p backend --locked &&
        dashboard/build-web.sh &&
        cargo clippy -p dashboard --target wasm32-unknown-unknown --locked -- -D warnings &&
        cargo clippy -p dashboard-serve --features e2e --all-targets --locked -- -D warnings &&
        cargo nextest run -p dashboard-serve --features e2e --test browser --locked \
            --no-fail-fast --test-threads 1 &&
        cat "$CARGO_TARGET_DIR/e2e-artifacts/render-times.json"
}

all_parts=(fmt clippy test dashboard)
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
    if [ "$part" = test ]; then grep -E '^\s+Summary|^test result' "$logs/$part.log" | tail -n 3; fi
    echo "$part: $status (${secs}s)"
    if [ "$status" = FAILED ]; then tail -n 60 "$logs/$part.log"; fi
done
echo "total time: $(( $(date +%s) - start_all ))s; logs in $logs"
echo "parts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
