"""The ``moorage`` command: a thin client of the host agent.

It never drives a hypervisor itself. ``start`` launches the machine's agent
if needed and follows its events; the rest ask the agent, or read the
machine's files when no agent runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from moorage import __version__
from moorage import config as config_mod
from moorage.api.client import AgentClient
from moorage.api.schema import Event, Status
from moorage.errors import AgentError, MoorageError
from moorage.paths import MachinePaths, check_machine_name

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="moorage")
def main() -> None:
    """A local Linux VM running the real Docker engine, for the host's own docker CLI."""


def _follow(client: AgentClient, since: int, done: Callable[[Event], bool]) -> bool:
    """Print the agent's events after ``since`` until ``done`` says so (True), an error
    event arrives (False), or the agent goes away (True: it exits only after a stop)."""
    started = time.monotonic()
    with console.status("", spinner="dots") as spinner:
        for event in client.events(since):
            elapsed = f"[dim]{time.monotonic() - started:6.1f}s[/dim]"
            if event.kind == "phase":
                console.print(f"{elapsed} [bold]{event.phase}[/bold]: {event.message}")
                spinner.update(event.message)
            elif event.kind == "progress":
                spinner.update(f"{event.phase or ''}: {event.message[:100]}")
                # An image build says hundreds of lines: show its steps, spin the rest.
                if event.phase != "image" or event.message.startswith(("step", "image ready")):
                    console.print(f"{elapsed}   [dim]{event.message[:160]}[/dim]")
            elif event.kind == "warning":
                console.print(f"{elapsed} [yellow]warning:[/yellow] {event.message}")
            elif event.kind == "error":
                console.print(f"{elapsed} [red]error:[/red] {event.message}")
                return False
            elif event.kind == "ready":
                console.print(f"{elapsed} [green]{event.message}[/green]")
            if done(event):
                return True
    return True


def _check_config(name: str) -> None:
    paths = MachinePaths(name)
    config_mod.load(paths.config_file, config_mod.HostFacts.read(paths.data_disk))


def _ensure_config_file(name: str) -> None:
    path = MachinePaths(name).config_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config_mod.template(config_mod.HostFacts.read()))


@main.command()
@machine_option
@friendly
def start(machine: str) -> None:
    """Start the machine (idempotent): image, VM, kernel, engine, forwarders, ready."""
    name = check_machine_name(machine)
    _ensure_config_file(name)
    _check_config(name)
    client = AgentClient(name)
    client.spawn()
    since = client.start()
    ok = _follow(client, since, lambda e: e.kind == "ready")
    if not ok:
        sys.exit(1)
    status = client.status()
    from moorage.engine.context import context_name  # noqa: PLC0415

    console.print(
        f"  docker: [bold]docker --context {context_name(name)} ...[/bold], "
        f"or `moorage context use`, or `eval $(moorage docker-env)`"
    )
    if status.accel == "tcg":
        console.print("  [yellow]running under TCG emulation: expect it to be slow[/yellow]")


@main.command()
@machine_option
@friendly
def stop(machine: str) -> None:
    """Stop the machine cleanly: containers get SIGTERM, the disk is unmounted."""
    client = AgentClient(check_machine_name(machine))
    if not client.alive():
        console.print(f"machine {machine!r} is not running")
        return
    since = client.stop()
    _follow(client, since, lambda e: e.kind == "state" and e.state == "stopped")
    client.wait_gone()
    console.print("stopped")


@main.command()
@machine_option
@click.pass_context
def restart(ctx: click.Context, machine: str) -> None:
    """Stop, then start: picks up config changes."""
    ctx.invoke(stop, machine=machine)
    ctx.invoke(start, machine=machine)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@main.command()
