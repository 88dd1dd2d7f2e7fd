from __future__ import annotations

import shlex
from pathlib import Path

from moorage.engine.sshfs import guest_command


def test_the_guest_mounts_the_host_path_at_the_same_path_quoted() -> None:
    words = shlex.split(guest_command(Path("/home/ann/my project")))
    assert words[:2] == ["exec", "sshfs"]
    assert words[-2:] == [":/home/ann/my project", "/home/ann/my project"]
    assert "passive" in words[3].split(",") and "allow_other" in words[3].split(",")
