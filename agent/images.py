"""Which guest image a start boots, and going back when a staged one fails.

The choice is data on disk (``vm/image/selection.py``): a start boots the staged
image if there is one, else the current one (``LOCAL``: the image this host built,
through ``Deps.image``). When a staged image does not bring the engine to ready
(the guest does not boot, the VM dies, dockerd never answers or keeps exiting), the
start stops that VM, marks the image failed, says so (a ``image-rollback`` warning,
in ``status`` too) and boots the current image instead. The data disk is not touched
on the way: it is the same file, attached to the next boot as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import ImageError
from moorage.vm.image import manifest as manifest_mod
from moorage.vm.image import selection
from moorage.vm.image.manifest import Manifest

LocalImage = Callable[[str, Callable[[str], None]], tuple[Path, Manifest]]


@dataclass(frozen=True)
class Chosen:
    folder: Path
    manifest: Manifest
    version: str
    """The release version booted (``LOCAL`` for the host's own build)."""
    trying: bool
    """A staged image: it becomes current once its engine is ready."""


def _folder(recipe: str, version: str, local: LocalImage,
            report: Callable[[str], None]) -> tuple[Path, Manifest]:  # fmt: skip
    if version == selection.LOCAL:
        return local(recipe, report)
    folder = selection.release_dir(recipe, version)
    return folder, manifest_mod.verify(folder)


def choose(recipe: str, local: LocalImage, report: Callable[[str], None],
           warn: Callable[[str], None], *, staged_ok: bool = True) -> Chosen:  # fmt: skip
    """The image to boot: the staged one (unless ``staged_ok`` is False, after it
    failed), else the current one. A staged image that is missing or does not match
    its manifest is rejected at once, with a warning, and the current one is used."""
    sel = selection.load(recipe)
    if staged_ok and sel.staged is not None:
        try:
            folder, m = _folder(recipe, sel.staged, local, report)
            return Chosen(folder, m, sel.staged, trying=True)
        except ImageError as exc:
            reject(recipe, sel.staged, exc.message, warn)
            sel = selection.load(recipe)
    folder, m = _folder(recipe, sel.current, local, report)
    return Chosen(folder, m, sel.current, trying=False)


def reject(recipe: str, version: str, reason: str, warn: Callable[[str], None]) -> None:
    sel = selection.reject(recipe, version, reason)
    warn(f"the guest image {version} did not bring the engine to ready ({reason}); the machine "
         f"went back to the image {sel.current}, and {version} is not staged again")  # fmt: skip


def ready(recipe: str, chosen: Chosen) -> None:
    """The engine came up on ``chosen``: a staged image is current now."""
    if chosen.trying:
        selection.promote(recipe, chosen.version)
