"""A guest image update on a real VM, from a real update server on 127.0.0.1: a
broken image (its dockerd removed) is staged by `moorage update apply`, the restart
boots it, its engine never comes up, and the machine goes back to the previous image
by itself, with the containers and volumes on the data disk intact.

In the broken guest, run-dockerd.sh says `moorage: dockerd starting` on the console,
its `exec` fails, and init starts it again a second later: the engine wait gives up
after the third start (DOCKERD_STARTS), seconds after the boot, rather than waiting
out ENGINE_TIMEOUT (300 s). The restart is two boots and a stop.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage import update_settings
from moorage.paths import cache_dir
from moorage.vm.image import store
from tests.e2e.conftest import TEST_IMAGE, Machine, _start, busybox_tar, unique
from tests.helpers.update_repo import copy_image, publish_image, serve


@pytest.fixture
def updating_machine(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Machine, Path]]:
    # An image cache of the test's own (the built image hard-linked in): the failed
    # release it marks must not follow the next run, nor a user's machine.
    built = store.image_path("debian")
    cache = fresh_home / "cache"
    (cache / "images" / "debian").mkdir(parents=True)
    subprocess.run(["cp", "-al", str(built), str(cache / "images" / "debian")], check=True)
    monkeypatch.setenv("MOORAGE_CACHE", str(cache))
    m = _start(unique("upd"), fresh_home, extra="mounts = []\n")
    try:
        yield m, fresh_home
    finally:
        m.moorage("delete", "--yes", check=False, timeout=300)


def test_a_broken_guest_image_rolls_back_and_the_data_disk_is_intact(
    updating_machine: tuple[Machine, Path], tmp_path: Path
) -> None:
    m, home = updating_machine
    m.docker("import", "-c", 'CMD ["/bin/sh"]', "-", TEST_IMAGE, input=busybox_tar())
    m.docker("volume", "create", "keep")
    m.docker("run", "--rm", "-v", "keep:/data", TEST_IMAGE, "sh", "-c", "echo kept > /data/f")
    m.docker("create", "--name", "stays", "-v", "keep:/data", TEST_IMAGE, "true")

    current = store.image_path("debian")
    assert current.is_relative_to(cache_dir())
    broken = copy_image(current, tmp_path / "broken", without_dockerd=True)
    repo = publish_image(tmp_path, broken, "99.0.0")
    with serve(repo.folder) as (url, _knobs):
        update_settings.write(home / "config" / "update.toml",
                              {"url": url, "root": str(repo.metadata_dir / "1.root.json")})  # fmt: skip
        applied = m.moorage("update", "apply", "-y", timeout=600)
        assert "staged" in applied.stdout
        restart = m.moorage("restart", timeout=1500, check=False)
        assert restart.returncode == 0, f"{restart.stdout}\n{restart.stderr}"
        status = m.status()
        warnings = "\n".join(str(w) for w in status["warnings"])  # type: ignore[attr-defined]
        assert "99.0.0 did not bring the engine to ready" in warnings, status
        assert "dockerd in the guest exits as soon as it starts" in warnings, status
        assert "release" not in str(status["image"])
        view = json.loads(m.moorage("update", "check", "--json").stdout)
        assert view["guest"]["failed"] == ["99.0.0"] and view["guest"]["current"] == "local"
    out = m.docker("run", "--rm", "-v", "keep:/data", TEST_IMAGE, "cat", "/data/f")
    assert out.stdout.decode().strip() == "kept"
    names = m.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode().split()
    assert "stays" in names
