#!/bin/sh
# The entrypoint of a swarm node: a privileged container in the machine's VM that
# runs its own dockerd (swarm/spec.py says what the container gets). Its /usr is
# the guest image's own, read-only, so this script and the engine come from there.
# Runs under docker-init (tini), which reaps orphans; dockerd then is its child.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# cgroup v2 nesting: a cgroup with processes in it cannot delegate controllers,
# so move everything (this script) into a leaf first, then hand every controller
# down to the containers the node's dockerd will make.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
    sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
        > /sys/fs/cgroup/cgroup.subtree_control || :
fi

# Two sockets: the node's own, and one in /moorage, a folder of the guest
# (/run/moorage-nodes/NODE) that the docker gate reaches for the host agent.
mkdir -p /etc/docker /moorage /var/log
cat > /etc/docker/daemon.json <<JSON
{
  "hosts": ["unix:///var/run/docker.sock", "unix:///moorage/docker.sock"],
  "data-root": "/var/lib/docker",
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"}
}
JSON
echo "swarm node ${MOORAGE_NODE:-?}: dockerd starting"
exec dockerd >>/var/log/dockerd.log 2>&1
