"""The machine, end to end: one shared VM; the tests that restart or kill it come last."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .conftest import TEST_IMAGE, Machine, busybox_tar


def test_status_names_state_accel_resources_engine_and_socket(machine: Machine) -> None:
    st = machine.status()
    assert st["state"] == "running"
    assert st["accel"] in ("kvm", "tcg")
    cpus = 2 if st["accel"] == "kvm" else 1  # TCG_VCPUS
    assert (st["cpus"], st["memory_gib"], st["disk_gib"]) == (cpus, 2.0, 64)
    assert str(st["engine_version"]).startswith("26.")
    assert st["docker_socket"] == str(machine.socket)
    text = machine.moorage("status").stdout
    for word in ("running", "accel:", f"{cpus} CPU", "docker 26.", str(machine.socket)):
        assert word in text


def test_sockets_are_private_to_the_user(machine: Machine) -> None:
    for path in (machine.socket, machine.socket.with_name("agent.sock")):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert machine.socket.parent.stat().st_mode & 0o777 == 0o700


def test_docker_cli_and_sdk_reach_the_guest_engine(machine: Machine) -> None:
    out = machine.docker(
        "version", "--format", "{{.Server.Version}} {{.Server.Os}}"
    ).stdout.decode()
    assert out.startswith("26.") and "linux" in out
    ctx = machine.docker("--context", f"moorage-{machine.name}", "info", "--format", "{{.Name}}")
    assert ctx.stdout.decode().strip() == f"moorage-{machine.name}"
    info = machine.client().info()
    assert info["Name"] == f"moorage-{machine.name}"
    env = machine.moorage("docker-env").stdout
    assert env.strip() == f"export DOCKER_HOST=unix://{machine.socket}"


def test_docker_run(machine: Machine) -> None:
    out = machine.docker("run", "--rm", TEST_IMAGE, "sh", "-c", "echo hello-$((6*7)); uname -r")
    lines = out.stdout.decode().split()
    assert lines[0] == "hello-42"
    assert lines[1].startswith("6.")


def test_docker_run_it_in_a_terminal(machine: Machine) -> None:
    env = {**machine.env, "DOCKER_HOST": f"unix://{machine.socket}"}
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("docker", ["docker", "run", "--rm", "-it", TEST_IMAGE, "sh"], env)
    seen = b""

    def read_until(marker: bytes, timeout: float) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
        assert marker in seen, seen[-500:]

    read_until(b"# ", 120)
    os.write(fd, b"echo tty-$((40+2)); tty\r")
    read_until(b"tty-42", 60)
    read_until(b"/dev/pts/", 30)
    os.write(fd, b"exit\r")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_docker_build_uploads_the_context_exactly(machine: Machine, tmp_path: Path) -> None:
    payload = os.urandom(20 << 20)
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "Dockerfile").write_text(
        f"FROM {TEST_IMAGE}\nCOPY payload /payload\nRUN sha256sum /payload > /payload.sha256\n"
    )
    machine.docker("build", "-q", "-t", "moorage-test/built", str(tmp_path), timeout=900)
    out = machine.docker("run", "--rm", "moorage-test/built", "cat", "/payload.sha256").stdout
    assert out.decode().split()[0] == hashlib.sha256(payload).hexdigest()


def test_exec_stdin_and_stdout_are_byte_exact(machine: Machine) -> None:
    machine.docker("run", "-d", "--name", "exec-target", TEST_IMAGE, "sleep", "600")
    try:
        data = os.urandom(4 << 20)
        out = machine.docker("exec", "-i", "exec-target", "cat", input=data).stdout
        assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        machine.docker("rm", "-f", "exec-target")


def test_attach_and_logs_follow_stream_every_line_in_order(machine: Machine) -> None:
    script = "i=0; while [ $i -lt 8 ]; do echo line-$i; i=$((i+1)); sleep 0.5; done"
    cid = (
        machine.docker("run", "-d", TEST_IMAGE, "sh", "-c", f"sleep 3; {script}")
        .stdout.decode()
        .strip()
    )
    try:
        attached = subprocess.Popen(
            ["docker", "attach", "--no-stdin", cid],
            env={**machine.env, "DOCKER_HOST": f"unix://{machine.socket}"},
            stdout=subprocess.PIPE,
        )
        follow = machine.docker("logs", "-f", cid, timeout=120).stdout.decode().split()
        out, _ = attached.communicate(timeout=120)
        want = [f"line-{i}" for i in range(8)]
        assert follow == want
        assert out.decode().split() == want
    finally:
        machine.docker("rm", "-f", cid)


def test_save_and_load_of_a_500mb_image_round_trip_byte_for_byte(
    machine: Machine, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    digest = hashlib.sha256()
    with big.open("wb") as f:
        for _ in range(500):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            f.write(chunk)
    machine.docker("import", "-", "moorage-test/big", input=busybox_tar({"big": big}), timeout=900)
    big.unlink()
    first = tmp_path / "first.tar"
    with first.open("wb") as f:
        subprocess.run(
            ["docker", "save", "moorage-test/big"],
            stdout=f,
            check=True,
            env={**machine.env, "DOCKER_HOST": f"unix://{machine.socket}"},
            timeout=900,
        )
    machine.docker("rmi", "moorage-test/big")
    with first.open("rb") as f:
        subprocess.run(
            ["docker", "load", "-q"],
            stdin=f,
            check=True,
            capture_output=True,
            env={**machine.env, "DOCKER_HOST": f"unix://{machine.socket}"},
            timeout=900,
        )
    api = machine.client().api
    cid = api.create_container("moorage-test/big", "true")["Id"]
    try:
        copy = hashlib.sha256()
        stream, _stat = api.get_archive(cid, "/big")

        archive = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=archive) as tar:
            member = tar.extractfile("big")
            assert member is not None
            while chunk := member.read(1 << 20):
                copy.update(chunk)
        assert copy.hexdigest() == digest.hexdigest()
    finally:
        api.remove_container(cid, force=True)
        machine.docker("rmi", "moorage-test/big")


def test_containers_cannot_reach_the_guests_ssh_server_or_docker_gate(machine: Machine) -> None:
    ping = "GET /_ping HTTP/1.0\\r\\n\\r\\n"
    probe = (
        "timeout 5 sh -c 'echo | nc 10.0.2.15 22' 2>&1; "
        f"timeout 5 sh -c 'printf \"{ping}\" | nc 10.0.2.15 2375' 2>&1; echo done"
    )
    out = machine.docker("run", "--rm", TEST_IMAGE, "sh", "-c", probe).stdout.decode()
    assert "done" in out
    assert "SSH-2.0" not in out and "HTTP/" not in out


def test_the_docker_gate_wants_the_token_only_the_user_can_read(machine: Machine) -> None:
    """The gate's port is on the host's loopback, which every local user can reach."""
    record_file = Path(machine.env["MOORAGE_HOME"]) / "data" / "machines" / machine.name
    record_file /= "runtime.json"
    assert record_file.stat().st_mode & 0o777 == 0o600
    record = json.loads(record_file.read_text())

    def ask(first_line: str) -> bytes:
        with socket.create_connection(("127.0.0.1", record["api_port"]), timeout=20) as s:
            s.sendall(first_line.encode() + b"\n" + b"GET /_ping HTTP/1.0\r\n\r\n")
            try:
                return b"".join(iter(lambda: s.recv(4096), b""))
            except ConnectionResetError:  # closed with our request unread
                return b""

    assert ask("0" * len(record["api_token"])) == b""
    assert ask("GET /_ping HTTP/1.0\r") == b""
    assert ask(record["api_token"]).startswith(b"HTTP/1.0 200 OK")


def test_shell_and_logs(machine: Machine) -> None:
    assert machine.moorage("shell", "cat /etc/hostname").stdout.strip() == f"moorage-{machine.name}"
    assert "moorage: boot done" in machine.moorage("logs", "-n", "200").stdout
    assert "level=" in machine.moorage("logs", "--engine", "-n", "20").stdout


def test_context_use_makes_the_machine_current(machine: Machine) -> None:
    env = {k: v for k, v in machine.env.items() if k != "DOCKER_HOST"}
    try:
        machine.moorage("context", "use")
        shown = subprocess.run(
            ["docker", "context", "show"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert shown == f"moorage-{machine.name}"
        out = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.startswith("26.")
    finally:
        subprocess.run(
            ["docker", "context", "use", "default"], env=env, capture_output=True, check=False
        )


HTTPD = "mkdir -p /www && echo hello-port > /www/index.html && exec httpd -f -p 80 -h /www"


def _http_get(port: int, timeout: float = 60, host: str = "127.0.0.1") -> str:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as r:
                return str(r.read().decode())
        except OSError as exc:
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"nothing answered on {host}:{port}: {last}")


def _host_port_free(port: int) -> bool:
    """Nobody listens there. SO_REUSEADDR: a closed connection's TIME_WAIT is not a listener."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


