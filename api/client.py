"""The CLI's and the tray's side of the control API, and starting the agent process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from moorage.api.schema import Event, Status
from moorage.errors import AgentError
from moorage.paths import MachinePaths, private_dir

SPAWN_TIMEOUT = 15.0


class AgentClient:
    def __init__(self, name: str) -> None:
        self.name = name
        self.paths = MachinePaths(name)

    def _client(self, timeout: float | None = 10.0) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.paths.agent_socket))
        return httpx.Client(transport=transport, base_url="http://agent", timeout=timeout)

    def _request(self, method: str, path: str) -> Any:
        try:
            with self._client() as c:
                response = c.request(method, path)
                response.raise_for_status()
                return response.json()
        except httpx.TransportError as exc:
            raise AgentError(
                f"the host agent of machine {self.name!r} is not running",
                fix=f"`moorage start{'' if self.name == 'default' else ' ' + self.name}`",
            ) from exc
        except httpx.HTTPStatusError as exc:
            raise AgentError(f"the host agent refused {method} {path}: {exc}") from exc

    def alive(self) -> bool:
        try:
            self.status()
            return True
        except AgentError:
            return False

    def status(self) -> Status:
        return Status.from_json(self._request("GET", "/v1/status"))

    def start(self) -> int:
        return int(self._request("POST", "/v1/start")["since"])

    def stop(self) -> int:
        return int(self._request("POST", "/v1/stop")["since"])

    def events(self, since: int = 0) -> Iterator[Event]:
        """Follow events after ``since`` until the caller stops iterating or the agent exits."""
        try:
            with self._client(timeout=None) as c, c.stream("GET", f"/v1/events?since={since}") as r:
                for line in r.iter_lines():
                    if line.strip():
                        yield Event.from_json(json.loads(line))
        except (httpx.TransportError, httpx.RemoteProtocolError):
            return

    def spawn(self) -> None:
        """Start the agent process unless it runs; return once its API answers."""
        if self.alive():
            return
        private_dir(self.paths.state)
        log = os.open(self.paths.agent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moorage.agent", self.name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(log)
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while time.monotonic() < deadline:
            if self.alive():
                return
            if proc.poll() is not None:
                raise AgentError(
                    f"the host agent exited at once (code {proc.returncode})",
                    fix=f"see {self.paths.agent_log}",
                )
            time.sleep(0.1)
        raise AgentError(
            f"the host agent did not answer in {SPAWN_TIMEOUT:.0f}s",
            fix=f"see {self.paths.agent_log}",
        )

    def wait_gone(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.1)
        return False
