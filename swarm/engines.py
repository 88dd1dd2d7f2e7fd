"""The engines a cluster is made of, and their errors in our words.

The machine's engine runs the node containers; each node's own engine is reached
through the host socket the agent serves for it (``engine/gate_relay.py``). Both are
docker-py low-level clients with the API version fixed (``moorage.docker_api``),
since a client that asks ``/version`` costs the guest a runc run each time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import docker
import requests

from moorage.errors import SwarmError

Client: TypeAlias = Any
"""A ``docker.APIClient`` (docker-py ships no type hints)."""


@dataclass(frozen=True)
class Engines:
    """Ways to the engines, each call a fresh client the caller closes
    (``with engines.machine() as m:``)."""

    machine: Callable[[float], Client]
    """The machine's own engine, with the given timeout."""
    node: Callable[[str, float], Client]
    """Node ``name``'s engine, with the given timeout."""


def not_there(exc: docker.errors.APIError) -> bool:
    return bool(exc.status_code == 404)


@contextlib.contextmanager
def speaking(what: str) -> Iterator[None]:
    """Turn docker-py's and the transport's errors into a ``SwarmError`` about ``what``:
    the engine's own explanation when it gave one."""
    try:
        yield
    except docker.errors.APIError as exc:
        detail = exc.explanation or str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise SwarmError(f"{what}: {str(detail).strip()}") from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise SwarmError(f"{what}: the engine does not answer ({exc})") from exc


def dropped(exc: SwarmError) -> bool:
    """Whether ``exc`` (from ``speaking``) is the transport's failure, not the engine's
    answer: a connection closed or timed out before any reply."""
    return isinstance(exc.__cause__, (requests.exceptions.RequestException, OSError))


@contextlib.contextmanager
def opened(factory: Callable[[], Client]) -> Iterator[Client]:
    client = factory()
    try:
        yield client
    finally:
        client.close()
