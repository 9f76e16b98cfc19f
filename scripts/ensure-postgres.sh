#!/bin/sh
# Make the Debian PostgreSQL server binaries available for the PostgreSQL tests
# (tests/runtime/postgres.py starts a throwaway server from them; no system service is used).
# Idempotent: does nothing when /usr/lib/postgresql/*/bin/initdb already exists, and only runs
# `apt-get update` when an install is actually needed. Leaves a stamp file so the test fixture
# fails (instead of skipping) if the binaries ever go missing on a machine that ran this.
set -eu

STAMP="${XDG_CACHE_HOME:-$HOME/.cache}/lapor-sla/postgres-ensured"

stamp() {
    mkdir -p "$(dirname "$STAMP")" && touch "$STAMP"
}

have_binaries() {
    for candidate in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$candidate" ] && return 0
    done
    return 1
}

if have_binaries; then
    stamp
    echo "ensure-postgres: PostgreSQL binaries present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: no apt-get; install PostgreSQL server binaries by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql >/dev/null
# The package starts a cluster as a system service; the tests run their own server, so the
# packaged one is stopped again where a service manager exists (harmless when there is none).
if command -v pg_ctlcluster >/dev/null 2>&1; then
    for version_dir in /etc/postgresql/*/main; do
        [ -d "$version_dir" ] || continue
        version=$(basename "$(dirname "$version_dir")")
        $SUDO pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
    done
fi

have_binaries || { echo "ensure-postgres: install finished but initdb is missing" >&2; exit 1; }
stamp
echo "ensure-postgres: PostgreSQL installed"
