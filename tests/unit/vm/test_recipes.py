"""The recipes' offline parts: cache keys, guest files, download verification."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from moorage.errors import ImageError
from moorage.vm.image import alpine, debian, recipe, store


def test_cache_key_changes_with_the_recipe() -> None:
    assert debian.INFO.cache_key().startswith("trixie-r")
    assert alpine.INFO.cache_key().startswith("3.20.3-r")
    assert debian.INFO.cache_key() == debian.INFO.cache_key()
    other = recipe.RecipeInfo(**{**debian.INFO.__dict__, "revision": 99})
    assert other.cache_key() != debian.INFO.cache_key()


def test_unknown_recipe_names_the_choices() -> None:
    with pytest.raises(ImageError, match="use one of: alpine, debian"):
        store.recipe("arch")


def test_guest_files_make_busybox_the_init(tmp_path: Path) -> None:
    recipe.install_guest_files(tmp_path)
    lib = tmp_path / "usr/lib/moorage"
    assert (lib / "init").readlink() == Path("/bin/busybox")
    assert (lib / "boot.sh").stat().st_mode & 0o111
    assert (lib / "preinit.sh").stat().st_mode & 0o111
    assert "::sysinit:/usr/lib/moorage/boot.sh" in (tmp_path / "etc/inittab").read_text()
    assert (tmp_path / "mnt/data").is_dir()


def test_both_recipes_boot_through_moorage_init() -> None:
    for cmdline in (debian.CMDLINE, alpine.CMDLINE):
        assert "init=/usr/lib/moorage/preinit.sh" in cmdline and "console=ttyS0" in cmdline
        assert "root=/dev/vda ro" in cmdline


def test_alpine_sources_are_pinned_and_official() -> None:
    assert alpine.minirootfs_url() == (
        "https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/x86_64/"
        "alpine-minirootfs-3.20.3-x86_64.tar.gz"
    )
    assert alpine.repositories().splitlines() == [
        "https://dl-cdn.alpinelinux.org/alpine/v3.20/main",
        "https://dl-cdn.alpinelinux.org/alpine/v3.20/community",
    ]
    assert alpine.apk_command()[:3] == ["apk", "add", "--no-cache"]
    assert {"linux-virt", "docker", "openssh-server", "e2fsprogs"} <= set(alpine.apk_command())
    assert len(alpine.MINIROOTFS_SHA256) == 64


def test_a_corrupted_download_is_refused_and_deleted(tmp_path: Path) -> None:
    good = tmp_path / "good.tar.gz"
    good.write_bytes(b"minirootfs")
    alpine.verify_download(good, hashlib.sha256(b"minirootfs").hexdigest())
    assert good.exists()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"minirootfs, truncated or swapped")
    with pytest.raises(ImageError, match="corrupted or was substituted"):
        alpine.verify_download(bad, hashlib.sha256(b"minirootfs").hexdigest())
    assert not bad.exists()


def test_an_unreachable_mirror_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match='use image = "debian"'):
        alpine.download("http://127.0.0.1:9/none.tar.gz", tmp_path / "x", "0" * 64, lambda _l: None)
