"""Which guest image a machine boots: the current one, a staged one, the previous one.

An update never replaces the image in use. It unpacks beside it
(``images_dir()/RECIPE/release-VERSION/``, the image cache's shape: files and their
manifest) and is *staged*; the next start of a machine boots the staged image, and:

- when its engine comes up, the staged image becomes ``current`` and the one before
  it ``previous`` (kept, so that ``moorage update rollback`` can go back to it);
- when it does not, the start marks it ``failed`` and boots ``current`` again: a bad
  image rolls itself back, and is never staged again by itself.

``current`` is ``LOCAL`` for the image this host built itself (``store.image_path``).
The choice is data on disk, ``images_dir()/RECIPE/selection.json``, shared by every
machine (they share the image cache), read and changed under a lock, and replaced in
one rename.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from moorage.paths import images_dir

LOCAL = "local"
"""The image built on this host from the recipe (the image cache's own folder)."""
RELEASE_PREFIX = "release-"
SELECTION = "selection.json"


@dataclass(frozen=True)
class Selection:
    current: str = LOCAL
    staged: str | None = None
    previous: str | None = None
    failed: list[str] = field(default_factory=list)
    """Staged versions whose engine never came up here; never staged again by themselves."""
    last_failure: str | None = None
    """What the last rolled-back start said, for ``status``."""

    def boot(self) -> str:
        """The version the next start boots."""
        return self.staged or self.current


def release_dir(recipe: str, version: str) -> Path:
    return images_dir() / recipe / f"{RELEASE_PREFIX}{version}"


def _path(recipe: str) -> Path:
    return images_dir() / recipe / SELECTION


def load(recipe: str) -> Selection:
    try:
        data = json.loads(_path(recipe).read_text())
        known = Selection.__dataclass_fields__
        return Selection(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return Selection()


@contextmanager
def _locked(recipe: str) -> Iterator[None]:
    folder = images_dir() / recipe
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".selection.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _save(recipe: str, selection: Selection) -> None:
    path = _path(recipe)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(selection), indent=2) + "\n")
    os.replace(tmp, path)


def change(recipe: str, how: Callable[[Selection], Selection]) -> Selection:
    """Read, change and write the selection under its lock; returns the new one."""
    with _locked(recipe):
        new = how(load(recipe))
        _save(recipe, new)
        return new


def stage(recipe: str, version: str) -> Selection:
    """Boot ``version`` at the next start (a version that failed here is staged again
    only when asked for by name, as this is)."""
    return change(
        recipe,
        lambda s: replace(
            s,
            staged=None if version == s.current else version,
            failed=[v for v in s.failed if v != version],
        ),
    )


def promote(recipe: str, version: str) -> Selection:
    """The staged ``version`` booted to a ready engine: it is current now."""

    def how(s: Selection) -> Selection:
        if s.staged != version:
            return s
        return replace(s, current=version, previous=s.current, staged=None, last_failure=None)

    return change(recipe, how)


def reject(recipe: str, version: str, reason: str) -> Selection:
    """The staged ``version`` did not bring the engine up: back to the current one."""

    def how(s: Selection) -> Selection:
        failed = [*[v for v in s.failed if v != version], version]
        staged = None if s.staged == version else s.staged
        return replace(s, staged=staged, failed=failed, last_failure=reason)

    return change(recipe, how)


def in_use(recipe: str) -> set[str]:
    """The versions whose folders must stay: current, staged, previous."""
    s = load(recipe)
    return {v for v in (s.current, s.staged, s.previous) if v is not None}
