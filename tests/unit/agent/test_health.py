"""Repairs and the VM watch (``agent/health.py``) over fakes."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from moorage.agent import health
from moorage.agent.health import Repairs, watch_vm_forever
from moorage.agent.machine import MachineAgent
from moorage.errors import EngineError
from tests.helpers.fakes import FakeMounts
from tests.unit.agent.conftest import Machine, wait_event, wait_until


def _running(machine: Machine) -> MachineAgent:
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"
    return agent


def test_a_dead_guest_link_is_rebuilt_with_a_bounded_deadline(machine: Machine) -> None:
    agent = _running(machine)
    guest = machine.fakes.guests.last
    connects = guest.calls["connect"]
    machine.fakes.guests.link_dead = True
    since = agent.events.last_id
    began = time.monotonic()
    Repairs(agent).tick()
    assert guest.calls["connect"] == connects + 1
    deadline = guest.deadlines[-1]
    assert began < deadline <= time.monotonic() + health.REPAIR_LINK_SECONDS
    warning = wait_event(agent, since, lambda e: e.kind == "warning", timeout=1)
    assert warning.code == "guest-link"


def test_a_guest_that_does_not_come_back_is_given_up_in_bounded_time(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "REPAIR_LINK_SECONDS", 0.2)
    agent = _running(machine)
    machine.fakes.guests.link_dead = True
    machine.fakes.guests.block_connects = 1  # the guest's sshd is gone
    began = time.monotonic()
    with pytest.raises(EngineError):
        Repairs(agent).tick()
    assert time.monotonic() - began < 2
    assert not agent._op_lock.locked()  # released for the next operation


def test_repairs_never_run_beside_an_operation(machine: Machine) -> None:
    agent = _running(machine)
    guest = machine.fakes.guests.last
    connects = guest.calls["connect"]
    machine.fakes.guests.link_dead = True
    repairs = Repairs(agent)
    with agent._op_lock:  # as a start or a stop holds it
        repairs.tick()
    assert guest.calls["connect"] == connects
    repairs.tick()
    assert guest.calls["connect"] == connects + 1


def test_repairs_leave_a_stopped_machine_alone(machine: Machine) -> None:
    agent = machine.agent(watch=False)
    Repairs(agent).tick()
    assert machine.fakes.engine.calls.get("ping", 0) == 0


def test_an_engine_that_stops_answering_makes_the_machine_degraded(machine: Machine) -> None:
    agent = _running(machine)
    repairs = Repairs(agent)
    repairs.last_ping -= health.PING_EVERY  # a check is due
    machine.fakes.engine.answering = False
    repairs.tick()
    status = agent.status_now()
    assert (status.state, status.error_code) == ("degraded", "engine")
    assert machine.fakes.ports.made[-1].calls["reconcile"] == 1

    machine.fakes.engine.answering = True
    repairs.last_ping -= health.PING_EVERY
    repairs.tick()
    status = agent.status_now()
    assert (status.state, status.error) == ("running", None)


def test_a_start_over_a_silent_engine_says_degraded_first(machine: Machine) -> None:
    agent = _running(machine)
    machine.fakes.engine.answering = False
    before = agent.events.last_id
    accepted = agent.request("start")  # a start repairs; first it tells the truth
    first_state = wait_event(agent, before, lambda e: e.kind == "state")
    assert first_state.state == "degraded"
    error = wait_event(agent, accepted.since, lambda e: e.kind == "error")
    assert error.code == "engine"
    wait_until(lambda: agent.snapshot().operation is None)
    assert agent.state() == "degraded"  # the VM still runs
    assert machine.fakes.driver.calls["start"] == 1  # adopted, not rebooted


def test_dead_sshfs_mounts_and_port_conflicts_are_repaired(machine: Machine) -> None:
    agent = _running(machine)
    mounts = FakeMounts([Path("/home/u/src")])
    mounts.dying = [Path("/home/u/src")]
    agent.sshfs = mounts
    ports = machine.fakes.ports.made[-1]
    ports.conflicts = ["127.0.0.1:8080/tcp: in use"]
    assert agent.snapshot().port_conflicts == ["127.0.0.1:8080/tcp: in use"]
    Repairs(agent).tick()
    assert mounts.remounted == [Path("/home/u/src")]
    assert ports.calls["retry"] == 1
    assert agent.snapshot().port_conflicts == []
    assert any(e.code == "sshfs-remount" for e in agent.events.after(0, 0))


def test_the_guest_clock_is_set_after_the_host_slept(machine: Machine) -> None:
    agent = _running(machine)
    guests = machine.fakes.guests
    guests.clock_offset = -3600.0  # the guest slept with the host
    repairs = Repairs(agent)
    repairs.prev_wall -= 600  # the wall clock moved on while the monotonic one stood
    since = agent.events.last_id
    repairs.tick()
    assert any(c.startswith("date -u -s") for c in guests.last.commands)
    assert guests.clock_offset == 0.0
    progress = wait_event(agent, since, lambda e: e.kind == "progress", timeout=1)
    assert "clock" in progress.message


def test_the_loops_log_and_go_on(
    machine: Machine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(health, "WATCH_EVERY", 0.01)
    monkeypatch.setattr(health, "REPAIR_EVERY", 0.01)
    agent = machine.agent(watch=False)
    calls = {"watch": 0, "tick": 0}
    both = threading.Event()

    def watch() -> None:
        calls["watch"] += 1
        if calls["watch"] > 2 and calls["tick"] > 2:
            both.set()
        raise RuntimeError("a bug in the watch")

    repairs = Repairs(agent)

    def tick() -> None:
        calls["tick"] += 1
        raise EngineError("no answer") if calls["tick"] % 2 else RuntimeError("a bug")

    monkeypatch.setattr(agent, "watch_vm", watch)
    monkeypatch.setattr(repairs, "tick", tick)
    stop = threading.Event()
    threads = [
        threading.Thread(target=watch_vm_forever, args=(agent, stop)),
        threading.Thread(target=repairs.forever, args=(stop,)),
    ]
    with caplog.at_level(logging.WARNING, logger="moorage.agent"):
        for t in threads:
            t.start()
        assert both.wait(5)
        stop.set()
        for t in threads:
            t.join(5)
    assert "VM watch" in caplog.text and "repair" in caplog.text
