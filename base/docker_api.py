"""docker-py clients of one engine socket, with the API version fixed.

A client made without a version first asks the engine's ``/version``, which dockerd
answers by running ``runc --version`` and ``docker-init --version``: under emulation
each costs the guest a real share of its one CPU, and a watch that made clients every
few seconds kept the guest busy (with five swarm nodes, at 100 %). Engine 26.1 speaks
API 1.45, and every engine moorage ships does; ``/_ping`` says so without that cost.
"""

from __future__ import annotations

from pathlib import Path

import docker

API_VERSION = "1.45"


def api_client(socket: Path, timeout: float | None = 30) -> docker.APIClient:
    """The low-level client (``docker.APIClient``) of the engine at unix ``socket``."""
    return docker.APIClient(base_url=f"unix://{socket}", version=API_VERSION, timeout=timeout)


def docker_client(socket: Path, timeout: float | None = 30) -> docker.DockerClient:
    """The high-level client of the engine at unix ``socket``."""
    return docker.DockerClient(base_url=f"unix://{socket}", version=API_VERSION, timeout=timeout)
