"""The agent's control API end to end: the real server (``agent.server.serve``) on a
unix socket, an agent over fakes behind it, the real client (``api.client``) in front.

The agent runs inside pytest, whose command line is not an agent's, so the pid file
names a stand-in process called ``moorage.agent`` (``liveness()`` reads
``/proc/PID/cmdline`` to tell a live agent from a recycled pid).
"""

from __future__ import annotations

import gc
import socket
import stat
import subprocess
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from moorage.agent.machine import MachineAgent
from moorage.agent.server import _Server, serve
from moorage.api.client import AgentClient
from moorage.api.schema import PHASES, AgentBusy, AgentCrashed, AgentNotRunning, StatSample
from moorage.errors import AgentError, ConfigError, MachineError, MoorageError
from moorage.paths import private_dir
from tests.helpers.fakes import write_config
from tests.unit.agent.conftest import NAME, Machine, idle, wait_until


def _stand_in() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["bash", "-c", "exec -a moorage.agent sleep 600"])
    # Until bash has exec'd, its command line is bash's (and empty for a moment).
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    wait_until(lambda: cmdline.read_bytes().startswith(b"moorage.agent\0"), 5)
    return proc


@dataclass
class Served:
    agent: MachineAgent
    server: _Server
    client: AgentClient


@pytest.fixture
def served(machine: Machine) -> Iterator[Served]:
    agent = machine.agent()
    paths = agent.paths
    private_dir(paths.run)
    server = serve(agent, paths.agent_socket)
    stand_in = _stand_in()
    paths.agent_pid.write_text(f"{stand_in.pid}\n")
    try:
        yield Served(agent, server, AgentClient(NAME))
    finally:
        agent.exit_requested.set()
        agent.events.emit("progress", "the test ends")  # wake the event streams to end
        server.shutdown()
        server.server_close()
        stand_in.kill()
        stand_in.wait()


def test_status(served: Served) -> None:
    client = served.client
    assert client.liveness() == "running"
    assert client.alive()
    status = client.status()
    assert (status.machine, status.state, status.api) == (NAME, "stopped", 1)
    assert status.agent_pid == served.agent.status.agent_pid
    assert client.status_or_files().state == "stopped"


def test_start_and_follow_events_to_ready_then_stop(served: Served, machine: Machine) -> None:
    client = served.client
    accepted = client.request("start")
    assert accepted.op == "start"
    events = list(client.follow(accepted))
    assert events[-1].kind == "ready", events[-1]
    assert [e.phase for e in events if e.kind == "phase"] == list(PHASES)
    wait_until(lambda: idle(served.agent))
    status = client.status()
    assert status.state == "running"
    assert status.vm_pid == machine.fakes.driver.procs[NAME].pid
    shell = client.shell()
    assert shell.argv[0] == "ssh"

    stop = client.request("stop")
    done = list(client.follow(stop))
    assert done[-1].kind == "done" and done[-1].op == "stop"
    wait_until(lambda: idle(served.agent))
    assert client.status().state == "stopped"


def test_a_config_error_arrives_typed_with_its_problems(served: Served, machine: Machine) -> None:
    write_config(machine.paths, cpus=99, image="windows")
    with pytest.raises(ConfigError) as info:
        served.client.request("start")
    problems = info.value.problems
    assert len(problems) == 2
    assert any("cpus" in p for p in problems) and any("image" in p for p in problems)
    assert info.value.source == str(machine.paths.config_file)
    with pytest.raises(ConfigError):
        served.client.validate_config({"memory_gib": -1})


def test_config_can_be_read_and_written(served: Served) -> None:
    client = served.client
    view = client.write_config({"mounts": [], "disk_gib": 8, "cpus": 1})
    assert view.values["cpus"] == 1
    assert client.config().values["mounts"] == []
    assert any(option["key"] == "cpus" for option in view.schema)
    client.validate_config({"cpus": 2, "mounts": []})
    client.use_context()


def test_errors_from_the_machine_arrive_typed(served: Served) -> None:
    with pytest.raises(MachineError, match="is stopped"):
        served.client.shell()
    with pytest.raises(MachineError, match="is stopped"):
        list(served.client.engine_log(10, follow=False))


def test_an_unknown_route_is_not_found(served: Served) -> None:
    with pytest.raises(AgentError, match="no such endpoint: GET /v1/nope"):
        served.client._request("GET", "/v1/nope")
    with served.client._client(5) as http:
        answer = http.get("/v1/nope")
        assert answer.status_code == 404
        assert answer.json()["api"] == 1
        assert answer.json()["error"]["code"] == "not-found"
        bad = http.post("/v1/config/validate", content=b"{not json")
        assert bad.status_code == 500
        assert bad.json()["error"]["code"] == "agent"


def test_an_operation_that_cannot_join_is_busy(served: Served, machine: Machine) -> None:
    client = served.client
    accepted = client.request("start")
    list(client.follow(accepted))
    gate = machine.fakes.guests.poweroff_gate = threading.Event()
    stop = client.request("stop")  # the guest takes its time to power off
    wait_until(lambda: client.status().state == "stopping")
    try:
        with client._client(5) as http:
            answer = http.post("/v1/start")
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "busy")
        with pytest.raises(AgentError, match="busy with stop"):
            client.request("reset")
        assert client.request("stop").op == "stop"  # a second stop joins the first
    finally:
        gate.set()
    done = list(client.follow(stop))
    assert done[-1].op == "stop"


