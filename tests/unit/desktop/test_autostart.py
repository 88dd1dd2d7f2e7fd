"""Start at login: the XDG autostart entry under a temporary XDG_CONFIG_HOME (no Qt)."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from moorage.desktop import autostart


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A session with its own config home and no system-wide entry."""
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CONFIG_DIRS": str(tmp_path / "etc-xdg"),
    }


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser["Desktop Entry"]


def test_on_writes_the_entry_and_off_removes_it(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "config" / "autostart" / "moorage-tray.desktop"
    assert autostart.user_entry(env) == path
    assert not autostart.is_enabled(env)

    autostart.set_enabled(True, env, command="moorage tray")
    assert autostart.is_enabled(env)
    assert path.read_text() == autostart.TEMPLATE.read_text()
    entry = _entry(path)
    assert entry["Exec"] == "moorage tray"
    assert entry["Type"] == "Application"
    assert path.stat().st_mode & 0o777 == 0o644

    autostart.set_enabled(False, env)
    assert not path.exists()
    assert not autostart.is_enabled(env)
    autostart.set_enabled(False, env)  # already off: nothing to do, no error


def test_default_config_home_is_dot_config(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "relative/ignored"}
    assert autostart.user_entry(env) == tmp_path / ".config" / "autostart" / autostart.NAME
    assert autostart.config_dirs(env) == [Path("/etc/xdg")]


@pytest.mark.parametrize(
    "line", ["Hidden=true", "X-GNOME-Autostart-enabled=false", "Hidden = true"]
)
def test_a_hidden_entry_is_off(env: dict[str, str], line: str) -> None:
    path = autostart.user_entry(env)
    path.parent.mkdir(parents=True)
    path.write_text(f"[Desktop Entry]\nType=Application\nExec=moorage tray\n{line}\n")
    assert not autostart.is_enabled(env)
    autostart.set_enabled(True, env, command="moorage tray")
    assert autostart.is_enabled(env)
    assert "Hidden" not in path.read_text()


def test_a_key_of_another_group_does_not_hide_it(env: dict[str, str]) -> None:
    path = autostart.user_entry(env)
    path.parent.mkdir(parents=True)
    path.write_text("[Desktop Entry]\nExec=moorage tray\n\n[Desktop Action x]\nHidden=true\n")
    assert autostart.is_enabled(env)


def test_the_packages_system_wide_entry_is_hidden_not_left_on(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The .deb installs /etc/xdg/autostart/moorage-tray.desktop: removing the user's
    entry would leave that one starting the tray, so off writes a hidden one."""
    system = tmp_path / "etc-xdg" / "autostart" / autostart.NAME
    system.parent.mkdir(parents=True)
    system.write_text(autostart.TEMPLATE.read_text())
    assert autostart.is_enabled(env)

    autostart.set_enabled(False, env, command="moorage tray")
    assert not autostart.is_enabled(env)
    assert _entry(autostart.user_entry(env))["Hidden"] == "true"

    autostart.set_enabled(True, env, command="moorage tray")
    assert autostart.is_enabled(env)
    assert "Hidden" not in _entry(autostart.user_entry(env))


def test_exec_names_moorage_by_full_path_off_path(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    venv = tmp_path / "my venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "moorage").write_text("#!/bin/sh\n")
    (venv / "moorage").chmod(0o755)
    monkeypatch.setattr(autostart.shutil, "which", lambda _name: None)
    monkeypatch.setattr(autostart.sys, "executable", str(venv / "python"))
    autostart.set_enabled(True, env)
    exec_line = _entry(autostart.user_entry(env))["Exec"]
    assert exec_line == f'"{venv}/moorage" tray'

    monkeypatch.setattr(autostart.shutil, "which", lambda _name: "/usr/bin/moorage")
    assert autostart.tray_command() == "moorage tray"


def test_quote_follows_the_desktop_entry_spec() -> None:
    assert autostart.quote("/opt/moorage/bin/moorage") == "/opt/moorage/bin/moorage"
    assert autostart.quote("/a b/$x") == '"/a b/\\\\$x"'


def test_the_deb_ships_the_same_entry() -> None:
    """One copy: installers/build.py reads the template beside the autostart module."""
    source = (Path(__file__).resolve().parents[3] / "installers" / "build.py").read_text()
    assert '"desktop" / "moorage-tray.desktop"' in source
    assert not (
        Path(__file__).resolve().parents[3] / "installers" / "debian" / autostart.NAME
    ).exists()
