"""``scripts/release build VERSION``: the release's files in ``dist/VERSION/``.

- ``moorage-VERSION-py3-none-any.whl``: the app;
- ``moorage_DEBVERSION_ARCH.deb``: the app for Debian, with every Python dependency
  as a wheel; its ``postinst`` builds the virtual environment at the path it runs
  from (``/opt/moorage/VERSION``), so nothing is relocated (dh-virtualenv's and
  Synapse's goal, without their build chroot). The tools a developer expects beside
  the engine are package dependencies, not copies: the docker CLI, Compose, QEMU,
  libvirt, virtiofsd;
- ``moorage-guest-RECIPE-VERSION.tar.gz``: the guest OS image (kernel, initrd, root
  disk and manifest) in one archive;
- ``notes.md``: the release notes.

The version is put into a copy of the source tree (``pyproject.toml`` and
``base/__init__.py``), never into the tracked files; so are the root of trust and the
update URL the build ships (``--root``, ``--url``), as ``moorage/installers/trust/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from packaging.version import Version

from moorage.errors import UpdateError
from moorage.installers.releases import GUEST_PREFIX, GUEST_SUFFIX, version_key
from moorage.vm.image import manifest as manifest_mod

Report = Callable[[str], None]
SOURCE = Path(__file__).resolve().parents[1]
"""The repository root when running from a checkout (``installers/`` is in it)."""
SKIP_DEPS = ("libvirt-python",)
"""Dependencies Debian provides, built for its own libraries (``python3-libvirt``)."""


def debian_version(version: str) -> str:
    """PEP 440 to Debian: pre-releases sort before the release there with ``~``."""
    v = Version(version)
    text = v.base_version
    if v.pre is not None:
        text += f"~{v.pre[0]}{v.pre[1]}"
    if v.dev is not None:
        text += f"~dev{v.dev}"
    if v.post is not None:
        text += f"+post{v.post}"
    return text


@dataclass(frozen=True)
class BuildPlan:
    version: str
    out: Path
    root: Path | None = None
    """A TUF root.json to ship as the root of trust."""
    url: str | None = None
    """The update repository the build points at by default."""
    image_dir: Path | None = None
    """A built guest image folder to pack; default: the image cache's (built if needed)."""
    recipe: str = "debian"
    notes: str = ""
    parts: tuple[str, ...] = ("wheel", "deb", "guest")


def _run(argv: list[str], report: Report, cwd: Path | None = None) -> None:
    report("$ " + " ".join(argv))
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise UpdateError(f"{argv[0]} failed (exit {proc.returncode}):\n{tail}")


