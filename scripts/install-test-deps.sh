#!/usr/bin/env bash
# Install the system packages the test suite needs (Debian bookworm).
#
# Idempotent: checks for each tool first and runs apt only when something is
# missing (one `apt-get update`, then one `apt-get install`). Runs as root, or
# through sudo when not root.
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
need openssl /usr/bin/openssl

if ((${#missing[@]} == 0)); then
    echo "install-test-deps: all test dependencies present"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo --preserve-env=DEBIAN_FRONTEND)
fi

echo "install-test-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# sshd is started by the tests themselves; make sure its privilege-separation
# directory exists (normally created by the service unit, which does not run here).
"${sudo[@]}" mkdir -p /run/sshd
echo "install-test-deps: done"
