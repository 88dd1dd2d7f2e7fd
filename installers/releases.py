"""What a channel offers: its list of releases, and how versions are ordered.

Each channel's ``releases.json`` is a TUF target signed by that channel's key, so the
list (and the notes in it) is as trusted as the files. Versions follow PEP 440
(``2.1.0``, ``2.2.0b1``), compared with ``packaging``: TUF guards the versions of
metadata, not the order of releases, so the client orders them itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from packaging.version import InvalidVersion, Version

from moorage.errors import UpdateError
from moorage.update_settings import CHANNELS

__all__ = ["CHANNELS", "Kind", "Release", "ReleaseIndex", "index_path", "kind_of", "version_key"]

Kind = Literal["deb", "wheel", "guest"]
GUEST_PREFIX = "moorage-guest-"
GUEST_SUFFIX = ".tar.gz"


def index_path(channel: str) -> str:
    return f"{channel}/releases.json"


def version_key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        raise UpdateError(
            f"{version!r} is not a release version", fix="use a PEP 440 version such as 2.1.0"
        ) from None


def kind_of(name: str) -> Kind | None:
    """What a release file is, from its name (``scripts/release build`` names them)."""
    if name.endswith(".deb"):
        return "deb"
    if name.endswith(".whl"):
        return "wheel"
    if name.startswith(GUEST_PREFIX) and name.endswith(GUEST_SUFFIX):
        return "guest"
    return None


@dataclass(frozen=True)
class Release:
    version: str
    published: str
    notes: str
    files: list[str] = field(default_factory=list)
    """Target paths (``CHANNEL/VERSION/NAME``); their lengths and hashes are in TUF."""

    def file(self, kind: Kind) -> str | None:
        return next((f for f in self.files if kind_of(f.rpartition("/")[2]) == kind), None)


@dataclass(frozen=True)
class ReleaseIndex:
    channel: str
    releases: list[Release]

    def to_json(self) -> str:
        releases = sorted(self.releases, key=lambda r: version_key(r.version))
        return json.dumps(
            {"channel": self.channel, "releases": [asdict(r) for r in releases]}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> ReleaseIndex:
        try:
            data = json.loads(text)
            releases = [Release(**r) for r in data["releases"]]
            return cls(str(data["channel"]), releases)
        except (ValueError, KeyError, TypeError) as exc:
            raise UpdateError(f"the channel's release list cannot be read: {exc}") from exc

    def newest(self, kind: Kind) -> Release | None:
        """The highest version that carries a file of ``kind``."""
        having = [r for r in self.releases if r.file(kind)]
        return max(having, key=lambda r: version_key(r.version), default=None)

    def get(self, version: str) -> Release | None:
        return next((r for r in self.releases if r.version == version), None)