def test_the_doctor_answers(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("moorage.agent.doctor.accel.find_qemu", lambda: None)
    doctor = served.client.doctor(kvm_only=True)
    assert (doctor.accel, doctor.checks) == ("tcg", [])
    full = served.client.doctor()
    assert {c.name for c in full.checks} == {"qemu", "kvm", "driver", "docker", "disk"}
    assert next(c for c in full.checks if c.name == "driver").ok


def test_stats_of_a_stopped_machine_are_empty_and_of_a_running_one_fill(
    served: Served, machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("moorage.agent.stats.FIRST_GAP", 0.01)
    client = served.client
    stopped = client.stats()
    assert (stopped.machine, stopped.samples, stopped.api) == (NAME, [], 1)
    assert not served.agent.sampler.sampling

    list(client.follow(client.request("start")))
    wait_until(lambda: idle(served.agent))
    served.agent.sampler.interval = 0.02
    wait_until(lambda: len(client.stats().samples) >= 2, why="samples over the API")
    answer = client.stats()
    assert isinstance(answer.samples[0], StatSample)
    assert (answer.samples[-1].cpu_percent, answer.samples[-1].memory_used_mib) == (25.0, 512.0)
    assert (answer.cpus, answer.memory_mib) == (1, 2048)
    assert answer.samples == sorted(answer.samples, key=lambda s: s.t)


def test_diagnose_writes_a_private_bundle(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("moorage.agent.diagnostics.tool_version", lambda argv: "fake 1.0")
    paths = served.agent.paths
    private_dir(paths.state)
    paths.agent_log.write_text("join with SWMTKN-1-abcdefghijklmnopqrstuvwxyz0123-abcdefghij\n")
    report = served.client.diagnostics()
    path = Path(report.path)
    assert path.parent == paths.state and path.name.startswith("diagnostics-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert report.size == path.stat().st_size
    assert "versions.txt" in report.contents and "agent.log" in report.contents
    assert report.scrubbed == 1
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted(report.contents)
        assert "abcdefghijklmnopqrstuvwxyz0123" not in z.read("agent.log").decode()


# ----- an agent that is not there, dead, or hung --------------------------------------


T = TypeVar("T")


def unreachable(call: Callable[[], T]) -> tuple[MoorageError | None, T | None]:
    """``call()``'s error (its traceback dropped) or answer. httpcore 1.0 leaves the socket
    of a failed unix-socket connect for the garbage collector, whose ResourceWarning
    would fail the test (``filterwarnings = error``): collect it here, where it is
    ignored."""
    error: MoorageError | None = None
    answer: T | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            answer = call()
        except MoorageError as exc:
            error = exc.with_traceback(None)
            error.__cause__ = error.__context__ = None
        gc.collect()
    return error, answer


def test_no_pid_file_and_no_socket_is_not_running(machine: Machine) -> None:
    client = AgentClient(NAME)
    assert client.liveness() == "absent"
    error, _ = unreachable(client.status)
    assert isinstance(error, AgentNotRunning)
    assert error.fix and "moorage start" in error.fix
    _, status = unreachable(client.status_or_files)
    assert status is not None and (status.state, status.error) == ("stopped", None)


def test_a_pid_file_naming_a_dead_process_is_crashed(machine: Machine) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    private_dir(machine.paths.run)
    machine.paths.agent_pid.write_text(f"{dead.pid}\n")
    client = AgentClient(NAME)
    assert client.liveness() == "crashed"
    error, _ = unreachable(client.status)
    assert isinstance(error, AgentCrashed)
    assert f"pid {dead.pid}" in error.message
    _, status = unreachable(client.status_or_files)
    assert status is not None and (status.error or "").startswith(error.message)


def test_an_agent_that_accepts_but_never_answers_is_busy(machine: Machine) -> None:
    paths = machine.paths
    private_dir(paths.run)
    stop = threading.Event()
    held: list[socket.socket] = []
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(paths.agent_socket))
        listener.listen()
        listener.settimeout(0.05)

        def accept_and_sleep() -> None:
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except TimeoutError:
                    continue

        acceptor = threading.Thread(target=accept_and_sleep)
        acceptor.start()
        stand_in = _stand_in()
        paths.agent_pid.write_text(f"{stand_in.pid}\n")
        try:
            client = AgentClient(NAME)
            with pytest.raises(AgentBusy, match="does not answer"):
                client._request("GET", "/v1/status", timeout=0.3)
            assert held, "the client never reached the socket"
        finally:
            stop.set()
            acceptor.join()
            for conn in held:
                conn.close()
            stand_in.kill()
            stand_in.wait()


def test_a_client_outside_the_api_gets_an_agent_error(machine: Machine) -> None:
    """Something else answers on the socket, not JSON: an AgentError, not a traceback."""
    paths = machine.paths
    private_dir(paths.run)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(paths.agent_socket))
        listener.listen()

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")

        t = threading.Thread(target=answer)
        t.start()
        with pytest.raises(AgentError, match="not JSON"):
            AgentClient(NAME)._request("GET", "/v1/status", timeout=2)
        t.join()
