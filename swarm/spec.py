"""A cluster as data: its nodes, their names and addresses, their timers, and the
container each node runs in. Pure: no engine is asked here (kind keeps its node
spec the same way, ``pkg/cluster/internal/providers/docker/provision.go``).

A cluster ``NAME`` lives in one machine's VM:

- a bridge network ``moorage-swarm-NAME`` with its own /24 from ``172.30.0.0/16``
  (``172.30.N.0/24``, gateway ``.1``), so clusters never share an address;
- managers ``NAME-m1``, ``NAME-m2``, … at ``.11``, ``.12``, …, workers ``NAME-w1``, …
  at ``.101``, …: static, so a manager keeps its Raft address across restarts;
- each node a privileged container of that name (also its hostname, so its swarm
  hostname) running its own dockerd, whose ``/var/lib/docker`` is a folder of the
  data disk (overlay2 does not work on overlayfs) and whose ``/usr`` is the guest
  image's own, read-only: the node image is the guest's root without it (~8 MB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from moorage.errors import ConfigError

Role = Literal["manager", "worker"]
NETWORK_PREFIX = "moorage-swarm-"
SUBNETS = "172.30"
"""Clusters take /24s of 172.30.0.0/16; the gate reaches TCP ports there only."""
MANAGER_HOST = 10
WORKER_HOST = 100
MAX_MANAGERS = 7
MAX_WORKERS = 50
SWARM_PORT = 2377
ADDR_POOL = "10.201.0.0/16"
"""Where the swarm's own overlay networks take their subnets: away from QEMU's
10.0.2.0/24, which the default pool (10.0.0.0/8) would overlap."""
NODE_IMAGE = "moorage/swarm-node"
NODES_ROOT = "/mnt/data/swarm"
"""On the data disk, in the guest: ``NODES_ROOT/CLUSTER/NODE`` is a node's
``/var/lib/docker``."""
NODE_SOCKETS = "/run/moorage-nodes"
"""In the guest: ``NODE_SOCKETS/NODE/docker.sock`` is a node's engine, the gate's
``node NAME`` target."""
IMAGE_ROOT = "/run/moorage-image"
"""In the guest: the read-only image root, under the per-boot overlay."""
ENTRYPOINT = ["/usr/bin/docker-init", "--", "/usr/lib/moorage/swarm-node.sh"]
"""docker-init (tini) reaps the node's orphans; ``--init`` cannot be used, since it
mounts over ``/sbin``, a link into the read-only ``/usr``."""
LABEL_CLUSTER = "moorage.cluster"
LABEL_ROLE = "moorage.role"
STOP_SECONDS = 20
"""A node's dockerd gets this long to stop its own containers (10 s each, at once);
the guest's shutdown (``shutdown.sh``) waits for it."""

_CLUSTER_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}$")


def check_cluster_name(name: str) -> str:
    """Cluster names become node hostnames, container and network names and a docker
    context's name: letters and digits only, so ``NAME-m1`` parses back."""
    if not _CLUSTER_NAME.match(name):
        raise ConfigError(
            "cluster name",
            [f"{name!r} is not allowed: use 1-20 of a-z and 0-9, starting with a letter"],
        )
    return name


@dataclass(frozen=True)
class Timers:
    """The engine's own timers for a cluster, which bound every drill.

    - a node is marked Down after ``3 * heartbeat_s`` without a heartbeat
      (swarmkit's dispatcher grace period);
    - a new leader is elected ``election_ticks`` Raft ticks of 1 s after the old one
      went silent. Engine 26.1 has no setting for it: daemon.json refuses
      ``swarm-raft-election-tick`` and Raft ignores the swarm spec's ``ElectionTick``
      (measured: failover 8.5-10.1 s with 3 and with 10), so it stays 10.
    """

    heartbeat_s: float
    election_ticks: int = 10

    @property
    def down_after_s(self) -> float:
        return 3 * self.heartbeat_s


def timers(*, fast_drills: bool, accel: str | None) -> Timers:
    """Default heartbeats are 5 s. ``--fast-drills`` makes them 1 s, or 3 s under TCG
    emulation: there five nodes share one emulated CPU, and with 2 s a cluster busy
    restarting its tasks missed heartbeats, marked live nodes Down, moved their tasks
    and so made itself busier (docs/swarm.md)."""
    if not fast_drills:
        return Timers(heartbeat_s=5.0)
    return Timers(heartbeat_s=3.0 if accel == "tcg" else 1.0)


@dataclass(frozen=True)
class NodeSpec:
    cluster: str
    role: Role
    index: int
    subnet: int

    @property
    def name(self) -> str:
        return f"{self.cluster}-{'m' if self.role == 'manager' else 'w'}{self.index}"

    @property
    def address(self) -> str:
        host = (MANAGER_HOST if self.role == "manager" else WORKER_HOST) + self.index
        return f"{SUBNETS}.{self.subnet}.{host}"

    @property
    def data_dir(self) -> str:
        return f"{NODES_ROOT}/{self.cluster}/{self.name}"

    @property
    def socket_dir(self) -> str:
        return f"{NODE_SOCKETS}/{self.name}"


