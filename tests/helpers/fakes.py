"""Fakes of what the host agent works through, keeping the same Protocols
(``agent/deps.py``, ``vm/driver.py``), so every path of the agent, failures included,
runs in seconds without a VM.

The fake VM is a real, harmless child process (``sleep``): ``pid()`` names a process
that ``kill -9`` really kills, and the agent's VM watch sees it die as it would see
QEMU die. ``start`` writes the serial-log lines the guest would
(``vm/image/bootlog.py``). Every fake method can be made to raise: put the exception
under the method's name in the fake's ``fail`` dict.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moorage.agent.deps import Deps, EngineLink, GuestChannel, SharedMounts
from moorage.agent.stats import READ_COMMAND
from moorage.config import HostFacts
from moorage.engine.port_watcher import PortReport
from moorage.engine.ssh import GuestAddress
from moorage.errors import EngineError, MachineError
from moorage.paths import MachinePaths
from moorage.types import Forward
from moorage.vm.accel import AccelChoice
from moorage.vm.driver import DriverFeatures, MachineSpec, VMState
from moorage.vm.image.manifest import Manifest
from moorage.vm.spec import DATA_SERIAL
from tests.helpers.fake_swarm import FakeClusterSockets, FakeSwarm
from tests.helpers.images import write_image

BOOT_LINES = (
    "[    0.000000] Linux version 6.12 (a kernel line, not ours)",
    "moorage: init",
    "moorage: config default",
    "moorage: network up",
    "moorage: data 8G",
    "moorage: boot done",
)
ENGINE_VERSION = "26.1.5"


class Knobs:
    """``fail`` maps a method's name to what it raises every time, ``fail_once`` to
    what it raises the next time only; ``calls`` counts calls."""

    def __init__(self, fail: dict[str, BaseException] | None = None) -> None:
        self.fail: dict[str, BaseException] = dict(fail or {})
        self.fail_once: dict[str, BaseException] = {}
        self.calls: dict[str, int] = {}
        self._knob_lock = threading.Lock()

    def _call(self, method: str) -> None:
        with self._knob_lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            exc = self.fail_once.pop(method, None) or self.fail.get(method)
        if exc is not None:
            raise exc


# ----- the driver ------------------------------------------------------------------


class FakeDriver(Knobs):
    """A ``Driver`` whose VMs are ``sleep`` processes. One instance stands for the
    hypervisor: give the same one to two agents and the second finds the first's VM,
    as a real driver finds a VM it did not start."""

    def __init__(
        self,
        fail: dict[str, BaseException] | None = None,
        *,
        boot_lines: tuple[str, ...] = BOOT_LINES,
        stuck: bool = False,
        blind: bool = False,
    ) -> None:
        super().__init__(fail)
        self.features = DriverFeatures(
            name="fake",
            needs_daemon=False,
            accelerators=("kvm", "tcg"),
            shared_folders=("virtiofs",),
            runtime_forwards=True,
        )
        self.boot_lines = boot_lines
        self.stuck = stuck
        """``kill`` and a guest poweroff leave the VM running (a wedged hypervisor)."""
        self.blind = blind
        """``state`` answers STOPPED whatever runs (a driver that lost track of its VM)."""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.specs: dict[str, MachineSpec] = {}
        self.extra_forwards: dict[str, set[Forward]] = {}
        self.history: list[tuple[str, bool]] = []
        """(what ended a VM: ``kill`` or ``poweroff``, whether its data disk existed then)."""
        self._all: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def start(self, spec: MachineSpec) -> None:
        self._call("start")
        with self._lock:
            if self._alive(spec.name):
                raise MachineError(f"a VM named {spec.name!r} already runs")
            proc = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL)
            self._all.append(proc)
            self.procs[spec.name] = proc
            self.specs[spec.name] = spec
            self.extra_forwards[spec.name] = set()
        spec.serial_log.parent.mkdir(parents=True, exist_ok=True)
        spec.serial_log.write_text("".join(f"{line}\n" for line in self.boot_lines))

    def _alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def state(self, name: str) -> VMState:
        self._call("state")
        if self.blind:
            return VMState.STOPPED
        with self._lock:
            return VMState.RUNNING if self._alive(name) else VMState.STOPPED

    def pid(self, name: str) -> int | None:
        self._call("pid")
        with self._lock:
            return self.procs[name].pid if self._alive(name) else None

    def _end(self, name: str, how: str) -> None:
        with self._lock:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                return
            spec = self.specs[name]
            disk = next((d.path for d in spec.disks if d.serial == DATA_SERIAL), None)
            self.history.append((how, disk is not None and disk.exists()))
            if self.stuck:
                return
            proc.kill()
            proc.wait()

    def kill(self, name: str) -> None:
        self._call("kill")
        self._end(name, "kill")

    def poweroff(self, name: str) -> None:
        """What ``busybox poweroff`` in the guest does to the hypervisor."""
        self._end(name, "poweroff")

    def crash(self, name: str) -> int:
        """``kill -9`` the VM's process from outside, as a user or the OOM killer does;
        the process is left for the agent to notice (not reaped here)."""
        proc = self.procs[name]
        proc.kill()
        # Wait for it to die, without reaping it: a zombie is what the agent would see.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        return proc.pid

    def add_forward(self, name: str, forward: Forward) -> None:
        self._call("add_forward")
        self.extra_forwards.setdefault(name, set()).add(forward)

    def remove_forward(self, name: str, forward: Forward) -> None:
        self._call("remove_forward")
        self.extra_forwards.setdefault(name, set()).discard(forward)

    def forwards(self, name: str) -> set[Forward]:
        self._call("forwards")
        spec = self.specs.get(name)
        if spec is None or not self._alive(name):
            return set()
        return set(spec.forwards) | self.extra_forwards.get(name, set())

    def check_host(self) -> None:
        self._call("check_host")

    def reap(self) -> None:
        """End every VM process this driver made (fixture teardown)."""
        with self._lock:
            for proc in self._all:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()


# ----- the guest ---------------------------------------------------------------------


class FakeGuest(Knobs):
    """A ``GuestChannel``: the engine answers its probe, the clock agrees with the host's,
    and ``busybox poweroff`` ends the fake VM."""

    def __init__(self, guests: FakeGuests, addr: GuestAddress) -> None:
        super().__init__()
        # The factory's knobs hold for every guest, made or to come.
        self.fail, self.fail_once = guests.fail, guests.fail_once
        self.guests = guests
        self.addr = addr
        self.connected = False
        self.deadlines: list[float] = []
        self.commands: list[str] = []

    def connect(self, deadline: float, give_up: Callable[[], bool] = lambda: False) -> None:
        self._call("connect")
        self.deadlines.append(deadline)
        guests = self.guests
        with guests.lock:
            block = guests.block_connects > 0
            guests.block_connects -= block
        gate = guests.connect_gate
        if gate is not None:
            while not gate.wait(0.02) and not give_up():
                pass
        if block:
            # As GuestSSH does while the guest's sshd is not up: retry until the
            # deadline or until the caller gives up, then fail.
            guests.connecting.set()
            while time.monotonic() < deadline and not give_up():
                time.sleep(0.02)
            raise EngineError("the guest's SSH server did not answer in time: no answer")
        self.connected = True

    def alive(self) -> bool:
        return self.connected and not self.guests.link_dead

    def run(self, command: str, timeout: float = 60) -> tuple[int, str]:
        try:
            self._call("run")
        except EngineError:
            self.connected = False  # as GuestSSH: a failed command found the link gone
            raise
        self.commands.append(command)
        if "_ping" in command:
            return self._ping()
        if command == READ_COMMAND:
            return self.guests.read_counters()
        if command.startswith("date +%s"):
            return 0, f"{time.time() + self.guests.clock_offset:.6f}\n"
        if command.startswith("date -u -s"):
            self.guests.clock_offset = 0.0
            return 0, ""
        if "docker import" in command and self.guests.on_import is not None:
            self.guests.on_import(command)
            return 0, "sha256:0"
        if "poweroff" in command:
            gate = self.guests.poweroff_gate
            if gate is not None:
                gate.wait(10)
            if self.guests.poweroff_works:
                self.guests.driver.poweroff(self.addr.machine)
            return 0, ""
        return 0, ""

    def _ping(self) -> tuple[int, str]:
        spec = self.guests.driver.specs.get(self.addr.machine)
        image = spec.kernel.parent if spec is not None else None
        if spec is not None and image in self.guests.dockerd_exits:
            with spec.serial_log.open("a") as f:
                f.write("moorage: dockerd starting\n")  # init started it once more
            return 7, ""
        broken = image in self.guests.broken_images
        return (0, "OK") if self.guests.engine_up and not broken else (7, "")

    def close(self) -> None:
        self.connected = False


class FakeGuests:
    """The guest factory (``Deps.guest``), with the knobs of the guests it makes."""

    def __init__(self, driver: FakeDriver, fail: dict[str, BaseException] | None = None) -> None:
        self.driver = driver
        self.fail: dict[str, BaseException] = dict(fail or {})
        self.fail_once: dict[str, BaseException] = {}
        self.made: list[FakeGuest] = []
        self.lock = threading.Lock()
        self.block_connects = 0
        """How many of the next ``connect`` calls wait for their caller to give up."""
        self.connecting = threading.Event()
        """Set when a blocked ``connect`` begins."""
        self.connect_gate: threading.Event | None = None
        """When set, ``connect`` waits for this (or for its caller to give up) first."""
        self.link_dead = False
        """Every guest's ``alive()`` answers False."""
        self.on_import: Callable[[str], None] | None = None
        """Told of a ``docker import`` command (the swarm node image)."""
        self.engine_up = True
        self.broken_images: set[Path] = set()
        """Image folders whose engine never answers (the guest boots, dockerd hangs)."""
        self.dockerd_exits: set[Path] = set()
        """Image folders whose dockerd exits as soon as it starts: each engine probe
        finds that init started it once more (run-dockerd.sh's console line)."""
        self.poweroff_works = True
        self.poweroff_gate: threading.Event | None = None
        """``busybox poweroff`` waits for this, when set, before the VM goes down."""
        self.clock_offset = 0.0
        self.cpu_busy = 0
        self.cpu_total = 0
        self.busy_share = 0.25
        """Each read of the counters adds 400 jiffies, this share of them busy."""
        self.mem_total_kib = 2048 * 1024
        self.mem_available_kib = 1536 * 1024

    def read_counters(self) -> tuple[int, str]:
        """``READ_COMMAND``'s output: ``/proc/stat``'s cpu line (4 vCPUs) advanced by
        400 jiffies since the read before, then ``/proc/meminfo``."""
        with self.lock:
            self.cpu_total += 400
            self.cpu_busy += round(400 * self.busy_share)
            busy, idle = self.cpu_busy, self.cpu_total - self.cpu_busy
        user, system = busy // 2, busy - busy // 2
        out = (
            f"cpu  {user} 0 {system} {idle} 0 0 0 0 0 0\n"
            f"MemTotal:       {self.mem_total_kib} kB\n"
            "MemFree:          102400 kB\n"
            f"MemAvailable:   {self.mem_available_kib} kB\n"
            "Buffers:           10240 kB\n"
        )
        return 0, out

    def __call__(self, addr: GuestAddress, run_dir: Path) -> FakeGuest:
        guest = FakeGuest(self, addr)
        self.made.append(guest)
        return guest

    @property
    def last(self) -> FakeGuest:
        return self.made[-1]


