"""A staged guest image boots at the next start; one whose engine never comes up is
rolled back by the start itself, to the current image, with the data disk intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.agent import start
from moorage.vm.image import selection
from tests.helpers.images import write_image
from tests.unit.agent.conftest import Machine, end_of, idle, wait_event, wait_until


@pytest.fixture(autouse=True)
def _quick_engine_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(start, "ENGINE_TIMEOUT", 1.0)


def _stage(version: str) -> None:
    write_image(selection.release_dir("debian", version), version=f"img-{version}",
                contents={"root.img": f"root {version}".encode()})  # fmt: skip
    selection.stage("debian", version)


def test_a_staged_image_boots_and_becomes_current(machine: Machine) -> None:
    _stage("2.0.0")
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"
    spec = machine.fakes.driver.specs["default"]
    assert spec.kernel.parent == selection.release_dir("debian", "2.0.0")
    s = selection.load("debian")
    assert (s.current, s.previous, s.staged) == ("2.0.0", selection.LOCAL, None)
    assert "release 2.0.0" in (agent.snapshot().image or "")


def _disk(path: Path) -> tuple[int, int, bytes]:
    with path.open("rb") as f:
        return path.stat().st_ino, path.stat().st_size, f.read(1 << 16)


def test_a_broken_image_rolls_back_by_itself_and_the_data_disk_is_intact(
    machine: Machine,
) -> None:
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"  # the first boot makes the data disk
    disk = agent.paths.data_disk
    with disk.open("r+b") as f:
        f.write(b"containers and volumes")  # what the engine keeps there
    before = _disk(disk)
    since = agent.request("stop").since
    wait_event(agent, since, end_of("stop"))
    wait_until(lambda: idle(agent))
    _stage("2.0.0")
    machine.fakes.guests.broken_images.add(selection.release_dir("debian", "2.0.0"))
    assert machine.start(agent).kind == "ready"
    status = agent.snapshot()
    assert status.state == "running" and "release" not in (status.image or "")
    assert any("2.0.0 did not bring the engine to ready" in w for w in status.warnings)
    assert machine.fakes.driver.specs["default"].kernel.parent == machine.fakes.image_dir
    s = selection.load("debian")
    assert (s.current, s.staged, s.failed) == (selection.LOCAL, None, ["2.0.0"])
    assert s.last_failure and "did not answer" in s.last_failure
    assert _disk(disk) == before
    assert ("kill", True) in machine.fakes.driver.history  # the broken VM was stopped
    codes = [e.code for e in agent.events.after(since, 0) if e.kind == "warning"]
    assert "image-rollback" in codes


def test_an_image_whose_dockerd_exits_at_once_rolls_back_in_seconds(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(start, "ENGINE_TIMEOUT", 300.0)  # not waited out
    _stage("2.0.0")
    machine.fakes.guests.dockerd_exits.add(selection.release_dir("debian", "2.0.0"))
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"  # wait_event gives it 10 s
    assert machine.fakes.driver.specs["default"].kernel.parent == machine.fakes.image_dir
    s = selection.load("debian")
    assert (s.current, s.failed) == (selection.LOCAL, ["2.0.0"])
    assert s.last_failure == "dockerd in the guest exits as soon as it starts (3 times)"


def test_a_corrupt_staged_image_is_never_booted(machine: Machine) -> None:
    _stage("2.0.0")
    (selection.release_dir("debian", "2.0.0") / "root.img").write_bytes(b"flipped")
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"
    assert machine.fakes.driver.specs["default"].kernel.parent == machine.fakes.image_dir
    assert selection.load("debian").failed == ["2.0.0"]
    assert any("does not match its manifest" in w for w in agent.snapshot().warnings)


def test_a_stop_during_a_staged_boot_is_not_a_rollback(machine: Machine) -> None:
    _stage("2.0.0")
    machine.fakes.guests.broken_images.add(selection.release_dir("debian", "2.0.0"))
    machine.fakes.guests.block_connects = 1
    agent = machine.agent()
    accepted = agent.request("start")
    machine.fakes.guests.connecting.wait(5)
    agent.request("stop")
    assert wait_event(agent, accepted.since, end_of("start")).code == "cancelled"
    wait_until(lambda: idle(agent))
    assert selection.load("debian").staged == "2.0.0"  # still to be tried
