"""The Debian package on a clean Debian 12, as a new user gets it: a fresh root made
by mmdebstrap, the .deb installed with apt (which brings the docker CLI, Compose,
QEMU, libvirt and virtiofsd as dependencies), then the checks of
``tests/e2e/deb_checks.sh`` in it, an update through the package's own root of trust
from a real update server on 127.0.0.1, and a rollback through dpkg.

It boots no VM. It needs root (mmdebstrap's root mode), the Debian mirror, and a few
minutes (apt's downloads are cached in ``/var/cache/moorage-e2e/apt`` between runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from moorage.installers.build import SOURCE
from moorage.installers.repository import files_of
from tests.helpers.update_repo import new_repo, serve

MIRROR = "http://deb.debian.org/debian"
APT_CACHE = Path("/var/cache/moorage-e2e/apt")
CHECKS = Path(__file__).with_name("deb_checks.sh")


def _release(*args: str) -> None:
    subprocess.run([str(SOURCE / "scripts" / "release"), *args], check=True, timeout=600)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mmdebstrap"),
                    reason="needs root and mmdebstrap")  # fmt: skip
def test_the_package_installs_updates_and_rolls_back_on_a_clean_debian_12(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.create()
    dist = tmp_path / "dist"
    with serve(repo.folder) as (url, knobs):
        for version in ("0.2.0", "0.3.0"):
            _release("build", version, "--only", "deb", "--dist", str(dist),
                     "--repo", str(repo.folder), "--url", url)  # fmt: skip
            repo.publish(version, files_of(dist / version), f"moorage {version}")
            repo.promote(version)
        (deb,) = (dist / "0.2.0").glob("*.deb")
        APT_CACHE.mkdir(parents=True, exist_ok=True)
        root = tmp_path / "root"
        hooks = [
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
            f"--setup-hook=sync-in {APT_CACHE} /var/cache/apt/archives",
            f"--customize-hook=copy-in {deb} {CHECKS} /tmp",
            '--customize-hook=printf "#!/bin/sh\\nexit 101\\n" > "$1"/usr/sbin/policy-rc.d; chmod +x "$1"/usr/sbin/policy-rc.d',
            f'--customize-hook=chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/{deb.name}',
            f"--customize-hook=sync-out /var/cache/apt/archives {APT_CACHE}",
            '--customize-hook=chroot "$1" sh /tmp/deb_checks.sh',
        ]  # fmt: skip
        proc = subprocess.run(
            ["nice", "-n", "19", "mmdebstrap", "--variant=apt", "--mode=root",
             "--include=desktop-file-utils,ca-certificates", "--skip=download/empty",
             *hooks, "bookworm", str(root), MIRROR],
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    checks = dict(line.removeprefix("check ").split(": ", 1)
                  for line in out.splitlines() if line.startswith("check "))  # fmt: skip
    print("\n".join(f"{k}: {v}" for k, v in checks.items()))
    assert checks["version"] == "moorage, version 0.2.0"
    for name in ("update-help", "desktop", "autostart", "desktop-exec", "icon", "compose",
                 "previous-kept", "tool docker", "tool docker-compose", "tool qemu-system-x86_64",
                 "tool virsh", "tool virtiofsd"):  # fmt: skip
        assert checks[name].startswith("ok"), name
    assert checks["venv-in-place"] == "ok (0.2.0)"
    assert checks["updated"] == "moorage, version 0.3.0"
    assert checks["rolled-back"] == "moorage, version 0.2.0"
    assert any(path.endswith(".deb") for path, _range in knobs.requests)
    if "absent" in checks["tray-help"]:
        pytest.skip("moorage tray is not on this branch yet: every other check passed")
    assert checks["tray-help"] == "ok"
