"""The guest's Docker API as a unix socket on the host, mode 0600.

The agent listens on ``RUNTIME/NAME/docker.sock`` and relays each connection
over QEMU's user-mode network (a forward from the host's 127.0.0.1) to the
docker gate in the guest (``vm/image/guest/docker-gate.pl``), which checks a
per-boot token and joins the stream to the guest's ``/var/run/docker.sock``.
No encryption runs inside the guest: under emulation, SSH's work there made
``docker load`` a third slower than in the guest itself. Who may connect is
decided on the host, by the socket's mode; the forward's loopback port is
useless without the token, which only the user can read. Why and the
figures: docs/architecture.md and docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import socket
from pathlib import Path

from moorage.engine.relay import RelayLoop, splice
from moorage.errors import HostError

CONNECT_TIMEOUT = 10.0


def new_token() -> str:
    """A fresh gate token: 256 random bits, hex (the guest reads it as one line)."""
    return secrets.token_hex(32)


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


class DockerSocket:
    """One host socket, served on the agent's relay loop while the machine runs."""

    def __init__(self, relays: RelayLoop, path: Path) -> None:
        self._relays = relays
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    def open(self, port: int, token: str) -> None:
        """Serve ``path`` (0600), relaying to the gate at 127.0.0.1:``port``."""
        if self._server is not None:
            self.close()
        claim_socket_path(self.path)
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)  # before listen(): nobody can connect in between
        except OSError as exc:
            sock.close()
            raise HostError(
                f"cannot create the Docker socket {self.path}: {exc.strerror}",
                fix="check the permissions of its folder",
            ) from exc
        line = (token + "\n").encode()

        async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError):
                w.transport.abort()
                return
            upstream[1].write(line)
            await splice((r, w), upstream)

        serve = asyncio.start_unix_server(self._relays.held(relay), sock=sock)
        self._server = self._relays.call(serve)

    def close(self) -> None:
        """Stop serving and remove the socket file (connections in flight are dropped);
        a file a killed agent left behind goes too, unless someone else serves it."""
        server, self._server = self._server, None
        if server is not None:
            self._relays.call(self._close(server))
        if not socket_in_use(self.path):
            self.path.unlink(missing_ok=True)

    @staticmethod
    async def _close(server: asyncio.AbstractServer) -> None:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)
