"""Port forwards through the user-mode NIC, for every backend that runs QEMU.

QEMU's slirp takes forwards on its command line (``hostfwd=``) and, while the
VM runs, through the human monitor (``hostfwd_add``/``hostfwd_remove``).
Backends differ only in how they reach the monitor and what the NIC is called.
"""

from __future__ import annotations

from moorage.errors import MachineError
from moorage.types import Forward, Proto


def hostfwd(forward: Forward) -> str:
    """The rule in QEMU's syntax: ``tcp:127.0.0.1:8080-:80``."""
    return f"{forward.proto}:{forward.host_addr}:{forward.host_port}-:{forward.guest_port}"


class MonitorForwards:
    """Mixin: ``add_forward``/``remove_forward`` on top of a backend's ``_hmp``."""

    netdev: str
    """QEMU's id of the first user-mode NIC (libvirt calls it ``hostnet0``)."""

    def _hmp(self, name: str, command: str) -> str:
        raise NotImplementedError

    def add_forward(self, name: str, forward: Forward) -> None:
        out = self._hmp(name, f"hostfwd_add {self.netdev} {hostfwd(forward)}").strip()
        if out:
            raise MachineError(f"could not forward {hostfwd(forward)}: {out}")

    def remove_forward(self, name: str, forward: Forward) -> None:
        rule = f"{forward.proto}:{forward.host_addr}:{forward.host_port}"
        self._hmp(name, f"hostfwd_remove {self.netdev} {rule}")

    def forwards(self, name: str) -> set[Forward]:
        return parse_usernet(self._hmp(name, "info usernet"))


def parse_usernet(text: str) -> set[Forward]:
    """The host forwards in QEMU's ``info usernet`` table, e.g.
    ``TCP[HOST_FORWARD]  25   127.0.0.1 18080   10.0.2.15    80     0     0``
    (a forward on every host address shows its source as ``*``)."""
    found = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0] in ("TCP[HOST_FORWARD]", "UDP[HOST_FORWARD]"):
            addr = "0.0.0.0" if parts[2] in ("*", "0.0.0.0") else parts[2]  # noqa: S104
            proto: Proto = "tcp" if parts[0].startswith("TCP") else "udp"
            found.add(Forward(proto, addr, int(parts[3]), int(parts[5])))
    return found
