#!/usr/bin/env bash
# The PostgreSQL image's entry point: the part of the official postgres image's contract the
# stack relies on (docs/data-tier.md), on Debian's own postgresql-15.
#
#   docker-entrypoint.sh postgres -c name=value ...    (or only -c ... : `postgres` is implied)
#
# - As root: PGDATA (0700) and the socket directory /var/run/postgresql are made `postgres`'s
#   (uid/gid 999), then the script runs again as `postgres` (setpriv, from util-linux).
# - On an empty PGDATA: initdb with POSTGRES_USER as the superuser and POSTGRES_PASSWORD as its
#   password (each variable may instead come from a file named by VAR_FILE; the password never
#   has to be in the environment), POSTGRES_INITDB_ARGS passed on; a temporary server listening
#   on the socket only (with the command's own settings, e.g. archive_command and hba_file)
#   creates POSTGRES_DB and runs /docker-entrypoint-initdb.d/*: executable *.sh run, other
#   *.sh are sourced, *.sql go through psql; then it stops cleanly.
# - Finally `exec` the command: postgres is PID 1 and the image's STOPSIGNAL (SIGINT) is a fast
#   shutdown. Any other command (bash, pg_dump...) is simply run.
set -Eeuo pipefail

# VAR from VAR or from the file VAR_FILE names (not both), else the default.
file_env() {
  local var="$1" default="${2:-}"
  local file_var="${var}_FILE"
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    echo "docker-entrypoint: both $var and $file_var are set; set only one" >&2
    exit 1
  fi
  local value="$default"
  if [ -n "${!var:-}" ]; then
    value="${!var}"
  elif [ -n "${!file_var:-}" ]; then
    value="$(<"${!file_var}")"
  fi
  export "$var"="$value"
  unset "$file_var"
}

if [ "${1:0:1}" = - ]; then
  set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
  exec "$@"
fi

# The settings, from VAR or VAR_FILE; read here, as root when started as root, so the secret
# files may be root's own (and the password is passed on to initdb only, never to the server).
file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups \
    env HOME=/var/lib/postgresql "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "$POSTGRES_PASSWORD" ]; then
    echo "docker-entrypoint: POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE, a file holding it)" \
      "is required to initialise an empty PGDATA ($PGDATA)" >&2
    exit 1
  fi

  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of initdb options
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    $POSTGRES_INITDB_ARGS
  # Like the official image: connections over TCP need the password (the stack's own hba_file,
  # when given with -c hba_file=..., replaces this file altogether).
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  # The temporary server: the command's settings, no TCP listener.
  shift
  pg_ctl -D "$PGDATA" -w start -o "$(printf '%q ' "$@" -c listen_addresses='' -p 5432)"
  set -- postgres "$@"
  export PGPASSWORD="$POSTGRES_PASSWORD"
  psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password)

  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          echo "docker-entrypoint: running $f"
          "$f"
        else
          echo "docker-entrypoint: sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql)
        echo "docker-entrypoint: running $f"
        "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f"
        ;;
      *) [ -e "$f" ] && echo "docker-entrypoint: ignoring $f" ;;
    esac
  done
  unset PGPASSWORD

  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "docker-entrypoint: PostgreSQL init process complete; ready for start up."
fi

# The server's environment carries no password.
unset POSTGRES_PASSWORD

exec "$@"
