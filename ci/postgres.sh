#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, on 127.0.0.1 only, with its data in a temporary folder.
# Usage: eval "$(ci/postgres.sh start)"   prints `export TEST_DATABASE_URL=...` (and PG_TEST_DIR)
#        ci/postgres.sh stop               stops the one that start made (reads PG_TEST_DIR)
# PG_DURABLE=1 keeps fsync on (for benchmarks); PG_BASE picks the folder (default /tmp).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
# The server refuses to run as root; Debian's package brings the postgres user for that.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
start)
    dir=$(mktemp -d "${PG_BASE:-/tmp}/telemetry-pg.XXXXXX")
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # Tests create a database each; durability of a throwaway server is not what they check.
    fsync="-c fsync=off"
    [ "${PG_DURABLE:-0}" = 1 ] && fsync=""
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 $fsync" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$port/postgres PG_TEST_DIR=$dir"
    ;;
stop)
    [ -n "${PG_TEST_DIR:-}" ] || { echo "PG_TEST_DIR is not set" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PG_TEST_DIR"
    ;;
*)
    echo "usage: ci/postgres.sh start|stop" >&2; exit 2 ;;
esac
