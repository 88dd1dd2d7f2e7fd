"""What a cluster looks like now, from two sources, and what follows from it. Pure.

- the machine's engine lists the node containers: running, paused (a ``freeze``),
  exited (a ``kill``, a stop, a crash), and the networks each is on (a
  ``partition`` takes a node off its cluster's);
- a manager with a leader lists the swarm's nodes in the engine's own words:
  ``ready``/``down``, ``active``/``drain``, ``leader``/``reachable``/``unreachable``.

From them: each node's ``NodeInfo``, whether the cluster has quorum and, when it has
not, which managers are gone and the command that recovers; which gate targets a
connection to the cluster or to a routing-mesh port should try, best first; and the
changes worth an event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moorage.api.schema import ClusterState, NodeInfo
from moorage.swarm.record import ClusterRecord, NodeRecord
from moorage.swarm.spec import LABEL_CLUSTER, network_name


@dataclass(frozen=True)
class ContainerFacts:
    state: str
    """The engine's: running, paused, exited, created, restarting, dead."""
    networks: frozenset[str]
    image: str


def container_facts(containers: Sequence[Mapping[str, Any]]) -> dict[str, ContainerFacts]:
    """Node containers by name, from ``GET /containers/json?all=1``."""
    facts = {}
    for c in containers:
        if LABEL_CLUSTER not in (c.get("Labels") or {}):
            continue
        name = str((c.get("Names") or ["?"])[0]).lstrip("/")
        networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
        facts[name] = ContainerFacts(
            str(c.get("State", "")), frozenset(networks), str(c.get("Image"))
        )
    return facts


@dataclass(frozen=True)
class SwarmFacts:
    """What a manager said: its ``GET /nodes`` (None when no manager answered with a
    leader), which manager said it, and the last manager's error otherwise."""

    nodes: Sequence[Mapping[str, Any]] | None = None
    answered_by: str | None = None
    error: str | None = None
    locked: tuple[str, ...] = ()
    """Managers that said they are locked (autolock, after a restart)."""


