"""What the host agent does with its machine: start (or adopt), watch, stop.

Start is a chain of labelled steps (colima's ``cli/chain.go``): image, vm,
kernel, engine, forwarders, each announced as an event, so the CLI and the
tray show progress without knowing what a step does. A VM that is already
running (the agent was killed and restarted) is adopted instead of booted.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import docker

from moorage import config as config_mod
from moorage.api.schema import Event, Kind, State, Status
from moorage.engine import context, sshfs
from moorage.engine.docker_socket import DockerSocket, new_token
from moorage.engine.port_watcher import PortWatcher
from moorage.engine.relay import RelayLoop
from moorage.engine.ssh import GuestAddress, GuestSSH, write_known_hosts
from moorage.engine.v6_relay import V6Relay
from moorage.errors import EngineError, MachineError, MoorageError, SharedFolderError
from moorage.paths import MachinePaths, private_dir, runtime_dir
from moorage.vm import accel as accel_mod
from moorage.vm import disks, drivers, provision, virtiofs
from moorage.vm.driver import Driver, Forward, VMState, guest_vcpus
from moorage.vm.image import manifest as manifest_mod
from moorage.vm.image import store
from moorage.vm.spec import GuestReach, machine_spec

log = logging.getLogger("moorage.agent")

KERNEL_TIMEOUT = 300.0
ENGINE_TIMEOUT = 300.0
STOP_TIMEOUT = 60.0
HEALTH_INTERVAL = 2.0
PING_EVERY = 15.0
CLOCK_EVERY = 60.0
CLOCK_DRIFT = 1.0


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free right now (all held open while choosing)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class EventLog:
    """Every event of this agent's life, for clients that subscribe late."""

    def __init__(self, keep: int = 1000) -> None:
        self._events: list[Event] = []
        self._next = 1
        self._keep = keep
        self._cond = threading.Condition()

    def emit(self, kind: Kind, message: str, **fields: Any) -> Event:
        with self._cond:
            event = Event(id=self._next, kind=kind, message=message, **fields)
            self._next += 1
            self._events = [*self._events[-(self._keep - 1) :], event]
            self._cond.notify_all()
        log.info("%s %s %s", kind, fields.get("phase") or fields.get("state") or "", message)
        return event

    @property
    def last_id(self) -> int:
        with self._cond:
            return self._next - 1

    def after(self, since: int, timeout: float) -> list[Event]:
        """Events with id > since, waiting up to ``timeout`` for the first one."""
        with self._cond:
            self._cond.wait_for(lambda: self._next - 1 > since, timeout)
            return [e for e in self._events if e.id > since]


