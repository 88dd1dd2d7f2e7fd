from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from moorage import config
from moorage.errors import ConfigError

HOST = config.HostFacts(cpus=4, memory_mib=8192)


def test_defaults_fit_the_host() -> None:
    cfg = config.validate({}, HOST, "x")
    assert (cfg.cpus, cfg.memory_gib, cfg.disk_gib, cfg.image, cfg.accel) == (
        2,
        2.0,
        64,
        "debian",
        "auto",
    )
    assert cfg.memory_mib == 2048


def test_every_problem_is_reported_at_once() -> None:
    raw = {"cpus": 9, "memory_gib": 64, "disk_gib": 2, "colour": "red", "driver": "vbox"}
    with pytest.raises(ConfigError) as info:
        config.validate(raw, HOST, "config.toml")
    problems = info.value.problems
    assert len(problems) == 5
    text = str(info.value)
    assert "unknown key 'colour'" in text
    assert "cpus = 9 is not allowed; allowed: 1 to 4" in text
    assert "memory_gib = 64 is not allowed; allowed: 0.5 to 8.0 GiB" in text
    assert "disk_gib = 2 is not allowed; allowed: 8 to 16384 GiB" in text
    assert "driver = 'vbox' is not allowed; allowed: 'libvirt', 'qemu'" in text


def test_disk_cannot_shrink_below_its_size() -> None:
    host = config.HostFacts(cpus=4, memory_mib=8192, disk_bytes=100 << 30)
    with pytest.raises(ConfigError, match="already 100 GiB and can only grow"):
        config.validate({"disk_gib": 64}, host, "x")
    assert config.validate({"disk_gib": 128}, host, "x").disk_gib == 128
    assert config.validate({}, host, "x").disk_gib == 100  # the default follows a grown disk


def test_wrong_types_are_named() -> None:
    with pytest.raises(ConfigError, match="cpus = '2' has the wrong type: expected int"):
        config.validate({"cpus": "2"}, HOST, "x")
    with pytest.raises(ConfigError, match="expected int"):
        config.validate({"cpus": True}, HOST, "x")


