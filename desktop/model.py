"""The tray's menu as data: what it shows and what each item does, from what the agent
and the engine said. Pure (no Qt), so every machine state's menu is a unit test.

``menu(view)`` turns a ``View`` (the machine's ``Status``, its swarm and clusters, the
update view, the running containers, and whether the agent answers) into a ``Menu``:
the status line, the icon's state and the sections of items. An item names its action
(``action`` and ``args``); the app carries it out through ``Calls``. An item whose
action would fail now (Stop of a stopped machine) is there but disabled; an item of a
capability moorage does not have is never there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from moorage.api.schema import ClusterList, ClusterStatus, NodeInfo, Status, SwarmInfo, UpdateView

Connection = Literal["ok", "not-responding", "not-running", "crashed"]
"""How the agent is: it answers; it lives but does not answer (hung, or an answer
slower than ``calls.SLOW_AFTER``); no agent runs (a stopped machine: what its files
say); it died."""
IconState = Literal["starting", "running", "stopped", "trouble"]

# Action ids: the app's dispatch table has one handler for each.
START, STOP, RESTART = "start", "stop", "restart"
DASHBOARD = "dashboard"
OPEN_URL = "open-url"  # args: (url,)
CONTAINER_LOGS, CONTAINER_RESTART, CONTAINER_STOP = (
    "container-logs",
    "container-restart",
    "container-stop",
)  # args: (container id, name)
SWARM_INIT, SWARM_LEAVE = "swarm-init", "swarm-leave"
CLUSTER_OP = "cluster-op"  # args: (cluster, op) with op in CLUSTER_OPERATIONS
NODE_ACTION = "node-action"  # args: (cluster, node, action) with action in NODE_ACTIONS
PREFERENCES = "preferences"
DIAGNOSTICS, RESET, AGENT_LOG = "diagnostics", "reset", "agent-log"
UPDATE_CHECK, UPDATE_APPLY, UPDATE_INSTALL = "update-check", "update-apply", "update-install"
ABOUT, QUIT = "about", "quit"

DRILLS = (
    ("kill", "Kill (power cut)"),
    ("freeze", "Freeze (hung machine)"),
    ("partition", "Partition (pulled cable)"),
)


@dataclass(frozen=True)
class Port:
    """A published port of a container, as the engine lists it."""

    container_port: int
    proto: str
    host_ip: str = ""
    host_port: int | None = None

    def url(self) -> str | None:
        """Where a browser reaches it on this host (TCP ports published on the host only).
        moorage forwards every published port to the host's loopback (and to every
        interface with ``expose_ports``), whatever address the engine names in the VM."""
        if self.proto != "tcp" or not self.host_port:
            return None
        return f"http://localhost:{self.host_port}"


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    image: str
    ports: tuple[Port, ...] = ()
    state: str = "running"

    @classmethod
    def from_engine(cls, data: dict[str, Any]) -> Container:
        """From one entry of the engine's ``GET /containers/json`` (docker-py's
        ``APIClient.containers()``)."""
        seen: set[tuple[int, str, int | None]] = set()
        ports: list[Port] = []
        for p in data.get("Ports") or []:
            port = Port(
                int(p.get("PrivatePort", 0)),
                str(p.get("Type", "tcp")),
                str(p.get("IP", "")),
                p.get("PublicPort"),
            )
            key = (port.container_port, port.proto, port.host_port)
            if key not in seen:  # the engine lists 0.0.0.0 and :: of one port twice
                seen.add(key)
                ports.append(port)
        ports.sort(key=lambda p: (p.host_port is None, p.host_port or 0, p.container_port))
        names = data.get("Names") or [data.get("Id", "")[:12]]
        return cls(
            id=str(data.get("Id", "")),
            name=str(names[0]).lstrip("/"),
            image=str(data.get("Image", "")),
            ports=tuple(ports),
            state=str(data.get("State", "running")),
        )


@dataclass(frozen=True)
class Item:
    """One menu entry. With ``children`` it is a submenu; ``separator`` draws a line;
    ``confirm`` is the question the app asks before it acts (what is deleted)."""

    label: str
    action: str = ""
    args: tuple[str, ...] = ()
    enabled: bool = True
    children: tuple[Item, ...] = ()
    separator: bool = False
    confirm: str = ""
    tip: str = ""

    def walk(self) -> Iterator[Item]:
        yield self
        for child in self.children:
            yield from child.walk()

    def child(self, label: str) -> Item:
        """The child whose label starts with ``label`` (for tests and the app)."""
        for c in self.children:
            if c.label.startswith(label):
                return c
        raise KeyError(f"{label!r} not in {[c.label for c in self.children]}")


SEPARATOR = Item("", separator=True)


@dataclass(frozen=True)
class Section:
    name: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Menu:
    status_line: str
    icon: IconState
    tooltip: str
    sections: tuple[Section, ...]

    def section(self, name: str) -> Section:
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(name)

    def item(self, *path: str) -> Item:
        """The item at ``path`` of label prefixes: ``menu.item("Swarm", "Cluster c1")``."""
        top = Item("", children=tuple(i for s in self.sections for i in s.items))
        for label in path:
            top = top.child(label)
        return top

    def walk(self) -> Iterator[Item]:
        for s in self.sections:
            for i in s.items:
                yield from i.walk()

    def actions(self) -> set[str]:
        return {i.action for i in self.walk() if i.action}


@dataclass(frozen=True)
class View:
    """What the menu is drawn from. None means not known yet (not asked, or asked and
    not answered); a field the agent could not answer stays at its last answer."""

    machine: str
    status: Status | None = None
    connection: Connection = "ok"
    swarm: SwarmInfo | None = None
    clusters: ClusterList | None = None
    update: UpdateView | None = None
    containers: tuple[Container, ...] | None = None
    problem: tuple[str, str] | None = None
    """The last error an operation or the agent reported (message, fix), until the
    next operation starts or the machine is ready."""
    pending: frozenset[str] = field(default_factory=frozenset)
    """Actions sent and not answered yet (their items say so and wait)."""
    progress: str | None = None
    """What a long operation says now (a phase, a download's percentage)."""
    app_version: str = ""


def state_of(view: View) -> str:
    """The machine's state as the menu shows it: the agent's, or the connection's
    trouble when the agent cannot say."""
    if view.connection == "not-responding":
        return "not-responding"
    if view.connection == "crashed":
        return "agent-crashed"
    if view.status is None:
        return "unknown"
    return view.status.state


def icon_state(view: View) -> IconState:
    st = view.status
    if view.connection in ("not-responding", "crashed"):
        return "trouble"
    if st is None:
        return "stopped"
    if st.state in ("starting", "stopping") or st.operation in ("start", "restart", "stop"):
        return "starting"
    if st.state in ("crashed", "degraded") or st.error or view.problem or st.port_conflicts:
        return "trouble"
    return "running" if st.state == "running" else "stopped"


def status_line(view: View) -> str:
    st = view.status
    name = view.machine
    if view.connection == "not-responding":
        return f"{name}: not responding"
    if view.connection == "crashed":
        return f"{name}: the host agent died"
    if st is None:
        return f"{name}: asking the host agent…"
    match st.state:
        case "starting":
            text = "starting" + (f": {st.phase}" if st.phase else "")
        case "running":
            text = "running"
            if st.engine_version:
                text += f", engine {st.engine_version}"
            if st.accel == "tcg":
                text += " (emulated, slow)"
        case "degraded":
            text = "degraded: repairing"
        case "crashed":
            text = "crashed"
        case other:
            text = other
    if st.operation in ("stop", "restart", "reset", "delete", "update") and st.state != "stopping":
        text += f" ({st.operation}…)"
    if view.progress and st.state in ("starting", "stopping"):
        text += f" — {view.progress}"
    if view.connection == "not-running" and st.error is None and st.state == "stopped":
        text = "stopped"
    return f"{name}: {text}"


def _problems(view: View) -> tuple[Item, ...]:
    """What is wrong, each as a line of its own under the status line."""
    st = view.status
    lines: list[Item] = []
    if view.connection == "not-responding":
        lines.append(
            Item(
                "The host agent does not answer; the menu waits for it",
                enabled=False,
                tip="Troubleshoot > Open the host agent's log",
            )
        )
    elif view.connection == "crashed":
        lines.append(Item("The machine needs a new host agent: Start starts one", enabled=False))
    if view.problem:
        message, fix = view.problem
        lines.append(Item(_short(f"Error: {message}"), enabled=False, tip=fix))
        if fix:
            lines.append(Item(_short(f"Fix: {fix}"), enabled=False))
    if st is not None:
        if st.error and (view.problem is None or st.error != view.problem[0]):
            lines.append(Item(_short(f"Error: {st.error}"), enabled=False))
        lines += [Item(_short(f"Port taken: {c}"), enabled=False) for c in st.port_conflicts]
        if st.state in ("running", "degraded"):
            lines += [Item(_short(f"Warning: {w}"), enabled=False) for w in st.warnings[-2:]]
    return tuple(lines)


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _machine_items(view: View) -> tuple[Item, ...]:
    st = view.status
    responds = view.connection != "not-responding"
    state = st.state if st is not None else None
    op = st.operation if st is not None else None
    busy = bool({START, STOP, RESTART, RESET} & view.pending)
    idle = op is None and not busy
    can_start = responds and idle and state in ("stopped", "crashed", None)
    if view.connection == "crashed":
        can_start = not busy
    # A stop cancels a start in progress (the agent allows it), so Stop stays enabled.
    can_stop = (
        responds
        and view.connection != "crashed"
        and not ({STOP, RESET} & view.pending)
        and (
            state in ("running", "degraded", "starting")
            or op in ("start", "restart")
            or (state == "stopped" and st is not None and st.vm_pid is not None)
        )
    )
    can_restart = responds and idle and state in ("running", "degraded", "crashed")
    return (
        Item("Start", START, enabled=can_start),
        Item(
            "Stop" + (" (cancels the start)" if state == "starting" else ""), STOP, enabled=can_stop
        ),
        Item("Restart", RESTART, enabled=can_restart, tip="applies changed preferences"),
    )


def _container_items(view: View) -> Item:
    st = view.status
    if st is None or st.state not in ("running", "degraded"):
        return Item("Containers", enabled=False, tip="the machine is not running")
    if view.containers is None:
        return Item("Containers", children=(Item("Asking the engine…", enabled=False),))
    if not view.containers:
        return Item("Containers", children=(Item("No running containers", enabled=False),))
    items: list[Item] = []
    for c in view.containers:
        children: list[Item] = []
        for port in c.ports:
            url = port.url()
            if url is not None:
                children.append(
                    Item(
                        f"Open {url}",
                        OPEN_URL,
                        (url,),
                        tip=f"container port {port.container_port}/tcp",
                    )
                )
            elif port.host_port:
                children.append(
                    Item(
                        f"Port {port.host_port}/{port.proto} → {port.container_port}", enabled=False
                    )
                )
        if not children:
            children.append(Item("No published ports", enabled=False))
        ids = (c.id, c.name)
        children += [
            SEPARATOR,
            Item("Logs", CONTAINER_LOGS, ids),
            Item("Restart", CONTAINER_RESTART, ids),
            Item("Stop", CONTAINER_STOP, ids),
        ]
        items.append(Item(_short(f"{c.name} ({c.image})", 60), children=tuple(children)))
    return Item(f"Containers ({len(items)})", children=tuple(items))


def _node_label(n: NodeInfo) -> str:
    role = "leader" if n.leader else n.role
    parts = [role, n.state or "?"]
    if n.availability and n.availability != "active":
        parts.append(n.availability)
    if n.stopped:
        parts.append("stopped")
    if n.drill:
        parts.append(n.drill)
    return f"{n.name}: {', '.join(parts)}"


def node_item(c: ClusterStatus, n: NodeInfo) -> Item:
    def act(label: str, action: str, enabled: bool = True, confirm: str = "") -> Item:
        return Item(label, NODE_ACTION, (c.name, n.name, action), enabled=enabled, confirm=confirm)

    live = n.container == "running" and not n.stopped and n.drill is None
    children = [
        act("Drain", "drain", n.availability != "drain"),
        act("Activate", "activate", n.availability not in (None, "active")),
        act("Demote to worker", "demote")
        if n.role == "manager"
        else act("Promote to manager", "promote"),
        Item("Fault drills (Heal undoes them)", enabled=False),
    ]
    children += [act(label, action, live) for action, label in DRILLS]
    return Item(_node_label(n), children=tuple(children))


def cluster_item(c: ClusterStatus) -> Item:
    children: list[Item] = [node_item(c, n) for n in c.nodes]
    if c.problem:
        children.append(Item(_short(c.problem), enabled=False, tip=c.fix or ""))
    children.append(SEPARATOR)
    drilled = any(n.drill for n in c.nodes)
    children.append(Item("Heal (undo every drill)", CLUSTER_OP, (c.name, "heal"), enabled=drilled))
    if c.state == "no-quorum":
        children.append(
            Item(
                "Recover (a new cluster from a surviving manager)", CLUSTER_OP, (c.name, "recover")
            )
        )
    if c.state == "stopped":
        children.append(Item("Start the cluster", CLUSTER_OP, (c.name, "start")))
    elif c.state in ("running", "degraded", "no-quorum"):
        children.append(Item("Stop the cluster", CLUSTER_OP, (c.name, "stop")))
    label = f"Cluster {c.name} ({c.state}" + (f", {c.operation}…)" if c.operation else ")")
    return Item(label, children=tuple(children))


def one_node_items(sw: SwarmInfo | None) -> tuple[Item, ...]:
    """The machine's own engine as a swarm: what it is, and Init or Leave (the tray's
    Swarm menu and the dashboard's swarm page show the same)."""
    if sw is None:
        return (Item("This engine: asking…", enabled=False),)
    if sw.state == "inactive":
        return (Item("Make this engine a one-node swarm", SWARM_INIT),)
    info = f"This engine: one-node swarm, {sw.state}"
    if sw.state == "active":
        info += f", {sw.services} service{'s' if sw.services != 1 else ''}"
    return (
        Item(info, enabled=False, tip=sw.error or ""),
        Item(
            "Leave the one-node swarm",
            SWARM_LEAVE,
            confirm="Leave the one-node swarm? Its services and their tasks are removed.",
        ),
    )


def _swarm_item(view: View) -> Item:
    st = view.status
    if st is None or st.state not in ("running", "degraded"):
        return Item("Swarm", enabled=False, tip="the machine is not running")
    children: list[Item] = [*one_node_items(view.swarm), SEPARATOR]
    if view.clusters is None:
        children.append(Item("Clusters: asking…", enabled=False))
    elif not view.clusters.clusters:
        children.append(Item("No clusters (moorage cluster create NAME)", enabled=False))
    else:
        children += [cluster_item(c) for c in view.clusters.clusters]
    return Item("Swarm", children=tuple(children))


def _offer(update: UpdateView | None) -> str | None:
    """The version a check found and the user did not skip."""
    if update is None or not update.offer:
        return None
    offer = update.offer
    if not offer.get("parts") or offer.get("skipped"):
        return None
    version = offer.get("version")
    return str(version) if version else None


def _update_items(view: View) -> tuple[Item, ...]:
    responds = view.connection != "not-responding"
    items: list[Item] = []
    checking = UPDATE_CHECK in view.pending
    items.append(
        Item(
            "Checking for updates…" if checking else "Check for updates",
            UPDATE_CHECK,
            enabled=responds and not checking,
        )
    )
    update = view.update
    applying = UPDATE_APPLY in view.pending or (
        view.status is not None and view.status.operation == "update"
    )
    installing = UPDATE_INSTALL in view.pending
    if update is not None and update.install is not None:
        step = update.install
        items.append(
            Item(
                f"Install moorage {step.version}…",
                UPDATE_INSTALL,
                enabled=not installing,
                tip="asks for your password" if step.privileged else "",
            )
        )
    elif (version := _offer(update)) is not None:
        label = "Downloading the update…" if applying else f"Update to moorage {version}…"
        items.append(Item(label, UPDATE_APPLY, (version,), enabled=responds and not applying))
    return tuple(items)


def reset_question(machine: str) -> str:
    return (
        f"Reset machine {machine!r} to factory defaults?\n\n"
        "This deletes its data disk: every image, container and volume in it, and its "
        "swarm clusters. The machine stops first. Its settings and your shared folders "
        "stay. This cannot be undone."
    )


def _troubleshoot(view: View) -> Item:
    responds = view.connection != "not-responding"
    st = view.status
    machine = _machine_items(view)
    resetting = RESET in view.pending or (st is not None and st.operation == "reset")
    diagnosing = DIAGNOSTICS in view.pending
    return Item(
        "Troubleshoot",
        children=(
            Item(
                "Writing the diagnostics bundle…" if diagnosing else "Diagnostics bundle",
                DIAGNOSTICS,
                enabled=responds and not diagnosing,
                tip="a zip of the logs, the engine's info, the config and the versions, "
                "with keys and tokens scrubbed",
            ),
            Item("Restart the machine", RESTART, enabled=machine[2].enabled),
            Item(
                "Reset to factory defaults…",
                RESET,
                enabled=responds and not resetting and (st is None or st.state != "stopping"),
                confirm=reset_question(view.machine),
            ),
            Item("Open the host agent's log", AGENT_LOG),
        ),
    )


def menu(view: View) -> Menu:
    """The tray's whole menu for ``view``."""
    line = status_line(view)
    st = view.status
    tooltip = f"moorage: {line}"
    if st is not None and st.ports:
        tooltip += "\nports: " + ", ".join(st.ports[:6]) + ("…" if len(st.ports) > 6 else "")
    if view.problem:
        tooltip += f"\n{view.problem[0]}"
    sections = (
        Section("status", (Item(line, enabled=False), *_problems(view))),
        Section("machine", _machine_items(view)),
        Section("dashboard", (Item("Dashboard", DASHBOARD),)),
        Section("engine", (_container_items(view), _swarm_item(view))),
        Section(
            "settings",
            (
                Item("Preferences…", PREFERENCES, enabled=view.connection != "not-responding"),
                _troubleshoot(view),
            ),
        ),
        Section("app", (*_update_items(view), Item("About moorage", ABOUT))),
        Section("quit", (Item("Quit", QUIT),)),
    )
    return Menu(line, icon_state(view), tooltip, sections)


def quit_question(view: View) -> str | None:
    """What Quit asks, or None when there is nothing to stop."""
    st = view.status
    if view.connection != "ok" or st is None:
        return None
    if st.state in ("running", "degraded", "starting") or st.operation in ("start", "restart"):
        return f"Machine {view.machine!r} is {st.state}. Stop it too?"
    return None
