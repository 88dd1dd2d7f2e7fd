"""The host agent's machine: its state, and the operations clients ask for.

One operation runs at a time (``start``, ``stop``, ``restart``, ``delete``, ``reset``),
each in a worker thread of its own, and every way out of one ends in a state and, on
failure, an ``error`` event with a code, the message and the fix, whatever raises on
the way out (``_run_op``). The start itself is a chain of labelled steps
(``agent/start.py``); health is watched apart (``agent/health.py``), so that a dead
VM is seen within seconds whatever an operation or a repair is doing.

Locks, and what each guards:

- ``_lock``: ``status``, ``_op`` and the links' references; held only for moments;
- ``_op_lock``: held by the operation running; repairs run only when they can take it
  without waiting, so a repair never races a start or a stop.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from moorage import __version__
from moorage import config as config_mod
from moorage.agent.clusters import ClusterManager
from moorage.agent.deps import Deps, EngineLink, GuestChannel, Ports, SharedMounts
from moorage.agent.events import EventLog
from moorage.agent.stats import READ_COMMAND, Sampler
from moorage.agent.updates import AgentUpdates
from moorage.api.schema import (
    Accepted,
    Cancelled,
    ConfigView,
    Operation,
    OperationRunning,
    ShellCommand,
    State,
    Stats,
    Status,
    SwarmInfo,
    VMCrashed,
    error_body,
)
from moorage.engine.ssh import GuestAddress, openssh_args
from moorage.errors import AgentError, EngineError, MachineError, MoorageError, SwarmError
from moorage.paths import MachinePaths
from moorage.runtime import RuntimeRecord, pid_alive
from moorage.swarm import single
from moorage.vm.driver import Driver, VMState
from moorage.vm.image.manifest import Manifest
from moorage.vm.provision import USER_NET_ADDRESS

log = logging.getLogger("moorage.agent")

STOP_TIMEOUT = 60.0
CLOCK_DRIFT = 1.0
VERIFY_TIMEOUT = 5.0
"""How long ``start`` and ``status`` wait for the engine to answer a ping through the
host socket before they call a running machine degraded."""
HEALTH_PING_TIMEOUT = 10.0
"""The health check's patience: an engine busy unpacking layers under emulation can
take seconds to answer a ping, and that is not a fault."""


class MachineAgent:
    def __init__(self, name: str, deps: Deps | None = None) -> None:
        self.name = name
        self.paths = MachinePaths(name)
        self.deps = deps or Deps.real()
        self.events = EventLog()
        self.status = Status(machine=name, agent_pid=os.getpid(), agent_version=__version__)
        self._lock = threading.RLock()
        self._op_lock = threading.Lock()
        self._op: Operation | None = None
        # Set by stop: a start still booting gives up at its next check instead of
        # making the stop wait minutes for a boot nobody wants any more.
        self._cancel = threading.Event()
        # Set by the VM watch when the hypervisor dies: whatever waits on the guest
        # gives up at once.
        self._vm_dead = threading.Event()
        self._stopping = False
        self._driver: Driver | None = None
        self.vm_pid: int | None = None
        self.guest: GuestChannel | None = None
        self.ports: Ports | None = None
        self.sshfs: SharedMounts | None = None
        self.engine: EngineLink = self.deps.engine(self.paths)
        self.exit_requested = threading.Event()
        self.last_activity = time.monotonic()
        self.image_version = ""
        """The guest image's version, once the start found it (swarm node images)."""
        self.image_manifest: Manifest | None = None
        """The manifest of the guest image the last start booted (diagnostics)."""
        self.sampler = Sampler(self._read_counters, self.exit_requested)
        self.clusters = ClusterManager(self)
        self.updates = AgentUpdates(self)

    # ----- state -------------------------------------------------------

    def set_state(self, state: State, message: str, **changes: Any) -> None:
        with self._lock:
            self.status.state = state
            for key, value in changes.items():
                setattr(self.status, key, value)
        self.events.emit("state", message, state=state)

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self.status, key, value)

    def state(self) -> State:
        with self._lock:
            return self.status.state

    def snapshot(self) -> Status:
        with self._lock:
            status = replace(
                self.status,
                phase_seconds=dict(self.status.phase_seconds),
                warnings=list(self.status.warnings),
                shared_folders=list(self.status.shared_folders),
            )
            ports = self.ports
        if ports is not None:
            status.ports = ports.active
            status.port_conflicts = ports.conflict_list()
        status.clusters = [f"{c.name} ({c.state})" for c in self.clusters.listing().clusters]
        return status

    def status_now(self) -> Status:
        """The status after looking at the VM itself: never "running" for a dead VM."""
        self.watch_vm()
        if self.vm_pid is None and self.state() == "stopped":
            self._note_orphan()
        return self.snapshot()

    def progress(self, line: str) -> None:
        self.events.emit("progress", line, phase=self.status.phase)

    def warn(self, code: str, message: str) -> None:
        with self._lock:
            self.status.warnings.append(message)
        self.events.emit("warning", message, code=code)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    # ----- operations ----------------------------------------------------

    def request(self, op: Operation) -> Accepted:
        """Begin ``op`` in the background and return at once with the id of the last
        event before it, for the client to follow. A start asked while one runs joins
        it; a stop, delete or reset cancels a start and runs after it; anything else
        while an operation runs is refused (``OperationRunning``, code ``busy``)."""
        self.touch()
        since = self.events.last_id
        if op in ("start", "restart"):
            # A config mistake is the caller's to fix: answer it now, with every problem.
            config_mod.load(self.paths.config_file, self.deps.host(self.paths.data_disk))
        if op == "start":
            self.watch_vm()  # a VM killed a moment ago must not read as running
            if self.state() == "running" and not self.engine.ping(VERIFY_TIMEOUT):
                self.set_state(
                    "degraded", "the engine does not answer", error="the engine does not answer"
                )
        with self._lock:
            running = self._op
            if op == "start":
                if running in ("start", "restart"):
                    return Accepted(since, running)
                if running is None and self.status.state == "running":
                    self.events.emit("ready", "already running", op="start")
                    return Accepted(since, op)
            elif op == "stop" and running in ("stop", "delete", "reset"):
                return Accepted(since, running)
            cancels = op in ("stop", "delete", "reset") and running in ("start", "restart")
            if running is not None and not cancels:
                raise OperationRunning(
                    f"machine {self.name!r} is busy with {running}",
                    fix="wait for it to end (`moorage status`), then try again",
                )
            if op in ("stop", "delete", "reset"):
                self._cancel.set()
            else:
                self._cancel.clear()
            self._op = op
            self.status.operation = op
        body: dict[Operation, Callable[[], None]] = {
            "start": self._start,
            "stop": self._stop,
            "restart": self._restart,
            "delete": self._delete,
            "reset": self._reset,
        }
        threading.Thread(target=self._run_op, args=(op, body[op]), name=op, daemon=True).start()
        return Accepted(since, op)

    def _run_op(self, op: Operation, body: Callable[[], None]) -> None:
        ok = False
        with self._op_lock:
            try:
                body()
                ok = True
            except BaseException as exc:  # every way out ends in a state and an event
                self._failed(op, exc)
            finally:
                with self._lock:
                    if self._op == op:
                        self._op = None
                    self.status.operation = self._op
                self.touch()
        if ok and op in ("stop", "delete", "reset"):
            self.exit_requested.set()

    def _failed(self, op: Operation, exc: BaseException) -> None:
        if op in ("start", "restart") and not isinstance(exc, Cancelled | VMCrashed):
            # A wait that gave up (``give_up``) fails its own way ("no answer in time"):
            # the reason it gave up, a stop or a dead VM, is what the start reports.
            try:
                self.check_cancel()
            except MachineError as reason:
                exc = reason
        self._stopping = False  # a stop that failed leaves a VM to watch
        if isinstance(exc, MoorageError):
            error: MoorageError = exc
        else:
            log.exception("%s failed", op)
            error = AgentError(f"unexpected error: {exc!r}", fix=f"see {self.paths.agent_log}")
        body = error_body(error)
        try:
            self.disconnect()
        except Exception:
            log.exception("clean-up after a failed %s", op)
        if self._vm_dead.is_set():
            state: State = "crashed"
        elif self.vm_running():
            state = "degraded"
        else:
            state = "stopped"
        fix = body.fix or f"see {self.paths.agent_log}"
        self.events.emit(
            "error", body.message, op=op, code=body.code, fix=fix, phase=self.status.phase
        )
        self.set_state(state, f"{op} failed", error=str(error), error_code=body.code, phase=None)

    def check_cancel(self) -> None:
        if self._vm_dead.is_set():
            raise VMCrashed(
                f"the VM stopped unexpectedly; see {self.paths.serial_log}",
                fix="`moorage logs` shows the console; `moorage start` boots it again",
            )
        if self._cancel.is_set():
            raise Cancelled("the start was cancelled by `moorage stop`")

    def give_up(self) -> bool:
        """For waits that poll: True once the wait is pointless (cancelled, VM dead)."""
        return self._cancel.is_set() or self._vm_dead.is_set()

    def _start(self) -> None:
        from moorage.agent.start import StartChain  # noqa: PLC0415 - start imports us

        self._stopping = False
        self._vm_dead.clear()
        self.disconnect()
        self.set_state("starting", "starting", error=None, error_code=None, warnings=[],
                       phase_seconds={})  # fmt: skip
        StartChain(self).run()
        self.sync_clock()
        version = self.status.engine_version
        self.set_state("running", "ready", phase=None, docker_socket=str(self.paths.docker_socket))
        self.events.emit(
            "ready", f"ready: docker engine {version} at {self.paths.docker_socket}", op="start"
        )
        self.clusters.machine_ready(self.image_version)

    def _stop(self) -> None:
        # A VM can run only if we saw one or a record says one was booted: without
        # either there is nothing to stop, and no driver to ask (libvirtd may be down,
        # or the config may name no driver that exists).
        seen = self.vm_pid is not None or self.state() in ("degraded", "running")
        self._stopping = True
        self.set_state("stopping", "stopping")
        if (seen or self.paths.ports_file.exists()) and self.vm_running():
            self._poweroff(self.driver())
        self.disconnect()
        self.paths.ports_file.unlink(missing_ok=True)
        self.vm_pid = None
        self.set_state("stopped", "stopped", vm_pid=None, phase=None, error=None)
        self.events.emit("done", "stopped", op="stop")

    def _restart(self) -> None:
        self._stop()
        self._cancel.clear()
        self._start()

    def _delete(self) -> None:
        self._stop_for_good("delete")
        self.clusters.forget_all()
        for folder in (self.paths.state, self.paths.config_file.parent):
            shutil.rmtree(folder, ignore_errors=True)
        for item in self.paths.run.glob("*"):
            if item not in (self.paths.agent_socket, self.paths.agent_pid):
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink(missing_ok=True)
        try:
            self.deps.contexts.remove(self.name)
        except MoorageError as exc:
            self.warn("context", str(exc))
        self.events.emit("done", f"deleted machine {self.name!r}", op="delete")

    def _reset(self) -> None:
        self._stop_for_good("reset")
        self.clusters.forget_all()  # their nodes' data was on the disk
        self.paths.data_disk.unlink(missing_ok=True)
        self.events.emit(
            "done",
            f"machine {self.name!r} is reset; `moorage start` boots it with an empty disk",
            op="reset",
        )

    def _stop_for_good(self, op: str) -> None:
        """Stop, then make sure no VM runs: the disk must never go while a VM uses it."""
        record = RuntimeRecord.load(self.paths.ports_file)  # before _stop removes it
        self._stop()
        if self.driver().state(self.name) is VMState.RUNNING or pid_alive(
            record.vm_pid if record else None
        ):
            if record is not None:
                record.save(self.paths.ports_file)  # still adoptable, still guarded
            raise MachineError(
                f"the VM of machine {self.name!r} still runs; nothing was removed",
                fix=f"`moorage stop`, then `moorage {op}` again",
            )

    # ----- the VM --------------------------------------------------------

    def driver(self) -> Driver:
        """The driver of the running VM, or the configured one."""
        if self._driver is None:
            try:
                name = str(config_mod.read_file(self.paths.config_file).get("driver", ""))
            except MoorageError:
                name = ""
            self._driver = self.deps.driver(name or config_mod.DEFAULT_DRIVER)
        return self._driver

    def use_driver(self, driver: Driver) -> None:
        self._driver = driver

    def vm_running(self) -> bool:
        """Whether the VM runs, asking the driver; if the driver cannot say (libvirtd
        gone), whether the hypervisor process lives."""
        try:
            running: bool = self.driver().state(self.name) is VMState.RUNNING
            return running
        except Exception as exc:
            log.warning("cannot ask the driver for the VM's state: %s", exc)
            record = RuntimeRecord.load(self.paths.ports_file)
            return pid_alive(self.vm_pid or (record.vm_pid if record else None))

    def watch_vm(self) -> None:
        """Notice a dead VM. Called every second by the VM watch and before answering
        ``status`` and ``start``; cheap: one ``kill(pid, 0)``."""
        with self._lock:
            pid = self.vm_pid
            watching = (
                not self._stopping
                and self.status.state in ("starting", "running", "degraded")
                and (pid is not None or self.status.state != "starting")
            )
        if not watching:
            return
        if pid is not None:
            if pid_alive(pid):
                return
        elif self.vm_running():  # no pid known: ask the driver
            return
        self._vm_died()

    def _vm_died(self) -> None:
        with self._lock:
            if self._stopping or self.status.state not in ("starting", "running", "degraded"):
                return
            self._vm_dead.set()
            self.vm_pid = None
            in_start = self._op in ("start", "restart")
        if in_start:
            return  # the start sees _vm_dead, gives up and reports it
        message = "the VM stopped unexpectedly (killed or crashed); `moorage start` boots it again"
        self.disconnect()
        self.paths.ports_file.unlink(missing_ok=True)
        self.events.emit("error", message, code="vm-crashed", fix="`moorage start`")
        self.set_state(
            "crashed", message, vm_pid=None, error=message, error_code="vm-crashed", phase=None
        )

    def _note_orphan(self) -> None:
        """A stopped agent over a VM that runs (its agent was killed): say so."""
        record = RuntimeRecord.load(self.paths.ports_file)
        if record is not None and pid_alive(record.vm_pid):
            self.update(
                vm_pid=record.vm_pid,
                error=f"the VM runs (pid {record.vm_pid}) but no start adopted it yet; "
                "`moorage start` adopts it",
            )

    def _poweroff(self, driver: Driver) -> None:
        record = RuntimeRecord.load(self.paths.ports_file)
        try:
            if (self.guest is None or not self.guest.alive()) and record is not None:
                addr = GuestAddress(
                    self.name, record.ssh_port, self.paths.ssh_key, self.paths.known_hosts
                )
                self.guest = self.deps.guest(addr, self.paths.run)
                self.guest.connect(time.monotonic() + 15)
            if self.guest is None:
                raise EngineError("no SSH address recorded for the guest")
            self.guest.run("busybox poweroff", timeout=10)
        except EngineError as exc:
            # Unreachable (still booting, or its sshd is gone): nothing to shut down cleanly.
            log.warning("graceful poweroff impossible (%s); stopping the VM hard", exc)
            driver.kill(self.name)
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.vm_running() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.vm_running():
            self.warn("poweroff", f"the guest did not power off in {STOP_TIMEOUT:.0f}s; "
                      "stopping it hard")  # fmt: skip
            driver.kill(self.name)

    def disconnect(self) -> None:
        """Drop every link to the guest (ports, sshfs, SSH, the Docker socket). Safe to
        call from any thread, any number of times."""
        with self._lock:
            ports, self.ports = self.ports, None
            mounts, self.sshfs = self.sshfs, None
            guest = self.guest
        if ports is not None:
            ports.stop()
        if mounts is not None:
            mounts.close()
        if guest is not None:
            guest.close()
        self.clusters.machine_gone()
        self.engine.close()

    # ----- the engine and the clock ---------------------------------------

    def check_engine(self) -> None:
        healthy = self.engine.ping(HEALTH_PING_TIMEOUT)
        state = self.state()
        if healthy and state == "degraded" and self._op is None:
            self.set_state("running", "the engine answers again", error=None, error_code=None)
        elif not healthy and state == "running":
            self.set_state(
                "degraded", "the engine does not answer", error="the engine does not answer",
                error_code="engine",
            )  # fmt: skip

    def sync_clock(self) -> None:
        """Set the guest clock from the host's when they drift apart (after host sleep)."""
        guest = self.guest
        if guest is None:
            return
        rc, out = guest.run("date +%s.%N", timeout=10)
        if rc != 0:
            return
        try:
            drift = float(out.strip()) - time.time()
        except ValueError:
            return
        if abs(drift) > CLOCK_DRIFT:
            guest.run(f"date -u -s @{time.time():.3f} >/dev/null", timeout=10)
            self.progress(f"guest clock was {drift:+.1f}s off; set from the host")

    # ----- the rest of the API ------------------------------------------------

    def shell_argv(self) -> ShellCommand:
        status = self.status_now()
        if status.ssh_port is None or status.state not in ("running", "degraded"):
            raise MachineError(f"machine {self.name!r} is {status.state}", fix="`moorage start`")
        addr = GuestAddress(self.name, status.ssh_port, self.paths.ssh_key, self.paths.known_hosts)
        return ShellCommand(["ssh", *openssh_args(addr)])

    def config_view(self) -> ConfigView:
        host = self.deps.host(self.paths.data_disk)
        cfg = config_mod.load(self.paths.config_file, host)
        values = {
            k: list(v) if isinstance(v, tuple) else dict(v) if k == "engine" else v
            for k, v in cfg.__dict__.items()
        }
        return ConfigView(str(self.paths.config_file), values, config_mod.schema_json(host))

    def validate_config(self, values: dict[str, Any]) -> None:
        config_mod.validate(values, self.deps.host(self.paths.data_disk), "the values sent")

    def write_config(self, values: dict[str, Any]) -> ConfigView:
        self.paths.config_file.parent.mkdir(parents=True, exist_ok=True)
        config_mod.write_file(self.paths.config_file, values, self.deps.host(self.paths.data_disk))
        return self.config_view()

    def use_context(self) -> None:
        self.deps.contexts.ensure(self.name, self.paths.docker_socket)
        self.deps.contexts.use(self.name)

    def swarm(self, what: str, *, force: bool = False) -> SwarmInfo:
        """The one-node swarm on the machine's engine: ``info``, ``init`` or ``leave``."""
        if what != "info" and self.state() not in ("running", "degraded"):
            raise SwarmError(f"machine {self.name!r} is {self.state()}", fix="`moorage start`")
        engine = self.deps.engines(self.paths).machine
        if what == "init":
            return single.init(lambda: engine(60), USER_NET_ADDRESS.split("/")[0])
        if what == "leave":
            return single.leave(lambda: engine(60), force)
        if self.state() not in ("running", "degraded"):
            return SwarmInfo(state="inactive", error=f"machine {self.name!r} is {self.state()}")
        return single.info(lambda: engine(10))

    def stats(self) -> Stats:
        """The VM's CPU and memory samples; asking keeps the sampler going a while
        (``agent/stats.py``). A machine that does not run has none, and costs nothing."""
        with self._lock:
            state, cpus, memory_gib = self.status.state, self.status.cpus, self.status.memory_gib
        samples = self.sampler.asked() if state in ("running", "degraded") else []
        memory_mib = round((memory_gib or 0) * 1024)
        return Stats(self.name, self.sampler.interval, cpus or 0, memory_mib, samples)

    def _read_counters(self) -> str | None:
        """``READ_COMMAND``'s output, through the SSH master; None when the machine
        does not run. Raises EngineError when the guest cannot answer."""
        guest = self.guest
        if guest is None or self.state() not in ("running", "degraded"):
            return None
        rc, out = guest.run(READ_COMMAND, timeout=10)
        if rc != 0:
            raise EngineError(f"reading the guest's counters failed ({rc}): {out.strip()[:200]}")
        return out

    def idle(self) -> bool:
        """Nothing to look after: no operation, and no VM of ours or orphaned."""
        with self._lock:
            return (
                self._op is None and self.status.state == "stopped" and self.status.vm_pid is None
            )
