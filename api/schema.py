"""The host agent's control API, version 1: the single source of its routes, bodies,
events and error codes. ``docs/api.md`` is generated from this module
(``python -m moorage.api.schema``), and a unit test keeps the two equal.

Transport: HTTP/1.0 over the machine's user-only unix socket (``agent.sock``, 0600 in
a 0700 folder), as lima's host agent does. Every JSON answer carries ``"api": 1``.

Compatibility rules, so an older client keeps working with a newer agent and back:

- decoding ignores fields it does not know (``decode``), and every field added later
  has a default;
- a field's meaning never changes within a version; removing or changing one bumps
  ``API_VERSION`` and the route prefix (``/v2/...``);
- event kinds, states and error codes may be added; clients treat unknown ones as
  plain messages.

Invariants of ``Status`` (the agent keeps them, clients may rely on them):

- ``running`` implies the VM runs and the engine answered through the host socket
  when the agent last looked (at most ``HEALTH_SECONDS`` ago, and at once on
  ``GET /v1/status`` and ``POST /v1/start``);
- ``degraded`` implies the VM runs but the engine, the guest link or a forwarder is
  unhealthy; the agent is repairing it;
- ``crashed`` means the VM stopped without being asked to; the data disk is intact
  and ``start`` boots it again;
- ``stopped`` with ``vm_pid`` set means the VM runs without an agent (the agent was
  killed); ``start`` adopts it, ``stop`` and ``delete`` stop it first.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar, get_args

from moorage.errors import (
    AgentError,
    ConfigError,
    EngineError,
    HostError,
    ImageError,
    MachineError,
    MoorageError,
    SwarmError,
    UnsupportedOperation,
    UpdateError,
)
from moorage.types import Forward

API_VERSION = 1
HEALTH_SECONDS = 5.0
"""The longest a dead VM goes unnoticed by the agent."""
KEEPALIVE_SECONDS = 5.0
"""An event stream sends an empty line at least this often, so a client can tell a
quiet agent from a hung one."""
STATS_INTERVAL = 5.0
"""The VM's CPU and memory are sampled this often (``GET /v1/stats``),"""
STATS_WINDOW = 600.0
"""and each sample is kept this long."""
STATS_INTEREST = 60.0
"""The agent samples only while a client asked ``GET /v1/stats`` this recently: an
agent nobody watches does no extra work, and a client that asks more often than this
sees an unbroken series."""

State = Literal["starting", "running", "degraded", "stopping", "stopped", "crashed"]
EventKind = Literal[
    "state",
    "phase",
    "progress",
    "ready",
    "done",
    "warning",
    "error",
    "forward",
    "cluster",
    "update",
]
ForwardChange = Literal["added", "removed", "conflict", "resolved"]
Operation = Literal[
    "start",
    "stop",
    "restart",
    "delete",
    "reset",
    "update",
    "cluster-create",
    "cluster-start",
    "cluster-stop",
    "cluster-rm",
    "cluster-add",
    "cluster-heal",
    "cluster-recover",
    "cluster-load",
]
"""The machine's operations (one at a time), the app's ``update`` (one at a time, of
its own), then a cluster's (one at a time per cluster, while the machine runs; their
events carry ``cluster``)."""
CLUSTER_OPERATIONS = ("start", "stop", "heal", "recover")
"""``POST /v1/clusters/NAME/OP`` for these; each is ``cluster-OP``."""
NODE_ACTIONS = (
    "drain",
    "pause",
    "activate",
    "promote",
    "demote",
    "stop",
    "start",
    "rm",
    "kill",
    "freeze",
    "partition",
)
"""``POST /v1/clusters/NAME/nodes/NODE/ACTION``: the swarm's own node operations
(availability, role), the node's container (stop, start, rm), and the fault drills:
``kill`` is a power cut, ``freeze`` a hung machine (its processes paused),
``partition`` a pulled cable (off the cluster network, still running)."""
ClusterState = Literal["creating", "running", "degraded", "no-quorum", "stopped", "unknown"]
PHASES = ("host", "image", "vm", "kernel", "engine", "forwarders")

