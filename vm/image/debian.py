"""Recipe ``debian``: Debian 13 "trixie", built with mmdebstrap from Debian's packages.

The default, because every part of it comes from a registry these machines
reach. trixie rather than bookworm: its docker.io is engine 26.1 on kernel
6.12, where bookworm's is the end-of-life 20.10.
"""

from __future__ import annotations

from pathlib import Path

from moorage.errors import ImageError
from moorage.vm.image.manifest import Manifest
from moorage.vm.image.recipe import (
    SOURCE_DATE_EPOCH,
    RecipeInfo,
    Report,
    finish_image,
    install_guest_files,
    require_tools,
    run_step,
)

INFO = RecipeInfo(
    name="debian",
    release="trixie",
    revision=4,
    # docker-cli and curl are for people in `moorage shell` and for the benchmarks
    # that measure the engine from inside the guest; sshfs is the shared folders'
    # fallback where virtiofs is not available; perl-base runs the docker gate.
    packages=(
        "linux-image-cloud-amd64",
        "busybox",
        "docker.io",
        "docker-cli",
        "openssh-server",
        "iproute2",
        "iptables",
        "kmod",
        "e2fsprogs",
        "ca-certificates",
        "procps",
        "curl",
        "sshfs",
        "perl-base",
    ),
    host_tools=("mmdebstrap", "mkfs.ext4"),
    description="Debian 13 (trixie), docker.io 26.1, kernel 6.12 (cloud)",
)
MIRROR = "http://deb.debian.org/debian"
# The kernel loads these from the initrd; without udev in the guest nothing
# would load the disk driver for the root device.
INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "ext4")
CMDLINE = (
    "root=/dev/vda ro rootfstype=ext4 init=/usr/lib/moorage/preinit.sh console=ttyS0 "
    "fsck.mode=skip panic=-1 quiet loglevel=4"
)
# Shrinks the tree by ~100 MB of documentation nobody reads in a VM.
_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")


def build(work: Path, out: Path, report: Report) -> Manifest:
    """Build the image in ``work`` and leave its files in ``out``."""
    require_tools(INFO.host_tools, "mmdebstrap e2fsprogs")
    tree = work / "rootfs"
    report(f"step 1/3: installing {len(INFO.packages)} packages with mmdebstrap ({INFO.release})")
    dpkgopts: list[str] = []
    for pattern in _EXCLUDES:
        dpkgopts += ["--dpkgopt", f"path-exclude={pattern}"]
    modules = "\\n".join(INITRD_MODULES)
    run_step(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            "--verbose",
            "--include=" + ",".join(INFO.packages),
            *dpkgopts,
            "--aptopt",
            'Acquire::Retries "3"',
            "--customize-hook",
            f'printf "{modules}\\n" >> "$1/etc/initramfs-tools/modules"',
            "--customize-hook",
            'chroot "$1" update-initramfs -u -k all',
            INFO.release,
            str(tree),
            MIRROR,
        ],
        report,
        env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
    )
    report("step 2/3: adding moorage's init and taking out the kernel")
    install_guest_files(tree)
    (tree / "etc" / "machine-id").write_text("")
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    initrds = sorted((tree / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise ImageError("the image has no kernel or initrd in /boot after mmdebstrap")
    return finish_image(
        INFO,
        tree,
        out,
        kernel=kernels[-1],
        initrd=initrds[-1],
        cmdline=CMDLINE,
        engine_version=_package_version(tree, "docker.io"),
        report=report,
        step="step 3/3",
    )


def _package_version(tree: Path, package: str) -> str:
    status = (tree / "var/lib/dpkg/status").read_text()
    for block in status.split("\n\n"):
        if f"Package: {package}\n" in block:
            for line in block.splitlines():
                if line.startswith("Version: "):
                    return line.removeprefix("Version: ")
    return "unknown"
