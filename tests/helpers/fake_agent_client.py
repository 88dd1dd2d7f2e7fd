"""A stand-in for ``moorage.api.client.AgentClient`` for the desktop's tests: the same
methods and answers (the API's own dataclasses), no agent process, no VM.

Every call is recorded in ``calls`` as ``(method, args)``. ``delay`` (seconds, for
every call, or ``delays[method]`` for one) makes the agent slow; ``fail[method]``
raises that error every time, ``fail_once[method]`` the next time only. Operations
(``request``) move ``status`` as the agent would and put the events it would send into
the stream that ``events()`` follows; ``push`` adds any event, ``end_stream`` ends the
stream (``crash=True``: as a dying agent's does).

``FakeDocker`` answers the docker-py ``APIClient`` calls the desktop makes on the
engine (containers and their stats, logs and removal; images; volumes; events), also
recorded; it is a cluster's engine too (``nodes``, ``services``, ``tasks``): its swarm
is cluster ``c1``'s, and the fake agent's node actions move its tasks as a swarm would.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from moorage import config as config_mod
from moorage import update_settings
from moorage.api.schema import (
    Accepted,
    AgentCrashed,
    AgentNotRunning,
    ClusterList,
    ClusterStatus,
    ConfigView,
    Diagnostics,
    Event,
    InstallCommand,
    NodeInfo,
    Operation,
    Stats,
    StatSample,
    Status,
    SwarmInfo,
    UpdateView,
    ends,
)
from moorage.errors import MoorageError, SwarmError
from moorage.paths import MachinePaths

try:
    from docker.errors import APIError
except ImportError:  # docker-py is a dependency of the desktop; this keeps the fakes importable

    class APIError(Exception):  # type: ignore[no-redef]
        def __init__(self, message: str, response: Any = None, explanation: str = "") -> None:
            super().__init__(message)
            self.explanation = explanation


HOST = config_mod.HostFacts(cpus=8, memory_mib=16384, home=Path("/home/user"))
ENGINE_VERSION = "26.1.5"
_END = object()


def running_status(name: str = "default", **changes: Any) -> Status:
    """A running machine's status, as the agent answers it."""
    st = Status(
        machine=name,
        state="running",
        driver="libvirt",
        accel="kvm",
        accel_reason="KVM works (test boot)",
        cpus=2,
        memory_gib=2,
        disk_gib=64,
        image="debian",
        engine_version=ENGINE_VERSION,
        docker_socket=str(MachinePaths(name).docker_socket),
        docker_context="moorage" if name == "default" else f"moorage-{name}",
        agent_pid=4242,
        vm_pid=4343,
        ports=["127.0.0.1:8080/tcp"],
        file_sharing="virtiofs",
        shared_folders=["/home/user"],
        agent_version="0.1.0",
    )
    for key, value in changes.items():
        setattr(st, key, value)
    return st


def node(name: str, role: str = "worker", **changes: Any) -> NodeInfo:
    n = NodeInfo(
        name=name,
        role=role,
        address="172.30.0.2",
        container="running",
        state="ready",
        availability="active",
        manager="reachable" if role == "manager" else None,
        engine_version=ENGINE_VERSION,
    )
    return replace(n, **changes)


def cluster(name: str = "c1", managers: int = 3, workers: int = 2, **changes: Any) -> ClusterStatus:
    nodes = [
        node(f"{name}-m{i}", "manager", leader=i == 1, manager="leader" if i == 1 else "reachable")
        for i in range(1, managers + 1)
    ]
    nodes += [node(f"{name}-w{i}") for i in range(1, workers + 1)]
    c = ClusterStatus(
        name=name,
        machine="default",
        state="running",
        context=f"moorage-cluster-{name}",
        socket=str(MachinePaths("default").cluster_socket(name)),
        nodes=nodes,
        quorum=True,
    )
    for key, value in changes.items():
        setattr(c, key, value)
    return c


