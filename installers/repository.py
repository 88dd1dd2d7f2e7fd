"""The update repository: TUF metadata signed with python-tuf's Metadata API.

Layout, as every TUF client expects it, served by any static web server::

    REPO/metadata/1.root.json, 2.root.json, ...   every root version, the first one shipped
    REPO/metadata/timestamp.json                  the only unversioned file a client asks for
    REPO/metadata/N.snapshot.json, N.targets.json, N.beta.json, N.stable.json
    REPO/targets/beta/VERSION/SHA256.NAME         each target under its hash (consistent
    REPO/targets/stable/VERSION/SHA256.NAME       snapshots: a client never mixes states)
    REPO/targets/CHANNEL/SHA256.releases.json     the channel's list of releases

Roles and keys (one key each, threshold 1 by default; ``KEYS/ROLE.pem``, 0600 in a 0700
folder, never inside REPO):

- ``root`` (365 days) names the keys of the four top-level roles;
- ``targets`` (365 days) delegates ``beta/*`` to the role ``beta`` and ``stable/*`` to
  the role ``stable``, each with its own key, both terminating. A channel is a path
  prefix that only its own key may sign: a stable client asks only for ``stable/...``
  paths, which TUF resolves through the ``stable`` role alone, so nothing the beta key
  signed can reach it (Fleet's orbit keeps channels apart the same way, by path);
- ``snapshot`` (14 days) and ``timestamp`` (3 days) are re-signed by ``refresh``, which
  a cron job runs daily: a client refuses expired metadata (freeze) and any version
  older than one it saw (rollback).

A channel's ``releases.json`` target lists its releases (version, date, notes, the
target paths of its files); the files' lengths and hashes are in the channel role's
signed metadata. ``promote`` has the stable key sign the same bytes that beta lists:
the files are hard links, the hashes equal.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Key, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from moorage.errors import UpdateError
from moorage.installers.releases import CHANNELS, Release, ReleaseIndex, index_path, version_key

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
ROLES = (*TOP_ROLES, *CHANNELS)


@dataclass(frozen=True)
class Expiry:
    """How long each role's metadata stays valid after it is signed."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=365)
    channel: timedelta = timedelta(days=365)
    snapshot: timedelta = timedelta(days=14)
    timestamp: timedelta = timedelta(days=3)

    def of(self, role: str) -> timedelta:
        value: timedelta = self.channel if role in CHANNELS else getattr(self, role)
        return value


