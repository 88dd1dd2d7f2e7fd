"""What to offer, as pure functions of the channel's releases and what runs here.

TUF guards the versions of metadata, not the order of releases, so the order is ours:

- an offer is always *up*: the newest release on the channel that is newer than what
  runs (the app and the guest image apart: a release may bring only a new image);
- after a switch from beta to stable, stable may be behind what runs. The user stays
  on their version until stable passes it; a downgrade happens only when asked for
  (``allow_downgrade``), and is then said to be one;
- a skipped version is not announced (it still shows in ``update check``);
- a guest image that failed to start here is not offered again by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moorage.installers.releases import Kind, Release, ReleaseIndex, version_key
from moorage.vm.image.selection import LOCAL


@dataclass(frozen=True)
class Installed:
    app: str
    """The running app's version."""
    guest: str
    """The guest image's release version, or ``LOCAL`` for one built on this host."""
    app_kinds: tuple[Kind, ...] = ("deb",)
    """The app files this installation can use: ``deb`` from the Debian package; none
    from a git checkout (the checkout is the user's)."""


@dataclass(frozen=True)
class Part:
    """One thing to update: the app or the guest image."""

    what: str
    """``app`` or ``guest``."""
    version: str
    target: str
    """The TUF target path of its file."""
    downgrade: bool = False


@dataclass(frozen=True)
class Offer:
    channel: str
    newest: str | None
    """The channel's highest version (None: nothing released on it yet)."""
    parts: list[Part] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    """Why something newer than the channel stays (after a switch to stable)."""
    notes: list[tuple[str, str]] = field(default_factory=list)
    """(version, notes) of each release between what runs and the offer, newest first."""
    skipped: bool = False
    """The offer's version is the one the user chose to skip."""

    @property
    def version(self) -> str | None:
        """The version the offer brings (the highest of its parts)."""
        versions = [p.version for p in self.parts]
        return max(versions, key=version_key) if versions else None


def _newer(a: str, b: str) -> bool:
    return version_key(a) > version_key(b)


def _part(
    what: str,
    current: str | None,
    release: Release | None,
    kind: Kind,
    *,
    allow_downgrade: bool,
    held: list[str],
    channel: str,
) -> Part | None:
    if release is None:
        return None
    target = release.file(kind)
    assert target is not None
    if current is None or _newer(release.version, current):
        return Part(what, release.version, target)
    if _newer(current, release.version):
        if allow_downgrade:
            return Part(what, release.version, target, downgrade=True)
        held.append(
            f"the {what} stays at {current} until {channel} passes it "
            f"({channel} has {release.version}; `moorage update apply --downgrade` goes to it)"
        )
    return None


def plan(
    index: ReleaseIndex,
    installed: Installed,
    *,
    allow_downgrade: bool = False,
    skip: str | None = None,
    failed_guests: frozenset[str] = frozenset(),
) -> Offer:
    held: list[str] = []
    parts: list[Part] = []
    candidates = [r for k in installed.app_kinds if (r := index.newest(k)) is not None]
    app_release = max(candidates, key=lambda r: version_key(r.version), default=None)
    if app_release is not None:
        kind = next(k for k in installed.app_kinds if app_release.file(k))
        part = _part("app", installed.app, app_release, kind, allow_downgrade=allow_downgrade,
                     held=held, channel=index.channel)  # fmt: skip
        if part is not None:
            parts.append(part)
    guest_release = index.newest("guest")
    if guest_release is not None and guest_release.version in failed_guests:
        held.append(
            f"the guest image {guest_release.version} failed to start here and is not "
            "staged again; the next release's image will be"
        )
        guest_release = None
    guest_now = None if installed.guest == LOCAL else installed.guest
    part = _part("guest", guest_now, guest_release, "guest", allow_downgrade=allow_downgrade,
                 held=held, channel=index.channel)  # fmt: skip
    if part is not None:
        parts.append(part)
    newest = max((r.version for r in index.releases), key=version_key, default=None)
    top = max((p.version for p in parts), key=version_key, default=None)
    notes: list[tuple[str, str]] = []
    if top is not None:
        floor = min([installed.app, *([guest_now] if guest_now else [])], key=version_key)
        downgrade = any(p.downgrade for p in parts)
        for r in sorted(index.releases, key=lambda r: version_key(r.version), reverse=True):
            if r.version == top or (not downgrade and _newer(r.version, floor)
                                    and not _newer(r.version, top)):  # fmt: skip
                notes.append((r.version, r.notes))
    return Offer(index.channel, newest, parts, held, notes, skipped=top is not None and top == skip)
