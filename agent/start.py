"""The start of a machine as labelled, idempotent steps: host, image, vm, kernel,
engine, forwarders. A VM that already runs (its agent was killed and started again,
or the start repairs a degraded machine) is adopted, not booted: the vm and kernel
steps find their work done and the rest rebuild the links to it."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from moorage import config as config_mod
from moorage.agent import images
from moorage.agent.sharing import SharingPlan, plan_sharing
from moorage.api.schema import Cancelled, ForwardInfo
from moorage.engine.context import context_name
from moorage.engine.docker_socket import new_token
from moorage.engine.port_watcher import PortChange
from moorage.engine.ssh import GuestAddress, write_known_hosts
from moorage.errors import EngineError, MachineError, MoorageError, SharedFolderError
from moorage.paths import private_dir
from moorage.runtime import RuntimeRecord
from moorage.steps import Step, run_chain
from moorage.types import Forward
from moorage.vm import disks, provision, virtiofs
from moorage.vm.driver import Driver, VMState, guest_vcpus
from moorage.vm.image.bootlog import BootLogReader
from moorage.vm.image.manifest import Manifest
from moorage.vm.image.selection import LOCAL
from moorage.vm.spec import GuestReach, machine_spec

if TYPE_CHECKING:
    from moorage.agent.machine import MachineAgent

KERNEL_TIMEOUT = 300.0
ENGINE_TIMEOUT = 300.0
DOCKERD_STARTS = 3
"""The engine wait gives up at once when init has started dockerd this many times in
one boot and it has not answered: it exits as soon as it starts (a bad binary, bad
settings), and more waiting changes nothing. One that starts slowly starts once."""
ENGINE_PROBE = "curl -sf --max-time 5 --unix-socket /var/run/docker.sock http://docker/_ping"


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


@dataclass
class _Found:
    """What the steps learn, for the steps after them."""

    cfg: config_mod.MachineConfig | None = None
    driver: Driver | None = None
    image_dir: Path | None = None
    manifest: Manifest | None = None
    reach: GuestReach | None = None
    adopted: bool = False
    sharing: SharingPlan | None = None
    chosen: images.Chosen | None = None


class StartChain:
    def __init__(self, agent: MachineAgent) -> None:
        self.agent = agent
        self.paths = agent.paths
        self.name = agent.name
        self.found = _Found()

    def steps(self) -> list[Step]:
        return [
            Step("host", lambda: "checking the host", self.host),
            Step("image", lambda: f"guest image ({self.cfg.image})", self.image),
            Step(
                "vm",
                lambda: "adopting the running VM" if self._adoptable() else "booting the VM",
                self.vm,
            ),
            Step("kernel", lambda: "waiting for the guest to boot", self.kernel),
            Step("engine", lambda: "waiting for dockerd in the guest", self.engine),
            Step("forwarders", lambda: "forwarding the Docker socket to the host", self.forwarders),
        ]

    def run(self) -> None:
        agent = self.agent

        def announce(step: Step, label: str) -> None:
            agent.update(phase=step.phase)
            agent.events.emit("phase", label, phase=step.phase)

        def took(step: Step, seconds: float) -> None:
            with agent._lock:
                agent.status.phase_seconds[step.phase] = seconds

        try:
            run_chain(self.steps(), check_cancel=agent.check_cancel, announce=announce, took=took)
        except Cancelled:
            raise
        except MoorageError as exc:
            chosen = self.found.chosen
            # A stop makes waits give up with errors of their own: not the image's fault.
            if chosen is None or not chosen.trying or self.found.adopted or agent._cancel.is_set():
                raise
            self._roll_back(chosen, exc)
            self.found = _Found()
            self.staged_ok = False
            run_chain(self.steps(), check_cancel=agent.check_cancel, announce=announce, took=took)

    staged_ok = True
    """False once a staged image failed in this start: boot the current one."""

    def _roll_back(self, chosen: images.Chosen, exc: MoorageError) -> None:
        """The staged image failed: stop its VM, mark it failed, boot the current one.
        The data disk stays as it is; the next boot attaches the same file."""
        agent = self.agent
        with agent._lock:
            agent.vm_pid = None  # the VM watch stops watching before the kill
        if self.found.driver is not None and self.driver.state(self.name) is VMState.RUNNING:
            self.driver.kill(self.name)
        agent.disconnect()
        self.paths.ports_file.unlink(missing_ok=True)
        agent._vm_dead.clear()
        images.reject(self.cfg.image, chosen.version, exc.message,
                      lambda message: agent.warn("image-rollback", message))  # fmt: skip

    # The facts a step needs, which an earlier step found.
    @property
    def cfg(self) -> config_mod.MachineConfig:
        assert self.found.cfg is not None
        return self.found.cfg

    @property
    def driver(self) -> Driver:
        assert self.found.driver is not None
        return self.found.driver

    @property
    def reach(self) -> GuestReach:
        assert self.found.reach is not None
        return self.found.reach

    # ----- host ----------------------------------------------------------

    def host(self) -> None:
        agent = self.agent
        host = agent.deps.host(self.paths.data_disk)
        cfg = config_mod.load(self.paths.config_file, host)
        driver = agent.deps.driver(cfg.driver)
        agent.use_driver(driver)
        self.found.cfg, self.found.driver = cfg, driver
        agent.update(driver=cfg.driver, cpus=cfg.cpus, memory_gib=cfg.memory_gib,
                     disk_gib=cfg.disk_gib)  # fmt: skip
        driver.check_host()

    # ----- image ---------------------------------------------------------

    def image(self) -> None:
        agent = self.agent
        chosen = images.choose(self.cfg.image, agent.deps.image, agent.progress,
                               lambda message: agent.warn("image-rollback", message),
                               staged_ok=self.staged_ok)  # fmt: skip
        if chosen.trying:
            agent.progress(f"booting the staged guest image {chosen.version}")
        image_dir, manifest = chosen.folder, chosen.manifest
        self.found.image_dir, self.found.manifest, self.found.chosen = image_dir, manifest, chosen
        agent.image_version = manifest.version
        agent.image_manifest = manifest
        release = "" if chosen.version == LOCAL else f" (release {chosen.version})"
        self.agent.update(
            image=f"{manifest.recipe} {manifest.version}{release}",
            engine_version=manifest.engine_version.split("+")[0],
        )

    # ----- vm ------------------------------------------------------------

    def _adoptable(self) -> bool:
        record = RuntimeRecord.load(self.paths.ports_file)
        return record is not None and self.driver.state(self.name) is VMState.RUNNING

    def vm(self) -> None:
        agent, driver = self.agent, self.driver
        record = RuntimeRecord.load(self.paths.ports_file)
        running = driver.state(self.name) is VMState.RUNNING
        if running and record is not None:
            self.found.adopted = True
            self.found.reach = GuestReach(record.ssh_port, record.api_port, record.api_token)
            mechanism = record.file_sharing
            folders = tuple(Path(p) for p in record.sshfs_folders)
            self.found.sharing = SharingPlan(
                "sshfs" if mechanism == "sshfs" else "virtiofs" if mechanism else None, folders
            )
            agent.update(
                accel=record.accel,
                accel_reason=record.accel_reason,
                cpus=guest_vcpus(record.accel, self.cfg.cpus),
                file_sharing=record.file_sharing,
                shared_folders=list(record.shared_folders),
            )
        else:
            if running:
                # Running but with no record of its ports: it cannot be reached; restart it.
                driver.kill(self.name)
            self._boot()
        agent.vm_pid = driver.pid(self.name)
        agent.update(ssh_port=self.reach.ssh_port, vm_pid=agent.vm_pid)
        self._record()

    def _boot(self) -> None:
        agent, cfg = self.agent, self.cfg
        assert self.found.manifest is not None and self.found.image_dir is not None
        choice = agent.deps.accel(self.found.image_dir / self.found.manifest.kernel, cfg.accel)
        if cfg.accel == "kvm" and choice.accel != "kvm":
            raise MachineError(
                f'accel = "kvm" is configured but KVM is not usable: {choice.reason}',
                fix='set accel = "auto" to fall back to TCG, or fix KVM on this host',
            )
        agent.update(accel=choice.accel, accel_reason=choice.reason)
        if choice.warning:
            agent.warn("kvm-unusable", choice.warning)
        vcpus = guest_vcpus(choice.accel, cfg.cpus)
        if vcpus < cfg.cpus:
            agent.warn("tcg-vcpus", f"under TCG the VM gets {vcpus} vCPU, not {cfg.cpus}: the "
                       "guest kernel's live code patching races across emulated CPUs")  # fmt: skip
        agent.update(cpus=vcpus)
        agent.progress(f"accelerator: {choice.accel} ({choice.reason})")
        features = self.driver.features
        plan = plan_sharing(
            cfg.file_sharing,
            cfg.shared_folders(Path.home()),
            driver_name=features.name,
            driver_has_virtiofs="virtiofs" in features.shared_folders,
            virtiofsd_found=agent.deps.virtiofsd_found(),
            sftp_found=agent.deps.sftp_found(),
        )
        for code, message in plan.warnings:
            agent.warn(code, message)
        try:
            self._prepare_and_boot(choice.accel, plan)
        except SharedFolderError as exc:
            if cfg.file_sharing != "auto" or not agent.deps.sftp_found():
                raise
            agent.warn("sharing-fallback", f"shared folders use sshfs, which is slow: {exc}")
            self._prepare_and_boot(choice.accel, SharingPlan("sshfs", plan.folders))

    def _prepare_and_boot(self, accel: str, plan: SharingPlan) -> None:
        agent, cfg, paths, driver = self.agent, self.cfg, self.paths, self.driver
        assert self.found.manifest is not None and self.found.image_dir is not None
        self.found.sharing = plan
        agent.update(file_sharing=plan.mechanism, shared_folders=[])
        private_dir(paths.state)
        private_dir(paths.run)
        disks.ensure_data_disk(paths.data_disk, cfg.disk_gib)
        user_key = provision.ensure_keypair(paths.ssh_key, f"moorage-host@{self.name}")
        host_key = provision.ensure_keypair(paths.guest_host_key, f"moorage-guest@{self.name}")
        write_known_hosts(paths.known_hosts, f"moorage-{self.name}", host_key.public_line())
        ssh_port, api_port = free_ports(2)
        self.found.reach = GuestReach(ssh_port=ssh_port, api_port=api_port, api_token=new_token())
        virtiofs_folders = plan.folders if plan.mechanism == "virtiofs" else ()
        spec = machine_spec(
            name=self.name,
            cpus=guest_vcpus(accel, cfg.cpus),
            memory_mib=cfg.memory_mib,
            image_dir=self.found.image_dir,
            manifest=self.found.manifest,
            data_disk=paths.data_disk,
            config_disk=paths.config_disk,
            serial_log=paths.serial_log,
            run_dir=paths.run,
            accel="kvm" if accel == "kvm" else "tcg",
            reach=self.reach,
            uid=os.getuid(),
            gid=os.getgid(),
            shares=virtiofs_folders,
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
                sshfs_folders=plan.folders if plan.mechanism == "sshfs" else (),
                api_token=self.reach.api_token,
                virtiofs_inodes=(
                    virtiofs.guest_inode_budget(virtiofs.nofile_limit()) if spec.shares else None
                ),
            ),
        )
        paths.serial_log.unlink(missing_ok=True)
        began = time.monotonic()
        driver.start(spec)
        took = time.monotonic() - began
        slow = driver.features.slow_start_seconds
        if slow is not None and took > slow:
            agent.warn("slow-start", f"{driver.features.name} took {took:.0f}s to start the VM. "
                       f"{driver.features.slow_start_advice}")  # fmt: skip

    def _record(self) -> None:
        status = self.agent.snapshot()
        sharing = self.found.sharing
        RuntimeRecord(
            ssh_port=self.reach.ssh_port,
            api_port=self.reach.api_port,
            api_token=self.reach.api_token,
            vm_pid=self.agent.vm_pid,
            driver=status.driver,
            accel=status.accel,
            accel_reason=status.accel_reason,
            file_sharing=status.file_sharing,
            shared_folders=tuple(status.shared_folders),
            sshfs_folders=tuple(
                str(p)
                for p in (sharing.folders if sharing and sharing.mechanism == "sshfs" else ())
            ),
        ).save(self.paths.ports_file)

    # ----- kernel --------------------------------------------------------

    def kernel(self) -> None:
        if self.found.adopted:
            return
        agent = self.agent
        reader = BootLogReader(self.paths.serial_log)
        deadline = time.monotonic() + KERNEL_TIMEOUT
        while time.monotonic() < deadline:
            agent.check_cancel()
            if self.driver.state(self.name) is not VMState.RUNNING:
                raise MachineError(
                    f"the VM stopped while booting; see {self.paths.serial_log}",
                    fix="`moorage logs` shows the console",
                )
            for event in reader.read_new():
                if event.kind == "error":
                    raise MachineError(f"the guest failed to boot: {event.text}")
                if event.kind == "warning":
                    agent.warn("guest", event.text)
                elif event.kind == "shared":
                    with agent._lock:
                        agent.status.shared_folders.append(event.text)
                elif event.kind == "progress":
                    agent.progress(event.text)
                elif event.kind == "done":
                    self._record()
                    return
            time.sleep(0.2)
        raise MachineError(
            f"the guest did not finish booting in {KERNEL_TIMEOUT:.0f}s; see {self.paths.serial_log}"
        )

    # ----- engine --------------------------------------------------------

    def engine(self) -> None:
        agent, paths = self.agent, self.paths
        addr = GuestAddress(self.name, self.reach.ssh_port, paths.ssh_key, paths.known_hosts)
        guest = agent.deps.guest(addr, paths.run)
        with agent._lock:
            agent.guest = guest
        guest.connect(time.monotonic() + ENGINE_TIMEOUT, give_up=agent.give_up)
        agent.check_cancel()
        sharing = self.found.sharing
        if sharing is not None and sharing.mechanism == "sshfs":
            # Before the engine: the guest's dockerd waits for these mounts.
            mounts = agent.deps.sshfs(guest, list(sharing.folders))
            with agent._lock:
                agent.sshfs = mounts
            agent.update(shared_folders=[str(f) for f in mounts.mount_all()])
        self._wait_guest_engine()
        if self.found.chosen is not None and not self.found.adopted:
            images.ready(self.cfg.image, self.found.chosen)

    def _wait_guest_engine(self) -> None:
        agent = self.agent
        guest = agent.guest
        assert guest is not None
        deadline = time.monotonic() + ENGINE_TIMEOUT
        # This boot's starts of dockerd (run-dockerd.sh says each on the console); an
        # adopted VM's earlier ones, from before this agent, are not this wait's.
        console = BootLogReader(self.paths.serial_log)
        if self.found.adopted:
            console.read_new()
        starts = 0
        while time.monotonic() < deadline:
            agent.check_cancel()
            try:
                rc, out = guest.run(ENGINE_PROBE, timeout=15)
            except EngineError as exc:
                # A guest busy starting dockerd can stall one probe, or drop the SSH
                # connection: neither means the engine will not come.
                agent.progress(f"engine probe: {exc}")
                if not guest.alive():
                    guest.connect(deadline, give_up=agent.give_up)
                continue
            if rc == 0 and out.strip() == "OK":
                return
            before = starts
            starts += sum(event.kind == "dockerd" for event in console.read_new())
            if starts >= DOCKERD_STARTS:
                raise EngineError(
                    f"dockerd in the guest exits as soon as it starts ({starts} times)",
                    fix="`moorage logs --engine` shows why",
                )
            if starts > max(before, 1):
                agent.progress(
                    f"dockerd in the guest exited at once; init started it again (start {starts})"
                )
            time.sleep(0.5)
        raise EngineError(
            f"dockerd in the guest did not answer in {ENGINE_TIMEOUT:.0f}s",
            fix="`moorage logs --engine` shows dockerd's log",
        )

    # ----- forwarders ----------------------------------------------------

    def forwarders(self) -> None:
        agent, paths, driver = self.agent, self.paths, self.driver
        private_dir(paths.run)
        agent.engine.open(self.reach.api_port, self.reach.api_token)
        version = agent.engine.version(30)
        agent.update(engine_version=version)
        try:
            if agent.deps.contexts.ensure(self.name, paths.docker_socket):
                agent.update(docker_context=context_name(self.name))
                agent.progress(f"docker context {context_name(self.name)!r} is set up")
        except EngineError as exc:
            agent.warn("context", str(exc))

        def add(forward: Forward) -> None:
            driver.add_forward(self.name, forward)
            agent.engine.twin(forward, True)

        def remove(forward: Forward) -> None:
            agent.engine.twin(forward, False)
            driver.remove_forward(self.name, forward)

        def report(change: PortChange, forward: Forward, message: str) -> None:
            agent.events.emit("forward", message, change=change, forward=ForwardInfo.of(forward))

        # An adopted VM still has the forwards its previous agent made: take them over
        # (and their IPv6 twins, which lived in that agent) so reconciling starts from
        # the truth. The SSH and Docker API forwards are not published ports.
        existing = {
            f for f in driver.forwards(self.name) if f.host_port not in self.reach.host_ports
        }
        for forward in existing:
            agent.engine.twin(forward, True)
        ports = agent.deps.ports(
            paths.docker_socket, add, remove, existing, self.cfg.expose_ports, report
        )
        with agent._lock:
            agent.ports = ports
        ports.start()
