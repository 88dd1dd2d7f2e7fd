"""``moorage update``: a client of the agent's ``/v1/update`` routes, and its one
privileged step.

The agent downloads and verifies; installing the app's package needs the package
manager, so the CLI runs the command the agent prepared (``InstallCommand``) behind a
privilege prompt: ``sudo`` in a terminal, ``pkexec`` without one, nothing as root.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from datetime import datetime

import click

from moorage.api.client import AgentClient
from moorage.api.schema import InstallCommand, UpdateView
from moorage.cli.common import agent_for, console, friendly, machine_option
from moorage.errors import UpdateError


def show_view(view: UpdateView) -> None:
    offer = view.offer or {}
    guest = view.guest
    console.print(f"moorage:   {view.app_version} ({view.install_kind})")
    staged = f", staged {guest['staged']}" if guest.get("staged") else ""
    console.print(f"guest:     {guest.get('current')}{staged}")
    console.print(f"channel:   {view.settings.get('channel')}"
                  + ("" if view.settings.get("check") else " (automatic checks off)"))  # fmt: skip
    if view.last_check:
        when = datetime.fromtimestamp(view.last_check).strftime("%Y-%m-%d %H:%M")
        console.print(f"checked:   {when}" + (f": {view.last_error}" if view.last_error else ""))
    if guest.get("last_failure"):
        console.print(f"[yellow]rolled back:[/yellow] {guest['last_failure']}")
    version = offer.get("version")
    if version:
        parts = ", ".join(
            f"{p['what']} {p['version']}" + (" (downgrade)" if p["downgrade"] else "")
            for p in offer.get("parts", [])
        )
        skipped = " [dim](skipped)[/dim]" if offer.get("skipped") else ""
        console.print(f"[green]available:[/green] {parts}{skipped}")
        for note_version, notes in offer.get("notes", []):
            console.print(f"\n[bold]{note_version}[/bold]\n{notes.strip()}")
    elif offer:
        console.print(f"up to date (the channel's newest is {offer.get('newest') or 'none yet'})")
    for held in offer.get("held", []):
        console.print(f"[yellow]note:[/yellow] {held}")


def _privileged(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return argv
    if sys.stdin.isatty() and shutil.which("sudo"):
        return ["sudo", *argv]
    if shutil.which("pkexec"):
        return ["pkexec", *argv]
    raise UpdateError(
        "installing the package needs root, and neither sudo (in a terminal) nor pkexec is here",
        fix=f"run as root: {' '.join(argv)}",
    )


def _install(step: InstallCommand) -> None:
    argv = _privileged(step.argv) if step.privileged else step.argv
    console.print(f"installing moorage {step.version}: {' '.join(argv)}")
    if subprocess.run(argv, check=False).returncode != 0:
        raise UpdateError(
            f"installing moorage {step.version} failed; the installed version is unchanged",
            fix="see the package manager's message above",
        )
    console.print(
        f"[green]moorage {step.version} is installed.[/green] Machines keep their running "
        "host agent until `moorage restart`."
    )


def apply(client: AgentClient, *, yes: bool, downgrade: bool) -> None:
    # Only this command draws progress bars.
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TransferSpeedColumn,
    )

    view = client.update_check(downgrade=downgrade)
    show_view(view)
    offer = view.offer or {}
    if not offer.get("parts"):
        return
    if not yes and not click.confirm("\nDownload and install it?", default=False):
        raise click.Abort()
    accepted = client.update_apply(downgrade=downgrade)
    failed = None
    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as bars:  # fmt: skip
        tasks: dict[str, TaskID] = {}
        for event in client.follow(accepted):
            if event.kind == "progress" and event.total:
                what = event.message.split(":", 1)[0]
                if what not in tasks:
                    tasks[what] = bars.add_task(what, total=event.total)
                bars.update(tasks[what], completed=event.done or 0)
            elif event.kind == "progress":
                console.print(event.message)
            elif event.kind == "error" and event.op == "update":
                failed = event
    if failed is not None:
        raise UpdateError(failed.message, fix=failed.fix)
    view = client.update_view()
    if view.install is not None:
        _install(view.install)


def rollback(client: AgentClient, *, yes: bool) -> None:
    if not yes and not click.confirm("Go back to the previous version?", default=False):
        raise click.Abort()
    view = client.update_rollback()
    for message in view.messages:
        console.print(message)
    if view.install is not None:
        _install(view.install)


# ----- the commands -------------------------------------------------------------------


@click.group()
def update() -> None:
    """Updates of moorage and its guest image, signed (TUF), on stable or beta."""


@update.command("check")
@machine_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--downgrade", is_flag=True, help="Offer the channel's version even if older.")
@friendly
def update_check(machine: str, as_json: bool, downgrade: bool) -> None:
    """What runs, what the channel has, and what changed."""
    view = agent_for(machine).update_check(downgrade=downgrade)
    if as_json:
        console.print_json(data=dataclasses.asdict(view))
        return
    show_view(view)


@update.command("apply")
@machine_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--downgrade", is_flag=True, help="Go to the channel's version even if older.")
@friendly
def update_apply(machine: str, yes: bool, downgrade: bool) -> None:
    """Download, verify and install the update (the guest image at the next restart)."""
    apply(agent_for(machine), yes=yes, downgrade=downgrade)


@update.command("channel")
@machine_option
@click.argument("channel", type=click.Choice(["stable", "beta"]))
@friendly
def update_channel(machine: str, channel: str) -> None:
    """Follow stable or beta. Going to stable never downgrades by itself."""
    view = agent_for(machine).update_settings({"channel": channel})
    console.print(f"following {view.settings['channel']}; `moorage update check` looks now")


@update.command("set")
@machine_option
@click.argument("key")
@click.argument("value")
@friendly
def update_set(machine: str, key: str, value: str) -> None:
    """Set KEY of update.toml (url, channel, check, auto_install, root)."""
    parsed: object = {"true": True, "false": False}.get(value.lower(), value)
    agent_for(machine).update_settings({key: parsed})
    console.print(f"{key} = {parsed!r}")


@update.command("skip")
@machine_option
@click.argument("version", required=False)
@friendly
def update_skip(machine: str, version: str | None) -> None:
    """Do not announce VERSION (none: announce every version again)."""
    agent_for(machine).update_skip(version)
    console.print(f"skipping {version}" if version else "no version is skipped")


@update.command("rollback")
@machine_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def update_rollback(machine: str, yes: bool) -> None:
    """Go back to the previous guest image and app version."""
    rollback(agent_for(machine), yes=yes)
