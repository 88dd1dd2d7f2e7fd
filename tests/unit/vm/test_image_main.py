"""``python -m moorage.vm.image`` and the image store's answers for the host checks."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from moorage.paths import cache_dir
from moorage.vm.image import store
from moorage.vm.image.recipe import Report
from tests.helpers.images import write_image

image_main = importlib.import_module("moorage.vm.image.__main__")


def put_image(folder: Path) -> Path:
    """A built image of the default recipe where the store looks for it."""
    write_image(folder, version=folder.name)
    return folder


def test_no_default_kernel_before_a_build() -> None:
    assert store.default_kernel() is None


def test_the_default_kernel_is_the_built_images() -> None:
    image = put_image(store.image_path(store.DEFAULT_RECIPE))
    assert store.default_kernel() == image / "vmlinuz"
    (image / "vmlinuz").unlink()
    assert store.default_kernel() is None


def test_a_user_builds_under_sudo_into_their_own_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def spawn(_mode: int, file: str, args: list[str]) -> int:
        assert file == "sudo"
        calls.append(args)
        return 0

    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "getgid", lambda: 1000)
    monkeypatch.setattr(os, "spawnvp", spawn)
    assert image_main.main(["build", "--recipe", "alpine", "--force"]) == 0
    build, chown = calls
    assert build[:3] == ["sudo", "env", f"MOORAGE_CACHE={cache_dir()}"]
    assert build[4:] == ["-m", "moorage.vm.image", "build", "--recipe", "alpine", "--force"]
    assert chown == ["sudo", "chown", "-R", "1000:1000", str(cache_dir())]


def test_a_failed_sudo_build_keeps_its_status_and_the_cache_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def spawn(_mode: int, _file: str, args: list[str]) -> int:
        calls.append(args)
        return 3

    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "spawnvp", spawn)
    assert image_main.main(["build"]) == 3
    assert len(calls) == 1 and "--force" not in calls[0]


def test_no_sudo_is_an_error_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def spawn(_mode: int, file: str, _args: list[str]) -> int:
        raise FileNotFoundError(file)

    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "spawnvp", spawn)
    assert image_main.main(["build"]) == 1
    assert "sudo is not installed" in capsys.readouterr().err


def test_a_cached_image_is_found_without_sudo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    image = put_image(store.image_path(store.DEFAULT_RECIPE))
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "spawnvp", lambda *_a: pytest.fail("no sudo for a cached image"))
    assert image_main.main(["build"]) == 0
    assert capsys.readouterr().out == f"{image}\n"


def test_verify_counts_the_files(capsys: pytest.CaptureFixture[str]) -> None:
    image = put_image(store.image_path(store.DEFAULT_RECIPE))
    assert image_main.main(["verify"]) == 0
    assert capsys.readouterr().out == f"image debian {image.name}: all 3 files match\n"


def test_a_damaged_image_fails_verify_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    image = put_image(store.image_path(store.DEFAULT_RECIPE))
    (image / "root.img").write_bytes(b"changed")
    assert image_main.main(["verify"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: image file") and "moorage image build --force" in err


def test_an_unknown_recipe_fails_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert image_main.main(["verify", "--recipe", "arch"]) == 1
    assert "use one of: alpine, debian" in capsys.readouterr().err


def test_only_the_steps_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    for line in ("step 1/3: installing", "Get:1 http://deb.debian.org", "image ready: /x"):
        image_main._report(line)
    assert capsys.readouterr().out == "step 1/3: installing\nimage ready: /x\n"


def test_a_build_as_root_goes_through_the_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def ensure(name: str, report: Report, *, force: bool = False) -> Path:
        assert (name, force) == ("alpine", True)
        report("step 1/4: downloading")
        report("fetch 10%")
        report(f"image ready: {tmp_path}")
        return tmp_path

    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "spawnvp", lambda *_a: pytest.fail("root builds without sudo"))
    monkeypatch.setattr(store, "ensure", ensure)
    assert image_main.main(["build", "--recipe", "alpine", "--force"]) == 0
    assert capsys.readouterr().out == (
        f"step 1/4: downloading\nimage ready: {tmp_path}\n{tmp_path}\n"
    )