@machine_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def status(machine: str, as_json: bool) -> None:
    """State, accelerator, resources, engine version and socket path."""
    name = check_machine_name(machine)
    client = AgentClient(name)
    try:
        st = client.status()
    except AgentError:
        st = Status(machine=name, state="stopped")
        runtime = MachinePaths(name).ports_file
        vm_pid = None
        if runtime.exists():
            try:
                vm_pid = json.loads(runtime.read_text()).get("vm_pid")
            except ValueError:
                vm_pid = None
        if _pid_alive(vm_pid):
            st.vm_pid = vm_pid
            st.error = (
                f"the host agent is not running, but the VM is (pid {vm_pid}); "
                "`moorage start` adopts it"
            )
        else:
            st.agent_pid = None
    if as_json:
        console.print_json(json.dumps(st.to_json()))
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
            f"resources: {st.cpus} CPU{'s' if st.cpus != 1 else ''}, {st.memory_gib:g} GiB memory, {st.disk_gib} GiB disk"
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


@main.command(context_settings={"ignore_unknown_options": True})
@machine_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@friendly
def shell(machine: str, command: tuple[str, ...]) -> None:
    """A root shell in the VM, or run COMMAND there."""
    from moorage.engine.ssh import GuestAddress, openssh_args  # noqa: PLC0415

    name = check_machine_name(machine)
    st = AgentClient(name).status()
    if st.ssh_port is None or st.state not in ("running", "degraded"):
        raise AgentError(f"machine {name!r} is {st.state}", fix="`moorage start`")
    paths = MachinePaths(name)
    addr = GuestAddress(name, st.ssh_port, paths.ssh_key, paths.known_hosts)
    tty = ["-t"] if sys.stdin.isatty() else []
    argv = ["ssh", *tty, *openssh_args(addr), *command]
    os.execvp("ssh", argv)


@main.command()
@machine_option
@click.option("--engine", is_flag=True, help="dockerd's log from inside the VM.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=100, show_default=True, help="How many lines to show.")
@friendly
def logs(machine: str, engine: bool, follow: bool, lines: int) -> None:
    """The host agent's log and the VM console, or dockerd's log (--engine)."""
    name = check_machine_name(machine)
    paths = MachinePaths(name)
    if engine:
        tail = f"tail -n {lines} {'-F' if follow else ''} /var/log/dockerd.log"
        shell.callback(machine=name, command=(tail,))  # type: ignore[misc]
        return
    files = [paths.agent_log, paths.serial_log]
    present = [str(f) for f in files if f.exists()]
    if not present:
        console.print(f"no logs yet for machine {name!r}")
        return
    os.execvp("tail", ["tail", "-n", str(lines), *(["-F"] if follow else []), *present])


def _confirm(what: str, yes: bool) -> None:
    if not yes and not click.confirm(what, default=False):
        raise click.Abort()


@main.command()
@machine_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def delete(machine: str, yes: bool) -> None:
    """Delete the machine: its VM, data disk (all images, containers, volumes) and config."""
    from moorage.engine import context  # noqa: PLC0415

    name = check_machine_name(machine)
    paths = MachinePaths(name)
    _confirm(f"Delete machine {name!r} with ALL its images, containers and volumes?", yes)
    _stop_quietly(name)
    for folder in (paths.state, paths.run, paths.config_file.parent):
        shutil.rmtree(folder, ignore_errors=True)
    context.remove(name)
    console.print(f"deleted machine {name!r}")


@main.command()
@machine_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def reset(machine: str, yes: bool) -> None:
    """Erase the data disk (all images, containers, volumes); keep the config."""
    name = check_machine_name(machine)
    paths = MachinePaths(name)
    _confirm(f"Erase ALL images, containers and volumes of machine {name!r}?", yes)
    _stop_quietly(name)
    paths.data_disk.unlink(missing_ok=True)
    console.print(f"machine {name!r} is reset; `moorage start` boots it with an empty disk")


def _stop_quietly(name: str) -> None:
    client = AgentClient(name)
    if client.alive():
        client.stop()
        client.wait_gone(120)


@main.group()
def context() -> None:
    """The docker CLI context of a machine."""


@context.command("use")
@machine_option
@friendly
def context_use(machine: str) -> None:
    """Make the machine's docker context the current one."""
    from moorage.engine import context as ctx  # noqa: PLC0415

    name = check_machine_name(machine)
    ctx.ensure(name, MachinePaths(name).docker_socket)
    ctx.use(name)
    console.print(f"docker now talks to machine {name!r} (context {ctx.context_name(name)!r})")


@main.command("docker-env")
@machine_option
@friendly
def docker_env(machine: str) -> None:
    """Print DOCKER_HOST for the machine: eval "$(moorage docker-env)"."""
    name = check_machine_name(machine)
    click.echo(f"export DOCKER_HOST=unix://{MachinePaths(name).docker_socket}")


@main.group()
def image() -> None:
    """Guest OS images."""


@image.command("build")
@click.option("--recipe", default="debian", show_default=True, help="debian or alpine.")
@click.option("--force", is_flag=True, help="Build again even if cached.")
@friendly
def image_build(recipe: str, force: bool) -> None:
    """Build (or find in the cache) the guest image of RECIPE."""
    from moorage.paths import cache_dir  # noqa: PLC0415
    from moorage.vm.image import store  # noqa: PLC0415

    if os.getuid() != 0 and (force or not (store.image_path(recipe) / "manifest.json").exists()):
        # The root tree must be owned by root while it is made: build under sudo into
        # this user's cache, then hand the result back to the user.
        cache = cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "moorage.cli", "image", "build", "--recipe", recipe]
        env = [f"MOORAGE_CACHE={cache}"]
        code = os.spawnvp(
            os.P_WAIT, "sudo", ["sudo", "env", *env, *argv, *(["--force"] if force else [])]
        )
        if code == 0:
            os.spawnvp(
                os.P_WAIT,
                "sudo",
                ["sudo", "chown", "-R", f"{os.getuid()}:{os.getgid()}", str(cache)],
            )
        sys.exit(code)
    with console.status("building", spinner="dots") as spinner:

        def report(line: str) -> None:
            spinner.update(line[:120])
            if line.startswith(("step", "image ready", "making")):
                console.print(line)

        path = store.ensure(recipe, report, force=force)
    console.print(str(path))


