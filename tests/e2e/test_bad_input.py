"""Faults that must be refused before anything boots, with the reason and the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

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


PRIMED = Path("/var/cache/libvirt/qemu/capabilities/.moorage-primed")
SCRIPTS = Path(__file__).parents[2] / "scripts"


@pytest.fixture
def libvirtd_stopped() -> object:
    """The system libvirtd stopped for the test, and started again after it."""
    if os.getuid() != 0:
        pytest.skip("stopping the system libvirtd needs root")
    if Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "stop", "libvirtd.service", "libvirtd.socket",
                        "libvirtd-ro.socket", "libvirtd-admin.socket"], check=False)  # fmt: skip
    subprocess.run(["pkill", "-x", "libvirtd"], check=False)
    for _ in range(50):
        if subprocess.run(["pgrep", "-x", "libvirtd"], check=False).returncode != 0:
            break
        time.sleep(0.2)
    try:
        yield None
    finally:
        flag = ["--kvm-unusable"] if PRIMED.exists() else []
        subprocess.run([str(SCRIPTS / "libvirtd-up"), *flag], check=True, timeout=300)


def test_start_with_libvirtd_stopped_ends_fast_with_the_fix(
    fresh_home: Path, libvirtd_stopped: object
) -> None:
    config = fresh_home / "config" / "machines" / "novirt" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('driver = "libvirt"\nmounts = []\n')
    began = time.monotonic()
    proc = run(fresh_home, "start", "--machine", "novirt")
    took = time.monotonic() - began
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert took < 30, f"start took {took:.0f}s to give up"
    assert "cannot reach libvirt" in out
    assert "fix: start it" in out
    assert "Traceback" not in out
    status = run(fresh_home, "status", "--machine", "novirt", "--json")
    assert '"state": "stopped"' in status.stdout
    assert "cannot reach libvirt" in status.stdout
