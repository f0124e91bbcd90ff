#!/usr/bin/env bash
# Quick-start demo: build barman-rs, start a throwaway PostgreSQL 15 cluster
# whose archive_command is `barman put-wal` (the one-host mode), write a
# barman.conf for it, archive WAL under pgbench load and read it back, take a
# base backup under load and an incremental one (hard links), `barman check`,
# a third backup and `barman cron` enforcing REDUNDANCY 2, change data,
# `barman recover` to a point in time between two changes, start PostgreSQL on
# the recovered directory and check the rows. Everything lives in a
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
  for d in "$WORK/restored" "$PGDATA"; do
    if [ -f "$d/postmaster.pid" ]; then as_pg "$PG_BIN/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true; fi
  done
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
immediate_checkpoint = true
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

echo "== barman backup --wait demo, while pgbench writes (local-rsync: no rsync binary, our copy engine)"
as_pg "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -T 6 postgres >/dev/null 2>&1 &
LOAD=$!
barman backup --wait --wait-timeout 120 demo
wait $LOAD
echo "== a second backup: unchanged files are hard links to the first one's (reuse_backup = link)"
barman -f json backup --wait --wait-timeout 120 demo | python3 -c '
import json, sys
c = json.load(sys.stdin)["demo"]["copy"]
print("files: %d, hard-linked: %d, rebuilt from page deltas: %d, fetched: %d; bytes written: %d of %d"
      % (c["files"], c["files_linked"], c["files_delta"], c["files_fetched"], c["bytes_written"], c["bytes_total"]))'
echo "== barman check demo"
barman check demo
echo "== a third backup: with retention_policy = REDUNDANCY 2 the first one is now OBSOLETE"
barman backup --wait --wait-timeout 120 demo >/dev/null
barman list-backups demo
echo "== barman cron: archive-wal, check-backup, and the retention policy (the first backup and its WALs go)"
barman cron
barman list-backups demo
psql_on() { as_pg "$PG_BIN/psql" -X -A -t -h 127.0.0.1 -p "$1" -U postgres -c "$2" postgres; }
EXPECTED=$(psql_on "$PORT" "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts")
LATEST=$(ls "$WORK/barman/demo/meta" | sed -n 's/-backup.info$//p' | sort | tail -n 1)
echo "== backup $LATEST:"
grep -E '^(status|begin_wal|end_wal|size|deduplicated_size)=' "$WORK/barman/demo/meta/$LATEST-backup.info"

echo "== change data after the backup: a row we want back, then a mistake we want undone"
psql_on "$PORT" "CREATE TABLE marks (id int, note text); INSERT INTO marks VALUES (1, 'kept')" >/dev/null
sleep 1
TARGET=$(psql_on "$PORT" "SELECT now()::timestamptz(6)")
sleep 1
psql_on "$PORT" "INSERT INTO marks VALUES (2, 'after the target'); DELETE FROM pgbench_accounts WHERE aid <= 1000" >/dev/null
barman switch-wal --archive --archive-timeout 60 demo >/dev/null
echo "   target time: $TARGET (between the two changes)"

RESTORED=$WORK/restored
echo "== barman recover --target-time '$TARGET' --target-action promote demo latest $RESTORED"
barman recover --target-time "$TARGET" --target-action promote demo latest "$RESTORED"
echo "== what recover wrote into postgresql.auto.conf:"
grep -v '^#' "$RESTORED/postgresql.auto.conf" | sed 's/^/   /'
PORT2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "== start PostgreSQL on the recovered directory (port $PORT2)"
as_pg "$PG_BIN/pg_ctl" -D "$RESTORED" -l "$WORK/restored.log" -o "-p $PORT2" -w -t 120 start >/dev/null
for _ in $(seq 1 120); do
  [ "$(psql_on "$PORT2" 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
  sleep 1
done
GOT=$(psql_on "$PORT2" "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts")
MARKS=$(psql_on "$PORT2" "SELECT string_agg(id || ':' || note, ', ' ORDER BY id) FROM marks")
echo "primary before the mistake: accounts, sum(abalance) = $EXPECTED"
echo "recovered:                  accounts, sum(abalance) = $GOT"
echo "recovered marks:            $MARKS"
[ "$EXPECTED" = "$GOT" ] || { echo "MISMATCH in pgbench_accounts" >&2; exit 1; }
[ "$MARKS" = "1:kept" ] || { echo "MISMATCH in marks: expected only 1:kept" >&2; exit 1; }
echo "== demo finished: the recovered cluster holds exactly the data of the target time"
