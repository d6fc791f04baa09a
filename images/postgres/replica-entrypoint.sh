#!/usr/bin/env bash
# A replica's entry point: on the first start (empty PGDATA) copy the primary with
# pg_basebackup through this replica's own physical slot, then run the server as a hot
# standby. Later starts only run the server, which resumes streaming from the slot.
#
#   replica-entrypoint SLOT PRIMARY_HOST PORT PASSFILE postgres -c ...
#
# The replication password is read from PASSFILE (libpq's password file, mode 0600): it is
# never in the environment, a command line, or postgresql.auto.conf (no `pg_basebackup -R`).
set -Eeuo pipefail

slot="$1" primary="$2" port="$3" passfile="$4"
shift 4

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups \
    env HOME=/var/lib/postgresql "$0" "$slot" "$primary" "$port" "$passfile" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  export PGPASSFILE="$passfile"
  connection=(--host "$primary" --port "$port" --username replicator --no-password)
  echo "replica-entrypoint: copying the primary $primary through slot $slot"
  # The slot keeps the primary's WAL until this replica has it, from the backup on.
  pg_receivewal "${connection[@]}" --slot "$slot" --create-slot --if-not-exists
  pg_basebackup "${connection[@]}" --pgdata "$PGDATA" --wal-method stream \
    --slot "$slot" --checkpoint fast
  touch "$PGDATA/standby.signal"
fi

exec "$@"
