"""A published update repository served on 127.0.0.1, and clients of it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from moorage import update_settings
from moorage.installers.repository import Repository, files_of
from moorage.installers.service import InstallKind, Updates
from tests.helpers.update_repo import ServerKnobs, new_repo, release_files, serve


@dataclass
class Env:
    repo: Repository
    url: str
    knobs: ServerKnobs
    tmp: Path

    def publish(self, version: str, *, promote: bool = False, **kinds: bool) -> None:
        self.repo.publish(version, files_of(release_files(self.tmp / "dist", version, **kinds)),
                          f"notes of {version}")  # fmt: skip
        if promote:
            self.repo.promote(version)

    def client(self, name: str, channel: str = "stable", app: str = "1.0.0",
               kind: InstallKind = "deb", **settings: object) -> Updates:  # fmt: skip
        home = self.tmp / f"client-{name}"
        path = home / "update.toml"
        update_settings.write(path, {"url": self.url, "channel": channel,
                                     "root": str(self.repo.metadata_dir / "1.root.json"),
                                     **settings})  # fmt: skip
        return Updates(home=home / "updates", settings_path=path, app_version=app, kind=kind)

    def target_url(self, channel: str, version: str, name: str) -> str:
        """The path a client asks for: the file under its sha256 (consistent snapshots)."""
        data = (self.tmp / "dist" / version / name).read_bytes()
        return f"/targets/{channel}/{version}/{hashlib.sha256(data).hexdigest()}.{name}"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    repo = new_repo(tmp_path)
    repo.create()
    with serve(repo.folder) as (url, knobs):
        yield Env(repo, url, knobs, tmp_path)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes: "nothing changed" is this, equal."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}  # fmt: skip
