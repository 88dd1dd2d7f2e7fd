"""Recipe ``alpine``: Alpine Linux's minirootfs plus packages from its own mirrors.

The product design's choice for users who reach Alpine's mirrors: a smaller
root (busybox is already its init) and a faster boot. The minirootfs release
is pinned by version *and* sha256, so a corrupted or substituted download is
refused before anything is unpacked; the packages are then verified by apk
against the signing keys inside that verified minirootfs.

Alpine's mirrors cannot be reached from this project's machines, so only the
parts that need no network are tested here (download verification, the
repository list, the chroot commands, the guest files); see docs/architecture.md.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path

from moorage.errors import ImageError
from moorage.vm.image.manifest import Manifest, sha256_file
from moorage.vm.image.recipe import (
    RecipeInfo,
    Report,
    finish_image,
    install_guest_files,
    require_tools,
    run_step,
)

BRANCH = "v3.20"
RELEASE = "3.20.3"
ARCH = "x86_64"
MINIROOTFS_SHA256 = "d4e6fd67dcf75e40c451560ac7265166c2b72a0f38ddc9aae756a7de3d1efa0c"
MIRROR = "https://dl-cdn.alpinelinux.org/alpine"

INFO = RecipeInfo(
    name="alpine",
    release=RELEASE,
    revision=3,
    packages=(
        "linux-virt",
        "docker",
        "docker-cli",
        "openssh-server",
        "e2fsprogs",
        "e2fsprogs-extra",
        "iproute2",
        "iptables",
        "kmod",
        "tar",
        "curl",
        "sshfs",
        "perl",
        "ca-certificates",
    ),
    host_tools=("mkfs.ext4", "chroot"),
    description=f"Alpine Linux {RELEASE}, docker 26.1, kernel 6.6 (virt)",
)
CMDLINE = (
    "root=/dev/vda ro rootfstype=ext4 modules=virtio_pci,virtio_blk,ext4 "
    "init=/usr/lib/moorage/preinit.sh console=ttyS0 panic=-1 quiet"
)


def minirootfs_url(mirror: str = MIRROR) -> str:
    name = f"alpine-minirootfs-{RELEASE}-{ARCH}.tar.gz"
    return f"{mirror}/{BRANCH}/releases/{ARCH}/{name}"


def repositories(mirror: str = MIRROR) -> str:
    return f"{mirror}/{BRANCH}/main\n{mirror}/{BRANCH}/community\n"


def apk_command() -> list[str]:
    return ["apk", "add", "--no-cache", "--update-cache", *INFO.packages]


def download(url: str, target: Path, sha256: str, report: Report) -> None:
    """Fetch ``url`` to ``target`` with progress; refuse it unless its sha256 matches."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as response, target.open("wb") as out:  # noqa: S310 - https URL from this module
            total = int(response.headers.get("Content-Length") or 0)
            done = shown = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if total and done * 10 // total > shown:
                    shown = done * 10 // total
                    report(f"downloading {url.rsplit('/', 1)[-1]}: {shown * 10}%")
    except OSError as exc:
        raise ImageError(
            f"cannot download {url}: {exc}",
            fix='check that this host reaches Alpine\'s mirrors, or use image = "debian"',
        ) from exc
    verify_download(target, sha256, digest.hexdigest())


def verify_download(path: Path, expected: str, actual: str | None = None) -> None:
    actual = actual or sha256_file(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise ImageError(
            f"the download {path.name} is corrupted or was substituted "
            f"(sha256 {actual[:16]}…, expected {expected[:16]}…); it was deleted, nothing was unpacked",
            fix="try again; if it persists, the mirror serves a different file",
        )


def build(work: Path, out: Path, report: Report) -> Manifest:
    require_tools(INFO.host_tools, "e2fsprogs coreutils")
    tree = work / "rootfs"
    tree.mkdir()
    archive = work / "minirootfs.tar.gz"
    report(f"step 1/4: downloading Alpine {RELEASE} minirootfs")
    download(minirootfs_url(), archive, MINIROOTFS_SHA256, report)
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="fully_trusted")  # noqa: S202 - its sha256 is pinned and checked
    report(f"step 2/4: installing {len(INFO.packages)} packages with apk")
    (tree / "etc/apk/repositories").write_text(repositories())
    shutil.copyfile("/etc/resolv.conf", tree / "etc/resolv.conf")
    run_step(["chroot", str(tree), *apk_command()], report)
    report("step 3/4: adding moorage's init and taking out the kernel")
    install_guest_files(tree)
    (tree / "etc/resolv.conf").write_text("")
    version = subprocess.run(
        ["chroot", str(tree), "apk", "info", "-e", "-v", "docker"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return finish_image(
        INFO,
        tree,
        out,
        kernel=tree / "boot/vmlinuz-virt",
        initrd=tree / "boot/initramfs-virt",
        cmdline=CMDLINE,
        engine_version=version.removeprefix("docker-") or "unknown",
        report=report,
        step="step 4/4",
    )
