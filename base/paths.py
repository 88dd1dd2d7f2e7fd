"""Where a machine's files live. Every path comes from here, so the layout is one table.

Per machine (a "profile", as colima calls it)::

    config_dir/machines/NAME/config.toml      what the user edits
    data_dir/machines/NAME/                   data disk, config disk, SSH keys, state
    runtime_dir/NAME/                         sockets and pid files (gone at host reboot)
    cache_dir/images/RECIPE/                  built guest images, shared by machines

App-wide, beside ``machines/``::

    config_dir/update.toml                    update settings (``moorage.update_settings``)
    data_dir/updates/                         TUF metadata, downloads, the update state

The runtime directory is short on purpose: a unix socket path must fit in
~104 bytes on macOS and 108 on Linux.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from moorage.errors import ConfigError, HostError

APP = "moorage"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def check_machine_name(name: str) -> str:
    """Names become paths, hostnames and docker context names, so keep them tame."""
    if not _NAME.match(name):
        raise ConfigError(
            "machine name",
            [f"{name!r} is not allowed: use 1-31 of a-z, 0-9 and '-', starting with a letter"],
        )
    return name


def _root_override() -> Path | None:
    """MOORAGE_HOME puts every moorage file under one folder (tests and CI use it)."""
    home = os.environ.get("MOORAGE_HOME")
    return Path(home) if home else None


def config_dir() -> Path:
    root = _root_override()
    return root / "config" if root else Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    root = _root_override()
    return root / "data" if root else Path(platformdirs.user_data_dir(APP))


def cache_dir() -> Path:
    if env := os.environ.get("MOORAGE_CACHE"):
        return Path(env)
    root = _root_override()
    return root / "cache" if root else Path(platformdirs.user_cache_dir(APP))


def runtime_dir() -> Path:
    root = _root_override()
    if root:
        return root / "run"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.access(xdg, os.W_OK):
        return Path(xdg) / APP
    run_user = Path(f"/run/user/{os.getuid()}")
    if run_user.is_dir() and os.access(run_user, os.W_OK):
        return run_user / APP
    # No per-user runtime dir (root on a server, a container): a private folder in /tmp.
    return _own_tmp_dir(Path(f"/tmp/{APP}-{os.getuid()}"))


def _own_tmp_dir(path: Path) -> Path:
    """Create ``path`` 0700, or accept it only if it is ours: in /tmp anyone could
    have made it first (or made it a symlink) to catch our sockets."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise HostError(
            f"{path} exists but is not a folder owned by you, so moorage will not put its "
            "sockets there",
            fix="remove it, or set XDG_RUNTIME_DIR to a private folder of yours",
        )
    if st.st_mode & 0o077:
        path.chmod(0o700)
    return path


def images_dir() -> Path:
    return cache_dir() / "images"


def update_config_file() -> Path:
    """The app-wide update settings: every machine runs the same moorage."""
    return config_dir() / "update.toml"


def updates_dir() -> Path:
    """TUF's trusted metadata, partial and verified downloads, and the update state."""
    return data_dir() / "updates"


@dataclass(frozen=True)
class MachinePaths:
    """Every file of one machine."""

    name: str

    @property
    def config_file(self) -> Path:
        return config_dir() / "machines" / self.name / "config.toml"

    @property
    def state(self) -> Path:
        return data_dir() / "machines" / self.name

    @property
    def run(self) -> Path:
        return runtime_dir() / self.name

    @property
    def data_disk(self) -> Path:
        return self.state / "data.img"

    @property
    def config_disk(self) -> Path:
        return self.state / "config.tar"

    @property
    def ssh_key(self) -> Path:
        return self.state / "ssh" / "id_ed25519"

    @property
    def guest_host_key(self) -> Path:
        return self.state / "ssh" / "guest_host_ed25519_key"

    @property
    def known_hosts(self) -> Path:
        return self.state / "ssh" / "known_hosts"

    @property
    def serial_log(self) -> Path:
        return self.state / "serial.log"

    @property
    def agent_log(self) -> Path:
        return self.state / "agent.log"

    @property
    def ports_file(self) -> Path:
        """How the running VM is reached (its forwarded ports, the Docker gate's token), kept
        0600 to adopt it after a crash."""
        return self.state / "runtime.json"

    @property
    def docker_socket(self) -> Path:
        return self.run / "docker.sock"

    @property
    def agent_socket(self) -> Path:
        return self.run / "agent.sock"

    @property
    def agent_pid(self) -> Path:
        return self.run / "agent.pid"

    @property
    def clusters(self) -> Path:
        """The records of the machine's swarm clusters (``swarm/record.py``)."""
        return self.state / "clusters"

    def cluster_socket(self, cluster: str) -> Path:
        """A cluster's engine on the host: whichever manager answers."""
        return self.run / "clusters" / f"{cluster}.sock"

    def node_socket(self, node: str) -> Path:
        """One swarm node's own engine on the host."""
        return self.run / "nodes" / f"{node}.sock"


def private_dir(path: Path) -> Path:
    """Create ``path`` readable by the user alone: sockets and keys live in such folders."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path
