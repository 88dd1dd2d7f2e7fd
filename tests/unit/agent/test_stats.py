"""The VM's CPU and memory: the parsing of the guest's counters (pure), the sampler's
on-demand thread (no guest command unless someone asked in the last minute), and the
agent's answer over the fake machine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from moorage.agent import stats
from moorage.agent.stats import READ_COMMAND, Reading, Sampler, parse, sample
from tests.unit.agent.conftest import Machine, wait_until

PROC = """cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0
MemTotal:        2030464 kB
MemFree:          160000 kB
MemAvailable:    1506176 kB
Buffers:           20480 kB
"""


def proc(busy: int, idle: int, iowait: int = 0, total_kib: int = 2097152,
         available_kib: int = 1572864) -> str:  # fmt: skip
    return (
        f"cpu  {busy} 0 0 {idle} {iowait} 0 0 0 0 0\n"
        f"MemTotal: {total_kib} kB\nMemAvailable: {available_kib} kB\n"
    )


# ----- parsing -------------------------------------------------------------------------


def test_parse_reads_the_cpu_line_and_the_memory_lines() -> None:
    r = parse(PROC)
    # user nice system idle iowait irq softirq steal; guest and guest_nice left out
    total = 10132153 + 290696 + 3084719 + 46828483 + 16683 + 0 + 25195 + 0
    assert r == Reading(total - 46828483 - 16683, total, 2030464, 1506176)


def test_parse_takes_an_old_kernels_short_cpu_line() -> None:
    r = parse("cpu 10 0 5 85\nMemTotal: 100 kB\nMemAvailable: 40 kB\n")
    assert (r.busy, r.total) == (15, 100)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "MemTotal: 1 kB\nMemAvailable: 1 kB\n",  # no cpu line
        "cpu  1 2 3 4 5 6 7 8 9 10\nMemTotal: 1 kB\n",  # no MemAvailable
        "cpu  1 2 x 4\nMemTotal: 1 kB\nMemAvailable: 1 kB\n",
        "sh: head: not found\n",
    ],
)
def test_parse_refuses_what_is_not_the_counters(text: str) -> None:
    with pytest.raises(ValueError):
        parse(text)


def test_a_sample_is_the_busy_share_between_two_readings_and_the_memory_used() -> None:
    before = parse(proc(busy=1000, idle=3000))
    now = parse(proc(busy=1300, idle=3600, iowait=100, available_kib=1048576))
    s = sample(before, now, 123.0)
    assert s.t == 123.0
    assert s.cpu_percent == 30.0  # 300 busy of 1000; iowait counts as idle
    assert s.memory_used_mib == 1024.0  # 2 GiB total - 1 GiB available


def test_a_sample_stays_within_0_and_100_percent() -> None:
    same = parse(proc(busy=10, idle=10))
    assert sample(same, same, 0).cpu_percent == 0.0  # no time passed: no division by 0
    assert sample(parse(proc(0, 100)), parse(proc(500, 100)), 0).cpu_percent == 100.0


# ----- the sampler ----------------------------------------------------------------------


class Guest:
    """What the sampler reads: counters that grow by 400 jiffies a read, 100 busy."""

    def __init__(self) -> None:
        self.reads = 0
        self.running = True
        self.lock = threading.Lock()

    def read(self) -> str | None:
        with self.lock:
            self.reads += 1
            n = self.reads
        return proc(busy=100 * n, idle=300 * n) if self.running else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def sampler(guest: Guest, stop: threading.Event, clock: Clock, **kw: float) -> Sampler:
    return Sampler(guest.read, stop, interval=0.01, window=600, interest=60, clock=clock, **kw)


@pytest.fixture(autouse=True)
def quick_first_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "FIRST_GAP", 0.01)


def test_nothing_is_read_until_a_client_asks(stop: threading.Event) -> None:
    guest = Guest()
    s = sampler(guest, stop, Clock())
    time.sleep(0.1)
    assert guest.reads == 0
    assert not s.sampling


def test_sampling_runs_while_asked_and_stops_a_minute_after_the_last_ask(
    stop: threading.Event,
) -> None:
    guest, clock = Guest(), Clock()
    s = sampler(guest, stop, clock)
    assert s.asked() == []  # the first answer: nothing measured yet
    wait_until(lambda: len(s.asked()) >= 3, why="samples to come")
    first = s.asked()[0]
    assert (first.cpu_percent, first.memory_used_mib) == (25.0, 512.0)

    clock.now += 59  # 59 s since the last ask: still wanted
    time.sleep(0.05)
    assert s.sampling
    clock.now += 2  # 61 s: nobody looks any more
    wait_until(lambda: not s.sampling, why="the sampler to stop")
    reads = guest.reads
    time.sleep(0.1)
    assert guest.reads == reads, "a guest command with nobody asking"

    kept = s.asked()  # asked again: the old samples are still there, and it samples again
    assert len(kept) >= 3
    assert s.sampling
    wait_until(lambda: guest.reads > reads, why="sampling to start again")


def test_samples_older_than_the_window_are_not_answered(stop: threading.Event) -> None:
    guest, clock = Guest(), Clock()
    wall = Clock()
    s = Sampler(guest.read, stop, interval=0.01, window=600, interest=60, clock=clock,
                wall=wall)  # fmt: skip
    s.asked()
    wait_until(lambda: len(s.asked()) >= 2)
    wall.now += 601
    assert s.asked() == []


def test_a_machine_that_stops_ends_its_series(stop: threading.Event) -> None:
    guest = Guest()
    s = sampler(guest, stop, Clock())
    s.asked()
    wait_until(lambda: len(s.asked()) >= 2)
    guest.running = False
    wait_until(lambda: s.asked() == [], why="the samples to go with the machine")


def test_a_read_that_fails_leaves_a_gap_not_an_error(stop: threading.Event) -> None:
    calls = 0

    def read() -> str:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise OSError("the link is being repaired")
        return proc(busy=100 * calls, idle=300 * calls)

    s = Sampler(read, stop, interval=0.01, window=600, interest=60, clock=Clock())
    s.asked()
    time.sleep(0.2)
    assert calls > 4
    assert s.sampling
    assert s.asked() == []  # never two good readings in a row: no sample, no crash


# ----- the agent's answer ---------------------------------------------------------------------


def test_a_stopped_machine_answers_no_samples_and_samples_nothing(machine: Machine) -> None:
    agent = machine.agent()
    answer = agent.stats()
    assert answer.samples == []
    assert answer.machine == "default"
    assert answer.interval_s == 5.0
    assert not agent.sampler.sampling
    assert machine.fakes.guests.made == []


def test_a_running_machine_is_sampled_through_its_guest_channel(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    guest = machine.fakes.guests.last
    made = len(machine.fakes.guests.made)
    time.sleep(0.1)
    assert READ_COMMAND not in guest.commands, "sampled before anyone asked"

    agent.sampler.interval = 0.02
    assert agent.stats().samples == []
    wait_until(lambda: len(agent.stats().samples) >= 2, why="samples of the running machine")
    answer = agent.stats()
    assert (answer.cpus, answer.memory_mib) == (1, 2048)  # TCG: one vCPU; 2 GiB by default
    assert answer.samples[-1].cpu_percent == 25.0
    assert answer.samples[-1].memory_used_mib == 512.0
    assert guest.commands.count(READ_COMMAND) >= 3
    # Through the one channel the agent already had: no new connection per sample.
    assert len(machine.fakes.guests.made) == made
