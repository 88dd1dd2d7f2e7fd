"""Faults that must be refused before anything boots, with the reason and the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from moorage.paths import cache_dir
from moorage.vm.image import store


def run(home: Path, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOORAGE_HOME": str(home), "MOORAGE_CACHE": str(cache or cache_dir())}
    return subprocess.run(
        ["moorage", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_a_tampered_image_is_refused_before_boot(fresh_home: Path) -> None:
    image = store.image_path("debian")
    assert (image / "manifest.json").exists(), "scripts/test builds the image first"
    cache = fresh_home / "cache"
    copy = cache / "images" / "debian" / image.name
    copy.parent.mkdir(parents=True)
    subprocess.run(["cp", "-r", "--reflink=auto", str(image), str(copy)], check=True)
    with (copy / "root.img").open("r+b") as f:
        f.seek(4096 * 100)
        f.write(b"tampered")
    proc = run(fresh_home, "start", "--machine", "tamper", cache=cache)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "root.img does not match its manifest" in out
    assert "will not be booted" in out
    assert "Traceback" not in out
    status = run(fresh_home, "status", "--machine", "tamper").stdout
    assert "stopped" in status
    run(fresh_home, "stop", "--machine", "tamper")
    shutil.rmtree(copy)


def test_config_mistakes_are_all_named_at_once(fresh_home: Path) -> None:
    config = fresh_home / "config" / "machines" / "bad" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('cpus = 4096\nmemory_gib = 100000\ndriver = "vbox"\nflavour = 1\n')
    proc = run(fresh_home, "start", "--machine", "bad")
    assert proc.returncode == 1
    err = proc.stderr
    assert "4 problem(s)" in err
    for text in ("cpus = 4096", "memory_gib = 100000", "driver = 'vbox'", "unknown key 'flavour'"):
        assert text in err
    assert "Traceback" not in err
