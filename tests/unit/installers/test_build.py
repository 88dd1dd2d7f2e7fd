"""``scripts/release build``'s parts that need no network: versions, the staged tree,
the guest archive."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from moorage.installers import build
from moorage.installers.releases import kind_of
from moorage.vm.image import manifest
from tests.helpers.images import write_image


@pytest.mark.parametrize(
    ("pep440", "debian"),
    [("2.1.0", "2.1.0"), ("2.1.0b1", "2.1.0~b1"), ("2.1.0rc2", "2.1.0~rc2"),
     ("2.1.0.dev3", "2.1.0~dev3"), ("2.1.0.post1", "2.1.0+post1")],
)  # fmt: skip
def test_debian_versions_sort_as_pep_440_does(pep440: str, debian: str) -> None:
    assert build.debian_version(pep440) == debian


def test_the_version_and_trust_go_into_a_copy_never_the_tracked_files(tmp_path: Path) -> None:
    root = tmp_path / "1.root.json"
    root.write_text('{"signed": {}}')
    plan = build.BuildPlan("9.8.7", tmp_path / "out", root=root, url="https://u.example/r")
    tree = build.stage_source(plan, tmp_path)
    assert '__version__ = "9.8.7"' in (tree / "base/__init__.py").read_text()
    assert 'version = "9.8.7"' in (tree / "pyproject.toml").read_text()
    assert (tree / "installers/trust/root.json").read_text() == '{"signed": {}}'
    assert "u.example" in (tree / "installers/trust/settings.json").read_text()
    status = subprocess.run(["git", "status", "--porcelain", "base/__init__.py", "pyproject.toml"],
                            cwd=build.SOURCE, capture_output=True, text=True, check=True)  # fmt: skip
    assert "9.8.7" not in (build.SOURCE / "base/__init__.py").read_text()
    assert "base/__init__.py" not in status.stdout
    assert not (build.SOURCE / "installers/trust/root.json").exists()


def test_the_guest_archive_holds_the_manifest_and_its_files(tmp_path: Path) -> None:
    image = tmp_path / "image"
    m = write_image(image, version="img")
    archive = build.pack_guest(image, tmp_path, "debian", "2.0.0", lambda _l: None)
    assert archive.name == "moorage-guest-debian-2.0.0.tar.gz"
    assert kind_of(archive.name) == "guest"
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted([manifest.MANIFEST, *m.files])
        assert all(member.uid == 0 and member.mtime == 0 for member in tar.getmembers())


def test_a_corrupt_image_is_not_packed(tmp_path: Path) -> None:
    image = tmp_path / "image"
    write_image(image)
    (image / "root.img").write_bytes(b"changed")
    with pytest.raises(Exception, match="does not match its manifest"):
        build.pack_guest(image, tmp_path, "debian", "2.0.0", lambda _l: None)
