#!/bin/sh
# The kernel's init (init=/usr/lib/moorage/preinit.sh): runs as PID 1 on the
# read-only OS root that every machine shares, and gives this boot a writable
# root instead: the image as the lower layer of an overlay whose upper layer is
# a tmpfs, so each boot starts from the image again and any path can be
# created (shared folders are mounted at the host's own paths, e.g. /home/ann
# or /work/src). Then it becomes busybox init. Written for busybox sh and any
# initramfs flavour (Debian's moves /dev, /proc, /sys, /run into the root;
# others may not).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

moved=""
fallback() {
    for m in $moved; do mount --move $rw/root/$m /$m; done
    echo "moorage: warning: no writable root ($1); booting on the read-only image" > /dev/console
    exec /usr/lib/moorage/init
}

mountpoint -q /proc || mount -t proc proc /proc
modprobe overlay 2>/dev/null
rw=/mnt
mount -t tmpfs -o mode=755 moorage-rw $rw || fallback "tmpfs"
mkdir -p $rw/upper $rw/work $rw/root
mount -t overlay moorage-root -o lowerdir=/,upperdir=$rw/upper,workdir=$rw/work $rw/root \
    || fallback "overlay"
# /proc last: mount and mountpoint read /proc/self/mountinfo.
for m in dev sys run proc; do
    if mountpoint -q /$m; then
        mount --move /$m $rw/root/$m || fallback "moving /$m"
        moved="$m $moved"
    fi
done
mkdir -p $rw/root/run/moorage-image
cd $rw/root || fallback "cd"
pivot_root . run/moorage-image || fallback "pivot_root"
exec /usr/lib/moorage/init