def _swarm_node(nodes: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    """The swarm's entry for hostname ``name``. A node that left and joined again has a
    stale entry too (Down): the one that is not down, else the newest."""
    mine = [n for n in nodes if (n.get("Description") or {}).get("Hostname") == name]
    if not mine:
        return None
    live = [n for n in mine if (n.get("Status") or {}).get("State") != "down"]
    return max(live or mine, key=lambda n: str(n.get("CreatedAt", "")))


def node_info(
    record: ClusterRecord,
    node: NodeRecord,
    container: ContainerFacts | None,
    swarm: SwarmFacts,
    socket: str | None,
) -> NodeInfo:
    entry = _swarm_node(swarm.nodes, node.name) if swarm.nodes is not None else None
    spec = record.spec(node)
    if entry is None:
        return NodeInfo(
            name=node.name,
            role=node.role,
            address=spec.address,
            container=container.state if container else "missing",
            drill=node.drill,
            stopped=node.stopped,
            socket=socket,
        )
    manager = entry.get("ManagerStatus") or {}
    return NodeInfo(
        name=node.name,
        role=str((entry.get("Spec") or {}).get("Role", node.role)),
        address=spec.address,
        container=container.state if container else "missing",
        drill=node.drill,
        stopped=node.stopped,
        state=(entry.get("Status") or {}).get("State"),
        availability=(entry.get("Spec") or {}).get("Availability"),
        manager=manager.get("Reachability"),
        leader=bool(manager.get("Leader")),
        engine_version=((entry.get("Description") or {}).get("Engine") or {}).get("EngineVersion"),
        socket=socket,
    )


def connected(record: ClusterRecord, info: NodeInfo, facts: Mapping[str, ContainerFacts]) -> bool:
    container = facts.get(info.name)
    return container is not None and network_name(record.name) in container.networks


def live(info: NodeInfo) -> bool:
    """The node's engine can answer: its container runs (not frozen) and no drill cut
    it off. Whether the swarm agrees is ``info.state``."""
    return info.container == "running" and info.drill not in ("frozen", "partitioned")


def manager_routes(infos: Sequence[NodeInfo]) -> list[str]:
    """Gate targets for the cluster's socket: the leader, then reachable managers, then
    any other live one (it may have become the leader since the last look)."""

    def rank(info: NodeInfo) -> int:
        return 0 if info.leader else 1 if info.manager == "reachable" else 2

    managers = [i for i in infos if i.role == "manager" and live(i)]
    return [f"node {i.name}" for i in sorted(managers, key=rank)]


def mesh_routes(infos: Sequence[NodeInfo], port: int) -> list[str]:
    """Gate targets for a routing-mesh port: every live node serves it (IPVS sends
    the connection on to a task), ready ones first."""
    nodes = sorted((i for i in infos if live(i)), key=lambda i: i.state != "ready")
    return [f"tcp {i.address} {port}" for i in nodes]


def _gone(info: NodeInfo) -> str | None:
    """Why a manager cannot take part in Raft now, or None."""
    if info.drill:
        return info.drill
    if info.stopped:
        return "stopped"
    if info.container != "running":
        return info.container
    return None


@dataclass(frozen=True)
class Quorum:
    ok: bool
    problem: str | None = None
    fix: str | None = None


def quorum(record: ClusterRecord, infos: Sequence[NodeInfo], swarm: SwarmFacts) -> Quorum:
    """Whether the managers can decide anything, and if not why and what to run."""
    if swarm.nodes is not None:
        return Quorum(True)
    name = record.name
    if swarm.locked:
        key = f"`moorage cluster unlock {name}` with the key `docker swarm unlock-key` gave"
        return Quorum(
            False,
            f"manager(s) {', '.join(swarm.locked)} are locked (autolock) since they restarted",
            f"{key}; recovering a locked cluster also needs them unlocked first",
        )
    managers = [i for i in infos if i.role == "manager"]
    gone = [(m, why) for m in managers if (why := _gone(m)) is not None]
    alive = [m for m in managers if _gone(m) is None]
    if len(alive) > len(managers) // 2:
        return Quorum(
            False,
            f"no manager answers with a leader ({swarm.error or 'no answer'})",
            "wait a few seconds while the managers elect one; "
            f"`moorage cluster status {name}` looks again",
        )
    names = ", ".join(f"{m.name} ({why})" for m, why in gone)
    problem = (
        f"quorum lost: {len(gone)} of {len(managers)} managers are gone: {names}; the "
        "services keep running, but the swarm can change nothing until a majority is back"
    )
    fix = f"`moorage cluster heal {name}` brings back what drills took"
    if alive:
        fix += (
            f"; if they cannot come back, `moorage cluster recover {name}` makes a new "
            f"cluster from {alive[0].name}, with its services, and joins the others again"
        )
    return Quorum(False, problem, fix)


def cluster_state(
    record: ClusterRecord, infos: Sequence[NodeInfo], q: Quorum, creating: bool
) -> ClusterState:
    if creating:
        return "creating"
    if record.stopped:
        return "stopped"
    if not q.ok:
        return "no-quorum"
    healthy = all(i.state == "ready" and live(i) for i in infos if not i.stopped)
    return "running" if healthy else "degraded"


def describe(info: NodeInfo) -> str:
    """One node's condition, for events and the CLI: the drill or container first (what
    was done to it), then the swarm's words."""
    parts = []
    if info.stopped:
        parts.append("stopped")
    elif info.drill:
        parts.append(info.drill)
    elif info.container != "running":
        parts.append(info.container)
    if info.state:
        parts.append(info.state)
    if info.leader:
        parts.append("leader")
    elif info.manager:
        parts.append(info.manager)
    if info.availability and info.availability != "active":
        parts.append(info.availability)
    return ", ".join(parts) or "unknown"


def changes(before: Sequence[NodeInfo], after: Sequence[NodeInfo]) -> list[tuple[str, str]]:
    """(node, message) for each node whose condition changed, as events carry them."""
    old = {i.name: describe(i) for i in before}
    out = []
    for info in after:
        now = describe(info)
        if old.get(info.name) != now:
            out.append((info.name, f"{info.name}: {now}"))
    return out
