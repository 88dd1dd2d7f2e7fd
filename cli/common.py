"""What every ``moorage`` command shares: the consoles, errors shown as their message
and fix, the ``--machine`` option, and following an operation's events."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from moorage.api.client import AgentClient
from moorage.api.schema import Accepted, Event, Operation
from moorage.errors import MoorageError
from moorage.paths import check_machine_name

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Show a MoorageError as its message and exit 1: people get the fix, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MoorageError as exc:
            err.print(f"[red]error:[/red] {exc}")
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def machine_option(fn: F) -> F:
    return click.option(
        "-m",
        "--machine",
        default=lambda: os.environ.get("MOORAGE_MACHINE", "default"),
        show_default="default",
        help="Which machine (profile).",
    )(fn)


def agent_for(machine: str) -> AgentClient:
    """A client of ``machine``'s agent, which is started if it does not run."""
    client = AgentClient(check_machine_name(machine))
    client.spawn()
    return client


def show(event: Event, elapsed: str, spinner: Any) -> None:
    if event.kind == "phase":
        console.print(f"{elapsed} [bold]{event.phase}[/bold]: {event.message}")
        spinner.update(event.message)
    elif event.kind == "progress":
        spinner.update(f"{event.phase or ''}: {event.message[:100]}")
        # An image build says hundreds of lines: show its steps, spin the rest.
        if event.phase != "image" or event.message.startswith(("step", "image ready")):
            console.print(f"{elapsed}   [dim]{event.message[:160]}[/dim]")
    elif event.kind == "warning" or (event.kind == "forward" and event.change == "conflict"):
        console.print(f"{elapsed} [yellow]warning:[/yellow] {event.message}")
    elif event.kind == "error":
        console.print(f"{elapsed} [red]error:[/red] {event.message}")
        if event.fix:
            console.print(f"{' ' * len('  0.0s')}   fix: {event.fix}")
    elif event.kind in ("ready", "done"):
        console.print(f"{elapsed} [green]{event.message}[/green]")


def run_op(client: AgentClient, op: Operation) -> None:
    """Ask for machine operation ``op`` and print its events until it ends."""
    follow(client, client.request(op))


def follow(client: AgentClient, accepted: Accepted) -> None:
    """Print the events of the operation ``accepted`` answered for until it ends (a
    cluster's: only that cluster's); exit 1 if it failed."""
    started = time.monotonic()
    failed = False
    with console.status("", spinner="dots") as spinner:
        for event in client.follow(accepted):
            if accepted.cluster is not None and event.cluster != accepted.cluster:
                continue
            show(event, f"[dim]{time.monotonic() - started:6.1f}s[/dim]", spinner)
            failed = event.kind == "error" and event.op == accepted.op
    if failed:
        sys.exit(1)