def test_published_port_answers_on_localhost_and_follows_the_container(machine: Machine) -> None:
    cid = machine.docker("run", "-d", "-p", "18080:80", TEST_IMAGE, "sh", "-c", HTTPD)
    cid_s = cid.stdout.decode().strip()
    try:
        started = time.monotonic()
        assert _http_get(18080).strip() == "hello-port"
        print(f"forward answered {time.monotonic() - started:.2f}s after `docker run -d` returned")
        assert "127.0.0.1:18080/tcp" in machine.status()["ports"]  # type: ignore[operator]
        assert _http_get(18080, host="[::1]").strip() == "hello-port"
        assert not _host_port_free(18080)
        machine.docker("stop", "-t", "1", cid_s)
        _wait(lambda: _host_port_free(18080), 30, "the forward's removal after docker stop")
        machine.docker("start", cid_s)
        assert _http_get(18080).strip() == "hello-port"
    finally:
        machine.docker("rm", "-f", cid_s)
    _wait(lambda: _host_port_free(18080), 30, "the forward's removal after docker rm")


def test_published_udp_port_echoes(machine: Machine) -> None:
    cid = (
        machine.docker("run", "-d", "-p", "15353:9999/udp", TEST_IMAGE, "udp_echo", "9999")
        .stdout.decode()
        .strip()
    )
    try:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                deadline, answer = time.monotonic() + 90, b""
                while time.monotonic() < deadline and not answer:
                    s.sendto(b"udp-echo\n", (host, 15353))
                    try:
                        answer = s.recv(100)
                    except TimeoutError:
                        continue
            assert answer == b"udp-echo\n", host
    finally:
        machine.docker("rm", "-f", cid)


