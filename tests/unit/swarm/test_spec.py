"""A cluster as data: names, addresses, timers and the node container."""

from __future__ import annotations

import pytest

from moorage.errors import ConfigError
from moorage.swarm import spec


def test_nodes_are_named_and_addressed_by_role_and_index() -> None:
    nodes = spec.plan_nodes("c1", 3, managers=3, workers=2)
    assert [(n.name, n.address) for n in nodes] == [
        ("c1-m1", "172.30.3.11"),
        ("c1-m2", "172.30.3.12"),
        ("c1-m3", "172.30.3.13"),
        ("c1-w1", "172.30.3.101"),
        ("c1-w2", "172.30.3.102"),
    ]
    assert nodes[0].data_dir == "/mnt/data/swarm/c1/c1-m1"
    assert spec.parse_node_name("c1-w2") == ("c1", "worker", 2)
    assert spec.parse_node_name("c1-x2") is None


@pytest.mark.parametrize("name", ["", "1c", "a-b", "A", "a" * 21, "c1;rm"])
def test_cluster_names_that_would_not_parse_back_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        spec.check_cluster_name(name)


def test_counts_out_of_range_are_named_all_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        spec.check_counts(0, -1)
    assert len(caught.value.problems) == 2


def test_each_cluster_gets_a_subnet_of_its_own() -> None:
    assert spec.free_subnet(set()) == 1
    assert spec.free_subnet({1, 2, 4}) == 3
    with pytest.raises(ConfigError):
        spec.free_subnet(set(range(1, 255)))


def test_an_added_node_takes_the_lowest_free_index_of_its_role() -> None:
    nodes = [n for n in spec.plan_nodes("c1", 1, 3, 2) if n.name != "c1-w1"]
    assert spec.next_node("c1", 1, "worker", nodes).name == "c1-w1"
    assert spec.next_node("c1", 1, "manager", nodes).name == "c1-m4"


def test_fast_drills_shorten_heartbeats_more_under_kvm_than_tcg() -> None:
    assert spec.timers(fast_drills=False, accel="kvm").down_after_s == 15
    assert spec.timers(fast_drills=True, accel="kvm").heartbeat_s == 1
    assert spec.timers(fast_drills=True, accel="tcg").heartbeat_s == 3
    assert spec.timers(fast_drills=True, accel="tcg").election_ticks == 10


def test_a_node_container_keeps_its_data_on_the_disk_and_uses_the_guests_usr() -> None:
    node = spec.plan_nodes("c1", 1, 1, 0)[0]
    c = spec.node_container(node, "moorage/swarm-node:x")
    assert c.address == "172.30.1.11" and c.network == "moorage-swarm-c1"
    assert c.host["privileged"] is True
    assert "/run/moorage-image/usr:/usr:ro" in c.host["binds"]
    assert "/mnt/data/swarm/c1/c1-m1:/var/lib/docker" in c.host["binds"]
    assert "/run/moorage-nodes/c1-m1:/moorage" in c.host["binds"]
    assert c.host["restart_policy"] == {"Name": "unless-stopped"}
    assert c.create["hostname"] == "c1-m1"
    assert c.create["labels"] == {"moorage.cluster": "c1", "moorage.role": "manager"}


def test_the_node_image_is_named_after_the_guest_image_and_made_without_usr() -> None:
    image = spec.node_image("trixie-r5-abc")
    assert image == "moorage/swarm-node:trixie-r5-abc"
    command = spec.node_image_command(image)
    assert (
        "--exclude=./usr" in command
        and "docker import - moorage/swarm-node:trixie-r5-abc" in command
    )
