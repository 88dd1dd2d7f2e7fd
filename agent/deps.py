"""What the agent works through, injected: the driver, the guest channel, the host's
side of the engine, the port watcher, images, the accelerator choice, docker contexts.

``Deps.real()`` wires the real ones. The agent's unit tests pass fakes that keep the
same Protocols (``tests/helpers/fakes.py``), so every path of the agent, failures
included, is tried in seconds without a VM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from moorage.config import HostFacts
from moorage.docker_api import api_client, docker_client
from moorage.engine import context, sshfs
from moorage.engine.docker_socket import DockerSocket
from moorage.engine.gate_relay import Gate, RoutedServer, Routes
from moorage.engine.port_watcher import PortReport, PortWatcher
from moorage.engine.relay import RelayLoop
from moorage.engine.ssh import GuestAddress, GuestSSH
from moorage.engine.v6_relay import V6Relay
from moorage.errors import EngineError
from moorage.paths import MachinePaths, runtime_dir
from moorage.swarm.engines import Engines
from moorage.types import Forward
from moorage.vm import accel, drivers, virtiofs
from moorage.vm.driver import Driver
from moorage.vm.image import manifest as manifest_mod
from moorage.vm.image import store
from moorage.vm.image.manifest import Manifest


class GuestChannel(Protocol):
    """Commands in the guest (``GuestSSH``)."""

    def connect(self, deadline: float, give_up: Callable[[], bool] = ...) -> None: ...
    def alive(self) -> bool: ...
    def run(self, command: str, timeout: float = 60) -> tuple[int, str]: ...
    def close(self) -> None: ...


class EngineLink(Protocol):
    """The host's side of the engine: the Docker socket and the IPv6 twins of forwards."""

    def open(self, api_port: int, token: str) -> None: ...
    def version(self, timeout: float) -> str:
        """The engine's version, asked through the host socket; raises EngineError."""
        ...

    def ping(self, timeout: float) -> bool: ...
    def describe(self, timeout: float) -> dict[str, Any]:
        """The engine's ``docker info`` and ``docker version`` (``{"info": ...,
        "version": ...}``), asked through the host socket; raises EngineError."""
        ...

    def twin(self, forward: Forward, on: bool) -> None: ...
    def close(self) -> None: ...


class Ports(Protocol):
    """Published ports kept in line with the engine (``PortWatcher``)."""

    @property
    def active(self) -> list[str]: ...
    def conflict_list(self) -> list[str]: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def reconcile(self) -> None: ...
    def retry(self) -> None: ...


class SharedMounts(Protocol):
    """The sshfs fallback's mounts (``ReverseSshfs``)."""

    def mount_all(self) -> list[Path]: ...
    def dead(self) -> list[Path]: ...
    def remount(self, folder: Path) -> None: ...
    def close(self) -> None: ...


class Contexts(Protocol):
    def ensure(self, machine: str, socket: Path) -> bool: ...
    def ensure_named(self, name: str, socket: Path, desc: str) -> bool: ...
    def use(self, machine: str) -> None: ...
    def remove(self, machine: str) -> None: ...
    def remove_named(self, name: str) -> None: ...
    def available(self) -> bool: ...


class Closer(Protocol):
    def close(self) -> None: ...


class ClusterSockets(Protocol):
    """Listeners on the host that reach the guest's docker gate (``RoutedServer``)."""

    def unix(self, path: Path, gate: Callable[[], Gate | None], routes: Routes) -> Closer: ...
    def tcp(self, host: str, port: int, gate: Callable[[], Gate | None], routes: Routes) -> Closer:
        """Raises OSError when the port is taken."""
        ...


PortsFactory = Callable[
    [Path, Callable[[Forward], None], Callable[[Forward], None], set[Forward], bool, PortReport],
    Ports,
]


