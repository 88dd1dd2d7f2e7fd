"""Shared folders over reverse sshfs: the fallback where virtiofs is not available.

The guest runs ``sshfs -o passive``, which speaks SFTP on its stdin and stdout
instead of opening its own SSH connection; the host agent connects those,
through its SSH master, to an ``sftp-server`` running as the user on the host.
So the guest needs no way into the host, files are created by the user, and
nothing listens anywhere new. The price: every file operation is an SFTP round
trip over SSH, far slower than virtiofs (docs/benchmarks.md).

The mounts live as long as the agent's processes: an agent that dies takes them
along, and the next agent mounts them again (``mount_all`` unmounts what is stale).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from moorage.engine.ssh import GuestSSH
from moorage.errors import EngineError

SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")  # fmt: skip
READY_FLAG = "/run/moorage/shares-ready"
"""The guest's dockerd waits for this file, so containers never see an empty mount point."""
MOUNT_WAIT = 30.0


def find_sftp_server() -> str | None:
    return next((p for p in SFTP_SERVERS if os.access(p, os.X_OK)), None)


def guest_command(path: Path) -> str:
    """sshfs in the guest, for one folder at the host's own path. allow_other: containers
    run as any user. No directory cache: a file made on the host is seen at once."""
    p = shlex.quote(str(path))
    return f"exec sshfs -o passive,allow_other,dir_cache=no :{p} {p}"


class ReverseSshfs:
    def __init__(self, guest: GuestSSH, folders: Sequence[Path]) -> None:
        self._guest = guest
        self._folders = list(folders)
        self._procs: dict[Path, tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]] = {}

    def mount_all(self) -> list[Path]:
        """Mount every folder; return the ones mounted. Then let the guest's dockerd start."""
        server = find_sftp_server()
        if server is None:
            raise EngineError(
                "shared folders over sshfs need sftp-server, which is not installed",
                fix="install it (on Debian/Ubuntu: sudo apt-get install openssh-sftp-server)",
            )
        mounted = []
        for folder in self._folders:
            try:
                self._mount(server, folder)
                mounted.append(folder)
            except EngineError:
                self._stop(folder)
                raise
        self._guest.run(f"touch {READY_FLAG}")
        return mounted

    def _mount(self, server: str, folder: Path) -> None:
        q = shlex.quote(str(folder))
        # A mount left by an agent that died is dead: take it away first.
        self._guest.run(f"mountpoint -q {q} && umount -l {q}; mkdir -p {q}")
        to_server_r, to_server_w = os.pipe()
        to_guest_r, to_guest_w = os.pipe()
        try:
            sftp = subprocess.Popen(
                [server], stdin=to_server_r, stdout=to_guest_w, stderr=subprocess.DEVNULL,
                cwd="/", start_new_session=True,
            )  # fmt: skip
            ssh = subprocess.Popen(
                [*self._guest.client_argv(), guest_command(folder)],
                stdin=to_guest_r, stdout=to_server_w, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        finally:
            for fd in (to_server_r, to_server_w, to_guest_r, to_guest_w):
                os.close(fd)
        self._procs[folder] = (sftp, ssh)
        deadline = time.monotonic() + MOUNT_WAIT
        while time.monotonic() < deadline:
            if ssh.poll() is not None:
                break
            if self._guest.run(f"mountpoint -q {q}", timeout=15)[0] == 0:
                return
            time.sleep(0.3)
        raise EngineError(f"sshfs could not mount {folder} in the guest")

    def dead(self) -> list[Path]:
        """Folders whose sshfs is gone (the health loop mounts them again)."""
        return [f for f, (sftp, ssh) in self._procs.items() if ssh.poll() is not None
                or sftp.poll() is not None]  # fmt: skip

    def remount(self, folder: Path) -> None:
        server = find_sftp_server()
        if server is not None:
            self._stop(folder)
            self._mount(server, folder)

    def _stop(self, folder: Path) -> None:
        for proc in self._procs.pop(folder, ()):
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)

    def close(self) -> None:
        for folder in list(self._procs):
            self._stop(folder)
