"""Byte-stream relays in the agent: one asyncio loop in one thread carries them all.

Both the Docker socket (``docker_socket``) and the IPv6 twins of published
ports (``v6_relay``) pass streams through here: in order, nothing dropped, and
a half-close passed on (a client that shuts down writing still gets its reply).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

CHUNK = 256 * 1024
T = TypeVar("T")


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF, then half-close ``writer``."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Both directions between two streams until both have ended; then close both."""
    try:
        await asyncio.gather(pipe(a[0], b[1]), pipe(b[0], a[1]))
    finally:
        for _r, w in (a, b):
            w.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


class RelayLoop:
    """An event loop in a daemon thread; the agent's other threads hand it work."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        # The loop keeps only weak references to tasks, and Python 3.11's stream servers
        # none to the ones they start per connection: without these, a relay idle in
        # the wrong place was garbage-collected mid-stream and its client got nothing.
        self._tasks: set[asyncio.Task[None]] = set()
        threading.Thread(target=self.loop.run_forever, name=name, daemon=True).start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def held(
        self, handler: Handler
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]:
        """``handler`` as a stream server's callback whose task lives until it ends."""

        def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = self.loop.create_task(handler(r, w))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return on_client
