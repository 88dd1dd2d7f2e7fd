"""The machine's swarm clusters, as the agent owns them: their operations, their
sockets on the host, their routing-mesh ports, and a watch that says what changed.

What a cluster is and how each operation is done is the swarm layer's
(``swarm/``); this module runs them for clients:

- operations that take a while (create, start, stop, rm, add, heal, recover, load)
  run one at a time per cluster in a thread of their own, and speak in events that
  carry the cluster's name, each ending in ``done`` or ``error`` (``schema.ends``);
- node operations and drills answer at once with the cluster's status;
- while the machine runs, each cluster has a docker context whose socket reaches a
  manager that answers (the leader first), each node a socket of its own, and each
  routing-mesh port of its services a listener on the host's loopback that reaches
  the port through a live node; all go through the guest's docker gate;
- the watch looks at every cluster every ``WATCH_EVERY`` seconds (one container list
  of the machine's engine, and ``/nodes`` and ``/services`` of one manager) and
  emits a ``cluster`` event for each node whose condition changed.

Clusters come back with the machine: when it is ready, each cluster that was not
stopped is started again as the user left it (``swarm.cluster.start_all``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from moorage import config as config_mod
from moorage.agent.deps import Closer
from moorage.api.schema import (
    Accepted,
    ClusterList,
    ClusterStatus,
    NodeInfo,
    Operation,
    OperationRunning,
    error_body,
)
from moorage.engine.context import cluster_context_name
from moorage.engine.gate_relay import Gate, Routes
from moorage.errors import MoorageError, SwarmError
from moorage.runtime import RuntimeRecord
from moorage.steps import run_chain
from moorage.swarm import cluster as ops
from moorage.swarm import observe
from moorage.swarm import record as records
from moorage.swarm import spec as spec_mod
from moorage.swarm.engines import Engines, opened, speaking
from moorage.swarm.observe import SwarmFacts
from moorage.swarm.record import ClusterRecord, NodeRecord

if TYPE_CHECKING:
    from moorage.agent.machine import MachineAgent

log = logging.getLogger("moorage.agent")

WATCH_EVERY = 3.0
AVAILABILITY = {"drain": "drain", "pause": "pause", "activate": "active"}
"""Node actions and the swarm's words for the availability each sets."""
QUORUM_WAIT = 120.0


@dataclass
class _Cluster:
    """One cluster's live state in the agent."""

    record: ClusterRecord
    status: ClusterStatus
    op: Operation | None = None
    sockets: dict[str, Closer] = field(default_factory=dict)
    mesh: dict[tuple[str, int], Closer] = field(default_factory=dict)
    conflicts: dict[int, str] = field(default_factory=dict)
    routes: list[str] = field(default_factory=list)


