"""One tray per user: the second launch finds the first through its socket."""

from __future__ import annotations

import socket
import stat
import threading
from pathlib import Path
from typing import Any

from pytestqt.qtbot import QtBot

from moorage.desktop import ipc
from moorage.paths import runtime_dir


def send_async(request: dict[str, Any], path: Path) -> list[dict[str, Any] | None]:
    """``ipc.send`` on a thread, so the server in this thread's event loop can answer."""
    answers: list[dict[str, Any] | None] = []
    threading.Thread(target=lambda: answers.append(ipc.send(request, path)), daemon=True).start()
    return answers


def test_the_first_server_wins_and_a_second_launch_is_told_so(qtbot: QtBot) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"ok": True, "shown": request.get("cmd") == "dashboard"}

    first = ipc.claim(handler)
    assert first is not None
    try:
        assert first.path == runtime_dir() / "tray.sock"
        assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(first.path.parent.stat().st_mode) == 0o700
        second = ipc.claim(lambda r: {"ok": True}, path=first.path)
        assert second is None  # one already runs
        answers = send_async({"cmd": "dashboard"}, first.path)
        qtbot.waitUntil(lambda: answers != [], timeout=3000)
        assert answers == [{"ok": True, "shown": True}]
        assert seen[-1]["cmd"] == "dashboard" and seen[-1]["v"] == ipc.PROTOCOL
    finally:
        first.close()
    assert not first.path.exists()
    assert ipc.send({"cmd": "dashboard"}, first.path) is None  # none runs now


def test_two_servers_in_one_runtime_dir_only_one_listens(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "tray.sock"
    a = ipc.Server(path, lambda r: {"ok": True, "who": "a"})
    b = ipc.Server(path, lambda r: {"ok": True, "who": "b"})
    assert a.listen()
    inode = path.stat().st_ino
    assert not b.listen()  # a holds the lock
    assert path.stat().st_ino == inode  # and b did not put its socket in a's place
    answers = send_async({"cmd": "describe"}, path)
    qtbot.waitUntil(lambda: answers != [], timeout=3000)
    assert answers == [{"ok": True, "who": "a"}]
    a.close()
    assert b.listen()  # a's lock went with it
    b.close()


def test_a_stale_socket_of_a_killed_tray_is_replaced(qtbot: QtBot) -> None:
    path = ipc.socket_path()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: a tray killed with -9
    assert path.exists()
    server = ipc.claim(lambda r: {"ok": True, "fresh": True})
    assert server is not None
    try:
        answers = send_async({"cmd": "dashboard"}, path)
        qtbot.waitUntil(lambda: answers != [], timeout=3000)
        assert answers == [{"ok": True, "fresh": True}]
    finally:
        server.close()


def test_a_bad_request_is_answered_and_the_server_goes_on(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "tray.sock"

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("no such page")

    server = ipc.Server(path, handler)
    assert server.listen()
    try:
        raw: list[bytes] = []

        def garbage() -> None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(path))
                s.sendall(b"not json\n")
                raw.append(s.recv(1000))

        threading.Thread(target=garbage, daemon=True).start()
        qtbot.waitUntil(lambda: raw != [], timeout=3000)
        assert b'"ok": false' in raw[0]
        answers = send_async({"cmd": "dashboard"}, path)
        qtbot.waitUntil(lambda: answers != [], timeout=3000)
        assert answers == [{"ok": False, "error": "no such page"}]
        ping = send_async({"cmd": "ping"}, path)
        qtbot.waitUntil(lambda: ping != [], timeout=3000)
        assert ping == [{"ok": True}]
    finally:
        server.close()
