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
    # Tests create a database each; durability of a throwaway server is not what they check, and
    # initdb's flush of every file it wrote would stall the fsyncs of tests running beside it.
    fsync="-c fsync=off" nosync="--no-sync"
    [ "${PG_DURABLE:-0}" = 1 ] && fsync="" nosync=""
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust $nosync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # A free port can be taken by another process between choosing it and the server binding it
    # (tests running beside this open connections all the time): choose it as late as possible,
    # and choose again if the server could not bind it.
    for attempt in 1 2 3 4 5; do
        port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 $fsync" \
            start >/dev/null && break
        grep -q "could not bind\|could not create any TCP/IP sockets" "$dir/server.log" &&
            [ "$attempt" -lt 5 ] || { cat "$dir/server.log" >&2; exit 1; }
    done
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
