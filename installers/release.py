"""``scripts/release``: build a release, publish it on beta, promote it to stable, and
keep the update repository fresh. ``scripts/release --help`` says how.

Keys never enter the repository folder; ``--keys`` names a folder of their own (0700,
each key 0600). ``publish`` creates the repository and any missing key on first use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from moorage import __version__
from moorage.errors import MoorageError, UpdateError
from moorage.installers import build as build_mod
from moorage.installers.repository import ROLES, Keys, Repository, describe, dumps, files_of

EPILOG = """\
commands, in a release's order:
  build VERSION                 dist/VERSION/: wheel, .deb, guest image archive, notes.md
  publish VERSION --repo DIR --keys DIR
                                put dist/VERSION on beta (makes the repository and keys
                                the first time); the beta key signs it
  promote VERSION --repo DIR --keys DIR
                                the stable key signs the same bytes: stable clients get it
  refresh --repo DIR --keys DIR new snapshot and timestamp (run it daily from cron:
                                timestamps expire after 3 days, snapshots after 14)
  rotate ROLE --repo DIR --keys DIR
                                a new key for ROLE (root, targets, snapshot, timestamp,
                                beta, stable); the old one moves to KEYS/retired/
  show --repo DIR               versions, expiry dates and each channel's releases

Serve DIR with any static web server; clients read DIR/metadata/ and DIR/targets/.
The app ships DIR/metadata/1.root.json as its root of trust: build with --repo DIR.
Example cron line: 0 3 * * * scripts/release refresh --repo /srv/updates --keys /etc/moorage-keys
"""


def _say(line: str) -> None:
    print(line, flush=True)


def _repo(args: argparse.Namespace) -> Repository:
    return Repository(Path(args.repo), Keys(Path(args.keys)))


def cmd_build(args: argparse.Namespace) -> int:
    root = None
    if args.repo:
        root = Path(args.repo) / "metadata" / "1.root.json"
        if not root.is_file():
            raise UpdateError(f"no {root}", fix="publish a first release to create the repository")
    notes = Path(args.notes).read_text() if args.notes else ""
    plan = build_mod.BuildPlan(
        version=args.version,
        out=Path(args.dist) / args.version,
        root=root,
        url=args.url,
        image_dir=Path(args.image_dir) if args.image_dir else None,
        recipe=args.recipe,
        notes=notes,
        parts=tuple(args.only.split(",")) if args.only else ("wheel", "deb", "guest"),
    )
    for path in build_mod.build(plan, _say):
        _say(f"built {path} ({path.stat().st_size} bytes)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    repo = _repo(args)
    dist = Path(args.dist) / args.version
    if not dist.is_dir():
        raise UpdateError(f"no {dist}", fix=f"`scripts/release build {args.version}` first")
    if not repo.exists():
        repo.create()
        _say(f"created the update repository {repo.folder} (keys in {repo.keys.folder})")
    notes_file = dist / "notes.md"
    notes = notes_file.read_text() if notes_file.is_file() else ""
    release = repo.publish(args.version, files_of(dist), notes)
    _say(f"published {release.version} on beta: {', '.join(release.files)}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    release = _repo(args).promote(args.version)
    _say(f"promoted {release.version} to stable: {', '.join(release.files)}")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    repo = _repo(args)
    snapshot, timestamp = repo.refresh()
    _say(f"snapshot v{snapshot}, timestamp v{timestamp}")
    for role in repo.expiring(timedelta(days=30)):
        _say(f"warning: {role} metadata expires within 30 days; a publish or a rotate renews it")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    keyid = _repo(args).rotate(args.role)
    _say(f"{args.role} now signs with key {keyid[:16]}…")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _say(dumps(describe(Repository(Path(args.repo), Keys(Path("/nonexistent"))))))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/release",
        description="Build, sign and publish moorage releases (TUF, stable and beta channels).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"moorage {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def repo_args(sp: argparse.ArgumentParser, keys: bool = True) -> None:
        sp.add_argument("--repo", required=True, help="the update repository's folder")
        if keys:
            sp.add_argument(
                "--keys", required=True, help="the signing keys' folder (not in --repo)"
            )

    b = sub.add_parser("build", help="build dist/VERSION/")
    b.add_argument("version")
    b.add_argument("--dist", default="dist", help="where VERSION/ goes (default dist)")
    b.add_argument("--repo", help="ship this repository's 1.root.json as the root of trust")
    b.add_argument("--url", help="the update URL the build uses by default")
    b.add_argument("--notes", help="a file with the release notes (Markdown)")
    b.add_argument("--image-dir", help="a built guest image folder (default: the cache's)")
    b.add_argument("--recipe", default="debian", help="the guest image recipe (default debian)")
    b.add_argument("--only", help="comma-separated parts: wheel,deb,guest (default all)")
    b.set_defaults(func=cmd_build)

    for name, func, what in (("publish", cmd_publish, "put dist/VERSION on beta"),
                             ("promote", cmd_promote, "sign VERSION for stable")):  # fmt: skip
        sp = sub.add_parser(name, help=what)
        sp.add_argument("version")
        repo_args(sp)
        if name == "publish":
            sp.add_argument("--dist", default="dist", help="where VERSION/ is (default dist)")
        sp.set_defaults(func=func)

    r = sub.add_parser("refresh", help="re-sign snapshot and timestamp (cron)")
    repo_args(r)
    r.set_defaults(func=cmd_refresh)
    rot = sub.add_parser("rotate", help="give a role a new key")
    rot.add_argument("role", choices=ROLES)
    repo_args(rot)
    rot.set_defaults(func=cmd_rotate)
    s = sub.add_parser("show", help="what the repository holds")
    repo_args(s, keys=False)
    s.set_defaults(func=cmd_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MoorageError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
