#!/bin/sh
# First-start hook of the timescaledb container (mounted into
# /docker-entrypoint-initdb.d by compose.yaml; it runs only when the data
# volume is empty, after the image's own TimescaleDB set-up scripts).
#
# Creates the two login roles with the passwords from deploy/.env. The
# migrations (`envpatrol migrate`) would create them too if absent, but
# without passwords; they grant the privileges either way:
#   envpatrol_writer  used by ingest: inserts readings
#   envpatrol_reader  used by api: read-only
#
# To change a password later:
#   docker compose exec timescaledb psql -U postgres -d envpatrol \
#     -c "ALTER ROLE envpatrol_writer PASSWORD 'new-password'"
# and update deploy/.env to match.

psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v writer_password="$ENVPATROL_WRITER_PASSWORD" \
    -v reader_password="$ENVPATROL_READER_PASSWORD" <<'SQL'
CREATE ROLE envpatrol_writer LOGIN PASSWORD :'writer_password';
CREATE ROLE envpatrol_reader LOGIN PASSWORD :'reader_password';
SQL
