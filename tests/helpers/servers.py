"""Stand-in servers for the relay tests: each accepted connection handled in a thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def serve_each(listener: socket.socket, one: Callable[[socket.socket], None]) -> None:
    """Accept on ``listener`` until it is closed, handing each connection to ``one``."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=one, args=(conn,), daemon=True).start()
