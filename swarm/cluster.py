"""A cluster's life: creating it as a list of actions (kind's ``actions/``), bringing
it back after the machine starts, the swarm's node operations, the fault drills,
healing, recovering lost quorum, loading images, and looking at it.

Everything here acts through ``Engines`` (the machine's engine, each node's engine)
and ``Guest`` (a command in the VM), which the agent passes in; what a cluster is
made of is ``swarm/spec.py``, what the user asked of it ``swarm/record.py``, what it
looks like ``swarm/observe.py``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import docker

from moorage.engine.ports import published_by_services
from moorage.errors import ConfigError, SwarmError
from moorage.steps import Step
from moorage.swarm import spec as spec_mod
from moorage.swarm.engines import Client, Engines, dropped, not_there, opened, speaking
from moorage.swarm.observe import ContainerFacts, SwarmFacts, container_facts
from moorage.swarm.record import ClusterRecord, NodeRecord
from moorage.swarm.spec import NodeSpec, Role

log = logging.getLogger("moorage.swarm")

Guest = Callable[[str, float], tuple[int, str]]
"""Run a shell command in the VM with a timeout: (exit status, output)."""

ENGINE_TIMEOUT = 300.0
"""How long the node engines may take to answer, all starting at once. Under TCG on
one emulated CPU they took 4-60 s here; a slower, busier host takes longer."""
JOIN_TIMEOUT = 180.0
READY_TIMEOUT = 180.0
CALL = 30.0
"""A node engine's patience for one ordinary call."""
NODE_TRIES = 3
NODE_RETRY_PAUSE = 2.0
LOOK = 4.0
"""A watch's patience for one manager: a frozen one never answers."""
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")


@dataclass
class Context:
    """What an operation on a cluster works through."""

    engines: Engines
    guest: Guest
    report: Callable[[str], None]
    check_cancel: Callable[[], None]
    image_version: str
    """The guest image's version: the node image is made from it."""


# ----- the parts -------------------------------------------------------------


def ensure_node_image(ctx: Context) -> str:
    """The node image of this guest image, made once (in seconds: ~8 MB)."""
    image = spec_mod.node_image(ctx.image_version)
    with opened(lambda: ctx.engines.machine(CALL)) as m, speaking("the node image"):
        try:
            m.inspect_image(image)
            return image
        except docker.errors.APIError as exc:
            if not not_there(exc):
                raise
    began = time.monotonic()
    rc, out = ctx.guest(spec_mod.node_image_command(image), 300)
    if rc != 0:
        raise SwarmError(f"could not make the swarm node image: {out.strip()[-500:]}")
    ctx.report(f"node image {image} made in {time.monotonic() - began:.1f}s")
    return image


def ensure_network(ctx: Context, record: ClusterRecord) -> None:
    name = spec_mod.network_name(record.name)
    with opened(lambda: ctx.engines.machine(CALL)) as m, speaking(f"the network {name}"):
        try:
            net = m.inspect_network(name)
        except docker.errors.APIError as exc:
            if not not_there(exc):
                raise
            pool = docker.types.IPAMPool(
                subnet=spec_mod.subnet_cidr(record.subnet), gateway=spec_mod.gateway(record.subnet)
            )
            m.create_network(
                name,
                driver="bridge",
                ipam=docker.types.IPAMConfig(pool_configs=[pool]),
                labels={spec_mod.LABEL_CLUSTER: record.name},
            )
            return
    subnets = [c.get("Subnet") for c in (net.get("IPAM") or {}).get("Config") or []]
    if spec_mod.subnet_cidr(record.subnet) not in subnets:
        raise SwarmError(
            f"the network {name} exists with subnet {subnets}, not "
            f"{spec_mod.subnet_cidr(record.subnet)}",
            fix=f"`docker network rm {name}` if it is not moorage's, then try again",
        )


