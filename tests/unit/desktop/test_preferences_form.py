"""The settings form as data (``schema_form``): no Qt, no agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage import config as config_mod
from moorage import update_settings
from moorage.desktop import schema_form as form
from moorage.errors import ConfigError

HOST = config_mod.HostFacts(cpus=4, memory_mib=8192, home=Path("/nonexistent-home"))


def test_each_option_of_the_config_schema_gets_its_kind() -> None:
    fields = {f.key: f for f in form.fields(config_mod.schema_json(HOST))}
    assert {k: f.kind for k, f in fields.items()} == {
        "cpus": "int",
        "memory_gib": "float",
        "disk_gib": "int",
        "driver": "choice",
        "image": "choice",
        "accel": "choice",
        "expose_ports": "check",
        "file_sharing": "choice",
        "mounts": "folders",
        "engine": "table",
    }
    cpus, memory = fields["cpus"], fields["memory_gib"]
    assert (cpus.label, cpus.minimum, cpus.maximum, cpus.default) == ("CPUs", 1, 4, 2)
    assert (memory.label, memory.minimum, memory.maximum, memory.unit) == ("Memory", 0.5, 8, "GiB")
    assert fields["disk_gib"].label == "Disk"
    assert fields["accel"].choices[0] == ("auto", "auto — test-boot KVM, else TCG with a warning")
    assert fields["expose_ports"].label == "Expose ports"
    assert "`" not in fields["mounts"].allowed
    assert all(f.restart for f in fields.values())


def test_the_update_schema_too() -> None:
    fields = {f.key: f for f in form.fields(update_settings.schema_json())}
    assert fields["channel"].kind == "choice"
    assert [c for c, _ in fields["channel"].choices] == ["stable", "beta"]
    assert (fields["url"].kind, fields["url"].label) == ("text", "URL")
    assert fields["check"].kind == "check"


def test_an_unknown_type_is_still_shown() -> None:
    f = form.field({"key": "labels", "type": "dict", "default": {}, "description": "Labels."})
    assert (f.kind, f.label, f.help, f.restart) == ("table", "Labels", "Labels.", True)


def test_to_write_leaves_defaults_out() -> None:
    fields = form.fields(config_mod.schema_json(HOST))
    values = {"cpus": 2, "memory_gib": 4.0, "mounts": ("~",), "engine": {}, "driver": "qemu"}
    assert form.to_write(fields, values) == {"memory_gib": 4.0, "driver": "qemu"}


def test_changed_and_restart_needed() -> None:
    fields = form.fields(
        [
            {"key": "a", "type": "int", "default": 1, "description": ""},
            {"key": "b", "type": "bool", "default": False, "description": "", "restart": False},
        ]
    )
    before = {"a": 1, "b": False, "c": ["x"]}
    after = {"a": 2, "b": True, "c": ("x",)}
    assert form.changed(before, after) == ["a", "b"]
    assert [f.key for f in form.restart_needed(fields, ["a", "b"])] == ["a"]
    assert form.restart_needed(fields, ["b"]) == []


def test_problems_go_to_the_keys_they_name() -> None:
    with pytest.raises(ConfigError) as err:
        config_mod.validate({"cpus": 9, "memory_gib": "x", "swap": 1}, HOST, "config.toml")
    by_key, rest = form.problems_by_key(
        [*err.value.problems, "not valid TOML: Expected '=' (at line 1)"],
        [o.key for o in config_mod.OPTIONS],
    )
    assert by_key["cpus"] == ["cpus = 9 is not allowed; allowed: 1 to 4 (the host's CPU count)"]
    assert by_key["memory_gib"] == ["memory_gib = 'x' has the wrong type: expected float"]
    assert rest[0].startswith("unknown key 'swap'")  # no field to show it by
    assert rest[1].startswith("not valid TOML")


@pytest.mark.parametrize(
    ("labels", "text"),
    [([], ""), (["CPUs"], "CPUs"), (["CPUs", "Memory"], "CPUs and Memory"),
     (["a", "b", "c"], "a, b and c")],
)  # fmt: skip
def test_listing(labels: list[str], text: str) -> None:
    assert form.listing(labels) == text
