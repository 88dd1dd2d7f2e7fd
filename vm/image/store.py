"""The local cache of built images: find one, or build it once, atomically.

``images_dir()/RECIPE/KEY/`` holds one image; KEY changes with the recipe and
the guest files, so an edited recipe builds anew and an unchanged one is reused.
A build happens in a scratch folder and is renamed into place only when
complete, so a killed build never leaves a half image that looks whole.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, cast

from moorage.errors import HostError, ImageError
from moorage.paths import images_dir
from moorage.vm.image.manifest import MANIFEST, Manifest, load, verify
from moorage.vm.image.recipe import RecipeInfo, Report

# Name -> module, imported lazily: a recipe's host tools matter only when it is built.
RECIPES = {"debian": "moorage.vm.image.debian", "alpine": "moorage.vm.image.alpine"}
DEFAULT_RECIPE = "debian"
BUILD_SPACE = 3 << 30


class RecipeModule(Protocol):
    INFO: RecipeInfo

    def build(self, work: Path, out: Path, report: Report) -> Manifest: ...


def recipe(name: str) -> RecipeModule:
    try:
        module = RECIPES[name]
    except KeyError:
        raise ImageError(
            f"unknown image recipe {name!r}", fix=f"use one of: {', '.join(sorted(RECIPES))}"
        ) from None
    return cast(RecipeModule, importlib.import_module(module))


def image_path(name: str) -> Path:
    return images_dir() / name / recipe(name).INFO.cache_key()


def default_kernel() -> Path | None:
    """The kernel of the built image of ``DEFAULT_RECIPE``, or None when there is none yet.

    For the host checks (``doctor``): the KVM probe test-boots this kernel, and cannot
    before an image is built. The kernel is not hashed against the manifest here: the
    probe only runs it, and every machine start verifies the whole image anyway.
    """
    image_dir = image_path(DEFAULT_RECIPE)
    try:
        kernel = image_dir / load(image_dir).kernel
    except ImageError:
        return None
    return kernel if kernel.is_file() else None


@contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure(name: str, report: Report, *, force: bool = False) -> Path:
    """Return the folder of a verified image of recipe ``name``, building it if needed."""
    target = image_path(name)
    with _build_lock(target.parent):
        if (target / MANIFEST).exists() and not force:
            return target
        if os.getuid() != 0:
            # mmdebstrap and mkfs.ext4 must own the tree as root to record its owners.
            raise ImageError(
                f"the {name} image is not built yet, and building it needs root",
                fix="run `moorage image build`, which builds it with sudo",
            )
        free = shutil.disk_usage(target.parent).free
        if free < BUILD_SPACE:
            raise HostError(
                f"building an image needs {BUILD_SPACE >> 30} GiB free in {target.parent}, "
                f"only {free / (1 << 30):.1f} GiB are",
                fix="free some disk space, or point MOORAGE_CACHE at a bigger disk",
            )
        work = target.parent / f".build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        out = work / "image"
        out.mkdir(parents=True)
        try:
            manifest = recipe(name).build(work, out, report)
            (out / MANIFEST).write_text(manifest.to_json())
            verify(out, full=True)
            if target.exists():
                shutil.rmtree(target)
            os.replace(out, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for old in target.parent.iterdir():
            # Images that updates brought (release-VERSION) are the selection's to keep.
            if old.is_dir() and old != target and not old.name.startswith((".", "release-")):
                shutil.rmtree(old, ignore_errors=True)
        report(f"image ready: {target}")
        return target
