#!/bin/sh
# Respawned by init. The Docker API's way in from the host (docker-gate.pl).
if [ ! -r /run/moorage/machine.env ]; then
    sleep 5  # boot.sh failed before the config: don't spin
    exit 1
fi
. /run/moorage/machine.env
exec /usr/bin/perl /usr/lib/moorage/docker-gate.pl "$MOORAGE_GATE_PORT" \
    /run/moorage/docker-gate.token /var/run/docker.sock 2>>/var/log/docker-gate.log
