"""A guest image update: time to a ready machine on the new image, and bytes fetched.

Per round, alternating on the bench machine:

- plain: ``moorage restart`` on the current image;
- update: a new release of the guest image (a copy of the built one, published on a
  local TUF repository served on 127.0.0.1) applied with the updater, then
  ``moorage restart``, which boots the staged image. Timed from the start of the apply
  to "ready" on the new image, *less the download* (the moment the archive's last byte
  arrived is taken from the download's own progress).

Goal: update / plain <= 1.2. Also printed: the bytes the download fetched against the
archive's and the image's sizes, and, with ``--old DIR``, how much of the root disk a
block delta from the image in DIR would have had to send (64 KiB blocks, compressed).

Run: python bench/update_apply.py [rounds] [--old IMAGE_DIR]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

from common import HOME, ensure_machine, header, median, moorage, status

os.environ["MOORAGE_HOME"] = str(HOME)  # the updater below works on the bench machine's files
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers: repo, server

from moorage import update_settings
from moorage.installers.service import Updates
from moorage.paths import update_config_file
from moorage.vm.image import store
from tests.helpers.update_repo import copy_image, new_repo, publish_image, serve

BLOCK = 64 << 10


def delta_bytes(old: Path, new: Path) -> tuple[int, int]:
    """(changed blocks' bytes compressed, changed blocks' bytes) of ``new`` against ``old``."""
    seen: set[bytes] = set()
    with old.open("rb") as f:
        while block := f.read(BLOCK):
            seen.add(hashlib.sha256(block).digest())
    raw = packed = 0
    with new.open("rb") as f:
        while block := f.read(BLOCK):
            if hashlib.sha256(block).digest() not in seen:
                raw += len(block)
                packed += len(zlib.compress(block, 6))
    return packed, raw


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = int(args[0]) if args else 2
    old = Path(sys.argv[sys.argv.index("--old") + 1]) if "--old" in sys.argv else None
    ensure_machine()
    header(f"guest image update to ready, {rounds} rounds alternating (update vs plain restart)")
    source = store.image_path("debian")
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-update-"))
    repo = new_repo(work)
    repo.create()
    plain: list[float] = []
    updated: list[float] = []
    sent: list[int] = []
    try:
        with serve(repo.folder) as (url, knobs):
            update_settings.write(update_config_file(), {
                "url": url, "root": str(repo.metadata_dir / "1.root.json")})  # fmt: skip
            for n in range(rounds):
                started = time.monotonic()
                moorage("restart")
                plain.append(time.monotonic() - started)

                # Newer than any earlier run's, which the machine may still boot.
                version = f"100.{int(time.time())}.{n}"
                image = copy_image(source, work / f"image-{version}")
                publish_image(work, image, version, repo)
                downloaded = [0.0]

                def progress(
                    _what: str, done: int, total: int, mark: list[float] = downloaded
                ) -> None:
                    if done == total:
                        mark[0] = time.monotonic()

                before = sum(knobs.sent.values())
                started = time.monotonic()
                Updates().apply(lambda _m: None, progress)
                download = downloaded[0] - started if downloaded[0] else 0.0
                sent.append(sum(knobs.sent.values()) - before)
                moorage("restart")
                updated.append(time.monotonic() - started - download)
                image_line = str(status()["image"])
                assert f"release {version}" in image_line, image_line
                shutil.rmtree(image)
    finally:
        archive = next((work / "dist").glob("*/*.tar.gz")).stat().st_size
        shutil.rmtree(work, ignore_errors=True)
    image_size = sum(p.stat().st_size for p in source.iterdir() if p.is_file())
    for i, (u, p) in enumerate(zip(updated, plain, strict=True)):
        print(f"round {i + 1}: update {u:6.1f} s (download excluded) | plain restart {p:6.1f} s "
              f"| ratio {u / p:4.2f} | fetched {sent[i] / 1e6:.1f} MB")  # fmt: skip
    ratios = sorted(u / p for u, p in zip(updated, plain, strict=True))
    print(f"median ratio update/plain: {median(ratios):4.2f} (goal <= 1.2)")
    print(f"guest image: {image_size / 1e6:.1f} MB of files, archive {archive / 1e6:.1f} MB "
          f"({archive / image_size:.0%}); fetched per update {sent[0] / 1e6:.1f} MB "
          f"({sent[0] / archive:.2f}x the archive, metadata included)")  # fmt: skip
    if old is not None:
        packed, raw = delta_bytes(old / "root.img", source / "root.img")
        print(f"block delta of root.img from {old}: {raw / 1e6:.1f} MB changed, "
              f"{packed / 1e6:.1f} MB compressed = {packed / archive:.0%} of the archive")  # fmt: skip


if __name__ == "__main__":
    main()
