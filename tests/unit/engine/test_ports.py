from __future__ import annotations

from typing import Any

import pytest

from moorage.engine import ports
from moorage.engine.v6_relay import twin_address
from moorage.types import Forward
from moorage.vm.drivers.hostfwd import parse_usernet


def container(*bindings: tuple[str, int, str]) -> dict[str, Any]:
    return {
        "Ports": [
            {"IP": ip, "PrivatePort": 80, "PublicPort": port, "Type": proto}
            for ip, port, proto in bindings
        ]
        + [{"PrivatePort": 9000, "Type": "tcp"}]  # exposed, not published: no forward
    }


@pytest.mark.parametrize(
    ("bindings", "expose", "want"),
    [
        ([("0.0.0.0", 8080, "tcp"), ("::", 8080, "tcp")], False, {("tcp", "127.0.0.1", 8080)}),
        ([("0.0.0.0", 8080, "tcp")], True, {("tcp", "0.0.0.0", 8080)}),
        ([("127.0.0.1", 8080, "tcp")], True, {("tcp", "127.0.0.1", 8080)}),
        ([("::1", 5353, "udp")], True, {("udp", "127.0.0.1", 5353)}),
        (
            [("0.0.0.0", 53, "udp"), ("0.0.0.0", 53, "tcp")],
            False,
            {("udp", "127.0.0.1", 53), ("tcp", "127.0.0.1", 53)},
        ),
        ([("0.0.0.0", 9, "sctp")], False, set()),
    ],
)
def test_desired_forwards(
    bindings: list[tuple[str, int, str]], expose: bool, want: set[tuple[str, str, int]]
) -> None:
    got = ports.desired(ports.published([container(*bindings)]), expose=expose)
    assert {(f.proto, f.host_addr, f.host_port) for f in got} == want
    assert all(f.guest_port == f.host_port for f in got)


def test_plan_adds_the_new_and_removes_the_gone() -> None:
    a, b, c = (Forward("tcp", "127.0.0.1", p, p) for p in (1, 2, 3))
    assert ports.plan({a, b}, {b, c}) == ({c}, {a})
    assert ports.plan({a}, {a}) == (set(), set())


def test_containers_without_ports() -> None:
    assert ports.published([{"Ports": None}, {}]) == set()


def test_routing_mesh_ports_of_services() -> None:
    services = [
        {
            "Endpoint": {
                "Ports": [
                    {
                        "Protocol": "tcp",
                        "TargetPort": 80,
                        "PublishedPort": 8080,
                        "PublishMode": "ingress",
                    },
                    {
                        "Protocol": "udp",
                        "TargetPort": 53,
                        "PublishedPort": 5353,
                        "PublishMode": "ingress",
                    },
                    {
                        "Protocol": "tcp",
                        "TargetPort": 81,
                        "PublishedPort": 8081,
                        "PublishMode": "host",
                    },
                ]
            }
        },
        {"Endpoint": {}},
        {},
    ]
    got = ports.desired(ports.published_by_services(services), expose=False)
    assert {(f.proto, f.host_addr, f.host_port) for f in got} == {
        ("tcp", "127.0.0.1", 8080),
        ("udp", "127.0.0.1", 5353),
    }


def test_an_adopted_vms_forwards_are_read_from_qemus_table() -> None:
    table = """Hub -1 (hostnet0):
  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
  TCP[HOST_FORWARD]  14       127.0.0.1 40022       10.0.2.15    22     0     0
  TCP[HOST_FORWARD]  25               * 18080       10.0.2.15  18080     0     0
  UDP[HOST_FORWARD]  26       127.0.0.1 15353       10.0.2.15 15353     0     0
  TCP[ESTABLISHED]   27       127.0.0.1 40022       10.0.2.15    22     0     0
"""
    assert parse_usernet(table) == {
        Forward("tcp", "127.0.0.1", 40022, 22),
        Forward("tcp", "0.0.0.0", 18080, 18080),
        Forward("udp", "127.0.0.1", 15353, 15353),
    }


def test_ipv6_twins_mirror_loopback_and_exposed_forwards() -> None:
    assert twin_address(Forward("tcp", "127.0.0.1", 80, 80)) == "::1"
    assert twin_address(Forward("udp", "0.0.0.0", 53, 53)) == "::"
