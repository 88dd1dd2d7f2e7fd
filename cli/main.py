"""The ``moorage`` command: a thin client of the host agent.

Every command is a call of the agent's API through ``moorage.api.client`` (which
starts the agent when one is needed), or, for what must work with no agent (the list
of machines, the status and logs of a stopped machine), the client library's reading
of the machine's files. It imports nothing from ``vm/`` or ``engine/``: the
import-linter contracts in pyproject.toml hold it to that.
"""

from __future__ import annotations

import os
import sys

import click

from moorage import __version__
from moorage import config as config_mod
from moorage.api.client import AgentClient, machines
from moorage.api.schema import Operation
from moorage.cli.common import agent_for, console, friendly, machine_option, run_op
from moorage.cli.desktop import dashboard, tray
from moorage.cli.swarm import cluster, swarm
from moorage.cli.updates import update
from moorage.paths import MachinePaths, check_machine_name


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="moorage")
def main() -> None:
    """A local Linux VM running the real Docker engine, for the host's own docker CLI."""


@main.command()
@machine_option
@friendly
def start(machine: str) -> None:
    """Start the machine (idempotent): image, VM, kernel, engine, forwarders, ready."""
    name = check_machine_name(machine)
    path = MachinePaths(name).config_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config_mod.template(config_mod.HostFacts.read()))
    client = AgentClient(name)
    client.spawn()
    run_op(client, "start")
    status = client.status()
    if status.docker_context:
        console.print(
            f"  docker: [bold]docker --context {status.docker_context} ...[/bold], "
            f"or `moorage context use`, or `eval $(moorage docker-env)`"
        )
    if status.accel == "tcg":
        console.print("  [yellow]running under TCG emulation: expect it to be slow[/yellow]")


def _client_if_needed(name: str) -> AgentClient | None:
    """The machine's agent, started if a VM runs without one; None when nothing runs."""
    client = AgentClient(name)
    if client.liveness() != "running" and client.status_or_files().vm_pid is None:
        return None
    client.spawn()
    return client


@main.command()
@machine_option
@friendly
def stop(machine: str) -> None:
    """Stop the machine cleanly: containers get SIGTERM, the disk is unmounted."""
    name = check_machine_name(machine)
    client = _client_if_needed(name)
    if client is None:
        console.print(f"machine {name!r} is not running")
        return
    run_op(client, "stop")
    client.wait_gone()


@main.command()
@machine_option
@friendly
def restart(machine: str) -> None:
    """Stop, then start: picks up config changes."""
    client = agent_for(machine)
    run_op(client, "restart")


@main.command()
@machine_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def status(machine: str, as_json: bool) -> None:
    """State, accelerator, resources, engine version and socket path."""
    st = AgentClient(check_machine_name(machine)).status_or_files()
    if as_json:
        console.print_json(data=st.to_json())
        return
    colour = {"running": "green", "degraded": "yellow", "crashed": "red"}.get(st.state, "white")
    console.print(f"machine:   {st.machine}")
    console.print(
        f"state:     [{colour}]{st.state}[/{colour}]" + (f" ({st.phase})" if st.phase else "")
    )
    if st.driver:
        console.print(f"driver:    {st.driver}")
    if st.accel:
        console.print(f"accel:     {st.accel} ({st.accel_reason})")
    if st.cpus:
        console.print(
            f"resources: {st.cpus} CPU{'s' if st.cpus != 1 else ''}, {st.memory_gib:g} GiB "
            f"memory, {st.disk_gib} GiB disk"
        )
    if st.image:
        console.print(f"image:     {st.image}")
    if st.engine_version:
        console.print(f"engine:    docker {st.engine_version}")
    if st.docker_socket:
        console.print(f"socket:    {st.docker_socket}")
    if st.file_sharing:
        folders = ", ".join(st.shared_folders) or "none mounted"
        console.print(f"sharing:   {st.file_sharing}: {folders}")
    if st.ports:
        console.print(f"ports:     {', '.join(st.ports)}")
    for c in st.port_conflicts:
        console.print(f"[yellow]port:[/yellow]      {c}")
    for w in st.warnings:
        console.print(f"[yellow]warning:[/yellow]   {w}")
    if st.error:
        console.print(f"[red]problem:[/red]   {st.error}")


@main.command("ls")
@friendly
def ls() -> None:
    """Every machine and its state."""
    for name in machines():
        st = AgentClient(name).status_or_files()
        console.print(f"{name:20} {st.state}")


@main.command(context_settings={"ignore_unknown_options": True})
@machine_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@friendly
def shell(machine: str, command: tuple[str, ...]) -> None:
    """A root shell in the VM, or run COMMAND there."""
    argv = AgentClient(check_machine_name(machine)).shell().argv
    if sys.stdin.isatty():
        argv = [argv[0], "-t", *argv[1:]]
    os.execvp(argv[0], [*argv, *command])


