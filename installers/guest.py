"""A guest image update: unpack the verified archive beside the image in use, check it
against its manifest, stage it. The image in use and the data disk are not touched;
the switch happens at the next start of a machine (``vm/image/selection.py``)."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from moorage.errors import ImageError, UpdateError
from moorage.vm.image import manifest as manifest_mod
from moorage.vm.image import selection


def install(archive: Path, recipe: str, version: str) -> Path:
    """Unpack ``archive`` (already verified by TUF) as ``release-VERSION`` and stage it.

    Only the manifest and the plain files it names are taken from the archive, never a
    path with a folder in it, a link or a device: the archive's bytes are trusted, but
    what they would do to the file system is still checked. The image's own manifest
    is then verified in full, as before every boot.
    """
    dest = selection.release_dir(recipe, version)
    if (dest / manifest_mod.MANIFEST).is_file():
        manifest_mod.verify(dest, full=True)
        selection.stage(recipe, version)
        return dest
    incoming = dest.with_name(f".incoming-{version}")
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if manifest_mod.MANIFEST not in members:
                raise UpdateError(f"{archive.name} holds no {manifest_mod.MANIFEST}")
            tar.extract(members[manifest_mod.MANIFEST], incoming, filter="data")
            m = manifest_mod.load(incoming)
            for name in m.files:
                member = members.get(name)
                if member is None or "/" in name or not member.isfile():
                    raise UpdateError(f"{archive.name} lacks the plain file {name!r}")
                tar.extract(member, incoming, filter="data")
        manifest_mod.verify(incoming, full=True)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(incoming, dest)
    except (ImageError, tarfile.TarError, OSError) as exc:
        raise UpdateError(f"the guest image {version} cannot be unpacked: {exc}") from exc
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    selection.stage(recipe, version)
    return dest


def prune(recipe: str) -> None:
    """Remove update images no longer current, staged or previous."""
    keep = selection.in_use(recipe)
    folder = selection.release_dir(recipe, "x").parent
    for d in folder.glob(f"{selection.RELEASE_PREFIX}*"):
        if d.is_dir() and d.name.removeprefix(selection.RELEASE_PREFIX) not in keep:
            shutil.rmtree(d, ignore_errors=True)
