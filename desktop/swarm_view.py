"""The swarm page: the one-node swarm, and each cluster drawn as its nodes, each node a
box with the tasks it runs, looked at again every ``SWARM_INTERVAL_MS`` while shown,
so a developer watches tasks move when a node is drained or killed.

A round asks the agent for the clusters (``clusters``, then ``cluster(name)``: a fresh
look at each) and then each cluster's engine, through the socket the agent keeps to a
live manager, for its nodes, services and tasks (desired state running). The nodes'
actions and the drills are the tray menu's own items (``model``), carried out through
the agent as the tray does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from moorage.api.schema import ClusterStatus, NodeInfo, SwarmInfo
from moorage.desktop import model
from moorage.desktop.model import Item
from moorage.desktop.pages import CLUSTER_TIMEOUT_S, Context, Page, describe

SWARM_INTERVAL_MS = 2000
ONE_NODE = ""
"""The key of the machine's own engine among the engines a round asks (no cluster is
named "")."""
COLUMNS = 3
"""Node boxes per row."""


# ----- pure: what each box shows ----------------------------------------------------------------


def tasks_by_node(
    nodes: list[dict[str, Any]], services: list[dict[str, Any]], tasks: list[dict[str, Any]]
) -> dict[str, tuple[str, ...]]:
    """Each node's tasks (by hostname, the node's moorage name) as ``service.slot``
    labels, with the task's state when it is not running yet; a task the scheduler
    has not placed is under "". Only tasks whose desired state is running."""
    hosts = {n.get("ID"): (n.get("Description") or {}).get("Hostname", "?") for n in nodes}
    names = {s.get("ID"): (s.get("Spec") or {}).get("Name", "?") for s in services}
    placed: dict[str, list[tuple[str, int, str]]] = {}
    for t in tasks:
        if t.get("DesiredState", "running") != "running":
            continue
        host = hosts.get(t.get("NodeID"), "") if t.get("NodeID") else ""
        service = names.get(t.get("ServiceID"), str(t.get("ServiceID", "?"))[:10])
        slot = t.get("Slot")
        label = f"{service}.{slot}" if slot else service  # a global service's task: no slot
        state = (t.get("Status") or {}).get("State", "")
        if state and state != "running":
            label += f" ({state})"
        placed.setdefault(host, []).append((service, int(slot or 0), label))
    return {host: tuple(label for *_, label in sorted(ts)) for host, ts in placed.items()}


def node_lines(n: NodeInfo) -> list[str]:
    """A node box's lines under its name, in the engine's own words."""
    role = n.role
    if n.role == "manager":
        role += " · " + ("Leader" if n.leader else (n.manager or "unknown").capitalize())
    state = (n.state or "unknown").capitalize()
    lines = [role, f"{state} · {(n.availability or '?').capitalize()}"]
    trouble = [n.drill] if n.drill else []
    if n.stopped:
        trouble.append("stopped")
    if n.container != "running" and not n.drill:  # a drill says it better
        trouble.append(f"container {n.container}")
    if trouble:
        lines.append(", ".join(t for t in trouble if t))
    return lines


def swarm_line(sw: SwarmInfo | None) -> str:
    if sw is None:
        return "This engine: asking…"
    if sw.state == "inactive":
        return "This engine is not a swarm (`moorage swarm init` makes it a one-node swarm)."
    text = f"This engine: one-node swarm, {sw.state}"
    if sw.state == "active":
        text += f", {sw.services} service{'s' if sw.services != 1 else ''}"
    return text + (f": {sw.error}" if sw.error else "")


@dataclass(frozen=True)
class Seen:
    """What a round found of one cluster's engine: its tasks by node, or why not."""

    tasks: dict[str, tuple[str, ...]]
    error: str | None = None


# ----- the boxes --------------------------------------------------------------------------------


