"""Shared folders over the sshfs fallback (forced here; `auto` picks it where virtiofs
is missing), including a host agent killed and a new one mounting them again."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from .conftest import TEST_IMAGE, _first_container, _start, busybox_tar, unique


def test_sshfs_fallback_shares_folders_both_ways(fresh_home: Path) -> None:
    share = fresh_home / "share"
    share.mkdir(parents=True)
    m = _start(unique("e2es"), fresh_home, extra=f'mounts = ["{share}"]\nfile_sharing = "sshfs"\n')
    try:
        st = m.status()
        assert st["file_sharing"] == "sshfs" and st["shared_folders"] == [str(share)]
        assert "sharing:   sshfs" in m.moorage("status").stdout
        m.docker("import", "-", TEST_IMAGE, input=busybox_tar())
        _first_container(m)
        (share / "from-host.txt").write_text("host\n")
        out = m.docker("run", "--rm", "-v", f"{share}:{share}", "-w", str(share), TEST_IMAGE,
                       "sh", "-c", "cat from-host.txt && echo box > from-box.txt").stdout  # fmt: skip
        assert out == b"host\n"
        made = share / "from-box.txt"
        assert made.read_text() == "box\n"
        assert (made.stat().st_uid, made.stat().st_gid) == (os.getuid(), os.getgid())

        # A new agent mounts the folders again (the old mounts died with the old agent).
        os.kill(int(st["agent_pid"]), signal.SIGKILL)  # type: ignore[arg-type]
        time.sleep(1)
        assert "adopting the running VM" in m.moorage("start").stdout
        (share / "after.txt").write_text("again\n")
        out = m.docker("run", "--rm", "-v", f"{share}:{share}", TEST_IMAGE,
                       "cat", str(share / "after.txt")).stdout  # fmt: skip
        assert out == b"again\n"
    finally:
        m.moorage("delete", "--yes", check=False, timeout=300)
