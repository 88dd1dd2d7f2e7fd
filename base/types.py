"""Value types shared by the layers above: plain data, no behaviour worth a layer.

``Forward`` lives here, not in ``vm/``, because three layers speak of it: the driver
carries it out (``hostfwd``), the engine layer decides it (``engine/ports.py``) and the
agent reports it in events. Neither ``vm/`` nor ``engine/`` may import the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Proto = Literal["tcp", "udp"]


@dataclass(frozen=True)
class Forward:
    """A host address and port that reach a guest port through the user-mode NIC."""

    proto: Proto
    host_addr: str
    host_port: int
    guest_port: int
