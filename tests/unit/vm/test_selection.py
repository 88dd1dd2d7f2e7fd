"""Which guest image a machine boots: staged, current, previous, failed."""

from __future__ import annotations

from pathlib import Path

from moorage.vm.image import selection, store
from tests.helpers.images import write_image


def test_stage_promote_and_previous() -> None:
    assert selection.load("debian").boot() == selection.LOCAL
    selection.stage("debian", "2.0.0")
    assert selection.load("debian").boot() == "2.0.0"
    s = selection.promote("debian", "2.0.0")
    assert (s.current, s.previous, s.staged) == ("2.0.0", selection.LOCAL, None)
    assert selection.in_use("debian") == {"2.0.0", selection.LOCAL}


def test_a_rejected_image_goes_back_and_is_remembered() -> None:
    selection.stage("debian", "2.0.0")
    s = selection.reject("debian", "2.0.0", "no engine")
    assert (s.boot(), s.failed, s.last_failure) == (selection.LOCAL, ["2.0.0"], "no engine")
    assert selection.promote("debian", "2.0.0").current == selection.LOCAL  # not staged: no-op
    assert selection.stage("debian", "2.0.0").failed == []  # asked for by name: tried again


def test_staging_the_current_version_clears_the_stage() -> None:
    selection.stage("debian", "2.0.0")
    selection.promote("debian", "2.0.0")
    assert selection.stage("debian", "2.0.0").staged is None


def test_a_new_local_build_keeps_the_update_images(moorage_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    release = selection.release_dir("debian", "2.0.0")
    write_image(release)
    stale = store.image_path("debian").parent / "old-key"
    write_image(stale)

    class Recipe:
        INFO = store.recipe("debian").INFO

        @staticmethod
        def build(work: Path, out: Path, report: object) -> object:
            return write_image(out)

    monkeypatch.setattr(store, "recipe", lambda name: Recipe)
    monkeypatch.setattr(store.os, "getuid", lambda: 0)
    monkeypatch.setattr(store.shutil, "disk_usage", lambda p: type("U", (), {"free": 1 << 40}))
    store.ensure("debian", lambda _l: None, force=True)
    assert release.is_dir() and not stale.exists()
