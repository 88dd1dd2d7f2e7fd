"""A settings form as data, from a schema the agent serves (``config.schema_json``,
``update_settings.schema_json``). Pure (no Qt): the preferences dialog draws a widget
for each ``Field``; what is shown, what is sent and what needs a restart are decided
here, and tested without a display.

A schema entry is a dict with ``key``, ``type`` (``bool``, ``int``, ``float``, ``str``,
``list``, ``dict``), ``default``, ``description``, and optionally ``choices`` and
``choice_help``, ``min`` and ``max``, ``unit``, ``allowed`` (Markdown) and ``restart``.
A key the desktop has never heard of still gets a widget from its type, so a new
option needs no change here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["check", "choice", "int", "float", "folders", "text", "table"]
"""How a value is edited: a checkbox, a combo box, a spin box (whole or decimal), the
shared-folder list, a line of text, or a table (shown, edited in the file)."""

WORDS = {"cpus": "CPUs", "url": "URL", "tuf": "TUF", "gib": "GiB", "mib": "MiB"}
"""Words a key spells in lower case that a label spells otherwise."""

_PROBLEM_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w]*) = ")
_UNKNOWN_KEY = re.compile(r"^unknown key '(?P<key>[^']+)'")


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    kind: Kind
    default: Any
    help: str
    allowed: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    """(value, text shown): the text adds the choice's help where it has one."""
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    restart: bool = True
    """Whether a change applies only when the machine starts again."""


def label(key: str, unit: str | None = None) -> str:
    """``memory_gib`` with unit GiB → ``Memory``; ``cpus`` → ``CPUs``."""
    words = key.split("_")
    if unit and len(words) > 1 and words[-1].lower() == unit.lower():
        words = words[:-1]
    shown = [WORDS.get(w.lower(), w) for w in words]
    text = " ".join(shown)
    return text[:1].upper() + text[1:]


def _plain(markdown: str) -> str:
    return markdown.replace("`", "")


def field(entry: Mapping[str, Any]) -> Field:
    """The field a schema entry is edited with."""
    key = str(entry["key"])
    kind_name = str(entry.get("type", "str"))
    unit = str(entry.get("unit") or "")
    choices = entry.get("choices")
    kind: Kind
    if choices:
        kind = "choice"
    elif kind_name == "bool":
        kind = "check"
    elif kind_name == "int":
        kind = "int"
    elif kind_name == "float":
        kind = "float"
    elif kind_name == "list":
        # The schema's one list is of host folders (``mounts``); it does not name a
        # list's item type, so every list is taken for one of folders.
        kind = "folders"
    elif kind_name == "str":
        kind = "text"
    else:
        kind = "table"
    helps = entry.get("choice_help") or {}
    shown = tuple((str(c), f"{c} — {helps[c]}" if c in helps else str(c)) for c in (choices or ()))
    low, high = entry.get("min"), entry.get("max")
    return Field(
        key=key,
        label=label(key, unit),
        kind=kind,
        default=entry.get("default"),
        help=str(entry.get("description") or ""),
        allowed=_plain(str(entry.get("allowed") or "")),
        choices=shown,
        minimum=float(low) if low is not None else None,
        maximum=float(high) if high is not None else None,
        unit=unit,
        restart=bool(entry.get("restart", True)),
    )


def fields(schema: Iterable[Mapping[str, Any]]) -> list[Field]:
    return [field(entry) for entry in schema]


def same(a: Any, b: Any) -> bool:
    """Equal as the config file sees it: a tuple and a list of the same items, 1 and 1.0."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return bool(a == b)


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The keys whose value in ``after`` differs from ``before``, in ``after``'s order."""
    return [k for k, v in after.items() if k not in before or not same(before[k], v)]


def to_write(form: list[Field], values: Mapping[str, Any]) -> dict[str, Any]:
    """What the machine's config file should hold: every value that is not its default.

    A key at its default is left out, so it keeps following the default (which may
    follow the host: the CPUs of a smaller host); the file is written whole.
    """
    return {
        f.key: values[f.key] for f in form if f.key in values and not same(values[f.key], f.default)
    }


def restart_needed(form: list[Field], keys: Iterable[str]) -> list[Field]:
    """The fields among ``keys`` whose change applies at the machine's next start."""
    wanted = set(keys)
    return [f for f in form if f.key in wanted and f.restart]


def problems_by_key(
    problems: Iterable[str], keys: Iterable[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Each problem of a ConfigError under the key it names (``cpus = 99 is not
    allowed; …``, ``unknown key 'x'; …``); the rest (a file that is not TOML) apart."""
    known = set(keys)
    by_key: dict[str, list[str]] = {}
    rest: list[str] = []
    for problem in problems:
        match = _PROBLEM_KEY.match(problem) or _UNKNOWN_KEY.match(problem)
        if match is not None and match["key"] in known:
            by_key.setdefault(match["key"], []).append(problem)
        else:
            rest.append(problem)
    return by_key, rest


def listing(labels: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]
