#!/usr/bin/env bash
# Runs the real docker/nginx/dashboard.conf with Debian's nginx in front of the built dashboard
# and a test backend (upstream pointed at it): the page, /api and /ws must all pass through.
# Usage: ci/nginx-check.sh   (expects the backend binary and the dashboard dist to be built)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
dist="${DASHBOARD_DIST:-$target/dashboard-dist}"
backend="${BACKEND_BIN:-$target/debug/backend}"
[ -f "$dist/index.html" ] || { echo "no dashboard build in $dist: run dashboard/build-web.sh"; exit 1; }
[ -x "$backend" ] || { echo "no backend binary at $backend: cargo build -p backend"; exit 1; }

work=$(mktemp -d)
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
api_port=$(free_port)
web_port=$(free_port)
pids=()
cleanup() {
    # nginx runs in the foreground (daemon off), so its master is one of these.
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

API_TOKEN=nginx-token HMAC_SECRET=nginx-secret PORT=$api_port DB_PATH="$work/t.db" "$backend" \
    >"$work/backend.log" 2>&1 &
pids+=($!)

# The shipped server block, with only the upstream, the port and the root changed.
sed -e "s|server backend:8000;|server 127.0.0.1:$api_port;|" \
    -e "s|listen 1337;|listen 127.0.0.1:$web_port;|" \
    -e "s|root /usr/share/nginx/html;|root $(realpath "$dist");|" \
    docker/nginx/dashboard.conf >"$work/site.conf"
cat >"$work/nginx.conf" <<CONF
daemon off;
# The build folders are the invoking user's (root in CI, under a 0700 home): workers read them
# as that user. Without root the directive is ignored with a warning.
user $(id -un);
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path $work/body; proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
    include $work/site.conf;
}
CONF
nginx -t -c "$work/nginx.conf" -p "$work" 2>&1 | tail -1
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)

WEB="http://127.0.0.1:$web_port" python3 - <<'PY'
import base64, hashlib, hmac, json, os, socket, time, urllib.request
web = os.environ["WEB"]
for _ in range(100):
    try:
        urllib.request.urlopen(web + "/healthz"); break
    except Exception:
        time.sleep(0.1)
page = urllib.request.urlopen(web + "/").read().decode()
assert '<div id="main"' in page, page[:200]
deep = urllib.request.urlopen(web + "/agents/some-host").read().decode()
assert deep == page, "deep links must get the app"
wasm = urllib.request.urlopen(web + "/app_bg.wasm")
assert wasm.headers["Content-Type"] == "application/wasm", wasm.headers["Content-Type"]

# A WebSocket through nginx: handshake, then a row pushed after an ingest through nginx. The
# page's subprotocols (where its session travels) pass both ways.
host, port = web.split("//")[1].split(":")
ws = socket.create_connection((host, int(port)), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
ws.sendall(f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           f"Sec-WebSocket-Protocol: telemetry.v1\r\n\r\n".encode())
head = b""
while b"\r\n\r\n" not in head:
    head += ws.recv(1)
assert head.startswith(b"HTTP/1.1 101"), head
assert b"sec-websocket-protocol: telemetry.v1" in head.lower(), head
time.sleep(0.3)

body = open("protocol/testdata/payloads/seed_example.json", "rb").read()
ts = str(int(time.time()))
sig = hmac.new(b"nginx-secret", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
req = urllib.request.Request(web + "/api/ingest", data=body, method="POST", headers={
    "X-Api-Token": "nginx-token", "X-Signature-Ts": ts, "X-Signature": sig})
assert json.load(urllib.request.urlopen(req)) == {"stored": 2}
rows = json.load(urllib.request.urlopen(web + "/api/events"))
assert len(rows) == 2, rows

def frame():
    b0, b1 = ws.recv(1)[0], ws.recv(1)[0]
    n = b1 & 0x7f
    if n == 126: n = int.from_bytes(ws.recv(2), "big")
    elif n == 127: n = int.from_bytes(ws.recv(8), "big")
    data = b""
    while len(data) < n: data += ws.recv(n - len(data))
    return b0 & 0x0f, data
opcode, data = frame()
while opcode != 1:
    opcode, data = frame()
pushed = json.loads(data)
assert pushed == rows[1], (pushed, rows[1])

# The backend's guards hold behind nginx: a page whose name rebinds to 127.0.0.1 (foreign Host)
# and a socket opened from another site (foreign Origin) are refused; the page's own origin is not.
def status(path, headers):
    s = socket.create_connection((host, int(port)), timeout=10)
    headers = {"Connection": "close", **headers}
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    s.sendall(f"GET {path} HTTP/1.1\r\n{extra}\r\n".encode())
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(256)
        if not chunk: break
        head += chunk
    s.close()
    return int(head.split(b" ")[1])
upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
assert status("/api/events", {"Host": f"rebound.example:{port}"}) == 403
assert status("/ws", {"Host": f"{host}:{port}", "Origin": "https://evil.example", **upgrade}) == 403
assert status("/ws", {"Host": f"{host}:{port}", "Origin": web, **upgrade}) == 101
assert "DENY" in urllib.request.urlopen(web + "/").headers["X-Frame-Options"]
print("nginx passes the page, deep links, /api and /ws through, and the backend's guards hold")
PY
