#!/usr/bin/env bash
# Quick-start demo: build barman-rs, start a throwaway PostgreSQL 15 cluster
# whose archive_command is `barman put-wal` (the one-host mode), write a
# barman.conf for it, archive WAL under pgbench load and read it back. Everything lives in a
# temporary directory that is removed at the end (set KEEP=1 to keep it).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PG_BIN/initdb" ]; then
  echo "PostgreSQL 15 server binaries not found in $PG_BIN; run scripts/install-test-deps.sh (apt-get install postgresql-15)" >&2
  exit 1
fi

cargo build --release -q -p barman-cli --bins

WORK=$(mktemp -d /tmp/barman-demo.XXXXXX)
# The archive_command runs as the server's user: give it its own copy of barman.
mkdir -p "$WORK/bin" && cp target/release/barman "$WORK/bin/" && chmod 755 "$WORK" "$WORK/bin"
BARMAN=$WORK/bin/barman
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
wal_keep_size = '1GB'
archive_mode = on
archive_command = '$BARMAN -c $WORK/barman.conf put-wal demo %p'
CONF
echo "host replication all 127.0.0.1/32 trust" >> "$PGDATA/pg_hba.conf"

mkdir -p "$WORK/barman"
cat > "$WORK/barman.conf" <<CONF
[barman]
barman_home = $WORK/barman
barman_user = postgres
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

[ "$(id -u)" = 0 ] && chown -R postgres: "$WORK/barman" "$WORK/barman.conf"
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w start >/dev/null

barman() { as_pg "$BARMAN" -c "$WORK/barman.conf" "$@"; }
echo "== barman list-servers"
barman list-servers
echo "== barman show-servers demo (first lines)"
barman show-servers demo | head -n 12
echo "== pgbench -i -s 1, then 10 s of load: archive_command = barman put-wal demo %p"
as_pg "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s 1 -q postgres >/dev/null 2>&1
as_pg "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -T 10 postgres >/dev/null 2>&1
echo "== barman switch-wal --archive demo (closes the current WAL and waits until it is archived)"
barman switch-wal --archive --archive-timeout 60 demo
echo "== barman archive-wal demo"
barman archive-wal demo
echo "== the archive (xlog.db: name, size, time, compression, encryption)"
cat "$WORK/barman/demo/wals/demo-xlog.db"
FIRST=$(head -n 1 "$WORK/barman/demo/wals/demo-xlog.db" | cut -f1)
echo "== barman get-wal demo $FIRST: decompressed, byte-identical to pg_wal/$FIRST"
barman get-wal -o "$WORK" demo "$FIRST"
cmp "$WORK/$FIRST" "$PGDATA/pg_wal/$FIRST" && echo "identical ($(stat -c %s "$WORK/$FIRST") bytes)"
echo "== pg_waldump reads it"
"$PG_BIN/pg_waldump" --stats "$WORK/$FIRST" | head -n 4
echo "== barman rebuild-xlogdb demo"
barman rebuild-xlogdb demo
echo "== demo finished"
