from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from moorage.engine import port_watcher
from moorage.types import Forward


class _Engine:
    """The engine after `swarm leave --force`: it says it manages a swarm, yet
    /services fails."""

    def __init__(self, **_: Any) -> None:
        pass

    def containers(self) -> list[dict[str, Any]]:
        return [{"Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 18099,
                            "Type": "tcp"}]}]  # fmt: skip

    def info(self) -> dict[str, Any]:
        return {"Swarm": {"ControlAvailable": True}}

    def services(self) -> list[dict[str, Any]]:
        raise docker.errors.APIError("500 Server Error: the client connection is closing")

    def close(self) -> None:
        pass


def test_a_swarm_that_cannot_list_services_does_not_hold_up_containers_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(port_watcher.docker, "APIClient", _Engine)
    added: list[Forward] = []
    watcher = port_watcher.PortWatcher(
        Path("/nonexistent.sock"), added.append, lambda _f: None, expose=False,
        report=lambda *_a: None,
    )  # fmt: skip
    watcher.reconcile()
    assert [(f.host_addr, f.host_port) for f in added] == [("127.0.0.1", 18099)]
