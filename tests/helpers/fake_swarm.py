"""A fake of the engines a cluster is made of, for the agent's unit tests: the
machine's engine with its node containers, and each node's engine with a small model
of swarm mode (init, join, roles, availability, Raft quorum, autolock). It answers
the docker-py ``APIClient`` calls ``swarm/`` makes, in the engine's own shapes, so the
agent's cluster code runs whole, failures included, in milliseconds.

A node's engine answers only while its container runs and is not paused; a node cut
off its network (a partition) answers, but cannot reach the others. A manager answers
``/nodes`` only while a majority of the managers can reach each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests

from moorage.engine.gate_relay import Gate, Routes
from moorage.swarm.engines import Engines
from moorage.swarm.spec import LABEL_CLUSTER


def _api_error(status: int, message: str) -> docker.errors.APIError:
    class _Response:
        status_code = status
        reason = message

    return docker.errors.APIError(message, response=_Response(), explanation=message)  # type: ignore[arg-type]


@dataclass
class Container:
    name: str
    image: str
    labels: dict[str, str]
    network: str | None
    address: str
    state: str = "created"


@dataclass
class Member:
    """A node's place in the swarm."""

    id: str
    role: str
    availability: str = "active"
    created: int = 0


@dataclass
class FakeSwarm:
    images: set[str] = field(default_factory=set)
    containers: dict[str, Container] = field(default_factory=dict)
    networks: dict[str, str] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    """Hostname -> its swarm entry; one swarm is enough for these tests."""
    raft: set[str] = field(default_factory=set)
    """The managers in Raft: quorum is a majority of these talking."""
    locked: set[str] = field(default_factory=set)
    published: tuple[int, ...] = ()
    autolock_key: str | None = None
    heartbeat_ns: int | None = None
    calls: list[str] = field(default_factory=list)
    dropped_starts: dict[str, int] = field(default_factory=dict)
    """Container name -> how many of its next starts the transport drops unanswered."""
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _serial: int = 0

    # ----- what the tests look at ------------------------------------------------------

    def import_image(self, command: str) -> None:
        """The guest ran the node-image command (``FakeGuest`` calls this)."""
        self.images.add(command.split(" - ")[1].split(maxsplit=1)[0])

    def up(self, name: str) -> bool:
        c = self.containers.get(name)
        return c is not None and c.state == "running"

    def connected(self, name: str) -> bool:
        c = self.containers.get(name)
        return c is not None and c.state == "running" and c.network is not None

    def talking(self) -> list[str]:
        return sorted(n for n in self.raft if self.connected(n) and n not in self.locked)

    def quorum(self) -> bool:
        return len(self.talking()) > len(self.raft) // 2

    def leader(self) -> str | None:
        return self.talking()[0] if self.quorum() else None

    def engines(self, paths: Any) -> Engines:
        return Engines(machine=lambda _t: Machine(self), node=lambda name, _t: Node(self, name))


