"""The event-stream thread: events reach the GUI thread, the agent's comings and goings
are told apart, and it reconnects without polling the status."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from moorage.api.schema import AgentBusy, Event
from moorage.desktop.follow import AgentFollower, EngineFollower
from tests.helpers.fake_agent_client import FakeAgentClient, FakeDocker


@pytest.fixture
def follower(qtbot: QtBot, fake_client: FakeAgentClient) -> Iterator[AgentFollower]:
    f = AgentFollower(fake_client, backoff=(0.05, 0.1), fallback=0.1)
    seen: list[str] = []
    f.connection.connect(seen.append)
    f.seen = seen  # type: ignore[attr-defined]
    yield f
    f.stop()
    assert f.isFinished()


def test_events_after_connecting_reach_the_gui_thread(
    qtbot: QtBot, follower: AgentFollower, fake_client: FakeAgentClient
) -> None:
    with qtbot.waitSignal(follower.connection, timeout=2000) as up:
        follower.start()
    assert up.args == ["ok"]
    with qtbot.waitSignal(follower.arrived, timeout=2000) as got:
        fake_client.push("ready", "machine 'default' is ready", op="start")
    event = got.args[0]
    assert isinstance(event, Event) and event.kind == "ready"
    assert fake_client.called("status") == []  # it follows; it never asks


def test_history_from_before_the_connection_is_not_replayed(
    qtbot: QtBot, follower: AgentFollower, fake_client: FakeAgentClient
) -> None:
    old = fake_client.push("error", "an old failure", op="start")
    object.__setattr__(old, "time", time.time() - 3600)
    with qtbot.waitSignal(follower.arrived, timeout=2000) as got:
        follower.start()
        qtbot.waitUntil(lambda: follower.seen == ["ok"])  # type: ignore[attr-defined]
        fake_client.push("state", "machine running", state="running")
    assert got.args[0].kind == "state"
    assert follower.count == 1


def test_an_agent_that_exits_is_not_running_until_one_starts_again(
    qtbot: QtBot, follower: AgentFollower, fake_client: FakeAgentClient
) -> None:
    follower.start()
    qtbot.waitUntil(lambda: follower.seen == ["ok"])  # type: ignore[attr-defined]
    with qtbot.waitSignal(follower.connection, timeout=2000) as gone:
        fake_client.end_stream()
    assert gone.args == ["not-running"]
    calls_before = len(fake_client.calls)
    time.sleep(0.35)  # a few fallback rounds: they read the pid file, they send nothing
    assert fake_client.calls[calls_before:] == []
    fake_client.spawn()
    with qtbot.waitSignal(follower.connection, timeout=2000) as back:
        follower.wake()
    assert back.args == ["ok"]
    with qtbot.waitSignal(follower.arrived, timeout=2000) as got:
        fake_client.push("ready", "ready again", op="start")
    assert got.args[0].message == "ready again"


def test_a_dead_agent_is_crashed(
    qtbot: QtBot, follower: AgentFollower, fake_client: FakeAgentClient
) -> None:
    follower.start()
    qtbot.waitUntil(lambda: follower.seen == ["ok"])  # type: ignore[attr-defined]
    with qtbot.waitSignal(follower.connection, timeout=2000) as dead:
        fake_client.end_stream(crash=True)
    assert dead.args == ["crashed"]


def test_a_silent_agent_is_not_responding_and_the_stream_is_tried_again(
    qtbot: QtBot, follower: AgentFollower, fake_client: FakeAgentClient
) -> None:
    fake_client.fail_once["events"] = AgentBusy("no answer", fix="wait")
    follower.start()
    qtbot.waitUntil(lambda: "not-responding" in follower.seen, timeout=10000)  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: follower.seen[-1] == "ok", timeout=10000)  # type: ignore[attr-defined]
    assert len(fake_client.called("events")) >= 2  # a loaded host may take one more try


def test_stop_ends_the_thread_at_once_while_the_stream_is_quiet(
    qtbot: QtBot, follower: AgentFollower
) -> None:
    follower.start()
    qtbot.waitUntil(lambda: follower.seen == ["ok"])  # type: ignore[attr-defined]
    began = time.monotonic()
    follower.stop()
    assert follower.isFinished()
    assert time.monotonic() - began < 0.5


def test_engine_container_events_are_changes(qtbot: QtBot) -> None:
    engine = FakeDocker()
    f = EngineFollower(lambda: engine.events(decode=True, filters={"type": "container"}))
    f.start()
    try:
        qtbot.waitUntil(lambda: engine.calls != [])
        with qtbot.waitSignal(f.changed, timeout=2000):
            engine.push_event({"Type": "container", "Action": "exec_start"})  # not a change
            engine.push_event({"Type": "container", "Action": "die", "id": "x"})
        engine.close()
        qtbot.waitUntil(f.isFinished)
    finally:
        f.stop()
