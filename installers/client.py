"""The update client: python-tuf's ngclient ``Updater`` over our repository layout.

Every answer comes through TUF: the channel's release list and each file are targets,
verified against signed metadata (root → timestamp → snapshot → targets → the
channel's role) before this module hands anything back. What TUF refuses (a bad
signature, expired metadata, an older version than one seen, a snapshot that does not
match, a file whose hash differs) raises ``UpdateRefused`` and leaves nothing behind
but TUF's own trusted metadata, which it only ever replaces with verified newer
versions. A network failure raises ``UpdateOffline``, which the periodic check treats
quietly.

The root of trust is the one the build shipped (``trust/root.json`` in this package,
put there by ``scripts/release build --repo``), or ``root`` in update.toml for a
private server. A checkout ships none: it must set ``root`` and ``url``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tuf.api import exceptions
from tuf.ngclient import Updater

from moorage.errors import UpdateError
from moorage.installers.fetcher import Progress, ResumingFetcher
from moorage.installers.releases import ReleaseIndex, index_path
from moorage.update_settings import UpdateSettings


class UpdateRefused(UpdateError):
    """TUF refused what the server sent: nothing of it was used."""


class UpdateOffline(UpdateError):
    """The update server could not be reached; the check is tried again later."""


@dataclass(frozen=True)
class Source:
    """Where updates come from and the root of trust for them."""

    url: str
    root: bytes

    @property
    def key(self) -> str:
        """A folder name per (server, root): metadata trusted for one is never used
        for another."""
        return hashlib.sha256(self.url.encode() + b"\0" + self.root).hexdigest()[:16]


def _shipped(name: str) -> bytes | None:
    try:
        return (resources.files("moorage.installers") / "trust" / name).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def source(settings: UpdateSettings) -> Source:
    """The settings' server and root, or what the build shipped."""
    url = settings.url
    if not url and (shipped := _shipped("settings.json")) is not None:
        url = str(json.loads(shipped).get("url", ""))
    if settings.root:
        try:
            root: bytes | None = Path(settings.root).expanduser().read_bytes()
        except OSError as exc:
            raise UpdateError(
                f"cannot read the root of trust {settings.root}: {exc.strerror}",
                fix="point `root` in update.toml at a readable root.json",
            ) from exc
    else:
        root = _shipped("root.json")
    if not url or root is None:
        raise UpdateError(
            "this moorage has no update server or root of trust (a git checkout ships none)",
            fix="set `url` and `root` in update.toml, or update the checkout with `git pull`",
        )
    return Source(url.rstrip("/"), root)


def _translate(exc: Exception) -> UpdateError:
    if isinstance(exc, exceptions.DownloadError):
        return UpdateOffline(
            f"the update server cannot be reached: {exc}",
            fix="check the network (or `url` in update.toml); moorage tries again later",
        )
    return UpdateRefused(
        f"the update server's answer failed TUF verification ({type(exc).__name__}: {exc}); "
        "nothing of it was used",
        fix="try again later; if it stays so, the server or the network in between is "
        "tampering with updates",
    )


class UpdateClient:
    """One check or download at a time (ngclient's Updater refreshes once)."""

    def __init__(self, src: Source, home: Path) -> None:
        self.src = src
        self.home = home
        self.metadata_dir = home / "tuf" / src.key
        self.fetcher = ResumingFetcher(home / "partial", f"{src.url}/targets/")

    def close(self) -> None:
        self.fetcher.close()

    def _updater(self) -> Updater:
        self.metadata_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return Updater(
                metadata_dir=str(self.metadata_dir),
                metadata_base_url=f"{self.src.url}/metadata/",
                target_base_url=f"{self.src.url}/targets/",
                fetcher=self.fetcher,
                bootstrap=self.src.root,
            )
        except (exceptions.RepositoryError, ValueError) as exc:
            raise UpdateError(
                f"the root of trust is not valid TUF root metadata: {exc}",
                fix="point `root` in update.toml at the repository's 1.root.json",
            ) from exc

    def index(self, channel: str) -> ReleaseIndex:
        """The channel's releases, verified."""
        with tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
            path = self.fetch(index_path(channel), Path(tmp) / "releases.json")
            index = ReleaseIndex.from_json(path.read_text())
        if index.channel != channel:
            raise UpdateRefused(f"the {channel} channel's release list names {index.channel}")
        return index

    def _scratch(self) -> Path:
        folder = self.home / "scratch"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def fetch(self, target: str, dest: Path, progress: Progress | None = None) -> Path:
        """Download target path ``target`` to ``dest`` once TUF verified it (a ``dest``
        that already holds the verified bytes is kept as it is)."""
        self.fetcher.progress = progress
        try:
            updater = self._updater()
            info = updater.get_targetinfo(target)
            if info is None:
                raise UpdateRefused(
                    f"{target} is not a target the repository's {target.split('/', maxsplit=1)[0]} role signed"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            cached = updater.find_cached_target(info, str(dest))
            if cached is not None:
                return Path(cached)
            return Path(updater.download_target(info, str(dest)))
        except (exceptions.RepositoryError, exceptions.DownloadError) as exc:
            raise _translate(exc) from exc
        finally:
            self.fetcher.progress = None