ErrorCode = Literal[
    "config",  # the config file or a value sent is invalid; `problems` lists each
    "host",  # the host lacks a tool or a service (libvirtd, QEMU, disk space)
    "machine",  # the VM layer failed (boot, driver, disk)
    "image",  # a guest image could not be built, found or verified
    "unsupported",  # the driver cannot do this
    "engine",  # the Docker engine in the VM or the path to it
    "agent",  # the agent itself (a bad request, an internal failure)
    "busy",  # another operation runs; try again when it ends
    "not-found",  # no such route
    "vm-crashed",  # the VM stopped without being asked to
    "cancelled",  # a stop cancelled the start
    "swarm",  # a swarm or cluster operation failed, or is not possible now
    "update",  # an update could not be checked, verified, downloaded or installed
]
"""Stable error codes: clients branch on these, never on message text."""

WarningCode = Literal[
    "kvm-unusable",  # the machine runs under TCG emulation
    "tcg-vcpus",  # TCG guests get one vCPU
    "sharing-fallback",  # shared folders use sshfs
    "sharing-off",  # no mechanism for shared folders
    "slow-start",  # the hypervisor took long to start the VM
    "guest",  # the guest said something during boot
    "guest-link",  # the SSH link to the guest died and is being rebuilt
    "sshfs-remount",  # an sshfs mount died and is mounted again
    "context",  # the docker context could not be made
    "poweroff",  # the guest did not power off in time; stopped hard
    "engine",  # the engine stopped answering
    "cluster",  # a cluster could not be brought back after the machine started
    "image-rollback",  # a staged guest image did not bring the engine up; back to the previous
]


# ----- decoding ------------------------------------------------------------

T = TypeVar("T")


