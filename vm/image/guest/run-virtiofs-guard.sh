#!/bin/sh
# Respawned by init. Keeps virtiofs inodes within the host daemon's budget
# (virtiofs-guard.pl); with no virtiofs folders it has nothing to do.
if [ ! -r /run/moorage/machine.env ]; then
    sleep 5  # boot.sh failed before the config: don't spin
    exit 1
fi
. /run/moorage/machine.env
if [ -z "${MOORAGE_VIRTIOFS_INODES:-}" ]; then
    while :; do sleep 3600; done
fi
exec /usr/bin/perl /usr/lib/moorage/virtiofs-guard.pl "$MOORAGE_VIRTIOFS_INODES" \
    2>>/var/log/virtiofs-guard.log