class Machine:
    """The machine's engine (``docker.APIClient`` calls)."""

    def __init__(self, swarm: FakeSwarm) -> None:
        self.s = swarm

    def close(self) -> None:
        pass

    def _get(self, name: str) -> Container:
        c = self.s.containers.get(name)
        if c is None:
            raise _api_error(404, f"No such container: {name}")
        return c

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.s.images:
            raise _api_error(404, f"No such image: {ref}")
        return {"Id": f"sha256:{abs(hash(ref)):x}", "RepoTags": [ref]}

    def inspect_network(self, name: str) -> dict[str, Any]:
        if name not in self.s.networks:
            raise _api_error(404, f"network {name} not found")
        return {"IPAM": {"Config": [{"Subnet": self.s.networks[name]}]}}

    def create_network(self, name: str, **kw: Any) -> None:
        self.s.networks[name] = kw["ipam"]["Config"][0]["Subnet"]

    def remove_network(self, name: str) -> None:
        if self.s.networks.pop(name, None) is None:
            raise _api_error(404, f"network {name} not found")

    def containers(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[Any]:
        out = []
        want = (filters or {}).get("label")
        for c in self.s.containers.values():
            if want and f"{LABEL_CLUSTER}={c.labels.get(LABEL_CLUSTER)}" != want:
                continue
            out.append({
                "Names": [f"/{c.name}"], "State": c.state, "Labels": c.labels, "Image": c.image,
                "NetworkSettings": {"Networks": {c.network: {}} if c.network else {}},
            })  # fmt: skip
        return out

    def create_host_config(self, **kw: Any) -> dict[str, Any]:
        return kw

    def create_endpoint_config(self, ipv4_address: str) -> dict[str, Any]:
        return {"address": ipv4_address}

    def create_networking_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return config

    def create_container(self, image: str, *, name: str, host_config: Any,
                         networking_config: Any, labels: Any, **kw: Any) -> None:  # fmt: skip
        if name in self.s.containers:
            raise _api_error(409, f"Conflict. The container name {name} is already in use")
        ((net, endpoint),) = networking_config.items()
        self.s.containers[name] = Container(name, image, dict(labels), net, endpoint["address"])

    def remove_container(self, name: str, force: bool = False) -> None:
        self._get(name)
        del self.s.containers[name]

    def start(self, name: str) -> None:
        if self.s.dropped_starts.get(name):
            self.s.dropped_starts[name] -= 1
            raise requests.exceptions.ConnectionError(
                "('Connection aborted.', RemoteDisconnected('Remote end closed connection'))"
            )
        self._get(name).state = "running"

    def stop(self, name: str, timeout: int = 10) -> None:
        self._get(name).state = "exited"

    def kill(self, name: str) -> None:
        self._get(name).state = "exited"

    def pause(self, name: str) -> None:
        self._get(name).state = "paused"

    def unpause(self, name: str) -> None:
        self._get(name).state = "running"

    def disconnect_container_from_network(self, name: str, net: str, force: bool = False) -> None:
        self._get(name).network = None

    def connect_container_to_network(self, name: str, net: str, ipv4_address: str) -> None:
        c = self._get(name)
        c.network, c.address = net, ipv4_address


class Node:
    """One node's engine."""

    def __init__(self, swarm: FakeSwarm, name: str) -> None:
        self.s, self.name = swarm, name
        swarm.calls.append(f"{name}")
        if not swarm.up(name):
            raise ConnectionError(f"{name}: no engine answers")

    def close(self) -> None:
        pass

    def ping(self) -> bool:
        return True

    def create_swarm_spec(self, **kw: Any) -> dict[str, Any]:
        return kw

    def _member(self, role: str) -> None:
        with self.s._lock:
            self.s._serial += 1
            self.s.members[self.name] = Member(f"id-{self.name}-{self.s._serial}", role,
                                               created=self.s._serial)  # fmt: skip
            if role == "manager":
                self.s.raft.add(self.name)

    def init_swarm(self, *, force_new_cluster: bool = False, swarm_spec: Any = None,
                   **kw: Any) -> str:  # fmt: skip
        if force_new_cluster:  # Raft of one; the other managers stay listed, unreachable
            self.s.raft = {self.name}
            self.s.locked.discard(self.name)
            return self.s.members[self.name].id
        if self.name in self.s.members:
            raise _api_error(503, "This node is already part of a swarm")
        self.s.heartbeat_ns = (swarm_spec or {}).get("dispatcher_heartbeat_period")
        if (swarm_spec or {}).get("autolock_managers"):
            self.s.autolock_key = "SWMKEY-1-fake"
        self._member("manager")
        return self.s.members[self.name].id

    def inspect_swarm(self) -> dict[str, Any]:
        self._manager_with_quorum()
        return {"JoinTokens": {"Manager": "SWMTKN-1-manager", "Worker": "SWMTKN-1-worker"}}

    def join_swarm(self, remote: list[str], token: str, **kw: Any) -> None:
        if self.name in self.s.members:
            raise _api_error(503, "This node is already part of a swarm")
        self._member("manager" if token.endswith("manager") else "worker")

    def _manager_with_quorum(self) -> None:
        if self.name in self.s.locked:
            raise _api_error(
                503, "Swarm is encrypted and needs to be unlocked before it can be used"
            )
        member = self.s.members.get(self.name)
        if member is None or member.role != "manager":
            raise _api_error(503, "This node is not a swarm manager")
        if not self.s.connected(self.name) or not self.s.quorum():
            raise _api_error(503, "rpc error: The swarm does not have a leader")

    def nodes(self) -> list[dict[str, Any]]:
        self._manager_with_quorum()
        leader = self.s.leader()
        out = []
        for name, m in self.s.members.items():
            entry: dict[str, Any] = {
                "ID": m.id, "Version": {"Index": m.created}, "CreatedAt": f"{m.created:06d}",
                "Description": {"Hostname": name, "Engine": {"EngineVersion": "26.1.5"}},
                "Spec": {"Role": "manager" if m.role == "manager" else "worker",
                         "Availability": m.availability},
                "Status": {"State": "ready" if self.s.connected(name) else "down"},
            }  # fmt: skip
            if m.role == "manager":
                reachable = self.s.connected(name) and name in self.s.raft
                entry["ManagerStatus"] = {
                    "Leader": name == leader,
                    "Reachability": "reachable" if reachable else "unreachable",
                }
            out.append(entry)
        return out

    def services(self) -> list[dict[str, Any]]:
        self._manager_with_quorum()
        return [{"Endpoint": {"Ports": [{"PublishedPort": p, "Protocol": "tcp",
                                         "PublishMode": "ingress"}]}}
                for p in self.s.published]  # fmt: skip

    def update_node(self, node_id: str, version: int, spec: dict[str, Any]) -> None:
        self._manager_with_quorum()
        if spec["Availability"] not in ("active", "pause", "drain"):
            raise _api_error(400, f"invalid Availability: {spec['Availability']!r}")
        for name, m in self.s.members.items():
            if m.id == node_id:
                if m.role == "manager" and spec["Role"] == "worker" and name not in self.s.raft:
                    raise _api_error(404, "rpc error: can't find manager in raft memberlist")
                m.role, m.availability = spec["Role"], spec["Availability"]
                if m.role == "manager":
                    self.s.raft.add(name)
                else:
                    self.s.raft.discard(name)
                return
        raise _api_error(404, f"node {node_id} not found")

    def remove_node(self, node_id: str, force: bool = False) -> None:
        self._manager_with_quorum()
        for name, m in list(self.s.members.items()):
            if m.id == node_id:
                del self.s.members[name]
                self.s.raft.discard(name)
                return
        raise _api_error(404, f"node {node_id} not found")

    def leave_swarm(self, force: bool = False) -> None:
        if self.s.members.pop(self.name, None) is None:
            raise _api_error(503, "This node is not part of a swarm")
        self.s.raft.discard(self.name)

    def info(self) -> dict[str, Any]:
        state = "locked" if self.name in self.s.locked else (
            "active" if self.name in self.s.members else "inactive")  # fmt: skip
        return {"Swarm": {"LocalNodeState": state}}

    def unlock_swarm(self, key: str) -> None:
        if key != self.s.autolock_key:
            raise _api_error(400, "invalid key")
        self.s.locked.discard(self.name)


@dataclass
class FakeClusterSockets:
    """``ClusterSockets`` without sockets: what was opened, and ports that are taken."""

    unix_paths: dict[Path, Routes] = field(default_factory=dict)
    tcp_ports: dict[tuple[str, int], Routes] = field(default_factory=dict)
    taken: set[int] = field(default_factory=set)

    def unix(self, path: Path, gate: Any, routes: Routes) -> _Closer:
        self.unix_paths[path] = routes
        return _Closer(lambda: self.unix_paths.pop(path, None))

    def tcp(self, host: str, port: int, gate: Any, routes: Routes) -> _Closer:
        if port in self.taken:
            raise OSError(98, "Address already in use")
        self.tcp_ports[(host, port)] = routes
        return _Closer(lambda: self.tcp_ports.pop((host, port), None))


class _Closer:
    def __init__(self, close: Any) -> None:
        self._close = close

    def close(self) -> None:
        self._close()


__all__ = ["FakeClusterSockets", "FakeSwarm", "Gate"]