def stage_source(plan: BuildPlan, into: Path) -> Path:
    """A copy of the source tree with the version (and the trust) of this build."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=SOURCE, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    tree = into / "src"
    for name in filter(None, listed):
        src = SOURCE / name
        if src.is_file():
            dest = tree / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    pyproject = tree / "pyproject.toml"
    text, n = re.subn(r'(?m)^version = ".*"$', f'version = "{plan.version}"', pyproject.read_text())
    init = tree / "base" / "__init__.py"
    code, m = re.subn(r'(?m)^__version__ = ".*"$', f'__version__ = "{plan.version}"',
                      init.read_text())  # fmt: skip
    if n != 1 or m != 1:
        raise UpdateError("cannot find the version in pyproject.toml and base/__init__.py")
    pyproject.write_text(text)
    init.write_text(code)
    trust = tree / "installers" / "trust"
    if plan.root is not None:
        trust.mkdir(exist_ok=True)
        shutil.copyfile(plan.root, trust / "root.json")
    if plan.url is not None:
        trust.mkdir(exist_ok=True)
        (trust / "settings.json").write_text(json.dumps({"url": plan.url}) + "\n")
    return tree


def build_wheel(tree: Path, out: Path, report: Report) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out),
          str(tree)], report)  # fmt: skip
    (wheel,) = out.glob("moorage-*.whl")
    return wheel


def _requirements(tree: Path) -> list[str]:
    deps: list[str] = tomllib.loads((tree / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    return [d for d in deps if not d.startswith(SKIP_DEPS)]


def _template(name: str, **values: str) -> str:
    text = (resources.files("moorage.installers") / "debian" / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _arch() -> str:
    proc = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    return proc.stdout.strip() or "amd64"


def build_deb(tree: Path, wheel: Path, out: Path, version: str, report: Report) -> Path:
    """The Debian package: wheels, the CLI wrapper, desktop entries, icons."""
    work = out / ".deb"
    shutil.rmtree(work, ignore_errors=True)
    wheels = work / "usr/lib/moorage/wheels"
    wheels.mkdir(parents=True)
    shutil.copy2(wheel, wheels / wheel.name)
    requirements = work.parent / ".requirements.txt"
    requirements.write_text("\n".join(_requirements(tree)) + "\n")
    report("fetching the dependencies' wheels")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--only-binary", ":all:",
          "-w", str(wheels), "-r", str(requirements)], report)  # fmt: skip
    requirements.unlink()
    files = {
        "usr/bin/moorage": (_template("moorage"), 0o755),
        "usr/share/applications/moorage.desktop": (_template("moorage.desktop"), 0o644),
        # The tray's own copy, which its "Start at login" writes for one user too.
        "etc/xdg/autostart/moorage-tray.desktop": (
            (tree / "desktop" / "moorage-tray.desktop").read_text(),
            0o644,
        ),
        "usr/share/doc/moorage/copyright": (_template("copyright"), 0o644),
        "DEBIAN/postinst": (_template("postinst", VERSION=version), 0o755),
        "DEBIAN/postrm": (_template("postrm"), 0o755),
    }
    icon = (resources.files("moorage.installers") / "assets" / "moorage.svg").read_text()
    files["usr/share/icons/hicolor/scalable/apps/moorage.svg"] = (icon, 0o644)
    for name, (text, mode) in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    size_kib = sum(p.stat().st_size for p in work.rglob("*") if p.is_file()) // 1024 + 1
    py = sys.version_info
    control = _template(
        "control",
        DEBVERSION=debian_version(version),
        ARCH=_arch(),
        SIZE=str(size_kib),
        PYMIN=f"{py.major}.{py.minor}",
        PYMAX=f"{py.major}.{py.minor + 1}",
    )
    (work / "DEBIAN" / "control").write_text(control)
    for d in [work, *[p for p in work.rglob("*") if p.is_dir()]]:
        d.chmod(0o755)
    deb = out / f"moorage_{debian_version(version)}_{_arch()}.deb"
    _run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(work), str(deb)], report)
    shutil.rmtree(work)
    return deb


def pack_guest(image_dir: Path, out: Path, recipe: str, version: str, report: Report) -> Path:
    """The guest image as one archive: the manifest and the files it lists, verified."""
    m = manifest_mod.verify(image_dir, full=True)
    archive = out / f"{GUEST_PREFIX}{recipe}-{version}{GUEST_SUFFIX}"
    report(f"packing the guest image {image_dir} ({len(m.files)} files)")
    tmp = archive.with_suffix(".part")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for name in [manifest_mod.MANIFEST, *sorted(m.files)]:
            info = tar.gettarinfo(str(image_dir / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with (image_dir / name).open("rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, archive)
    return archive


def build(plan: BuildPlan, report: Report) -> list[Path]:
    """Build what ``plan`` asks into ``plan.out`` (made, and emptied first)."""
    version_key(plan.version)
    shutil.rmtree(plan.out, ignore_errors=True)
    plan.out.mkdir(parents=True)
    made: list[Path] = []
    (plan.out / "notes.md").write_text(plan.notes or f"moorage {plan.version}\n")
    if "wheel" in plan.parts or "deb" in plan.parts:
        with tempfile.TemporaryDirectory(prefix="moorage-build-") as tmp:
            tree = stage_source(plan, Path(tmp))
            wheel = build_wheel(tree, plan.out, report)
            made.append(wheel)
            if "deb" in plan.parts:
                made.append(build_deb(tree, wheel, plan.out, plan.version, report))
            if "wheel" not in plan.parts:
                wheel.unlink()
                made.remove(wheel)
    if "guest" in plan.parts:
        image_dir = plan.image_dir
        if image_dir is None:
            from moorage.vm.image import store  # noqa: PLC0415 - builds only when asked

            image_dir = store.ensure(plan.recipe, report)
        made.append(pack_guest(image_dir, plan.out, plan.recipe, plan.version, report))
    return made
