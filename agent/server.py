"""The agent's control API over its user-only unix socket; ``api/schema.py`` is the
contract (routes, bodies, codes). This module only carries it: it decodes requests,
calls the agent and encodes answers, with every ``MoorageError`` turned into a typed
error body (code, message, fix) and anything else into an ``agent`` error.

The socket file is created inside a 0700 folder and chmod 0600 before it listens, so
only the user who owns the machine can drive it.
"""

from __future__ import annotations

import json
import logging
import os
import socketserver
import subprocess
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from moorage.agent import diagnostics
from moorage.agent.doctor import run as run_doctor
from moorage.agent.machine import MachineAgent
from moorage.api.schema import (
    API_VERSION,
    CLUSTER_OPERATIONS,
    HTTP_STATUS,
    KEEPALIVE_SECONDS,
    NODE_ACTIONS,
    ClusterCreate,
    ClusterLoad,
    ConfigWrite,
    ErrorBody,
    NodeAdd,
    Unlock,
    UpdateRequest,
    decode,
    error_body,
)
from moorage.errors import AgentError, MoorageError

log = logging.getLogger("moorage.agent")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    agent: MachineAgent
    streams: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ----- answers -------------------------------------------------------

    def _json(self, code: int, body: object) -> None:
        data = json.dumps({"api": API_VERSION, **(body if isinstance(body, dict) else {})})
        raw = data.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _ok(self, body: object = None) -> None:
        if body is None:
            self._json(200, {})
        elif isinstance(body, dict):
            self._json(200, body)
        else:
            self._json(200, asdict(body))  # type: ignore[call-overload]

    def _error(self, body: ErrorBody) -> None:
        self._json(HTTP_STATUS.get(body.code, 500 if body.code == "agent" else 409),
                   {"error": asdict(body)})  # fmt: skip

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        try:
            data = json.loads(self.rfile.read(length))
        except ValueError as exc:
            raise AgentError(f"the request's body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise AgentError("the request's body must be a JSON object")
        return data

    def _dispatch(self, method: str) -> None:
        agent = self.server.agent
        agent.touch()
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = (method, url.path)
        try:
            if route == ("GET", "/v1/events"):
                self._events(int(query.get("since", "0")))
            elif route == ("GET", "/v1/logs"):
                self._engine_log(int(query.get("lines", "100")), query.get("follow") == "1")
            elif route == ("GET", "/v1/status"):
                self._ok(agent.status_now().to_json())
            elif method == "POST" and url.path.removeprefix("/v1/") in (
                "start", "stop", "restart", "delete", "reset",
            ):  # fmt: skip
                op = url.path.removeprefix("/v1/")
                self._ok(agent.request(op))  # type: ignore[arg-type]
            elif route == ("GET", "/v1/config"):
                self._ok(agent.config_view())
            elif route == ("POST", "/v1/config/validate"):
                agent.validate_config(decode(ConfigWrite, self._body()).values)
                self._ok()
            elif route == ("PUT", "/v1/config"):
                self._ok(agent.write_config(decode(ConfigWrite, self._body()).values))
            elif route == ("GET", "/v1/shell"):
                self._ok(agent.shell_argv())
            elif route == ("POST", "/v1/context/use"):
                agent.use_context()
                self._ok()
            elif route == ("GET", "/v1/doctor"):
                self._ok(run_doctor(agent, kvm_only=query.get("kvm_only") == "1"))
            elif route == ("GET", "/v1/stats"):
                self._ok(agent.stats().to_json())
            elif route == ("POST", "/v1/diagnose"):
                self._ok(diagnostics.write(agent).to_json())
            elif url.path.startswith(("/v1/swarm", "/v1/clusters")):
                self._swarm(method, url.path, query)
            elif url.path.startswith("/v1/update"):
                self._update(method, url.path)
            else:
                self._error(ErrorBody("not-found", f"no such endpoint: {method} {url.path}"))
        except MoorageError as exc:
            self._error(error_body(exc))
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:
            log.exception("%s %s", method, self.path)
            self._error(ErrorBody("agent", f"unexpected error: {exc!r}",
                                  f"see {agent.paths.agent_log}"))  # fmt: skip

    def _update(self, method: str, path: str) -> None:
        updates = self.server.agent.updates
        route = (method, path)
        if route == ("GET", "/v1/update"):
            self._ok(updates.view())
        elif route == ("POST", "/v1/update/check"):
            self._ok(updates.check(decode(UpdateRequest, self._body()).downgrade))
        elif route == ("POST", "/v1/update/apply"):
            self._ok(updates.apply(decode(UpdateRequest, self._body()).downgrade))
        elif route == ("PUT", "/v1/update/settings"):
            self._ok(updates.change_settings(decode(ConfigWrite, self._body()).values))
        elif route == ("POST", "/v1/update/skip"):
            self._ok(updates.skip(decode(UpdateRequest, self._body()).skip))
        elif route == ("POST", "/v1/update/rollback"):
            self._ok(updates.rollback())
        else:
            self._error(ErrorBody("not-found", f"no such endpoint: {method} {path}"))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _swarm(self, method: str, path: str, query: dict[str, str]) -> None:
        """The one-node swarm and the clusters (``/v1/swarm…``, ``/v1/clusters…``)."""
        agent = self.server.agent
        clusters = agent.clusters
        parts = path.strip("/").split("/")[1:]  # after "v1"
        match (method, parts):
            case ("GET", ["swarm"]):
                self._ok(agent.swarm("info"))
            case ("POST", ["swarm", "init"]):
                self._ok(agent.swarm("init"))
            case ("POST", ["swarm", "leave"]):
                self._ok(agent.swarm("leave", force=query.get("force") == "1"))
            case ("GET", ["clusters"]):
                self._ok({"clusters": [c.to_json() for c in clusters.listing().clusters]})
            case ("POST", ["clusters"]):
                body = decode(ClusterCreate, self._body())
                self._ok(clusters.create(body.name, body.managers, body.workers,
                                         body.fast_drills))  # fmt: skip
            case ("GET", ["clusters", name]):
                self._ok(clusters.status(name).to_json())
            case ("DELETE", ["clusters", name]):
                self._ok(clusters.request(name, "rm"))
            case ("POST", ["clusters", name, op]) if op in CLUSTER_OPERATIONS:
                self._ok(clusters.request(name, op))
            case ("POST", ["clusters", name, "nodes"]):
                self._ok(clusters.add(name, decode(NodeAdd, self._body()).role))
            case ("POST", ["clusters", name, "nodes", node, action]) if action in NODE_ACTIONS:
                self._ok(clusters.node_action(name, node, action).to_json())
            case ("POST", ["clusters", name, "load"]):
                self._ok(clusters.load(name, decode(ClusterLoad, self._body()).images))
            case ("POST", ["clusters", name, "unlock"]):
                unlock = decode(Unlock, self._body())
                self._ok(clusters.unlock(name, unlock.key, unlock.node).to_json())
            case _:
                self._error(ErrorBody("not-found", f"no such endpoint: {method} {path}"))

    # ----- streams ---------------------------------------------------------

    def _stream_head(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.end_headers()

    def _events(self, since: int) -> None:
        agent = self.server.agent
        self._stream_head("application/x-ndjson")
        self.server.streams += 1
        try:
            while True:
                events = agent.events.after(since, KEEPALIVE_SECONDS)
                for event in events:
                    line = {"api": API_VERSION, **event.to_json()}
                    self.wfile.write((json.dumps(line) + "\n").encode())
                    since = event.id
                if not events:
                    self.wfile.write(b"\n")  # keepalive: the client knows we live
                self.wfile.flush()
                agent.touch()
                if agent.exit_requested.is_set():
                    return
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            self.server.streams -= 1

    def _engine_log(self, lines: int, follow: bool) -> None:
        argv = self.server.agent.shell_argv().argv
        tail = f"tail -n {int(lines)} {'-F ' if follow else ''}/var/log/dockerd.log"
        proc = subprocess.Popen([*argv, tail], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        self._stream_head("text/plain; charset=utf-8")
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                self.wfile.write(line)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            proc.kill()
            proc.wait()


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
