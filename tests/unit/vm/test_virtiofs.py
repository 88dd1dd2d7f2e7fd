from __future__ import annotations

from pathlib import Path

from moorage.vm.driver import SharedFolder
from moorage.vm.virtiofs import daemon_args, guest_inode_budget

SHARE = SharedFolder("moorage0", Path("/home/ann"))
SOCK = Path("/run/m/virtiofs-moorage0.sock")


def test_the_guest_keeps_half_the_daemons_descriptors_for_cached_inodes() -> None:
    assert guest_inode_budget(20_000) == 10_000
    assert guest_inode_budget(1_000_000) == 500_000


def test_both_daemons_get_the_folder_the_socket_and_the_limit() -> None:
    c = daemon_args("/usr/lib/qemu/virtiofsd", False, SHARE, SOCK, 20_000)
    assert c[1:] == [f"--socket-path={SOCK}", "-o", "source=/home/ann", "-o", "cache=auto",
                     "-o", "announce_submounts", "--rlimit-nofile=20000"]  # fmt: skip
    rust = daemon_args("/usr/libexec/virtiofsd", True, SHARE, SOCK, 1_000_000)
    assert "--shared-dir=/home/ann" in rust and "--cache=auto" in rust
    assert "--rlimit-nofile=1000000" in rust
