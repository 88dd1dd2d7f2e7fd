"""What a cluster looks like, from the node containers and a manager's answer."""

from __future__ import annotations

from typing import Any

from moorage.swarm import observe
from moorage.swarm.observe import ContainerFacts, SwarmFacts
from moorage.swarm.record import ClusterRecord, NodeRecord
from moorage.swarm.spec import plan_nodes


def _record() -> ClusterRecord:
    rec = ClusterRecord("c1", 1, fast_drills=True, heartbeat_s=2)
    rec.nodes = [NodeRecord(n.name, n.role, n.index) for n in plan_nodes("c1", 1, 3, 1)]
    return rec


def _running(*names: str, state: str = "running") -> dict[str, ContainerFacts]:
    return {n: ContainerFacts(state, frozenset({"moorage-swarm-c1"}), "img") for n in names}


def _entry(name: str, state: str = "ready", reach: str | None = None, leader: bool = False,
           created: str = "2026-01-01") -> dict[str, Any]:  # fmt: skip
    entry: dict[str, Any] = {
        "ID": name, "CreatedAt": created,
        "Description": {"Hostname": name, "Engine": {"EngineVersion": "26.1.5+dfsg1"}},
        "Spec": {"Role": "manager" if reach else "worker", "Availability": "active"},
        "Status": {"State": state},
    }  # fmt: skip
    if reach:
        entry["ManagerStatus"] = {"Reachability": reach, "Leader": leader}
    return entry


def _infos(rec: ClusterRecord, facts: dict[str, ContainerFacts], swarm: SwarmFacts) -> list[Any]:
    return [observe.node_info(rec, n, facts.get(n.name), swarm, None) for n in rec.nodes]


def test_the_swarms_words_are_kept_and_a_stale_entry_of_a_rejoined_node_is_passed_over() -> None:
    rec = _record()
    swarm = SwarmFacts([
        _entry("c1-m1", reach="reachable", leader=True),
        _entry("c1-m2", reach="reachable"),
        _entry("c1-m3", state="down", reach="unreachable", created="2026-01-01"),
        _entry("c1-m3", reach="reachable", created="2026-01-02"),
        _entry("c1-w1", state="down"),
    ], "c1-m1")  # fmt: skip
    infos = _infos(rec, _running("c1-m1", "c1-m2", "c1-m3", "c1-w1"), swarm)
    by = {i.name: i for i in infos}
    assert by["c1-m1"].leader and by["c1-m1"].manager == "reachable"
    assert by["c1-m3"].state == "ready"
    assert by["c1-w1"].state == "down" and by["c1-w1"].engine_version == "26.1.5+dfsg1"
    assert observe.quorum(rec, infos, swarm).ok


def test_the_leader_is_asked_first_and_frozen_or_cut_off_managers_not_at_all() -> None:
    rec = _record()
    rec.nodes[1].drill = "frozen"
    swarm = SwarmFacts([_entry("c1-m3", reach="reachable", leader=True),
                        _entry("c1-m1", reach="unreachable")], "c1-m3")  # fmt: skip
    facts = _running("c1-m1", "c1-m3", "c1-w1") | _running("c1-m2", state="paused")
    infos = _infos(rec, facts, swarm)
    assert observe.manager_routes(infos) == ["node c1-m3", "node c1-m1"]
    rec.nodes[3].drill = "partitioned"
    infos = _infos(rec, facts, swarm)
    assert observe.mesh_routes(infos, 8080) == ["tcp 172.30.1.11 8080", "tcp 172.30.1.13 8080"]


def test_lost_quorum_names_the_managers_gone_and_how_to_recover() -> None:
    rec = _record()
    rec.nodes[0].drill = "killed"
    facts = _running("c1-m2", "c1-m3", "c1-w1") | _running("c1-m1", state="exited")
    rec.nodes[1].drill = "frozen"
    q = observe.quorum(rec, _infos(rec, facts, SwarmFacts(None, None, "no leader")), SwarmFacts())
    assert not q.ok
    assert q.problem is not None and "2 of 3 managers are gone" in q.problem
    assert "c1-m1 (killed)" in q.problem and "c1-m2 (frozen)" in q.problem
    assert q.fix is not None and "moorage cluster heal c1" in q.fix
    assert "recover c1" in q.fix and "from c1-m3" in q.fix


def test_a_majority_without_a_leader_yet_is_told_to_wait() -> None:
    rec = _record()
    swarm = SwarmFacts(None, None, "The swarm does not have a leader")
    q = observe.quorum(rec, _infos(rec, _running("c1-m1", "c1-m2", "c1-m3"), swarm), swarm)
    assert not q.ok and q.problem is not None and "does not have a leader" in q.problem
    assert q.fix is not None and "wait" in q.fix


def test_locked_managers_are_told_to_unlock_first() -> None:
    rec = _record()
    swarm = SwarmFacts(None, None, "Swarm is encrypted and needs to be unlocked", ("c1-m1",))
    q = observe.quorum(rec, [], swarm)
    assert q.problem is not None and "locked" in q.problem
    assert q.fix is not None and "moorage cluster unlock c1" in q.fix


def test_changes_name_each_node_whose_condition_changed() -> None:
    rec = _record()
    up = SwarmFacts([_entry("c1-w1")], "c1-m1")
    down = SwarmFacts([_entry("c1-w1", state="down")], "c1-m1")
    facts = _running("c1-w1")
    before = _infos(rec, facts, up)
    rec.nodes[3].drill = "killed"
    after = _infos(rec, _running("c1-w1", state="exited"), down)
    assert ("c1-w1", "c1-w1: killed, down") in observe.changes(before, after)
    assert observe.changes(after, after) == []


def test_cluster_state_follows_quorum_and_health() -> None:
    rec = _record()
    full = SwarmFacts([_entry(n.name, reach="reachable" if n.role == "manager" else None)
                       for n in rec.nodes], "c1-m1")  # fmt: skip
    infos = _infos(rec, _running(*(n.name for n in rec.nodes)), full)
    q = observe.quorum(rec, infos, full)
    assert observe.cluster_state(rec, infos, q, creating=False) == "running"
    assert observe.cluster_state(rec, infos, q, creating=True) == "creating"
    rec.nodes[3].drill = "frozen"
    infos = _infos(rec, _running(*(n.name for n in rec.nodes)), full)
    assert observe.cluster_state(rec, infos, q, creating=False) == "degraded"
    rec.stopped = True
    assert observe.cluster_state(rec, infos, q, creating=False) == "stopped"


def test_the_record_survives_a_round_trip_and_ignores_unknown_fields(tmp_path: Any) -> None:
    rec = _record()
    rec.nodes[0].drill = "killed"
    rec.save(tmp_path)
    assert (tmp_path / "c1.json").stat().st_mode & 0o777 == 0o600
    text = (tmp_path / "c1.json").read_text().replace('"subnet"', '"later": 1, "subnet"')
    (tmp_path / "c1.json").write_text(text)
    back = ClusterRecord.load(tmp_path / "c1.json")
    assert back == rec