# ----- the host's side of the engine, ports, contexts ------------------------------------


class FakeEngine(Knobs):
    """An ``EngineLink`` that answers unless ``answering`` is False."""

    def __init__(self, fail: dict[str, BaseException] | None = None) -> None:
        super().__init__(fail)
        self.answering = True
        self.opened: list[tuple[int, str]] = []
        self.twins: dict[Forward, bool] = {}

    def open(self, api_port: int, token: str) -> None:
        self._call("open")
        self.opened.append((api_port, token))

    def version(self, timeout: float) -> str:
        self._call("version")
        if not self.answering:
            raise EngineError("the engine does not answer through the fake socket")
        return ENGINE_VERSION

    def ping(self, timeout: float) -> bool:
        self._call("ping")
        return self.answering

    def describe(self, timeout: float) -> dict[str, Any]:
        self._call("describe")
        if not self.answering:
            raise EngineError("the engine does not answer through the fake socket")
        info = {"ServerVersion": ENGINE_VERSION, "Containers": 2, "Swarm": {"LocalNodeState":
                "inactive"}, "RegistryConfig": {"Mirrors": []}}  # fmt: skip
        return {"info": info, "version": {"Version": ENGINE_VERSION, "ApiVersion": "1.45"}}

    def twin(self, forward: Forward, on: bool) -> None:
        self._call("twin")
        self.twins[forward] = on

    def close(self) -> None:
        self._call("close")


