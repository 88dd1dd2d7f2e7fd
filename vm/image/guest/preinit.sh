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

# Without a writable root the guest cannot work (sshd's keys, the shares'
# mount points): say so in the form the host agent reports as a failed boot.
moved=""
fail() {
    for m in $moved; do mount -n --move $rw/root/$m /$m; done
    echo "moorage: error: no writable root for the guest ($1)" > /dev/console
    exec /usr/lib/moorage/init
}

mountpoint -q /proc || mount -t proc proc /proc
modprobe overlay 2>/dev/null
rw=/mnt
mount -n -t tmpfs -o mode=755 moorage-rw $rw || fail "tmpfs"
mkdir -p $rw/upper $rw/work $rw/root
mount -n -t overlay moorage-root -o lowerdir=/,upperdir=$rw/upper,workdir=$rw/work $rw/root \
    || fail "overlay"
# /proc last: mount and mountpoint read /proc/self/mountinfo. -n everywhere: libmount
# would record mounts in /run/mount/utab, and fail once /run has moved.
for m in dev sys run proc; do
    if mountpoint -q /$m; then
        mount -n --move /$m $rw/root/$m || fail "moving /$m"
        moved="$m $moved"
    fi
done
mkdir -p $rw/root/run/moorage-image
cd $rw/root || fail "cd"
pivot_root . run/moorage-image || fail "pivot_root"
exec /usr/lib/moorage/init
