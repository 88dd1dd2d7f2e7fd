"""How a machine shares host folders: a pure choice, tested without a host.

``auto`` means virtiofs where the driver and the host have it, else sshfs; with
neither the machine still starts, with a warning: the engine is useful without shared
folders, and bind mounts then see the guest's own empty folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moorage.errors import MachineError

Mechanism = Literal["virtiofs", "sshfs"]

VIRTIOFSD_MISSING = (
    "virtiofsd is not installed (Debian 12: qemu-system-common; Debian 13, Ubuntu: virtiofsd)"
)


@dataclass(frozen=True)
class SharingPlan:
    mechanism: Mechanism | None
    folders: tuple[Path, ...]
    warnings: tuple[tuple[str, str], ...] = field(default=())
    """(warning code, message) pairs to tell the user."""


def why_no_virtiofs(driver_name: str, driver_has_it: bool) -> str:
    if not driver_has_it:
        return f"the {driver_name} driver has no virtiofs"
    return VIRTIOFSD_MISSING


def plan_sharing(
    want: str,
    folders: list[Path],
    *,
    driver_name: str,
    driver_has_virtiofs: bool,
    virtiofsd_found: bool,
    sftp_found: bool,
) -> SharingPlan:
    """Choose the mechanism for ``folders`` given what the driver and the host have.

    Raises MachineError when ``want`` is ``virtiofs`` and it cannot be had: the user
    asked for it by name, so a silent fallback would hide the problem."""
    if not folders:
        return SharingPlan(None, ())
    why = why_no_virtiofs(driver_name, driver_has_virtiofs)
    if want in ("auto", "virtiofs") and driver_has_virtiofs and virtiofsd_found:
        return SharingPlan("virtiofs", tuple(folders))
    if want == "virtiofs":
        raise MachineError(
            f'file_sharing = "virtiofs", but {why}',
            fix='install it, or set file_sharing = "auto" to fall back to sshfs',
        )
    if sftp_found:
        warnings: tuple[tuple[str, str], ...] = ()
        if want == "auto":
            warnings = (("sharing-fallback", f"shared folders use sshfs, which is slow: {why}"),)
        return SharingPlan("sshfs", tuple(folders), warnings)
    return SharingPlan(
        None,
        (),
        (
            (
                "sharing-off",
                f"shared folders are off: {why}, and sftp-server (openssh-sftp-server) "
                "for the sshfs fallback is not installed either",
            ),
        ),
    )