class FakePorts(Knobs):
    """A ``Ports`` watcher: remembers what it was asked."""

    def __init__(
        self,
        add: Callable[[Forward], None],
        remove: Callable[[Forward], None],
        existing: set[Forward],
        expose: bool,
        report: PortReport,
    ) -> None:
        super().__init__()
        self.add, self.remove, self.report = add, remove, report
        self.existing = set(existing)
        self.expose = expose
        self.conflicts: list[str] = []
        self.running = False

    @property
    def active(self) -> list[str]:
        return sorted(f"{f.host_addr}:{f.host_port}/{f.proto}" for f in self.existing)

    def conflict_list(self) -> list[str]:
        return list(self.conflicts)

    def start(self) -> None:
        self._call("start")
        self.running = True

    def stop(self) -> None:
        self._call("stop")
        self.running = False

    def reconcile(self) -> None:
        self._call("reconcile")

    def retry(self) -> None:
        self._call("retry")
        self.conflicts.clear()


class FakePortsFactory:
    def __init__(self) -> None:
        self.made: list[FakePorts] = []

    def __call__(
        self,
        socket: Path,
        add: Callable[[Forward], None],
        remove: Callable[[Forward], None],
        existing: set[Forward],
        expose: bool,
        report: PortReport,
    ) -> FakePorts:
        ports = FakePorts(add, remove, existing, expose, report)
        self.made.append(ports)
        return ports


