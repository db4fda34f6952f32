#!/usr/bin/env bash
# Smoke-runs the cross-compiled Windows agent under Wine against a real backend: one tick with
# `--once` must arrive as a windows metric row plus process rows.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
exe="${AGENT_EXE:-$target/x86_64-pc-windows-gnu/debug/agent.exe}"
backend="${BACKEND_BIN:-$target/debug/backend}"
[ -f "$exe" ] && [ -x "$backend" ] || { echo "build agent.exe and the backend first"; exit 1; }

work=$(mktemp -d)
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
    WINEPREFIX="$work/prefix" /usr/lib/wine/wineserver64 -k 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

x86_64-w64-mingw32-gcc -shared -o "$work/bcryptprimitives.dll" ci/wine/bcryptprimitives.c -ladvapi32
cp "$exe" "$work/agent.exe"
API_TOKEN=wine-token HMAC_SECRET=wine-secret PORT=$port DB_PATH="$work/t.db" "$backend" \
    >"$work/backend.log" 2>&1 &
pid=$!
sleep 1

export WINEDEBUG=-all WINEPREFIX="$work/prefix"
API_URL="http://127.0.0.1:$port" API_TOKEN=wine-token HMAC_SECRET=wine-secret AGENT_ID=wine-pc \
    timeout 300 /usr/lib/wine/wine64 "$work/agent.exe" --once

API="http://127.0.0.1:$port" python3 - <<'PY'
import json, os, urllib.request
api = os.environ["API"]
rows = json.load(urllib.request.urlopen(api + "/api/events?agent_id=wine-pc&limit=50"))
metrics = [r for r in rows if r["event_type"] == "metric"]
procs = [r for r in rows if r["event_type"] == "proc"]
assert len(metrics) == 1 and metrics[0]["platform"] == "windows", rows
assert 0 <= metrics[0]["cpu"] <= 1 and metrics[0]["mem_total"] >= metrics[0]["mem_free"] > 0
assert procs and all(p["proc_name"] and 0 <= p["cpu"] <= 1 for p in procs), procs
print(f"agent.exe under Wine delivered 1 metric row and {len(procs)} process rows")
PY

# The service: installed with a config file (a service inherits no shell environment), it runs
# the agent, which keeps its queue and its bounded log under %ProgramData%; uninstalling stops
# and removes it and leaves the queue. Wine's service manager does not keep recovery actions, so
# `install` warns about them here (on Windows they are set; see the README).
cat >"$work/agent.toml" <<TOML
api_url = "http://127.0.0.1:$port"
api_token = "wine-token"
hmac_secret = "wine-secret"
agent_id = "wine-service"
interval_seconds = 1
TOML
(cd "$work" && timeout 120 /usr/lib/wine/wine64 agent.exe --config agent.toml install)
API="http://127.0.0.1:$port" python3 - <<'PY'
import json, os, time, urllib.request
api = os.environ["API"]
for _ in range(120):
    rows = json.load(urllib.request.urlopen(api + "/api/events?agent_id=wine-service&limit=5"))
    if rows:
        break
    time.sleep(1)
assert rows, "the service sent nothing within two minutes"
print("the agent's service under Wine delivered its batches")
PY
# Wine starts a service without %ProgramData% in its environment, so there the agent keeps its
# data beside the executable: the log is looked for in both places.
log=$(find "$work" -path '*/logs/agent.log' | head -n 1)
data=$(dirname "$(dirname "${log:-/none/x}")")
[ -n "$log" ] && grep -q "agent starting" "$log" && [ -d "$data/queue" ] ||
    { echo "no log or queue under %ProgramData%\\telemetry-agent"; exit 1; }
(cd "$work" && timeout 120 /usr/lib/wine/wine64 agent.exe uninstall)
if timeout 60 /usr/lib/wine/wine64 reg query 'HKLM\System\CurrentControlSet\Services\telemetry-agent' >/dev/null 2>&1; then
    echo "the service is still registered after uninstall"; exit 1
fi
[ -d "$data/queue" ] || { echo "uninstall removed the queue"; exit 1; }
echo "agent.exe install/uninstall under Wine: service ran, log and queue in $data"
