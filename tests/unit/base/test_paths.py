from __future__ import annotations

import os
from pathlib import Path

import pytest

from moorage import paths
from moorage.errors import ConfigError, HostError


def test_machine_names_are_checked() -> None:
    assert paths.check_machine_name("dev-2") == "dev-2"
    for bad in ("", "Dev", "-x", "a/b", "x" * 40):
        with pytest.raises(ConfigError):
            paths.check_machine_name(bad)


def test_a_tmp_runtime_dir_is_made_private(tmp_path: Path) -> None:
    d = paths._own_tmp_dir(tmp_path / "rt")
    assert d.stat().st_mode & 0o777 == 0o700
    (tmp_path / "open").mkdir(mode=0o777)
    (tmp_path / "open").chmod(0o777)
    assert paths._own_tmp_dir(tmp_path / "open").stat().st_mode & 0o777 == 0o700


def test_a_squatted_runtime_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(HostError, match="not a folder owned by you"):
        paths._own_tmp_dir(tmp_path / "link")
    if os.getuid() == 0:
        (tmp_path / "theirs").mkdir()
        os.chown(tmp_path / "theirs", 12345, 12345)
        with pytest.raises(HostError, match="not a folder owned by you"):
            paths._own_tmp_dir(tmp_path / "theirs")


def test_sockets_fit_the_unix_path_limit() -> None:
    machine = paths.MachinePaths("a-machine-name-of-31-characters")
    assert len(str(machine.docker_socket)) < 104


def test_runtime_dir_prefers_a_writable_xdg_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOORAGE_HOME", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert paths.runtime_dir() == tmp_path / "moorage"


def test_runtime_dir_skips_an_unwritable_xdg_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOORAGE_HOME", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert paths.runtime_dir() != tmp_path / "missing" / "moorage"
    monkeypatch.setenv("MOORAGE_HOME", str(tmp_path / "home"))
    assert paths.runtime_dir() == tmp_path / "home" / "run"
