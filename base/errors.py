"""The exception tree. One root, one branch per layer::

    MoorageError                 anything moorage itself reports to a person
    ├── ConfigError              a machine's config file is wrong (lists every problem)
    ├── HostError                the host lacks something: a tool, a service, disk space
    ├── MachineError             the VM layer: images, disks, drivers, lifecycle
    │   ├── ImageError           building, fetching or verifying a guest image
    │   └── UnsupportedOperation a driver cannot do what was asked
    ├── EngineError              the Docker engine in the VM and the ways to reach it
    ├── SwarmError               swarm mode: the one-node swarm and local clusters
    ├── UpdateError              checking, downloading, verifying or installing an update
    └── AgentError               the host agent or its control API

Library errors (libvirt, docker, OSError, ssh's exit status) are translated at the
boundary of the layer that calls the library, with ``raise ... from exc``, so a
person always sees what went wrong *and what to do about it*; the CLI prints
``str(error)`` and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class MoorageError(Exception):
    """A failure with a message a person can act on."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message}\n  fix: {fix}")


class ConfigError(MoorageError):
    """A machine's configuration is invalid. ``problems`` lists every one found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} has {len(problems)} problem(s):\n{lines}")


class HostError(MoorageError):
    """Something the host must provide is missing or busy."""


class MachineError(MoorageError):
    """The VM layer failed."""


class ImageError(MachineError):
    """A guest image could not be built, found or verified."""


class SharedFolderError(MachineError):
    """A shared folder's daemon (virtiofsd) could not start; sshfs may stand in."""


class UnsupportedOperation(MachineError):
    """The driver does not offer this ability; read ``DriverFeatures`` first."""


class EngineError(MoorageError):
    """The Docker engine in the VM, or the path to it, failed."""


class SwarmError(MoorageError):
    """A swarm or cluster operation failed, or a cluster cannot do what was asked."""


class AgentError(MoorageError):
    """The host agent is unreachable or refused a request."""


class UpdateError(MoorageError):
    """An update could not be checked, verified, downloaded or installed; nothing changed."""
