#!/usr/bin/env bash
# A replica's Docker health check: healthy only while its WAL receiver streams from the
# primary (a replica that runs but has lost the primary is not healthy).
#
#   streaming-check SUPERUSER
set -Eeuo pipefail

status="$(setpriv --reuid=postgres --regid=postgres --init-groups \
  psql --no-psqlrc -XAtq --username "${1:?superuser}" --dbname postgres \
  -c 'SELECT status FROM pg_stat_wal_receiver')"
[ "$status" = streaming ]
