"""Driver backends, one per module, found through a name → module table.

Importing this package imports no backend: on macOS the libvirt module (and
libvirt-python) is never touched, on Linux neither is HyperKit's.

Each backend module has ``create(run_root: Path) -> Driver``. ``run_root`` is the
folder under which every machine has its runtime folder ``run_root/NAME/``: vm/
does not know moorage's file layout, so the caller hands it the one path a
backend may need to find a VM again.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, cast

from moorage.config import DEFAULT_DRIVER
from moorage.errors import MachineError
from moorage.vm.driver import Driver

BACKENDS = {
    "libvirt": "moorage.vm.drivers.libvirt",
    "qemu": "moorage.vm.drivers.qemu",
}
DEFAULT = DEFAULT_DRIVER


class Backend(Protocol):
    """What each module named in ``BACKENDS`` offers."""

    def create(self, run_root: Path) -> Driver: ...


def get(name: str, run_root: Path) -> Driver:
    """The driver called ``name``; raise ``MachineError`` naming the choices if none is."""
    try:
        module = BACKENDS[name]
    except KeyError:
        raise MachineError(
            f"unknown driver {name!r}", fix=f"use one of: {', '.join(sorted(BACKENDS))}"
        ) from None
    return cast(Backend, importlib.import_module(module)).create(run_root)