def create_node(ctx: Context, node: NodeSpec, image: str) -> None:
    """Create and start the node's container (a leftover of the same name is replaced:
    its data stays on the data disk).

    A connection the machine's engine drops before it answers is tried again, up to
    ``NODE_TRIES`` times: it happened once under emulation with five nodes made at
    once, and replacing the container makes a second try safe. The engine's own
    refusals are not retried."""
    for attempt in range(1, NODE_TRIES + 1):
        try:
            _create_node_once(node, image, ctx)
            return
        except SwarmError as exc:
            if not dropped(exc) or attempt == NODE_TRIES:
                raise
            log.warning(
                "node %s: %s; trying again (%d of %d)", node.name, exc, attempt + 1, NODE_TRIES
            )
            ctx.report(f"{node.name}: the engine dropped the connection; trying again")
            time.sleep(NODE_RETRY_PAUSE)


def _create_node_once(node: NodeSpec, image: str, ctx: Context) -> None:
    c = spec_mod.node_container(node, image)
    with opened(lambda: ctx.engines.machine(CALL)) as m, speaking(f"node {node.name}"):
        try:
            m.remove_container(node.name, force=True)
        except docker.errors.APIError as exc:
            if not not_there(exc):
                raise
        m.create_container(
            image,
            name=node.name,
            host_config=m.create_host_config(**c.host),
            networking_config=m.create_networking_config(
                {c.network: m.create_endpoint_config(ipv4_address=c.address)}
            ),
            **c.create,
        )
        m.start(node.name)


def wait_engines(ctx: Context, nodes: Sequence[NodeSpec]) -> None:
    """Until each node's engine answers ``/_ping`` through its host socket."""
    timeout = ENGINE_TIMEOUT
    began = time.monotonic()
    waiting = {n.name for n in nodes}
    last_error: dict[str, str] = {}
    while waiting:
        ctx.check_cancel()
        for name in sorted(waiting):
            try:
                with opened(lambda name=name: ctx.engines.node(name, 3)) as n:  # type: ignore[misc]
                    n.ping()
            except Exception as exc:  # not there yet: every way of saying so
                last_error[name] = str(exc)
                continue
            waiting.discard(name)
            ctx.report(f"{name}: engine answers ({time.monotonic() - began:.1f}s)")
        if waiting and time.monotonic() - began > timeout:
            stuck = ", ".join(f"{n} ({last_error.get(n, '?')[:120]})" for n in sorted(waiting))
            raise SwarmError(
                f"the engines of {stuck} did not answer in {timeout:.0f}s",
                fix="`moorage shell docker logs NODE` shows the node's own log",
            )
        if waiting:
            time.sleep(0.5)


