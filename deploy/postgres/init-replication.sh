#!/bin/bash
# Run once by the postgres image when the primary's data directory is created
# (/docker-entrypoint-initdb.d): a role the replica's pg_basebackup and WAL stream use,
# and the pg_hba.conf line that lets it in.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
