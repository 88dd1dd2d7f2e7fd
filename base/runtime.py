"""The runtime record of a running machine, and whether a process lives.

The agent writes the record (``runtime.json``, 0600: it holds the Docker gate's token)
when it boots or adopts a VM, and removes it when the VM stops. A new agent reads it
to adopt a VM its killed predecessor left running; a client reads only ``vm_pid`` from
it, to say that a VM runs without an agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RuntimeRecord:
    ssh_port: int
    api_port: int
    api_token: str
    vm_pid: int | None = None
    driver: str = ""
    accel: str | None = None
    accel_reason: str | None = None
    file_sharing: str | None = None
    shared_folders: tuple[str, ...] = ()
    sshfs_folders: tuple[str, ...] = ()

    def save(self, path: Path) -> None:
        data = dataclasses.asdict(self)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> RuntimeRecord | None:
        """None when there is no record or it cannot be read (fields it does not know,
        from a newer moorage, are ignored)."""
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            known = {f.name for f in dataclasses.fields(cls)}
            fields = {k: v for k, v in data.items() if k in known}
            for key in ("shared_folders", "sshfs_folders"):
                fields[key] = tuple(fields.get(key) or ())
            return cls(**fields)
        except (OSError, ValueError, TypeError):
            return None


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs. A zombie does not: a killed hypervisor whose parent
    has not reaped it yet is as dead as it will get."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rfind(")") + 2] not in "ZX"
    return True
