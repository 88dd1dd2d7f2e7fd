"""The persistent data disk: a sparse raw file that holds /var/lib/docker.

It lives apart from the OS image, so replacing the image never touches
images, containers or volumes. It only ever grows: the guest formats it when
it is brand new (all zeros) and runs ``resize2fs`` on every boot, so growing
the file here is all it takes to grow the file system.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from moorage.errors import ConfigError, HostError

GIB = 1 << 30


def current_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def ensure_data_disk(path: Path, size_gib: int) -> int:
    """Create the disk or grow it to ``size_gib``; return its size in bytes.

    Raises ConfigError when asked to shrink it: shrinking would cut off data.
    """
    want = size_gib * GIB
    have = current_size(path)
    if have is not None and want < have:
        raise ConfigError(
            str(path),
            [
                f"disk_gib = {size_gib} is smaller than the disk already is "
                f"({have / GIB:g} GiB); a disk can only grow. Set disk_gib >= {have // GIB}, "
                "or `moorage reset` to start over with an empty disk"
            ],
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if have is None:
        # A sparse file costs nothing until written; check there is room to start at all.
        free = shutil.disk_usage(path.parent).free
        if free < GIB:
            raise HostError(
                f"only {free / GIB:.1f} GiB free in {path.parent}; the data disk needs room to grow",
                fix="free some disk space",
            )
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, want)
        finally:
            os.close(fd)
    elif want > have:
        with path.open("r+b") as f:
            f.truncate(want)
    return want
