#!/usr/bin/env bash
# Builds the dashboard into a folder of static files, offline: cargo for wasm32, then
# wasm-bindgen (the CLI version must equal the wasm-bindgen crate in Cargo.lock).
# Usage: dashboard/build-web.sh [out-dir]   (default: <target dir>/dashboard-dist)
# API_BASE_URL, when set, is compiled in (see README); no token ever is.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="${1:-$target/dashboard-dist}"
want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$want" ]; then
    echo "wasm-bindgen $want is needed (found '${have:-none}'):" \
        "cargo install wasm-bindgen-cli --version $want" >&2
    exit 1
fi
cargo build -p dashboard --target wasm32-unknown-unknown --profile wasm-release --locked
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name app \
    "$target/wasm32-unknown-unknown/wasm-release/dashboard.wasm"
cp dashboard/web/index.html dashboard/web/style.css dashboard/web/favicon.svg "$out/"
echo "built $out: app_bg.wasm $(stat -c %s "$out/app_bg.wasm") bytes," \
    "gzip $(gzip -9c "$out/app_bg.wasm" | wc -c) bytes"
