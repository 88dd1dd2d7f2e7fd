from __future__ import annotations

import os
from pathlib import Path

import pytest

from moorage.errors import ImageError
from moorage.vm.image import manifest
from tests.helpers.images import write_image


def make_image(folder: Path) -> Path:
    write_image(folder, contents={"root.img": b"root" * 1000})
    return folder


def test_a_whole_image_verifies(tmp_path: Path) -> None:
    image = make_image(tmp_path / "img")
    assert manifest.verify(image).version == "v1"
    assert manifest.verify(image).version == "v1"  # second time from the memo


def test_a_tampered_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    image = make_image(tmp_path / "img")
    manifest.verify(image)  # memo written
    with (image / "root.img").open("r+b") as f:
        f.seek(10)
        f.write(b"X")
    with pytest.raises(ImageError, match=r"root.img does not match its manifest \(sha256"):
        manifest.verify(image)


def test_same_size_same_mtime_change_is_caught_by_a_full_check(tmp_path: Path) -> None:
    image = make_image(tmp_path / "img")
    manifest.verify(image)
    path = image / "root.img"
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ImageError, match="does not match"):
        manifest.verify(image, full=True)


def test_missing_file_and_missing_manifest(tmp_path: Path) -> None:
    image = make_image(tmp_path / "img")
    (image / "initrd.img").unlink()
    with pytest.raises(ImageError, match=r"initrd\.img is missing"):
        manifest.verify(image)
    with pytest.raises(ImageError, match="no image at"):
        manifest.verify(tmp_path / "nothing")


def test_a_manifest_without_hashes_for_its_files_is_invalid() -> None:
    text = manifest.Manifest(
        recipe="r",
        version="v",
        created="c",
        kernel="k",
        initrd="i",
        root="r",
        cmdline="",
        engine_version="",
        files={"k": "0"},
    ).to_json()
    with pytest.raises(ImageError, match="no sha256 for 'i'"):
        manifest.Manifest.from_json(text)