class FakeMounts(Knobs):
    """``SharedMounts``, the sshfs fallback: ``dying`` lists folders whose mount died."""

    def __init__(self, folders: list[Path]) -> None:
        super().__init__()
        self.folders = list(folders)
        self.dying: list[Path] = []
        self.remounted: list[Path] = []
        self.closed = False

    def mount_all(self) -> list[Path]:
        self._call("mount_all")
        return list(self.folders)

    def dead(self) -> list[Path]:
        return list(self.dying)

    def remount(self, folder: Path) -> None:
        self._call("remount")
        self.dying.remove(folder)
        self.remounted.append(folder)

    def close(self) -> None:
        self.closed = True


class FakeContexts(Knobs):
    """``Contexts``: docker contexts, as a set of machine names."""

    def __init__(self, fail: dict[str, BaseException] | None = None) -> None:
        super().__init__(fail)
        self.contexts: dict[str, Path] = {}
        self.current: str | None = None

    def ensure(self, machine: str, socket: Path) -> bool:
        self._call("ensure")
        self.contexts[machine] = socket
        return True

    def ensure_named(self, name: str, socket: Path, desc: str) -> bool:
        self._call("ensure")
        self.contexts[name] = socket
        return True

    def use(self, machine: str) -> None:
        self._call("use")
        self.current = machine

    def remove_named(self, name: str) -> None:
        self._call("remove")
        self.contexts.pop(name, None)

    def remove(self, machine: str) -> None:
        self._call("remove")
        self.contexts.pop(machine, None)

    def available(self) -> bool:
        return True


# ----- the image, and the whole set -----------------------------------------------------


def fake_image(folder: Path) -> tuple[Path, Manifest]:
    """A guest image folder with tiny files, as the image store would hand it over."""
    return folder, write_image(folder, version="test", engine_version=f"{ENGINE_VERSION}+dfsg1")


@dataclass
class Fakes:
    """Every fake one agent (or two, over the same machine) works through."""

    image_dir: Path
    driver: FakeDriver = field(default_factory=FakeDriver)
    engine: FakeEngine = field(default_factory=FakeEngine)
    contexts: FakeContexts = field(default_factory=FakeContexts)
    ports: FakePortsFactory = field(default_factory=FakePortsFactory)
    guests: FakeGuests = field(init=False)
    virtiofsd_found: bool = True
    sftp_found: bool = False
    image_fail: BaseException | None = None
    mounts: list[FakeMounts] = field(default_factory=list)
    swarm: FakeSwarm = field(default_factory=FakeSwarm)
    cluster_sockets: FakeClusterSockets = field(default_factory=FakeClusterSockets)

    def __post_init__(self) -> None:
        self.guests = FakeGuests(self.driver)
        self.guests.on_import = self.swarm.import_image


def fake_deps(fakes: Fakes) -> Deps:
    """A ``Deps`` over ``fakes``: TCG, a 4-CPU 8 GiB host, the fake image."""
    folder, manifest = fake_image(fakes.image_dir)

    def image(recipe: str, report: Callable[[str], None]) -> tuple[Path, Manifest]:
        if fakes.image_fail is not None:
            raise fakes.image_fail
        report(f"image {recipe} is ready (fake)")
        return folder, manifest

    def engine(paths: MachinePaths) -> EngineLink:
        return fakes.engine

    def sshfs(guest: GuestChannel, folders: list[Path]) -> SharedMounts:
        mounts = FakeMounts(folders)
        fakes.mounts.append(mounts)
        return mounts

    return Deps(
        driver=lambda name: fakes.driver,
        guest=fakes.guests,
        engine=engine,
        ports=fakes.ports,
        sshfs=sshfs,
        image=image,
        accel=lambda kernel, want: AccelChoice("tcg", "test"),
        host=lambda data_disk: HostFacts(cpus=4, memory_mib=8192),
        contexts=fakes.contexts,
        virtiofsd_found=lambda: fakes.virtiofsd_found,
        sftp_found=lambda: fakes.sftp_found,
        engines=fakes.swarm.engines,
        cluster_sockets=fakes.cluster_sockets,
    )


def write_config(paths: MachinePaths, **values: object) -> None:
    """The machine's config file: no shared folders, the smallest disk, plus ``values``."""
    settings: dict[str, object] = {"mounts": [], "disk_gib": 8, "driver": "qemu", **values}
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(
        "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    )
