"""The plain-QEMU backend boots the same image to a working engine."""

from __future__ import annotations

from pathlib import Path

from .conftest import _start, unique


def test_qemu_driver_boots_to_a_working_engine(fresh_home: Path) -> None:
    m = _start(unique("e2eq"), fresh_home, driver="qemu")
    try:
        st = m.status()
        assert st["driver"] == "qemu" and st["state"] == "running"
        # The default share, ~, over virtiofs through this backend too.
        assert st["file_sharing"] == "virtiofs" and str(Path.home()) in st["shared_folders"]
        out = m.docker("version", "--format", "{{.Server.Version}}").stdout.decode()
        assert out.startswith("26.")
        m.moorage("stop")
        assert m.status()["state"] == "stopped"
    finally:
        m.moorage("delete", "--yes", check=False)
