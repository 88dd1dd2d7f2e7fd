"""A machine's configuration: a schema as data, layered sources, every error at once.

Each ``Option`` in ``OPTIONS`` carries its type, default, allowed choices or
range, unit and description as data, so the things that show or enforce the
schema cannot disagree: ``validate`` derives its plain range and choice
messages from it, ``template`` writes the commented default file from it,
``markdown_table`` renders README.md's table from it (a unit test keeps the
two identical), and ``schema_json`` hands it to the agent's API, from which a
preferences dialog is generated. Rules that are not a plain range or set of
choices (the disk only grows, shared folders must be real and apart) stay
code, in ``Option.check``.

Layers, lowest first (``load`` is the one place that applies them):

1. the defaults in ``OPTIONS``;
2. the machine's TOML file, ``config_dir/machines/NAME/config.toml``;
3. overrides given on the command line for one start.

``validate`` checks the merged result against the schema and the host
(memory above host RAM, more CPUs than the host has, a disk smaller than it
already is, an unknown key) and reports every problem in one ``ConfigError``,
each naming the key, the bad value and what is allowed. Changes take effect
on the next start. ``write_file`` validates before it writes, and replaces
the file atomically, so a bad edit never reaches the disk.

This is the bottom layer: it imports nothing of moorage but ``errors``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import stat
import sys
import tempfile
import textwrap
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from moorage.errors import ConfigError

DEFAULT_DRIVER = "libvirt" if sys.platform.startswith("linux") else "qemu"
"""The hypervisor backend used when ``driver`` is not set. It lives here, not in
``moorage.vm.drivers``, so that the config schema needs nothing above its layer;
the drivers package re-exports it as ``DEFAULT``."""


@dataclass(frozen=True)
class HostFacts:
    """What validation needs to know about the host; tests pass their own."""

    cpus: int
    memory_mib: int
    disk_bytes: int | None = None
    """The data disk's current size, if it exists."""
    home: Path = field(default_factory=Path.home)
    """What ``~`` means in ``mounts``."""

    @classmethod
    def read(cls, data_disk: Path | None = None) -> HostFacts:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        disk = None
        if data_disk is not None and data_disk.exists():
            disk = data_disk.stat().st_size
        return cls(cpus=os.cpu_count() or 1, memory_mib=pages >> 20, disk_bytes=disk)


@dataclass(frozen=True)
class Fixed:
    """A default or bound that is the same on every host.

    It is called like any other ``HostFacts -> value`` function, but marks the
    value as host-independent, so ``markdown_table`` (which has no host) may
    print it; anything else must say in words what it is (``default_text``).
    """

    value: Any

    def __call__(self, _host: HostFacts) -> Any:
        # A fresh copy each call: a caller that appends to the default ``mounts``
        # list must not change the schema's.
        return copy.deepcopy(self.value)


@dataclass(frozen=True)
class Range:
    """A numeric range, both ends inclusive; either end may follow the host."""

    minimum: Callable[[HostFacts], float]
    maximum: Callable[[HostFacts], float]
    host_limit: str | None = None
    """In words, the host fact a non-``Fixed`` end follows ("the host's RAM"): the
    error message names it, and the README shows it in place of a number."""


def _no_check(_value: Any, _host: HostFacts) -> str | None:
    return None


@dataclass(frozen=True)
class Option:
    """One key of the schema, as data a dialog or a document can read.

    ``choices`` or ``bounds`` hold the plain allowed set, which ``validate``
    enforces with messages built from the same data. ``check`` is for the rules
    that are not a plain set or range; it returns a problem ("must be ...") or
    None, and runs only once the value is of the right type and in range.
    """

    key: str
    kind: type
    default: Callable[[HostFacts], Any]
    description: str
    check: Callable[[Any, HostFacts], str | None] = _no_check
    _: KW_ONLY
    choices: tuple[str, ...] | None = None
    choice_help: Mapping[str, str] = field(default_factory=dict)
    """A few words for choices that need them, shown next to the choice."""
    bounds: Range | None = None
    unit: str | None = None
    """The unit of a number ("GiB"), named in range messages and shown by a dialog."""
    default_text: str | None = None
    """The default in words, for the README; required when the default is not ``Fixed``."""
    allowed_text: str | None = None
    """What is allowed, in words (Markdown), for the README; derived from
    ``choices`` or ``bounds`` when not given."""
    restart: bool = True
    """Whether a change needs a restart of the machine (today every one does)."""

    def allowed(self) -> str:
        """What is allowed, host-independent and in Markdown: the README's column."""
        if self.allowed_text is not None:
            return self.allowed_text
        if self.choices is not None:
            return ", ".join(
                f"`{c}` ({self.choice_help[c]})" if c in self.choice_help else f"`{c}`"
                for c in self.choices
            )
        if self.bounds is not None:
            low = _bound_words(self.bounds.minimum, self.bounds)
            return f"{low} to {_bound_words(self.bounds.maximum, self.bounds)}"
        return "any"

    def default_words(self) -> str:
        """The default, host-independent and in Markdown: the README's column."""
        if self.default_text is not None:
            return self.default_text
        if not isinstance(self.default, Fixed):
            raise ValueError(
                f"option {self.key!r} needs a default_text: its default follows the host"
            )
        return _markdown_value(self.default.value)


