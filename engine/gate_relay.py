"""Host sockets that reach a swarm node, or a port a node serves, through the guest's
docker gate (``vm/image/guest/docker-gate.pl``).

A cluster's nodes are containers in the machine's VM, on a bridge network that only
the guest can reach. The gate already carries the machine's Docker socket; its first
line can also name ``node NAME`` (that node's engine socket) or ``tcp ADDR PORT`` (a
port of a cluster address), and it answers ``ok`` once that target is connected. So
one kind of relay serves all three of a cluster's ways in from the host:

- a node's own engine (``RUNTIME/NAME/nodes/NODE.sock``);
- the cluster's engine, through any manager that answers (the cluster's docker
  context): when the leader dies, the next connection goes to another manager;
- a routing-mesh port on the host's loopback, served through any live node.

Which targets to try, in order, is asked anew for every connection (``Routes``); the
choice itself is the swarm layer's (``swarm/observe.py``). A target that closes
without ``ok`` is passed over for the next; when none answers, the client's
connection is closed, which the docker CLI reports as it reports a stopped engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from moorage.engine.docker_socket import CONNECT_TIMEOUT, claim_socket_path
from moorage.engine.relay import RelayLoop, splice
from moorage.errors import HostError

log = logging.getLogger("moorage.gate")

ANSWER_TIMEOUT = 5.0
"""How long a named target may take to say ``ok`` (the gate's own TCP connect
gives up after 3 s)."""


@dataclass(frozen=True)
class Gate:
    """Where the machine's gate answers on the host, and its per-boot token."""

    port: int
    token: str


Routes = Callable[[], Sequence[str]]
"""The gate targets to try for one new connection, best first: ``node NAME`` or
``tcp ADDR PORT``."""


async def open_route(
    gate: Gate, route: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A stream to ``route`` through the gate, or None when the target is not there."""
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", gate.port), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError):
        return None
    w.write(f"{gate.token} {route}\n".encode())
    try:
        answer = await asyncio.wait_for(r.readline(), ANSWER_TIMEOUT)
    except (OSError, TimeoutError):
        answer = b""
    if answer != b"ok\n":
        w.transport.abort()
        return None
    return r, w


class RoutedServer:
    """One listener (a unix socket, or TCP addresses) whose connections go to the first
    of ``routes()`` that answers. Runs on the agent's relay loop."""

    def __init__(self, relays: RelayLoop, gate: Callable[[], Gate | None], routes: Routes) -> None:
        self._relays = relays
        self._gate = gate
        self._routes = routes
        self._servers: list[asyncio.AbstractServer] = []
        self._path: Path | None = None

    async def _relay(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        gate = self._gate()
        upstream = None
        if gate is not None:
            for route in self._routes():
                upstream = await open_route(gate, route)
                if upstream is not None:
                    break
                log.info("gate target %s did not answer; trying the next", route)
        if upstream is None:
            w.transport.abort()
            return
        await splice((r, w), upstream)

    def serve_unix(self, path: Path) -> None:
        """Serve ``path``, mode 0600 before it listens (its folder should be 0700)."""
        claim_socket_path(path)
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(path))
            os.chmod(path, 0o600)  # before listen(): nobody can connect in between
        except OSError as exc:
            sock.close()
            raise HostError(
                f"cannot create the socket {path}: {exc.strerror}",
                fix="check the permissions of its folder",
            ) from exc
        self._path = path
        serve = asyncio.start_unix_server(self._relays.held(self._relay), sock=sock)
        self._servers.append(self._relays.call(serve))

    def serve_tcp(self, hosts: Sequence[str], port: int) -> None:
        """Listen on ``port`` of each of ``hosts``; raises OSError when one is taken
        (then none is kept)."""

        async def listen() -> list[asyncio.AbstractServer]:
            made: list[asyncio.AbstractServer] = []
            try:
                for host in hosts:
                    family = socket.AF_INET6 if ":" in host else socket.AF_INET
                    made.append(
                        await asyncio.start_server(
                            self._relays.held(self._relay), host, port, family=family
                        )
                    )
            except OSError:
                for server in made:
                    server.close()
                raise
            return made

        self._servers += self._relays.call(listen())

    def close(self) -> None:
        servers, self._servers = self._servers, []
        if servers:
            self._relays.call(self._close(servers))
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    @staticmethod
    async def _close(servers: list[asyncio.AbstractServer]) -> None:
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)