def decode(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build the dataclass ``cls`` from JSON, ignoring fields it does not know, so a
    newer agent (or client) never breaks an older one. Nested dataclasses (and lists
    or optionals of them) are decoded the same way."""
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _decode_value(hints[f.name], data[f.name])
    return cls(**kwargs)


def _decode_value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        return _decode_value(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return decode(typing.cast(type, hint), value)
    if origin is list and isinstance(value, list):
        (item,) = get_args(hint)
        return [_decode_value(item, v) for v in value]
    return value


# ----- bodies ----------------------------------------------------------------


@dataclass(frozen=True)
class ForwardInfo:
    """A published port's forward, as events and status carry it."""

    proto: str
    host_addr: str
    host_port: int
    guest_port: int

    @classmethod
    def of(cls, forward: Forward) -> ForwardInfo:
        return cls(forward.proto, forward.host_addr, forward.host_port, forward.guest_port)

    def describe(self) -> str:
        return f"{self.host_addr}:{self.host_port}/{self.proto}"


@dataclass(frozen=True)
class Event:
    """One thing that happened, in order (``id`` grows by one).

    - ``phase`` opens a start phase (``phase``); ``progress`` lines belong to it;
    - ``ready`` ends a start; ``done`` ends any other operation (``op``);
    - ``error`` ends an operation in failure (``op``, ``code``, ``fix``), or reports a
      failure outside one (a crash: ``code = "vm-crashed"``);
    - ``state`` reports a state change (``state``);
    - ``warning`` has a stable ``code`` (``WarningCode``);
    - ``forward`` reports a published port's forward (``change``, ``forward``);
    - ``cluster`` reports what the agent saw change in a cluster (``cluster``, and
      ``node`` when it is about one: "c1-w1: down");
    - ``update`` says a new version is out on the user's channel; ``progress`` of an
      ``update`` operation carries ``done`` and ``total`` bytes of its download.

    Events of a cluster's operations carry ``cluster`` too.
    """

    id: int
    kind: EventKind
    message: str
    phase: str | None = None
    state: State | None = None
    op: Operation | None = None
    code: str | None = None
    fix: str | None = None
    change: ForwardChange | None = None
    forward: ForwardInfo | None = None
    cluster: str | None = None
    node: str | None = None
    done: int | None = None
    total: int | None = None
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Status:
    """What ``GET /v1/status`` answers. See the module docstring for its invariants."""

    machine: str
    state: State = "stopped"
    operation: Operation | None = None
    """The operation running now, if any."""
    phase: str | None = None
    driver: str = ""
    accel: str | None = None
    accel_reason: str | None = None
    cpus: int | None = None
    memory_gib: float | None = None
    disk_gib: int | None = None
    image: str | None = None
    engine_version: str | None = None
    docker_socket: str | None = None
    docker_context: str | None = None
    ssh_port: int | None = None
    agent_pid: int | None = None
    vm_pid: int | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    """Forwarded host ports, e.g. ``127.0.0.1:8080/tcp``."""
    port_conflicts: list[str] = field(default_factory=list)
    """Published ports the host could not bind yet, with the reason."""
    file_sharing: str | None = None
    """The mechanism that shares host folders (``virtiofs``), or None when none are."""
    shared_folders: list[str] = field(default_factory=list)
    """Host folders mounted in the guest at the same path."""
    clusters: list[str] = field(default_factory=list)
    """The machine's swarm clusters and their states, e.g. ``c1 (running)``."""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    api: int = API_VERSION
    agent_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ErrorBody:
    """The body of every 4xx/5xx answer: ``{"api": 1, "error": {...}}``."""

    code: str
    message: str
    fix: str | None = None
    problems: list[str] = field(default_factory=list)
    """For ``config``: every problem found, each naming the key."""
    source: str | None = None
    """For ``config``: the file (or request) the problems are in."""


@dataclass(frozen=True)
class Accepted:
    """The answer to an operation: follow ``GET /v1/events?since=SINCE`` for its end."""

    since: int
    op: Operation | None = None
    cluster: str | None = None
    refs: list[str] = field(default_factory=list)
    """For ``cluster-load``: the reference each image has on every node, for services."""


@dataclass(frozen=True)
class ConfigView:
    """``GET /v1/config``: the file, the values in effect and the schema that
    validates them (each option's type, default, allowed values and description)."""

    path: str
    values: dict[str, Any]
    schema: list[dict[str, Any]]


@dataclass(frozen=True)
class ConfigWrite:
    """``POST /v1/config/validate`` and ``PUT /v1/config``: the values to check or write
    (the whole file's keys; a missing key means its default)."""

    values: dict[str, Any]


@dataclass(frozen=True)
class ShellCommand:
    """``GET /v1/shell``: the command line that opens a root shell in the VM."""

    argv: list[str]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Doctor:
    """``GET /v1/doctor``: the host's checks. ``accel`` is ``kvm`` or ``tcg``."""

    accel: str
    accel_reason: str
    checks: list[Check] = field(default_factory=list)


@dataclass(frozen=True)
class NodeInfo:
    """One node of a cluster: what moorage did to it, and what the swarm sees.

    ``container`` is the node's container in the machine's engine (``running``,
    ``paused``, ``exited``, ``created``, ``missing``); ``drill`` what a fault drill did
    to it until ``heal`` (``killed``, ``frozen``, ``partitioned``); ``stopped`` means
    the user stopped it. The rest is the swarm's own view, in its own words, from a
    manager (None when no manager answers): ``state`` (``ready``, ``down``,
    ``unknown``, ``disconnected``), ``availability`` (``active``, ``pause``,
    ``drain``), ``manager`` (``leader``, ``reachable``, ``unreachable``; managers only).
    """

    name: str
    role: str
    address: str
    container: str
    drill: str | None = None
    stopped: bool = False
    state: str | None = None
    availability: str | None = None
    manager: str | None = None
    leader: bool = False
    engine_version: str | None = None
    socket: str | None = None
    """The node's own engine on the host (``docker -H unix://SOCKET``), user-only."""


@dataclass
class ClusterStatus:
    """``GET /v1/clusters/NAME``: a local multi-node swarm in the machine's VM.

    ``quorum`` is whether a manager answered with a leader; without it ``problem``
    names the managers that are gone and ``fix`` the command that recovers.
    ``context`` is the docker context whose socket (``socket``) reaches whichever
    manager answers; ``ports`` are the routing-mesh ports of its services forwarded
    on the host, each through any live node."""

    name: str
    machine: str
    state: ClusterState = "unknown"
    context: str | None = None
    socket: str | None = None
    nodes: list[NodeInfo] = field(default_factory=list)
    quorum: bool = False
    problem: str | None = None
    fix: str | None = None
    fast_drills: bool = False
    heartbeat_s: float = 5.0
    election_tick: int = 10
    down_after_s: float = 15.0
    ports: list[str] = field(default_factory=list)
    port_conflicts: list[str] = field(default_factory=list)
    operation: Operation | None = None
    created: float = 0.0
    api: int = API_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClusterList:
    """``GET /v1/clusters``."""

    clusters: list[ClusterStatus] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterCreate:
    """``POST /v1/clusters``: ``fast_drills`` shortens the dispatcher heartbeat, so a
    killed node is Down in seconds rather than 15 s (docs/swarm.md)."""

    name: str
    managers: int = 3
    workers: int = 2
    fast_drills: bool = False


@dataclass(frozen=True)
class NodeAdd:
    """``POST /v1/clusters/NAME/nodes``: ``role`` is ``manager`` or ``worker``."""

    role: str = "worker"


@dataclass(frozen=True)
class ClusterLoad:
    """``POST /v1/clusters/NAME/load``: images of the machine's engine to load into
    every node (no registry is needed)."""

    images: list[str]


@dataclass(frozen=True)
class Unlock:
    """``POST /v1/clusters/NAME/unlock``: the autolock key, for one locked manager (or
    every locked node when ``node`` is None). Never logged."""

    key: str
    node: str | None = None


@dataclass(frozen=True)
class SwarmInfo:
    """``GET /v1/swarm``: the one-node swarm on the machine's own engine.

    ``state`` is the engine's ``LocalNodeState``: ``inactive``, ``pending``,
    ``active``, ``error`` or ``locked``."""

    state: str
    node_id: str | None = None
    address: str | None = None
    managers: int = 0
    nodes: int = 0
    services: int = 0
    error: str | None = None


@dataclass(frozen=True)
class InstallCommand:
    """The command that installs the app's verified package, for the client to run:
    after a privilege prompt when ``privileged`` (sudo in a terminal, pkexec in a
    desktop session), since the package manager owns the app's files."""

    argv: list[str]
    privileged: bool
    version: str


@dataclass(frozen=True)
class UpdateView:
    """``GET /v1/update`` and the answers of the other update routes. Updates are
    app-wide: every machine's agent answers the same. ``offer`` is the last check's
    finding (``channel``, ``newest``, ``version``, ``parts``, ``held``, ``notes``,
    ``skipped``); ``guest`` the guest image selection (``current``, ``staged``,
    ``previous``, ``failed``, ``last_failure``); ``install`` a verified package
    waiting to be installed (after ``apply``) or installed again (after ``rollback``)."""

    app_version: str
    install_kind: str
    settings: dict[str, Any]
    schema: list[dict[str, Any]]
    guest: dict[str, Any]
    last_check: float | None = None
    last_error: str | None = None
    offer: dict[str, Any] | None = None
    skip: str | None = None
    install: InstallCommand | None = None
    messages: list[str] = field(default_factory=list)
    """What the last ``apply`` or ``rollback`` did."""


@dataclass(frozen=True)
class UpdateRequest:
    """``POST /v1/update/check``, ``/apply``: ``downgrade`` allows going below the
    running version (after a switch from beta to stable); ``skip`` (for
    ``POST /v1/update/skip``) is the version not to announce, or None."""

    downgrade: bool = False
    skip: str | None = None


@dataclass(frozen=True)
class StatSample:
    """One sample of the VM, from inside the guest: ``t`` is the host's clock (seconds
    since the epoch), ``cpu_percent`` the share of all its vCPUs that was busy since
    the sample before (0 to 100), ``memory_used_mib`` its MemTotal - MemAvailable."""

    t: float
    cpu_percent: float
    memory_used_mib: float


@dataclass(frozen=True)
class Stats:
    """``GET /v1/stats``: the VM's CPU and memory, one sample every ``interval_s``,
    oldest first, over the last ``STATS_WINDOW`` seconds. Sampling begins at the first
    request and goes on while requests come at least every ``STATS_INTEREST`` seconds,
    so the first answers hold few samples, or none. ``samples`` is empty while the
    machine does not run. ``cpus`` and ``memory_mib`` are the VM's vCPUs and memory
    (0 when not known)."""

    machine: str
    interval_s: float
    cpus: int
    memory_mib: int
    samples: list[StatSample] = field(default_factory=list)
    api: int = API_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Diagnostics:
    """``POST /v1/diagnose``: the bundle written, a zip file (0600) of ``size`` bytes in
    the machine's state folder. ``contents`` names its files; ``scrubbed`` counts the
    secrets replaced in them (swarm join tokens and unlock keys, private keys, the
    Docker socket's token, values of keys named like a token, password, secret or key)."""

    path: str
    size: int
    contents: list[str] = field(default_factory=list)
    scrubbed: int = 0
    api: int = API_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ends(op: Operation | None, event: Event, cluster: str | None = None) -> bool:
    """Whether ``event`` ends operation ``op`` (of ``cluster``, for a cluster's): its
    ``error``; ``ready`` for a start or a restart; ``done`` for the others. An
    operation's own parts say ``done`` too (the stop inside a delete), under their own
    ``op``, and do not end it."""
    if event.cluster != cluster:
        return False
    if event.kind == "error":
        return event.op == op
    if event.kind == "ready":
        return op in ("start", "restart") and cluster is None
    return event.kind == "done" and event.op == op


# ----- routes ------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    request: str | None = None
    response: str | None = None


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/status", "The machine's state, checked live against the VM.", None, "Status"),
    Route(
        "GET",
        "/v1/events?since=ID",
        "Events after ID as JSON lines; the stream follows new ones, with an empty "
        f"line at least every {KEEPALIVE_SECONDS:g} s, until the client leaves.",
        None,
        "Event (one per line)",
    ),
    Route("POST", "/v1/start", "Start (or adopt, or repair) the machine.", None, "Accepted"),
    Route("POST", "/v1/stop", "Stop the machine cleanly; the agent exits after.", None, "Accepted"),
    Route("POST", "/v1/restart", "Stop, then start: applies config changes.", None, "Accepted"),
    Route(
        "POST",
        "/v1/delete",
        "Stop the VM (even one a killed agent left), then delete the machine's disks, "
        "keys, config and docker context; the agent exits after.",
        None,
        "Accepted",
    ),
    Route("POST", "/v1/reset", "Stop the VM, then erase the data disk.", None, "Accepted"),
    Route(
        "GET",
        "/v1/logs?lines=N&follow=0|1",
        "dockerd's log from inside the VM, as text lines.",
        None,
        "text",
    ),
    Route(
        "GET",
        "/v1/config",
        "The config file, the values in effect, the schema.",
        None,
        "ConfigView",
    ),
    Route(
        "POST", "/v1/config/validate", "Check values; 200 or a config error.", "ConfigWrite", None
    ),
    Route(
        "PUT",
        "/v1/config",
        "Validate and write the config file; applies on the next restart.",
        "ConfigWrite",
        "ConfigView",
    ),
    Route("GET", "/v1/shell", "The command line of a root shell in the VM.", None, "ShellCommand"),
    Route("POST", "/v1/context/use", "Make the machine's docker context current.", None, None),
    Route(
        "GET",
        "/v1/doctor?kvm_only=0|1",
        "Check the host: QEMU, the driver, KVM (by a test boot).",
        None,
        "Doctor",
    ),
    Route("GET", "/v1/swarm", "The one-node swarm on the machine's engine.", None, "SwarmInfo"),
    Route(
        "POST", "/v1/swarm/init", "Make the machine's engine a one-node swarm.", None, "SwarmInfo"
    ),
    Route("POST", "/v1/swarm/leave?force=0|1", "Leave the one-node swarm.", None, "SwarmInfo"),
    Route("GET", "/v1/clusters", "Every cluster of the machine.", None, "ClusterList"),
    Route(
        "POST",
        "/v1/clusters",
        "Create a cluster: node image, network, nodes, engines, init, joins.",
        "ClusterCreate",
        "Accepted",
    ),
    Route("GET", "/v1/clusters/NAME", "A cluster, checked live.", None, "ClusterStatus"),
    Route(
        "DELETE",
        "/v1/clusters/NAME",
        "Remove a cluster: its nodes, their data, its network, sockets and context.",
        None,
        "Accepted",
    ),
    Route(
        "POST",
        "/v1/clusters/NAME/OP",
        "OP is start, stop, heal (undo drills: unfreeze, reconnect, start killed nodes) or "
        "recover (a new cluster from a surviving manager, the lost managers joined again).",
        None,
        "Accepted",
    ),
    Route("POST", "/v1/clusters/NAME/nodes", "Add a node.", "NodeAdd", "Accepted"),
    Route(
        "POST",
        "/v1/clusters/NAME/nodes/NODE/ACTION",
        "ACTION is one of " + ", ".join(NODE_ACTIONS) + ".",
        None,
        "ClusterStatus",
    ),
    Route(
        "POST",
        "/v1/clusters/NAME/load",
        "Load images of the machine's engine into every node.",
        "ClusterLoad",
        "Accepted",
    ),
    Route(
        "POST", "/v1/clusters/NAME/unlock", "Unlock autolocked managers.", "Unlock", "ClusterStatus"
    ),
)
# Updates are app-wide: every machine's agent answers the same.
ROUTES += (
    Route(
        "GET",
        "/v1/update",
        "The update settings, the last check, the guest images.",
        None,
        "UpdateView",
    ),
    Route(
        "POST",
        "/v1/update/check",
        "Ask the channel now (TUF-verified).",
        "UpdateRequest",
        "UpdateView",
    ),
    Route(
        "POST",
        "/v1/update/apply",
        "Download, verify and stage the update; `done` or "
        "`error` of op `update` ends it; `install` then says how to install the app.",
        "UpdateRequest",
        "Accepted",
    ),
    Route(
        "PUT",
        "/v1/update/settings",
        "Validate and change update.toml.",
        "ConfigWrite",
        "UpdateView",
    ),
    Route(
        "POST", "/v1/update/skip", "Do not announce this version.", "UpdateRequest", "UpdateView"
    ),
    Route(
        "POST",
        "/v1/update/rollback",
        "Go back to the previous guest image and app.",
        None,
        "UpdateView",
    ),
)

