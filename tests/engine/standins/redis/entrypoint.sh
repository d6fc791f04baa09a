#!/bin/sh
# The official image's rule: started as root for redis-server, chown /data to redis and drop.
set -e
if [ "$1" = "redis-server" ] && [ "$(id -u)" = "0" ]; then
  find . \! -user 999 -exec chown 999:1000 '{}' +
  exec setpriv --reuid=999 --regid=1000 --clear-groups "$@"
fi
exec "$@"
