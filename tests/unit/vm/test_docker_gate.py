"""The guest's docker gate (``vm/image/guest/docker-gate.pl``), run here on the host
with the same perl, against stand-in targets: the machine's engine, a swarm node's
socket and a TCP port. What it owes the host agent: nothing without the token; the
bytes after the first line reach the target; a named target says ``ok`` once
connected, and a dead one closes the connection so the agent tries the next."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from tests.helpers.servers import serve_each

TOKEN = "ab" * 32


def _echo(listener: socket.socket, prefix: bytes) -> None:
    """Answer every client with ``prefix`` and then what it sent, until it half-closes."""

    def one(conn: socket.socket) -> None:
        with conn:
            data = b"".join(iter(lambda: conn.recv(65536), b""))
            conn.sendall(prefix + data)

    serve_each(listener, one)


def _unix_echo(path: Path, prefix: bytes) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen()
    threading.Thread(target=_echo, args=(s, prefix), daemon=True).start()
    return s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """(gate port, a TCP echo port) with the machine's engine and node ``n1`` behind it."""
    perl = shutil.which("perl")
    if perl is None:
        pytest.fail("perl is not installed (Debian's perl-base is essential)")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    servers = [
        _unix_echo(tmp_path / "docker.sock", b"engine:"),
        _unix_echo(tmp_path / "nodes" / "n1" / "docker.sock", b"n1:"),
    ]
    tcp = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_echo, args=(tcp, b"tcp:"), daemon=True).start()
    port = _free_port()
    script = resources.files("moorage.vm.image") / "guest" / "docker-gate.pl"
    args = [str(port), str(token_file), str(tmp_path / "docker.sock"), str(tmp_path / "nodes")]
    proc = subprocess.Popen([perl, str(script), *args, "127.0.0."])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, int(tcp.getsockname()[1])
    finally:
        proc.kill()
        proc.wait()
        for s in [*servers, tcp]:
            s.close()


def _talk(port: int, first: bytes, body: bytes = b"hello") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(first + body)  # one write: the gate must pass on what follows the line
        c.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: c.recv(65536), b""))


def test_the_token_alone_reaches_the_machines_engine_with_no_answer_line(
    gate: tuple[int, int],
) -> None:
    assert _talk(gate[0], TOKEN.encode() + b"\n") == b"engine:hello"


def test_without_the_token_nothing_is_reached(gate: tuple[int, int]) -> None:
    assert _talk(gate[0], b"cd" * 32 + b"\n") == b""
    assert _talk(gate[0], b"\n") == b""
    assert _talk(gate[0], b"ab" * 31 + b" node n1\n") == b""


def test_a_node_is_reached_after_an_ok(gate: tuple[int, int]) -> None:
    assert _talk(gate[0], TOKEN.encode() + b" node n1\n") == b"ok\nn1:hello"


def test_a_missing_node_or_a_bad_name_closes_without_ok(gate: tuple[int, int]) -> None:
    assert _talk(gate[0], TOKEN.encode() + b" node n2\n") == b""
    assert _talk(gate[0], TOKEN.encode() + b" node ../n1\n") == b""


def test_a_cluster_tcp_port_is_reached_after_an_ok(gate: tuple[int, int]) -> None:
    port, echo = gate
    assert _talk(port, TOKEN.encode() + f" tcp 127.0.0.1 {echo}\n".encode()) == b"ok\ntcp:hello"


def test_tcp_outside_the_cluster_range_or_refused_closes_without_ok(
    gate: tuple[int, int],
) -> None:
    port, echo = gate
    assert _talk(port, TOKEN.encode() + f" tcp 10.0.2.2 {echo}\n".encode()) == b""
    assert _talk(port, TOKEN.encode() + f" tcp 127.0.0.1 {_free_port()}\n".encode()) == b""


def test_a_large_stream_passes_whole_through_a_named_target(gate: tuple[int, int]) -> None:
    port, echo = gate
    body = bytes(range(256)) * 8192  # 2 MiB: many reads, back-pressure both ways
    got = _talk(port, TOKEN.encode() + f" tcp 127.0.0.1 {echo}\n".encode(), body)
    assert got == b"ok\ntcp:" + body
