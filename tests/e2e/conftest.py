"""End-to-end tier: a real VM (TCG on CI), the real moorage CLI, docker CLI and SDK.

One machine is booted per test module and shared by the tests that can share it;
the tests that restart or kill it run last, in file order. Everything made
lives under a temporary MOORAGE_HOME and is deleted at the end. Built guest
images are shared through the normal image cache (MOORAGE_CACHE), so that
`scripts/test` builds the image once.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from moorage.paths import cache_dir

BUSYBOX = Path("/bin/busybox")
TEST_IMAGE = "moorage-test/busybox:latest"
TOOLS = ("udp_echo", "mmap_shared")
"""Static C programs (tests/e2e/NAME.c) in the test image's /bin."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    machine = getattr(item, "funcargs", {}).get("machine")
    if report.failed and call.when == "call" and isinstance(machine, Machine):
        report.sections.append(("moorage logs", machine.diagnostics()))
    return report


@dataclass
class Machine:
    name: str
    env: dict[str, str]
    socket: Path

    def moorage(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["moorage", *args, *([] if args[0] == "image" else ["--machine", self.name])],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"moorage {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def docker(
        self, *args: str, input: bytes | None = None, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            ["docker", *args],
            env={**self.env, "DOCKER_HOST": f"unix://{self.socket}"},
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stderr.decode()}")
        return proc

    def status(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.moorage("status", "--json").stdout)
        return data

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix://{self.socket}", timeout=600)

    def diagnostics(self, lines: int = 40) -> str:
        """The tails of every log the machine keeps, for a failure report: CI keeps no files."""
        home = Path(self.env["MOORAGE_HOME"])
        parts = []
        for log in (
            home / "data" / "machines" / self.name / "agent.log",
            home / "run" / self.name / "ssh-master.log",
            home / "data" / "machines" / self.name / "serial.log",
        ):
            try:
                tail = log.read_text(errors="replace").splitlines()[-lines:]
            except OSError as exc:
                tail = [f"({exc})"]
            parts.append(f"--- {log}\n" + "\n".join(tail))
        engine = self.moorage("logs", "--engine", "-n", str(lines), check=False, timeout=60)
        parts.append("--- moorage logs --engine\n" + engine.stdout + engine.stderr)
        return "\n".join(parts)


def busybox_tar(extra: dict[str, Path] | None = None) -> bytes:
    """A root tree from Debian's busybox-static, the same way field notes make test images."""
    if not BUSYBOX.exists():
        pytest.fail("busybox-static is not installed (scripts/install-deps installs it)")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "tmp", "root"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in applets.stdout.split():
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
        for name, path in (extra or {}).items():
            tar.add(path, name)
    return buf.getvalue()


def unique(name: str) -> str:
    """Machine names are also libvirt domain names, which one libvirtd shares between
    every MOORAGE_HOME: two test runs at once must not drive each other's VMs."""
    return f"{name}-{os.getpid() % 100000}"


def _start(
    name: str, home: Path, driver: str | None = None, extra: str = "", memory_gib: float = 2
) -> Machine:
    env = {**os.environ, "MOORAGE_HOME": str(home), "MOORAGE_CACHE": str(cache_dir())}
    env.pop("DOCKER_HOST", None)
    config = home / "config" / "machines" / name / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f"cpus = 2\nmemory_gib = {memory_gib:g}\n"
        + (f'driver = "{driver}"\n' if driver else "")
        + extra
    )
    m = Machine(name, env, home / "run" / name / "docker.sock")
    started = time.monotonic()
    proc = m.moorage("start", check=False)
    print(f"moorage start ({driver or 'default driver'}) took {time.monotonic() - started:.0f}s")
    assert proc.returncode == 0, f"start failed:\n{proc.stdout}\n{proc.stderr}"
    return m


def shared_folder(machine: Machine, name: str) -> Path:
    """A host folder the shared machine has in its ``mounts``: ``share`` or ``gone``."""
    return Path(machine.env["MOORAGE_HOME"]) / name


@pytest.fixture(scope="session")
def machine() -> Iterator[Machine]:
    """One machine for every module that can share it (the desktop's tray, file sharing,
    then the machine tests, whose last tests restart and kill it: modules run in file
    order, which is why the tray's is ``test_desktop_tray.py``). It shares the default ``~`` and two
    folders of its own: ``share``, and ``gone``, which a test removes while mounted."""
    home = Path(f"/tmp/moorage-e2e-{os.getpid()}")
    for name in ("share", "gone"):
        (home / name).mkdir(parents=True)
    mounts = ", ".join(f'"{home / name}"' for name in ("share", "gone"))
    m = _start(unique("e2e"), home, extra=f'mounts = ["~", {mounts}]\n')
    try:
        for tool in TOOLS:
            source = Path(__file__).with_name(f"{tool}.c")
            subprocess.run(["gcc", "-static", "-O2", "-o", str(home / tool), str(source)],
                           check=True)  # fmt: skip
        image = busybox_tar({f"bin/{tool}": home / tool for tool in TOOLS})
        m.docker("import", "-c", 'CMD ["/bin/sh"]', "-", TEST_IMAGE, input=image)
        _first_container(m)
        yield m
    finally:
        m.moorage("delete", "--yes", check=False, timeout=300)
        subprocess.run(["rm", "-rf", str(home)], check=False)


def _first_container(m: Machine) -> None:
    """The machine runs a container before any test relies on it. Once, no retries: a
    first container that fails is a bug (one was seen: see TCG_CPU_MODEL), and its
    report carries the docker error and the machine's logs."""
    run = m.docker("run", "--rm", TEST_IMAGE, "true", check=False, timeout=300)
    if run.returncode != 0:
        raise AssertionError(
            f"the first container failed: {run.stderr.decode(errors='replace')}\n{m.diagnostics()}"
        )


@pytest.fixture
def fresh_home() -> Iterator[Path]:
    """A MOORAGE_HOME of the test's own; whatever machine the test left running is stopped."""
    home = Path(f"/tmp/moorage-e2e-x{os.getpid()}-{time.monotonic_ns() % 100000}")
    try:
        yield home
    finally:
        env = {**os.environ, "MOORAGE_HOME": str(home)}
        for run in (home / "run").glob("*/agent.sock"):
            subprocess.run(
                ["moorage", "stop", "--machine", run.parent.name],
                env=env,
                capture_output=True,
                timeout=300,
                check=False,
            )
        subprocess.run(["rm", "-rf", str(home)], check=False)