# What the tray's dashboard shows, and what a bug report needs.
ROUTES += (
    Route("GET", "/v1/stats", "The VM's CPU and memory over the last minutes.", None, "Stats"),
    Route(
        "POST",
        "/v1/diagnose",
        "Write a diagnostics bundle: the logs, status, clusters, engine, config and "
        "versions, with keys and tokens scrubbed.",
        None,
        "Diagnostics",
    ),
)

BODIES: tuple[type, ...] = (Status, Event, ForwardInfo, ErrorBody, Accepted, ConfigView)
BODIES += (ConfigWrite, ShellCommand, Doctor, Check, SwarmInfo, ClusterList, ClusterStatus)
BODIES += (NodeInfo, ClusterCreate, NodeAdd, ClusterLoad, Unlock)
BODIES += (UpdateView, InstallCommand, UpdateRequest)
BODIES += (Stats, StatSample, Diagnostics)


# ----- errors ------------------------------------------------------------------


class AgentBusy(AgentError):
    """The agent answers, but not in time: it is slow or hung."""


class OperationRunning(AgentError):
    """Another operation runs that this one cannot join or cancel (code ``busy``)."""


class AgentCrashed(AgentError):
    """The agent process died (its pid file remains, its lock is free)."""


class AgentNotRunning(AgentError):
    """No agent runs for this machine."""