def test_forwarding_is_lossless_in_order_and_passes_half_closes(machine: Machine) -> None:
    """The client sends 4 MiB, shuts down writing, and only then the server answers
    with the digest of all it read: on 127.0.0.1 and on ::1."""
    server = "exec nc -ll -p 80 -e md5sum"
    cid = machine.docker("run", "-d", "-p", "18083:80", TEST_IMAGE, "sh", "-c", server)
    payload = os.urandom(4 << 20)
    want = hashlib.md5(payload).hexdigest().encode()
    try:
        _wait(lambda: not _host_port_free(18083), 60, "the forward")
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            deadline, answer = time.monotonic() + 60, b""
            while time.monotonic() < deadline and want not in answer:
                with socket.socket(family) as s:
                    s.settimeout(60)
                    s.connect((host, 18083))
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    answer = b"".join(iter(lambda: s.recv(65536), b""))
                if want not in answer:
                    time.sleep(1)  # the server may not have been listening yet
            assert want in answer, (host, answer)
    finally:
        machine.docker("rm", "-f", cid.stdout.decode().strip())


def test_busy_host_port_is_reported_and_forwarded_once_free(machine: Machine) -> None:
    hold = socket.socket()
    hold.bind(("127.0.0.1", 18081))
    hold.listen()
    cid = machine.docker("run", "-d", "-p", "18081:80", TEST_IMAGE, "sh", "-c", HTTPD)
    cid_s = cid.stdout.decode().strip()
    try:
        _wait(
            lambda: any("18081" in c for c in machine.status()["port_conflicts"]),  # type: ignore[union-attr]
            60,
            "the conflict report",
        )
        assert "already in use" in machine.moorage("status").stdout
        running = machine.docker("inspect", "-f", "{{.State.Running}}", cid_s).stdout
        assert running.decode().strip() == "true"
        hold.close()
        assert _http_get(18081, timeout=60).strip() == "hello-port"
        assert machine.status()["port_conflicts"] == []
    finally:
        hold.close()
        machine.docker("rm", "-f", cid_s)


