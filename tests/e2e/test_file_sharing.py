"""Host folders inside containers, at the same path, on the shared machine.

Defined behaviour at the edges (docs/file-sharing.md says the same):
- a symlink is shared as a link and resolved where it is read: one that points
  outside the share resolves inside the container, never to the host's file;
- names are bytes: non-UTF-8 names and 255-byte names pass both ways, a
  256-byte name is refused with "File name too long";
- FIFOs and sockets are shared as file system entries; they do not connect
  host and container processes;
- a folder removed on the host while mounted reads as empty and refuses
  writes with an error, fast; the engine and the agent carry on.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import TEST_IMAGE, Machine, shared_folder


@pytest.fixture(scope="module")
def share(machine: Machine) -> Path:
    return shared_folder(machine, "share")


@pytest.fixture(scope="module")
def box(machine: Machine, share: Path) -> Iterator[str]:
    """A long-running container with the share bind-mounted at its own path."""
    name = "sharing-box"
    machine.docker("run", "-d", "--name", name, "-v", f"{share}:{share}", "-w", str(share),
                   TEST_IMAGE, "sleep", "3600")  # fmt: skip
    yield name
    machine.docker("rm", "-f", name, check=False)


def sh(
    machine: Machine, box: str, script: str, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return machine.docker("exec", box, "sh", "-c", script, check=check, timeout=60)


def test_status_shows_the_mechanism_and_the_folders(machine: Machine, share: Path) -> None:
    st = machine.status()
    assert st["file_sharing"] == "virtiofs"
    assert str(share) in st["shared_folders"]
    assert str(Path.home()) in st["shared_folders"]  # the default, ~
    assert "sharing:   virtiofs" in machine.moorage("status").stdout


def test_run_in_the_current_folder_sees_and_writes_the_users_files(
    machine: Machine, share: Path
) -> None:
    """`docker run -v "$PWD":/src -w /src img make`, with the host's path unchanged."""
    work = share / "project"
    work.mkdir()
    (work / "input.txt").write_text("from the host\n")
    machine.docker("run", "--rm", "-v", f"{work}:/src", "-w", "/src", TEST_IMAGE,
                   "sh", "-c", "tr a-z A-Z < input.txt > output.txt")  # fmt: skip
    assert (work / "output.txt").read_text() == "FROM THE HOST\n"


def test_a_bind_mount_written_from_both_sides_is_seen_at_once(
    machine: Machine, share: Path, box: str
) -> None:
    (share / "from-host.txt").write_text("hello from the host\n")
    assert sh(machine, box, "cat from-host.txt").stdout == b"hello from the host\n"
    sh(machine, box, "echo hello from the container > from-box.txt")
    assert (share / "from-box.txt").read_text() == "hello from the container\n"
    # A change to a file the container has already read is seen on its next read.
    (share / "from-host.txt").write_text("changed on the host\n")
    assert sh(machine, box, "cat from-host.txt").stdout == b"changed on the host\n"
    sh(machine, box, "echo appended >> from-box.txt")
    assert (share / "from-box.txt").read_text() == "hello from the container\nappended\n"
    # Names and attributes may be up to a second old in the guest (cache=auto).
    (share / "from-host.txt").unlink()
    gone = "for i in 1 2 3 4 5 6 7 8 9 10; do test -e from-host.txt || exit 1; sleep 0.2; done"
    assert sh(machine, box, gone, check=False).returncode == 1


def test_a_shared_file_can_be_written_through_a_shared_map(
    machine: Machine, share: Path, box: str
) -> None:
    """Linkers, databases and editors write files through MAP_SHARED maps, which the
    guest kernel refuses on files opened for direct I/O (virtiofs cache=none)."""
    sh(machine, box, "mmap_shared mapped.txt 'written through a shared map'")
    assert (share / "mapped.txt").read_text() == "written through a shared map"


def test_files_a_container_creates_belong_to_the_host_user(
    machine: Machine, share: Path, box: str
) -> None:
    sh(machine, box, "mkdir made-dir && echo x > made-dir/made-file")
    for path in (share / "made-dir", share / "made-dir" / "made-file"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), path


def test_the_home_folder_is_shared_by_default(machine: Machine) -> None:
    probe = Path.home() / f".moorage-e2e-{os.getpid()}"
    probe.write_text("home\n")
    try:
        out = machine.docker("run", "--rm", "-v", f"{Path.home()}:{Path.home()}", TEST_IMAGE,
                             "cat", str(probe)).stdout  # fmt: skip
        assert out == b"home\n"
    finally:
        probe.unlink()