class ClusterManager:
    def __init__(self, agent: MachineAgent) -> None:
        self.agent = agent
        self.paths = agent.paths
        self._lock = threading.RLock()
        self._clusters: dict[str, _Cluster] = {
            name: _Cluster(rec, self._blank(rec, agent.name))
            for name, rec in records.load_all(self.paths.clusters).items()
        }
        self._gate: Gate | None = None
        self._hosts: tuple[str, ...] = ("127.0.0.1", "::1")
        self._stop_watch = threading.Event()
        self._watching = False
        self._image_version = ""

    # ----- what the agent tells us ------------------------------------------------

    def machine_ready(self, image_version: str) -> None:
        """The machine's engine answers: open every cluster's sockets, start watching,
        and bring back the clusters that were running (in the background)."""
        record = RuntimeRecord.load(self.paths.ports_file)
        self._gate = Gate(record.api_port, record.api_token) if record else None
        self._image_version = image_version
        try:
            cfg = config_mod.load(
                self.paths.config_file, self.agent.deps.host(self.paths.data_disk)
            )
            self._hosts = ("0.0.0.0", "::") if cfg.expose_ports else ("127.0.0.1", "::1")  # noqa: S104 - the user asked
        except MoorageError:
            pass
        with self._lock:
            clusters = list(self._clusters.values())
        for c in clusters:
            self._open_sockets(c)
        self._start_watch()
        for c in clusters:
            if not c.record.ready:
                self._begin(c, "cluster-rm", lambda c=c: self._remove(c, "it was never finished"))  # type: ignore[misc]
            elif not c.record.stopped:
                self._begin(c, "cluster-start", lambda c=c: self._start(c, resume=True))  # type: ignore[misc]

    def machine_gone(self) -> None:
        """The VM stops or died: nothing of the clusters is reachable any more."""
        self._stop_watch.set()
        self._watching = False
        with self._lock:
            clusters = list(self._clusters.values())
        for c in clusters:
            self._close_sockets(c)
            c.status = self._blank(c.record, self.agent.name)
        self._gate = None

    def forget_all(self) -> None:
        """The data disk is erased or the machine deleted: the clusters' data is gone."""
        self.machine_gone()
        with self._lock:
            clusters = list(self._clusters.values())
            self._clusters.clear()
        for c in clusters:
            records.remove(self.paths.clusters, c.record.name)
            self._remove_context(c.record.name)

    # ----- answers ------------------------------------------------------------------

    def listing(self) -> ClusterList:
        with self._lock:
            return ClusterList([replace(c.status) for c in self._clusters.values()])

    def status(self, name: str) -> ClusterStatus:
        c = self._get(name)
        if self._machine_up():
            self._look(c)
        return replace(c.status)

    def _get(self, name: str) -> _Cluster:
        with self._lock:
            c = self._clusters.get(name)
        if c is None:
            raise SwarmError(
                f"machine {self.agent.name!r} has no cluster {name!r}",
                fix="`moorage cluster ls` lists them; `moorage cluster create NAME` makes one",
            )
        return c

    # ----- operations -----------------------------------------------------------------

    def create(self, name: str, managers: int, workers: int, fast_drills: bool) -> Accepted:
        spec_mod.check_cluster_name(name)
        spec_mod.check_counts(managers, workers)
        self._require_machine()
        with self._lock:
            if name in self._clusters:
                raise SwarmError(
                    f"cluster {name!r} exists already",
                    fix=f"`moorage cluster status {name}`, or `moorage cluster rm {name}` first",
                )
            taken = {c.record.subnet for c in self._clusters.values()}
            accel = self.agent.snapshot().accel
            timers = spec_mod.timers(fast_drills=fast_drills, accel=accel)
            rec = ClusterRecord(name, spec_mod.free_subnet(taken), fast_drills, timers.heartbeat_s)
            rec.nodes = [
                NodeRecord(n.name, n.role, n.index)
                for n in spec_mod.plan_nodes(name, rec.subnet, managers, workers)
            ]
            c = _Cluster(rec, self._blank(rec, self.agent.name))
            self._check_names_free(rec)
            self._clusters[name] = c
        return self._begin(c, "cluster-create", lambda: self._create(c))

    def request(self, name: str, op: str) -> Accepted:
        c = self._get(name)
        self._require_machine()
        bodies: dict[str, tuple[Operation, Callable[[], None]]] = {
            "start": ("cluster-start", lambda: self._start(c)),
            "stop": ("cluster-stop", lambda: self._stop(c)),
            "heal": ("cluster-heal", lambda: self._heal(c)),
            "recover": ("cluster-recover", lambda: self._recover(c)),
            "rm": ("cluster-rm", lambda: self._remove(c, None)),
        }
        if op not in bodies:
            raise SwarmError(f"no such cluster operation: {op}")
        kind, body = bodies[op]
        return self._begin(c, kind, body)

    def add(self, name: str, role: str) -> Accepted:
        if role not in ("manager", "worker"):
            raise SwarmError(f"a node's role is manager or worker, not {role!r}")
        c = self._get(name)
        self._require_machine()
        node = spec_mod.next_node(name, c.record.subnet, role, c.record.specs())  # type: ignore[arg-type]
        return self._begin(c, "cluster-add", lambda: self._add(c, node))

    def load(self, name: str, images: list[str]) -> Accepted:
        c = self._get(name)
        self._require_machine()
        if not images:
            raise SwarmError("name at least one image to load")
        holder: list[list[str]] = []

        def body() -> None:
            facts = ops.containers(self._engines(), name)
            refs = ops.load_images(self._ctx(c), c.record, facts, images)
            holder.append(refs)
            self._done(c, "cluster-load", f"loaded {', '.join(refs)} into {name}'s nodes")

        accepted = self._begin(c, "cluster-load", body, done=False)
        return replace(accepted, refs=[ops.image_ref(i) for i in images])

    def _begin(
        self, c: _Cluster, op: Operation, body: Callable[[], None], done: bool = True
    ) -> Accepted:
        """Run ``body`` as ``op`` of cluster ``c`` in a thread: its events carry the
        cluster's name; it ends in ``done`` (unless the body says it) or ``error``."""
        events = self.agent.events
        with self._lock:
            if c.op is not None:
                raise OperationRunning(
                    f"cluster {c.record.name!r} is busy with {c.op}",
                    fix="wait for it to end (`moorage cluster status`), then try again",
                )
            c.op = op
            c.status.operation = op
            since = events.last_id

        def run() -> None:
            try:
                body()
                if done:
                    self._done(c, op, f"{op.removeprefix('cluster-')} {c.record.name}: done")
            except BaseException as exc:  # every way out ends in an event
                error = (
                    exc
                    if isinstance(exc, MoorageError)
                    else SwarmError(f"unexpected error: {exc!r}", fix=f"see {self.paths.agent_log}")
                )
                if not isinstance(exc, MoorageError):
                    log.exception("%s %s", op, c.record.name)
                b = error_body(error)
                events.emit(
                    "error", b.message, op=op, code=b.code, fix=b.fix, cluster=c.record.name
                )
            finally:
                with self._lock:
                    c.op = None
                    c.status.operation = None
                self.agent.touch()

        threading.Thread(target=run, name=f"{op}-{c.record.name}", daemon=True).start()
        return Accepted(since, op, c.record.name)

    def _done(self, c: _Cluster, op: Operation, message: str) -> None:
        self.agent.events.emit("done", message, op=op, cluster=c.record.name)

    def _progress(self, c: _Cluster, line: str) -> None:
        self.agent.events.emit("progress", line, cluster=c.record.name, phase=c.status.operation)

    # ----- the bodies -------------------------------------------------------------------

    def _create(self, c: _Cluster) -> None:
        rec, name = c.record, c.record.name
        rec.save(self.paths.clusters)
        ctx = self._ctx(c)
        self._open_sockets(c)
        began = time.monotonic()

        def announce(step: Any, label: str) -> None:
            self.agent.events.emit("phase", label, phase=step.phase, cluster=name)

        def took(step: Any, seconds: float) -> None:
            self._progress(c, f"{step.phase}: {seconds:.1f}s")

        try:
            run_chain(
                ops.create_steps(ctx, rec, lambda: rec.save(self.paths.clusters)),
                check_cancel=ctx.check_cancel,
                announce=announce,
                took=took,
            )
        except BaseException:
            self._progress(c, f"creating {name} failed: removing what was made")
            with contextlib.suppress(Exception):
                self._remove(c, None, quiet=True)
            raise
        rec.ready = True
        rec.save(self.paths.clusters)
        context = self._ensure_context(c)
        self._look(c)
        self._done(
            c,
            "cluster-create",
            f"cluster {name} is ready in {time.monotonic() - began:.0f}s: "
            + (
                f"docker --context {context} node ls"
                if context
                else f"DOCKER_HOST=unix://{self.paths.cluster_socket(name)} docker node ls"
            ),
        )

    def _start(self, c: _Cluster, resume: bool = False) -> None:
        rec = c.record
        was_stopped = rec.stopped
        rec.stopped = False
        if not resume or was_stopped:
            for n in rec.nodes:
                n.stopped = False
        ctx = self._ctx(c)
        facts = ops.containers(self._engines(), rec.name)
        ops.start_all(ctx, rec, facts)
        rec.save(self.paths.clusters)
        self._open_sockets(c)
        self._ensure_context(c)
        deadline = time.monotonic() + QUORUM_WAIT
        while time.monotonic() < deadline:
            ctx.check_cancel()
            self._look(c)
            if c.status.quorum:
                return
            time.sleep(2)
        raise SwarmError(
            f"cluster {rec.name}'s managers did not agree on a leader in {QUORUM_WAIT:.0f}s"
            + (f": {c.status.problem}" if c.status.problem else ""),
            fix=c.status.fix or f"`moorage cluster status {rec.name}`",
        )

    def _stop(self, c: _Cluster) -> None:
        ops.stop_all(self._ctx(c), c.record)
        c.record.stopped = True
        for n in c.record.nodes:
            n.drill = None
        c.record.save(self.paths.clusters)
        self._close_mesh(c)

    def _heal(self, c: _Cluster) -> None:
        facts = ops.containers(self._engines(), c.record.name)
        for line in ops.heal(self._ctx(c), c.record, facts) or ["nothing to heal"]:
            self._progress(c, line)
        c.record.save(self.paths.clusters)

    def _recover(self, c: _Cluster) -> None:
        facts = ops.containers(self._engines(), c.record.name)
        survivor = ops.recover(
            self._ctx(c), c.record, facts, lambda: c.record.save(self.paths.clusters)
        )
        self._progress(c, f"recovered from {survivor}")
        self._look(c)

    def _add(self, c: _Cluster, node: spec_mod.NodeSpec) -> None:
        rec = c.record
        ctx = self._ctx(c)
        manager = self._live_manager(c)
        rec.nodes.append(NodeRecord(node.name, node.role, node.index))
        rec.save(self.paths.clusters)
        self._open_node_socket(c, node.name)
        ops.create_node(ctx, node, rec.image or ops.ensure_node_image(ctx))
        ops.wait_engines(ctx, [node])
        ops.join(ctx, rec.spec(manager), node, node.role)
        n = rec.node(node.name)
        if n is not None:
            n.joined = True
        rec.save(self.paths.clusters)

    def _remove(self, c: _Cluster, why: str | None, quiet: bool = False) -> None:
        rec = c.record
        ctx = self._ctx(c)
        if why:
            self._progress(c, f"removing cluster {rec.name}: {why}")
        ops.parallel([lambda n=n: ops.remove_container(ctx, n.name) for n in rec.nodes])  # type: ignore[misc]
        ops.remove_network(ctx, rec.name)
        ops.remove_node_data(ctx, rec.name)
        self._close_sockets(c)
        self._remove_context(rec.name)
        records.remove(self.paths.clusters, rec.name)
        with self._lock:
            self._clusters.pop(rec.name, None)
        if not quiet:
            self._done(c, "cluster-rm", f"cluster {rec.name} removed")

    # ----- node operations ------------------------------------------------------------------

    def node_action(self, name: str, node_name: str, action: str) -> ClusterStatus:
        c = self._get(name)
        self._require_machine()
        node = c.record.node(node_name)
        if node is None:
            raise SwarmError(
                f"cluster {name} has no node {node_name!r}",
                fix=f"`moorage cluster nodes {name}` lists them",
            )
        with self._lock:
            if c.op is not None:
                raise OperationRunning(
                    f"cluster {name!r} is busy with {c.op}",
                    fix="wait for it to end, then try again",
                )
        ctx = self._ctx(c)
        if action in ("drain", "pause", "activate"):
            manager = self._live_manager(c)
            ops.update_node(ctx, manager.name, node.name, availability=AVAILABILITY[action])
        elif action in ("promote", "demote"):
            manager = self._live_manager(c)
            ops.update_node(
                ctx, manager.name, node.name, role="manager" if action == "promote" else "worker"
            )
        elif action == "stop":
            ops.container_action(ctx, c.record, node, "stop")
            node.stopped, node.drill = True, None
        elif action == "start":
            ops.container_action(ctx, c.record, node, "start")
            node.stopped, node.drill = False, None
        elif action in ("kill", "freeze", "partition"):
            ops.container_action(ctx, c.record, node, action)
            node.drill = {"kill": "killed", "freeze": "frozen", "partition": "partitioned"}[action]  # type: ignore[assignment]
        elif action == "rm":
            self._remove_node(c, node)
        else:
            raise SwarmError(f"no such node action: {action}")
        c.record.save(self.paths.clusters)
        self.agent.events.emit("cluster", f"{node_name}: {action}", cluster=name, node=node_name)
        self._look(c)
        return replace(c.status)

    def _remove_node(self, c: _Cluster, node: NodeRecord) -> None:
        ctx = self._ctx(c)
        others = [n for n in c.record.nodes if n is not node]
        if not others:
            raise SwarmError(
                "a cluster's last node cannot be removed",
                fix=f"`moorage cluster rm {c.record.name}`",
            )
        info = next((i for i in c.status.nodes if i.name == node.name), None)
        if info is not None and observe.live(info):
            with contextlib.suppress(SwarmError):
                ops.leave(ctx, node.name)
        manager = self._live_manager(c, exclude=node.name)
        ops.remove_swarm_entries(ctx, manager.name, node.name)
        ops.remove_container(ctx, node.name)
        ops.remove_node_data(ctx, c.record.name, node.name)
        c.record.nodes.remove(node)
        closer = c.sockets.pop(node.name, None)
        if closer is not None:
            closer.close()

    def unlock(self, name: str, key: str, node: str | None) -> ClusterStatus:
        c = self._get(name)
        self._require_machine()
        done = ops.unlock(self._ctx(c), c.record, key, node)
        for n in done:
            self.agent.events.emit("cluster", f"{n}: unlocked", cluster=name, node=n)
        self._look(c)
        return replace(c.status)

    def _live_manager(self, c: _Cluster, exclude: str | None = None) -> NodeRecord:
        """A manager that answers with a leader: the last look's, or look again."""
        self._look(c)
        if not c.status.quorum:
            raise SwarmError(
                c.status.problem or f"cluster {c.record.name} has no manager that answers",
                fix=c.status.fix,
            )
        for route in c.routes:
            node = c.record.node(route.removeprefix("node "))
            if node is not None and node.name != exclude:
                return node
        raise SwarmError(f"cluster {c.record.name} has no other manager that answers")

    # ----- looking ----------------------------------------------------------------------------

    def _look(self, c: _Cluster) -> None:
        """Look at one cluster now, publish its status, route its sockets, and say what
        changed."""
        rec = c.record
        try:
            facts = ops.containers(self._engines(), rec.name)
        except SwarmError as exc:
            log.info("cluster %s: %s", rec.name, exc)
            return
        swarm, services = (
            ops.look(self._engines(), rec, facts, [r.removeprefix("node ") for r in c.routes])
            if not rec.stopped
            else (SwarmFacts(None, None, "stopped"), set())
        )
        infos = [
            observe.node_info(rec, n, facts.get(n.name), swarm, str(self.paths.node_socket(n.name)))
            for n in rec.nodes
        ]
        q = observe.quorum(rec, infos, swarm) if not rec.stopped else observe.Quorum(False)
        before = c.status.nodes
        timers = spec_mod.Timers(rec.heartbeat_s)
        status = ClusterStatus(
            name=rec.name,
            machine=self.agent.name,
            state=observe.cluster_state(rec, infos, q, c.op == "cluster-create"),
            context=c.status.context,
            socket=str(self.paths.cluster_socket(rec.name)),
            nodes=infos,
            quorum=q.ok,
            problem=q.problem,
            fix=q.fix,
            fast_drills=rec.fast_drills,
            heartbeat_s=rec.heartbeat_s,
            election_tick=timers.election_ticks,
            down_after_s=timers.down_after_s,
            operation=c.op,
            created=rec.created,
        )
        routes = observe.manager_routes(infos)
        with self._lock:
            c.routes = routes + [
                f"node {n.name}"
                for n in rec.nodes
                if n.role == "manager" and f"node {n.name}" not in routes
            ]
            if q.ok:
                self._route_mesh(c, infos, {p for proto, _h, p in services if proto == "tcp"})
            status.ports = sorted(f"{h}:{p}/tcp" for h, p in c.mesh)
            status.port_conflicts = sorted(c.conflicts.values())
            c.status = status
        if before:
            for node, message in observe.changes(before, infos):
                self.agent.events.emit("cluster", message, cluster=rec.name, node=node)

    def _route_mesh(self, c: _Cluster, infos: list[NodeInfo], ports: set[int]) -> None:
        """Listeners on the host for each routing-mesh port, through any live node."""
        for key in [k for k in c.mesh if k[1] not in ports]:
            c.mesh.pop(key).close()
            self.agent.events.emit("cluster", f"{key[0]}:{key[1]} closed", cluster=c.record.name)
        for port in [p for p in c.conflicts if p not in ports]:
            del c.conflicts[port]
        sockets, name = self.agent.deps.cluster_sockets, c.record.name

        def routes(port: int) -> Routes:
            return lambda: observe.mesh_routes(self._infos(c) or infos, port)

        first, *twins = self._hosts
        for port in sorted(ports):
            if (first, port) not in c.mesh:
                try:
                    c.mesh[(first, port)] = sockets.tcp(
                        first, port, lambda: self._gate, routes(port)
                    )
                except OSError as exc:
                    if port not in c.conflicts:
                        c.conflicts[port] = (
                            f"host port {first}:{port} is already in use on the host "
                            f"({exc.strerror}); the service runs, and the port is forwarded "
                            "as soon as it frees"
                        )
                        self.agent.events.emit("cluster", c.conflicts[port], cluster=name)
                    continue
                c.conflicts.pop(port, None)
                self.agent.events.emit(
                    "cluster", f"routing-mesh port {first}:{port} forwarded", cluster=name
                )
            for host in twins:  # IPv6 may be off: the IPv4 port stands for it
                if (host, port) not in c.mesh:
                    with contextlib.suppress(OSError):
                        c.mesh[(host, port)] = sockets.tcp(
                            host, port, lambda: self._gate, routes(port)
                        )

    def _infos(self, c: _Cluster) -> list[NodeInfo]:
        with self._lock:
            return list(c.status.nodes)

    def _close_mesh(self, c: _Cluster) -> None:
        with self._lock:
            mesh, c.mesh = c.mesh, {}
            c.conflicts.clear()
        for closer in mesh.values():
            closer.close()

    def _start_watch(self) -> None:
        if self._watching:
            return
        self._watching = True
        self._stop_watch = threading.Event()
        stop = self._stop_watch

        def watch() -> None:
            while not stop.wait(WATCH_EVERY):
                with self._lock:
                    clusters = [c for c in self._clusters.values() if c.op != "cluster-create"]
                for c in clusters:
                    if stop.is_set():
                        return
                    try:
                        self._look(c)
                    except Exception:
                        log.exception("cluster watch: %s", c.record.name)

        threading.Thread(target=watch, name="cluster-watch", daemon=True).start()

    # ----- sockets and contexts ---------------------------------------------------------------

    def _open_sockets(self, c: _Cluster) -> None:
        sockets = self.agent.deps.cluster_sockets
        name = c.record.name
        if "cluster" not in c.sockets:
            path = self.paths.cluster_socket(name)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            c.sockets["cluster"] = sockets.unix(path, lambda: self._gate, lambda: list(c.routes))
        for n in c.record.nodes:
            self._open_node_socket(c, n.name)

    def _open_node_socket(self, c: _Cluster, node: str) -> None:
        if node in c.sockets:
            return
        path = self.paths.node_socket(node)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        c.sockets[node] = self.agent.deps.cluster_sockets.unix(
            path, lambda: self._gate, lambda: [f"node {node}"]
        )

    def _close_sockets(self, c: _Cluster) -> None:
        self._close_mesh(c)
        with self._lock:
            sockets, c.sockets = c.sockets, {}
        for closer in sockets.values():
            closer.close()

    def _ensure_context(self, c: _Cluster) -> str | None:
        name = cluster_context_name(self.agent.name, c.record.name)
        try:
            made = self.agent.deps.contexts.ensure_named(
                name,
                self.paths.cluster_socket(c.record.name),
                f"moorage cluster {c.record.name!r} of machine {self.agent.name!r}",
            )
        except MoorageError as exc:
            self.agent.warn("context", str(exc))
            return None
        c.status.context = name if made else None
        return c.status.context

    def _remove_context(self, cluster: str) -> None:
        with contextlib.suppress(MoorageError):
            self.agent.deps.contexts.remove_named(cluster_context_name(self.agent.name, cluster))

    # ----- what operations work through --------------------------------------------------------

    def _engines(self) -> Engines:
        return self.agent.deps.engines(self.paths)

    def _ctx(self, c: _Cluster) -> ops.Context:
        def guest(command: str, timeout: float) -> tuple[int, str]:
            channel = self.agent.guest
            if channel is None:
                raise SwarmError("the machine's VM is not reachable", fix="`moorage start`")
            return channel.run(command, timeout=timeout)

        def check() -> None:
            if not self._machine_up():
                raise SwarmError(
                    f"machine {self.agent.name!r} stopped", fix="`moorage start`, then try again"
                )

        return ops.Context(
            engines=self._engines(),
            guest=guest,
            report=lambda line: self._progress(c, line),
            check_cancel=check,
            image_version=self._image_version or "dev",
        )

    def _machine_up(self) -> bool:
        return self.agent.state() in ("running", "degraded") and self._gate is not None

    def _require_machine(self) -> None:
        if not self._machine_up():
            raise SwarmError(
                f"machine {self.agent.name!r} is {self.agent.state()}: clusters run in its VM",
                fix="`moorage start`",
            )

    def _check_names_free(self, rec: ClusterRecord) -> None:
        """Node names are container names in the machine's engine: refuse one that a
        container of the user's has."""
        with opened(lambda: self._engines().machine(10)) as m, speaking("the machine's engine"):
            found = m.containers(all=True)
        names = {str(n).lstrip("/") for c in found for n in c.get("Names") or ()}
        taken = sorted(n.name for n in rec.nodes if n.name in names)
        if taken:
            raise SwarmError(
                f"container name(s) {', '.join(taken)} are taken in the machine's engine",
                fix="choose another cluster name, or remove those containers",
            )

    @staticmethod
    def _blank(rec: ClusterRecord, machine: str) -> ClusterStatus:
        """What is known of a cluster without looking: its record."""
        timers = spec_mod.Timers(rec.heartbeat_s)
        return ClusterStatus(
            name=rec.name,
            machine=machine,
            state="stopped" if rec.stopped else "unknown",
            fast_drills=rec.fast_drills,
            heartbeat_s=rec.heartbeat_s,
            election_tick=timers.election_ticks,
            down_after_s=timers.down_after_s,
            created=rec.created,
            nodes=[
                NodeInfo(n.name, n.role, rec.spec(n).address, "unknown", n.drill, n.stopped)
                for n in rec.nodes
            ],
        )
