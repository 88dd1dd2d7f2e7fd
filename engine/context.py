"""The docker CLI context ``moorage`` (``moorage-NAME`` for other machines).

Written through the docker CLI itself, which owns its context store; moorage
never edits ``~/.docker`` by hand. Without a docker CLI on the host the
context is skipped and DOCKER_HOST (``moorage docker-env``) still works.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from moorage.errors import EngineError


def context_name(machine: str) -> str:
    return "moorage" if machine == "default" else f"moorage-{machine}"


def cluster_context_name(machine: str, cluster: str) -> str:
    """``moorage-cluster-NAME`` (``moorage-MACHINE-cluster-NAME`` for other machines)."""
    return f"{context_name(machine)}-cluster-{cluster}"


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def available() -> bool:
    return shutil.which("docker") is not None


def ensure(machine: str, socket: Path) -> bool:
    """Create or update the context; False when there is no docker CLI."""
    return ensure_named(context_name(machine), socket, f"moorage machine {machine!r}")


def ensure_named(name: str, socket: Path, desc: str) -> bool:
    """Create or update context ``name`` for the engine at ``socket``; False when there
    is no docker CLI."""
    if not available():
        return False
    host = f"host=unix://{socket}"
    exists = _docker("context", "inspect", name).returncode == 0
    verb = "update" if exists else "create"
    proc = _docker("context", verb, name, "--description", desc, "--docker", host)
    if proc.returncode != 0:
        raise EngineError(f"could not {verb} the docker context {name!r}: {proc.stderr.strip()}")
    return True


def use(machine: str) -> None:
    if not available():
        raise EngineError(
            "there is no docker CLI on PATH",
            fix="install it (Debian/Ubuntu: sudo apt-get install docker.io, or docker-ce-cli)",
        )
    proc = _docker("context", "use", context_name(machine))
    if proc.returncode != 0:
        raise EngineError(f"docker context use failed: {proc.stderr.strip()}")


def remove(machine: str) -> None:
    remove_named(context_name(machine))


def remove_named(name: str) -> None:
    if available():
        _docker("context", "rm", "--force", name)
