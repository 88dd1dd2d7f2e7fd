"""SSH into the guest: paramiko for the host agent's own commands, OpenSSH for people.

The guest's host key is made on the host and pinned (see ``vm.provision``):
an unknown or changed key is refused, never accepted on first use. The guest's
sshd is reached only through a forward on the host's 127.0.0.1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from moorage.errors import EngineError

USER = "root"


@dataclass(frozen=True)
class GuestAddress:
    machine: str
    port: int
    key: Path
    known_hosts: Path

    @property
    def alias(self) -> str:
        """The name the pinned host key is filed under, whatever the port is this boot."""
        return f"moorage-{self.machine}"


def write_known_hosts(path: Path, alias: str, host_public_line: str) -> None:
    key_type, key_b64 = host_public_line.split()[:2]
    path.write_text(f"{alias} {key_type} {key_b64}\n")
    path.chmod(0o600)


def openssh_args(addr: GuestAddress) -> list[str]:
    """Options for the OpenSSH client: ignore the user's ssh config, trust only the pinned key."""
    return [
        "-F",
        "/dev/null",
        "-i",
        str(addr.key),
        "-p",
        str(addr.port),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={addr.known_hosts}",
        "-o",
        f"HostKeyAlias={addr.alias}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        f"{USER}@127.0.0.1",
    ]


class Guest:
    """A paramiko connection to the guest, reopened on demand."""

    def __init__(self, addr: GuestAddress) -> None:
        self.addr = addr
        self._client: paramiko.SSHClient | None = None

    def _open(self, timeout: float) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        host_keys = client.get_host_keys()
        for line in self.addr.known_hosts.read_text().splitlines():
            _alias, key_type, key_b64 = line.split()[:3]
            key = paramiko.PKey.from_type_string(key_type, __import__("base64").b64decode(key_b64))
            host_keys.add(f"[127.0.0.1]:{self.addr.port}", key_type, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            "127.0.0.1",
            port=self.addr.port,
            username=USER,
            key_filename=str(self.addr.key),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return client

    def connect(self, timeout: float = 10) -> None:
        if self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return
        try:
            self._client = self._open(timeout)
        except paramiko.BadHostKeyException as exc:
            raise EngineError(
                "the guest's SSH host key is not the one moorage made for it; refusing to connect",
                fix="`moorage restart` to boot the machine with its own key again",
            ) from exc
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise EngineError(f"cannot reach the guest over SSH: {exc}") from exc

    def wait(self, deadline: float) -> None:
        """Connect, retrying until ``deadline`` (monotonic); raise EngineError after it."""
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.connect(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
                return
            except EngineError as exc:
                last = exc
                time.sleep(0.5)
        raise EngineError(f"the guest's SSH server did not answer in time: {last}")

    def run(self, command: str, timeout: float = 60) -> tuple[int, str]:
        """Run ``command`` in the guest; return (exit status, combined output)."""
        self.connect()
        assert self._client is not None
        try:
            _stdin, stdout, _stderr = self._client.exec_command(
                command, timeout=timeout, get_pty=False
            )
            stdout.channel.set_combine_stderr(True)
            out = stdout.read().decode(errors="replace")
            return stdout.channel.recv_exit_status(), out
        except (TimeoutError, OSError, paramiko.SSHException) as exc:
            self.close()
            raise EngineError(f"command in the guest failed: {command!r}: {exc}") from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
