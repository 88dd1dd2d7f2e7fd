#!/bin/sh
# First thing busybox init runs (on the per-boot writable root preinit.sh
# made). Turns the image into this machine: its own config from the config
# disk, the network, shared folders, and the persistent data disk under
# /var/lib/docker.
# Progress lines start with "moorage:" so the host agent can follow the serial log.
# vm/image/bootlog.py (moorage.vm.image.bootlog) parses them and lists every one
# in its docstring: change the two together.
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
say() { echo "moorage: $*" > /dev/console; }
say "init"

mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mountpoint -q /dev/pts || mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mountpoint -q /run || mount -t tmpfs -o mode=755,nosuid,nodev run /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+cpu +cpuset +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null

# Disks are found by the serial the host gave them, not by their order.
disk_with_serial() {
    for s in /sys/block/vd*/serial; do
        [ -e "$s" ] || continue
        if [ "$(cat "$s")" = "$1" ]; then
            b=${s%/serial}; echo "/dev/${b##*/}"; return 0
        fi
    done
    return 1
}

CFG=/run/moorage
mkdir -p $CFG
cfgdisk=$(disk_with_serial moorage-config) || { say "error: no config disk"; exit 1; }
tar -xf "$cfgdisk" -C $CFG
chmod 700 $CFG
. $CFG/machine.env
say "config $MOORAGE_MACHINE"

hostname "$MOORAGE_HOSTNAME"
echo "$MOORAGE_HOSTNAME" > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost\n' "$MOORAGE_HOSTNAME" > /etc/hosts

# Network: one line per NIC in network.conf, "MAC ADDRESS/PREFIX GATEWAY".
# Names like ens3 vary between boots, so NICs are matched by MAC.
modprobe virtio_net 2>/dev/null
modprobe virtio_rng 2>/dev/null
ip link set lo up
tries=0
while read -r mac addr gw; do
    [ -n "$mac" ] || continue
    dev=""
    while [ -z "$dev" ] && [ $tries -lt 50 ]; do
        for n in /sys/class/net/*; do
            [ "$(cat "$n/address" 2>/dev/null)" = "$mac" ] && dev=${n##*/}
        done
        [ -n "$dev" ] || { tries=$((tries + 1)); sleep 0.1; }
    done
    [ -n "$dev" ] || { say "error: no NIC with MAC $mac"; continue; }
    ip link set "$dev" up
    ip addr add "$addr" dev "$dev"
    [ -n "${host_nic:-}" ] || host_nic=$dev
    [ "$gw" = "-" ] || ip route add default via "$gw" dev "$dev"
done < $CFG/network.conf
cp $CFG/resolv.conf /etc/resolv.conf
# sshd and the docker gate are for the host alone, which comes in through the
# first user-mode NIC (QEMU's forwards from the host's loopback). Containers can
# reach the guest's addresses too, so both ports are refused on every other
# interface.
if [ -n "${host_nic:-}" ]; then
    for port in 22 "$MOORAGE_GATE_PORT"; do
        iptables -A INPUT -p tcp --dport "$port" -i "$host_nic" -j ACCEPT
        iptables -A INPUT -p tcp --dport "$port" -i lo -j ACCEPT
        iptables -A INPUT -p tcp --dport "$port" -j DROP
    done
fi
say "network"

# Swarm mode, on the machine's engine and in cluster nodes, which cannot load
# modules themselves: IPVS for the routing mesh, VXLAN for overlay networks,
# xfrm and ESP for encrypted overlays, br_netfilter between nodes on a bridge.
# Many nodes each watch many files.
for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh xt_ipvs vxlan xfrm_user esp4 br_netfilter; do
    modprobe "$m" 2>/dev/null || say "warning: kernel module $m is missing: swarm clusters may fail"
done
sysctl -qw fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=524288
mkdir -p -m 700 /run/moorage-nodes

# SSH: the host made both the host key and the authorized key, so the host
# can pin the guest's identity before it ever connects.
mkdir -p /run/sshd
chmod 600 $CFG/authorized_keys
install -m 600 $CFG/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key
install -m 644 $CFG/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ed25519_key.pub

# The data disk holds every image, container and volume. It is formatted
# only when its first MiB is all zeros (a new disk), never because a check
# failed: a damaged disk is repaired or left alone, not wiped.
DATA=$(disk_with_serial moorage-data) || { say "error: no data disk"; exit 1; }
if cmp -s -n 1048576 "$DATA" /dev/zero; then
    say "formatting new data disk"
    mkfs.ext4 -q -L moorage-data -E lazy_itable_init=1,lazy_journal_init=1 "$DATA"
fi
e2fsck -p "$DATA" > /dev/console 2>&1
fsck_rc=$?
if [ $fsck_rc -ge 4 ]; then
    say "error: data disk needs manual repair (e2fsck exit $fsck_rc); not mounting it"
    exit 1
fi
mkdir -p /mnt/data
mount -t ext4 -o noatime "$DATA" /mnt/data || { say "error: cannot mount data disk"; exit 1; }
# Grown in the config? Fill the disk. Online, because resize2fs refuses an
# unmounted file system that was not just checked with e2fsck -f.
resize2fs "$DATA" > /dev/console 2>&1
for d in docker containerd; do
    mkdir -p /mnt/data/$d /var/lib/$d
    mount --bind /mnt/data/$d /var/lib/$d
done
say "data $(df -h /mnt/data | awk 'NR==2 {print $2}')"

# The guest's root has a home of its own, kept on the data disk. The host
# user's home is shared at its own path, which for root is /root: if that
# were also the guest root's home, every command the host sends would run the
# host user's dotfiles (a .bashrc that runs pyenv blocked every session on a
# lock file) and could change them.
mkdir -p /mnt/data/root
chmod 700 /mnt/data/root
sed -i 's#^\(root:[^:]*:[^:]*:[^:]*:[^:]*:\)[^:]*:#\1/mnt/data/root:#' /etc/passwd

# Shared folders: host folders at the host's own absolute paths, mounted before
# the engine starts so that `docker run -v "$PWD":/src` works unchanged.
# shares.conf: one "MECHANISM<TAB>TAG<TAB>PATH" line per folder. A folder that
# cannot be mounted is a warning, not a failed boot: the engine is still useful.
# sshfs folders are mounted by the host agent once it is connected: dockerd
# (run-dockerd.sh) waits for $CFG/shares-ready, which the agent then writes.
sshfs_pending=""
if [ -s $CFG/shares.conf ]; then
    modprobe virtiofs 2>/dev/null
    tab=$(printf '\t')
    while IFS="$tab" read -r mech tag path; do
        [ -n "$path" ] || continue
        if [ "$mech" = sshfs ] && mkdir -p "$path"; then
            sshfs_pending=yes
        elif [ "$mech" = virtiofs ] && mkdir -p "$path" && mount -t virtiofs "$tag" "$path"; then
            # Read ahead 1 MiB, not 128 KiB: each read request is a round trip
            # to virtiofsd, and 1 MiB read a 512 MiB file 1.4x as fast here.
            echo 1024 > "/sys/class/bdi/$(mountpoint -d "$path")/read_ahead_kb"
            say "shared $path ($mech)"
        else
            say "warning: the shared folder $path could not be mounted ($mech)"
        fi
    done < $CFG/shares.conf
fi
if [ -n "$sshfs_pending" ]; then
    modprobe fuse 2>/dev/null
else
    touch $CFG/shares-ready
fi

mkdir -p /etc/docker
cp $CFG/daemon.json /etc/docker/daemon.json
say "boot done"