def _private_write(path: Path, data: bytes) -> None:
    """Write a key: 0600 from the first byte, in a 0700 folder."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class Keys:
    """The signing keys, one PEM file per role, kept apart from the repository."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, role: str) -> Path:
        return self.folder / f"{role}.pem"

    def has(self, role: str) -> bool:
        return self.path(role).is_file()

    def generate(self, role: str) -> CryptoSigner:
        signer = CryptoSigner.generate_ed25519()
        _private_write(self.path(role), signer.private_bytes)
        return signer

    def signer(self, role: str) -> CryptoSigner:
        path = self.path(role)
        try:
            if path.stat().st_mode & 0o077:
                raise UpdateError(
                    f"the {role} key {path} is readable by others",
                    fix=f"chmod 600 {path}, and think about whether it leaked",
                )
            private = load_pem_private_key(path.read_bytes(), None)
        except FileNotFoundError:
            raise UpdateError(
                f"no {role} key in {self.folder}",
                fix=f"pass the --keys folder that holds {role}.pem",
            ) from None
        return CryptoSigner(private)

    def retire(self, role: str) -> None:
        """Move a role's key aside after a rotation (kept: older roots need it no more,
        but a person may want to audit what it signed)."""
        old = self.folder / "retired"
        old.mkdir(exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        os.replace(self.path(role), old / f"{role}-{stamp}.pem")


def _link(source: Path, dest: Path) -> None:
    """``dest`` as the same bytes as ``source``: a hard link where it can be, a copy
    where not (another file system); a file already there is left as it is."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        try:
            os.link(source, dest)
        except OSError:
            shutil.copyfile(source, dest)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Repository:
    """One update repository on disk and the keys that sign it."""

    folder: Path
    keys: Keys
    expiry: Expiry = field(default_factory=Expiry)

    @property
    def metadata_dir(self) -> Path:
        return self.folder / "metadata"

    @property
    def targets_dir(self) -> Path:
        return self.folder / "targets"

    def exists(self) -> bool:
        return (self.metadata_dir / "1.root.json").is_file()

    # ----- reading and writing metadata -------------------------------------

    def _latest_version(self, role: str) -> int:
        versions = [
            int(p.name.split(".", 1)[0])
            for p in self.metadata_dir.glob(f"*.{role}.json")
            if p.name.split(".", 1)[0].isdigit()
        ]
        if not versions:
            raise UpdateError(f"the repository {self.folder} has no {role} metadata")
        return max(versions)

    def load(self, role: str) -> Metadata[Any]:
        if role == "timestamp":
            return Metadata.from_file(str(self.metadata_dir / "timestamp.json"))
        name = f"{self._latest_version(role)}.{role}.json"
        return Metadata.from_file(str(self.metadata_dir / name))

    def _write(self, role: str, md: Metadata[Any]) -> None:
        data = md.to_bytes(JSONSerializer(compact=False))
        name = "timestamp.json" if role == "timestamp" else f"{md.signed.version}.{role}.json"
        tmp = self.metadata_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.metadata_dir / name)
        if role == "root":
            # Convenience for people and tools; clients fetch the numbered files.
            shutil.copyfile(self.metadata_dir / name, self.metadata_dir / ".root.json.tmp")
            os.replace(self.metadata_dir / ".root.json.tmp", self.metadata_dir / "root.json")

    def _sign(self, role: str, md: Metadata[Any], signers: list[Signer] | None = None) -> None:
        md.signatures.clear()
        for signer in signers or [self.keys.signer(role)]:
            md.sign(signer, append=True)

    def _bump(self, role: str, md: Metadata[Any]) -> None:
        md.signed.version += 1
        md.signed.expires = _now() + self.expiry.of(role)

    def _meta(self, role: str) -> MetaFile:
        md = self.load(role)
        return MetaFile(version=md.signed.version)

    # ----- creation ------------------------------------------------------------

    def create(self) -> None:
        """Make keys (those not in the keys folder yet) and version 1 of every role."""
        if self.exists():
            raise UpdateError(f"{self.folder} already holds an update repository")
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        signers = {r: self.keys.signer(r) if self.keys.has(r) else self.keys.generate(r)
                   for r in ROLES}  # fmt: skip
        now = _now()
        root = Root(expires=now + self.expiry.root, consistent_snapshot=True)
        for role in TOP_ROLES:
            root.add_key(signers[role].public_key, role)
        roles = {
            channel: DelegatedRole(
                channel,
                [signers[channel].public_key.keyid],
                1,
                True,
                paths=[f"{channel}/*", f"{channel}/*/*"],
            )
            for channel in CHANNELS
        }
        keys: dict[str, Key] = {
            signers[c].public_key.keyid: signers[c].public_key for c in CHANNELS
        }
        targets = Targets(
            expires=now + self.expiry.targets, delegations=Delegations(keys=keys, roles=roles)
        )
        for role, signed in (("root", root), ("targets", targets)):
            md: Metadata[Any] = Metadata(signed)
            self._sign(role, md, [signers[role]])
            self._write(role, md)
        for channel in CHANNELS:
            md = Metadata(Targets(expires=now + self.expiry.channel))
            self._put_index(md.signed, ReleaseIndex(channel, []))
            self._sign(channel, md, [signers[channel]])
            self._write(channel, md)
        snapshot: Metadata[Snapshot] = Metadata(Snapshot(expires=now + self.expiry.snapshot))
        snapshot.signed.meta = {f"{r}.json": self._meta(r) for r in ("targets", *CHANNELS)}
        self._sign("snapshot", snapshot, [signers["snapshot"]])
        self._write("snapshot", snapshot)
        timestamp: Metadata[Timestamp] = Metadata(Timestamp(expires=now + self.expiry.timestamp))
        timestamp.signed.snapshot_meta = self._meta("snapshot")
        self._sign("timestamp", timestamp, [signers["timestamp"]])
        self._write("timestamp", timestamp)

    # ----- targets ----------------------------------------------------------------

    def _store(self, source: Path, target_path: str) -> TargetFile:
        """Put ``source`` in targets/ under its hash (a hard link where it can be)."""
        info = TargetFile.from_file(target_path, str(source), ["sha256"])
        folder, _, name = target_path.rpartition("/")
        _link(source, self.targets_dir / folder / f"{info.hashes['sha256']}.{name}")
        return info

    def _put_index(self, targets: Targets, index: ReleaseIndex) -> None:
        path = index_path(index.channel)
        data = index.to_json().encode()
        info = TargetFile.from_data(path, data, ["sha256"])
        dest = self.targets_dir / index.channel / f"{info.hashes['sha256']}.releases.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        targets.targets[path] = info

    def index(self, channel: str) -> ReleaseIndex:
        info = self.load(channel).signed.targets[index_path(channel)]
        blob = self.targets_dir / channel / f"{info.hashes['sha256']}.releases.json"
        return ReleaseIndex.from_json(blob.read_text())

    def _commit(self, changed: Mapping[str, Metadata[Any]]) -> None:
        """Sign and write the changed roles, then a snapshot and a timestamp naming them."""
        for role, md in changed.items():
            self._bump(role, md)
            self._sign(role, md)
            self._write(role, md)
        self.refresh()

    def publish(self, version: str, files: list[Path], notes: str) -> Release:
        """Put release ``version`` (its ``files``) on the beta channel."""
        version_key(version)  # refuse a version that cannot be ordered
        beta = self.load("beta")
        index = self.index("beta")
        if any(r.version == version for r in index.releases):
            raise UpdateError(
                f"{version} is already on beta",
                fix="publish a new version; a release never changes",
            )
        paths: list[str] = []
        for f in files:
            target = f"beta/{version}/{f.name}"
            beta.signed.targets[target] = self._store(f, target)
            paths.append(target)
        release = Release(version, _now().isoformat(), notes, paths)
        self._put_index(beta.signed, ReleaseIndex("beta", [*index.releases, release]))
        self._commit({"beta": beta})
        return release

    def promote(self, version: str) -> Release:
        """Have the stable key list the very bytes beta lists for ``version``."""
        beta = self.load("beta").signed
        found = [r for r in self.index("beta").releases if r.version == version]
        if not found:
            raise UpdateError(f"{version} is not on beta", fix="`scripts/release publish` it first")
        stable = self.load("stable")
        index = self.index("stable")
        if any(r.version == version for r in index.releases):
            raise UpdateError(f"{version} is already on stable")
        paths: list[str] = []
        for beta_path in found[0].files:
            info = beta.targets[beta_path]
            target = "stable/" + beta_path.removeprefix("beta/")
            folder, _, name = target.rpartition("/")
            digest = info.hashes["sha256"]
            blob = self.targets_dir / beta_path.rpartition("/")[0] / f"{digest}.{name}"
            _link(blob, self.targets_dir / folder / f"{digest}.{name}")
            stable.signed.targets[target] = TargetFile(info.length, dict(info.hashes), target)
            paths.append(target)
        release = Release(version, _now().isoformat(), found[0].notes, paths)
        self._put_index(stable.signed, ReleaseIndex("stable", [*index.releases, release]))
        self._commit({"stable": stable})
        return release

    # ----- keeping it fresh ----------------------------------------------------------

    def refresh(self) -> tuple[int, int]:
        """Sign new snapshot and timestamp versions (new expiry) naming the current
        targets metadata: the cron job's command. Returns their versions."""
        snapshot = self.load("snapshot")
        snapshot.signed.meta = {f"{r}.json": self._meta(r) for r in ("targets", *CHANNELS)}
        self._bump("snapshot", snapshot)
        self._sign("snapshot", snapshot)
        self._write("snapshot", snapshot)
        timestamp = self.load("timestamp")
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        self._bump("timestamp", timestamp)
        self._sign("timestamp", timestamp)
        self._write("timestamp", timestamp)
        return snapshot.signed.version, timestamp.signed.version

    def expiring(self, within: timedelta) -> list[str]:
        """The roles whose metadata expires within ``within`` (refresh renews only
        snapshot and timestamp; the others need their keys: ``rotate`` or a publish)."""
        soon = _now() + within
        return [r for r in ("root", "targets", *CHANNELS) if self.load(r).signed.expires < soon]

    def rotate(self, role: str) -> str:
        """Give ``role`` a new key and revoke the old one; returns the new key id.

        A top-level role's keys live in root: a new root version names the new key,
        signed by the root key (by the old and the new one when root itself rotates,
        so a client that trusts the old root follows the chain). A channel's key lives
        in the delegation of ``targets``. The role is then signed anew by its new key.
        """
        if role not in ROLES:
            raise UpdateError(f"unknown role {role!r}", fix=f"one of: {', '.join(ROLES)}")
        old_signer = self.keys.signer(role)
        old_id = old_signer.public_key.keyid
        staging = Keys(self.keys.folder / ".rotating")
        shutil.rmtree(staging.folder, ignore_errors=True)
        new_signer = staging.generate(role)
        new_id = new_signer.public_key.keyid
        if role in CHANNELS:
            targets = self.load("targets")
            delegations = targets.signed.delegations
            assert delegations is not None and delegations.roles is not None
            delegated = delegations.roles[role]
            delegations.keys[new_id] = new_signer.public_key
            delegated.keyids = [new_id if k == old_id else k for k in delegated.keyids]
            del delegations.keys[old_id]
            self._bump("targets", targets)
            self._sign("targets", targets)
            self._write("targets", targets)
        else:
            root = self.load("root")
            root.signed.revoke_key(old_id, role)
            root.signed.add_key(new_signer.public_key, role)
            self._bump("root", root)
            root_signers: list[Signer] = [
                new_signer if role == "root" else self.keys.signer("root")
            ]
            if role == "root":
                root_signers.append(old_signer)
            self._sign("root", root, root_signers)
            self._write("root", root)
        self.keys.retire(role)
        os.replace(staging.path(role), self.keys.path(role))
        shutil.rmtree(staging.folder, ignore_errors=True)
        if role in ("targets", *CHANNELS):
            md = self.load(role)
            self._bump(role, md)
            self._sign(role, md)
            self._write(role, md)
        self.refresh()
        return new_id


def files_of(dist: Path) -> list[Path]:
    """The release's files in ``dist/VERSION``: every regular file but the notes."""
    return sorted(p for p in dist.iterdir() if p.is_file() and p.name != "notes.md")


def describe(repo: Repository) -> dict[str, Any]:
    """A summary for people: each role's version and expiry, each channel's releases."""
    out: dict[str, Any] = {}
    for role in ROLES:
        md = repo.load(role)
        out[role] = {"version": md.signed.version, "expires": md.signed.expires.isoformat()}
    for channel in CHANNELS:
        out[channel]["releases"] = [r.version for r in repo.index(channel).releases]
    return out


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
