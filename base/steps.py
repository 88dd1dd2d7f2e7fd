"""A chain of labelled steps, as colima's ``cli/chain.go``: each step announces its
phase, may be cancelled before it runs, and reports how long it took. Progress in the
CLI and the tray falls out of the labels; the steps themselves are idempotent, so a
start that finds part of the work done (a running VM to adopt) just goes on."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    phase: str
    """The phase this step belongs to (``image``, ``vm``, ...), as events carry it."""
    label: Callable[[], str]
    """What the step does, for a person; asked just before it runs."""
    run: Callable[[], None]


def run_chain(
    steps: Sequence[Step],
    *,
    check_cancel: Callable[[], None],
    announce: Callable[[Step, str], None],
    took: Callable[[Step, float], None],
) -> None:
    """Run ``steps`` in order. ``check_cancel`` raises to stop between (and, through
    the steps' own checks, inside) steps; an exception from a step ends the chain."""
    for step in steps:
        check_cancel()
        announce(step, step.label())
        began = time.monotonic()
        step.run()
        took(step, round(time.monotonic() - began, 2))