def update_view(**changes: Any) -> UpdateView:
    view = UpdateView(
        app_version="0.1.0",
        install_kind="deb",
        settings=asdict(update_settings.UpdateSettings(channel="stable")),
        schema=update_settings.schema_json(),
        guest={
            "current": "0.1.0",
            "staged": None,
            "previous": None,
            "failed": [],
            "last_failure": None,
        },
        last_check=None,
    )
    return replace(view, **changes)


def offer(version: str = "0.2.0") -> dict[str, Any]:
    """What a check answers when ``version`` is out on stable."""
    return {
        "channel": "stable",
        "newest": version,
        "parts": [
            {
                "what": "app",
                "version": version,
                "target": f"stable/moorage_{version}.deb",
                "downgrade": False,
            }
        ],
        "held": [],
        "notes": [[version, f"moorage {version}: faster starts"]],
        "skipped": False,
        "version": version,
    }


class FakeLogStream:
    """``APIClient.logs(stream=True, follow=True)``: the tail, then each pushed chunk,
    until ``close`` (as docker-py's ``CancellableStream`` closes its socket)."""

    def __init__(self, lines: list[bytes]) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        for line in lines:
            self._queue.put(line)
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item

    def push(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def close(self) -> None:
        self.closed = True
        self._queue.put(_END)


class FakeDocker:
    """docker-py's ``DockerClient`` as far as the desktop uses it: ``.api`` calls."""

    def __init__(self, containers: list[dict[str, Any]] | None = None) -> None:
        self.api = self
        self.timeout = 30
        self.listed: list[dict[str, Any]] = (
            containers
            if containers is not None
            else [
                engine_container("web", "nginx:1.27", [(80, 8080)]),
                engine_container("db", "postgres:16", []),
            ]
        )
        self.image_list: list[dict[str, Any]] = [
            engine_image("nginx", ["nginx:1.27", "nginx:latest"], 192_000_000),
            engine_image("postgres", ["postgres:16"], 431_000_000),
            engine_image("dangling", [], 12_000_000),
        ]
        self.volume_list: list[dict[str, Any]] = [
            engine_volume("pgdata"),
            engine_volume("cache"),
        ]
        self.volumes_in_use = {"pgdata": self.listed[-1]["Id"] if self.listed else "x"}
        """A volume a container uses: the engine refuses to remove it."""
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.delay = 0.0
        self.fail: dict[str, Exception] = {}
        self._events: queue.Queue[object] = queue.Queue()
        self.closed = False
        self.log_streams: list[FakeLogStream] = []
        self._stat_rounds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._task_ids = itertools.count(100)
        self.swarm_nodes = [swarm_node(n.name, n.role) for n in cluster().nodes]
        self.swarm_services = [{"ID": "svc-web", "Spec": {"Name": "web"}}]
        self.swarm_tasks = [
            swarm_task(f"task-{slot}", "svc-web", slot, f"node-{host}")
            for slot, host in ((1, "c1-w1"), (2, "c1-w2"), (3, "c1-m2"))
        ]

    def _call(self, method: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((method, args))
        if self.delay:
            time.sleep(self.delay)
        if method in self.fail:
            raise self.fail[method]

    def called(self, method: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for m, args in self.calls if m == method]

    def _find(self, container: str) -> dict[str, Any]:
        for c in self.listed:
            if container in (c["Id"], c["Names"][0].lstrip("/")):
                return c
        raise APIError(
            f'404 Client Error: Not Found ("No such container: {container}")',
            explanation=f"No such container: {container}",
        )

    # ----- containers -------------------------------------------------------------------

    def containers(self, all: bool = False, **_: Any) -> list[dict[str, Any]]:
        self._call("containers", all)
        return [dict(c) for c in self.listed if all or c.get("State") == "running"]

    def restart(self, container: str, **_: Any) -> None:
        self._call("restart", container)
        self._find(container)["State"] = "running"

    def stop(self, container: str, **_: Any) -> None:
        self._call("stop", container)
        self._find(container)["State"] = "exited"

    def remove_container(self, container: str, v: bool = False, force: bool = False) -> None:
        self._call("remove_container", container, force)
        found = self._find(container)
        if found["State"] == "running" and not force:
            raise APIError(
                "409 Client Error: Conflict",
                explanation=f"cannot remove container {container}: it is running",
            )
        self.listed.remove(found)

    def stats(
        self, container: str, decode: Any = None, stream: bool = True, one_shot: Any = None
    ) -> dict[str, Any]:
        """One sample, as ``one_shot`` answers it (no previous sample): an eighth of the
        host's CPU time since the last sample on two CPUs (25 %), and 72 MiB in use of
        which 8 MiB are page cache (64 MiB counted)."""
        self._call("stats", container, stream, one_shot)
        with self._lock:
            n = self._stat_rounds[container] = self._stat_rounds.get(container, 0) + 1
        return {
            "cpu_stats": {
                "cpu_usage": {"total_usage": n * 250_000_000},
                "system_cpu_usage": n * 2_000_000_000,
                "online_cpus": 2,
            },
            "precpu_stats": {"cpu_usage": {"total_usage": 0}},
            "memory_stats": {
                "usage": 72 * 2**20,
                "limit": 2 * 2**30,
                "stats": {"inactive_file": 8 * 2**20},
            },
        }

    def logs(self, container: str, **kwargs: Any) -> Any:
        self._call("logs", container, kwargs.get("tail"), kwargs.get("follow"))
        lines = [f"{container[:12]} line 1\n".encode(), f"{container[:12]} line 2\n".encode()]
        if kwargs.get("stream") and kwargs.get("follow"):
            stream = FakeLogStream(lines)
            with self._lock:
                self.log_streams.append(stream)
            return stream
        return iter(lines) if kwargs.get("stream") else b"".join(lines)

    # ----- images and volumes ------------------------------------------------------------

    def images(self, **_: Any) -> list[dict[str, Any]]:
        self._call("images")
        return [dict(i) for i in self.image_list]

    def remove_image(self, image: str, force: bool = False, noprune: bool = False) -> None:
        self._call("remove_image", image, force)
        for i in self.image_list:
            if image in i["RepoTags"]:
                i["RepoTags"] = [t for t in i["RepoTags"] if t != image]
                if not i["RepoTags"]:
                    self.image_list.remove(i)
                return
            if image == i["Id"]:
                self.image_list.remove(i)
                return
        raise APIError("404 Client Error", explanation=f"No such image: {image}")

    def volumes(self, filters: Any = None) -> dict[str, Any]:
        self._call("volumes")
        return {"Volumes": [dict(v) for v in self.volume_list] or None, "Warnings": None}

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._call("remove_volume", name, force)
        if name in self.volumes_in_use:
            raise APIError(
                "409 Client Error: Conflict",
                explanation=f"remove {name}: volume is in use - [{self.volumes_in_use[name]}]",
            )
        self.volume_list = [v for v in self.volume_list if v["Name"] != name]

    # ----- events -------------------------------------------------------------------------

    def events(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self._call("events", kwargs.get("filters"))
        while True:
            item = self._events.get()
            if item is _END:
                return
            assert isinstance(item, dict)
            yield item

    def push_event(self, event: dict[str, Any]) -> None:
        self._events.put(event)

    def close(self) -> None:
        self.closed = True
        self._events.put(_END)

    # ----- a cluster's engine: its swarm --------------------------------------------------

    def nodes(self, filters: Any = None) -> list[dict[str, Any]]:
        self._call("nodes")
        with self._lock:
            return [dict(n) for n in self.swarm_nodes]

    def services(self, filters: Any = None, status: Any = None) -> list[dict[str, Any]]:
        self._call("services")
        with self._lock:
            return [dict(s) for s in self.swarm_services]

    def tasks(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self._call("tasks", filters)
        desired = (filters or {}).get("desired-state")
        with self._lock:
            return [dict(t) for t in self.swarm_tasks if desired in (None, t["DesiredState"])]

    def set_node(self, hostname: str, *, availability: str | None = None,
                 state: str | None = None, role: str | None = None) -> None:  # fmt: skip
        """What a node action does to the swarm; a node drained or down loses its tasks
        to the active, ready node with the fewest (the swarm's spread)."""
        with self._lock:
            node = next(n for n in self.swarm_nodes if n["Description"]["Hostname"] == hostname)
            if availability is not None:
                node["Spec"]["Availability"] = availability
            if state is not None:
                node["Status"]["State"] = state
            if role is not None:
                node["Spec"]["Role"] = role
            if node["Spec"]["Availability"] == "drain" or node["Status"]["State"] == "down":
                self._reschedule(node["ID"])

    def _reschedule(self, node_id: str) -> None:
        usable = [
            n["ID"]
            for n in self.swarm_nodes
            if n["ID"] != node_id
            and n["Spec"]["Availability"] == "active"
            and n["Status"]["State"] == "ready"
        ]
        for task in [t for t in self.swarm_tasks if t["NodeID"] == node_id]:
            if task["DesiredState"] != "running" or not usable:
                continue
            task["DesiredState"] = "shutdown"
            task["Status"] = {"State": "shutdown"}

            def load(nid: str) -> int:
                return sum(
                    1
                    for t in self.swarm_tasks
                    if t["NodeID"] == nid and t["DesiredState"] == "running"
                )

            target = min(usable, key=lambda nid: (load(nid), nid))
            self.swarm_tasks.append(
                swarm_task(f"task-{next(self._task_ids)}", task["ServiceID"], task["Slot"], target)
            )


def swarm_node(hostname: str, role: str = "worker") -> dict[str, Any]:
    """One entry of a swarm's ``GET /nodes``."""
    return {
        "ID": f"node-{hostname}",
        "Description": {"Hostname": hostname},
        "Spec": {"Role": role, "Availability": "active"},
        "Status": {"State": "ready"},
    }


def swarm_task(ident: str, service: str, slot: int, node_id: str) -> dict[str, Any]:
    """One entry of a swarm's ``GET /tasks``: a replica running on ``node_id``."""
    return {
        "ID": ident,
        "ServiceID": service,
        "Slot": slot,
        "NodeID": node_id,
        "DesiredState": "running",
        "Status": {"State": "running"},
    }


def engine_image(name: str, tags: list[str], size: int) -> dict[str, Any]:
    """One entry of the engine's ``GET /images/json``."""
    return {
        "Id": "sha256:" + f"{name:0<12}" + "a" * 52,
        "RepoTags": tags,
        "Size": size,
        "Created": 1764547200,  # 2025-12-01
    }


def engine_volume(name: str) -> dict[str, Any]:
    """One entry of the engine's ``GET /volumes``."""
    return {
        "Name": name,
        "Driver": "local",
        "Mountpoint": f"/var/lib/docker/volumes/{name}/_data",
        "Scope": "local",
    }


def engine_container(
    name: str, image: str, ports: list[tuple[int, int]], state: str = "running"
) -> dict[str, Any]:
    """One entry of the engine's ``GET /containers/json``: ``ports`` are
    (container port, host port) pairs, published on 0.0.0.0 and :: as the engine does."""
    listed = []
    for private, public in ports:
        listed.append(
            {"IP": "0.0.0.0", "PrivatePort": private, "PublicPort": public, "Type": "tcp"}
        )
        listed.append({"IP": "::", "PrivatePort": private, "PublicPort": public, "Type": "tcp"})
    return {
        "Id": f"{name:0<12}{'f' * 52}",
        "Names": [f"/{name}"],
        "Image": image,
        "State": state,
        "Status": "Up 2 minutes",
        "Ports": listed,
    }


@dataclass
class FakeAgentClient:
    """Answers like a machine's agent. Start it ``running`` (the default) or pass a
    ``Status``; ``agent`` is what ``liveness`` says (``running``, ``absent``,
    ``crashed``): with ``absent`` every request raises AgentNotRunning, as the real
    client does, until ``spawn``."""

    name: str = "default"
    status_now: Status | None = None
    agent: str = "running"
    delay: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)
    fail: dict[str, Exception] = field(default_factory=dict)
    fail_once: dict[str, Exception] = field(default_factory=dict)
    swarm_info: SwarmInfo = field(default_factory=lambda: SwarmInfo(state="inactive"))
    cluster_list: list[ClusterStatus] = field(default_factory=lambda: [cluster()])
    update: UpdateView = field(default_factory=update_view)
    docker: FakeDocker = field(default_factory=FakeDocker)
    operation_seconds: float = 0.0
    """How long an operation takes before its end event (0: at once)."""

    def __post_init__(self) -> None:
        self.paths = MachinePaths(self.name)
        if self.status_now is None:
            self.status_now = running_status(self.name)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._ended = False
        self._next_id = 1
        self._history: list[Event] = []
        self.streams = 0

    # ----- the machinery ------------------------------------------------------------

    def _call(self, method: str, *args: Any, agent: bool = True) -> None:
        with self._lock:
            self.calls.append((method, args))
            err = self.fail_once.pop(method, None) or self.fail.get(method)
        wait = self.delays.get(method, self.delay)
        if wait:
            time.sleep(wait)
        if agent and self.agent == "absent":
            raise AgentNotRunning(
                f"the host agent of machine {self.name!r} is not running", fix="`moorage start`"
            )
        if agent and self.agent == "crashed":
            raise AgentCrashed(
                f"the host agent of machine {self.name!r} died (pid 4242)",
                fix="`moorage start` starts a new one",
            )
        if err is not None:
            raise err

    def called(self, method: str) -> list[tuple[Any, ...]]:
        """The arguments of each call of ``method``."""
        with self._lock:
            return [args for m, args in self.calls if m == method]

    def push(self, kind: str, message: str, **fields: Any) -> Event:
        with self._lock:
            event = Event(id=self._next_id, kind=kind, message=message, **fields)  # type: ignore[arg-type]
            self._next_id += 1
            self._history.append(event)
            self._cond.notify_all()
        return event

    def end_stream(self, *, crash: bool = False, gone: bool = True) -> None:
        """The agent exits (``gone``: its pid file goes), or dies (``crash``)."""
        with self._cond:
            if crash:
                self.agent = "crashed"
            elif gone:
                self.agent = "absent"
            self._ended = True
            self._cond.notify_all()

    def set_state(self, state: str, **changes: Any) -> None:
        assert self.status_now is not None
        self.status_now.state = state  # type: ignore[assignment]
        for key, value in changes.items():
            setattr(self.status_now, key, value)
        self.push("state", f"machine {state}", state=state)

    # ----- is there an agent? --------------------------------------------------------

    def agent_pid(self) -> int | None:
        return 4242 if self.agent != "absent" else None

    def liveness(self) -> str:
        return "absent" if self.agent == "absent" else self.agent

    def alive(self) -> bool:
        return self.agent == "running"

    def spawn(self) -> None:
        self._call("spawn", agent=False)
        with self._cond:
            self.agent = "running"
            self._ended = False

    def wait_gone(self, timeout: float = 30.0) -> bool:
        return True

    def local_logs(self) -> list[Path]:
        return [self.paths.agent_log]

    # ----- requests -------------------------------------------------------------------

    def status(self) -> Status:
        self._call("status")
        assert self.status_now is not None
        return replace(self.status_now)

    def status_or_files(self) -> Status:
        try:
            return self.status()
        except (AgentNotRunning, AgentCrashed) as exc:
            st = Status(machine=self.name, state="stopped")
            if isinstance(exc, AgentCrashed):
                st.error = str(exc.message)
            return st

    def request(self, op: Operation) -> Accepted:
        self._call("request", op)
        since = self._next_id - 1
        threading.Thread(target=self._carry_out, args=(op,), daemon=True).start()
        return Accepted(since=since, op=op)

    def _carry_out(self, op: Operation) -> None:
        assert self.status_now is not None
        self.status_now.operation = op
        if op in ("start", "restart"):
            if op == "restart":
                self.set_state("stopping")
            self.set_state("starting", phase="vm")
            self.push("phase", "booting the VM", phase="vm", op=op)
            time.sleep(self.operation_seconds)
            self.status_now.operation = None
            self.status_now.phase = None
            self.set_state("running", engine_version=ENGINE_VERSION)
            self.push("ready", f"machine {self.name!r} is ready", op=op)
        elif op in ("stop", "reset", "delete"):
            self.set_state("stopping")
            time.sleep(self.operation_seconds)
            self.status_now.operation = None
            self.set_state("stopped", vm_pid=None, engine_version=None)
            self.push("done", f"machine {self.name!r} {op} done", op=op)
        else:
            self.status_now.operation = None
            self.push("done", f"{op} done", op=op)

    def config(self) -> ConfigView:
        self._call("config")
        values = config_mod.load(self.paths.config_file, HOST).__dict__
        plain = {
            k: list(v) if isinstance(v, tuple) else dict(v) if k == "engine" else v
            for k, v in values.items()
        }
        return ConfigView(str(self.paths.config_file), plain, config_mod.schema_json(HOST))

    def validate_config(self, values: dict[str, Any]) -> None:
        self._call("validate_config", values)
        config_mod.validate(values, HOST, "the values sent")

    def write_config(self, values: dict[str, Any]) -> ConfigView:
        self._call("write_config", values)
        config_mod.write_file(self.paths.config_file, values, HOST)
        return self.config()

    def stats(self) -> Stats:
        self._call("stats")
        now = time.time()
        samples = [
            StatSample(now - 600 + 5 * i, 10 + (i % 12) * 3.5, 700 + (i % 7) * 40)
            for i in range(120)
        ]
        return Stats(machine=self.name, interval_s=5.0, cpus=2, memory_mib=2048, samples=samples)

    def diagnostics(self) -> Diagnostics:
        self._call("diagnostics")
        path = self.paths.state / "diagnostics-20261204-120000.zip"
        return Diagnostics(
            path=str(path),
            size=48213,
            contents=["agent.log", "serial.log", "engine-info.json", "config.toml", "versions.txt"],
            scrubbed=3,
        )

    def use_context(self) -> None:
        self._call("use_context")

    # ----- swarm ------------------------------------------------------------------------

    def swarm(self, action: str = "", *, force: bool = False) -> SwarmInfo:
        self._call("swarm", action, force)
        if action == "init":
            self.swarm_info = SwarmInfo(
                state="active", node_id="abc123", address="10.0.2.15", managers=1, nodes=1
            )
        elif action == "leave":
            self.swarm_info = SwarmInfo(state="inactive")
        return self.swarm_info

    def clusters(self) -> ClusterList:
        self._call("clusters")
        return ClusterList(clusters=[replace(c) for c in self.cluster_list])

    def cluster(self, name: str) -> ClusterStatus:
        self._call("cluster", name)
        for c in self.cluster_list:
            if c.name == name:
                return replace(c)
        raise SwarmError(f"no cluster {name!r}", fix="`moorage cluster ls` lists them")

    def cluster_request(self, name: str, op: str) -> Accepted:
        self._call("cluster_request", name, op)
        since = self._next_id - 1
        full = "cluster-" + op  # start, stop, heal, recover, rm
        self.push("done", f"cluster {name}: {op} done", op=full, cluster=name)
        return Accepted(since=since, op=full, cluster=name)  # type: ignore[arg-type]

    def node_action(self, name: str, node_name: str, action: str) -> ClusterStatus:
        self._call("node_action", name, node_name, action)
        c = self.cluster(name)
        drills = {"kill": "killed", "freeze": "frozen", "partition": "partitioned"}
        nodes = []
        for n in c.nodes:
            changed = n
            if n.name == node_name:
                if action in drills:
                    changed = replace(n, drill=drills[action])
                elif action in ("drain", "pause", "activate"):
                    changed = replace(n, availability="active" if action == "activate" else action)
                elif action in ("promote", "demote"):
                    changed = replace(n, role="manager" if action == "promote" else "worker")
            nodes.append(changed)
        c.nodes = nodes
        self.cluster_list = [c if x.name == name else x for x in self.cluster_list]
        if action in ("drain", "pause", "activate"):
            self.docker.set_node(
                node_name, availability="active" if action == "activate" else action
            )
        elif action in ("promote", "demote"):
            self.docker.set_node(node_name, role="manager" if action == "promote" else "worker")
        elif action in drills:
            self.docker.set_node(node_name, state="down")
        self.push("cluster", f"{node_name}: {action}", cluster=name, node=node_name)
        return c

    # ----- updates ----------------------------------------------------------------------

    def update_view(self) -> UpdateView:
        self._call("update_view")
        return self.update

    def update_check(self, *, downgrade: bool = False) -> UpdateView:
        self._call("update_check", downgrade)
        self.update = replace(self.update, last_check=time.time())
        return self.update

    def update_apply(self, *, downgrade: bool = False) -> Accepted:
        self._call("update_apply", downgrade)
        since = self._next_id - 1
        version = (self.update.offer or {}).get("version", "0.2.0")
        self.push("progress", f"app {version}: 1.0 of 2.0 MB", op="update", done=1, total=2)
        self.update = replace(
            self.update,
            install=InstallCommand(
                ["apt-get", "install", "-y", f"/var/cache/moorage/moorage_{version}.deb"],
                privileged=True,
                version=str(version),
            ),
        )
        self.push("done", f"moorage {version} is downloaded and verified", op="update")
        return Accepted(since=since, op="update")

    def update_settings(self, values: dict[str, Any]) -> UpdateView:
        self._call("update_settings", values)
        settings = update_settings.validate({**self.update.settings, **values}, "the values sent")
        self.update = replace(self.update, settings=asdict(settings))
        return self.update

    def update_skip(self, version: str | None) -> UpdateView:
        self._call("update_skip", version)
        self.update = replace(self.update, skip=version)
        return self.update

    def update_rollback(self) -> UpdateView:
        self._call("update_rollback")
        return self.update

    # ----- streams ------------------------------------------------------------------------

    def events(self, since: int = 0) -> Iterator[Event]:
        # As the real client: no agent, an empty stream; a dead one, AgentCrashed.
        self._call("events", since, agent=False)
        if self.agent == "absent":
            return
        if self.agent != "crashed":
            with self._cond:
                self.streams += 1
        else:
            raise AgentCrashed(
                f"the host agent of machine {self.name!r} died (pid 4242)",
                fix="`moorage start` starts a new one",
            )
        last = since

        def more() -> bool:
            return self._ended or self._next_id - 1 > last

        try:
            while True:
                with self._cond:
                    self._cond.wait_for(more)
                    fresh = [e for e in self._history if e.id > last]
                    ended = self._ended
                for event in fresh:
                    last = event.id
                    yield event
                if ended and not fresh:
                    break
        finally:
            with self._cond:
                self.streams -= 1
        if self.agent == "crashed":
            raise AgentCrashed(
                f"the host agent of machine {self.name!r} died (pid 4242)",
                fix="`moorage start` starts a new one",
            )

    def follow(self, accepted: Accepted) -> Iterator[Event]:
        with self._lock:
            history = [e for e in self._history if e.id > accepted.since]
        for event in history:
            yield event
            if ends(accepted.op, event, accepted.cluster):
                return

    def engine_log(self, lines: int, follow: bool) -> Iterator[str]:
        self._call("engine_log", lines, follow)
        yield from [f"dockerd line {i}" for i in range(min(lines, 5))]


def error(message: str = "the engine did not answer", fix: str = "`moorage restart`") -> Exception:
    """An error as the agent's API raises it: a message and its fix."""
    return MoorageError(message, fix=fix)