class VMCrashed(MachineError):
    """The VM stopped without being asked to."""


class Cancelled(MachineError):
    """A stop cancelled the operation."""


_CODES: tuple[tuple[type[MoorageError], str], ...] = (
    (ConfigError, "config"),
    (HostError, "host"),
    (UnsupportedOperation, "unsupported"),
    (ImageError, "image"),
    (VMCrashed, "vm-crashed"),
    (Cancelled, "cancelled"),
    (OperationRunning, "busy"),
    (MachineError, "machine"),
    (EngineError, "engine"),
    (SwarmError, "swarm"),
    (UpdateError, "update"),
    (AgentError, "agent"),
)
HTTP_STATUS = {"config": 400, "not-found": 404, "busy": 409, "unsupported": 501, "swarm": 409}


def error_body(exc: MoorageError) -> ErrorBody:
    """The wire form of an error: its code, message and fix (and each config problem)."""
    code = next((c for cls, c in _CODES if isinstance(exc, cls)), "agent")
    if isinstance(exc, ConfigError):
        return ErrorBody(code, exc.message, exc.fix, list(exc.problems), exc.source)
    return ErrorBody(code, exc.message, exc.fix)


def error_from_body(body: ErrorBody) -> MoorageError:
    """The error a client raises for an error body: the same class the agent raised
    where it maps to one, so ``except ConfigError`` works on both sides."""
    if body.code == "config":
        return ConfigError(body.source or "config", body.problems or [body.message])
    cls = next((c for c, code in _CODES if code == body.code), AgentError)
    return cls(body.message, fix=body.fix)


