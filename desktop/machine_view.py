"""The machine page: the VM's CPU and memory over the last minutes (the agent's
``stats``: a sample every ``interval_s``), and the machine's facts from its status."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel

from moorage.api.schema import Status
from moorage.desktop.graphs import Graph
from moorage.desktop.pages import Context, Page, describe

STATS_INTERVAL_MS = 5000
SPAN_S = 600.0
"""The graphs' width in time: the last ten minutes."""


def facts(st: Status | None) -> list[tuple[str, str]]:
    """The machine's facts as (label, value) rows."""
    if st is None:
        return [("State", "asking the host agent…")]
    accel = st.accel or "?"
    if st.accel_reason:
        accel += f" ({st.accel_reason})"
    rows = [
        ("State", st.state + (f" ({st.operation}…)" if st.operation else "")),
        ("Accelerator", accel if st.accel else "not known while stopped"),
        ("CPUs", str(st.cpus) if st.cpus else "?"),
        ("Memory", f"{st.memory_gib:g} GiB" if st.memory_gib else "?"),
        ("Disk", f"{st.disk_gib} GiB" if st.disk_gib else "?"),
        ("Engine", st.engine_version or "not running"),
        ("Socket", st.docker_socket or "none while stopped"),
        ("Docker context", st.docker_context or "?"),
        ("Ports", ", ".join(st.ports) or "none"),
    ]
    if st.file_sharing:
        rows.append(("Shared folders", f"{', '.join(st.shared_folders)} ({st.file_sharing})"))
    if st.agent_version:
        rows.append(("Host agent", st.agent_version))
    if st.error:
        rows.append(("Error", st.error))
    return rows


class MachinePage(Page):
    title = "Machine"
    interval_ms = STATS_INTERVAL_MS
    needs_engine = False

    def __init__(self, ctx: Context, want_status: Callable[[], None]) -> None:
        super().__init__(ctx)
        self._want_status = want_status
        row = QHBoxLayout()
        self.cpu = Graph("CPU", "%", "#2a7ab0")
        self.memory = Graph("Memory used", "MiB", "#7a4ab0")
        row.addWidget(self.cpu)
        row.addWidget(self.memory)
        self.layout_.addLayout(row, 1)
        self.form = QFormLayout()
        self.layout_.addLayout(self.form)
        self.values: dict[str, QLabel] = {}
        self.stats: Any = None
        self.set_status(None)

    def set_status(self, st: Status | None) -> None:
        rows = facts(st)
        if [label for label, _ in rows] != list(self.values):
            while self.form.rowCount():
                self.form.removeRow(0)
            self.values = {}
            for label, _ in rows:
                value = QLabel()
                value.setWordWrap(True)
                self.form.addRow(f"{label}:", value)
                self.values[label] = value
        for label, text in rows:
            self.values[label].setText(text)

    def fetch(self, finished: Callable[[], None]) -> None:
        self._want_status()

        def got(stats: Any) -> None:
            finished()
            self.show_stats(stats)

        def failed(exc: Exception) -> None:
            finished()
            message, fix = describe(exc)
            self.show_placeholder(f"No samples: {message}" + (f" ({fix})" if fix else ""))

        self.ctx.calls.run(self.ctx.client.stats, done=got, failed=failed)

    def show_stats(self, stats: Any, now: float | None = None) -> None:
        """Draw ``stats`` (the agent's ``Stats``: ``cpus``, ``memory_mib`` and
        ``samples`` of ``t``, ``cpu_percent``, ``memory_used_mib``)."""
        self.stats = stats
        samples = list(stats.samples)
        self.show_placeholder("" if samples else "No samples yet: the machine has just started.")
        end = max([s.t for s in samples], default=now if now is not None else time.time())
        gap = 3 * float(stats.interval_s or 5)  # more than two missed samples: nobody looked
        self.cpu.set_samples(
            [(s.t, s.cpu_percent) for s in samples], end=end, span=SPAN_S, top=100, gap=gap
        )
        self.cpu.title = f"CPU of {stats.cpus} CPUs" if stats.cpus else "CPU"
        self.memory.set_samples(
            [(s.t, s.memory_used_mib) for s in samples],
            end=end,
            span=SPAN_S,
            gap=gap,
            top=float(stats.memory_mib or max((s.memory_used_mib for s in samples), default=1)),
        )
