"""``python -m moorage.vm.image``: build or verify a guest image, without the host agent.

    python -m moorage.vm.image build [--recipe debian|alpine] [--force]
    python -m moorage.vm.image verify [--recipe R]

Building needs root (the root tree's files must be owned by root as it is made).
Run by a user, ``build`` re-runs itself under sudo with ``MOORAGE_CACHE`` pointing at
that user's cache, then gives the cache back to the user: the image lands where the
user's machines look for it. Progress is printed one line at a time, flushed, so a
caller reading the pipe (the CLI, the desktop app) sees each step as it happens; the
last line of a build is the image's folder.

Exit status: 0 done, 1 failed (the error and its fix on stderr), 130 interrupted; a
build under sudo exits with sudo's status.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from moorage.errors import HostError, MoorageError
from moorage.paths import cache_dir
from moorage.vm.image import manifest, store

PROGRESS = ("step", "image ready", "making")
"""The report lines worth a line of their own; the rest (every line of mmdebstrap's
output, download percentages) would drown them."""


def _say(line: str) -> None:
    print(line, flush=True)


def _report(line: str) -> None:
    if line.startswith(PROGRESS):
        _say(line)


def _exit_status(code: int) -> int:
    """``os.spawnvp``'s answer as an exit status: a child killed by signal N reads -N."""
    return 128 - code if code < 0 else code


def _build_with_sudo(recipe: str, force: bool) -> int:
    """Build as root into this user's cache, then hand the cache back to the user."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "moorage.vm.image", "build", "--recipe", recipe]
    if force:
        argv.append("--force")
    try:
        code = os.spawnvp(os.P_WAIT, "sudo", ["sudo", "env", f"MOORAGE_CACHE={cache}", *argv])
    except FileNotFoundError as exc:
        raise HostError(
            "building an image needs root, and sudo is not installed",
            fix="run `python -m moorage.vm.image build` as root",
        ) from exc
    if code == 0:
        os.spawnvp(
            os.P_WAIT, "sudo", ["sudo", "chown", "-R", f"{os.getuid()}:{os.getgid()}", str(cache)]
        )
    return _exit_status(code)


def build(recipe: str, *, force: bool = False) -> int:
    """Build (or find in the cache) the guest image of ``recipe``."""
    if os.getuid() != 0 and (force or not (store.image_path(recipe) / manifest.MANIFEST).exists()):
        return _build_with_sudo(recipe, force)
    _say(str(store.ensure(recipe, _report, force=force)))
    return 0


def verify(recipe: str) -> int:
    """Hash every file of the image and compare with its manifest."""
    m = manifest.verify(store.image_path(recipe), full=True)
    _say(f"image {m.recipe} {m.version}: all {len(m.files)} files match")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m moorage.vm.image", description="Build or verify a guest image."
    )
    sub = p.add_subparsers(dest="command", required=True)
    recipe_help = f"one of {', '.join(sorted(store.RECIPES))} (default {store.DEFAULT_RECIPE})"
    b = sub.add_parser("build", help="build (or find in the cache) a guest image")
    b.add_argument("--recipe", default=store.DEFAULT_RECIPE, help=recipe_help)
    b.add_argument("--force", action="store_true", help="build again even if cached")
    v = sub.add_parser("verify", help="hash every file of an image against its manifest")
    v.add_argument("--recipe", default=store.DEFAULT_RECIPE, help=recipe_help)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "build":
            return build(args.recipe, force=args.force)
        return verify(args.recipe)
    except MoorageError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
