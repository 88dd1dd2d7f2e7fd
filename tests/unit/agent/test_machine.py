"""The host agent's operations over a fake driver: start, adopt, crash, stop, delete,
and every failure ending in a state and an error event. No VM, seconds."""

from __future__ import annotations

import os
import threading

import pytest

from moorage.agent.machine import MachineAgent
from moorage.api.schema import PHASES, Accepted, OperationRunning
from moorage.errors import ConfigError, EngineError, HostError, ImageError, MachineError
from moorage.runtime import RuntimeRecord, pid_alive
from moorage.vm.driver import VMState
from tests.helpers.fakes import ENGINE_VERSION, FakeDriver, write_config
from tests.unit.agent.conftest import NAME, Machine, end_of, idle, wait_event, wait_until


def test_a_start_reaches_running_through_every_phase_in_order(machine: Machine) -> None:
    agent = machine.agent()
    accepted = agent.request("start")
    assert accepted.op == "start"
    ready = wait_event(agent, accepted.since, end_of("start"))
    assert ready.kind == "ready", ready
    assert ENGINE_VERSION in ready.message

    events = agent.events.after(accepted.since, 0)
    assert [e.phase for e in events if e.kind == "phase"] == list(PHASES)
    assert [e.state for e in events if e.kind == "state"] == ["starting", "running"]
    # The guest's serial log became progress lines of the kernel phase.
    assert any(e.kind == "progress" and e.message == "network up" for e in events)
    assert {e.code for e in events if e.kind == "warning"} >= {"kvm-unusable"}

    wait_until(lambda: idle(agent))
    status = agent.status_now()
    assert status.state == "running"
    assert status.operation is None
    assert status.engine_version == ENGINE_VERSION
    assert status.vm_pid == machine.fakes.driver.procs[NAME].pid
    assert set(status.phase_seconds) == set(PHASES)
    assert status.docker_socket == str(agent.paths.docker_socket)
    record = RuntimeRecord.load(agent.paths.ports_file)
    assert record is not None and record.vm_pid == status.vm_pid
    assert machine.fakes.contexts.contexts == {NAME: agent.paths.docker_socket}
    assert machine.fakes.ports.made[-1].running

    # A start while running answers at once: no second boot.
    again = agent.request("start")
    assert wait_event(agent, again.since, end_of("start")).message == "already running"
    assert machine.fakes.driver.calls["start"] == 1


def test_stop_during_a_start_cancels_it(machine: Machine) -> None:
    guests = machine.fakes.guests
    guests.block_connects = 1  # the guest's sshd never answers
    agent = machine.agent()
    started = agent.request("start")
    assert guests.connecting.wait(5)
    assert agent.state() == "starting"

    stop = agent.request("stop")
    assert stop.op == "stop"
    error = wait_event(agent, started.since, end_of("start"))
    assert error.kind == "error"
    assert error.code == "cancelled", error
    assert error.fix
    done = wait_event(agent, stop.since, end_of("stop"))
    assert done.kind == "done", done
    wait_until(lambda: idle(agent))
    assert agent.state() == "stopped"
    assert not pid_alive(machine.fakes.driver.procs[NAME].pid)
    assert not agent.paths.ports_file.exists()
    assert agent.exit_requested.is_set()


def test_two_concurrent_starts_run_one_chain(machine: Machine) -> None:
    gate = machine.fakes.guests.connect_gate = threading.Event()  # the start waits in it
    agent = machine.agent()
    barrier = threading.Barrier(2)
    answers: list[Accepted] = []

    def ask() -> None:
        barrier.wait()
        answers.append(agent.request("start"))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.op for a in answers] == ["start", "start"]
    assert agent.request("start").op == "start"  # a third joins too
    gate.set()
    since = min(a.since for a in answers)
    assert wait_event(agent, since, end_of("start")).kind == "ready"
    wait_until(lambda: idle(agent))
    events = agent.events.after(since, 0)
    assert [e.phase for e in events if e.kind == "phase"] == list(PHASES)
    assert [e.kind for e in events].count("ready") == 1
    assert machine.fakes.driver.calls["start"] == 1


