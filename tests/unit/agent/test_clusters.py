"""The agent's swarm clusters over fakes (``tests/helpers/fake_swarm.py``): create,
drills, lost quorum and recovery, node operations, routing-mesh ports, coming back
with the machine, and failures ending in an error event with nothing left behind."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from moorage.agent.machine import MachineAgent
from moorage.api.schema import Accepted, ClusterStatus, Event, OperationRunning
from moorage.errors import ConfigError, SwarmError
from moorage.swarm import cluster as ops
from tests.helpers.fake_swarm import Container
from tests.unit.agent.conftest import Machine, wait_event, wait_until

PHASES = ["image", "network", "nodes", "engines", "init", "managers", "workers", "ready"]


def ended(op: str, cluster: str = "c1") -> Callable[[Event], bool]:
    return lambda e: e.cluster == cluster and e.op == op and e.kind in ("done", "error")


def finish(agent: MachineAgent, accepted: Accepted) -> Event:
    assert accepted.op is not None
    event = wait_event(agent, accepted.since, ended(accepted.op, accepted.cluster or ""))
    wait_until(lambda: all(c.operation is None for c in agent.clusters.listing().clusters))
    return event


@pytest.fixture
def agent(machine: Machine) -> Iterator[MachineAgent]:
    a = machine.agent()
    assert machine.start(a).kind == "ready"
    yield a


def make(agent: MachineAgent, managers: int = 3, workers: int = 2) -> ClusterStatus:
    done = finish(agent, agent.clusters.create("c1", managers, workers, fast_drills=True))
    assert done.kind == "done", done
    return agent.clusters.status("c1")


def by_name(status: ClusterStatus) -> dict[str, object]:
    return {n.name: n for n in status.nodes}


def test_create_runs_every_phase_and_leaves_a_running_cluster_with_its_context(
    agent: MachineAgent, machine: Machine
) -> None:
    accepted = agent.clusters.create("c1", 3, 2, fast_drills=True)
    done = finish(agent, accepted)
    assert done.kind == "done" and "docker --context moorage-cluster-c1" in done.message
    events = agent.events.after(accepted.since, 0)
    assert [e.phase for e in events if e.kind == "phase" and e.cluster == "c1"] == PHASES
    assert all("SWMTKN" not in e.message for e in events)  # join tokens never in events

    status = agent.clusters.status("c1")
    assert status.state == "running" and status.quorum
    assert [n.name for n in status.nodes] == ["c1-m1", "c1-m2", "c1-m3", "c1-w1", "c1-w2"]
    assert all(n.state == "ready" and n.container == "running" for n in status.nodes)
    assert [n.name for n in status.nodes if n.leader] == ["c1-m1"]
    assert status.context == "moorage-cluster-c1"
    assert status.heartbeat_s == 3 and status.down_after_s == 9  # TCG fast drills
    swarm = machine.fakes.swarm
    assert swarm.heartbeat_ns == 3_000_000_000
    assert swarm.networks == {"moorage-swarm-c1": "172.30.1.0/24"}
    assert machine.fakes.contexts.contexts["moorage-cluster-c1"] == agent.paths.cluster_socket("c1")
    sockets = machine.fakes.cluster_sockets.unix_paths
    assert set(sockets) == {agent.paths.cluster_socket("c1")} | {
        agent.paths.node_socket(n.name) for n in status.nodes
    }
    assert sockets[agent.paths.cluster_socket("c1")]()[0] == "node c1-m1"
    assert agent.snapshot().clusters == ["c1 (running)"]


def test_bad_names_counts_and_a_stopped_machine_are_refused(
    agent: MachineAgent, machine: Machine
) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        agent.clusters.create("C-1", 3, 2, fast_drills=False)
    with pytest.raises(ConfigError, match="managers = 0"):
        agent.clusters.create("c1", 0, 2, fast_drills=False)
    machine.fakes.swarm.containers["c2-m1"] = Container("c2-m1", "busybox", {}, None, "")
    with pytest.raises(SwarmError, match="c2-m1 are taken"):
        agent.clusters.create("c2", 1, 0, fast_drills=False)
    make(agent, 1, 0)
    with pytest.raises(SwarmError, match="exists already"):
        agent.clusters.create("c1", 1, 0, fast_drills=False)
    stopped = agent.request("stop")
    wait_event(agent, stopped.since, lambda e: e.op == "stop" and e.kind == "done")
    with pytest.raises(SwarmError, match="clusters run in its VM") as caught:
        agent.clusters.create("c3", 1, 0, fast_drills=False)
    assert caught.value.fix == "`moorage start`"


def test_a_create_that_fails_removes_what_it_made(
    agent: MachineAgent, machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "ENGINE_TIMEOUT", 0.5)
    real_start = machine.fakes.swarm.engines

    def engines(paths: object) -> object:
        e = real_start(paths)
        return type(e)(machine=e.machine, node=lambda n, t: e.node("nobody", t))

    agent.deps.engines = engines  # type: ignore[assignment]
    accepted = agent.clusters.create("c1", 1, 1, fast_drills=False)
    error = wait_event(agent, accepted.since, ended("cluster-create"))
    assert error.kind == "error" and error.code == "swarm"
    assert "did not answer" in error.message and error.fix
    wait_until(lambda: "c1" not in [c.name for c in agent.clusters.listing().clusters])
    assert machine.fakes.swarm.containers == {} and machine.fakes.swarm.networks == {}
    assert not (agent.paths.clusters / "c1.json").exists()
    assert "moorage-cluster-c1" not in machine.fakes.contexts.contexts


def test_a_node_start_the_engine_drops_unanswered_is_tried_again(
    agent: MachineAgent, machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "NODE_RETRY_PAUSE", 0)
    machine.fakes.swarm.dropped_starts["c1-w2"] = ops.NODE_TRIES - 1
    accepted = agent.clusters.create("c1", 3, 2, fast_drills=True)
    assert finish(agent, accepted).kind == "done"
    messages = [e.message for e in agent.events.after(accepted.since, 0)]
    assert "c1-w2: the engine dropped the connection; trying again" in messages
    assert agent.clusters.status("c1").state == "running"


def test_a_node_start_dropped_every_time_fails_the_create_and_names_the_node(
    agent: MachineAgent, machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "NODE_RETRY_PAUSE", 0)
    machine.fakes.swarm.dropped_starts["c1-w2"] = ops.NODE_TRIES
    error = finish(agent, agent.clusters.create("c1", 3, 2, fast_drills=True))
    assert error.kind == "error" and "node c1-w2: the engine does not answer" in error.message
    assert machine.fakes.swarm.containers == {} and machine.fakes.swarm.networks == {}


def test_killing_the_leader_routes_the_clusters_socket_to_the_new_one(
    agent: MachineAgent, machine: Machine
) -> None:
    make(agent)
    status = agent.clusters.node_action("c1", "c1-m1", "kill")
    nodes = by_name(status)
    assert nodes["c1-m1"].drill == "killed" and nodes["c1-m1"].container == "exited"  # type: ignore[attr-defined]
    assert status.quorum and status.state == "degraded"
    assert [n.name for n in status.nodes if n.leader] == ["c1-m2"]
    routes = machine.fakes.cluster_sockets.unix_paths[agent.paths.cluster_socket("c1")]()
    assert routes[0] == "node c1-m2" and routes[-1] == "node c1-m1"


def test_lost_quorum_is_named_and_recover_makes_a_working_cluster_again(
    agent: MachineAgent, machine: Machine
) -> None:
    make(agent)
    agent.clusters.node_action("c1", "c1-m1", "kill")
    status = agent.clusters.node_action("c1", "c1-m2", "kill")
    assert status.state == "no-quorum" and not status.quorum
    assert status.problem is not None and "2 of 3 managers are gone" in status.problem
    assert status.fix is not None and "moorage cluster recover c1" in status.fix
    with pytest.raises(SwarmError, match="quorum lost"):
        agent.clusters.node_action("c1", "c1-w1", "drain")  # the swarm can change nothing

    done = finish(agent, agent.clusters.request("c1", "recover"))
    assert done.kind == "done", done
    status = agent.clusters.status("c1")
    assert status.quorum and status.state == "running"
    assert all(n.drill is None and n.container == "running" for n in status.nodes)
    swarm = machine.fakes.swarm
    assert swarm.raft == {"c1-m1", "c1-m2", "c1-m3"}


def test_freeze_and_partition_are_undone_by_heal(agent: MachineAgent, machine: Machine) -> None:
    make(agent)
    machine.fakes.swarm.published = (8080,)
    agent.clusters.node_action("c1", "c1-w1", "freeze")
    status = agent.clusters.node_action("c1", "c1-m3", "partition")
    nodes = by_name(status)
    assert nodes["c1-w1"].container == "paused" and nodes["c1-w1"].drill == "frozen"  # type: ignore[attr-defined]
    assert nodes["c1-m3"].state == "down" and nodes["c1-m3"].drill == "partitioned"  # type: ignore[attr-defined]
    mesh = machine.fakes.cluster_sockets.tcp_ports[("127.0.0.1", 8080)]()
    assert "tcp 172.30.1.101 8080" not in mesh and "tcp 172.30.1.13 8080" not in mesh
    assert mesh[0] == "tcp 172.30.1.11 8080"

    done = finish(agent, agent.clusters.request("c1", "heal"))
    assert done.kind == "done"
    status = agent.clusters.status("c1")
    assert status.state == "running"
    assert all(n.drill is None for n in status.nodes)
    assert machine.fakes.swarm.containers["c1-m3"].address == "172.30.1.13"


def test_routing_mesh_ports_are_forwarded_and_a_busy_one_waits(
    agent: MachineAgent, machine: Machine
) -> None:
    make(agent)
    sockets = machine.fakes.cluster_sockets
    sockets.taken.add(9090)
    machine.fakes.swarm.published = (8080, 9090)
    status = agent.clusters.status("c1")
    assert status.ports == ["127.0.0.1:8080/tcp", "::1:8080/tcp"]
    assert len(status.port_conflicts) == 1 and "9090" in status.port_conflicts[0]
    sockets.taken.clear()
    status = agent.clusters.status("c1")
    assert "127.0.0.1:9090/tcp" in status.ports and status.port_conflicts == []
    machine.fakes.swarm.published = ()
    assert agent.clusters.status("c1").ports == []
    assert sockets.tcp_ports == {}


def test_node_operations_use_the_swarms_own_words(agent: MachineAgent, machine: Machine) -> None:
    make(agent)
    nodes = by_name(agent.clusters.node_action("c1", "c1-w1", "drain"))
    assert nodes["c1-w1"].availability == "drain"  # type: ignore[attr-defined]
    nodes = by_name(agent.clusters.node_action("c1", "c1-w1", "activate"))
    assert nodes["c1-w1"].availability == "active"  # type: ignore[attr-defined]
    nodes = by_name(agent.clusters.node_action("c1", "c1-w2", "promote"))
    assert nodes["c1-w2"].role == "manager" and nodes["c1-w2"].manager == "reachable"  # type: ignore[attr-defined]
    nodes = by_name(agent.clusters.node_action("c1", "c1-w1", "stop"))
    assert nodes["c1-w1"].stopped and nodes["c1-w1"].container == "exited"  # type: ignore[attr-defined]
    status = agent.clusters.node_action("c1", "c1-w1", "rm")
    assert "c1-w1" not in by_name(status)
    assert "c1-w1" not in machine.fakes.swarm.containers
    assert "c1-w1" not in machine.fakes.swarm.members
    with pytest.raises(SwarmError, match="no node 'c1-w9'"):
        agent.clusters.node_action("c1", "c1-w9", "drain")
    done = finish(agent, agent.clusters.add("c1", "worker"))
    assert done.kind == "done"
    assert by_name(agent.clusters.status("c1"))["c1-w1"].state == "ready"  # type: ignore[attr-defined]


def test_one_operation_at_a_time_per_cluster(agent: MachineAgent, machine: Machine) -> None:
    make(agent)
    gate = threading.Event()
    real = ops.stop_all

    def slow_stop(ctx: object, record: object) -> None:
        gate.wait(5)
        real(ctx, record)  # type: ignore[arg-type]

    ops_stop = pytest.MonkeyPatch()
    ops_stop.setattr(ops, "stop_all", slow_stop)
    try:
        accepted = agent.clusters.request("c1", "stop")
        with pytest.raises(OperationRunning, match="busy with cluster-stop"):
            agent.clusters.request("c1", "heal")
        gate.set()
        assert finish(agent, accepted).kind == "done"
    finally:
        ops_stop.undo()
    assert agent.clusters.status("c1").state == "stopped"
    assert all(c.state == "exited" for c in machine.fakes.swarm.containers.values())


def test_clusters_come_back_with_the_machine_as_the_user_left_them(
    agent: MachineAgent, machine: Machine
) -> None:
    make(agent)
    agent.clusters.node_action("c1", "c1-w2", "stop")
    agent.clusters.node_action("c1", "c1-w1", "partition")
    stopped = agent.request("stop")
    wait_event(agent, stopped.since, lambda e: e.op == "stop" and e.kind == "done")
    for c in machine.fakes.swarm.containers.values():  # the VM went down with every node
        c.state = "exited"
    since = agent.events.last_id
    assert machine.start(agent).kind == "ready"
    back = wait_event(agent, since, ended("cluster-start"))
    assert back.kind == "done", back
    status = agent.clusters.status("c1")
    nodes = by_name(status)
    assert nodes["c1-w2"].stopped and nodes["c1-w2"].container == "exited"  # type: ignore[attr-defined]
    assert nodes["c1-w1"].drill is None and nodes["c1-w1"].state == "ready"  # type: ignore[attr-defined]
    assert status.quorum


def test_a_new_agent_knows_the_clusters_of_the_machine(
    agent: MachineAgent, machine: Machine
) -> None:
    make(agent, 1, 1)
    machine.kill_agent(agent)
    second = machine.agent()
    assert [c.name for c in second.clusters.listing().clusters] == ["c1"]
    since = second.events.last_id
    machine.start(second)
    assert wait_event(second, since, ended("cluster-start")).kind == "done"
    assert second.clusters.status("c1").state == "running"


def test_locked_managers_are_reported_and_unlocked_with_the_key(
    agent: MachineAgent, machine: Machine
) -> None:
    make(agent)
    swarm = machine.fakes.swarm
    swarm.autolock_key = "SWMKEY-1-right"
    swarm.locked = {"c1-m1", "c1-m2", "c1-m3"}
    status = agent.clusters.status("c1")
    assert status.state == "no-quorum" and status.problem is not None and "locked" in status.problem
    with pytest.raises(SwarmError, match="unlock"):
        agent.clusters.unlock("c1", "SWMKEY-1-wrong", None)
    status = agent.clusters.unlock("c1", "SWMKEY-1-right", None)
    assert status.quorum and swarm.locked == set()


def test_images_are_loaded_into_every_node_inside_the_vm(
    agent: MachineAgent, machine: Machine
) -> None:
    make(agent, 1, 1)
    error = finish(agent, agent.clusters.load("c1", ["busybox"]))
    assert error.kind == "error" and "has no image busybox:latest" in error.message
    machine.fakes.swarm.images.add("busybox:latest")
    accepted = agent.clusters.load("c1", ["busybox"])
    assert accepted.refs == ["busybox:latest"]
    assert finish(agent, accepted).kind == "done"
    command = machine.fakes.guests.last.commands[-1]
    assert "docker save" in command and "c1-m1/docker.sock load" in command
    assert "c1-w1/docker.sock load" in command


def test_rm_removes_nodes_data_network_sockets_and_context(
    agent: MachineAgent, machine: Machine
) -> None:
    make(agent)
    assert finish(agent, agent.clusters.request("c1", "rm")).kind == "done"
    swarm = machine.fakes.swarm
    assert swarm.containers == {} and swarm.networks == {}
    assert machine.fakes.cluster_sockets.unix_paths == {}
    assert "moorage-cluster-c1" not in machine.fakes.contexts.contexts
    assert agent.clusters.listing().clusters == []
    assert any("rm -rf /mnt/data/swarm/c1" in c for c in machine.fakes.guests.last.commands)
    with pytest.raises(SwarmError, match="no cluster 'c1'"):
        agent.clusters.status("c1")