def test_layers_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("cpus = 3\nmemory_gib = 1.5\n[engine]\ndebug = true\n")
    cfg = config.load(path, HOST, {"cpus": 1})
    assert (cfg.cpus, cfg.memory_gib, dict(cfg.engine)) == (1, 1.5, {"debug": True})


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("cpus = = 2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(path, HOST)


def test_template_is_valid_toml_and_documents_every_option() -> None:
    text = config.template(HOST)
    assert tomllib.loads(text) == {}
    for option in config.OPTIONS:
        assert option.key in text


def test_mounts_default_to_home_and_expand_tilde(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    host = config.HostFacts(cpus=4, memory_mib=8192, home=tmp_path)
    assert config.validate({}, host, "x").shared_folders(tmp_path) == [tmp_path]
    cfg = config.validate({"mounts": ["~/src"]}, host, "x")
    assert cfg.shared_folders(tmp_path) == [tmp_path / "src"]
    assert config.validate({"mounts": []}, host, "x").shared_folders(tmp_path) == []


def test_mount_mistakes_are_all_named(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "file").write_text("")
    host = config.HostFacts(cpus=4, memory_mib=8192, home=tmp_path)
    raw = {
        "mounts": [
            "relative/path",
            str(tmp_path / "missing"),
            str(tmp_path / "file"),
            "/etc",
            "/var/lib/docker/volumes",
            str(tmp_path / "a"),
            str(tmp_path / "a" / "b"),
            7,
        ]
    }
    with pytest.raises(ConfigError) as info:
        config.validate(raw, host, "x")
    text = str(info.value)
    assert "'relative/path' is not an absolute path" in text
    assert "missing' does not exist on the host; create it or remove it from mounts" in text
    assert "file' is not a folder" in text
    assert "'/etc' would hide the guest's own /etc" in text
    assert "'/var/lib/docker/volumes' would hide" in text
    assert "b' overlaps another shared folder" in text
    assert "7 is not a path" in text


def test_file_sharing_is_auto_virtiofs_or_sshfs() -> None:
    assert config.validate({}, HOST, "x").file_sharing == "auto"
    assert config.validate({"file_sharing": "sshfs"}, HOST, "x").file_sharing == "sshfs"
    with pytest.raises(ConfigError, match="file_sharing = '9p' is not allowed"):
        config.validate({"file_sharing": "9p"}, HOST, "x")


def test_readme_table_is_rendered_from_the_schema() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    assert config.markdown_table() in readme, "paste config.markdown_table() into README.md"


def test_range_and_choice_checks_follow_the_data() -> None:
    for option in config.OPTIONS:
        if option.bounds is not None:
            high = option.bounds.maximum(HOST)
            assert getattr(config.validate({option.key: high}, HOST, "x"), option.key) == high
            with pytest.raises(ConfigError, match=f"{option.key} = .* is not allowed; allowed: "):
                config.validate({option.key: option.kind(high + 1)}, HOST, "x")
        if option.choices is not None:
            for choice in option.choices:
                assert (
                    getattr(config.validate({option.key: choice}, HOST, "x"), option.key) == choice
                )
            allowed = ", ".join(repr(c) for c in option.choices)
            with pytest.raises(ConfigError, match=f"is not allowed; allowed: {allowed}"):
                config.validate({option.key: "nonsense"}, HOST, "x")


def test_template_defaults_are_the_validated_defaults(tmp_path: Path) -> None:
    host = config.HostFacts(cpus=4, memory_mib=8192, home=tmp_path)
    lines = config.template(host).splitlines()
    keys = {o.key for o in config.OPTIONS}
    uncommented = [
        line[2:] for line in lines if line.startswith("# ") and line[2:].split(" = ")[0] in keys
    ]
    assert config.validate(tomllib.loads("\n".join(uncommented)), host, "x") == config.validate(
        {}, host, "x"
    )
    assert "# Allowed: 1 to 4 (the host's CPU count)." in lines


def test_schema_json_is_json_and_follows_the_host() -> None:
    schema = config.schema_json(HOST)
    json.loads(json.dumps(schema))
    by_key = {entry["key"]: entry for entry in schema}
    assert list(by_key) == [o.key for o in config.OPTIONS]
    assert (by_key["cpus"]["min"], by_key["cpus"]["max"], by_key["cpus"]["default"]) == (1, 4, 2)
    assert (by_key["memory_gib"]["max"], by_key["memory_gib"]["unit"]) == (8.0, "GiB")
    assert by_key["driver"]["choices"] == ["libvirt", "qemu"]
    assert by_key["driver"]["default"] == config.DEFAULT_DRIVER
    assert by_key["mounts"]["type"] == "list"
    assert all(entry["restart"] is True for entry in schema)
    small = config.schema_json(config.HostFacts(cpus=1, memory_mib=4096))
    assert (small[0]["default"], small[0]["max"]) == (1, 1)


def test_write_file_round_trips_and_keeps_the_mode(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    host = config.HostFacts(cpus=4, memory_mib=8192, home=tmp_path)
    path = tmp_path / "machine" / "config.toml"
    values = {"cpus": 3, "memory_gib": 1.5, "mounts": ["~/src"], "engine": {"debug": True}}
    written = config.write_file(path, values, host)
    assert path.read_text().startswith("# ")
    assert config.read_file(path) == values
    assert config.load(path, host) == written
    assert (written.cpus, written.mounts, dict(written.engine)) == (3, ("~/src",), {"debug": True})
    path.chmod(0o640)
    config.write_file(path, {"cpus": 1}, host)
    assert config.read_file(path) == {"cpus": 1}  # the file is the values given, nothing else
    assert path.stat().st_mode & 0o777 == 0o640


def test_invalid_write_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# mine\ncpus = 2\n")
    with pytest.raises(ConfigError) as info:
        config.write_file(path, {"cpus": 9, "image": "arch"}, HOST)
    assert len(info.value.problems) == 2
    with pytest.raises(ConfigError, match="cannot be written as TOML"):
        config.write_file(path, {"engine": {"debug": None}}, HOST)
    assert path.read_text() == "# mine\ncpus = 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
    with pytest.raises(ConfigError):
        config.write_file(tmp_path / "new.toml", {"colour": "red"}, HOST)
    assert not (tmp_path / "new.toml").exists()


def test_config_imports_nothing_above_its_layer() -> None:
    code = (
        "import sys, moorage.config; "
        "print(sorted(m for m in sys.modules if m.startswith('moorage.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['moorage.config', 'moorage.errors']"
