"""`docker load` of a 500 MB image through the host socket against the same in the guest.

The image tar is made once, copied into the guest's data disk, then loaded
alternately inside the guest (its own docker CLI on its own socket) and from
the host (the host's docker CLI through moorage's socket). Goal: throughput
ratio host/guest >= 0.8.
Run: python bench/docker_load.py [rounds]
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from common import HOME, NAME, docker, docker_socket, ensure_machine, env, guest, header

IMAGE = "moorage-bench/load:latest"
SIZE_MB = 500


def make_image_tar(path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add("/bin/busybox", "bin/busybox")
        data = os.urandom(SIZE_MB << 20)
        info = tarfile.TarInfo("blob")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    docker("import", "-", IMAGE, stdin=buf.getvalue())
    with path.open("wb") as f:
        subprocess.run(
            ["docker", "save", IMAGE],
            stdout=f,
            check=True,
            env={**env(), "DOCKER_HOST": f"unix://{docker_socket()}"},
        )
    docker("rmi", IMAGE)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    ensure_machine()
    header(f"docker load of a {SIZE_MB} MB image, {rounds} rounds, alternating which goes first")
    tar = HOME / "load.tar"
    if not tar.exists():
        make_image_tar(tar)
    size = tar.stat().st_size / (1 << 20)
    with tar.open("rb") as f:
        subprocess.run(
            ["moorage", "shell", "--machine", NAME, "cat > /mnt/data/bench.tar"],
            stdin=f,
            env=env(),
            check=True,
        )
    host: list[float] = []
    inside: list[float] = []

    def in_guest() -> None:
        t = guest(
            "s=$(date +%s%N); docker load -q -i /mnt/data/bench.tar >/dev/null; "
            "echo $(( $(date +%s%N) - s ))"
        )
        inside.append(int(t.split()[-1]) / 1e9)

    def from_host() -> None:
        started = time.monotonic()
        docker("load", "-q", "-i", str(tar))
        host.append(time.monotonic() - started)

    for i in range(rounds):
        # Which goes first alternates, and each starts with the guest's disk written
        # back: the last load's dirty layers would otherwise slow the next one.
        for run in (in_guest, from_host) if i % 2 == 0 else (from_host, in_guest):
            guest("sync")
            run()
            docker("rmi", IMAGE)
    guest("rm -f /mnt/data/bench.tar")
    h, g = min(host), min(inside)
    print(f"image tar {size:.0f} MB")
    print(
        f"host  -> moorage socket: best {h:6.1f} s  {size / h:6.1f} MB/s  (all: {', '.join(f'{x:.1f}' for x in host)})"
    )
    print(
        f"guest -> own socket:     best {g:6.1f} s  {size / g:6.1f} MB/s  (all: {', '.join(f'{x:.1f}' for x in inside)})"
    )
    print(f"throughput ratio host/guest: {g / h:4.2f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
