"""Start at login: the tray's XDG autostart entry. Files only (no Qt), so each case is a
unit test with its own ``XDG_CONFIG_HOME``.

The entry is ``moorage-tray.desktop`` beside this module: the one copy, which the
.deb also installs as ``/etc/xdg/autostart/moorage-tray.desktop``
(``installers/build.py`` reads it from here; this layer may not import the
installers, and they may not import it).

Per the XDG Autostart spec, the user's ``$XDG_CONFIG_HOME/autostart`` (default
``~/.config/autostart``) overrides an entry of the same name in each of
``$XDG_CONFIG_DIRS`` (default ``/etc/xdg``), and an entry with ``Hidden=true`` is not
started. So start at login is on when the user's entry exists and is not hidden, or
when there is none and a system-wide one is not hidden. Turning it off removes the
user's entry; where the package's system-wide entry would then start the tray anyway,
it writes a hidden entry in its place.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

NAME = "moorage-tray.desktop"
TEMPLATE = Path(__file__).resolve().with_name(NAME)
COMMAND = "moorage tray"
"""What the template's ``Exec`` runs."""

_SAFE = re.compile(r"^[A-Za-z0-9/._+-]+$")


def config_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    value = env.get("XDG_CONFIG_HOME", "")
    # The spec: a relative path is invalid and is ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or Path.home()) / ".config"


def config_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    dirs = [Path(d) for d in env.get("XDG_CONFIG_DIRS", "").split(":") if os.path.isabs(d)]
    return dirs or [Path("/etc/xdg")]


def user_entry(env: Mapping[str, str] | None = None) -> Path:
    """Where the user's entry is: ``$XDG_CONFIG_HOME/autostart/moorage-tray.desktop``."""
    return config_home(env) / "autostart" / NAME


def _enabled(path: Path) -> bool | None:
    """Whether the entry at ``path`` starts the tray; None when there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            group = line
            continue
        if group != "[Desktop Entry]" or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        # Hidden is the spec's; GNOME also honours its own switch.
        if (key == "Hidden" and value == "true") or (
            key == "X-GNOME-Autostart-enabled" and value == "false"
        ):
            return False
    return True


def is_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether the tray starts at login."""
    mine = _enabled(user_entry(env))
    return mine if mine is not None else _system_enabled(env)


def _system_enabled(env: Mapping[str, str] | None) -> bool:
    return any(_enabled(d / "autostart" / NAME) for d in config_dirs(env))


def quote(arg: str) -> str:
    """One argument of an ``Exec`` line, quoted as the Desktop Entry spec says."""
    if _SAFE.match(arg):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    # In the file a backslash is itself escaped once more (the string type's rule).
    return '"' + escaped.replace("\\", "\\\\") + '"'


def tray_command() -> str:
    """``moorage tray``, with the full path to ``moorage`` when it is not on PATH (a
    virtual environment that a login session does not activate)."""
    if shutil.which("moorage") is not None:
        return COMMAND
    beside = Path(sys.executable).parent / "moorage"
    if beside.is_file() and os.access(beside, os.X_OK):
        return f"{quote(str(beside))} tray"
    return COMMAND


def entry_text(command: str = COMMAND, *, hidden: bool = False) -> str:
    """The template, running ``command``; ``hidden`` adds ``Hidden=true``."""
    text = TEMPLATE.read_text(encoding="utf-8")
    if command != COMMAND:
        text = re.sub(r"(?m)^Exec=.*$", lambda _m: f"Exec={command}", text)
    if hidden:
        text = text.rstrip("\n") + "\nHidden=true\n"
    return text


def _write(path: Path, text: str) -> None:
    """Replace ``path`` in one rename: a session starting meanwhile sees one or the other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def set_enabled(
    on: bool, env: Mapping[str, str] | None = None, *, command: str | None = None
) -> None:
    """Start the tray at login, or not. Raises OSError when the folder is not writable."""
    path = user_entry(env)
    if on:
        _write(path, entry_text(command or tray_command()))
    elif _system_enabled(env):
        _write(path, entry_text(command or tray_command(), hidden=True))
    else:
        path.unlink(missing_ok=True)
