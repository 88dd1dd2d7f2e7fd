"""An image's manifest, and its verification before every boot.

The manifest names each file of the image with its sha256. A machine refuses
to boot an image whose files do not match: a corrupted download or a tampered
file must never reach the hypervisor.

Hashing a 1 GB root on every start would cost seconds, so a successful check
is remembered next to the image together with each file's size, mtime and
inode. Any write to a file changes those, and the next start hashes it again.
``verify(full=True)`` ignores the memo.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from moorage.errors import ImageError

MANIFEST = "manifest.json"
_MEMO = ".verified.json"
_CHUNK = 4 << 20


@dataclass(frozen=True)
class Manifest:
    """What an image is. ``files`` maps each file name to its sha256."""

    recipe: str
    version: str
    created: str
    kernel: str
    initrd: str
    root: str
    cmdline: str
    engine_version: str
    files: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["files"] = dict(sorted(self.files.items()))
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = MANIFEST) -> Manifest:
        try:
            data = json.loads(text)
            manifest = cls(**data)
        except (ValueError, TypeError) as exc:
            raise ImageError(
                f"{source} is not a valid image manifest: {exc}",
                fix="rebuild the image with `moorage image build --force`",
            ) from exc
        for role in (manifest.kernel, manifest.initrd, manifest.root):
            if role not in manifest.files:
                raise ImageError(f"{source} lists no sha256 for {role!r}")
        return manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def load(image_dir: Path) -> Manifest:
    path = image_dir / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ImageError(
            f"no image at {image_dir} (missing {MANIFEST})",
            fix="build it with `moorage image build`",
        ) from exc
    return Manifest.from_json(text, str(path))


def verify(image_dir: Path, *, full: bool = False) -> Manifest:
    """Check every file of the image against its manifest; raise ImageError on any mismatch."""
    manifest = load(image_dir)
    memo_path = image_dir / _MEMO
    memo: dict[str, list[object]] = {}
    if not full:
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
    fresh: dict[str, list[object]] = {}
    for name, expected in sorted(manifest.files.items()):
        path = image_dir / name
        if not path.is_file():
            raise ImageError(
                f"image file {path} is missing",
                fix="rebuild the image with `moorage image build --force`",
            )
        stamp = _stamp(path)
        if memo.get(name) == [*stamp, expected]:
            fresh[name] = memo[name]
            continue
        actual = sha256_file(path)
        if actual != expected:
            raise ImageError(
                f"image file {path} does not match its manifest "
                f"(sha256 {actual[:16]}…, expected {expected[:16]}…): it is corrupted or was "
                "changed, so it will not be booted",
                fix="rebuild the image with `moorage image build --force`",
            )
        fresh[name] = [*stamp, expected]
    tmp = memo_path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(fresh))
        os.replace(tmp, memo_path)
    except OSError:
        pass  # a read-only image folder is still a valid image
    return manifest