def test_a_new_agent_adopts_the_running_vm(machine: Machine) -> None:
    first = machine.agent()
    assert machine.start(first).kind == "ready"
    vm_pid = first.status.vm_pid
    machine.kill_agent(first)  # the agent is killed; the VM is not

    second = machine.agent()
    status = second.status_now()
    assert status.state == "stopped"
    assert status.vm_pid == vm_pid  # a VM without an agent is reported
    assert status.error and "adopts" in status.error
    assert not second.idle()

    accepted = second.request("start")
    phases = []
    ready = wait_event(second, accepted.since, end_of("start"))
    assert ready.kind == "ready", ready
    for e in second.events.after(accepted.since, 0):
        if e.kind == "phase":
            phases.append(e.message)
    assert "adopting the running VM" in phases
    assert machine.fakes.driver.calls["start"] == 1
    wait_until(lambda: idle(second))
    assert second.status_now().state == "running"
    assert second.status.vm_pid == vm_pid


def test_a_killed_vm_is_seen_as_crashed_within_seconds(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    since = agent.events.last_id
    machine.fakes.driver.crash(NAME)
    error = wait_event(agent, since, lambda e: e.kind == "error", timeout=5)
    assert error.code == "vm-crashed"
    assert error.fix
    wait_until(lambda: agent.state() == "crashed", 5)
    assert agent.status.vm_pid is None
    assert not agent.paths.ports_file.exists()

    # start boots it again
    assert machine.start(agent).kind == "ready"
    assert machine.fakes.driver.calls["start"] == 2


def test_a_start_right_after_a_kill_boots_again(machine: Machine) -> None:
    agent = machine.agent(watch=False)  # only the start itself may notice
    machine.start(agent)
    machine.fakes.driver.crash(NAME)
    accepted = agent.request("start")
    ready = wait_event(agent, accepted.since, end_of("start"))
    assert ready.kind == "ready" and ready.message != "already running"
    assert machine.fakes.driver.calls["start"] == 2
    codes = [e.code for e in agent.events.after(0, 0) if e.kind == "error"]
    assert codes == ["vm-crashed"]


def test_a_vm_killed_while_booting_ends_the_start_as_crashed(machine: Machine) -> None:
    guests = machine.fakes.guests
    guests.block_connects = 1
    agent = machine.agent()
    accepted = agent.request("start")
    assert guests.connecting.wait(5)
    machine.fakes.driver.crash(NAME)
    error = wait_event(agent, accepted.since, end_of("start"))
    assert error.kind == "error"
    assert error.code == "vm-crashed", error
    wait_until(lambda: idle(agent))
    assert agent.state() == "crashed"


def test_stop_then_delete(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    stop = agent.request("stop")
    assert wait_event(agent, stop.since, end_of("stop")).kind == "done"
    wait_until(lambda: idle(agent))
    assert agent.state() == "stopped"
    assert [how for how, _ in machine.fakes.driver.history] == ["poweroff"]
    assert "busybox poweroff" in machine.fakes.guests.last.commands

    delete = agent.request("delete")
    assert wait_event(agent, delete.since, end_of("delete")).kind == "done"
    wait_until(lambda: idle(agent))
    assert not agent.paths.state.exists()
    assert not agent.paths.config_file.exists()
    assert NAME not in machine.fakes.contexts.contexts


def test_delete_stops_an_orphaned_vm_before_removing_its_disk(machine: Machine) -> None:
    first = machine.agent()
    machine.start(first)
    machine.kill_agent(first)
    vm_pid = first.status.vm_pid

    fresh = machine.agent()  # never started
    accepted = fresh.request("delete")
    done = wait_event(fresh, accepted.since, end_of("delete"))
    assert done.kind == "done", done
    wait_until(lambda: idle(fresh))
    assert not pid_alive(vm_pid)
    # The VM ended while its data disk still existed: the disk went after.
    assert machine.fakes.driver.history == [("poweroff", True)]
    assert not fresh.paths.data_disk.exists()


def test_delete_removes_nothing_when_the_vm_cannot_be_stopped(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("moorage.agent.machine.STOP_TIMEOUT", 0.3)
    first = machine.agent()
    machine.start(first)
    machine.kill_agent(first)
    driver = machine.fakes.driver
    driver.stuck = True  # neither a poweroff nor a kill ends it

    fresh = machine.agent()
    accepted = fresh.request("delete")
    error = wait_event(fresh, accepted.since, end_of("delete"))
    assert error.kind == "error"
    assert error.code == "machine" and "nothing was removed" in error.message
    assert error.fix
    wait_until(lambda: idle(fresh))
    assert fresh.paths.data_disk.exists()
    assert fresh.paths.config_file.exists()
    assert driver.state(NAME) is VMState.RUNNING
    assert not fresh.exit_requested.is_set()
    assert fresh.state() == "degraded"


def test_delete_removes_nothing_when_the_driver_lost_track_of_a_live_vm(
    machine: Machine,
) -> None:
    """The driver answers STOPPED (libvirt lost its domain) but the hypervisor process
    lives, as the runtime record says: the disk must stay."""
    first = machine.agent()
    machine.start(first)
    machine.kill_agent(first)
    driver = machine.fakes.driver
    driver.blind = True
    driver.stuck = True

    fresh = machine.agent()
    accepted = fresh.request("delete")
    error = wait_event(fresh, accepted.since, end_of("delete"))
    assert error.kind == "error", error
    assert "nothing was removed" in error.message
    wait_until(lambda: idle(fresh))
    assert fresh.paths.data_disk.exists()
    assert fresh.paths.config_file.exists()
    # The record stays, so the VM can still be adopted, and a second delete refuses too.
    assert fresh.paths.ports_file.exists()
    again = fresh.request("delete")
    assert wait_event(fresh, again.since, end_of("delete")).kind == "error"
    wait_until(lambda: idle(fresh))
    assert fresh.paths.data_disk.exists()


def test_reset_erases_only_the_data_disk(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    accepted = agent.request("reset")
    assert wait_event(agent, accepted.since, end_of("reset")).kind == "done"
    wait_until(lambda: idle(agent))
    assert not agent.paths.data_disk.exists()
    assert agent.paths.config_file.exists()
    assert agent.state() == "stopped"


def test_restart_boots_a_new_vm(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    old = agent.status.vm_pid
    accepted = agent.request("restart")
    ready = wait_event(agent, accepted.since, end_of("start"))
    assert ready.kind == "ready", ready
    wait_until(lambda: idle(agent))
    assert agent.status.vm_pid != old
    assert machine.fakes.driver.calls["start"] == 2


def test_another_operation_while_one_runs_is_refused(machine: Machine) -> None:
    machine.fakes.guests.block_connects = 1
    agent = machine.agent()
    agent.request("start")
    assert machine.fakes.guests.connecting.wait(5)
    stop = agent.request("stop")
    # a second stop joins the first; a delete is refused while it runs
    assert agent.request("stop").op == "stop"
    with pytest.raises(OperationRunning):
        agent.request("delete")
    wait_event(agent, stop.since, end_of("stop"))


# ----- failures: every one ends in a state and an error event -----------------------------

STEP_FAILURES = [
    ("check_host", HostError("cannot reach libvirt: no socket", fix="start libvirtd")),
    ("start", MachineError("qemu exited at once", fix="see the log")),
    ("start", RuntimeError("a bug in the driver")),
    ("state", MachineError("libvirt lookup failed: no connection")),  # real ones have no fix
    ("pid", MachineError("no pid", fix="see the log")),
    ("forwards", MachineError("the monitor is gone", fix="restart")),
]


@pytest.mark.parametrize(("method", "exc"), STEP_FAILURES, ids=lambda v: str(v)[:20])
def test_a_driver_failing_in_a_start_step_ends_in_an_error_event(
    machine: Machine, method: str, exc: BaseException
) -> None:
    machine.fakes.driver.fail[method] = exc
    agent = machine.agent()
    accepted = agent.request("start")
    error = wait_event(agent, accepted.since, end_of("start"))
    assert error.kind == "error", error
    assert error.message and error.code and error.fix
    if method == "check_host":
        assert error.code == "host"
        assert error.fix == "start libvirtd"
        assert error.phase == "host"
    if isinstance(exc, RuntimeError):
        assert error.code == "agent" and "a bug in the driver" in error.message
    wait_until(lambda: idle(agent))
    status = agent.status_now()
    assert status.state not in ("starting", "stopping")
    assert status.operation is None
    assert status.error and status.error_code == error.code


def test_libvirt_unreachable_arrives_with_its_fix(machine: Machine) -> None:
    fix = 'start libvirtd (`sudo systemctl start libvirtd`), or set driver = "qemu"'
    machine.fakes.driver.fail["check_host"] = HostError(
        "cannot reach libvirt at qemu:///system: Failed to connect socket", fix=fix
    )
    agent = machine.agent()
    accepted = agent.request("start")
    error = wait_event(agent, accepted.since, end_of("start"))
    assert (error.kind, error.code, error.fix) == ("error", "host", fix)
    assert "cannot reach libvirt" in error.message
    wait_until(lambda: idle(agent))
    assert agent.state() == "stopped"
    assert machine.fakes.driver.calls.get("start", 0) == 0


def _no_ssh(machine: Machine) -> None:
    guests = machine.fakes.guests
    guests.poweroff_works = False
    guests.link_dead = True
    guests.fail["connect"] = EngineError("no route to the guest")  # the stop must kill


def test_a_driver_failing_to_kill_in_a_stop_ends_in_an_error_event(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    _no_ssh(machine)
    machine.fakes.driver.fail["kill"] = MachineError("kill failed", fix="try again")
    accepted = agent.request("stop")
    error = wait_event(agent, accepted.since, end_of("stop"))
    assert (error.kind, error.code, error.fix) == ("error", "machine", "try again")
    wait_until(lambda: idle(agent))
    status = agent.status_now()
    assert status.state == "degraded"  # the VM still runs
    assert status.operation is None
    assert not agent.exit_requested.is_set()


def test_a_driver_that_cannot_tell_the_state_in_a_stop(machine: Machine) -> None:
    """Either the stop goes on by the VM's pid and stops it, or it fails with an error
    event: never a machine left ``stopping``, nor ``stopped`` over a live VM."""
    agent = machine.agent()
    machine.start(agent)
    vm_pid = agent.status.vm_pid
    _no_ssh(machine)
    machine.fakes.driver.fail["state"] = MachineError("libvirt lookup failed")
    accepted = agent.request("stop")
    end = wait_event(agent, accepted.since, end_of("stop"))
    wait_until(lambda: idle(agent))
    status = agent.snapshot()
    assert status.operation is None
    if end.kind == "done":
        assert status.state == "stopped" and not pid_alive(vm_pid)
    else:
        assert end.code and end.fix
        assert status.state in ("degraded", "stopped", "crashed")
        assert status.state != "stopped" or not pid_alive(vm_pid)


def test_a_failed_stop_leaves_the_vm_watched(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    driver = machine.fakes.driver
    _no_ssh(machine)
    driver.fail["kill"] = MachineError("kill failed")
    accepted = agent.request("stop")
    wait_event(agent, accepted.since, end_of("stop"), timeout=30)
    wait_until(lambda: idle(agent))
    assert agent.state() == "degraded"

    driver.fail.clear()
    since = agent.events.last_id
    driver.crash(NAME)
    error = wait_event(agent, since, lambda e: e.kind == "error", timeout=5)
    assert error.code == "vm-crashed"


def test_clean_up_failing_inside_a_failure_still_ends_in_a_state(machine: Machine) -> None:
    """The forwarders step fails; then, in ``_failed``, the clean-up raises and the
    driver cannot tell whether the VM runs."""
    driver, engine = machine.fakes.driver, machine.fakes.engine
    original = driver._call

    def failing(method: str) -> None:
        if method == "forwards":
            driver.fail["state"] = MachineError("libvirt went away")
            engine.fail["close"] = RuntimeError("close failed too")
            raise MachineError("the monitor is gone", fix="restart")
        original(method)

    driver._call = failing  # type: ignore[method-assign]
    agent = machine.agent(watch=False)
    accepted = agent.request("start")
    error = wait_event(agent, accepted.since, end_of("start"))
    assert (error.kind, error.code, error.fix) == ("error", "machine", "restart")
    wait_until(lambda: idle(agent))
    # The driver could not say, so the VM's pid decided: it runs.
    assert agent.state() == "degraded"
    assert agent.snapshot().operation is None
    engine.fail.clear()
    driver.fail.clear()


def test_an_image_failure_ends_in_an_error_event(machine: Machine) -> None:
    machine.fakes.image_fail = ImageError("the image is corrupt", fix="rebuild it")
    agent = machine.agent()
    accepted = agent.request("start")
    error = wait_event(agent, accepted.since, end_of("start"))
    assert (error.code, error.fix, error.phase) == ("image", "rebuild it", "image")


def test_a_guest_boot_error_fails_the_start(machine: Machine) -> None:
    machine.fakes.driver.boot_lines = ("moorage: init", "moorage: error: no data disk")
    agent = machine.agent()
    accepted = agent.request("start")
    error = wait_event(agent, accepted.since, end_of("start"))
    assert error.code == "machine" and "no data disk" in error.message
    assert error.phase == "kernel"
    wait_until(lambda: idle(agent))
    assert agent.state() == "degraded"  # the VM runs; a start repairs it


def test_an_engine_that_never_answers_fails_the_start(machine: Machine) -> None:
    machine.fakes.engine.answering = False
    agent = machine.agent()
    accepted = agent.request("start")
    error = wait_event(agent, accepted.since, end_of("start"))
    assert (error.code, error.phase) == ("engine", "forwarders")


def test_config_errors_are_raised_at_once(machine: Machine) -> None:
    write_config(machine.paths, cpus=64, memory_gib="lots")
    agent = machine.agent()
    since = agent.events.last_id
    with pytest.raises(ConfigError) as info:
        agent.request("start")
    assert len(info.value.problems) == 2
    assert any("cpus" in p for p in info.value.problems)
    assert agent.events.last_id == since  # nothing began
    assert idle(agent) and agent.state() == "stopped"
    with pytest.raises(ConfigError):
        agent.request("restart")


def test_a_docker_context_that_cannot_be_made_is_a_warning(machine: Machine) -> None:
    machine.fakes.contexts.fail["ensure"] = EngineError("no docker CLI")
    agent = machine.agent()
    ready = machine.start(agent)
    assert ready.kind == "ready"
    assert any(e.code == "context" for e in agent.events.after(0, 0) if e.kind == "warning")


# ----- the VM watch and status -------------------------------------------------------------


def test_status_never_says_running_for_a_dead_vm(machine: Machine) -> None:
    agent = machine.agent(watch=False)
    machine.start(agent)
    machine.fakes.driver.crash(NAME)
    assert agent.status_now().state == "crashed"


def test_the_watch_asks_the_driver_when_no_pid_is_known(machine: Machine) -> None:
    agent = machine.agent(watch=False)
    machine.start(agent)
    agent.vm_pid = None
    agent.watch_vm()
    assert agent.state() == "running"
    machine.fakes.driver.kill(NAME)
    agent.watch_vm()
    assert agent.state() == "crashed"


def test_the_watch_survives_a_driver_that_cannot_answer(machine: Machine) -> None:
    agent = machine.agent(watch=False)
    machine.start(agent)
    agent.vm_pid = None
    machine.fakes.driver.fail["state"] = MachineError("libvirtd is gone")
    agent.watch_vm()  # falls back to the recorded pid, which lives
    assert agent.state() == "running"
    os.kill(machine.fakes.driver.procs[NAME].pid, 9)
    machine.fakes.driver.procs[NAME].wait()
    agent.watch_vm()
    assert agent.state() == "crashed"


def test_an_agent_over_nothing_is_idle(machine: Machine) -> None:
    agent = machine.agent(watch=False)
    status = agent.status_now()
    assert status.state == "stopped" and status.vm_pid is None
    assert agent.idle()


def _started(machine: Machine) -> MachineAgent:
    agent = machine.agent()
    machine.start(agent)
    return agent


def test_shell_and_config_views(machine: Machine) -> None:
    agent = machine.agent(watch=False)
    with pytest.raises(MachineError):
        agent.shell_argv()
    view = agent.config_view()
    assert view.values["mounts"] == []
    with pytest.raises(ConfigError):
        agent.validate_config({"cpus": 99})
    agent.write_config({"mounts": [], "cpus": 1, "disk_gib": 8})
    assert agent.config_view().values["cpus"] == 1
    agent.use_context()
    assert machine.fakes.contexts.current == NAME

    started = _started(machine)
    argv = started.shell_argv().argv
    assert argv[0] == "ssh" and str(started.status.ssh_port) in argv


def test_a_driver_named_in_the_config_is_asked_for(machine: Machine) -> None:
    agent = machine.agent(watch=False)
    assert isinstance(agent.driver(), FakeDriver)