class MachineAgent:
    def __init__(self, name: str) -> None:
        self.name = name
        self.paths = MachinePaths(name)
        self.events = EventLog()
        self.status = Status(machine=name, agent_pid=os.getpid())
        self._lock = threading.Lock()
        self._busy = threading.Lock()
        # Set by stop: a start still booting gives up at its next check instead of
        # making the stop wait minutes for a boot nobody wants any more.
        self._cancel = threading.Event()
        self._driver: Driver | None = None
        self._guest: GuestSSH | None = None
        self._ports: PortWatcher | None = None
        self._sshfs: sshfs.ReverseSshfs | None = None
        relays = RelayLoop("relays")
        self._v6 = V6Relay(relays)
        self._docker_socket = DockerSocket(relays, self.paths.docker_socket)
        self._stopping = False
        self.exit_requested = threading.Event()

    # ----- state -------------------------------------------------------

    def _set(self, state: State, message: str, **changes: Any) -> None:
        with self._lock:
            self.status.state = state
            for key, value in changes.items():
                setattr(self.status, key, value)
        self.events.emit("state", message, state=state)

    def snapshot(self) -> Status:
        with self._lock:
            status = Status.from_json(self.status.to_json())
        if self._ports is not None:
            status.ports = self._ports.active
            status.port_conflicts = sorted(self._ports.conflicts.values())
        return status

    # ----- start -------------------------------------------------------

    def request_start(self) -> int:
        """Begin a start in the background unless one runs or the machine is up.

        A ``degraded`` machine is started again: the chain adopts its running VM
        and rebuilds the SSH connection and the socket forward. Returns the id of
        the last event before the start, for clients to follow.
        """
        since = self.events.last_id
        if self.status.state == "running":
            self.events.emit("ready", "already running")
            return since
        if self.status.state in ("starting", "stopping"):
            return since
        self._stopping = False
        self._cancel.clear()
        self._set("starting", "starting", error=None, warnings=[], phase_seconds={})
        threading.Thread(target=self._start, name="start", daemon=True).start()
        return since

    def _start(self) -> None:
        with self._busy:
            try:
                self._start_chain()
            except MoorageError as exc:
                self._fail(str(exc))
            except Exception as exc:
                log.exception("start failed")
                self._fail(f"unexpected error: {exc!r}")

    def _fail(self, message: str) -> None:
        self._disconnect()
        vm_running = self._driver is not None and self._driver.state(self.name) is VMState.RUNNING
        self.events.emit("error", message, phase=self.status.phase)
        self._set(
            "degraded" if vm_running else "stopped", "start failed", error=message, phase=None
        )

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise MachineError("the start was cancelled by `moorage stop`")

    def _phase(self, name: str, message: str) -> float:
        self._check_cancel()
        with self._lock:
            self.status.phase = name
        self.events.emit("phase", message, phase=name)
        return time.monotonic()

    def _done(self, name: str, started: float) -> None:
        with self._lock:
            self.status.phase_seconds[name] = round(time.monotonic() - started, 2)

    def _progress(self, line: str) -> None:
        self.events.emit("progress", line, phase=self.status.phase)

    def _port_news(self, message: str) -> None:
        """Port conflicts come and go: events only, ``status`` shows the live list."""
        self.events.emit("warning", message)

    def _warn(self, message: str) -> None:
        with self._lock:
            self.status.warnings.append(message)
        self.events.emit("warning", message)

    def _start_chain(self) -> None:
        paths = self.paths
        host = config_mod.HostFacts.read(paths.data_disk)
        cfg = config_mod.load(paths.config_file, host)
        driver = drivers.get(cfg.driver)
        self._driver = driver
        with self._lock:
            self.status.driver = cfg.driver
            self.status.cpus, self.status.memory_gib = cfg.cpus, cfg.memory_gib
            self.status.disk_gib = cfg.disk_gib
        driver.check_host()

        t = self._phase("image", f"guest image ({cfg.image})")
        image_dir = store.ensure(cfg.image, self._progress)
        manifest = manifest_mod.verify(image_dir)
        with self._lock:
            self.status.image = f"{manifest.recipe} {manifest.version}"
            self.status.engine_version = manifest.engine_version.split("+")[0]
        self._done("image", t)

        runtime = self._read_runtime()
        recorded = GuestReach.from_record(runtime)
        adopt = driver.state(self.name) is VMState.RUNNING and recorded is not None
        sshfs_folders: list[Path] = []
        t = self._phase("vm", "adopting the running VM" if adopt else "booting the VM")
        if adopt:
            assert runtime is not None and recorded is not None
            reach = recorded
            with self._lock:
                self.status.accel = runtime.get("accel")
                self.status.accel_reason = runtime.get("accel_reason")
                self.status.cpus = guest_vcpus(self.status.accel, cfg.cpus)
                self.status.file_sharing = runtime.get("file_sharing")
                self.status.shared_folders = list(runtime.get("shared_folders", []))
            sshfs_folders = [Path(p) for p in runtime.get("sshfs_folders", [])]
        else:
            if driver.state(self.name) is VMState.RUNNING:
                # Running but with no record of its ports: it cannot be reached; restart it.
                driver.kill(self.name)
            qemu = accel_mod.find_qemu() or "qemu-system-x86_64"
            choice = accel_mod.choose(
                qemu, image_dir / manifest.kernel, runtime_dir() / "accel.json", want=cfg.accel
            )
            if cfg.accel == "kvm" and choice.accel != "kvm":
                raise MachineError(
                    f'accel = "kvm" is configured but KVM is not usable: {choice.reason}',
                    fix='set accel = "auto" to fall back to TCG, or fix KVM on this host',
                )
            with self._lock:
                self.status.accel, self.status.accel_reason = choice.accel, choice.reason
            if choice.warning:
                self._warn(choice.warning)
            vcpus = guest_vcpus(choice.accel, cfg.cpus)
            if vcpus < cfg.cpus:
                self._warn(
                    f"under TCG the VM gets {vcpus} vCPU, not {cfg.cpus}: the guest "
                    "kernel's live code patching races across emulated CPUs"
                )
            with self._lock:
                self.status.cpus = vcpus
            self._progress(f"accelerator: {choice.accel} ({choice.reason})")
            folders = self._choose_sharing(cfg, driver)
            if self.status.file_sharing == "sshfs":
                sshfs_folders = folders
            try:
                reach = self._prepare_and_boot(
                    cfg, image_dir, manifest, choice.accel, driver, folders=folders
                )
            except SharedFolderError as exc:
                if cfg.file_sharing != "auto" or sshfs.find_sftp_server() is None:
                    raise
                self._warn(f"shared folders use sshfs, which is slow: {exc}")
                with self._lock:
                    self.status.file_sharing = "sshfs"
                sshfs_folders = folders
                reach = self._prepare_and_boot(
                    cfg, image_dir, manifest, choice.accel, driver, folders=folders
                )
        vm_pid = driver.pid(self.name)
        with self._lock:
            self.status.ssh_port, self.status.vm_pid = reach.ssh_port, vm_pid
        self._write_runtime(reach, vm_pid, sshfs_folders)
        self._done("vm", t)

        t = self._phase("kernel", "waiting for the guest to boot")
        if not adopt:
            self._wait_kernel(driver)
            self._write_runtime(reach, vm_pid, sshfs_folders)
        self._done("kernel", t)

        t = self._phase("engine", "waiting for dockerd in the guest")
        addr = GuestAddress(self.name, reach.ssh_port, paths.ssh_key, paths.known_hosts)
        self._guest = GuestSSH(addr, paths.run)
        self._guest.connect(time.monotonic() + ENGINE_TIMEOUT, give_up=self._cancel.is_set)
        if self.status.file_sharing == "sshfs":
            # Before the engine: the guest's dockerd waits for these mounts.
            self._mount_sshfs(sshfs_folders)
        self._wait_guest_engine(self._guest)
        self._done("engine", t)

        t = self._phase("forwarders", "forwarding the Docker socket to the host")
        private_dir(paths.run)
        self._docker_socket.open(reach.api_port, reach.api_token)
        client = docker.DockerClient(base_url=f"unix://{paths.docker_socket}", timeout=30)
        try:
            version = client.version().get("Version", "?")
        except docker.errors.DockerException as exc:
            raise EngineError(
                f"the engine does not answer through {paths.docker_socket}: {exc}"
            ) from exc
        finally:
            client.close()
        try:
            if context.ensure(self.name, paths.docker_socket):
                self._progress(f"docker context {context.context_name(self.name)!r} is set up")
        except EngineError as exc:
            self._warn(str(exc))

        def add(forward: Forward) -> None:
            driver.add_forward(self.name, forward)
            self._v6.add(forward)

        def remove(forward: Forward) -> None:
            self._v6.remove(forward)
            driver.remove_forward(self.name, forward)

        # An adopted VM still has the forwards its previous agent made: take them over
        # (and their IPv6 twins, which lived in that agent) so reconciling starts from
        # the truth. The SSH and Docker API forwards are not published ports.
        existing = {f for f in driver.forwards(self.name) if f.host_port not in reach.host_ports}
        for forward in existing:
            self._v6.add(forward)
        self._ports = PortWatcher(
            paths.docker_socket,
            add,
            remove,
            existing=existing,
            expose=cfg.expose_ports,
            report=self._port_news,
        )
        self._ports.start()
        self._done("forwarders", t)
        self._sync_clock()
        self._set(
            "running",
            "ready",
            phase=None,
            engine_version=version,
            docker_socket=str(paths.docker_socket),
        )
        self.events.emit("ready", f"ready: docker engine {version} at {paths.docker_socket}")

    def _prepare_and_boot(
        self,
        cfg: config_mod.MachineConfig,
        image_dir: Path,
        manifest: manifest_mod.Manifest,
        accel: Any,
        driver: Driver,
        *,
        folders: list[Path],
    ) -> GuestReach:
        paths = self.paths
        private_dir(paths.state)
        private_dir(paths.run)
        disks.ensure_data_disk(paths.data_disk, cfg.disk_gib)
        user_key = provision.ensure_keypair(paths.ssh_key, f"moorage-host@{self.name}")
        host_key = provision.ensure_keypair(paths.guest_host_key, f"moorage-guest@{self.name}")
        write_known_hosts(paths.known_hosts, f"moorage-{self.name}", host_key.public_line())
        ssh_port, api_port = free_ports(2)
        reach = GuestReach(ssh_port=ssh_port, api_port=api_port, api_token=new_token())
        spec = machine_spec(
            name=self.name,
            cpus=guest_vcpus(accel, cfg.cpus),
            memory_mib=cfg.memory_mib,
            image_dir=image_dir,
            manifest=manifest,
            data_disk=paths.data_disk,
            config_disk=paths.config_disk,
            serial_log=paths.serial_log,
            run_dir=paths.run,
            accel=accel,
            reach=reach,
            uid=os.getuid(),
            gid=os.getgid(),
            shares=folders if self.status.file_sharing == "virtiofs" else (),
        )
        provision.write_config_disk(
            paths.config_disk,
            provision.config_files(
                machine=self.name,
                hostname=f"moorage-{self.name}",
                authorized_key=user_key.public_line(),
                host_key=host_key,
                nics=spec.nics,
                engine=cfg.engine,
                shares=spec.shares,
                sshfs_folders=folders if self.status.file_sharing == "sshfs" else (),
                api_token=reach.api_token,
                virtiofs_inodes=(
                    virtiofs.guest_inode_budget(virtiofs.nofile_limit()) if spec.shares else None
                ),
            ),
        )
        paths.serial_log.unlink(missing_ok=True)
        began = time.monotonic()
        driver.start(spec)
        took = time.monotonic() - began
        if took > 20 and driver.features.name == "libvirt":
            self._warn(
                f"libvirt took {took:.0f}s to start the VM. Where /dev/kvm exists but KVM cannot "
                "run guests, libvirt 9 re-probes QEMU on every start: run scripts/libvirtd-up "
                '--kvm-unusable once, or set driver = "qemu"'
            )
        return reach

    def _choose_sharing(self, cfg: config_mod.MachineConfig, driver: Driver) -> list[Path]:
        """Decide how the configured folders are shared, and return them. ``auto``:
        virtiofs where the driver and the host have it, else sshfs. With neither the
        machine still starts, with a warning: the engine is useful without shared
        folders, and bind mounts then see the guest's own empty folders."""
        folders = cfg.shared_folders(Path.home())
        virtiofs_ok = (
            "virtiofs" in driver.features.shared_folders and virtiofs.find_virtiofsd() is not None
        )
        mechanism = None
        if not folders:
            pass
        elif cfg.file_sharing in ("auto", "virtiofs") and virtiofs_ok:
            mechanism = "virtiofs"
        elif cfg.file_sharing == "virtiofs":
            raise MachineError(
                f'file_sharing = "virtiofs", but {self._why_no_virtiofs(driver)}',
                fix='install it, or set file_sharing = "auto" to fall back to sshfs',
            )
        elif sshfs.find_sftp_server() is not None:
            mechanism = "sshfs"
            if cfg.file_sharing == "auto":
                self._warn(
                    f"shared folders use sshfs, which is slow: {self._why_no_virtiofs(driver)}"
                )
        else:
            self._warn(
                f"shared folders are off: {self._why_no_virtiofs(driver)}, and sftp-server "
                "(openssh-sftp-server) for the sshfs fallback is not installed either"
            )
            folders = []
        with self._lock:
            self.status.file_sharing = mechanism
            self.status.shared_folders = []
        return folders

    @staticmethod
    def _why_no_virtiofs(driver: Driver) -> str:
        if "virtiofs" not in driver.features.shared_folders:
            return f"the {driver.features.name} driver has no virtiofs"
        return (
            "virtiofsd is not installed (Debian 12: qemu-system-common; Debian 13, "
            "Ubuntu: virtiofsd)"
        )

    def _mount_sshfs(self, folders: list[Path]) -> None:
        assert self._guest is not None
        self._sshfs = sshfs.ReverseSshfs(self._guest, folders)
        mounted = self._sshfs.mount_all()
        with self._lock:
            self.status.shared_folders = [str(f) for f in mounted]

    def _wait_kernel(self, driver: Driver) -> None:
        deadline = time.monotonic() + KERNEL_TIMEOUT
        seen = 0
        while time.monotonic() < deadline:
            self._check_cancel()
            if driver.state(self.name) is not VMState.RUNNING:
                raise MachineError(
                    f"the VM stopped while booting; see {self.paths.serial_log}",
                    fix="`moorage logs` shows the console",
                )
            try:
                text = self.paths.serial_log.read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            # Whole lines only: the guest may be half way through writing the last one.
            lines = text[: text.rfind("\n") + 1].splitlines()
            for line in lines[seen:]:
                if line.startswith("moorage: error"):
                    raise MachineError(
                        f"the guest failed to boot: {line.removeprefix('moorage: ')}"
                    )
                if line.startswith("moorage: warning: "):
                    self._warn(line.removeprefix("moorage: warning: "))
                    continue
                if line.startswith("moorage: shared "):
                    with self._lock:
                        self.status.shared_folders.append(
                            line.removeprefix("moorage: shared ").rsplit(" (", 1)[0]
                        )
                if line.startswith("moorage: "):
                    self._progress(line.removeprefix("moorage: "))
                if line.startswith("moorage: boot done"):
                    return
            seen = max(seen, len(lines))
            time.sleep(0.2)
        raise MachineError(
            f"the guest did not finish booting in {KERNEL_TIMEOUT:.0f}s; see {self.paths.serial_log}"
        )

    def _wait_guest_engine(self, guest: GuestSSH) -> None:
        deadline = time.monotonic() + ENGINE_TIMEOUT
        probe = "curl -sf --max-time 5 --unix-socket /var/run/docker.sock http://docker/_ping"
        while time.monotonic() < deadline:
            self._check_cancel()
            try:
                rc, out = guest.run(probe, timeout=15)
            except EngineError as exc:
                # A guest busy starting dockerd can stall one probe, or drop the SSH
                # connection: neither means the engine will not come.
                log.info("engine probe: %s", exc)
                if not guest.alive():
                    guest.connect(deadline, give_up=self._cancel.is_set)
                continue
            if rc == 0 and out.strip() == "OK":
                return
            time.sleep(0.5)
        raise EngineError(
            f"dockerd in the guest did not answer in {ENGINE_TIMEOUT:.0f}s",
            fix="`moorage logs --engine` shows dockerd's log",
        )

    # ----- runtime record ---------------------------------------------

    def _read_runtime(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.paths.ports_file.read_text())
            return data
        except (OSError, ValueError):
            return None

    def _write_runtime(
        self, reach: GuestReach, vm_pid: int | None, sshfs_folders: list[Path]
    ) -> None:
        record = {
            **reach.record(),
            "vm_pid": vm_pid,
            "driver": self.status.driver,
            "accel": self.status.accel,
            "accel_reason": self.status.accel_reason,
            "file_sharing": self.status.file_sharing,
            "shared_folders": self.status.shared_folders,
            "sshfs_folders": [str(p) for p in sshfs_folders],
        }
        # 0600: it holds the Docker API's token.
        fd = os.open(self.paths.ports_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(json.dumps(record))

    # ----- health ------------------------------------------------------

    def health_loop(self) -> None:
        last_ping = last_clock = prev_mono = time.monotonic()
        prev_wall = time.time()
        while not self.exit_requested.wait(HEALTH_INTERVAL):
            try:
                now, wall = time.monotonic(), time.time()
                # The monotonic clock stops while the host sleeps and the wall clock does
                # not: a gap between them means the guest's clock fell behind too.
                jumped = abs((wall - prev_wall) - (now - prev_mono)) > 5
                prev_mono, prev_wall = now, wall
                # Not while a start or stop runs, and none may begin while this repairs:
                # a reconnect racing a start once made the start find its own socket taken.
                if self.status.state not in ("running", "degraded"):
                    continue
                if not self._busy.acquire(blocking=False):
                    continue
                try:
                    last_ping, last_clock = self._health_once(now, jumped, last_ping, last_clock)
                finally:
                    self._busy.release()
            except MoorageError as exc:
                log.warning("health check: %s", exc)
            except Exception:
                log.exception("health check failed")

    def _health_once(
        self, now: float, jumped: bool, last_ping: float, last_clock: float
    ) -> tuple[float, float]:
        """One round of checks and repairs; returns when the engine and the clock were
        last checked."""
        if self._cancel.is_set():
            return last_ping, last_clock
        self._check_vm()
        if self.status.state not in ("running", "degraded"):
            return last_ping, last_clock
        if self._guest is not None and not self._guest.alive():
            self._warn("the SSH connection to the guest died; reconnecting")
            self._guest.connect(time.monotonic() + 60, give_up=self._cancel.is_set)
        if self._sshfs is not None:
            for folder in self._sshfs.dead():
                self._warn(f"the sshfs mount of {folder} died; mounting it again")
                self._sshfs.remount(folder)
        if self._ports is not None and self._ports.conflicts:
            self._ports.retry()
        if now - last_ping >= PING_EVERY:
            last_ping = now
            self._check_engine()
            if self._ports is not None:
                self._ports.reconcile()
        if jumped or now - last_clock >= CLOCK_EVERY:
            last_clock = now
            self._sync_clock()
        return last_ping, last_clock

    def _check_vm(self) -> None:
        assert self._driver is not None
        if self._driver.state(self.name) is VMState.RUNNING or self._stopping:
            return
        # Declaring a crash tears down the forwards: look twice before doing it.
        time.sleep(1)
        if self._driver.state(self.name) is VMState.RUNNING or self._stopping:
            log.warning("the VM looked stopped for a moment; it runs")
            return
        self._disconnect()
        self.paths.ports_file.unlink(missing_ok=True)
        message = "the VM stopped unexpectedly (killed or crashed); `moorage start` boots it again"
        self.events.emit("error", message)
        self._set("crashed", message, vm_pid=None, error=message)

    def _check_engine(self) -> None:
        client = docker.DockerClient(base_url=f"unix://{self.paths.docker_socket}", timeout=10)
        try:
            client.ping()
            healthy = True
        except docker.errors.DockerException:
            healthy = False
        finally:
            client.close()
        if healthy and self.status.state == "degraded":
            self._set("running", "the engine answers again", error=None)
        elif not healthy and self.status.state == "running":
            self._set("degraded", "the engine does not answer", error="the engine does not answer")

    def _sync_clock(self) -> None:
        """Set the guest clock from the host's when they drift apart (after host sleep)."""
        if self._guest is None:
            return
        rc, out = self._guest.run("date +%s.%N", timeout=10)
        if rc != 0:
            return
        try:
            drift = float(out.strip()) - time.time()
        except ValueError:
            return
        if abs(drift) > CLOCK_DRIFT:
            self._guest.run(f"date -u -s @{time.time():.3f} >/dev/null", timeout=10)
            self.events.emit("progress", f"guest clock was {drift:+.1f}s off; set from the host")

    # ----- stop --------------------------------------------------------

    def stop(self, then_exit: bool = True) -> None:
        self._cancel.set()
        with self._busy:
            self._stopping = True
            self._set("stopping", "stopping")
            driver = self._driver or drivers.get(self._configured_driver())
            if driver.state(self.name) is VMState.RUNNING:
                self._poweroff(driver)
            self._disconnect()
            self.paths.ports_file.unlink(missing_ok=True)
            self._set("stopped", "stopped", vm_pid=None, phase=None)
        if then_exit:
            self.exit_requested.set()

    def _disconnect(self) -> None:
        if self._ports is not None:
            self._ports.stop()
            self._ports = None
        self._v6.clear()
        if self._sshfs is not None:
            self._sshfs.close()
            self._sshfs = None
        if self._guest is not None:
            self._guest.close()
        self._docker_socket.close()

    def _configured_driver(self) -> str:
        try:
            return str(config_mod.read_file(self.paths.config_file).get("driver", drivers.DEFAULT))
        except MoorageError:
            return drivers.DEFAULT

    def _poweroff(self, driver: Driver) -> None:
        runtime = self._read_runtime()
        try:
            if (self._guest is None or not self._guest.alive()) and runtime is not None:
                addr = GuestAddress(
                    self.name, int(runtime["ssh_port"]), self.paths.ssh_key, self.paths.known_hosts
                )
                self._guest = GuestSSH(addr, self.paths.run)
                self._guest.connect(time.monotonic() + 15)
            if self._guest is None:
                raise EngineError("no SSH address recorded for the guest")
            self._guest.run("busybox poweroff", timeout=10)
        except EngineError as exc:
            # Unreachable (still booting, or its sshd is gone): nothing to shut down cleanly.
            log.warning("graceful poweroff impossible (%s); stopping the VM hard", exc)
            driver.kill(self.name)
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while driver.state(self.name) is VMState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
        if driver.state(self.name) is VMState.RUNNING:
            self._warn(f"the guest did not power off in {STOP_TIMEOUT:.0f}s; stopping it hard")
            driver.kill(self.name)