def network_name(cluster: str) -> str:
    return NETWORK_PREFIX + cluster


def subnet_cidr(subnet: int) -> str:
    return f"{SUBNETS}.{subnet}.0/24"


def gateway(subnet: int) -> str:
    return f"{SUBNETS}.{subnet}.1"


def parse_node_name(node: str) -> tuple[str, Role, int] | None:
    """``c1-m2`` -> ("c1", "manager", 2); None for a name that is no node's."""
    match = re.fullmatch(r"([a-z][a-z0-9]{0,19})-([mw])([1-9][0-9]{0,2})", node)
    if match is None:
        return None
    role: Role = "manager" if match.group(2) == "m" else "worker"
    return match.group(1), role, int(match.group(3))


def free_subnet(taken: set[int]) -> int:
    for n in range(1, 255):
        if n not in taken:
            return n
    raise ConfigError("cluster", ["every cluster subnet of 172.30.0.0/16 is taken: remove one"])


def check_counts(managers: int, workers: int) -> None:
    problems = []
    if not 1 <= managers <= MAX_MANAGERS:
        problems.append(f"managers = {managers}: allowed 1 to {MAX_MANAGERS} (odd counts keep "
                        "quorum best: 1, 3, 5, 7)")  # fmt: skip
    if not 0 <= workers <= MAX_WORKERS:
        problems.append(f"workers = {workers}: allowed 0 to {MAX_WORKERS}")
    if problems:
        raise ConfigError("cluster", problems)


def plan_nodes(cluster: str, subnet: int, managers: int, workers: int) -> list[NodeSpec]:
    """The nodes of a new cluster, managers first (the first one initialises it)."""
    check_counts(managers, workers)
    return [NodeSpec(cluster, "manager", i, subnet) for i in range(1, managers + 1)] + [
        NodeSpec(cluster, "worker", i, subnet) for i in range(1, workers + 1)
    ]


def next_node(cluster: str, subnet: int, role: Role, existing: list[NodeSpec]) -> NodeSpec:
    """The node ``cluster add`` makes: the lowest free index of its role."""
    used = {n.index for n in existing if n.role == role}
    index = next(i for i in range(1, 1000) if i not in used)
    limit = MAX_MANAGERS if role == "manager" else MAX_WORKERS
    if sum(1 for n in existing if n.role == role) >= limit:
        raise ConfigError("cluster", [f"a cluster has at most {limit} {role}s"])
    return NodeSpec(cluster, role, index, subnet)


def node_image(image_version: str) -> str:
    """The node image made from guest image ``image_version``: a new guest image makes
    a new node image, and nodes are recreated on it (their data stays)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", image_version)[:120] or "latest"
    return f"{NODE_IMAGE}:{tag}"


def node_image_command(image: str) -> str:
    """The guest command that makes the node image from the guest's own root."""
    excludes = " ".join(f"--exclude=./{d}" for d in ("usr", "boot", "lost+found", "mnt"))
    return (
        f"tar -C {IMAGE_ROOT} {excludes} -c . | docker import - {image} >/dev/null && "
        f"docker image inspect --format '{{{{.Id}}}}' {image}"
    )


@dataclass(frozen=True)
class ContainerSpec:
    """What ``docker create`` gets for one node, as docker-py's arguments:
    ``create`` for ``APIClient.create_container`` and ``host`` for
    ``APIClient.create_host_config``."""

    name: str
    image: str
    network: str
    address: str
    create: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)


def node_container(node: NodeSpec, image: str) -> ContainerSpec:
    """The container a node runs in: privileged (its dockerd makes namespaces,
    cgroups, iptables rules and IPVS tables), ``/run`` and ``/tmp`` in memory, its
    engine's data on the data disk, its engine socket in a guest folder the gate
    reaches, restarted by the machine's engine if its dockerd dies (a user's stop or
    a ``kill`` drill stays stopped)."""
    host = {
        "privileged": True,
        "binds": [
            f"{IMAGE_ROOT}/usr:/usr:ro",
            f"{node.data_dir}:/var/lib/docker",
            f"{node.socket_dir}:/moorage",
        ],
        "tmpfs": {"/run": "rw,nosuid,nodev,mode=755", "/tmp": "rw,nosuid,nodev,mode=1777"},
        "restart_policy": {"Name": "unless-stopped"},
        "network_mode": network_name(node.cluster),
        "cgroupns": "private",
        "log_config": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}},
    }
    create = {
        "hostname": node.name,
        "entrypoint": ENTRYPOINT,
        "labels": {LABEL_CLUSTER: node.cluster, LABEL_ROLE: node.role},
        "environment": [f"MOORAGE_NODE={node.name}"],
        "stop_signal": "SIGTERM",
        "stop_timeout": STOP_SECONDS,
    }
    return ContainerSpec(node.name, image, network_name(node.cluster), node.address, create, host)
