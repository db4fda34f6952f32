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
    need /usr/lib/wine/wine64 wine64
    need chromium chromium
    need chromedriver chromium-driver
    need nginx nginx
    need wixl wixl
    # The TLS tests make their CAs and certificates with it.
    need openssl openssl
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
    if [ ${#need_apt[@]} -gt 0 ]; then
        echo "installing: ${need_apt[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    fi
    # The alert e-mail tests send to a real SMTP server.
    python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install -q aiosmtpd
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
    rustup target add x86_64-pc-windows-gnu x86_64-unknown-linux-musl wasm32-unknown-unknown
    cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
    # The CLI must match the wasm-bindgen crate exactly; --locked would pin a dependency version
    # that the crates.io index does not always have.
    local want
    want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
    [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$want" ] ||
        cargo install wasm-bindgen-cli --version "$want"
}

# Every cargo call selects the whole workspace with the same features: cargo resolves features
# per selection, so `-p x` here and `--workspace` there would compile shared dependencies twice.
# The parts then pick their tests with nextest filters from the one build.
ws=(--workspace --locked --features tests/e2e,tests/docker)
tests() { cargo nextest run "${ws[@]}" --no-fail-fast "$@"; }

part_fmt() { cargo fmt --all -- --check; }
part_clippy() {
    cargo clippy "${ws[@]}" --all-targets -- -D warnings &&
        cargo clippy -p dashboard --target wasm32-unknown-unknown --locked -- -D warnings
}
part_test() {
    tests -E 'not (package(tests) | package(loadtest) | package(sim) | binary(browser))' &&
        cargo test "${ws[@]}" --doc
}
# The backend's API suite the way plain `cargo test` runs it, as most users and pipelines will:
# every test a thread of one process, sharing its ports, log capture, two cores and a throwaway
# PostgreSQL that the binary starts itself on first use. nextest (one process per test) cannot
# show a race between tests over that shared state; this part can.
part_threads() { env -u TEST_DATABASE_URL cargo test "${ws[@]}" --test api; }

# The simulator's scenarios at CI size, one at a time: several run on real time with timing
# checks (back-off bounds) that should not compete with each other for two cores.
part_sim() { tests -E 'package(sim)' --test-threads 1; }

# The Windows agent must keep building and starting: a change that breaks it fails here, not on a
# user's PC. Wine runs one real tick of the exe against a real backend (the debug build, shared
# with the tests).
part_windows() {
    cargo build --locked -p agent --target x86_64-pc-windows-gnu &&
        cargo test "${ws[@]}" --no-run &&
        ./ci/wine-check.sh
}

# The shipped container: testcontainers against the image, then docker compose itself, then the
# shipped nginx config in front of the built dashboard.
part_docker() {
    docker info >/dev/null 2>&1 || { echo "docker engine not reachable"; return 1; }
    cargo build --locked --release -p backend --target x86_64-unknown-linux-musl &&
        tests -E 'package(tests) & not binary(browser)' &&
        ./ci/compose-check.sh &&
        dashboard/build-web.sh &&
        ./ci/nginx-check.sh
}

# The load tester's end-to-end tests, against the backend in their own process.
part_loadtest() { tests -E 'package(loadtest)'; }

# The dashboard in a real browser: the WebAssembly build, then the browser tests one at a time
# against the real backend.
part_dashboard() {
    dashboard/build-web.sh &&
        tests -E 'binary_id(tests::browser)' --test-threads 1 &&
        cat "$CARGO_TARGET_DIR/e2e-artifacts/render-times.json"
}

all_parts=(fmt clippy test threads sim loadtest dashboard windows docker)
parts=("${@:-${all_parts[@]}}")

passed=0 failed=0 failed_names=()
start_all=$(date +%s)
if ! setup >"$logs/setup.log" 2>&1; then
    echo "setup: FAILED (see $logs/setup.log)"; tail -n 30 "$logs/setup.log"; exit 1
fi
echo "setup: ok"
# The storage suite and the replica tests run against a real PostgreSQL.
if [ -z "${TEST_DATABASE_URL:-}" ]; then
    if ! pg_env=$(ci/postgres.sh start 2>"$logs/postgres.log"); then
        echo "postgres: FAILED to start (see $logs/postgres.log)"; cat "$logs/postgres.log"; exit 1
    fi
    eval "$pg_env"
    export TEST_DATABASE_URL PG_TEST_DIR
    trap 'ci/postgres.sh stop' EXIT
fi
for part in "${parts[@]}"; do
    start=$(date +%s)
    if "part_$part" >"$logs/$part.log" 2>&1; then
        status=ok; passed=$((passed + 1))
    else
        status=FAILED; failed=$((failed + 1)); failed_names+=("$part")
    fi
    secs=$(( $(date +%s) - start ))
    # The test runner's own closing lines, then ours.
    grep -E '^\s+Summary' "$logs/$part.log" || true
    echo "$part: $status (${secs}s)"
    if [ "$status" = FAILED ]; then tail -n 60 "$logs/$part.log"; fi
done
echo "total time: $(( $(date +%s) - start_all ))s; logs in $logs"
echo "parts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
