#!/usr/bin/env bash
# Runs the whole system locally: builds in release mode and starts the backend on
# 127.0.0.1:8000 with the dashboard on 127.0.0.1:1337 (one process, both doors behind the same
# guards). Ctrl+C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")"

PORT="${PORT:-8000}"
DASHBOARD_PORT="${DASHBOARD_PORT:-1337}"
command -v cargo >/dev/null 2>&1 || {
    echo "start.sh: cargo not found; install Rust from https://rustup.rs and run this again" >&2
    exit 1
}
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "start.sh: port $PORT is already in use; stop what runs there or set PORT=..." >&2
    exit 1
fi

echo "building (release)..."
cargo build --release --locked -p backend -p agent || {
    echo "start.sh: the build failed; the messages above say why" >&2
    exit 1
}
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
dist="$target_dir/dashboard-dist"
# The dashboard needs the wasm32 target and a wasm-bindgen CLI of exactly the version in
# Cargo.lock, as start.bat installs them.
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    echo "installing wasm-bindgen-cli $want (once)..."
    cargo install wasm-bindgen-cli --version "$want" ||
        echo "start.sh: could not install wasm-bindgen-cli $want; see above" >&2
fi
dashboard=yes
CARGO_TARGET_DIR="$target_dir" dashboard/build-web.sh "$dist" || {
    echo "start.sh: the dashboard was not built (see above); starting the backend alone" >&2
    dashboard=no
}

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ "$dashboard" = yes ]; then
    export DASHBOARD_ADDR="127.0.0.1:$DASHBOARD_PORT" DASHBOARD_DIST="$dist"
fi
PORT="$PORT" "$target_dir/release/backend" &
pids+=($!)

for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.2
done
cat <<TXT

  Dashboard:  http://127.0.0.1:$DASHBOARD_PORT   (built: $dashboard)
  API:        http://127.0.0.1:$PORT   (OpenAPI: http://127.0.0.1:$PORT/openapi.json)
  Live feed:  ws://127.0.0.1:$PORT/ws
  Health:     http://127.0.0.1:$PORT/healthz   Metrics: http://127.0.0.1:$PORT/metrics

  Start an agent on this machine (another terminal):
    API_URL=http://127.0.0.1:$PORT $target_dir/release/agent

  Ctrl+C stops it.
TXT
wait -n "${pids[@]}"