def test_the_guests_own_shells_keep_out_of_the_shared_home(machine: Machine) -> None:
    """The home folder is shared at its own path, which for root is the guest's /root too.
    The guest's root must not live there: every command the host sends would run the
    host user's dotfiles (a .bashrc running pyenv blocked every session on its lock)."""
    home = machine.moorage("shell", 'echo "$HOME"; pwd').stdout.split()
    assert home == ["/mnt/data/root", "/mnt/data/root"]


def test_a_symlink_pointing_outside_the_share_resolves_in_the_container(
    machine: Machine, share: Path, box: str
) -> None:
    secret = share.parent / "outside-secret.txt"
    secret.write_text("the host's file\n")
    (share / "link-out").symlink_to(secret)
    (share / "link-in").symlink_to("from-box.txt")
    assert sh(machine, box, "readlink link-out").stdout.decode().strip() == str(secret)
    # The container has no such file: the link never reaches the host's copy.
    assert sh(machine, box, "cat link-out", check=False).returncode != 0
    assert sh(machine, box, "cat link-in").stdout.startswith(b"hello from the container")
    sh(machine, box, "ln -s /etc/passwd made-link")
    assert os.readlink(share / "made-link") == "/etc/passwd"


def test_non_utf8_and_long_names_pass_both_ways(machine: Machine, share: Path, box: str) -> None:
    raw = os.fsencode(share) + b"/caf\xe9-latin1"
    with open(raw, "wb") as f:
        f.write(b"bytes name\n")
    listing = sh(machine, box, "printf '%s\\n' *").stdout  # ls would print "?" for the byte
    assert b"caf\xe9-latin1" in listing
    sh(machine, box, "printf x > \"$(printf 'na\\377me')\"")
    assert b"na\xffme" in os.listdir(os.fsencode(share))
    longest = "n" * 255
    (share / longest).write_text("long\n")
    assert sh(machine, box, f"cat {longest}").stdout == b"long\n"
    too_long = sh(machine, box, f"touch {'n' * 256}", check=False)
    assert too_long.returncode != 0 and b"too long" in too_long.stderr


def test_fifos_and_sockets_are_entries_not_channels(
    machine: Machine, share: Path, box: str
) -> None:
    sh(machine, box, "mkfifo made-fifo")
    assert stat.S_ISFIFO((share / "made-fifo").stat().st_mode)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(share / "host.sock"))
        s.listen()
        listing = sh(machine, box, "ls -l host.sock").stdout
        assert listing.startswith(b"s"), listing
        # Opening it from the container fails at once: it is not the host's socket.
        started = time.monotonic()
        assert sh(machine, box, "cat host.sock", check=False).returncode != 0
        assert time.monotonic() - started < 30


def test_a_folder_removed_on_the_host_while_mounted_fails_fast(machine: Machine) -> None:
    gone = shared_folder(machine, "gone")
    (gone / "file").write_text("soon gone\n")
    name = "sharing-gone"
    machine.docker("run", "-d", "--name", name, "-v", f"{gone}:{gone}", TEST_IMAGE,
                   "sleep", "3600")  # fmt: skip
    try:
        assert machine.docker("exec", name, "cat", f"{gone}/file").stdout == b"soon gone\n"
        subprocess.run(["rm", "-rf", str(gone)], check=True)
        started = time.monotonic()
        write = machine.docker("exec", name, "touch", f"{gone}/new", check=False, timeout=60)
        assert write.returncode != 0
        listing = machine.docker("exec", name, "ls", "-A", str(gone), check=False, timeout=60)
        assert listing.stdout == b""
        assert time.monotonic() - started < 30
        assert machine.status()["state"] == "running"
        machine.docker("version")
    finally:
        machine.docker("rm", "-f", name, check=False)
        gone.mkdir(exist_ok=True)  # the machine's config names it: later restarts need it


def test_a_tree_bigger_than_the_default_open_file_limit_is_walked(
    machine: Machine, share: Path, box: str
) -> None:
    """virtiofsd holds a descriptor per inode the guest knows: 25,000 files (a
    node_modules) once ran into a 20,000 limit with "Too many open files". The guest
    now drops its cached inodes at half the daemon's limit (virtiofs-guard.pl); each
    file is stat'ed (-size), twice, as `git status` run twice would."""
    tree = share / "big-tree"
    for d in range(250):
        folder = tree / f"d{d:03d}"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"f{f:03d}").touch()
    for _ in range(2):
        out = sh(machine, box, "find big-tree -type f -size -1k | wc -l").stdout
        assert int(out) == 25_000