@image.command("verify")
@click.option("--recipe", default="debian", show_default=True)
@friendly
def image_verify(recipe: str) -> None:
    """Hash every file of the image and compare with its manifest."""
    from moorage.vm.image import manifest, store  # noqa: PLC0415

    m = manifest.verify(store.image_path(recipe), full=True)
    console.print(f"image {m.recipe} {m.version}: all {len(m.files)} files match")


@main.command("config")
@machine_option
@friendly
def config_show(machine: str) -> None:
    """Show the config file's path and the values in effect."""
    name = check_machine_name(machine)
    paths = MachinePaths(name)
    cfg = config_mod.load(paths.config_file, config_mod.HostFacts.read(paths.data_disk))
    console.print(f"# {paths.config_file}")
    for key, value in cfg.__dict__.items():
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
    from moorage.engine import context as ctx  # noqa: PLC0415
    from moorage.vm import accel, drivers  # noqa: PLC0415
    from moorage.vm.image import manifest, store  # noqa: PLC0415

    name = check_machine_name(machine)
    qemu = accel.find_qemu()
    kernel = None
    try:
        image_dir = store.image_path(store.DEFAULT_RECIPE)
        kernel = image_dir / manifest.load(image_dir).kernel
    except MoorageError:
        pass
    if qemu is None or kernel is None:
        choice = accel.AccelChoice("tcg", "no QEMU or no guest image yet to test-boot")
    else:
        choice = accel.probe_kvm(qemu, kernel)
    if kvm_only:
        console.print(f"{choice.accel}: {choice.reason}")
        sys.exit(0 if choice.accel == "kvm" else 1)
    ok = "[green]ok[/green]"
    console.print(f"qemu:    {qemu or '[red]missing[/red] (sudo apt-get install qemu-system-x86)'}")
    console.print(f"kvm:     {choice.accel} ({choice.reason})")
    cfg = config_mod.load(MachinePaths(name).config_file, config_mod.HostFacts.read())
    try:
        drivers.get(cfg.driver).check_host()
        console.print(f"driver:  {cfg.driver} {ok}")
    except MoorageError as exc:
        console.print(f"driver:  {cfg.driver} [red]{exc}[/red]")
    console.print(
        f"docker:  {'CLI found' if ctx.available() else '[yellow]no docker CLI on PATH[/yellow]'}"
    )
    free = shutil.disk_usage(Path.home()).free
    console.print(f"disk:    {free / (1 << 30):.0f} GiB free")


if __name__ == "__main__":
    main()