@dataclass
class Deps:
    driver: Callable[[str], Driver]
    guest: Callable[[GuestAddress, Path], GuestChannel]
    engine: Callable[[MachinePaths], EngineLink]
    ports: PortsFactory
    sshfs: Callable[[GuestChannel, list[Path]], SharedMounts]
    image: Callable[[str, Callable[[str], None]], tuple[Path, Manifest]]
    accel: Callable[[Path, str], accel.AccelChoice]
    host: Callable[[Path], HostFacts]
    contexts: Contexts
    virtiofsd_found: Callable[[], bool]
    sftp_found: Callable[[], bool]
    engines: Callable[[MachinePaths], Engines] = field(default_factory=lambda: _engines)
    cluster_sockets: ClusterSockets = field(default_factory=lambda: GateSockets())  # noqa: PLW0108 - defined below

    @classmethod
    def real(cls) -> Deps:
        return cls(
            driver=lambda name: drivers.get(name, runtime_dir()),
            guest=GuestSSH,
            engine=HostEngine,
            ports=lambda sock, add, remove, existing, expose, report: PortWatcher(
                sock, add, remove, existing=existing, expose=expose, report=report
            ),
            sshfs=lambda guest, folders: sshfs.ReverseSshfs(cast(GuestSSH, guest), folders),
            image=_image,
            accel=_choose_accel,
            host=HostFacts.read,
            contexts=cast(Contexts, context),
            virtiofsd_found=lambda: virtiofs.find_virtiofsd() is not None,
            sftp_found=lambda: sshfs.find_sftp_server() is not None,
        )


def _engines(paths: MachinePaths) -> Engines:
    return Engines(
        machine=lambda timeout: api_client(paths.docker_socket, timeout),
        node=lambda node, timeout: api_client(paths.node_socket(node), timeout),
    )


class GateSockets:
    """``ClusterSockets`` on a relay loop of their own (``RoutedServer``)."""

    def __init__(self) -> None:
        self._relays: RelayLoop | None = None

    def _loop(self) -> RelayLoop:
        if self._relays is None:
            self._relays = RelayLoop("cluster-relays")
        return self._relays

    def unix(self, path: Path, gate: Callable[[], Gate | None], routes: Routes) -> RoutedServer:
        server = RoutedServer(self._loop(), gate, routes)
        server.serve_unix(path)
        return server

    def tcp(
        self, host: str, port: int, gate: Callable[[], Gate | None], routes: Routes
    ) -> RoutedServer:
        server = RoutedServer(self._loop(), gate, routes)
        server.serve_tcp([host], port)
        return server


def _image(recipe: str, report: Callable[[str], None]) -> tuple[Path, Manifest]:
    folder = store.ensure(recipe, report)
    return folder, manifest_mod.verify(folder)


def _choose_accel(kernel: Path, want: str) -> accel.AccelChoice:
    qemu = accel.find_qemu() or "qemu-system-x86_64"
    return accel.choose(qemu, kernel, runtime_dir() / "accel.json", want=want)


class HostEngine:
    """The Docker socket and the IPv6 twins, relayed on one asyncio loop of the agent."""

    def __init__(self, paths: MachinePaths) -> None:
        relays = RelayLoop("relays")
        self._socket = DockerSocket(relays, paths.docker_socket)
        self._v6 = V6Relay(relays)
        self._path = paths.docker_socket

    def open(self, api_port: int, token: str) -> None:
        self._socket.open(api_port, token)

    def version(self, timeout: float) -> str:
        try:
            client = docker_client(self._path, timeout)
            try:
                return str(client.version().get("Version", "?"))
            finally:
                client.close()
        except Exception as exc:  # docker's, requests' or a socket's: all mean "no answer"
            raise EngineError(f"the engine does not answer through {self._path}: {exc}") from exc

    def ping(self, timeout: float) -> bool:
        try:
            client = docker_client(self._path, timeout)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # docker's, requests' or a socket's: all mean "no answer"
            return False

    def describe(self, timeout: float) -> dict[str, Any]:
        try:
            client = docker_client(self._path, timeout)
            try:
                return {"info": client.info(), "version": client.version()}
            finally:
                client.close()
        except Exception as exc:  # docker's, requests' or a socket's: all mean "no answer"
            raise EngineError(f"the engine does not answer through {self._path}: {exc}") from exc

    def twin(self, forward: Forward, on: bool) -> None:
        if on:
            self._v6.add(forward)
        else:
            self._v6.remove(forward)

    def close(self) -> None:
        self._v6.clear()
        self._socket.close()
