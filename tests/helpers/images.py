"""A guest image folder for tests: tiny files and a manifest with their real hashes."""

from __future__ import annotations

from pathlib import Path

from moorage.vm.image import manifest

ROLES = {"kernel": "vmlinuz", "initrd": "initrd.img", "root": "root.img"}


def write_image(
    folder: Path,
    *,
    version: str = "v1",
    engine_version: str = "26.1",
    contents: dict[str, bytes] | None = None,
) -> manifest.Manifest:
    """Write ``folder`` (made if missing) as a built image; return its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ROLES.values():
        (folder / name).write_bytes((contents or {}).get(name, name.encode()))
    m = manifest.Manifest(
        recipe="debian",
        version=version,
        created="now",
        kernel=ROLES["kernel"],
        initrd=ROLES["initrd"],
        root=ROLES["root"],
        cmdline="console=ttyS0",
        engine_version=engine_version,
        files={n: manifest.sha256_file(folder / n) for n in ROLES.values()},
    )
    (folder / manifest.MANIFEST).write_text(m.to_json())
    return m
