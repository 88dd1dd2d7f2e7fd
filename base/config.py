"""A machine's configuration: a schema as data, layered sources, every error at once.

Layers, lowest first (``load`` is the one place that applies them):

1. the defaults in ``OPTIONS``;
2. the machine's TOML file, ``config_dir/machines/NAME/config.toml``;
3. overrides given on the command line for one start.

``validate`` checks the merged result against the schema and the host
(memory above host RAM, more CPUs than the host has, a disk smaller than it
already is, an unknown key) and reports every problem in one ``ConfigError``,
each naming the key, the bad value and what is allowed. Changes take effect
on the next start.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moorage.errors import ConfigError


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
class Option:
    """One key of the schema. ``check`` returns a problem ("must be ...") or None."""

    key: str
    kind: type
    default: Callable[[HostFacts], Any]
    description: str
    check: Callable[[Any, HostFacts], str | None] = lambda _v, _h: None


def _one_of(*allowed: str) -> Callable[[Any, HostFacts], str | None]:
    def check(value: Any, _host: HostFacts) -> str | None:
        return None if value in allowed else f"allowed: {', '.join(repr(a) for a in allowed)}"

    return check


def _cpus(value: int, host: HostFacts) -> str | None:
    if value < 1 or value > host.cpus:
        return f"allowed: 1 to {host.cpus} (the host's CPU count)"
    return None


def _memory(value: float, host: HostFacts) -> str | None:
    most = host.memory_mib / 1024
    if value < 0.5 or value * 1024 > host.memory_mib:
        return f"allowed: 0.5 to {most:.1f} GiB (the host's RAM)"
    return None


def _disk(value: int, host: HostFacts) -> str | None:
    if value < 8 or value > 16384:
        return "allowed: 8 to 16384 GiB"
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


def _default_driver(_host: HostFacts) -> str:
    from moorage.vm.drivers import DEFAULT  # noqa: PLC0415 - keeps config import light

    return DEFAULT


OPTIONS: tuple[Option, ...] = (
    Option("cpus", int, lambda h: min(2, h.cpus), "Virtual CPUs of the VM.", _cpus),
    Option("memory_gib", float, lambda _h: 2.0, "Memory of the VM in GiB.", _memory),
    Option(
        "disk_gib",
        int,
        _default_disk,
        "Size of the sparse data disk in GiB. It can grow, never shrink.",
        _disk,
    ),
    Option(
        "driver",
        str,
        _default_driver,
        "Hypervisor backend: 'libvirt' or 'qemu'.",
        _one_of("libvirt", "qemu"),
    ),
    Option(
        "image",
        str,
        lambda _h: "debian",
        "Guest image recipe: 'debian' or 'alpine'.",
        _one_of("debian", "alpine"),
    ),
    Option(
        "accel",
        str,
        lambda _h: "auto",
        "'auto' probes KVM and falls back to TCG; 'kvm' requires KVM; 'tcg' never tries it.",
        _one_of("auto", "kvm", "tcg"),
    ),
    Option(
        "expose_ports",
        bool,
        lambda _h: False,
        "Forward published container ports on all host interfaces, not only on loopback.",
    ),
    Option(
        "mounts",
        list,
        lambda _h: ["~"],
        "Host folders shared into the VM at the same absolute path, read-write, so that "
        "bind mounts work unchanged. '~' is your home folder.",
        _mounts,
    ),
    Option(
        "file_sharing",
        str,
        lambda _h: "auto",
        "How folders are shared: 'auto' (virtiofs where the driver and host have it, "
        "else sshfs), 'virtiofs', or 'sshfs'.",
        _one_of("auto", "virtiofs", "sshfs"),
    ),
    Option(
        "engine",
        dict,
        lambda _h: {},
        "Extra dockerd settings (daemon.json keys), e.g. engine.debug = true.",
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


def validate(raw: Mapping[str, Any], host: HostFacts, source: str) -> MachineConfig:
    """Merge ``raw`` over the defaults and check it all; raise one ConfigError listing each problem."""
    problems: list[str] = []
    for key in raw:
        if key not in BY_KEY:
            problems.append(f"unknown key {key!r}; known keys: {', '.join(BY_KEY)}")
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = raw.get(option.key, option.default(host))
        if not _type_ok(value, option.kind):
            problems.append(
                f"{option.key} = {value!r} has the wrong type: expected {option.kind.__name__}"
            )
            continue
        if problem := option.check(value, host):
            problems.append(f"{option.key} = {value!r} is not allowed; {problem}")
        values[option.key] = (
            float(value) if option.kind is float else tuple(value) if option.kind is list else value
        )
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


def template(host: HostFacts) -> str:
    """A commented config file showing every option at its default."""
    lines = ["# moorage machine config. Changes apply on the next `moorage restart`.", ""]
    for option in OPTIONS:
        if option.kind is dict:
            continue
        lines.append(f"# {option.description}")
        value = option.default(host)
        shown = json.dumps(value)  # TOML spells str, int, float and bool the same way
        lines.append(f"# {option.key} = {shown}")
        lines.append("")
    lines += ["# Extra dockerd settings:", "# [engine]", "# debug = true", ""]
    return "\n".join(lines)