@main.command()
@machine_option
@click.option("--engine", is_flag=True, help="dockerd's log from inside the VM.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=100, show_default=True, help="How many lines to show.")
@friendly
def logs(machine: str, engine: bool, follow: bool, lines: int) -> None:
    """The host agent's log and the VM console, or dockerd's log (--engine)."""
    client = AgentClient(check_machine_name(machine))
    if engine:
        for line in client.engine_log(lines, follow):
            click.echo(line)
        return
    present = [str(f) for f in client.local_logs()]
    if not present:
        console.print(f"no logs yet for machine {machine!r}")
        return
    os.execvp("tail", ["tail", "-n", str(lines), *(["-F"] if follow else []), *present])


def _confirm(what: str, yes: bool) -> None:
    if not yes and not click.confirm(what, default=False):
        raise click.Abort()


def _erase(machine: str, yes: bool, op: Operation, question: str) -> None:
    """``delete`` and ``reset``: ask, then let the agent stop the VM (even one whose
    agent was killed) before it removes anything."""
    name = check_machine_name(machine)
    _confirm(question.format(name=name), yes)
    client = AgentClient(name)
    client.spawn()
    run_op(client, op)
    client.wait_gone()


@main.command()
@machine_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def delete(machine: str, yes: bool) -> None:
    """Delete the machine: its VM, data disk (all images, containers, volumes) and config."""
    _erase(machine, yes, "delete",
           "Delete machine {name!r} with ALL its images, containers and volumes?")  # fmt: skip


@main.command()
@machine_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def reset(machine: str, yes: bool) -> None:
    """Erase the data disk (all images, containers, volumes); keep the config."""
    _erase(machine, yes, "reset", "Erase ALL images, containers and volumes of machine {name!r}?")


@main.group()
def context() -> None:
    """The docker CLI context of a machine."""


@context.command("use")
@machine_option
@friendly
def context_use(machine: str) -> None:
    """Make the machine's docker context the current one."""
    name = check_machine_name(machine)
    client = AgentClient(name)
    client.spawn()
    client.use_context()
    console.print(f"docker now talks to machine {name!r}")


@main.command("docker-env")
@machine_option
@friendly
def docker_env(machine: str) -> None:
    """Print DOCKER_HOST for the machine: eval "$(moorage docker-env)"."""
    name = check_machine_name(machine)
    click.echo(f"export DOCKER_HOST=unix://{MachinePaths(name).docker_socket}")


@main.group()
def image() -> None:
    """Guest OS images (``python -m moorage.vm.image``, which this runs)."""


@image.command("build")
@click.option("--recipe", default="debian", show_default=True, help="debian or alpine.")
@click.option("--force", is_flag=True, help="Build again even if cached.")
def image_build(recipe: str, force: bool) -> None:
    """Build (or find in the cache) the guest image of RECIPE."""
    argv = [sys.executable, "-m", "moorage.vm.image", "build", "--recipe", recipe]
    os.execv(sys.executable, [*argv, *(["--force"] if force else [])])


@image.command("verify")
@click.option("--recipe", default="debian", show_default=True)
def image_verify(recipe: str) -> None:
    """Hash every file of the image and compare with its manifest."""
    os.execv(sys.executable, [sys.executable, "-m", "moorage.vm.image", "verify", "--recipe",
                              recipe])  # fmt: skip


@main.command("config")
@machine_option
@friendly
def config_show(machine: str) -> None:
    """Show the config file's path and the values in effect."""
    client = agent_for(machine)
    view = client.config()
    console.print(f"# {view.path}")
    for key, value in view.values.items():
        console.print(f"{key} = {value!r}")


@main.command()
@machine_option
@click.option(
    "--kvm",
    "kvm_only",
    is_flag=True,
    help="Only probe KVM: exit 0 when a test boot runs under it, 1 when not.",
)
@friendly
def doctor(machine: str, kvm_only: bool) -> None:
    """Check the host: hypervisor, driver, KVM (with a real test boot), docker CLI."""
    client = agent_for(machine)
    report = client.doctor(kvm_only=kvm_only)
    if kvm_only:
        console.print(f"{report.accel}: {report.accel_reason}")
        sys.exit(0 if report.accel == "kvm" else 1)
    for check in report.checks:
        mark = "[green]ok[/green]" if check.ok else "[red]no[/red]"
        console.print(f"{check.name:8} {mark} {check.detail}")
        if check.fix and not check.ok:
            console.print(f"{'':8}    fix: {check.fix}")


@main.command()
@machine_option
@friendly
def diagnose(machine: str) -> None:
    """Write a diagnostics bundle (logs, status, engine, config, versions; secrets scrubbed)."""
    client = agent_for(machine)
    report = client.diagnostics()
    console.print(f"wrote {report.path} ({_size(report.size)})")
    console.print(f"  contents: {', '.join(report.contents)}")
    secrets = "secret" if report.scrubbed == 1 else "secrets"
    console.print(f"  scrubbed: {report.scrubbed} {secrets} (keys, tokens, passwords)")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1 << 20:
        return f"{n / 1024:.0f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


main.add_command(swarm)
main.add_command(cluster)
main.add_command(update)
main.add_command(tray)
main.add_command(dashboard)

if __name__ == "__main__":
    main()
