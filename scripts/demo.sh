#!/usr/bin/env bash
# Quick-start demo: build barman-rs, start a throwaway PostgreSQL 15 cluster,
# write a barman.conf for it, and run barman against it. Everything lives in a
# temporary directory that is removed at the end (set KEEP=1 to keep it).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PG_BIN/initdb" ]; then
  echo "PostgreSQL 15 server binaries not found in $PG_BIN; run scripts/install-test-deps.sh (apt-get install postgresql-15)" >&2
  exit 1
fi

cargo build --release -q -p barman-cli
BARMAN=$PWD/target/release/barman

WORK=$(mktemp -d /tmp/barman-demo.XXXXXX)
PGDATA=$WORK/data
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$WORK"

cleanup() {
  if [ -f "$PGDATA/postmaster.pid" ]; then as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== initdb and start PostgreSQL on 127.0.0.1:$PORT"
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >/dev/null
cat >> "$PGDATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
archive_mode = on
archive_command = 'test ! -f $WORK/barman/demo/incoming/%f && cp %p $WORK/barman/demo/incoming/%f.tmp && mv $WORK/barman/demo/incoming/%f.tmp $WORK/barman/demo/incoming/%f'
CONF
echo "host replication all 127.0.0.1/32 trust" >> "$PGDATA/pg_hba.conf"
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w start >/dev/null
as_pg "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s 1 -q postgres >/dev/null 2>&1

mkdir -p "$WORK/barman/demo/incoming"
[ "$(id -u)" = 0 ] && chown -R postgres: "$WORK/barman"
cat > "$WORK/barman.conf" <<CONF
[barman]
barman_home = $WORK/barman
barman_user = $(id -un)
log_file = $WORK/barman.log
log_level = INFO

[demo]
description = "Throwaway PostgreSQL for the barman-rs quick start"
conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres
backup_method = local-rsync
backup_options = concurrent_backup
reuse_backup = link
archiver = on
compression = zstd
retention_policy = REDUNDANCY 2
CONF

echo "== barman list-servers"
"$BARMAN" -c "$WORK/barman.conf" list-servers
echo "== barman show-servers demo (first lines)"
"$BARMAN" -c "$WORK/barman.conf" show-servers demo | head -n 12
echo "== barman diagnose (servers.demo.config.compression, retention_policy)"
"$BARMAN" -c "$WORK/barman.conf" diagnose | python3 -c 'import json,sys; d=json.load(sys.stdin); c=d["servers"]["demo"]["config"]; print(c["compression"], "|", c["retention_policy"])'
echo "== demo finished"
