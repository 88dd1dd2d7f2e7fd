from __future__ import annotations

from pathlib import Path

import pytest

from moorage.errors import ConfigError
from moorage.vm import disks


def test_new_disk_is_sparse_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data.img"
    disks.ensure_data_disk(path, 64)
    st = path.stat()
    assert st.st_size == 64 << 30
    assert st.st_blocks * 512 < 1 << 20
    assert st.st_mode & 0o777 == 0o600


def test_disk_grows_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "data.img"
    disks.ensure_data_disk(path, 8)
    with path.open("r+b") as f:
        f.write(b"precious")
    disks.ensure_data_disk(path, 16)
    assert path.stat().st_size == 16 << 30
    with path.open("rb") as f:
        assert f.read(8) == b"precious"


def test_disk_never_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "data.img"
    disks.ensure_data_disk(path, 16)
    with pytest.raises(ConfigError, match="smaller than the disk already is"):
        disks.ensure_data_disk(path, 8)
    assert path.stat().st_size == 16 << 30
