"""``GET /v1/doctor``: what the host has and lacks, each with its fix.

The KVM check boots the image's own kernel under KVM (``vm.accel.probe_kvm``):
``/dev/kvm`` can exist and answer while no real guest runs (as on our CI machines).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from moorage.api.schema import Check, Doctor
from moorage.errors import MoorageError
from moorage.vm import accel
from moorage.vm.image import store

if TYPE_CHECKING:
    from moorage.agent.machine import MachineAgent


def run(agent: MachineAgent, *, kvm_only: bool = False) -> Doctor:
    qemu = accel.find_qemu()
    kernel = store.default_kernel()
    if qemu is None or kernel is None:
        choice = accel.AccelChoice("tcg", "no QEMU or no guest image yet to test-boot")
    else:
        choice = accel.probe_kvm(qemu, kernel)
    report = Doctor(choice.accel, choice.reason)
    if kvm_only:
        return report
    checks = report.checks
    checks.append(
        Check(
            "qemu",
            qemu is not None,
            qemu or "missing",
            None if qemu else "sudo apt-get install qemu-system-x86",
        )
    )
    checks.append(Check("kvm", choice.accel == "kvm", f"{choice.accel} ({choice.reason})"))
    driver_name = agent.snapshot().driver or "configured"
    try:
        agent.driver().check_host()
        checks.append(Check("driver", True, f"{agent.driver().features.name} ok"))
    except MoorageError as exc:
        checks.append(Check("driver", False, f"{driver_name}: {exc.message}", exc.fix))
    has_cli = agent.deps.contexts.available()
    checks.append(
        Check(
            "docker",
            has_cli,
            "CLI found" if has_cli else "no docker CLI on PATH",
            None if has_cli else "sudo apt-get install docker.io (or docker-ce-cli)",
        )
    )
    free = shutil.disk_usage(Path.home()).free
    checks.append(Check("disk", free > 10 << 30, f"{free / (1 << 30):.0f} GiB free"))
    return report
