"""What the benchmarks share: a machine of their own, and plain statistics.

Every benchmark measures moorage and its baseline side by side in one run,
alternating, because these machines are noisy; it prints ratios, and the
figures go into docs/benchmarks.md with the machine and the accelerator.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

HOME = Path(os.environ.get("MOORAGE_BENCH_HOME", "/tmp/moorage-bench"))
NAME = "bench"


def env() -> dict[str, str]:
    e = {**os.environ, "MOORAGE_HOME": str(HOME)}
    e.pop("DOCKER_HOST", None)
    return e


def moorage(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["moorage", *args]
    if args[0] != "image":
        cmd += ["--machine", NAME]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, check=check)


SHARE = HOME / "share"
"""A host folder the bench machine shares (besides the default, ~)."""


def ensure_machine(driver: str | None = None, file_sharing: str = "auto") -> dict[str, object]:
    """The bench machine, running with this config; restarted if it runs with another."""
    config = HOME / "config" / "machines" / NAME / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    SHARE.mkdir(parents=True, exist_ok=True)
    text = (
        "cpus = 2\nmemory_gib = 2\n"
        + (f'driver = "{driver}"\n' if driver else "")
        + f'file_sharing = "{file_sharing}"\n'
        + f'mounts = ["~", "{SHARE}"]\n'
    )
    if config.exists() and config.read_text() != text:
        moorage("stop", check=False)
    config.write_text(text)
    moorage("start")
    return status()


def docker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["docker", *args],
        env={**env(), "DOCKER_HOST": f"unix://{docker_socket()}"},
        input=stdin,
        capture_output=True,
        check=True,
    )


def busybox_image(name: str = "moorage-bench/busybox") -> str:
    """An image from the host's busybox-static: no registry is needed."""
    import io  # noqa: PLC0415
    import tarfile  # noqa: PLC0415

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add("/bin/busybox", "bin/busybox")
        applets = subprocess.run(
            ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
        )
        for applet in applets.stdout.split():
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
        for d in ("tmp", "www"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
    docker("import", "-c", 'CMD ["/bin/sh"]', "-", name, stdin=buf.getvalue())
    return name


def status() -> dict[str, object]:
    data: dict[str, object] = json.loads(moorage("status", "--json").stdout)
    return data


def docker_socket() -> Path:
    return HOME / "run" / NAME / "docker.sock"


def guest(command: str, timeout: float = 900) -> str:
    proc = subprocess.run(
        ["moorage", "shell", "--machine", NAME, command],
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return proc.stdout


def rss_mb(pid: int) -> float:
    """A process's resident memory (VmRSS in /proc/PID/status), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """The CPU time a process used so far, user and system (/proc/PID/stat): the whole
    process's, every thread counted."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values)


def header(title: str) -> None:
    st = status() if (HOME / "run" / NAME / "agent.sock").exists() else {}
    print(f"# {title}")
    print(
        f"# host: {platform.node()} {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / (1 << 30):.0f} GiB; "
        f"accel: {st.get('accel', '?')}; driver: {st.get('driver', '?')}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
