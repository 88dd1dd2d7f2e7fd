"""virtiofsd: one daemon per shared folder, started before the hypervisor.

Both QEMU backends take the folder from a vhost-user socket that a virtiofsd
we start ourselves serves, rather than letting libvirt spawn it: libvirt's
system daemon would run it as root, and files a container writes must belong
to the user who owns the machine. So the daemon runs as that user: as root
it is the host's root; as anyone else it runs in a user namespace where the
user is root (guest root's files become the user's; other guest users cannot
create files there, which the docs say).

Each daemon serves one connection: it exits when QEMU does, so a VM killed
with SIGKILL leaves none behind. Daemons are found again by their socket path
in their command line, like the SSH master.

The two implementations differ only in their command line, declared as data
below: QEMU's C virtiofsd (Debian 12, ``/usr/lib/qemu/virtiofsd``) and the
Rust one (Debian 13 and most others, ``/usr/libexec/virtiofsd``).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from moorage.errors import HostError, SharedFolderError
from moorage.vm.driver import MachineSpec, SharedFolder

CANDIDATES = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd", "/usr/lib/virtiofsd")
SOCKET_WAIT = 10.0


def find_virtiofsd() -> str | None:
    for path in (*CANDIDATES, shutil.which("virtiofsd")):
        if path and os.access(path, os.X_OK):
            return path
    return None


def socket_path(run_dir: Path, share: SharedFolder) -> Path:
    return run_dir / f"virtiofs-{share.tag}.sock"


def _is_rust(binary: str) -> bool:
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=False)
    return "--shared-dir" in out.stdout + out.stderr


def nofile_limit() -> int:
    """How many files the daemon may hold open: it keeps a descriptor for every inode
    the guest has looked up. Up to a million where the hard limit can be raised (root
    with CAP_SYS_RESOURCE); else the hard limit there is, which the daemon inherits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 1_000_000
    try:
        most = min(1_000_000, int(Path("/proc/sys/fs/nr_open").read_text()))
    except (OSError, ValueError):
        most = 1_000_000
    if hard < most:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, most))
            hard = most
    return hard


def guest_inode_budget(nofile: int) -> int:
    """How many shared-folder inodes the guest may cache before it drops them
    (``virtiofs-guard.pl`` in the guest). The daemon holds a descriptor for each, and
    needs the rest of its ``nofile`` for open files. Where the host allows a million
    the guest's memory runs out first; where it allows 20,000 (a sandbox here), a
    25,000-file tree failed with "Too many open files" before the guard."""
    return nofile // 2


def daemon_args(binary: str, rust: bool, share: SharedFolder, sock: Path, nofile: int) -> list[str]:
    """The daemon's command line. ``cache=auto`` lets the guest keep names and
    attributes for a second, and file data until the file changes on the host:
    without it every path component of every ``stat`` is a round trip through the
    emulated guest (a 50,000-file walk took 52 times the guest disk's time)."""
    if rust:
        return [binary, f"--socket-path={sock}", f"--shared-dir={share.host_path}",
                "--cache=auto", "--announce-submounts", "--sandbox=namespace",
                f"--rlimit-nofile={nofile}"]  # fmt: skip
    return [binary, f"--socket-path={sock}", "-o", f"source={share.host_path}",
            "-o", "cache=auto", "-o", "announce_submounts",
            f"--rlimit-nofile={nofile}"]  # fmt: skip


def _as_owner(argv: Sequence[str]) -> list[str]:
    """As root, the daemon runs as is. As a user, it runs as root of a user namespace
    (guest root's files become the user's; other guest users map to the user's
    subordinate ids, which needs newuidmap from the uidmap package) with a mount
    namespace of its own, where a tmpfs over /run/virtiofsd takes the pid file that
    the C virtiofsd insists on writing there."""
    if os.getuid() == 0:
        return list(argv)
    script = '[ -d /run/virtiofsd ] && mount -t tmpfs moorage /run/virtiofsd; exec "$@"'
    return ["unshare", "--user", "--map-root-user", "--map-auto", "--mount", "--",
            "sh", "-c", script, "sh", *argv]  # fmt: skip


def _daemon_pids(sock: Path) -> list[int]:
    needle = f"--socket-path={sock}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (proc / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
    return pids


def stop_daemons(spec: MachineSpec) -> None:
    for share in spec.shares:
        sock = socket_path(spec.run_dir, share)
        for pid in _daemon_pids(sock):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        sock.unlink(missing_ok=True)


@contextlib.contextmanager
def serving(spec: MachineSpec) -> Iterator[None]:
    """The daemons for ``spec``'s shares, running for the hypervisor that the block
    starts; if the block fails, they are stopped again (they would wait for a QEMU
    that never comes)."""
    start_daemons(spec)
    try:
        yield
    except BaseException:
        stop_daemons(spec)
        raise


def start_daemons(spec: MachineSpec) -> None:
    """Start one daemon per share and wait until each listens. Raises, having
    stopped them all again, if one cannot start."""
    if not spec.shares:
        return
    binary = find_virtiofsd()
    if binary is None:
        raise HostError(
            "shared folders need virtiofsd, which is not installed",
            fix="install it (Debian 12: qemu-system-common; Debian 13, Ubuntu: virtiofsd), "
            "or set mounts = [] in the machine's config",
        )
    rust, nofile = _is_rust(binary), nofile_limit()
    stop_daemons(spec)
    try:
        for share in spec.shares:
            sock = socket_path(spec.run_dir, share)
            _start_one(spec.run_dir, daemon_args(binary, rust, share, sock, nofile), share)
    except SharedFolderError:
        stop_daemons(spec)
        raise


def _start_one(run_dir: Path, argv: list[str], share: SharedFolder) -> None:
    sock = socket_path(run_dir, share)
    log = run_dir / f"virtiofs-{share.tag}.log"
    with log.open("wb") as out:
        # setsid -f: the daemon is nobody's child here, so it outlives the agent like the
        # VM does and no zombie is left when it exits.
        subprocess.run(
            ["setsid", "-f", *_as_owner(argv)], stdin=subprocess.DEVNULL, stdout=out,
            stderr=out, check=True,
        )  # fmt: skip
    started = time.monotonic()
    while time.monotonic() - started < SOCKET_WAIT:
        if sock.is_socket():
            sock.chmod(0o600)
            return
        # After a second to get going, a daemon that is gone will not listen.
        if time.monotonic() - started > 1 and not _daemon_pids(sock):
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    raise SharedFolderError(
        f"virtiofsd did not start for {share.host_path}: {' / '.join(tail) or 'no output'}",
        fix=f"see {log}",
    )