def _fill_menu(menu: QMenu, items: tuple[Item, ...], act: Callable[[Item], None]) -> None:
    menu.clear()
    for item in items:
        if item.separator:
            menu.addSeparator()
        elif not item.action:
            menu.addSection(item.label)
        else:
            action = menu.addAction(item.label)
            action.setEnabled(item.enabled)
            action.triggered.connect(lambda _=False, i=item: act(i))


class NodeBox(QFrame):
    """One node: name, role and manager status, Ready/Down and availability, a drill,
    the tasks on it, and its actions."""

    COLORS = {"ready": "#3a9a4a", "down": "#c0392b"}

    def __init__(self, act: Callable[[Item], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._act = act
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("node")
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.name = QLabel()
        font = self.name.font()
        font.setBold(True)
        self.name.setFont(font)
        self.actions_button = QToolButton()
        self.actions_button.setText("Actions")
        self.actions_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu = QMenu(self)
        self.actions_button.setMenu(self.menu)
        top.addWidget(self.name, 1)
        top.addWidget(self.actions_button)
        layout.addLayout(top)
        self.info = QLabel()
        layout.addWidget(self.info)
        self.task_label = QLabel()
        self.task_label.setWordWrap(True)
        layout.addWidget(self.task_label)
        layout.addStretch(1)
        self.tasks: tuple[str, ...] = ()
        self._items: tuple[Item, ...] = ()
        self.setMinimumWidth(180)

    def show_node(self, c: ClusterStatus, n: NodeInfo, tasks: tuple[str, ...] | None) -> None:
        self.name.setText(n.name)
        self.info.setText("\n".join(node_lines(n)))
        self.tasks = tasks or ()
        if tasks is None:
            self.task_label.setText("tasks: not known")
        else:
            self.task_label.setText("\n".join(f"▪ {t}" for t in tasks) if tasks else "no tasks")
        color = self.COLORS.get(n.state or "", "#888888")
        if n.drill:
            color = "#c0392b"
        self.setStyleSheet(f"QFrame#node {{ border: 2px solid {color}; border-radius: 6px; }}")
        items = model.node_item(c, n).children  # the tray's own node menu
        if items != self._items:
            self._items = items
            _fill_menu(self.menu, items, self._act)

    def action(self, label: str) -> Any:
        """The menu's action whose label starts with ``label`` (tests)."""
        for a in self.menu.actions():
            if a.text().startswith(label):
                return a
        raise KeyError(label)


class ClusterBox(QGroupBox):
    """One cluster: its state and problem, its operations (heal, start, stop, recover:
    the tray's items), and a box per node."""

    def __init__(self, act: Callable[[Item], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._act = act
        layout = QVBoxLayout(self)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.hide()
        layout.addWidget(self.problem)
        self.ops = QHBoxLayout()
        layout.addLayout(self.ops)
        self.grid = QGridLayout()
        layout.addLayout(self.grid)
        self.unplaced = QLabel()
        self.unplaced.hide()
        layout.addWidget(self.unplaced)
        self.nodes: dict[str, NodeBox] = {}
        self.op_buttons: dict[str, QPushButton] = {}
        self._ops: dict[str, Item] = {}

    def show_cluster(self, c: ClusterStatus, seen: Seen | None) -> None:
        self.setTitle(
            f"Cluster {c.name} ({c.state}" + (f", {c.operation}…)" if c.operation else ")")
        )
        problems = [p for p in (c.problem, c.fix and f"Fix: {c.fix}") if p]
        if seen is not None and seen.error:
            problems.append(f"Its engine did not answer: {seen.error}")
        self.problem.setText("\n".join(problems))
        self.problem.setVisible(bool(problems))
        ops = {i.args[1]: i for i in model.cluster_item(c).children if i.action == model.CLUSTER_OP}
        self._ops = ops
        if list(ops) != list(self.op_buttons):  # other operations: other buttons
            for b in self.op_buttons.values():
                b.deleteLater()
            self.op_buttons = {}
            while self.ops.count():
                self.ops.takeAt(0)
            for op in ops:
                b = QPushButton()
                b.clicked.connect(lambda _=False, op=op: self._act(self._ops[op]))
                self.ops.addWidget(b)
                self.op_buttons[op] = b
            self.ops.addStretch(1)
        for op, item in ops.items():
            self.op_buttons[op].setText(item.label)
            self.op_buttons[op].setEnabled(item.enabled)
        names = [n.name for n in c.nodes]
        for gone in set(self.nodes) - set(names):
            box = self.nodes.pop(gone)
            self.grid.removeWidget(box)
            box.deleteLater()
        tasks = seen.tasks if seen is not None and seen.error is None else None
        for i, n in enumerate(c.nodes):
            node_box = self.nodes.get(n.name)
            if node_box is None:
                node_box = NodeBox(self._act, self)
                self.nodes[n.name] = node_box
            self.grid.addWidget(node_box, i // COLUMNS, i % COLUMNS)
            node_box.show_node(c, n, tasks.get(n.name, ()) if tasks is not None else None)
        waiting = tasks.get("", ()) if tasks is not None else ()
        self.unplaced.setText("Not placed yet: " + ", ".join(waiting))
        self.unplaced.setVisible(bool(waiting))


class SwarmPage(Page):
    title = "Swarm"
    interval_ms = SWARM_INTERVAL_MS

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.swarm_label = QLabel(swarm_line(None))
        self.swarm_label.setWordWrap(True)
        self.swarm_button = QPushButton()
        self.swarm_button.hide()
        self.swarm_button.clicked.connect(self._swarm_clicked)
        self.swarm_item: Item | None = None
        top = QHBoxLayout()
        top.addWidget(self.swarm_label, 1)
        top.addWidget(self.swarm_button)
        self.layout_.addLayout(top)
        self.swarm_tasks = QLabel()
        self.swarm_tasks.setWordWrap(True)
        self.swarm_tasks.hide()
        self.layout_.addWidget(self.swarm_tasks)
        self.empty = QLabel("No clusters: `moorage cluster create NAME` makes one.")
        self.empty.hide()
        self.layout_.addWidget(self.empty)
        inner = QWidget()
        self.boxes_layout = QVBoxLayout(inner)
        self.boxes_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        self.layout_.addWidget(scroll, 1)
        self.clusters: list[ClusterStatus] = []
        self.boxes: dict[str, ClusterBox] = {}

    def fetch(self, finished: Callable[[], None]) -> None:
        client = self.ctx.client

        def ask_agent() -> tuple[SwarmInfo, list[ClusterStatus]]:
            swarm = client.swarm()
            names = [c.name for c in client.clusters().clusters]
            return swarm, [client.cluster(name) for name in names]

        def got(answer: tuple[SwarmInfo, list[ClusterStatus]]) -> None:
            swarm, clusters = answer
            self.show_swarm(swarm)
            self.clusters = clusters
            if self.active:
                self.ask_engines(clusters, finished, one_node=swarm.state == "active")
            else:
                finished()

        self.ctx.on_agent(
            ask_agent, got, what="Could not ask for the swarm", failed=lambda _exc: finished()
        )

    def show_swarm(self, swarm: SwarmInfo) -> None:
        """The machine's own engine: what it is as a swarm, and Init or Leave."""
        self.swarm_label.setText(swarm_line(swarm))
        self.swarm_item = next((i for i in model.one_node_items(swarm) if i.action), None)
        if self.swarm_item is None:
            self.swarm_button.hide()
        else:
            self.swarm_button.setText(
                self.swarm_item.label + ("…" if self.swarm_item.confirm else "")
            )
            self.swarm_button.show()
        if swarm.state != "active":
            self.swarm_tasks.hide()

    def _swarm_clicked(self) -> None:
        item = self.swarm_item
        if item is None:
            return
        action = "init" if item.action == model.SWARM_INIT else "leave"
        client, ctx = self.ctx.client, self.ctx

        def go() -> None:
            ctx.info.emit(f"swarm {action}…")
            ctx.on_agent(
                lambda: client.swarm(action, force=action == "leave"),
                lambda _: self.refresh(),
                what=f"Could not {action} the one-node swarm",
            )

        if item.confirm:
            ctx.confirm(item.label, item.confirm, "Leave", go)
        else:
            go()

    def ask_engines(
        self, clusters: list[ClusterStatus], finished: Callable[[], None], *, one_node: bool = False
    ) -> None:
        ctx = self.ctx
        live = [(c.name, c.socket) for c in clusters
                if c.socket and c.state not in ("stopped", "creating")]  # fmt: skip
        if one_node and ctx.socket:
            live.insert(0, (ONE_NODE, ctx.socket))

        def ask() -> dict[str, Seen]:
            seen = {}
            for name, socket in live:
                assert socket is not None
                try:
                    api = ctx.engine(socket, timeout=CLUSTER_TIMEOUT_S)
                    seen[name] = Seen(
                        tasks_by_node(
                            api.nodes(),
                            api.services(),
                            api.tasks(filters={"desired-state": "running"}),
                        )
                    )
                except Exception as exc:  # shown in the cluster's box, next round tries again
                    ctx.forget(socket)
                    seen[name] = Seen({}, describe(exc)[0])
            return seen

        def got(seen: dict[str, Seen]) -> None:
            finished()
            self.show_one_node(seen.pop(ONE_NODE, None))
            self.show_clusters(clusters, seen)

        def failed(exc: Exception) -> None:
            finished()
            self.show_clusters(clusters, {})

        ctx.engine_calls.run(ask, done=got, failed=failed)

    def show_clusters(self, clusters: list[ClusterStatus], seen: dict[str, Seen]) -> None:
        self.show_placeholder("")
        self.empty.setVisible(not clusters)
        names = [c.name for c in clusters]
        for gone in set(self.boxes) - set(names):
            box = self.boxes.pop(gone)
            self.boxes_layout.removeWidget(box)
            box.deleteLater()
        for i, c in enumerate(clusters):
            shown = self.boxes.get(c.name)
            if shown is None:
                shown = ClusterBox(self.act)
                self.boxes[c.name] = shown
                self.boxes_layout.insertWidget(i, shown)
            shown.show_cluster(c, seen.get(c.name))

    def show_one_node(self, seen: Seen | None) -> None:
        """The one-node swarm's tasks (all on the machine's engine), when it is one."""
        if seen is None:
            self.swarm_tasks.hide()
            return
        tasks = [t for ts in seen.tasks.values() for t in ts]
        self.swarm_tasks.setText(
            f"Its tasks: {seen.error}" if seen.error
            else "Its tasks: " + (", ".join(tasks) if tasks else "none")
        )  # fmt: skip
        self.swarm_tasks.show()

    def clear(self) -> None:
        self.clusters = []
        self.show_clusters([], {})
        self.empty.hide()
        self.swarm_label.setText("")
        self.swarm_button.hide()
        self.swarm_tasks.hide()

    def node_tasks(self, cluster: str, node: str) -> tuple[str, ...]:
        return self.boxes[cluster].nodes[node].tasks

    def act(self, item: Item) -> None:
        """A node's action or a cluster's operation, through the agent."""
        client, ctx = self.ctx.client, self.ctx
        if item.action == model.NODE_ACTION:
            cluster, node, action = item.args
            ctx.info.emit(f"{node}: {action}…")
            ctx.on_agent(
                lambda: client.node_action(cluster, node, action),
                self.after(f"{node}: {action} done"),
                what=f"Could not {action} {node}",
            )
        elif item.action == model.CLUSTER_OP:
            cluster, op = item.args
            ctx.info.emit(f"cluster {cluster}: {op}…")
            ctx.on_agent(
                lambda: client.cluster_request(cluster, op),
                lambda _: self.refresh(),
                what=f"Could not {op} cluster {cluster}",
            )
