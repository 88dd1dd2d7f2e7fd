"""``python -m moorage.desktop tray|dashboard [--machine NAME] [--page PAGE]``: what
``moorage tray`` and ``moorage dashboard`` run (the CLI never imports Qt: it hands
over to this process)."""

from __future__ import annotations

import argparse
import sys

from moorage.desktop.app import run
from moorage.paths import check_machine_name


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="moorage")
    parser.add_argument("command", choices=["tray", "dashboard"])
    parser.add_argument("-m", "--machine", default="default")
    parser.add_argument("--page", default=None)
    args = parser.parse_args(argv)
    return run(
        check_machine_name(args.machine), dashboard=args.command == "dashboard", page=args.page
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
