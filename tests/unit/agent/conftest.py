"""Agents over fakes (``tests/helpers/fakes.py``), torn down so no thread outlives its test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from moorage.agent.health import watch_vm_forever
from moorage.agent.machine import MachineAgent
from moorage.api.schema import Event
from moorage.paths import MachinePaths
from tests.helpers.fakes import Fakes, fake_deps, write_config

NAME = "default"


def wait_until(what: Callable[[], object], timeout: float = 5.0, why: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {why or what}")
        time.sleep(0.01)


def wait_event(
    agent: MachineAgent, since: int, match: Callable[[Event], bool], timeout: float = 10.0
) -> Event:
    """The first event after ``since`` that ``match``es, waiting on the event log."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        for event in agent.events.after(since, left):
            if match(event):
                return event
            since = event.id
    raise AssertionError(f"no matching event within {timeout}s")


def end_of(op: str) -> Callable[[Event], bool]:
    """The event that ends ``op``: ``ready`` or ``done``, or an ``error``."""
    return lambda e: e.op == op and e.kind in ("ready", "done", "error")


def idle(agent: MachineAgent) -> bool:
    return agent.snapshot().operation is None


class Machine:
    """One machine's files under MOORAGE_HOME, its fakes, and the agents made over it."""

    def __init__(self, home: Path) -> None:
        self.paths = MachinePaths(NAME)
        self.fakes = Fakes(image_dir=home / "image")
        self.agents: list[MachineAgent] = []
        self._watches: dict[MachineAgent, threading.Event] = {}
        write_config(self.paths)

    def agent(self, *, watch: bool = True) -> MachineAgent:
        """A new agent, as after an agent restart, with its VM watch running."""
        agent = MachineAgent(NAME, fake_deps(self.fakes))
        self.agents.append(agent)
        if watch:
            done = self._watches[agent] = threading.Event()
            threading.Thread(target=watch_vm_forever, args=(agent, done), daemon=True).start()
        return agent

    def kill_agent(self, agent: MachineAgent) -> None:
        """As ``kill -9`` of the agent process: its threads stop, the VM runs on."""
        if done := self._watches.get(agent):
            done.set()
        agent.exit_requested.set()

    def start(self, agent: MachineAgent) -> Event:
        accepted = agent.request("start")
        event = wait_event(agent, accepted.since, end_of("start"))
        wait_until(lambda: idle(agent), why="the start to end")
        return event

    def close(self) -> None:
        for done in self._watches.values():
            done.set()
        for agent in self.agents:
            agent.exit_requested.set()
            agent._cancel.set()
        for fake in (self.fakes.driver, self.fakes.engine, self.fakes.guests):
            fake.fail.clear()
        self.fakes.driver.reap()
        for agent in self.agents:
            wait_until(lambda a=agent: idle(a), 15, "every operation to end")  # type: ignore[misc]
            agent.disconnect()


@pytest.fixture
def machine(moorage_home: Path) -> Iterator[Machine]:
    m = Machine(moorage_home)
    try:
        yield m
    finally:
        m.close()
