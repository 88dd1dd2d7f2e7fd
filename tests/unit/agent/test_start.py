"""The start chain's branches (``agent/start.py``): shared folders, the accelerator,
a VM without a record, a slow engine, a dockerd that exits at once, forwards. Over
fakes, in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.agent import start
from moorage.agent.machine import MachineAgent
from moorage.errors import EngineError, MachineError, SharedFolderError
from moorage.runtime import RuntimeRecord
from moorage.types import Forward
from moorage.vm.driver import DriverFeatures
from tests.helpers.fakes import BOOT_LINES, write_config
from tests.unit.agent.conftest import NAME, Machine, end_of, wait_event


def _share(machine: Machine, home: Path) -> Path:
    folder = home / "src"
    folder.mkdir()
    write_config(machine.paths, mounts=[str(folder)])
    return folder


def _codes(agent: MachineAgent, kind: str = "warning") -> list[str | None]:
    return [e.code for e in agent.events.after(0, 0) if e.kind == kind]


def test_shared_folders_use_virtiofs_where_there_is_one(
    machine: Machine, moorage_home: Path
) -> None:
    folder = _share(machine, moorage_home)
    machine.fakes.driver.boot_lines = (
        *BOOT_LINES[:-1],
        f"moorage: shared {folder} (virtiofs)",
        "moorage: warning: the clock is off",
        BOOT_LINES[-1],
    )
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"
    spec = machine.fakes.driver.specs[NAME]
    assert [s.host_path for s in spec.shares] == [folder]
    status = agent.status_now()
    assert status.file_sharing == "virtiofs"
    assert status.shared_folders == [str(folder)]
    assert "guest" in _codes(agent)
    assert not machine.fakes.mounts


def test_without_virtiofsd_shared_folders_fall_back_to_sshfs(
    machine: Machine, moorage_home: Path
) -> None:
    folder = _share(machine, moorage_home)
    machine.fakes.virtiofsd_found = False
    machine.fakes.sftp_found = True
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"
    assert machine.fakes.driver.specs[NAME].shares == ()
    assert [m.folders for m in machine.fakes.mounts] == [[folder]]
    status = agent.status_now()
    assert (status.file_sharing, status.shared_folders) == ("sshfs", [str(folder)])
    assert "sharing-fallback" in _codes(agent)
    record = RuntimeRecord.load(agent.paths.ports_file)
    assert record is not None and record.sshfs_folders == (str(folder),)

    # A new agent adopts the VM and mounts the folders again.
    machine.kill_agent(agent)
    second = machine.agent()
    assert machine.start(second).kind == "ready"
    assert len(machine.fakes.mounts) == 2
    assert second.status_now().file_sharing == "sshfs"


def test_a_virtiofs_daemon_that_fails_falls_back_to_sshfs(
    machine: Machine, moorage_home: Path
) -> None:
    folder = _share(machine, moorage_home)
    machine.fakes.sftp_found = True
    machine.fakes.driver.fail_once["start"] = SharedFolderError("virtiofsd exited")
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"
    assert machine.fakes.driver.calls["start"] == 2
    assert agent.status_now().file_sharing == "sshfs"
    assert [m.folders for m in machine.fakes.mounts] == [[folder]]
    assert "sharing-fallback" in _codes(agent)


def test_kvm_required_but_unusable_fails_the_start(machine: Machine) -> None:
    write_config(machine.paths, accel="kvm")
    agent = machine.agent()
    error = machine.start(agent)
    assert (error.kind, error.code, error.phase) == ("error", "machine", "vm")
    assert "KVM is not usable" in error.message
    assert machine.fakes.driver.calls.get("start", 0) == 0


def test_a_slow_hypervisor_start_is_warned_about(machine: Machine) -> None:
    driver = machine.fakes.driver
    driver.features = DriverFeatures(
        name="fake",
        needs_daemon=True,
        accelerators=("tcg",),
        shared_folders=(),
        runtime_forwards=True,
        slow_start_seconds=0.0,
        slow_start_advice="check the daemon",
    )
    agent = machine.agent()
    assert machine.start(agent).kind == "ready"
    assert "slow-start" in _codes(agent)


def test_a_running_vm_without_a_record_is_booted_again(machine: Machine) -> None:
    first = machine.agent()
    machine.start(first)
    machine.kill_agent(first)
    first.paths.ports_file.unlink()  # its ports are unknown: it cannot be reached

    second = machine.agent()
    assert machine.start(second).kind == "ready"
    assert [how for how, _ in machine.fakes.driver.history] == ["kill"]
    assert machine.fakes.driver.calls["start"] == 2


def test_a_vm_that_cannot_be_killed_before_a_new_boot_fails_the_start(
    machine: Machine,
) -> None:
    first = machine.agent()
    machine.start(first)
    machine.kill_agent(first)
    first.paths.ports_file.unlink()
    machine.fakes.driver.fail["kill"] = MachineError("libvirt could not destroy it", fix="retry")

    second = machine.agent()
    error = machine.start(second)
    assert (error.kind, error.code, error.fix, error.phase) == ("error", "machine", "retry", "vm")
    assert second.state() == "degraded"  # the old VM still runs
    assert machine.fakes.driver.calls["start"] == 1


def test_a_guest_that_dies_while_booting_fails_the_start(machine: Machine) -> None:
    driver = machine.fakes.driver
    driver.boot_lines = ("moorage: init",)  # it never finishes booting
    agent = machine.agent(watch=False)
    accepted = agent.request("start")
    wait_event(agent, accepted.since, lambda e: e.kind == "phase" and e.phase == "kernel")
    driver.kill(NAME)
    error = wait_event(agent, accepted.since, end_of("start"))
    assert (error.code, error.phase) == ("machine", "kernel")
    assert "stopped while booting" in error.message


def test_a_probe_that_loses_the_link_connects_again(machine: Machine) -> None:
    guests = machine.fakes.guests
    guests.fail_once["run"] = EngineError("the SSH connection to the guest is gone")
    agent = machine.agent()
    accepted = agent.request("start")
    assert wait_event(agent, accepted.since, end_of("start")).kind == "ready"
    probe = [e for e in agent.events.after(accepted.since, 0) if "engine probe" in e.message]
    assert [e.phase for e in probe] == ["engine"]
    assert guests.last.calls["connect"] == 2


def test_a_dockerd_that_exits_as_soon_as_it_starts_fails_the_start_at_once(
    machine: Machine,
) -> None:
    assert start.ENGINE_TIMEOUT == 300  # the wait it does not sit out
    machine.fakes.guests.dockerd_exits.add(machine.fakes.image_dir)
    agent = machine.agent()
    error = machine.start(agent)  # within seconds: wait_event gives it 10
    assert (error.kind, error.code, error.phase) == ("error", "engine", "engine")
    assert error.message == "dockerd in the guest exits as soon as it starts (3 times)"
    assert error.fix == "`moorage logs --engine` shows why"
    again = [e.message for e in agent.events.after(0, 0) if "init started it again" in e.message]
    assert again == ["dockerd in the guest exited at once; init started it again (start 2)"]
    assert agent.state() == "degraded"  # the VM runs on, for `moorage logs --engine`


def test_dockerd_starts_from_before_the_agent_came_are_not_counted(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = machine.agent()
    machine.start(first)
    with first.paths.serial_log.open("a") as f:  # dockerd was restarted, days ago
        f.write("moorage: dockerd starting\n" * start.DOCKERD_STARTS)
    machine.kill_agent(first)
    monkeypatch.setattr(start, "ENGINE_TIMEOUT", 1.0)
    machine.fakes.guests.engine_up = False  # and now it is slow to answer

    second = machine.agent()
    error = machine.start(second)
    assert error.message == "dockerd in the guest did not answer in 1s"
    assert machine.fakes.driver.calls["start"] == 1  # adopted, not booted again


def test_published_ports_are_forwarded_and_reported(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    ports = machine.fakes.ports.made[-1]
    web = Forward("tcp", "127.0.0.1", 8080, 80)
    ports.add(web)
    assert web in machine.fakes.driver.forwards(NAME)
    assert machine.fakes.engine.twins[web] is True
    since = agent.events.last_id
    ports.report("added", web, "127.0.0.1:8080/tcp is forwarded")
    event = wait_event(agent, since, lambda e: e.kind == "forward")
    assert event.forward is not None and event.forward.describe() == "127.0.0.1:8080/tcp"

    # A new agent takes the forward over from the VM, with its IPv6 twin.
    machine.kill_agent(agent)
    machine.fakes.engine.twins.clear()
    second = machine.agent()
    machine.start(second)
    assert machine.fakes.ports.made[-1].existing == {web}
    assert machine.fakes.engine.twins == {web: True}

    machine.fakes.ports.made[-1].remove(web)
    assert web not in machine.fakes.driver.forwards(NAME)
