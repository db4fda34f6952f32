#!/usr/bin/env bash
# Smoke-runs the cross-compiled Windows agent under Wine against a real backend serving HTTPS
# with a certificate of a private CA (made here as the README says), which the agent trusts
# through CA_CERT: one tick with `--once` must arrive as a windows metric row plus process rows.
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
(cd "$work" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=Wine test CA" -keyout ca.key -out ca.pem &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout server.key -out server.csr &&
    printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
        'extendedKeyUsage=serverAuth' >server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem) >"$work/openssl.log" 2>&1 ||
    { cat "$work/openssl.log"; exit 1; }
api="https://127.0.0.1:$port"
# The CA as the agent.exe under Wine names it (Wine's Z: is /).
ca="Z:$work/ca.pem"
export SSL_CERT_FILE="$work/ca.pem"  # what Python's urllib trusts when it reads the backend
TLS_CERT="$work/server.pem" TLS_KEY="$work/server.key" API_TOKEN=wine-token HMAC_SECRET=wine-secret \
    PORT=$port DB_PATH="$work/t.db" "$backend" >"$work/backend.log" 2>&1 &
pid=$!
sleep 1

export WINEDEBUG=-all WINEPREFIX="$work/prefix"
API_URL="$api" CA_CERT="$ca" API_TOKEN=wine-token HMAC_SECRET=wine-secret AGENT_ID=wine-pc \
    timeout 300 /usr/lib/wine/wine64 "$work/agent.exe" --once

API="$api" python3 - <<'PY'
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

# The machine's detail from the Windows code paths (per-core times from NtQuerySystemInformation,
# commit from GetPerformanceInfo, services from the service manager), recorded by a stand-in
# backend that says it takes every part. Wine has no Event Log: the agent says so once and goes on.
detail_port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
python3 - "$detail_port" "$work/bodies.jsonl" <<'PY' &
import http.server, sys
class Backend(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Telemetry-Ingest", "4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(b'{"status":"ok"}')
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as f:
            f.write(body + b"\n")
        self.answer(b'{"stored":1}')
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Backend).serve_forever()
PY
detail_pid=$!
sleep 1
API_URL="http://127.0.0.1:$detail_port" AGENT_ID=wine-detail INTERVAL_SECONDS=1 \
    DATA_DIR='C:\agent-detail' timeout 30 /usr/lib/wine/wine64 "$work/agent.exe" 2>"$work/detail.log" || true
kill "$detail_pid"
BODIES="$work/bodies.jsonl" LOG="$work/detail.log" python3 - <<'PY'
import json, os
bodies = [json.loads(line) for line in open(os.environ["BODIES"])]
log = open(os.environ["LOG"], errors="replace").read()
assert len(bodies) >= 5, (len(bodies), log)
for b in bodies:
    host = b["host"]
    assert host["cores"] and all(0 <= c <= 1 for c in host["cores"]), host
    assert 0 < host["commit_used"] <= host["commit_limit"], host
services = bodies[0].get("services")
assert services and all(s["name"] and s["state"] and s.get("start") == "auto" for s in services), bodies[0]
assert all("services" not in b for b in bodies[1:]), "an unchanged list was sent again"
assert log.count("the Event Log cannot be read here") == 1 and "panicked" not in log, log
print(f"agent.exe under Wine sent {len(host['cores'])} cores and commit in each of {len(bodies)} "
      f"batches, and {len(services)} automatic services in the first")
PY

# The service: installed with a config file (a service inherits no shell environment), it runs
# the agent, which keeps its queue and its bounded log under %ProgramData%; uninstalling stops
# and removes it and leaves the queue. Wine's service manager does not keep recovery actions, so
# `install` warns about them here (on Windows they are set; see the README).
cat >"$work/agent.toml" <<TOML
api_url = "$api"
ca_cert = '$ca'
api_token = "wine-token"
hmac_secret = "wine-secret"
agent_id = "wine-service"
interval_seconds = 1
TOML
# Waits until the backend holds a batch of agent $1, sent by what $2 names.
wait_for_batches() {
    AGENT="$1" WHAT="$2" API="$api" python3 - <<'PY'
import json, os, time, urllib.request
url = os.environ["API"] + "/api/events?limit=1&agent_id=" + os.environ["AGENT"]
for _ in range(120):
    if json.load(urllib.request.urlopen(url)):
        break
    time.sleep(1)
else:
    raise SystemExit(os.environ["WHAT"] + " sent nothing within two minutes")
print(os.environ["WHAT"] + " under Wine delivered its batches")
PY
}
# The data folder holding the agent's log, found under $1: Wine starts a service with or
# without %ProgramData% in its environment, so the folder may also sit beside the executable.
data_dir_under() {
    local log
    log=$(find "$1" -path '*/logs/agent.log' | head -n 1)
    [ -n "$log" ] && grep -q "agent starting" "$log" && dirname "$(dirname "$log")"
}
service_gone() {
    ! timeout 60 /usr/lib/wine/wine64 reg query 'HKLM\System\CurrentControlSet\Services\telemetry-agent' >/dev/null 2>&1 ||
        { echo "the service is still registered after $1"; exit 1; }
}
(cd "$work" && timeout 120 /usr/lib/wine/wine64 agent.exe --config agent.toml install)
wait_for_batches wine-service "the agent's service"
data=$(data_dir_under "$work") && [ -d "$data/queue" ] ||
    { echo "no log or queue under %ProgramData%\\telemetry-agent"; exit 1; }
