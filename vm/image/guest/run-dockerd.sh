#!/bin/sh
# Respawned by init. dockerd starts and supervises its own containerd, whose
# state then lives on the data disk with the rest of the engine's.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# Shared folders first, so that no container ever binds an empty mount point.
i=0
while [ ! -e /run/moorage/shares-ready ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
[ -e /run/moorage/shares-ready ] || echo "moorage: dockerd starting without shared folders" > /dev/console
echo "moorage: dockerd starting" > /dev/console
exec /usr/sbin/dockerd --config-file /etc/docker/daemon.json >>/var/log/dockerd.log 2>&1
