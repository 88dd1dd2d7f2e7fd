"""One SSH connection from the host agent to its guest, over OpenSSH.

The agent keeps a single ``ssh -M`` master per machine: its own commands
(readiness, clock, poweroff, the sshfs fallback) run through the master's
control socket without a new handshake. The Docker API does not go this way
(``engine.docker_socket``). OpenSSH rather than paramiko: it costs the agent
no memory (importing paramiko alone added 20 MB to the agent's RSS, a third of
its budget; docs/benchmarks.md), and ``moorage shell`` uses the same client.

The guest's host key is made on the host and pinned (see ``vm.provision``):
an unknown or changed key is refused, never accepted on first use. The
guest's sshd is reached only through a forward on the host's 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import EngineError

USER = "root"
SSH_FAILED = 255


@dataclass(frozen=True)
class GuestAddress:
    machine: str
    port: int
    key: Path
    known_hosts: Path

    @property
    def alias(self) -> str:
        """The name the pinned host key is filed under, whatever the port is this boot."""
        return f"moorage-{self.machine}"


def write_known_hosts(path: Path, alias: str, host_public_line: str) -> None:
    key_type, key_b64 = host_public_line.split()[:2]
    path.write_text(f"{alias} {key_type} {key_b64}\n")
    path.chmod(0o600)


def openssh_args(addr: GuestAddress) -> list[str]:
    """Options for the OpenSSH client: ignore the user's ssh config, trust only the pinned key."""
    return [
        "-F", "/dev/null",
        "-i", str(addr.key),
        "-p", str(addr.port),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={addr.known_hosts}",
        "-o", f"HostKeyAlias={addr.alias}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR",
        f"{USER}@127.0.0.1",
    ]  # fmt: skip


class GuestSSH:
    """The agent's SSH master to one guest, with the pid recorded so that an agent
    killed -9 and started again ends the orphan before it makes its own."""

    def __init__(self, addr: GuestAddress, run_dir: Path) -> None:
        self.addr = addr
        self.control = run_dir / "ssh.ctl"
        self.log = run_dir / "ssh-master.log"
        self.pid_file = run_dir / "ssh.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    def _master_argv(self) -> list[str]:
        return [
            "ssh", "-N", "-M", "-S", str(self.control),
            "-o", "ControlPersist=no",
            "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=10",
            "-o", "ServerAliveCountMax=6",
            *openssh_args(self.addr),
        ]  # fmt: skip

    def client_argv(self, *extra: str) -> list[str]:
        """An ssh command line that goes through the master; append a command to run it."""
        return ["ssh", "-S", str(self.control), "-o", "ControlMaster=no", *extra,
                *openssh_args(self.addr)]  # fmt: skip

    def _end_orphan(self) -> None:
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            pid, cmdline = 0, b""
        if pid and str(self.control).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        self.control.unlink(missing_ok=True)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def connect(self, deadline: float, give_up: Callable[[], bool] = lambda: False) -> None:
        """Open the master, retrying until ``deadline`` (monotonic) while the guest boots,
        or until ``give_up()`` says the caller no longer wants it."""
        self.close()
        self._end_orphan()
        last = ""
        while time.monotonic() < deadline and not give_up():
            # stderr to a file, never a pipe nobody reads: a full pipe would freeze the master.
            with self.log.open("ab") as log:
                self._proc = subprocess.Popen(
                    self._master_argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=log,
                )  # fmt: skip
            self.pid_file.write_text(f"{self._proc.pid}\n")
            while self._proc.poll() is None and time.monotonic() < deadline and not give_up():
                check = subprocess.run(
                    self.client_argv("-O", "check"), capture_output=True, check=False
                )
                if check.returncode == 0:
                    return
                time.sleep(0.2)
            last = _tail(self.log) or last
            if "REMOTE HOST IDENTIFICATION HAS CHANGED" in last or "Host key verification" in last:
                raise EngineError(
                    "the guest's SSH host key is not the one moorage made for it; refusing to "
                    "connect",
                    fix="`moorage restart` boots the machine with its own key again",
                )
            time.sleep(0.5)
        self.close()
        raise EngineError(f"the guest's SSH server did not answer in time: {last or 'no answer'}")

    def run(self, command: str, timeout: float = 60) -> tuple[int, str]:
        """Run ``command`` in the guest; return (exit status, combined output)."""
        try:
            proc = subprocess.run(
                [*self.client_argv(), command], stdin=subprocess.DEVNULL, capture_output=True,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EngineError(
                f"command in the guest timed out after {timeout:.0f}s: {command!r}"
            ) from exc
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        if proc.returncode == SSH_FAILED and not self.alive():
            raise EngineError(f"the SSH connection to the guest is gone: {out.strip()}")
        return proc.returncode, out

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                subprocess.run(self.client_argv("-O", "exit"), capture_output=True, check=False)
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
            self.pid_file.unlink(missing_ok=True)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
