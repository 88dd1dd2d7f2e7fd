"""Is KVM really usable? Asked with a short test boot, never by the device file alone.

On some hosts ``/dev/kvm`` opens and answers ``KVM_GET_API_VERSION`` yet a
real kernel never runs under it (nested virtualisation that is half there:
real-mode code runs, long-mode code hits "emulation failure"). So the probe
boots the image's own kernel with no root disk: reaching the "cannot mount
root" panic proves that paging, interrupts, timers and SMP bring-up all work.
Under working KVM that takes about a second; the probe gives it
``PROBE_SECONDS`` and otherwise falls back to TCG, with the reason.

The answer is kept for the current host boot (``/proc/sys/kernel/random/boot_id``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from moorage.vm.driver import Accel

PROBE_SECONDS = 12.0
_DONE = (b"Kernel panic", b"VFS: Unable to mount root", b"VFS: Cannot open root device")


@dataclass(frozen=True)
class AccelChoice:
    accel: Accel
    reason: str

    @property
    def warning(self) -> str | None:
        if self.accel == "kvm":
            return None
        return (
            f"KVM is not usable ({self.reason}); running under QEMU's TCG emulation, "
            "which is 5-20x slower"
        )


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def kvm_device_problem() -> str | None:
    """A reason KVM cannot even be tried, or None."""
    if not os.path.exists("/dev/kvm"):
        return (
            "/dev/kvm does not exist (no hardware virtualisation, or the kvm module is not loaded)"
        )
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return (
            "/dev/kvm is not readable and writable by this user (add yourself to the 'kvm' group)"
        )
    return None


def probe_kvm(qemu: str, kernel: Path, timeout: float = PROBE_SECONDS) -> AccelChoice:
    """Boot ``kernel`` under KVM for at most ``timeout`` seconds and judge the result."""
    if problem := kvm_device_problem():
        return AccelChoice("tcg", problem)
    with tempfile.TemporaryDirectory(prefix="moorage-kvm-probe-") as tmp:
        out = Path(tmp) / "serial"
        out.touch()
        cmd = [
            qemu,
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-smp",
            "2",
            "-m",
            "256",
            "-display",
            "none",
            "-nodefaults",
            "-no-user-config",
            "-no-reboot",
            "-serial",
            f"file:{out}",
            "-kernel",
            str(kernel),
            "-append",
            "console=ttyS0 panic=-1 root=/dev/moorage-probe-none",
        ]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while time.monotonic() - started < timeout:
                text = out.read_bytes()
                if any(mark in text for mark in _DONE):
                    took = time.monotonic() - started
                    return AccelChoice("kvm", f"test boot reached the kernel's end in {took:.1f}s")
                if proc.poll() is not None:
                    err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                    first = next((line for line in err.splitlines() if "warning" not in line), "")
                    return AccelChoice(
                        "tcg", f"a KVM test boot failed: {first.strip() or 'QEMU exited'}"
                    )
                time.sleep(0.1)
            return AccelChoice(
                "tcg", f"a KVM test boot printed nothing useful within {timeout:.0f}s"
            )
        finally:
            proc.kill()
            proc.wait()
            if proc.stderr:
                proc.stderr.close()


def choose(qemu: str, kernel: Path, cache: Path, *, want: str = "auto") -> AccelChoice:
    """Pick the accelerator: ``want`` is "auto", "kvm" or "tcg" from the machine's config."""
    if want == "tcg":
        return AccelChoice("tcg", "the machine's config asks for tcg")
    boot = _boot_id()
    try:
        saved = json.loads(cache.read_text())
        if saved.get("boot_id") == boot and want == "auto":
            return AccelChoice(saved["accel"], saved["reason"])
    except (OSError, ValueError, KeyError):
        pass
    choice = probe_kvm(qemu, kernel)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(
            json.dumps({"boot_id": boot, "accel": choice.accel, "reason": choice.reason})
        )
    except OSError:
        pass
    return choice


def find_qemu() -> str | None:
    return shutil.which("qemu-system-x86_64")
