#!/bin/sh
# Respawned by init. dockerd starts and supervises its own containerd, whose
# state then lives on the data disk with the rest of the engine's.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
echo "moorage: dockerd starting" > /dev/console
exec /usr/sbin/dockerd --config-file /etc/docker/daemon.json >>/var/log/dockerd.log 2>&1
