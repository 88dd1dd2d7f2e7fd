"""What the agent keeps of each cluster on the host, beside what the engines know.

The swarm knows its nodes' roles and health; the machine's engine knows its node
containers. Neither knows what the user asked for: which nodes were stopped on
purpose, which a drill killed, froze or cut off, and the settings the cluster was
made with. That is this record, one JSON file per cluster in the machine's state
folder (``clusters/NAME.json``, 0600). It survives restarts of the agent and the VM,
and goes with ``moorage reset``, which erases the nodes' data too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moorage.swarm.spec import NodeSpec, Role

Drill = Literal["killed", "frozen", "partitioned"]


@dataclass
class NodeRecord:
    name: str
    role: Role
    """The role it joined with; the swarm's own (after promote or demote) is live."""
    index: int
    stopped: bool = False
    """Stopped by the user (``cluster stop``, ``cluster node … stop``): stays stopped."""
    drill: Drill | None = None
    """What a drill did to it, until ``heal``."""
    joined: bool = False


@dataclass
class ClusterRecord:
    name: str
    subnet: int
    fast_drills: bool
    heartbeat_s: float
    nodes: list[NodeRecord] = field(default_factory=list)
    stopped: bool = False
    created: float = field(default_factory=time.time)
    image: str = ""
    """The node image its containers were made from."""
    ready: bool = False
    """``cluster create`` finished; a cluster left unfinished (the machine stopped
    while it was made) is removed when the machine next starts."""

    def spec(self, node: NodeRecord) -> NodeSpec:
        return NodeSpec(self.name, node.role, node.index, self.subnet)

    def specs(self) -> list[NodeSpec]:
        return [self.spec(n) for n in self.nodes]

    def node(self, name: str) -> NodeRecord | None:
        return next((n for n in self.nodes if n.name == name), None)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{self.name}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ClusterRecord | None:
        """None for a file that cannot be read; unknown fields (a newer moorage's) are
        ignored."""
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            known = {f.name for f in dataclasses.fields(cls)}
            fields = {k: v for k, v in data.items() if k in known}
            node_fields = {f.name for f in dataclasses.fields(NodeRecord)}
            fields["nodes"] = [
                NodeRecord(**{k: v for k, v in n.items() if k in node_fields})
                for n in fields.get("nodes", [])
            ]
            return cls(**fields)
        except (OSError, ValueError, TypeError, AttributeError):
            return None


def load_all(folder: Path) -> dict[str, ClusterRecord]:
    records = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        record = ClusterRecord.load(path)
        if record is not None and record.name == path.stem:
            records[record.name] = record
    return records


def remove(folder: Path, name: str) -> None:
    (folder / f"{name}.json").unlink(missing_ok=True)
