"""The guest's Docker API as a unix socket on the host, mode 0600.

A forward of the agent's SSH master (``engine.ssh``) from
``RUNTIME/NAME/docker.sock`` to the guest's ``/var/run/docker.sock``: OpenSSH
carries the stream in C, many connections at once, half-closes exact. The
master creates the socket 0600 (``StreamLocalBindMask=0177``) inside a 0700
folder. Why this mechanism: docs/architecture.md and docs/benchmarks.md.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

from moorage.engine.ssh import GuestSSH
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


def forward_docker_socket(ssh: GuestSSH, host_socket: Path, timeout: float = 10) -> None:
    """Make the guest's Docker socket answer at ``host_socket``."""
    claim_socket_path(host_socket)
    ssh.forward_unix(host_socket, GUEST_SOCKET)
    deadline = time.monotonic() + timeout
    while not socket_in_use(host_socket):
        if time.monotonic() > deadline:
            raise EngineError(f"the Docker socket forward did not come up in {timeout:.0f}s")
        time.sleep(0.05)
    os.chmod(host_socket, 0o600)


def remove_docker_socket(host_socket: Path) -> None:
    if host_socket.exists() and not socket_in_use(host_socket):
        host_socket.unlink(missing_ok=True)
