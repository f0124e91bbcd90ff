#!/usr/bin/env bash
# Installs the peers the end-to-end benchmark compares barman-rs with
# (`barman-benches compare --with-peers` runs this):
#   - pgBackRest from Debian's packages (/usr/bin/pgbackrest);
#   - Barman from PyPI, with the zstandard and lz4 modules, into a virtualenv
#     of Debian's python3 at $BARMAN_BENCH_PEERS (default
#     /opt/barman-bench-peers/venv), readable by the `postgres` OS user;
#   - rsync (Barman copies with it) and libpq-dev (psycopg2 builds on it).
# Idempotent: a second run installs nothing new. Needs root.
set -euo pipefail

VENV="${BARMAN_BENCH_PEERS:-/opt/barman-bench-peers/venv}"
BARMAN_VERSION="${BARMAN_BENCH_BARMAN_VERSION:-}"   # empty: the newest on PyPI

if [ "$(id -u)" -ne 0 ]; then
    echo "install-peers: run as root (apt-get and a virtualenv under /opt)" >&2
    exit 1
fi

missing=()
command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
[ -e /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
[ -e /usr/include/python3.11/Python.h ] || missing+=(python3-dev)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-peers: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/barman" ] || ! "$VENV/bin/python" -c 'import zstandard, lz4' >/dev/null 2>&1; then
    echo "install-peers: Barman from PyPI into $VENV"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV"
    spec="barman"
    [ -n "$BARMAN_VERSION" ] && spec="barman==$BARMAN_VERSION"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$spec" zstandard lz4
fi
chmod -R a+rX "$(dirname "$VENV")"

echo "install-peers: $(pgbackrest version); Barman $("$VENV/bin/barman" --version 2>&1 | head -1 | cut -d' ' -f1); $(rsync --version | head -1)"
