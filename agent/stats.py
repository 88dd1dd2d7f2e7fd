"""The VM's CPU and memory, sampled from inside the guest while someone looks.

One guest command per sample (``READ_COMMAND``) reads the first line of
``/proc/stat`` and ``/proc/meminfo``, through the agent's SSH master (no new
handshake); ``parse`` turns its output into counters and ``sample`` two readings into
a ``StatSample``, both pure. ``Sampler`` keeps the samples in a ring buffer of
``STATS_WINDOW`` seconds and runs only on demand: its thread starts at the first
``GET /v1/stats`` and ends once no client asked for ``STATS_INTEREST`` seconds, so an
agent nobody watches runs no guest command for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from moorage.api.schema import STATS_INTEREST, STATS_INTERVAL, STATS_WINDOW, StatSample

log = logging.getLogger("moorage.agent")

READ_COMMAND = "head -n 1 /proc/stat; cat /proc/meminfo"
FIRST_GAP = 1.0
"""The first sample's CPU share is measured over this long rather than a whole
interval, so a dashboard just opened shows something within a second or two."""


@dataclass(frozen=True)
class Reading:
    """The guest's counters at one moment: CPU time in jiffies (all CPUs together)
    and memory in KiB."""

    busy: int
    total: int
    mem_total_kib: int
    mem_available_kib: int


def parse(text: str) -> Reading:
    """The counters in ``READ_COMMAND``'s output: the ``cpu`` line of ``/proc/stat``
    and the ``MemTotal`` and ``MemAvailable`` lines of ``/proc/meminfo``.

    Busy time is everything but ``idle`` and ``iowait``; ``guest`` and ``guest_nice``
    are left out of the total, since the kernel counts them in ``user`` and ``nice``
    already.

    Raises:
        ValueError: a line is missing or not a number.
    """
    cpu: list[int] | None = None
    mem: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "cpu":
            cpu = [int(v) for v in fields[1:9]]
        elif fields[0] in ("MemTotal:", "MemAvailable:"):
            mem[fields[0].rstrip(":")] = int(fields[1])
    if cpu is None or len(cpu) < 4:
        raise ValueError("no cpu line of /proc/stat")
    if "MemTotal" not in mem or "MemAvailable" not in mem:
        raise ValueError("no MemTotal or MemAvailable in /proc/meminfo")
    total = sum(cpu)
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)
    return Reading(total - idle, total, mem["MemTotal"], mem["MemAvailable"])


def sample(before: Reading, now: Reading, t: float) -> StatSample:
    """The sample at ``t`` (wall clock): the CPU share busy between two readings,
    the memory in use at the second."""
    total = now.total - before.total
    busy = now.busy - before.busy
    percent = 100.0 * busy / total if total > 0 else 0.0
    used_kib = now.mem_total_kib - now.mem_available_kib
    return StatSample(t, round(min(100.0, max(0.0, percent)), 1), round(used_kib / 1024, 1))


class Sampler:
    """Samples while asked: ``asked()`` answers the samples of the last
    ``STATS_WINDOW`` seconds and keeps the sampling thread going for another
    ``STATS_INTEREST`` seconds.

    ``read`` runs ``READ_COMMAND`` in the guest and returns its output, or None when
    the machine does not run: its samples are dropped then, since the next boot's
    counters start again. A read that raises (the link is being repaired) only leaves
    a gap.
    """

    def __init__(
        self,
        read: Callable[[], str | None],
        stop: threading.Event,
        *,
        interval: float = STATS_INTERVAL,
        window: float = STATS_WINDOW,
        interest: float = STATS_INTEREST,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self._stop = stop
        self.interval = interval
        self._window = window
        self._interest = interest
        self._clock = clock
        self._wall = wall
        self._samples: deque[StatSample] = deque(maxlen=max(1, round(window / interval)))
        self._lock = threading.Lock()
        self._asked: float | None = None
        self._thread: threading.Thread | None = None

    def asked(self) -> list[StatSample]:
        with self._lock:
            self._asked = self._clock()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stats", daemon=True)
                self._thread.start()
            oldest = self._wall() - self._window
            return [s for s in self._samples if s.t >= oldest]

    @property
    def sampling(self) -> bool:
        """Whether the sampling thread runs (for tests and the agent's log)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _wanted(self) -> bool:
        with self._lock:
            if self._asked is not None and self._clock() - self._asked < self._interest:
                return True
            # Decided under the lock: an ``asked()`` after this starts a new thread.
            self._thread = None
            return False

    def _run(self) -> None:
        before: Reading | None = None
        while not self._stop.is_set() and self._wanted():
            before = self._take(before)
            self._stop.wait(FIRST_GAP if before is not None and not self._samples else
                            self.interval)  # fmt: skip
        log.debug("stats: nobody asked for %.0fs; sampling stops", self._interest)

    def _take(self, before: Reading | None) -> Reading | None:
        """One reading, and the sample it makes with ``before``; the reading, or None
        when there is none to measure the next one from."""
        try:
            out = self._read()
            if out is None:  # the machine does not run: its series ends
                with self._lock:
                    self._samples.clear()
                return None
            now = parse(out)
        except ValueError as exc:
            log.warning("stats: cannot read the guest's counters: %s", exc)
            return None
        except Exception as exc:  # the link's trouble, which the repairs look after
            log.debug("stats: no reading: %s", exc)
            return None
        if before is not None and now.total >= before.total:  # less: the guest rebooted
            with self._lock:
                self._samples.append(sample(before, now, self._wall()))
        return now
