"""One tray per user: the first ``moorage tray`` listens on a local socket, and a second
``moorage tray`` or ``moorage dashboard`` asks it to show its dashboard, then exits.

As qutebrowser's ``misc/ipc.py`` does: the server is a ``QLocalServer`` on a path in
the user's runtime folder (``$XDG_RUNTIME_DIR/moorage/tray.sock``; the folder is 0700
and the socket made user-only), a launch first tries to connect, and a socket whose
server is gone (a killed tray) is removed before listening again. Unlike there, the
first tray is the one holding a lock file beside the socket, so two launches that race
cannot both listen; the loser connects to the winner.

The protocol: one JSON line each way. A request is ``{"cmd": CMD}`` with CMD
``dashboard`` (show it), ``describe`` (the tray's state, for tests and the benchmark)
or ``quit``; the answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
The client side is a plain unix socket, so a second launch needs no Qt at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from moorage.paths import private_dir, runtime_dir

log = logging.getLogger("moorage.desktop")

PROTOCOL = 1
CONNECT_TIMEOUT = 2.0
MAX_REQUEST = 64 * 1024

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def socket_path() -> Path:
    return private_dir(runtime_dir()) / "tray.sock"


def send(
    request: dict[str, Any], path: Path | None = None, timeout: float = CONNECT_TIMEOUT
) -> dict[str, Any] | None:
    """Send one request to the running tray; its answer, or None when none runs."""
    path = path or socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError as exc:
            log.warning("the tray's socket %s: %s", path, exc)
            return None
        s.sendall(json.dumps({"v": PROTOCOL, **request}).encode() + b"\n")
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            return {"ok": False, "error": "the tray did not answer in time"}
    try:
        answer = json.loads(data or b"{}")
    except ValueError:
        return {"ok": False, "error": "the tray's answer is not JSON"}
    return answer if isinstance(answer, dict) else {"ok": False, "error": "not an object"}


class Server(QObject):
    """The first instance's end: answers each request with ``handler(request)``."""

    def __init__(self, path: Path, handler: Handler, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.handler = handler
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytes] = {}
        self._lock: int | None = None

    def listen(self) -> bool:
        """Listen on ``path``; False if another tray holds it.

        Who is first is decided by a lock (``flock`` on ``tray.lock`` beside the socket,
        held while this server lives), not by the socket file: Qt binds a user-only
        socket under a temporary name and renames it over the path, so a second
        ``listen`` would silently take the first one's place."""
        lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            return False
        if self.path.exists():  # the holder of the lock is gone: its socket is stale
            log.info("removing the stale socket %s", self.path)
            QLocalServer.removeServer(str(self.path))
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if not self._server.listen(str(self.path)):
            log.warning("cannot listen on %s: %s", self.path, self._server.errorString())
            os.close(lock)
            return False
        os.chmod(self.path, 0o600)
        self._lock = lock
        return True

    def close(self) -> None:
        self._server.close()
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._lock)
            self._lock = None

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            conn = self._server.nextPendingConnection()
            self._buffers[conn] = b""
            conn.readyRead.connect(lambda c=conn: self._read(c))
            conn.disconnected.connect(lambda c=conn: self._drop(c))

    def _drop(self, conn: QLocalSocket) -> None:
        self._buffers.pop(conn, None)
        conn.deleteLater()

    def _read(self, conn: QLocalSocket) -> None:
        if conn not in self._buffers:
            return
        data = self._buffers[conn] + bytes(conn.readAll().data())
        if b"\n" not in data and len(data) < MAX_REQUEST:
            self._buffers[conn] = data
            return
        self._buffers.pop(conn, None)
        line = data.split(b"\n", 1)[0]
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
            answer = {"ok": True} if request.get("cmd") == "ping" else self.handler(request)
        except Exception as exc:  # a bad request never takes the tray down
            log.warning("ipc request %r: %s", line[:200], exc)
            answer = {"ok": False, "error": str(exc)}
        conn.write(json.dumps(answer).encode() + b"\n")
        conn.flush()
        conn.disconnectFromServer()


def claim(
    handler: Handler, parent: QObject | None = None, path: Path | None = None
) -> Server | None:
    """This process's server if it is the first tray, else None (one already runs)."""
    path = path or socket_path()
    server = Server(path, handler, parent)
    if server.listen():
        log.info("tray listening on %s", path)
        return server
    return None
