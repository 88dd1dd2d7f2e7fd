"""The engine's pages: containers (with their CPU and memory), images and volumes.

Each lists what the machine's engine has through docker-py's low-level ``APIClient``
and carries out its actions there; a removal asks first, and what the engine refuses
(a volume in use, an image a container uses) is shown with the engine's own words.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtWidgets import QPushButton, QTableWidget, QTableWidgetItem

from moorage.desktop.model import Container
from moorage.desktop.pages import Context, Page, ago, button_row, human_size, table

log = logging.getLogger("moorage.desktop")

R = TypeVar("R")

CONTAINERS_INTERVAL_MS = 3000
"""How often the containers page asks again (list, then each running one's stats)."""


# ----- pure: what a row shows -------------------------------------------------------------------


def cpu_percent(sample: dict[str, Any], previous: dict[str, Any] | None = None) -> float | None:
    """A container's CPU use as ``docker stats`` computes it: its CPU time over the
    host's between two samples, times the CPUs. The engine's ``precpu_stats`` is the
    earlier sample; a ``one_shot`` answer has none, so the last answer is used."""
    cpu = sample.get("cpu_stats") or {}
    pre = sample.get("precpu_stats") or {}
    if not pre.get("system_cpu_usage") and previous is not None:
        pre = previous.get("cpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    pre_total = (pre.get("cpu_usage") or {}).get("total_usage")
    system, pre_system = cpu.get("system_cpu_usage"), pre.get("system_cpu_usage")
    if total is None or pre_total is None or system is None or pre_system is None:
        return None
    d_cpu, d_system = float(total) - float(pre_total), float(system) - float(pre_system)
    if d_system <= 0 or d_cpu < 0:
        return None
    cpus = (
        cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    )
    return float(d_cpu / d_system * cpus * 100.0)


def memory_used(sample: dict[str, Any]) -> tuple[int, int] | None:
    """(bytes used, limit) as ``docker stats`` counts them: without the page cache
    (``inactive_file`` on cgroup v2, ``total_inactive_file`` on v1)."""
    mem = sample.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    stats = mem.get("stats") or {}
    cache = stats.get("inactive_file", stats.get("total_inactive_file", 0))
    return int(usage - cache), int(mem.get("limit") or 0)


def memory_text(used: tuple[int, int] | None) -> str:
    if used is None:
        return ""
    n, limit = used
    return f"{n / 2**20:.1f} MiB" + (f" / {limit / 2**30:.1f} GiB" if limit else "")


def ports_text(c: Container) -> str:
    parts = []
    for p in c.ports:
        if p.host_port:
            parts.append(f"{p.host_port}→{p.container_port}/{p.proto}")
        else:
            parts.append(f"{p.container_port}/{p.proto}")
    return ", ".join(parts)


def first_url(c: Container) -> str | None:
    """Where "Open in browser" goes: the first TCP port published on the host."""
    for p in c.ports:
        url = p.url()
        if url is not None:
            return url
    return None


@dataclass(frozen=True)
class ImageRow:
    ref: str
    """``repository:tag``, or the id of an untagged image (what removing it names)."""
    id: str
    size: int
    created: float

    @classmethod
    def rows(cls, listed: list[dict[str, Any]]) -> list[ImageRow]:
        """One row per tag, as ``docker images`` lists them; one for an untagged image."""
        rows = []
        for i in listed:
            ident = str(i.get("Id", ""))
            tags = [t for t in (i.get("RepoTags") or []) if t != "<none>:<none>"]
            for ref in tags or [ident]:
                rows.append(cls(ref, ident, int(i.get("Size") or 0), float(i.get("Created") or 0)))
        return sorted(rows, key=lambda r: (r.ref.startswith("sha256:"), r.ref))

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def label(self) -> str:
        return "<none>" if self.ref == self.id else self.ref


# ----- the pages --------------------------------------------------------------------------------


def _item(text: str, data: Any = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if data is not None:
        item.setData(Qt.ItemDataRole.UserRole, data)
    return item


def _selected(t: QTableWidget) -> Any:
    rows = t.selectionModel().selectedRows()
    if not rows:
        return None
    item = t.item(rows[0].row(), 0)
    return item.data(Qt.ItemDataRole.UserRole) if item is not None else None


def _select(t: QTableWidget, data: Any) -> None:
    for row in range(t.rowCount()):
        item = t.item(row, 0)
        if item is not None and item.data(Qt.ItemDataRole.UserRole) == data:
            t.selectRow(row)
            return


class ContainersPage(Page):
    title = "Containers"
    interval_ms = CONTAINERS_INTERVAL_MS
    COLUMNS = ("Name", "State", "Image", "Ports", "CPU %", "Memory")
    logs_wanted = Signal(str)
    """A container's id: the dashboard shows its logs."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.table = table(list(self.COLUMNS))
        self.containers: list[Container] = []
        self._samples: dict[str, dict[str, Any]] = {}
        self.usage: dict[str, tuple[float | None, tuple[int, int] | None]] = {}
        self.open_button = QPushButton("Open in browser")
        self.logs_button = QPushButton("Logs")
        self.restart_button = QPushButton("Restart")
        self.stop_button = QPushButton("Stop")
        self.remove_button = QPushButton("Remove…")
        self.open_button.clicked.connect(self.open_selected)
        self.logs_button.clicked.connect(self.logs_of_selected)
        self.restart_button.clicked.connect(lambda: self.act("restart"))
        self.stop_button.clicked.connect(lambda: self.act("stop"))
        self.remove_button.clicked.connect(self.remove_selected)
        self.layout_.addWidget(self.table, 1)
        self.layout_.addLayout(
            button_row(
                self.open_button,
                self.logs_button,
                self.restart_button,
                self.stop_button,
                self.remove_button,
            )
        )
        self.table.itemSelectionChanged.connect(self._enable)
        self._enable()

    def clear(self) -> None:
        self._show([])

    def selected(self) -> Container | None:
        cid = _selected(self.table)
        return next((c for c in self.containers if c.id == cid), None)

    def _enable(self) -> None:
        c = self.selected()
        self.open_button.setEnabled(c is not None and first_url(c) is not None)
        for b in (self.logs_button, self.restart_button, self.remove_button):
            b.setEnabled(c is not None)
        self.stop_button.setEnabled(c is not None and c.state == "running")

    def fetch(self, finished: Callable[[], None]) -> None:
        def listed(containers: list[Container]) -> None:
            self.show_placeholder("" if containers else "No containers.")
            self._show(containers)
            self._stats([c.id for c in containers if c.state == "running"], finished)

        self.ctx.on_engine(
            lambda api: [Container.from_engine(c) for c in api.containers(all=True)],
            listed,
            what="Could not list the containers",
            failed=lambda _exc: finished(),
        )

    def _stats(self, ids: list[str], finished: Callable[[], None]) -> None:
        """Each running container's stats, one call after the other (each is slow
        under emulation; together they would hold every worker)."""
        if not ids or not self.active:
            finished()
            return
        cid, rest = ids[0], ids[1:]

        def got(sample: dict[str, Any]) -> None:
            self.usage[cid] = (cpu_percent(sample, self._samples.get(cid)), memory_used(sample))
            self._samples[cid] = sample
            self._show_usage(cid)
            self._stats(rest, finished)

        def failed(exc: Exception) -> None:  # it stopped meanwhile: the next list says so
            log.info("stats of %s: %s", cid[:12], exc)
            self._stats(rest, finished)

        self.ctx.engine_calls.run(
            lambda: self.ctx.engine().stats(cid, stream=False, one_shot=True),
            done=got,
            failed=failed,
        )

    def _show(self, containers: list[Container]) -> None:
        keep = _selected(self.table)
        self.containers = sorted(containers, key=lambda c: (c.state != "running", c.name))
        ids = {c.id for c in self.containers}
        for gone in set(self.usage) - ids:
            self.usage.pop(gone, None)
            self._samples.pop(gone, None)
        self.table.setRowCount(len(self.containers))
        for row, c in enumerate(self.containers):
            cells = [c.name, c.state, c.image, ports_text(c), "", ""]
            for col, text in enumerate(cells):
                self.table.setItem(row, col, _item(text, c.id if col == 0 else None))
            self._show_usage(c.id)
        if keep is not None:
            _select(self.table, keep)
        self._enable()

    def _show_usage(self, cid: str) -> None:
        for row, c in enumerate(self.containers):
            if c.id != cid:
                continue
            cpu, mem = self.usage.get(cid, (None, None))
            running = c.state == "running"
            cpu_text = f"{cpu:.1f} %" if cpu is not None else ("…" if running else "")
            self.table.setItem(row, 4, _item(cpu_text))
            self.table.setItem(row, 5, _item(memory_text(mem) if running else ""))

    # ----- actions ----------------------------------------------------------------------------

    def open_selected(self) -> None:
        c = self.selected()
        url = first_url(c) if c is not None else None
        if url is not None:
            self.ctx.open_url(QUrl(url))

    def logs_of_selected(self) -> None:
        c = self.selected()
        if c is not None:
            self.logs_wanted.emit(c.id)

    def act(self, op: str) -> None:
        c = self.selected()
        if c is None:
            return
        cid, name = c.id, c.name

        self.ctx.info.emit(f"{name}: {op}…")
        self.ctx.on_engine(
            lambda api: getattr(api, op)(cid),
            self.after(f"{name}: {op} done"),
            what=f"Could not {op} container {name}",
        )

    def remove_selected(self) -> None:
        c = self.selected()
        if c is None:
            return
        cid, name, running = c.id, c.name, c.state == "running"

        def remove() -> None:
            self.ctx.on_engine(
                lambda api: api.remove_container(cid, force=running),
                self.after(f"{name} removed"),
                what=f"Could not remove container {name}",
            )

        self.ctx.confirm(
            "Remove container",
            f"Remove container {name}?"
            + (" It is running: it is killed first." if running else "")
            + " Its named volumes stay.",
            "Remove",
            remove,
        )


class TablePage(Page, Generic[R]):
    """A page of one table, ``COLUMNS`` wide, with Refresh and Remove… under it: a
    selected row enables Remove; a round lists the rows (``list_rows``, on a worker),
    keeps the selection and fills the table (``cells``). ``noun`` names the rows in
    the placeholder and the error."""

    COLUMNS: tuple[str, ...] = ()
    noun = ""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.table = table(list(self.COLUMNS))
        self.rows: list[R] = []
        self.refresh_button = QPushButton("Refresh")
        self.remove_button = QPushButton("Remove…")
        self.refresh_button.clicked.connect(self.refresh)
        self.remove_button.clicked.connect(self.remove_selected)
        self.layout_.addWidget(self.table, 1)
        self.layout_.addLayout(button_row(self.refresh_button, self.remove_button))
        self.table.itemSelectionChanged.connect(self._enable)
        self.remove_button.setEnabled(False)

    def _enable(self) -> None:
        self.remove_button.setEnabled(self.selected() is not None)

    def clear(self) -> None:
        self.rows = []
        self.table.setRowCount(0)
        self.remove_button.setEnabled(False)

    def fetch(self, finished: Callable[[], None]) -> None:
        def listed(rows: list[R]) -> None:
            keep = _selected(self.table)
            self.rows = rows
            self.show_placeholder("" if rows else f"No {self.noun}.")
            self.table.setRowCount(len(rows))
            for row, (data, cells) in enumerate(self.cells(rows)):
                for col, text in enumerate(cells):
                    self.table.setItem(row, col, _item(text, data if col == 0 else None))
            if keep is not None:
                _select(self.table, keep)
            self._enable()
            finished()

        self.ctx.on_engine(
            self.list_rows,
            listed,
            what=f"Could not list the {self.noun}",
            failed=lambda _exc: finished(),
        )

    # for subclasses
    def list_rows(self, api: Any) -> list[R]:
        """The rows, in the table's order (on a worker: no widget here)."""
        raise NotImplementedError

    def cells(self, rows: list[R]) -> list[tuple[Any, list[str]]]:
        """Each row's data (what selecting it keeps, in its first cell) and cells."""
        raise NotImplementedError

    def confirm_remove(
        self, kind: str, name: str, warning: str, remove: Callable[[Any], Any]
    ) -> None:
        """Ask "Remove ``kind`` ``name``? ``warning``", then ``remove(api)`` on the
        engine; its refusal (an image in use, a volume mounted) is shown in its words."""
        what = f"{kind} {name}"
        self.ctx.confirm(
            f"Remove {kind}",
            f"Remove {what}? {warning}",
            "Remove",
            lambda: self.ctx.on_engine(
                remove, self.after(f"{what} removed"), what=f"Could not remove {what}"
            ),
        )

    def selected(self) -> Any:
        return _selected(self.table)

    def remove_selected(self) -> None:
        raise NotImplementedError


class ImagesPage(TablePage[ImageRow]):
    title = "Images"
    COLUMNS = ("Repository:tag", "Id", "Size", "Created")
    noun = "images"

    def list_rows(self, api: Any) -> list[ImageRow]:
        return ImageRow.rows(api.images())

    def cells(self, rows: list[ImageRow]) -> list[tuple[Any, list[str]]]:
        now = time.time()
        return [
            (i.ref, [i.label, i.short_id, human_size(i.size), ago(i.created, now)]) for i in rows
        ]

    def selected(self) -> ImageRow | None:
        ref = _selected(self.table)
        return next((i for i in self.rows if i.ref == ref), None)

    def remove_selected(self) -> None:
        i = self.selected()
        if i is None:
            return
        ref, label = i.ref, i.label if i.ref != i.id else i.short_id

        self.confirm_remove(
            "image",
            label,
            "A tag is removed; the image goes with its last tag.",
            lambda api: api.remove_image(ref),
        )


class VolumesPage(TablePage[dict[str, Any]]):
    title = "Volumes"
    COLUMNS = ("Name", "Driver", "Mountpoint")
    noun = "volumes"

    def list_rows(self, api: Any) -> list[dict[str, Any]]:
        volumes = list((api.volumes() or {}).get("Volumes") or [])
        return sorted(volumes, key=lambda v: str(v.get("Name", "")))

    def cells(self, rows: list[dict[str, Any]]) -> list[tuple[Any, list[str]]]:
        lines: list[tuple[Any, list[str]]] = []
        for v in rows:
            name = str(v.get("Name", ""))
            lines.append((name, [name, str(v.get("Driver", "")), str(v.get("Mountpoint", ""))]))
        return lines

    def selected(self) -> str | None:
        name = _selected(self.table)
        return str(name) if name is not None else None

    def remove_selected(self) -> None:
        name = self.selected()
        if name is None:
            return

        self.confirm_remove(
            "volume",
            name,
            "Its data is deleted. This cannot be undone.",
            lambda api: api.remove_volume(name),
        )