def markdown() -> str:
    """docs/api.md: the routes, the bodies' fields and the codes, from this module."""
    lines = [
        "# The host agent's control API (version 1)",
        "",
        "Generated from `api/schema.py` by `python -m moorage.api.schema`; do not edit.",
        "",
        (__doc__ or "").strip(),
        "",
        "## Routes",
        "",
        "| method | path | request | answer | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in ROUTES:
        lines.append(
            f"| {r.method} | `{r.path}` | {r.request or ''} | {r.response or ''} | {r.summary} |"
        )
    lines += ["", "## Bodies", ""]
    hints_ns = vars(sys.modules[__name__])
    for body in BODIES:
        lines += [f"### {body.__name__}", "", (body.__doc__ or "").strip(), ""]
        lines += ["| field | type |", "| --- | --- |"]
        hints = typing.get_type_hints(body, hints_ns)
        for f in dataclasses.fields(body):
            hint = hints[f.name]
            shown = hint.__name__ if isinstance(hint, type) else str(hint)
            for prefix in ("typing.", f"{__name__}.", f"{__spec__.name}." if __spec__ else ""):
                shown = shown.replace(prefix, "") if prefix else shown
            lines.append(f"| `{f.name}` | `{shown}` |")
        lines.append("")
    lines += ["## Codes", ""]
    for name, alias in (("Error codes", ErrorCode), ("Warning codes", WarningCode)):
        lines.append(f"{name}: " + ", ".join(f"`{c}`" for c in get_args(alias)) + ".")
        lines.append("")
    lines.append("Event kinds: " + ", ".join(f"`{k}`" for k in get_args(EventKind)) + ".")
    lines.append("")
    lines.append("States: " + ", ".join(f"`{s}`" for s in get_args(State)) + ".")
    lines.append("")
    lines.append("Cluster states: " + ", ".join(f"`{s}`" for s in get_args(ClusterState)) + ".")
    lines.append("")
    lines.append("Operations: " + ", ".join(f"`{o}`" for o in get_args(Operation)) + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
