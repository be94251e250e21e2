#!/bin/sh
# Makes this machine a streaming standby of PRIMARY_HOST: an empty data
# directory filled by pg_basebackup -R with a replication slot of its own.
# Run as root on the standby, with its PostgreSQL cluster stopped:
#   PRIMARY_HOST=10.0.0.11 ./setup-standby.sh
# The replication password is read from ~postgres/.pgpass
#   (10.0.0.11:5432:replication:envpatrol_replicator:PASSWORD).
set -eu

PRIMARY_HOST=${PRIMARY_HOST:?set PRIMARY_HOST to the primary address}
PRIMARY_PORT=${PRIMARY_PORT:-5432}
PG_VERSION=${PG_VERSION:-16}
CLUSTER=${CLUSTER:-main}
SLOT=${SLOT:-standby1}
DATA=/var/lib/postgresql/$PG_VERSION/$CLUSTER
BIN=/usr/lib/postgresql/$PG_VERSION/bin

if pg_ctlcluster "$PG_VERSION" "$CLUSTER" status >/dev/null 2>&1; then
    echo "stop the cluster first: pg_ctlcluster $PG_VERSION $CLUSTER stop" >&2
    exit 1
fi
if [ -e "$DATA/PG_VERSION" ] && [ "${REPLACE_DATA:-}" != yes ]; then
    echo "$DATA holds a cluster; REPLACE_DATA=yes removes it" >&2
    exit 1
fi
rm -rf "$DATA"
install -d -m 0700 -o postgres -g postgres "$DATA"
# -R: primary_conninfo and standby.signal; -C -S: create the slot on the
# primary, so it keeps the WAL this standby has not received yet.
runuser -u postgres -- "$BIN/pg_basebackup" \
    -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U envpatrol_replicator \
    -D "$DATA" -R -C -S "$SLOT" -X stream --checkpoint=fast --progress
# The copy carries the primary's postgresql.auto.conf, read after conf.d: a
# synchronous_standby_names set there by ALTER SYSTEM would make this standby,
# once promoted, wait at every COMMIT for a standby of its own.
sed -i '/^synchronous_standby_names/d' "$DATA/postgresql.auto.conf"
pg_ctlcluster "$PG_VERSION" "$CLUSTER" start
echo "standby started; on the primary: SELECT * FROM pg_stat_replication;"
