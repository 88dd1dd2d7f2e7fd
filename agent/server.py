"""The agent's control API: small HTTP over a user-only unix socket (as lima's).

    GET  /v1/status              the Status, as JSON
    GET  /v1/events?since=ID     events after ID as JSON lines; the stream stays
                                 open and follows new events until the client leaves
    POST /v1/start               start unless running; answers {"since": ID}
    POST /v1/stop                graceful stop; the agent exits afterwards

The socket file is created inside a 0700 folder and chmod 0600, so only the
user who owns the machine can drive it.
"""

from __future__ import annotations

import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from moorage.agent.machine import MachineAgent

EVENT_POLL = 15.0


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    agent: MachineAgent


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        agent = self.server.agent
        if url.path == "/v1/status":
            self._json(200, agent.snapshot().to_json())
        elif url.path == "/v1/events":
            since = int(parse_qs(url.query).get("since", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            try:
                while True:
                    for event in agent.events.after(since, EVENT_POLL):
                        self.wfile.write((json.dumps(event.to_json()) + "\n").encode())
                        since = event.id
                    self.wfile.flush()
                    if agent.exit_requested.is_set():
                        return
            except (BrokenPipeError, ConnectionResetError):
                return
        else:
            self._json(404, {"error": f"no such endpoint {url.path}"})

    def do_POST(self) -> None:
        agent = self.server.agent
        if self.path == "/v1/start":
            self._json(200, {"since": agent.request_start()})
        elif self.path == "/v1/stop":
            since = agent.events.last_id
            threading.Thread(target=agent.stop, name="stop", daemon=True).start()
            self._json(200, {"since": since})
        else:
            self._json(404, {"error": f"no such endpoint {self.path}"})


def serve(agent: MachineAgent, path: Path) -> _Server:
    """Bind the control socket and serve it in a thread; the caller shuts it down."""
    path.unlink(missing_ok=True)
    old = os.umask(0o177)
    try:
        server = _Server(str(path), _Handler)
    finally:
        os.umask(old)
    path.chmod(0o600)
    server.agent = agent
    threading.Thread(target=server.serve_forever, name="control-api", daemon=True).start()
    return server
