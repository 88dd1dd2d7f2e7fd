#!/bin/sh
# Run by init on poweroff: stop the engine first so containers exit cleanly
# and its state reaches the data disk, then unmount it. dockerd gives each
# container its stop timeout plus 5 s; swarm nodes take 20 s (swarm/spec.py),
# so wait up to 40 s.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
echo "moorage: shutting down" > /dev/console
pid=$(cat /run/docker.pid 2>/dev/null)
if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 400 ]; do sleep 0.1; i=$((i + 1)); done
fi
sync
umount /var/lib/docker /var/lib/containerd 2>/dev/null
umount /mnt/data 2>/dev/null || mount -o remount,ro /mnt/data
echo "moorage: halted" > /dev/console