def test_one_node_swarm_service_port_reaches_the_routing_mesh(machine: Machine) -> None:
    init = machine.moorage("swarm", "init").stdout
    assert "swarm active" in init
    status = json.loads(machine.moorage("swarm", "status", "--json").stdout)
    assert status["state"] == "active" and status["managers"] == 1
    try:
        machine.docker(
            "service", "create", "--detach", "--name", "web", "-p", "18082:80", TEST_IMAGE,
            "sh", "-c", HTTPD,
        )  # fmt: skip
        assert _http_get(18082, timeout=180).strip() == "hello-port"
        machine.docker("service", "rm", "web")
        _wait(lambda: _host_port_free(18082), 60, "the forward's removal after service rm")
        refused = machine.moorage("swarm", "leave", check=False)
        assert refused.returncode == 1 and "--force" in refused.stderr + refused.stdout
    finally:
        machine.moorage("swarm", "leave", "--force", check=False)


def test_start_is_idempotent(machine: Machine) -> None:
    started = time.monotonic()
    out = machine.moorage("start").stdout
    assert "already running" in out
    assert time.monotonic() - started < 30


# ----- the tests below restart or kill the shared machine ---------------------


def _disk_kib(machine: Machine) -> int:
    out = machine.docker("run", "--rm", TEST_IMAGE, "df", "-k", "/").stdout.decode()
    return int(out.splitlines()[1].split()[1])


def test_volume_survives_restart_and_the_disk_grows(machine: Machine) -> None:
    machine.docker("volume", "create", "keep")
    machine.docker(
        "run", "--rm", "-v", "keep:/data", TEST_IMAGE, "sh", "-c", "echo restart-ok > /data/f"
    )
    before = _disk_kib(machine)
    config = (
        Path(machine.env["MOORAGE_HOME"]) / "config" / "machines" / machine.name / "config.toml"
    )
    config.write_text(config.read_text() + "disk_gib = 72\n")
    # A container that comes back with the engine gets its forward back too, and the
    # shared folders are mounted again.
    machine.docker("run", "-d", "--name", "comes-back", "--restart", "always",
                   "-p", "18084:80", TEST_IMAGE, "sh", "-c", HTTPD)  # fmt: skip
    assert _http_get(18084).strip() == "hello-port"
    machine.moorage("restart")
    out = machine.docker("run", "--rm", "-v", "keep:/data", TEST_IMAGE, "cat", "/data/f").stdout
    assert out.decode().strip() == "restart-ok"
    assert _http_get(18084, timeout=120).strip() == "hello-port"
    assert _http_get(18084, host="[::1]").strip() == "hello-port"
    assert str(Path.home()) in machine.status()["shared_folders"]  # type: ignore[operator]
    assert machine.status()["disk_gib"] == 72
    assert _disk_kib(machine) - before > 7 * 1024 * 1024
    config.write_text(config.read_text().replace("disk_gib = 72\n", "disk_gib = 64\n"))
    proc = machine.moorage("start", check=False)
    assert proc.returncode == 1
    assert (
        "disk_gib = 64 is not allowed; the disk is already 72 GiB and can only grow" in proc.stderr
    )
    # Without the key, the default is the disk's size: nothing to fix by hand.
    config.write_text(config.read_text().replace("disk_gib = 64\n", ""))
    machine.moorage("start")
    machine.docker("rm", "-f", "comes-back")


