"""Driver backends, one per module, found through a name → module table.

Importing this package imports no backend: on macOS the libvirt module (and
libvirt-python) is never touched, on Linux neither is HyperKit's.
"""

from __future__ import annotations

import importlib
from typing import cast

from moorage.config import DEFAULT_DRIVER
from moorage.errors import MachineError
from moorage.vm.driver import Driver

BACKENDS = {
    "libvirt": "moorage.vm.drivers.libvirt",
    "qemu": "moorage.vm.drivers.qemu",
}
DEFAULT = DEFAULT_DRIVER


def get(name: str) -> Driver:
    try:
        module = importlib.import_module(BACKENDS[name])
    except KeyError:
        raise MachineError(
            f"unknown driver {name!r}", fix=f"use one of: {', '.join(sorted(BACKENDS))}"
        ) from None
    return cast(Driver, module.create())
