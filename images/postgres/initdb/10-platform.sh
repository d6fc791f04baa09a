#!/usr/bin/env bash
# First start of an empty primary (the image's entrypoint runs this with the server up on
# its socket only): create the replication role with the password the stack generated, and
# the pgBackRest stanza, so WAL archiving succeeds from the first segment on.
set -Eeuo pipefail

password_file="${REPLICATION_PASSWORD_FILE:-/run/secrets/replication-password}"
# The password is read by psql itself (backquotes), so it never appears in a command line.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres <<EOSQL
\\set password \`cat ${password_file}\`
SELECT format('CREATE ROLE replicator REPLICATION LOGIN PASSWORD %L', :'password') \\gexec
EOSQL

# Not fatal: an unreachable S3 endpoint must not leave a half-initialised cluster behind.
# Archiving fails (alert WalArchivingFailing) until `pgbackrest --stanza=main stanza-create`
# succeeds; docs/data-tier.md says how to run it.
if ! pgbackrest --stanza=main stanza-create; then
  echo "10-platform.sh: pgbackrest stanza-create failed; WAL archiving fails until it succeeds" >&2
fi
