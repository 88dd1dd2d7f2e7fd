from __future__ import annotations

from pathlib import Path

from moorage.vm.driver import SharedFolder
from moorage.vm.virtiofs import cache_mode, daemon_args

SHARE = SharedFolder("moorage0", Path("/home/ann"))
SOCK = Path("/run/m/virtiofs-moorage0.sock")


def test_the_guest_caches_names_only_where_the_daemon_can_hold_them() -> None:
    assert cache_mode(1_000_000) == "auto"
    assert cache_mode(20_000) == "none"


def test_both_daemons_get_the_folder_the_socket_and_the_limit() -> None:
    c = daemon_args("/usr/lib/qemu/virtiofsd", False, SHARE, SOCK, 20_000)
    assert c[1:] == [f"--socket-path={SOCK}", "-o", "source=/home/ann", "-o", "cache=none",
                     "-o", "announce_submounts", "--rlimit-nofile=20000"]  # fmt: skip
    rust = daemon_args("/usr/libexec/virtiofsd", True, SHARE, SOCK, 1_000_000)
    assert "--shared-dir=/home/ann" in rust and "--cache=auto" in rust
    assert "--rlimit-nofile=1000000" in rust
