"""Published ports on the host's IPv6 loopback (``::1``), next to 127.0.0.1.

QEMU's user-mode network (7.2) can only listen on IPv4 host addresses, so
each forward gets an IPv6 twin here, in the agent: a listener on ``::1`` (or
``::`` when ports are exposed) that relays to the forward's 127.0.0.1 side.
TCP is relayed as a byte stream in order, with half-closes passed on (a
client that shuts down writing still gets its reply); UDP per client address,
replies going back to the address they answer.

The agent's relay loop (``engine.relay``) carries every twin. A twin that cannot be
made (IPv6 off, the port taken on ``::1``) is logged and skipped: the IPv4
forward is what the port's status stands for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from typing import Any

from moorage.engine.relay import RelayLoop, splice
from moorage.types import Forward

log = logging.getLogger("moorage.v6relay")
TARGET = "127.0.0.1"
UDP_IDLE = 120.0


def twin_address(forward: Forward) -> str:
    """The IPv6 address that stands beside the forward's IPv4 one."""
    return "::" if forward.host_addr == "0.0.0.0" else "::1"  # noqa: S104 - mirrors the forward


async def _relay_tcp(
    port: int, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
) -> None:
    try:
        upstream = await asyncio.open_connection(TARGET, port)
    except OSError:
        client_w.transport.abort()
        return
    await splice((client_r, client_w), upstream)


class _UdpUpstream(asyncio.DatagramProtocol):
    def __init__(self, listener: asyncio.DatagramTransport, client: Any) -> None:
        self.listener, self.client = listener, client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = asyncio.get_running_loop().time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.last = asyncio.get_running_loop().time()
        self.listener.sendto(data, self.client)


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, port: int) -> None:
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[Any, _UdpUpstream] = {}
        self._pending: dict[Any, list[bytes]] = {}
        self._opening: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        up = self.upstreams.get(addr)
        if up is not None and up.transport is not None:
            up.last = asyncio.get_running_loop().time()
            up.transport.sendto(data)
        elif addr in self._pending:
            self._pending[addr].append(data)  # kept in order until the upstream exists
        else:
            self._pending[addr] = [data]
            task = asyncio.ensure_future(self._open(addr))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _open(self, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        listener = self.transport
        try:
            _t, up = await loop.create_datagram_endpoint(
                lambda: _UdpUpstream(listener, addr), remote_addr=(TARGET, self.port)
            )
        except OSError:
            self._pending.pop(addr, None)
            return
        self.upstreams[addr] = up
        for data in self._pending.pop(addr, []):
            assert up.transport is not None
            up.transport.sendto(data)

    def expire(self, now: float) -> None:
        for addr, up in list(self.upstreams.items()):
            if now - up.last > UDP_IDLE and up.transport is not None:
                up.transport.close()
                del self.upstreams[addr]

    def close(self) -> None:
        for up in self.upstreams.values():
            if up.transport is not None:
                up.transport.close()
        if self.transport is not None:
            self.transport.close()


class V6Relay:
    def __init__(self, relays: RelayLoop) -> None:
        self._relays = relays
        self._loop = relays.loop
        self._open: dict[Forward, asyncio.AbstractServer | _UdpListener] = {}
        asyncio.run_coroutine_threadsafe(self._expire_udp(), self._loop)

    async def _expire_udp(self) -> None:
        while True:
            await asyncio.sleep(UDP_IDLE / 4)
            for relay in self._open.values():
                if isinstance(relay, _UdpListener):
                    relay.expire(self._loop.time())

    def add(self, forward: Forward) -> None:
        if forward in self._open:
            return
        try:
            self._open[forward] = self._relays.call(self._listen(forward))
        except OSError as exc:
            log.warning("no IPv6 twin for %s: %s", forward, exc)

    async def _listen(self, forward: Forward) -> asyncio.AbstractServer | _UdpListener:
        host, port = twin_address(forward), forward.host_port
        if forward.proto == "tcp":
            return await asyncio.start_server(
                self._relays.held(functools.partial(_relay_tcp, port)),
                host,
                port,
                family=socket.AF_INET6,
            )
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        _t, listener = await self._loop.create_datagram_endpoint(
            lambda: _UdpListener(port), sock=sock
        )
        return listener

    def remove(self, forward: Forward) -> None:
        relay = self._open.pop(forward, None)
        if relay is not None:
            self._relays.call(self._close(relay))

    async def _close(self, relay: asyncio.AbstractServer | _UdpListener) -> None:
        relay.close()
        if isinstance(relay, asyncio.AbstractServer):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(relay.wait_closed(), 1)

    def clear(self) -> None:
        for forward in list(self._open):
            self.remove(forward)
