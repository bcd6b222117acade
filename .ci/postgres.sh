#!/bin/sh
# Install (if needed) and start a local PostgreSQL for the records tests; print its SQLAlchemy URL.
set -e
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    cluster=$(pg_lsclusters -h | head -n 1)
    if [ -z "$cluster" ]; then
        ver=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
        pg_createcluster "$ver" main >&2
        cluster=$(pg_lsclusters -h | head -n 1)
    fi
    set -- $cluster
    pg_ctlcluster "$1" "$2" start >&2
fi
port=$(pg_lsclusters -h | awk '$4 == "online" {print $3; exit}')
su postgres -c "psql -p $port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='tunebird'\"" | grep -q 1 || \
    su postgres -c "psql -p $port -qc \"CREATE ROLE tunebird LOGIN SUPERUSER PASSWORD 'tunebird'\"" >&2
su postgres -c "psql -p $port -qtAc \"SELECT 1 FROM pg_database WHERE datname='tunebird_test'\"" | grep -q 1 || \
    su postgres -c "psql -p $port -qc 'CREATE DATABASE tunebird_test OWNER tunebird'" >&2
echo "postgresql+psycopg://tunebird:tunebird@localhost:$port/tunebird_test"
