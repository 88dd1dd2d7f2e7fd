"""What every guest image recipe shares: the guest files, the cache key, the root disk.

A recipe turns distribution packages into a folder holding a kernel, an
initrd, a read-only ext4 root and a manifest. The guest side is the same for
every recipe (busybox init running ``guest/boot.sh``), so a recipe differs
only in how it fills the root tree; those differences are data on the recipe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from moorage.errors import HostError, ImageError
from moorage.vm.image.manifest import Manifest, sha256_file

Report = Callable[[str], None]
"""Receives one line of progress at a time; the CLI shows it, the agent logs it."""

GUEST_FILES = (
    "inittab",
    "preinit.sh",
    "boot.sh",
    "run-sshd.sh",
    "run-dockerd.sh",
    "run-docker-gate.sh",
    "docker-gate.pl",
    "run-virtiofs-guard.sh",
    "virtiofs-guard.pl",
    "shutdown.sh",
    "sshd_config",
    "swarm-node.sh",
)
GUEST_LIB = "usr/lib/moorage"

# Pinned so that two builds of one recipe make the same bytes where the tools allow.
ROOT_UUID = "6d6f6f72-6167-4500-8000-000000000001"
SOURCE_DATE_EPOCH = "1767225600"  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class RecipeInfo:
    """A recipe described as data."""

    name: str
    release: str
    revision: int
    packages: Sequence[str]
    host_tools: Sequence[str]
    description: str

    def cache_key(self) -> str:
        """Changes whenever the recipe or a guest file changes, so the cache never goes stale."""
        digest = hashlib.sha256()
        digest.update(repr((self.name, self.release, self.revision, tuple(self.packages))).encode())
        for name in GUEST_FILES:
            digest.update(guest_file(name))
        return f"{self.release}-r{self.revision}-{digest.hexdigest()[:10]}"


def guest_file(name: str) -> bytes:
    return (resources.files("moorage.vm.image") / "guest" / name).read_bytes()


def install_guest_files(root: Path) -> None:
    """Put moorage's init and service scripts into a root tree."""
    lib = root / GUEST_LIB
    lib.mkdir(parents=True, exist_ok=True)
    for name in GUEST_FILES:
        target = lib / name
        target.write_bytes(guest_file(name))
        target.chmod(0o755 if name.endswith(".sh") else 0o644)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "inittab").write_bytes(guest_file("inittab"))
    init = lib / "init"
    init.unlink(missing_ok=True)
    # busybox picks its applet from argv[0]'s basename, so a link named "init" runs init.
    init.symlink_to("/bin/busybox")
    (root / "mnt" / "data").mkdir(parents=True, exist_ok=True)


def require_tools(tools: Sequence[str], package_hint: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise HostError(
            f"building the guest image needs {', '.join(missing)}, not found on PATH",
            fix=f"install them (on Debian/Ubuntu: sudo apt-get install {package_hint})",
        )


def run_step(cmd: Sequence[str], report: Report, *, env: dict[str, str] | None = None) -> None:
    """Run a build command, passing each output line to ``report``; fail with its tail."""
    tail: list[str] = []
    with subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env={**os.environ, **(env or {})},
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                report(line)
                tail = [*tail[-19:], line]
    if proc.returncode != 0:
        shown = "\n".join(tail)
        raise ImageError(f"{cmd[0]} failed (exit {proc.returncode}):\n{shown}")


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def make_root_disk(tree: Path, target: Path, report: Report) -> None:
    """Pack a root tree into a read-only ext4 image, without a journal (nothing writes it)."""
    size_mib = int(tree_size(tree) * 1.15 / (1 << 20)) + 64
    report(f"making a {size_mib} MiB ext4 root from the tree")
    target.unlink(missing_ok=True)
    run_step(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "moorage-root",
            "-U",
            ROOT_UUID,
            "-O",
            "^has_journal",
            "-E",
            f"hash_seed={ROOT_UUID}",
            "-m",
            "0",
            "-d",
            str(tree),
            str(target),
            f"{size_mib}M",
        ],
        report,
        env={"E2FSPROGS_FAKE_TIME": SOURCE_DATE_EPOCH},
    )


def finish_image(
    info: RecipeInfo,
    tree: Path,
    out: Path,
    *,
    kernel: Path,
    initrd: Path,
    cmdline: str,
    engine_version: str,
    report: Report,
    step: str,
) -> Manifest:
    """Take the kernel and initrd out of the tree, pack the rest, and describe the result."""
    shutil.copyfile(kernel, out / "vmlinuz")
    shutil.copyfile(initrd, out / "initrd.img")
    for f in (tree / "boot").iterdir():
        if f.is_file():
            f.unlink()
    report(f"{step}: packing the read-only root disk")
    make_root_disk(tree, out / "root.img", report)
    files = {name: sha256_file(out / name) for name in ("vmlinuz", "initrd.img", "root.img")}
    return Manifest(
        recipe=info.name,
        version=info.cache_key(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        kernel="vmlinuz",
        initrd="initrd.img",
        root="root.img",
        cmdline=cmdline,
        engine_version=engine_version,
        files=files,
    )
