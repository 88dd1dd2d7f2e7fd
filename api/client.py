"""The client library of the agent API, for the CLI and the tray: requests, the event
stream, starting the agent process, and the few answers that must come from files
because no agent runs (the list of machines, a stopped machine's status, the logs of
an agent that died).

A client can always tell three troubles apart (``liveness``):

- ``AgentNotRunning``: no agent process (its pid file is empty or gone);
- ``AgentCrashed``: the pid file names a process that is dead (a killed agent);
- ``AgentBusy``: the agent lives but did not answer in time.

``spawn`` starts an agent only in the first two cases, and the agent's own lock on
its pid file makes a second one beside a live one exit at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx

from moorage.api.schema import (
    KEEPALIVE_SECONDS,
    Accepted,
    AgentBusy,
    AgentCrashed,
    AgentNotRunning,
    ClusterList,
    ClusterStatus,
    ConfigView,
    ConfigWrite,
    Diagnostics,
    Doctor,
    ErrorBody,
    Event,
    Operation,
    ShellCommand,
    Stats,
    Status,
    SwarmInfo,
    UpdateRequest,
    UpdateView,
    decode,
    ends,
    error_from_body,
)
from moorage.errors import AgentError
from moorage.paths import MachinePaths, config_dir, data_dir, private_dir
from moorage.runtime import RuntimeRecord, pid_alive

SPAWN_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0
DIAGNOSE_TIMEOUT = 120.0
"""A bundle asks the engine, the clusters and the host's tools, each with a timeout
of its own: together they may take a while on a struggling machine."""
STREAM_SILENCE = 4 * KEEPALIVE_SECONDS
"""An event stream quiet for this long (not even a keepalive) means a hung agent."""

Liveness = Literal["running", "crashed", "absent"]


def machines() -> list[str]:
    """Every machine with a config or a data folder, whether or not it runs."""
    names: set[str] = set()
    for root in (config_dir() / "machines", data_dir() / "machines"):
        if root.is_dir():
            names |= {p.name for p in root.iterdir() if p.is_dir()}
    return sorted(names)


class AgentClient:
    def __init__(self, name: str) -> None:
        self.name = name
        self.paths = MachinePaths(name)

    # ----- is there an agent? ---------------------------------------------

    def agent_pid(self) -> int | None:
        try:
            text = self.paths.agent_pid.read_text().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None

    def liveness(self) -> Liveness:
        """From the pid file, without asking the agent (which may be hung)."""
        pid = self.agent_pid()
        if pid is None:
            return "absent"
        if pid_alive(pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                cmdline = b"moorage.agent"
            if b"moorage.agent" in cmdline:
                return "running"
        return "crashed"

    def _not_reachable(self, exc: Exception) -> AgentError:
        start = f"`moorage start{'' if self.name == 'default' else ' -m ' + self.name}`"
        match self.liveness():
            case "absent":
                return AgentNotRunning(
                    f"the host agent of machine {self.name!r} is not running", fix=start
                )
            case "crashed":
                return AgentCrashed(
                    f"the host agent of machine {self.name!r} died (pid {self.agent_pid()})",
                    fix=f"see {self.paths.agent_log}; {start} starts a new one",
                )
        return AgentBusy(
            f"the host agent of machine {self.name!r} (pid {self.agent_pid()}) does not answer: "
            f"{exc}",
            fix=f"wait a moment; if it stays so, see {self.paths.agent_log}",
        )

    # ----- requests ----------------------------------------------------------

    def _client(self, timeout: httpx.Timeout | float) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.paths.agent_socket))
        return httpx.Client(transport=transport, base_url="http://agent", timeout=timeout)

    def _request(
        self, method: str, path: str, body: object = None, timeout: float = REQUEST_TIMEOUT
    ) -> dict[str, Any]:
        try:
            with self._client(timeout) as c:
                response = c.request(method, path, json=body)
        except (httpx.ConnectError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise self._not_reachable(exc) from exc
        except httpx.TimeoutException as exc:
            raise self._not_reachable(exc) from exc
        except httpx.HTTPError as exc:
            if self.liveness() != "running":
                raise self._not_reachable(exc) from exc
            raise AgentError(
                f"the host agent of machine {self.name!r} answered outside its API: {exc}"
            ) from exc
        try:
            data = response.json()
        except ValueError as exc:
            raise AgentError(f"the host agent's answer to {method} {path} is not JSON") from exc
        if response.is_error:
            raise error_from_body(decode(ErrorBody, data.get("error") or {"code": "agent",
                                  "message": response.text}))  # fmt: skip
        return dict(data)

    def alive(self) -> bool:
        """The agent answers its API."""
        try:
            self._request("GET", "/v1/status", timeout=5)
            return True
        except AgentError:
            return False

    def status(self) -> Status:
        return decode(Status, self._request("GET", "/v1/status"))

    def status_or_files(self) -> Status:
        """The agent's status, or, with no agent, what the machine's files say."""
        try:
            return self.status()
        except (AgentNotRunning, AgentCrashed) as exc:
            st = Status(machine=self.name, state="stopped")
            record = RuntimeRecord.load(self.paths.ports_file)
            if record is not None and pid_alive(record.vm_pid):
                st.vm_pid = record.vm_pid
                st.error = (
                    f"the host agent is not running, but the VM is (pid {record.vm_pid}); "
                    "`moorage start` adopts it"
                )
            elif isinstance(exc, AgentCrashed):
                st.error = str(exc)
            return st

    def request(self, op: Operation) -> Accepted:
        return decode(Accepted, self._request("POST", f"/v1/{op}"))

    def config(self) -> ConfigView:
        return decode(ConfigView, self._request("GET", "/v1/config"))

    def validate_config(self, values: dict[str, Any]) -> None:
        self._request("POST", "/v1/config/validate", {"values": values})

    def write_config(self, values: dict[str, Any]) -> ConfigView:
        return decode(ConfigView, self._request("PUT", "/v1/config", ConfigWrite(values).__dict__))

    def shell(self) -> ShellCommand:
        return decode(ShellCommand, self._request("GET", "/v1/shell"))

    def use_context(self) -> None:
        self._request("POST", "/v1/context/use")

    def doctor(self, *, kvm_only: bool = False) -> Doctor:
        return decode(Doctor, self._request("GET", f"/v1/doctor?kvm_only={int(kvm_only)}",
                                            timeout=60))  # fmt: skip

    def stats(self) -> Stats:
        """The VM's CPU and memory samples; asking keeps the agent sampling for
        ``STATS_INTEREST`` seconds, so ask at least that often to see a steady series."""
        return decode(Stats, self._request("GET", "/v1/stats"))

    def diagnostics(self) -> Diagnostics:
        """Write a diagnostics bundle (secrets scrubbed) and say where it is."""
        return decode(Diagnostics, self._request("POST", "/v1/diagnose",
                                                 timeout=DIAGNOSE_TIMEOUT))  # fmt: skip

    # ----- swarm mode ----------------------------------------------------------

    def swarm(self, action: str = "", *, force: bool = False) -> SwarmInfo:
        """The one-node swarm: its info, or ``init`` / ``leave`` it."""
        if not action:
            return decode(SwarmInfo, self._request("GET", "/v1/swarm"))
        query = f"?force={int(force)}" if action == "leave" else ""
        return decode(SwarmInfo, self._request("POST", f"/v1/swarm/{action}{query}", timeout=90))

    def clusters(self) -> ClusterList:
        return decode(ClusterList, self._request("GET", "/v1/clusters"))

    def cluster(self, name: str) -> ClusterStatus:
        return decode(ClusterStatus, self._request("GET", f"/v1/clusters/{name}"))

    def cluster_create(
        self, name: str, managers: int, workers: int, *, fast_drills: bool
    ) -> Accepted:
        body = {"name": name, "managers": managers, "workers": workers, "fast_drills": fast_drills}
        return decode(Accepted, self._request("POST", "/v1/clusters", body))

    def cluster_request(self, name: str, op: str) -> Accepted:
        """``start``, ``stop``, ``heal``, ``recover`` or ``rm``."""
        if op == "rm":
            return decode(Accepted, self._request("DELETE", f"/v1/clusters/{name}"))
        return decode(Accepted, self._request("POST", f"/v1/clusters/{name}/{op}"))

    def cluster_add(self, name: str, role: str) -> Accepted:
        return decode(Accepted, self._request("POST", f"/v1/clusters/{name}/nodes", {"role": role}))

    def node_action(self, name: str, node: str, action: str) -> ClusterStatus:
        path = f"/v1/clusters/{name}/nodes/{node}/{action}"
        return decode(ClusterStatus, self._request("POST", path, timeout=120))

    def cluster_load(self, name: str, images: list[str]) -> Accepted:
        return decode(
            Accepted, self._request("POST", f"/v1/clusters/{name}/load", {"images": images})
        )

    def cluster_unlock(self, name: str, key: str, node: str | None = None) -> ClusterStatus:
        body = {"key": key, "node": node}
        return decode(
            ClusterStatus, self._request("POST", f"/v1/clusters/{name}/unlock", body, timeout=60)
        )

    # ----- updates (app-wide) --------------------------------------------------

    def update_view(self) -> UpdateView:
        return decode(UpdateView, self._request("GET", "/v1/update"))

    def update_check(self, *, downgrade: bool = False) -> UpdateView:
        body = UpdateRequest(downgrade=downgrade).__dict__
        return decode(UpdateView, self._request("POST", "/v1/update/check", body, timeout=120))

    def update_apply(self, *, downgrade: bool = False) -> Accepted:
        body = UpdateRequest(downgrade=downgrade).__dict__
        return decode(Accepted, self._request("POST", "/v1/update/apply", body))

    def update_settings(self, values: dict[str, Any]) -> UpdateView:
        return decode(UpdateView, self._request("PUT", "/v1/update/settings",
                                                ConfigWrite(values).__dict__))  # fmt: skip

    def update_skip(self, version: str | None) -> UpdateView:
        body = UpdateRequest(skip=version).__dict__
        return decode(UpdateView, self._request("POST", "/v1/update/skip", body))

    def update_rollback(self) -> UpdateView:
        return decode(UpdateView, self._request("POST", "/v1/update/rollback"))

    # ----- streams -----------------------------------------------------------

    def events(self, since: int = 0) -> Iterator[Event]:
        """Follow events after ``since`` until the caller stops or the agent exits
        cleanly. Raises AgentCrashed if the agent dies, AgentBusy if it goes silent."""
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=STREAM_SILENCE)
        try:
            with self._client(timeout) as c, c.stream("GET", f"/v1/events?since={since}") as r:
                for line in r.iter_lines():
                    if line.strip():
                        yield decode(Event, json.loads(line))
        except httpx.ReadTimeout as exc:
            raise self._not_reachable(exc) from exc
        except httpx.TransportError:
            pass  # the stream ended or never began: the pid file says why, below
        self._wait_exit()
        if self.liveness() == "crashed":
            raise self._not_reachable(RuntimeError("its event stream ended"))

    def _wait_exit(self, timeout: float = 5.0) -> None:
        """After a stream ends: give an exiting agent a moment to clear its pid file."""
        deadline = time.monotonic() + timeout
        while self.liveness() == "running" and time.monotonic() < deadline:
            time.sleep(0.05)

    def follow(self, accepted: Accepted) -> Iterator[Event]:
        """The events of the operation that ``accepted`` answered for, up to its end
        (``ends``); what other operations say on the way (the error of a start that a
        stop cancelled) passes by like any event."""
        for event in self.events(accepted.since):
            yield event
            if ends(accepted.op, event, accepted.cluster):
                return

    def engine_log(self, lines: int, follow: bool) -> Iterator[str]:
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=None if follow else REQUEST_TIMEOUT)
        path = f"/v1/logs?lines={lines}&follow={int(follow)}"
        try:
            with self._client(timeout) as c, c.stream("GET", path) as r:
                if r.is_error:
                    r.read()
                    raise error_from_body(decode(ErrorBody, r.json()["error"]))
                yield from r.iter_lines()
        except httpx.TransportError as exc:
            raise self._not_reachable(exc) from exc

    # ----- the agent process -----------------------------------------------------

    def spawn(self) -> None:
        """Start the agent process unless it runs; return once its API answers."""
        if self.liveness() == "running":
            deadline = time.monotonic() + SPAWN_TIMEOUT
            while time.monotonic() < deadline:
                if self.alive():
                    return
                time.sleep(0.1)
            raise self._not_reachable(TimeoutError(f"no answer in {SPAWN_TIMEOUT:.0f}s"))
        private_dir(self.paths.state)
        private_dir(self.paths.run)
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
            if proc.poll() is not None and self.liveness() != "running":
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
            if self.liveness() != "running":
                return True
            time.sleep(0.1)
        return False

    def local_logs(self) -> list[Path]:
        """The agent's log and the VM console: files, readable when the agent is dead."""
        return [f for f in (self.paths.agent_log, self.paths.serial_log) if f.exists()]
