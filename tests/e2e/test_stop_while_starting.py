"""`moorage stop` during a boot cancels the boot instead of waiting for it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from moorage.paths import cache_dir

from .conftest import unique

NAME = unique("early")


def test_stop_cancels_a_start_in_progress(fresh_home: Path) -> None:
    env = {**os.environ, "MOORAGE_HOME": str(fresh_home), "MOORAGE_CACHE": str(cache_dir())}
    config = fresh_home / "config" / "machines" / NAME / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("cpus = 1\nmemory_gib = 1\n")
    start = subprocess.Popen(
        ["moorage", "start", "--machine", NAME], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    phase = None
    while time.monotonic() < deadline and phase not in ("kernel", "engine"):
        proc = subprocess.run(["moorage", "status", "--json", "--machine", NAME], env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        if proc.returncode == 0:
            phase = json.loads(proc.stdout).get("phase")
        time.sleep(0.2)
    assert phase in ("kernel", "engine"), "the start never reached the boot"
    began = time.monotonic()
    stop = subprocess.run(["moorage", "stop", "--machine", NAME], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    took = time.monotonic() - began
    out, _ = start.communicate(timeout=60)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert took < 30, f"stop waited {took:.0f}s for the boot"
    assert start.returncode == 1
    assert "cancelled by `moorage stop`" in out
    status = subprocess.run(["moorage", "status", "--json", "--machine", NAME], env=env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(status.stdout)["state"] == "stopped"
    assert not [pid for pid, cmd in _processes() if f"moorage-{NAME}".encode() in cmd], (
        "a VM was left"
    )


def _processes() -> list[tuple[str, bytes]]:
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append((path.parent.name, path.read_bytes()))
        except OSError:
            continue  # it ended while we looked
    return found
