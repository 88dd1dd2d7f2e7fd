from __future__ import annotations

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