(cd "$work" && timeout 120 /usr/lib/wine/wine64 agent.exe uninstall)
service_gone uninstall
[ -d "$data/queue" ] || { echo "uninstall removed the queue"; exit 1; }
echo "agent.exe install/uninstall under Wine: service ran, log and queue in $data"

# The MSI (Debian's wixl, from agent/msi/agent.wxs), in a prefix of its own: a silent install
# with the settings as properties, an upgrade in place that passes none and keeps them, and an
# uninstall that removes the service and the executable and leaves the queue.
command -v wixl >/dev/null || { echo "wixl is missing: apt-get install wixl"; exit 1; }
wxs="$(pwd)/agent/msi/agent.wxs"
for v in 0.1.0 0.1.1; do
    # wixl takes sources relative to where it runs.
    (cd "$work" && wixl -a x64 -D Version=$v -D AgentExe=agent.exe -o "agent-$v.msi" "$wxs")
done
export WINEPREFIX="$work/msi-prefix"
timeout 120 /usr/lib/wine/wine64 cmd /c exit >/dev/null 2>&1
# Wine lacks the ProcessPrng the exe imports; under Program Files only the system folder helps.
cp "$work/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
msi() { (cd "$work" && timeout 300 /usr/lib/wine/wine64 msiexec "$@"); }
starts() { find "$WINEPREFIX/drive_c" -path '*/logs/agent.log' -exec grep -h "agent starting agent_id=wine-msi api_url=$api" {} + 2>/dev/null | wc -l; }
msi /i agent-0.1.0.msi /qn API_URL="$api" CA_CERT="$ca" API_TOKEN=wine-token \
    HMAC_SECRET=wine-secret AGENT_ID=wine-msi SERVICES=none EVENT_LOGS="System,Setup" \
    EVENT_SOURCES="Service Control Manager"
wait_for_batches wine-msi "the MSI's service"
[ -f "$WINEPREFIX/drive_c/Program Files/Telemetry Agent/agent.exe" ] ||
    { echo "agent.exe is not under Program Files"; exit 1; }
before=$(starts)
msi /i agent-0.1.1.msi /qn
settings=$(timeout 60 /usr/lib/wine/wine64 reg query 'HKLM\SOFTWARE\telemetry-agent' | tr -d '\r')
for want in "API_URL    REG_SZ    $api" "API_TOKEN    REG_SZ    wine-token" \
    "AGENT_ID    REG_SZ    wine-msi" "SERVICES    REG_SZ    none" "EVENT_LOGS    REG_SZ    System,Setup" \
    "EVENT_SOURCES    REG_SZ    Service Control Manager" "CA_CERT    REG_SZ    $ca"; do
    grep -qF "$want" <<<"$settings" || { echo "the upgrade lost $want: $settings"; exit 1; }
done
for _ in $(seq 60); do [ "$(starts)" -gt "$before" ] && break; sleep 1; done
[ "$(starts)" -gt "$before" ] || { echo "the upgraded service did not start with the kept settings"; exit 1; }
products=$(timeout 60 /usr/lib/wine/wine64 reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s |
    tr -d '\r' | grep -c "DisplayName    REG_SZ    Telemetry agent" || true)
[ "$products" = 1 ] || { echo "$products installed products after the upgrade, not 1"; exit 1; }
queue="$(data_dir_under "$WINEPREFIX/drive_c")/queue"
msi /x agent-0.1.1.msi /qn
service_gone "the MSI's uninstall"
[ ! -e "$WINEPREFIX/drive_c/Program Files/Telemetry Agent/agent.exe" ] || { echo "agent.exe stayed"; exit 1; }
[ -d "$queue" ] || { echo "the queue went with the MSI's uninstall ($queue)"; exit 1; }
echo "agent MSI under Wine: installed with properties, upgraded keeping them, uninstalled leaving the queue"
