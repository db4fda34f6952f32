#!/usr/bin/env bash
# Runs the whole system locally: builds in release mode and starts the backend on
# 127.0.0.1:8000. Ctrl+C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")"

PORT="${PORT:-8000}"
command -v cargo >/dev/null 2>&1 || {
    echo "start.sh: cargo not found; install Rust from https://rustup.rs and run this again" >&2
    exit 1
}
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "start.sh: port $PORT is already in use; stop what runs there or set PORT=..." >&2
    exit 1
fi

echo "building (release)..."
cargo build --release --locked -p backend || {
    echo "start.sh: the build failed; the messages above say why" >&2
    exit 1
}
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

PORT="$PORT" "$target_dir/release/backend" &
pids+=($!)

for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.2
done
cat <<TXT

  API:        http://127.0.0.1:$PORT   (OpenAPI: http://127.0.0.1:$PORT/openapi.json)
  Live feed:  ws://127.0.0.1:$PORT/ws
  Health:     http://127.0.0.1:$PORT/healthz   Metrics: http://127.0.0.1:$PORT/metrics

  Ctrl+C stops it.
TXT
wait -n "${pids[@]}"
