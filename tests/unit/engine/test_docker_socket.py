"""The host end of the Docker socket, against a stand-in gate on a real TCP socket.

The real gate and engine are in the end-to-end tests; this pins what the host end
owes them: the token line first, the bytes in order, a half-close passed on, and a
socket only its user can open.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
from pathlib import Path

from moorage.engine.docker_socket import DockerSocket, new_token
from moorage.engine.relay import RelayLoop
from tests.helpers.servers import serve_each


def _reversing_gate(listener: socket.socket, token: bytes, seen: list[bytes]) -> None:
    """Many clients at once: each first line is noted, and a client that sent the token
    gets its bytes back reversed after its half-close."""

    def one(conn: socket.socket) -> None:
        with conn:
            f = conn.makefile("rb")
            line = f.readline()
            seen.append(line)
            if line == token:
                conn.sendall(f.read()[::-1])

    serve_each(listener, one)


def test_relays_token_then_bytes_and_passes_on_a_half_close(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[bytes] = []
    token = new_token()
    threading.Thread(
        target=_reversing_gate, args=(listener, token.encode() + b"\n", seen), daemon=True
    ).start()
    path = tmp_path / "docker.sock"
    sock = DockerSocket(RelayLoop("test"), path)
    sock.open(port, token)
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        payload = bytes(range(256)) * 4096
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(path))
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            got = b"".join(iter(lambda: c.recv(65536), b""))
        assert seen == [token.encode() + b"\n"]
        assert got == payload[::-1]
    finally:
        sock.close()
        listener.close()
    assert not path.exists()


def test_a_gate_that_is_not_there_closes_the_client_at_once(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    path = tmp_path / "docker.sock"
    sock = DockerSocket(RelayLoop("test"), path)
    sock.open(port, new_token())
    try:
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(5)
            c.connect(str(path))
            assert c.recv(1) == b""
    finally:
        sock.close()


def test_many_connections_at_once_each_get_every_byte(tmp_path: Path) -> None:
    """Relays idle at the wrong moment were once garbage-collected mid-stream (the loop
    holds tasks weakly); collecting garbage all the while makes that show at once.

    The heap the earlier tests left is frozen first: a full collection of it holds the
    GIL for long enough, late in a whole run, that the relays' 10 s connect timeout
    fired under the collecting thread (CI saw 74 of 80 clients cut off)."""
    gc.freeze()
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    token = new_token()
    threading.Thread(
        target=_reversing_gate, args=(listener, token.encode() + b"\n", []), daemon=True
    ).start()
    path = tmp_path / "docker.sock"
    sock = DockerSocket(RelayLoop("test"), path)
    sock.open(listener.getsockname()[1], token)
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            gc.collect()

    def client(n: int, results: list[bool]) -> None:
        payload = os.urandom(n)
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(path))
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            results.append(b"".join(iter(lambda: c.recv(65536), b"")) == payload[::-1])

    threading.Thread(target=collect, daemon=True).start()
    try:
        results: list[bool] = []
        threads = [
            threading.Thread(target=client, args=((1, 100, 70_000, 1 << 18)[i % 4], results))
            for i in range(80)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results.count(True) == len(threads)
    finally:
        stop.set()
        sock.close()
        listener.close()
        gc.unfreeze()