def _wait_state(machine: Machine, want: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = machine.status()
        if st["state"] == want:
            return st
        time.sleep(0.5)
    raise AssertionError(f"state never became {want!r}: {st}")


def _qemu_pids(machine: Machine) -> list[int]:
    """Hypervisor processes of this machine (its name is on their command line)."""
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = path.read_bytes()
        except OSError:
            continue  # it ended while we looked
        # libvirt names it "-name guest=moorage-NAME,...", the qemu driver "-name moorage-NAME"
        name = re.compile(rb"(^|\0|=)moorage-" + re.escape(machine.name.encode()) + rb"(\0|,|$)")
        if b"qemu-system" in cmdline and name.search(cmdline):
            found.append(int(path.parent.name))
    return found


def test_hypervisor_killed_with_sigkill_is_reported_and_recovered(machine: Machine) -> None:
    machine.docker(
        "run", "--rm", "-v", "sigkill-vm:/data", TEST_IMAGE, "sh", "-c",
        "dd if=/dev/urandom of=/data/blob bs=1M count=4 conv=fsync 2>/dev/null && "
        "sha256sum /data/blob > /data/blob.sha256 && sync",
    )  # fmt: skip
    vm_pid = int(machine.status()["vm_pid"])  # type: ignore[arg-type]
    os.kill(vm_pid, signal.SIGKILL)
    killed = time.monotonic()
    st = _wait_state(machine, "crashed", timeout=30)
    noticed = time.monotonic() - killed
    print(f"the crash was noticed after {noticed:.1f}s")
    assert noticed < 6, f"the crash took {noticed:.1f}s to notice (the bound is 5 s)"
    assert "stopped unexpectedly" in str(st["error"])
    assert "crashed" in machine.moorage("status").stdout
    machine.moorage("start")
    machine.docker("run", "--rm", "-v", "sigkill-vm:/data", TEST_IMAGE,
                   "sha256sum", "-c", "/data/blob.sha256", "-s")  # fmt: skip
    images = machine.docker("images", "--format", "{{.Repository}}").stdout.decode().split()
    assert "moorage-test/busybox" in images


def test_start_at_once_after_the_hypervisor_is_killed_never_reports_a_dead_engine_ready(
    machine: Machine,
) -> None:
    vm_pid = int(machine.status()["vm_pid"])  # type: ignore[arg-type]
    os.kill(vm_pid, signal.SIGKILL)
    proc = machine.moorage("start", check=False)
    out = proc.stdout + proc.stderr
    if proc.returncode == 0:
        assert "already running" not in out
        assert "ready" in out
        # Ready means ready: the engine answers at once, through the host socket.
        machine.docker("info", "--format", "{{.ServerVersion}}", timeout=30)
        machine.docker("run", "--rm", TEST_IMAGE, "true")
    else:
        assert "error:" in out and "Traceback" not in out, out
        machine.moorage("start")


def test_host_agent_killed_with_sigkill_is_reported_and_the_vm_adopted(machine: Machine) -> None:
    machine.docker("run", "-d", "--name", "outlives-agent", "-p", "18085:80", TEST_IMAGE,
                   "sh", "-c", HTTPD)  # fmt: skip
    assert _http_get(18085).strip() == "hello-port"
    st = machine.status()
    agent_pid, vm_pid = int(st["agent_pid"]), int(st["vm_pid"])  # type: ignore[arg-type]
    os.kill(agent_pid, signal.SIGKILL)
    time.sleep(1)
    text = machine.moorage("status").stdout
    assert "host agent is not running, but the VM is" in text
    started = time.monotonic()
    out = machine.moorage("start").stdout
    assert "adopting the running VM" in out
    assert time.monotonic() - started < 90
    assert int(machine.status()["vm_pid"]) == vm_pid  # type: ignore[arg-type]
    machine.docker("run", "--rm", TEST_IMAGE, "true")
    # The new agent took over the forwards of what was running, and follows new ones.
    assert _http_get(18085).strip() == "hello-port"
    assert _http_get(18085, host="[::1]").strip() == "hello-port"
    machine.docker("rm", "-f", "outlives-agent")
    _wait(lambda: _host_port_free(18085), 30, "the forward's removal after docker rm")


def test_delete_after_the_agent_is_killed_stops_the_vm_first(machine: Machine) -> None:
    """Last: it deletes the shared machine."""
    st = machine.status()
    agent_pid = int(st["agent_pid"])  # type: ignore[arg-type]
    assert _qemu_pids(machine), "the machine's hypervisor should run before the test"
    os.kill(agent_pid, signal.SIGKILL)
    time.sleep(1)
    data = Path(machine.env["MOORAGE_HOME"]) / "data" / "machines" / machine.name
    assert (data / "data.img").exists()
    out = machine.moorage("delete", "-y", timeout=300).stdout
    assert f"deleted machine {machine.name!r}" in out
    assert not _qemu_pids(machine), "a hypervisor of the deleted machine is left"
    assert not data.exists()
    log = out.splitlines()
    assert any("stopped" in line for line in log), out