def swarm_spec(client: Client, record: ClusterRecord, autolock: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = client.create_swarm_spec(
        dispatcher_heartbeat_period=int(record.heartbeat_s * 1e9), autolock_managers=autolock
    )
    return spec


def init(ctx: Context, record: ClusterRecord, first: NodeSpec) -> None:
    with opened(lambda: ctx.engines.node(first.name, 60)) as n, speaking(f"{first.name}: init"):
        n.init_swarm(
            advertise_addr=first.address,
            listen_addr=f"0.0.0.0:{spec_mod.SWARM_PORT}",
            default_addr_pool=[spec_mod.ADDR_POOL],
            subnet_size=24,
            swarm_spec=swarm_spec(n, record),
        )
    ctx.report(f"{first.name}: swarm initialised, heartbeat {record.heartbeat_s:g}s")


def tokens(ctx: Context, manager: str) -> dict[str, str]:
    """The join tokens (secrets: never logged, never in an event)."""
    with opened(lambda: ctx.engines.node(manager, CALL)) as n, speaking("the join tokens"):
        found: dict[str, str] = n.inspect_swarm()["JoinTokens"]
    return found


def swarm_nodes(ctx: Context, manager: str, timeout: float = CALL) -> list[dict[str, Any]]:
    with opened(lambda: ctx.engines.node(manager, timeout)) as n, speaking(f"{manager}: nodes"):
        nodes: list[dict[str, Any]] = n.nodes()
    return nodes


def _ready(nodes: Sequence[dict[str, Any]], name: str) -> bool:
    return any(
        (n.get("Description") or {}).get("Hostname") == name
        and (n.get("Status") or {}).get("State") == "ready"
        for n in nodes
    )


def join(ctx: Context, manager: NodeSpec, node: NodeSpec, role: Role) -> None:
    """Join ``node`` through ``manager``, retrying what is only slow: under emulation
    the engine itself said "Timeout was reached before node joined" and "context
    deadline exceeded" for joins that went on in the background. A join refused for a
    reason (a bad token) fails at once."""
    token = tokens(ctx, manager.name)["Manager" if role == "manager" else "Worker"]
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        ctx.check_cancel()
        try:
            with opened(lambda: ctx.engines.node(node.name, 90)) as n:
                n.join_swarm(
                    [f"{manager.address}:{spec_mod.SWARM_PORT}"],
                    token,
                    listen_addr=f"0.0.0.0:{spec_mod.SWARM_PORT}",
                    advertise_addr=node.address,
                )
            break
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if "already part of a swarm" in text:
                break
            if not slow_join(text) or time.monotonic() > deadline:
                raise SwarmError(f"{node.name} could not join the swarm: {text}") from exc
        except Exception as exc:  # the transport timed out: the join may go on
            if time.monotonic() > deadline:
                raise SwarmError(f"{node.name} could not join the swarm: {exc}") from exc
        if _wait(lambda: _ready(swarm_nodes(ctx, manager.name), node.name), 20, ctx):
            break
    ctx.report(f"{node.name}: joined as {role}")


def slow_join(text: str) -> bool:
    """Whether a join's error means "not yet" rather than "no"."""
    return any(
        s in text
        for s in ("Timeout was reached", "context deadline exceeded", "continue in the background")
    )


def _wait(done: Callable[[], bool], seconds: float, ctx: Context) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.check_cancel()
        try:
            if done():
                return True
        except SwarmError:
            pass
        time.sleep(1)
    return False


def wait_ready(ctx: Context, record: ClusterRecord, manager: str, names: Sequence[str]) -> None:
    if not _wait(
        lambda: all(_ready(swarm_nodes(ctx, manager), n) for n in names), READY_TIMEOUT, ctx
    ):
        raise SwarmError(
            f"not every node of {record.name} was Ready in {READY_TIMEOUT:.0f}s",
            fix=f"`moorage cluster nodes {record.name}` shows which",
        )
    ctx.report(f"all {len(names)} nodes ready")


def create_steps(ctx: Context, record: ClusterRecord, save: Callable[[], None]) -> list[Step]:
    """``cluster create`` as labelled steps: the node image, the network, the nodes, their
    engines, init on the first manager, the other managers one at a time (Raft adds one
    member at a time), the workers together, then every node Ready."""
    nodes = record.specs()
    first, managers = nodes[0], [n for n in nodes[1:] if n.role == "manager"]
    workers = [n for n in nodes if n.role == "worker"]
    image: list[str] = []

    def make_image() -> None:
        image.append(ensure_node_image(ctx))
        record.image = image[0]
        save()

    def make_node(node: NodeSpec) -> None:
        ctx.check_cancel()
        create_node(ctx, node, image[0])
        ctx.report(f"{node.name}: container started at {node.address}")

    def make_nodes() -> None:
        parallel([lambda n=n: make_node(n) for n in nodes])  # type: ignore[misc]

    def join_managers() -> None:
        for node in managers:
            join(ctx, first, node, "manager")
            _joined(record, node.name, save)

    def join_workers() -> None:
        parallel([lambda n=n: join(ctx, first, n, "worker") for n in workers])  # type: ignore[misc]
        for node in workers:
            _joined(record, node.name, save)

    def do_init() -> None:
        init(ctx, record, first)
        _joined(record, first.name, save)

    return [
        Step("image", lambda: "the node image", make_image),
        Step(
            "network",
            lambda: f"network {spec_mod.network_name(record.name)}",
            lambda: ensure_network(ctx, record),
        ),
        Step("nodes", lambda: f"{len(nodes)} node containers", make_nodes),
        Step(
            "engines", lambda: "waiting for every node's engine", lambda: wait_engines(ctx, nodes)
        ),
        Step("init", lambda: f"swarm init on {first.name}", do_init),
        Step("managers", lambda: f"{len(managers)} more manager(s), one at a time", join_managers),
        Step("workers", lambda: f"{len(workers)} worker(s)", join_workers),
        Step(
            "ready",
            lambda: "waiting for every node to be Ready",
            lambda: wait_ready(ctx, record, first.name, [n.name for n in nodes]),
        ),
    ]


def _joined(record: ClusterRecord, name: str, save: Callable[[], None]) -> None:
    node = record.node(name)
    if node is not None:
        node.joined = True
        save()


def parallel(jobs: Sequence[Callable[[], None]]) -> None:
    """Run ``jobs`` at once; raise the first failure after all have ended."""
    if not jobs:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        futures = [pool.submit(job) for job in jobs]
    for future in futures:
        future.result()


# ----- looking at a cluster ------------------------------------------------------


def containers(ctx_engines: Engines, cluster: str) -> dict[str, ContainerFacts]:
    with opened(lambda: ctx_engines.machine(10)) as m, speaking("the node containers"):
        found = m.containers(all=True, filters={"label": f"{spec_mod.LABEL_CLUSTER}={cluster}"})
    return container_facts(found)


def look(
    engines: Engines, record: ClusterRecord, facts: dict[str, ContainerFacts], order: Sequence[str]
) -> tuple[SwarmFacts, set[tuple[str, str, int]]]:
    """Ask the managers, in ``order`` (the last look's best first), for the swarm's
    nodes and services; the first that answers with a leader is believed. Frozen and
    stopped managers are not asked: they cannot answer."""
    names = list(order) + [n.name for n in record.nodes if n.role == "manager"]
    asked: set[str] = set()
    error: str | None = None
    locked: list[str] = []
    for name in names:
        c = facts.get(name)
        if name in asked or c is None or c.state != "running":
            continue
        asked.add(name)
        node = record.node(name)
        if node is not None and node.drill == "frozen":
            continue
        try:
            with opened(lambda name=name: engines.node(name, LOOK)) as n:  # type: ignore[misc]
                nodes = n.nodes()
                services = published_by_services(n.services())
            return SwarmFacts(nodes, name), services
        except docker.errors.APIError as exc:
            error = str(exc.explanation or exc)
            if "locked" in error or "unlock" in error:
                locked.append(name)
        except Exception as exc:  # a manager that does not answer: ask the next
            error = f"{name}: {exc}"
    return SwarmFacts(None, None, error, tuple(locked)), set()


# ----- node operations and drills ---------------------------------------------------


def _swarm_entry(ctx: Context, manager: str, name: str) -> dict[str, Any]:
    """The swarm's entry for hostname ``name``: the live one when a node that joined
    again left a stale (Down) one behind."""
    entries = [
        e for e in swarm_nodes(ctx, manager) if (e.get("Description") or {}).get("Hostname") == name
    ]
    if not entries:
        raise SwarmError(f"the swarm has no node {name}", fix="`moorage cluster nodes` lists them")
    return max(
        entries,
        key=lambda e: ((e.get("Status") or {}).get("State") != "down", str(e.get("CreatedAt", ""))),
    )


def update_node(
    ctx: Context,
    manager: str,
    name: str,
    *,
    role: str | None = None,
    availability: str | None = None,
) -> None:
    """The swarm's own node update (``docker node update --role/--availability``)."""
    entry = _swarm_entry(ctx, manager, name)
    node_spec = dict(entry.get("Spec") or {})
    if role is not None:
        node_spec["Role"] = role
    if availability is not None:
        node_spec["Availability"] = availability
    with opened(lambda: ctx.engines.node(manager, CALL)) as n, speaking(f"updating {name}"):
        n.update_node(entry["ID"], entry["Version"]["Index"], node_spec)


def container_action(ctx: Context, record: ClusterRecord, node: NodeRecord, action: str) -> None:
    """``stop``, ``start``, ``kill``, ``freeze``, ``unfreeze``, ``partition``, ``connect``
    on the node's container in the machine's engine."""
    net = spec_mod.network_name(record.name)
    with opened(lambda: ctx.engines.machine(60)) as m, speaking(f"{action} {node.name}"):
        if action == "stop":
            m.stop(node.name, timeout=spec_mod.STOP_SECONDS)
        elif action == "start":
            m.start(node.name)
        elif action == "kill":
            m.kill(node.name)
        elif action == "freeze":
            m.pause(node.name)
        elif action == "unfreeze":
            m.unpause(node.name)
        elif action == "partition":
            m.disconnect_container_from_network(node.name, net, force=True)
        elif action == "connect":
            m.connect_container_to_network(node.name, net, ipv4_address=record.spec(node).address)
        else:
            raise SwarmError(f"no such node action: {action}")


def heal(ctx: Context, record: ClusterRecord, facts: dict[str, ContainerFacts]) -> list[str]:
    """Undo every drill, and start what died by itself: unfreeze frozen nodes, put cut-off
    ones back on the network at their address, start killed and crashed ones. Nodes the
    user stopped stay stopped. Returns what was done, a line a node."""
    done = []
    net = spec_mod.network_name(record.name)
    for node in record.nodes:
        c = facts.get(node.name)
        if node.stopped or c is None:
            continue
        steps = []
        if c.state == "paused":
            steps.append("unfreeze")
        if net not in c.networks:
            steps.append("connect")
        if c.state in ("exited", "created", "dead"):
            steps.append("start")
        for step in steps:
            container_action(ctx, record, node, step)
        node.drill = None
        if steps:
            done.append(f"{node.name}: {', '.join(_HEALED[s] for s in steps)}")
    return done


_HEALED = {"unfreeze": "unfrozen", "connect": "reconnected", "start": "started"}


def remove_node_data(ctx: Context, cluster: str, node: str | None = None) -> None:
    """Erase a node's (or the whole cluster's) data folders on the data disk."""
    path = f"{spec_mod.NODES_ROOT}/{cluster}" + (f"/{node}" if node else "")
    sockets = f"{spec_mod.NODE_SOCKETS}/{node}" if node else f"{spec_mod.NODE_SOCKETS}/{cluster}-*"
    rc, out = ctx.guest(f"rm -rf {shlex.quote(path)} {sockets}", 120)
    if rc != 0:
        raise SwarmError(f"could not remove {path} in the VM: {out.strip()[-300:]}")


def remove_container(ctx: Context, name: str) -> None:
    with opened(lambda: ctx.engines.machine(60)) as m, speaking(f"removing {name}"):
        try:
            m.remove_container(name, force=True)
        except docker.errors.APIError as exc:
            if not not_there(exc):
                raise


def remove_network(ctx: Context, cluster: str) -> None:
    with opened(lambda: ctx.engines.machine(60)) as m, speaking("removing the network"):
        try:
            m.remove_network(spec_mod.network_name(cluster))
        except docker.errors.APIError as exc:
            if not not_there(exc):
                raise


def leave(ctx: Context, name: str) -> None:
    with opened(lambda: ctx.engines.node(name, 60)) as n, speaking(f"{name}: leave"):
        try:
            n.leave_swarm(force=True)
        except docker.errors.APIError as exc:
            if "not part of a swarm" not in str(exc.explanation or exc):
                raise


def remove_swarm_entries(ctx: Context, manager: str, name: str) -> None:
    """Forget every entry the swarm has for hostname ``name`` (demoting a manager first)."""
    for entry in swarm_nodes(ctx, manager):
        if (entry.get("Description") or {}).get("Hostname") != name:
            continue
        with opened(lambda: ctx.engines.node(manager, CALL)) as n, speaking(f"forgetting {name}"):
            if (entry.get("Spec") or {}).get("Role") == "manager":
                node_spec = dict(entry["Spec"], Role="worker")
                try:
                    n.update_node(entry["ID"], entry["Version"]["Index"], node_spec)
                except docker.errors.APIError as exc:
                    # After --force-new-cluster the lost managers are still listed as
                    # managers but are no Raft members, and cannot be demoted: removed
                    # with --force they go all the same.
                    if "raft memberlist" not in str(exc.explanation or exc):
                        raise
            n.remove_node(entry["ID"], force=True)


def recover(
    ctx: Context, record: ClusterRecord, facts: dict[str, ContainerFacts], save: Callable[[], None]
) -> str:
    """Lost quorum that will not come back: a new cluster from a surviving manager
    (``swarm init --force-new-cluster``, which keeps the services, networks, secrets and
    the workers), then every other manager forgotten, brought back, emptied of its old
    swarm state and joined again as a manager. Returns the survivor's name.

    An autolocked survivor must be unlocked first: its Raft log is encrypted with the
    key, and nothing can read it before."""
    managers = [n for n in record.nodes if n.role == "manager" and not n.stopped]
    survivor = None
    for node in managers:
        c = facts.get(node.name)
        if c is None or c.state != "running" or node.drill in ("frozen", "partitioned"):
            continue
        try:
            with opened(lambda node=node: ctx.engines.node(node.name, 30)) as n:  # type: ignore[misc]
                state = n.info()["Swarm"]["LocalNodeState"]
        except Exception as exc:  # not answering: not a survivor
            log.info("recover: %s does not answer: %s", node.name, exc)
            continue
        if state == "locked":
            raise SwarmError(
                f"{node.name} survives but is locked (autolock)",
                fix=f"`moorage cluster unlock {record.name}` with its key first, then recover",
            )
        survivor = node
        break
    if survivor is None:
        raise SwarmError(
            f"no manager of {record.name} runs and answers, so nothing can be recovered",
            fix=f"`moorage cluster heal {record.name}` starts them; their Raft state comes back",
        )
    spec = record.spec(survivor)
    with opened(lambda: ctx.engines.node(survivor.name, 90)) as n, speaking("force-new-cluster"):
        n.init_swarm(
            advertise_addr=spec.address,
            listen_addr=f"0.0.0.0:{spec_mod.SWARM_PORT}",
            force_new_cluster=True,
        )
    ctx.report(f"{survivor.name}: a new cluster of one manager, with the old one's services")
    if not _wait(lambda: bool(swarm_nodes(ctx, survivor.name, 5)), 60, ctx):
        raise SwarmError(f"{survivor.name} did not answer after --force-new-cluster")
    for node in managers:
        if node is survivor:
            continue
        remove_swarm_entries(ctx, survivor.name, node.name)
        heal(ctx, record, {node.name: facts[node.name]} if node.name in facts else {})
        save()
        if node.name not in facts:
            create_node(ctx, record.spec(node), record.image)
        wait_engines(ctx, [record.spec(node)])
        leave(ctx, node.name)
        join(ctx, spec, record.spec(node), "manager")
    heal(ctx, record, facts)  # workers that drills took
    save()
    return survivor.name


def image_ref(image: str) -> str:
    """The reference the engine gives a name: ``busybox`` is ``busybox:latest``."""
    return image if ":" in image.rsplit("/", 1)[-1] or "@" in image else f"{image}:latest"


def load_images(
    ctx: Context, record: ClusterRecord, facts: dict[str, ContainerFacts], images: Sequence[str]
) -> list[str]:
    """Copy images of the machine's engine into every running node, inside the VM
    (``docker save`` once, ``docker load`` into each node at once). Returns the
    references services should use: the same name on every node, and the same image
    ID, which the load keeps."""
    refs = []
    with opened(lambda: ctx.engines.machine(CALL)) as m:
        for image in images:
            if not _IMAGE_REF.match(image):
                raise ConfigError("image", [f"{image!r} is not an image reference"])
            ref = image_ref(image)
            with speaking(f"the image {image}"):
                try:
                    m.inspect_image(ref)
                except docker.errors.APIError as exc:
                    if not_there(exc):
                        raise SwarmError(
                            f"the machine's engine has no image {ref}",
                            fix="`docker build` or `docker load` it on the machine first",
                        ) from exc
                    raise
            refs.append(ref)
    nodes = [
        n.name
        for n in record.nodes
        if (c := facts.get(n.name)) is not None and c.state == "running"
    ]
    if not nodes:
        raise SwarmError(
            f"no node of {record.name} runs", fix=f"`moorage cluster start {record.name}`"
        )
    tar = f"{spec_mod.NODES_ROOT}/.load-{record.name}.tar"
    loads = " ".join(
        f"docker -H unix://{spec_mod.NODE_SOCKETS}/{n}/docker.sock load -q -i {tar} "
        f"> /tmp/load-{n}.log 2>&1 & "
        for n in nodes
    )
    script = (
        f"set -e; docker save -o {tar} {' '.join(shlex.quote(r) for r in refs)}; "
        f"{loads} fail=0; for j in $(jobs -p); do wait $j || fail=1; done; rm -f {tar}; "
        f"[ $fail = 0 ] || {{ cat /tmp/load-*.log; exit 1; }}"
    )
    ctx.report(f"loading {', '.join(refs)} into {len(nodes)} nodes")
    rc, out = ctx.guest(f"bash -c {shlex.quote(script)}", 1800)
    if rc != 0:
        raise SwarmError(f"loading the images failed: {out.strip()[-500:]}")
    return refs


def unlock(ctx: Context, record: ClusterRecord, key: str, only: str | None) -> list[str]:
    """Unlock each locked manager (or ``only``) with ``key``; returns their names."""
    done = []
    for node in record.nodes:
        if node.role != "manager" or (only is not None and node.name != only):
            continue
        try:
            with opened(lambda node=node: ctx.engines.node(node.name, 30)) as n:  # type: ignore[misc]
                if n.info()["Swarm"]["LocalNodeState"] != "locked":
                    continue
                with speaking(f"{node.name}: unlock"):
                    n.unlock_swarm(key)
        except SwarmError:
            raise
        except Exception as exc:  # a node that does not answer cannot be unlocked now
            log.info("unlock: %s does not answer: %s", node.name, exc)
            continue
        done.append(node.name)
    if only is not None and not done:
        raise SwarmError(f"{only} is not a locked manager of {record.name}")
    return done


# ----- the whole cluster -------------------------------------------------------------


def stop_all(ctx: Context, record: ClusterRecord) -> None:
    """Workers first, then managers together, each dockerd given time to stop its
    containers."""
    for role in ("worker", "manager"):
        parallel(
            [
                lambda n=n: container_action(ctx, record, n, "stop")  # type: ignore[misc]
                for n in record.nodes
                if n.role == role
            ]
        )


def start_all(ctx: Context, record: ClusterRecord, facts: dict[str, ContainerFacts]) -> None:
    """Bring a cluster back as the user left it: nodes they stopped stay stopped, drills
    are undone (they do not outlive a stop), containers made from an older node image
    are made again on the current one (their data stays), missing ones are made."""
    image = ensure_node_image(ctx)
    ensure_network(ctx, record)
    for node in record.nodes:
        c = facts.get(node.name)
        if c is not None and c.image == image:
            continue
        create_node(ctx, record.spec(node), image)
        if node.stopped:
            container_action(ctx, record, node, "stop")
        ctx.report(f"{node.name}: container made on {image}")
        facts[node.name] = ContainerFacts(
            "running", frozenset({spec_mod.network_name(record.name)}), image
        )
    record.image = image
    for line in heal(ctx, record, {k: v for k, v in facts.items()}):
        ctx.report(line)
