"""Host sockets that reach a node (or a node's port) through the gate: against a
stand-in gate that answers ``ok`` for the targets that live, and closes for the rest."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from moorage.engine.gate_relay import Gate, RoutedServer
from moorage.engine.relay import RelayLoop
from tests.helpers.servers import serve_each

TOKEN = "ab" * 32


def _gate(listener: socket.socket, alive: set[str], seen: list[str]) -> None:
    def one(conn: socket.socket) -> None:
        with conn:
            f = conn.makefile("rb")
            token, _, route = f.readline().decode().rstrip("\n").partition(" ")
            seen.append(route)
            if token != TOKEN or route not in alive:
                return
            conn.sendall(b"ok\n")
            data = b"".join(iter(lambda: f.read1(65536), b""))
            conn.sendall(route.encode() + b":" + data)

    serve_each(listener, one)


@pytest.fixture
def gate() -> tuple[Gate, set[str], list[str]]:
    listener = socket.create_server(("127.0.0.1", 0))
    alive: set[str] = set()
    seen: list[str] = []
    threading.Thread(target=_gate, args=(listener, alive, seen), daemon=True).start()
    return Gate(listener.getsockname()[1], TOKEN), alive, seen


def _ask(family: int, address: object) -> bytes:
    with socket.socket(family) as c:
        c.settimeout(10)
        c.connect(address)
        c.sendall(b"ping")
        c.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: c.recv(65536), b""))


def test_the_first_target_that_answers_gets_the_connection(
    gate: tuple[Gate, set[str], list[str]], tmp_path: Path
) -> None:
    g, alive, seen = gate
    alive.add("node c1-m2")
    server = RoutedServer(RelayLoop("t"), lambda: g, lambda: ["node c1-m1", "node c1-m2"])
    path = tmp_path / "c1.sock"
    server.serve_unix(path)
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        assert _ask(socket.AF_UNIX, str(path)) == b"node c1-m2:ping"
        assert seen == ["node c1-m1", "node c1-m2"]
    finally:
        server.close()
    assert not path.exists()


def test_when_no_target_answers_the_client_is_closed(
    gate: tuple[Gate, set[str], list[str]], tmp_path: Path
) -> None:
    g, _alive, _seen = gate
    server = RoutedServer(RelayLoop("t"), lambda: g, lambda: ["node c1-m1"])
    server.serve_unix(tmp_path / "c1.sock")
    try:
        assert _ask(socket.AF_UNIX, str(tmp_path / "c1.sock")) == b""
    finally:
        server.close()


def test_routes_are_asked_for_each_connection(gate: tuple[Gate, set[str], list[str]]) -> None:
    g, alive, _seen = gate
    alive.update({"tcp 172.30.1.11 8080", "tcp 172.30.1.12 8080"})
    order = [["tcp 172.30.1.11 8080"]]
    server = RoutedServer(RelayLoop("t"), lambda: g, lambda: order[0])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server.serve_tcp(["127.0.0.1"], port)
    try:
        assert _ask(socket.AF_INET, ("127.0.0.1", port)) == b"tcp 172.30.1.11 8080:ping"
        order[0] = ["tcp 172.30.1.12 8080"]  # the first node died; the watch saw it
        assert _ask(socket.AF_INET, ("127.0.0.1", port)) == b"tcp 172.30.1.12 8080:ping"
        other = RoutedServer(RelayLoop("t2"), lambda: g, lambda: [])
        with pytest.raises(OSError):
            other.serve_tcp(["127.0.0.1"], port)  # taken: the caller reports a conflict
    finally:
        server.close()
