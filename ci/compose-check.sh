#!/usr/bin/env bash
# Runs docker-compose.yml's backend with an image built from the host's static binary, checks
# its health, ingests a signed batch through it, reads it back, and removes everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
project="telemetry-ci-$$"
work=$(mktemp -d)
# A free port for this run, so parallel runs and other services do not collide.
export BACKEND_PORT="${BACKEND_PORT:-$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}"

# Compose v2 is `docker compose`; Debian 12 ships v1 as `docker-compose`.
compose() {
    if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}

cleanup() {
    compose -p "$project" --env-file "$work/env" down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$work" docker/backend
}
trap cleanup EXIT

# Compose must refuse to start without the secrets.
: >"$work/empty.env"
if compose -p "$project" --env-file "$work/empty.env" config >"$work/config.out" 2>&1; then
    echo "compose started without API_TOKEN/HMAC_SECRET"; exit 1
fi
grep -q "set API_TOKEN in .env" "$work/config.out" || { cat "$work/config.out"; exit 1; }

token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
secret=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
reader=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
printf 'API_TOKEN=%s\nHMAC_SECRET=%s\nREAD_TOKEN=%s\n' "$token" "$secret" "$reader" >"$work/env"
# The scale profile adds PostgreSQL and a second replica that nginx reaches as "backend". No
# PostgreSQL image can be pulled here to start them, so the file itself is checked (the
# replicas' behaviour is tested with real processes on a real PostgreSQL in the test part).
python3 - <<'PY'
import yaml
services = yaml.safe_load(open("docker-compose.yml"))["services"]
replica, postgres, first = services["backend-replica"], services["postgres"], services["backend"]
assert replica["profiles"] == ["scale"] and postgres["profiles"] == ["scale"], "profiles"
assert "backend" in replica["networks"]["default"]["aliases"], "the replica answers as backend"
assert replica["image"] == first["image"] and replica["environment"] == first["environment"]
assert "DATABASE_URL" in first["environment"] and "ports" not in replica
assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
print("compose scale profile: postgres and a second replica aliased as backend")
PY

cp "$target/x86_64-unknown-linux-musl/release/backend" docker/backend
BACKEND_DOCKERFILE=docker/backend.prebuilt.Dockerfile \
    compose -p "$project" --env-file "$work/env" up -d --build backend
cid=$(compose -p "$project" --env-file "$work/env" ps -q backend)

for _ in $(seq 1 60); do
    state=$(docker inspect -f '{{.State.Health.Status}}' "$cid" 2>/dev/null || true)
    [ "$state" = healthy ] && break
    sleep 1
done
[ "$state" = healthy ] || { compose -p "$project" --env-file "$work/env" logs; exit 1; }
echo "backend container is healthy"
[ "$(docker inspect -f '{{.Config.User}}' "$cid")" = "65532:65532" ]

API="http://127.0.0.1:$BACKEND_PORT" TOKEN="$token" SECRET="$secret" READER="$reader" python3 - <<'PY'
import hashlib, hmac, json, os, time, urllib.error, urllib.request
api, token, secret = os.environ["API"], os.environ["TOKEN"], os.environ["SECRET"]
reader = os.environ["READER"]
assert urllib.request.urlopen(api + "/healthz").status == 200
body = open("protocol/testdata/payloads/seed_example.json", "rb").read()
ts = str(int(time.time()))
sig = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
req = urllib.request.Request(api + "/api/ingest", data=body, method="POST", headers={
    "X-Api-Token": token, "X-Signature-Ts": ts, "X-Signature": sig,
    "Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(req))
assert answer == {"stored": 2}, answer
try:
    urllib.request.urlopen(api + "/api/events")
    raise SystemExit("reads answered without READ_TOKEN")
except urllib.error.HTTPError as e:
    assert e.code == 401, e.code
read = urllib.request.Request(api + "/api/events?agent_id=host-01",
                              headers={"Authorization": "Bearer " + reader})
rows = json.load(urllib.request.urlopen(read))
assert [r["event_type"] for r in rows] == ["proc", "metric"], rows
print("ingested and read back through compose:", answer)
PY
