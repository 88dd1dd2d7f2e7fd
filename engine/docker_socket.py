"""The guest's Docker API as a unix socket on the host, mode 0600.

Carried by an OpenSSH ``-L local.sock:/var/run/docker.sock`` forward that the
host agent supervises. Why OpenSSH and not paramiko: the stream path is the
hottest one moorage has (`docker load` of a 500 MB image, build contexts,
`logs -f`), OpenSSH moves it in C with one process for all connections and
handles half-close exactly, where a paramiko forwarder costs a Python thread
per connection and a GIL-bound copy loop. The figures are in docs/benchmarks.md.

``StreamLocalBindMask=0177`` makes ssh create the socket 0600; the folder
around it is 0700 as well.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from moorage.engine.ssh import GuestAddress, openssh_args
from moorage.errors import EngineError, HostError

GUEST_SOCKET = "/var/run/docker.sock"


def socket_in_use(path: Path) -> bool:
    """True when something accepts connections on ``path``."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
            return True
        except OSError as exc:
            return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)


def claim_socket_path(path: Path) -> None:
    """Remove a stale socket; refuse when a live one belongs to someone else."""
    if not path.exists() and not path.is_symlink():
        return
    if socket_in_use(path):
        raise HostError(
            f"the Docker socket path {path} is already in use by another process",
            fix=f"stop whatever listens there (lsof {path}), then `moorage start` again",
        )
    path.unlink()


class SocketForwarder:
    """Keeps one ``ssh -N -L`` process alive for the agent."""

    def __init__(self, addr: GuestAddress, host_socket: Path) -> None:
        self.addr = addr
        self.host_socket = host_socket
        # The ssh pid is recorded so that an agent that was killed -9 and started
        # again ends the orphan still holding the socket before making its own.
        self.pid_file = host_socket.with_suffix(".ssh.pid")
        self._proc: subprocess.Popen[bytes] | None = None

    def _end_orphan(self) -> None:
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.host_socket).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def argv(self) -> list[str]:
        return [
            "ssh",
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "StreamLocalBindUnlink=yes",
            "-o",
            "StreamLocalBindMask=0177",
            "-o",
            "ServerAliveInterval=10",
            "-o",
            "ServerAliveCountMax=3",
            "-L",
            f"{self.host_socket}:{GUEST_SOCKET}",
            *openssh_args(self.addr),
        ]

    def start(self, timeout: float = 20) -> None:
        self.stop()
        self._end_orphan()
        claim_socket_path(self.host_socket)
        self._proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise EngineError(
                    f"the Docker socket forward failed: {err.strip() or 'ssh exited'}"
                )
            if socket_in_use(self.host_socket):
                os.chmod(self.host_socket, 0o600)
                return
            time.sleep(0.05)
        raise EngineError(f"the Docker socket forward did not come up in {timeout:.0f}s")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None
            self.pid_file.unlink(missing_ok=True)
        if self.host_socket.exists() and not socket_in_use(self.host_socket):
            self.host_socket.unlink(missing_ok=True)