def _bound_words(bound: Callable[[HostFacts], float], bounds: Range) -> str:
    if isinstance(bound, Fixed):
        return f"{bound.value:g}"
    if bounds.host_limit is None:
        raise ValueError("a Range whose end follows the host needs a host_limit")
    return bounds.host_limit


def _markdown_value(value: Any) -> str:
    """A value as the README shows it: numbers bare, the rest as TOML in backticks."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{_toml_value(value)}`"


def _toml_value(value: Any) -> str:
    """A scalar or list of scalars spelt as TOML (JSON spells them the same way)."""
    return json.dumps(value)


def _number(value: float, kind: type) -> str:
    return f"{value:.1f}" if kind is float else str(value)


def _range_problem(option: Option, bounds: Range, host: HostFacts) -> str:
    """The one wording of a range, shared by error messages and the template."""
    low, high = bounds.minimum(host), bounds.maximum(host)
    text = f"{_number(low, option.kind)} to {_number(high, option.kind)}"
    if option.unit:
        text += f" {option.unit}"
    if bounds.host_limit:
        text += f" ({bounds.host_limit})"
    return text


def _plain_problem(option: Option, value: Any, host: HostFacts) -> str | None:
    """The check that ``choices`` and ``bounds`` imply, worded from the same data."""
    if option.choices is not None and value not in option.choices:
        return f"allowed: {', '.join(repr(c) for c in option.choices)}"
    bounds = option.bounds
    if bounds is not None and not bounds.minimum(host) <= value <= bounds.maximum(host):
        return f"allowed: {_range_problem(option, bounds, host)}"
    return None


_DISK_MIN_GIB = 8
_DISK_MAX_GIB = 16384


def _disk_grows(value: int, host: HostFacts) -> str | None:
    if host.disk_bytes is not None and value * (1 << 30) < host.disk_bytes:
        have = host.disk_bytes / (1 << 30)
        return (
            f"the disk is already {have:g} GiB and can only grow: use at least {have:g}, "
            "or `moorage reset` to start over with an empty disk"
        )
    return None


def _default_disk(host: HostFacts) -> int:
    """64 GiB, or the disk's size once it was grown past that: removing the key never shrinks."""
    if host.disk_bytes is None:
        return 64
    return max(64, -(-host.disk_bytes // (1 << 30)))


# Guest paths a shared folder may not cover: the guest's own system, and the engine's state.
_GUEST_OWN = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/mnt/data", "/proc", "/run",
              "/sbin", "/sys", "/usr", "/var/lib/containerd", "/var/lib/docker")  # fmt: skip
_GUEST_OWN_EXACT = ("/", "/mnt", "/tmp", "/var")


def expand_mount(entry: str, home: Path) -> Path:
    """A ``mounts`` entry as a host path: ``~`` and ``~/...`` are the user's home."""
    return home / entry[2:] if entry.startswith("~/") else home if entry == "~" else Path(entry)


def _mounts(value: list[Any], host: HostFacts) -> str | None:
    problems: list[str] = []
    seen: list[Path] = []
    for entry in value:
        if not isinstance(entry, str):
            problems.append(f"{entry!r} is not a path (a string)")
            continue
        path = expand_mount(entry, host.home)
        if not path.is_absolute():
            problems.append(f"{entry!r} is not an absolute path (or ~, ~/...)")
        elif "\t" in entry or "\n" in entry:
            problems.append(f"{entry!r} has a tab or newline in it, which cannot be shared")
        elif str(path) in _GUEST_OWN_EXACT or any(
            path == Path(own) or Path(own) in path.parents for own in _GUEST_OWN
        ):
            problems.append(f"{entry!r} would hide the guest's own {path}; share a folder in it")
        elif not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            problems.append(f"{entry!r} {what} on the host; create it or remove it from mounts")
        elif any(p == path or p in path.parents or path in p.parents for p in seen):
            problems.append(f"{entry!r} overlaps another shared folder; share one of the two")
        else:
            seen.append(path)
    return "; ".join(problems) or None


OPTIONS: tuple[Option, ...] = (
    Option(
        "cpus",
        int,
        lambda h: min(2, h.cpus),
        "Virtual CPUs of the VM.",
        bounds=Range(Fixed(1), lambda h: h.cpus, "the host's CPU count"),
        default_text="2 (or fewer on a smaller host)",
    ),
    Option(
        "memory_gib",
        float,
        Fixed(2.0),
        "Memory of the VM in GiB.",
        bounds=Range(Fixed(0.5), lambda h: h.memory_mib / 1024, "the host's RAM"),
        unit="GiB",
    ),
    Option(
        "disk_gib",
        int,
        _default_disk,
        "Size of the sparse data disk in GiB. It can grow, never shrink.",
        _disk_grows,
        bounds=Range(Fixed(_DISK_MIN_GIB), Fixed(_DISK_MAX_GIB)),
        unit="GiB",
        default_text="64",
        allowed_text=(
            f"{_DISK_MIN_GIB} to {_DISK_MAX_GIB}, and never smaller than the disk already is "
            "(it only grows; growing applies on restart)"
        ),
    ),
    Option(
        "driver",
        str,
        lambda _h: DEFAULT_DRIVER,
        "Hypervisor backend.",
        choices=("libvirt", "qemu"),
        choice_help={"qemu": "no daemon needed"},
        default_text="`libvirt` on Linux",
    ),
    Option(
        "image",
        str,
        Fixed("debian"),
        "Guest image recipe.",
        choices=("debian", "alpine"),
        choice_help={"debian": "Debian 13, engine 26.1, kernel 6.12"},
    ),
    Option(
        "accel",
        str,
        Fixed("auto"),
        "How the guest's CPU runs: KVM (hardware virtualization) or TCG (emulation, much slower).",
        choices=("auto", "kvm", "tcg"),
        choice_help={"auto": "test-boot KVM, else TCG with a warning", "kvm": "required"},
    ),
    Option(
        "expose_ports",
        bool,
        Fixed(False),
        "Forward published container ports on all host interfaces, not only on loopback.",
        allowed_text=(
            "`true` forwards published container ports on all host interfaces "
            "instead of loopback only"
        ),
    ),
    Option(
        "file_sharing",
        str,
        Fixed("auto"),
        "How host folders are shared into the VM.",
        choices=("auto", "virtiofs", "sshfs"),
        choice_help={
            "auto": "virtiofs where the driver and host have it, else sshfs, with a warning"
        },
    ),
    Option(
        "mounts",
        list,
        Fixed(["~"]),
        "Host folders shared into the VM at the same absolute path, read-write, so that "
        "bind mounts work unchanged. '~' is your home folder.",
        _mounts,
        allowed_text=(
            "host folders shared at the same path: existing, absolute (or `~`, `~/…`), "
            "not overlapping, not one of the guest's own (`/etc`, `/usr`, `/var`, `/tmp`, …); "
            "`[]` shares none"
        ),
    ),
    Option(
        "engine",
        dict,
        Fixed({}),
        "Extra dockerd settings (daemon.json keys), e.g. engine.debug = true.",
        default_text="—",
        allowed_text="extra dockerd settings (`daemon.json` keys)",
    ),
)
BY_KEY = {o.key: o for o in OPTIONS}


@dataclass(frozen=True)
class MachineConfig:
    cpus: int
    memory_gib: float
    disk_gib: int
    driver: str
    image: str
    accel: str
    expose_ports: bool = False
    mounts: tuple[str, ...] = ("~",)
    file_sharing: str = "auto"
    engine: Mapping[str, Any] = field(default_factory=dict)

    @property
    def memory_mib(self) -> int:
        return int(self.memory_gib * 1024)

    def shared_folders(self, home: Path) -> list[Path]:
        return [expand_mount(entry, home) for entry in self.mounts]


def _type_ok(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is bool:
        return isinstance(value, bool)
    return isinstance(value, kind)


def checked_values(
    options: Sequence[Option], raw: Mapping[str, Any], host: HostFacts
) -> tuple[dict[str, Any], list[str]]:
    """``raw`` merged over the defaults of ``options``, and every problem found: unknown
    keys, wrong types, values not allowed. The schemas made of ``Option`` share it (this
    one, ``update_settings``)."""
    keys = [option.key for option in options]
    problems = [
        f"unknown key {key!r}; known keys: {', '.join(keys)}" for key in raw if key not in keys
    ]
    values: dict[str, Any] = {}
    for option in options:
        value = raw.get(option.key, option.default(host))
        if not _type_ok(value, option.kind):
            problems.append(
                f"{option.key} = {value!r} has the wrong type: expected {option.kind.__name__}"
            )
            continue
        if problem := _plain_problem(option, value, host) or option.check(value, host):
            problems.append(f"{option.key} = {value!r} is not allowed; {problem}")
        values[option.key] = (
            float(value) if option.kind is float else tuple(value) if option.kind is list else value
        )
    return values, problems


def validate(raw: Mapping[str, Any], host: HostFacts, source: str) -> MachineConfig:
    """Merge ``raw`` over the defaults and check it all; raise one ConfigError listing each problem."""
    values, problems = checked_values(OPTIONS, raw, host)
    if problems:
        raise ConfigError(source, problems)
    return MachineConfig(**values)


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from exc


def load(path: Path, host: HostFacts, overrides: Mapping[str, Any] | None = None) -> MachineConfig:
    """Defaults < file < overrides, validated together."""
    raw = {**read_file(path), **(overrides or {})}
    return validate(raw, host, str(path))


_HEADER = "# moorage machine config. Changes apply on the next `moorage restart`."


def _comment(text: str) -> list[str]:
    """``text`` as ``# `` lines that fit a terminal; paths and URLs are never split."""
    return textwrap.wrap(
        text,
        width=79,
        initial_indent="# ",
        subsequent_indent="# ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def template(host: HostFacts) -> str:
    """A commented config file showing every option at its default, and what it allows."""
    lines = [_HEADER, ""]
    for option in OPTIONS:
        lines += _comment(option.description)
        if option.choices is not None:
            lines += _comment(
                "Allowed: "
                + ", ".join(
                    f"{c!r} ({option.choice_help[c]})" if c in option.choice_help else repr(c)
                    for c in option.choices
                )
                + "."
            )
        elif option.bounds is not None:
            lines += _comment(f"Allowed: {_range_problem(option, option.bounds, host)}.")
        if option.kind is dict:
            # A table, not a value: show its header and one example key.
            lines += [f"# [{option.key}]", "# debug = true", ""]
            continue
        lines.append(f"# {option.key} = {_toml_value(option.default(host))}")
        lines.append("")
    return "\n".join(lines)


def schema_json(host: HostFacts) -> list[dict[str, Any]]:
    """Every option as JSON-able data, with this host's defaults and bounds.

    The agent's API serves this, and the preferences dialog is generated from
    it, so it shows the same choices and limits that ``validate`` enforces.
    ``allowed`` is the README's wording (Markdown); ``choice_help`` maps a
    choice to a few words about it.
    """
    schema: list[dict[str, Any]] = []
    for option in OPTIONS:
        bounds = option.bounds
        schema.append(
            {
                "key": option.key,
                "type": option.kind.__name__,
                "default": option.default(host),
                "description": option.description,
                "choices": list(option.choices) if option.choices is not None else None,
                "choice_help": dict(option.choice_help),
                "min": bounds.minimum(host) if bounds is not None else None,
                "max": bounds.maximum(host) if bounds is not None else None,
                "unit": option.unit,
                "allowed": option.allowed(),
                "restart": option.restart,
            }
        )
    return schema


def markdown_table() -> str:
    """README.md's Configuration table, rendered from the schema.

    A unit test checks that README.md holds exactly this text, so when an
    option changes, the test says to paste the new table in.
    """
    rows = ["| key | default | allowed |", "| --- | --- | --- |"]
    for option in OPTIONS:
        key = f"`[{option.key}]`" if option.kind is dict else f"`{option.key}`"
        cells = (key, option.default_words(), option.allowed())
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def _plain(value: Any, kind: type) -> Any:
    """A validated value as tomli-w takes it: tuples as lists, mappings as dicts."""
    if kind is float:
        return float(value)
    if kind is list:
        return list(value)
    if kind is dict:
        return dict(value)
    return value


def write_file(path: Path, values: Mapping[str, Any], host: HostFacts) -> MachineConfig:
    """Validate ``values``, then make them the whole of the machine's config file.

    Only the keys given are written, so the rest keep following their defaults
    (a default that follows the host stays that way). Nothing is written when
    any value is wrong: the ConfigError lists every problem, as ``load`` would.
    The new file replaces the old one in one rename, so a crash leaves one or
    the other, never half of each; an existing file's mode is kept. Comments in
    the old file are not kept.
    """
    cfg = validate(values, host, str(path))
    data = {o.key: _plain(values[o.key], o.kind) for o in OPTIONS if o.key in values}
    try:
        body = tomli_w.dumps(data)
    except (TypeError, ValueError) as exc:  # e.g. a None somewhere in [engine]
        raise ConfigError(str(path), [f"cannot be written as TOML: {exc}"]) from exc
    text = f"{_HEADER}\n# Written by moorage; keys left out take their defaults.\n\n{body}"
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None  # mkstemp's 0600: private until the user says otherwise
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return cfg
