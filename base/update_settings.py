"""The app-wide update settings (``update.toml``): a schema as data, like ``config``.

The file sits in moorage's config folder beside ``machines/`` (``paths.update_config_file``,
under ``MOORAGE_HOME`` like every other file) because every machine runs the same
moorage. Each key is a ``config.Option``, so the things that show or enforce it cannot
disagree: ``validate`` reports every problem at once, ``markdown_table`` renders the README's table and ``schema_json`` hands the schema
to the agent's API for a settings dialog.

Keys left out follow their defaults; ``url`` and ``root`` default to what the build
shipped (``moorage.installers.trust``), which a git checkout does not have.

This is the bottom layer: it imports nothing of moorage but ``errors`` and ``config``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from moorage.config import Fixed, HostFacts, Option, checked_values, read_file
from moorage.errors import ConfigError

CHANNELS = ("stable", "beta")


def _url(value: str, _host: HostFacts) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL (or empty for the shipped one)"
    return None


def _root(value: str, _host: HostFacts) -> str | None:
    if value and not Path(value).expanduser().is_absolute():
        return "must be an absolute path to a root.json (or empty for the shipped one)"
    return None


OPTIONS: tuple[Option, ...] = (
    Option(
        "url",
        str,
        Fixed(""),
        "The update repository (TUF metadata/ and targets/ under it). Empty: the one "
        "this build ships.",
        _url,
        default_text="the shipped one",
        allowed_text="an `http(s)://` URL",
    ),
    Option(
        "channel",
        str,
        Fixed("stable"),
        "Which releases to follow.",
        choices=CHANNELS,
        choice_help={
            "stable": "only what was promoted from beta",
            "beta": "every release, first",
        },
    ),
    Option(
        "check",
        bool,
        Fixed(True),
        "Look for updates now and then (the host agent does, about once a day). "
        "false stops every automatic check.",
        allowed_text="`true`, `false` (no automatic check at all)",
    ),
    Option(
        "auto_install",
        bool,
        Fixed(False),
        "Download and stage updates without asking. The app's package still asks for "
        "your password when it is installed.",
        allowed_text="`false`, `true`",
    ),
    Option(
        "root",
        str,
        Fixed(""),
        "A TUF root.json to trust instead of the shipped one (for a private update "
        "server). Empty: the shipped one.",
        _root,
        default_text="the shipped one",
        allowed_text="an absolute path to a `root.json`",
    ),
)
BY_KEY = {o.key: o for o in OPTIONS}
_HOST = HostFacts(cpus=1, memory_mib=0)
"""No option here follows the host; ``Option``'s functions still take one."""


@dataclass(frozen=True)
class UpdateSettings:
    url: str = ""
    channel: str = "stable"
    check: bool = True
    auto_install: bool = False
    root: str = ""


def validate(raw: Mapping[str, Any], source: str) -> UpdateSettings:
    """Merge ``raw`` over the defaults; raise one ConfigError naming every problem."""
    values, problems = checked_values(OPTIONS, raw, _HOST)
    if problems:
        raise ConfigError(source, problems)
    return UpdateSettings(**values)


def load(path: Path) -> UpdateSettings:
    return validate(read_file(path), str(path))


def schema_json() -> list[dict[str, Any]]:
    """Every key as JSON-able data, for the API and a settings dialog."""
    return [
        {
            "key": o.key,
            "type": o.kind.__name__,
            "default": o.default(_HOST),
            "description": o.description,
            "choices": list(o.choices) if o.choices is not None else None,
            "choice_help": dict(o.choice_help),
            "allowed": o.allowed(),
        }
        for o in OPTIONS
    ]


def markdown_table() -> str:
    """README.md's table of update.toml, rendered from the schema (a unit test compares)."""
    rows = ["| key | default | allowed |", "| --- | --- | --- |"]
    rows += [f"| `{o.key}` | {o.default_words()} | {o.allowed()} |" for o in OPTIONS]
    return "\n".join(rows) + "\n"


def write(path: Path, changes: Mapping[str, Any]) -> UpdateSettings:
    """Set ``changes`` over what the file holds, validated first; replace it atomically.

    Keys the file did not set and ``changes`` does not name keep following their
    defaults. Nothing is written when a value is wrong.
    """
    raw = {**read_file(path), **changes}
    settings = validate(raw, str(path))
    text = "# moorage update settings (app-wide). Written by moorage.\n\n" + tomli_w.dumps(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return settings
