"""``moorage swarm`` (the one-node swarm on the machine's engine) and ``moorage
cluster`` (local multi-node swarms whose nodes are containers in the machine's VM):
clients of the agent's ``/v1/swarm`` and ``/v1/clusters`` routes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from moorage.api.schema import ClusterStatus, NodeInfo
from moorage.cli.common import agent_for, console, err, follow, friendly, machine_option

# ----- the one-node swarm -------------------------------------------------------------


@click.group()
def swarm() -> None:
    """The machine's own engine as a one-node swarm."""


@swarm.command("init")
@machine_option
@friendly
def swarm_init(machine: str) -> None:
    """Make the machine's engine a swarm manager of one (services' ports reach localhost)."""
    info = agent_for(machine).swarm("init")
    console.print(f"swarm {info.state}: node {info.node_id} at {info.address}")
    console.print("  try: docker service create -p 8080:80 --name web IMAGE")


@swarm.command("leave")
@machine_option
@click.option("--force", is_flag=True, help="Leave even though it is the last manager.")
@friendly
def swarm_leave(machine: str, force: bool) -> None:
    """Leave the one-node swarm (its services go)."""
    info = agent_for(machine).swarm("leave", force=force)
    console.print(f"swarm {info.state}")


@swarm.command("status")
@machine_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def swarm_status(machine: str, as_json: bool) -> None:
    """Whether the machine's engine is in a swarm, and its size."""
    info = agent_for(machine).swarm()
    if as_json:
        console.print_json(data=info.__dict__)
        return
    console.print(f"swarm:    {info.state}")
    if info.node_id:
        console.print(f"node:     {info.node_id} at {info.address}")
        console.print(f"managers: {info.managers}, nodes: {info.nodes}, services: {info.services}")
    if info.error:
        console.print(f"[red]problem:[/red]  {info.error}")


# ----- clusters --------------------------------------------------------------------------


@click.group()
def cluster() -> None:
    """Local multi-node swarms in the machine's VM, and drills to break them."""


@cluster.command("create")
@machine_option
@click.argument("name")
@click.option("--managers", default=3, show_default=True, help="Manager nodes (odd keeps quorum).")
@click.option("--workers", default=2, show_default=True, help="Worker nodes.")
@click.option(
    "--fast-drills",
    is_flag=True,
    help="Short dispatcher heartbeats: a killed node is Down in seconds, not 15 s.",
)
@friendly
def cluster_create(machine: str, name: str, managers: int, workers: int, fast_drills: bool) -> None:
    """Create cluster NAME: nodes NAME-m1…, NAME-w1…, its own network and docker context."""
    client = agent_for(machine)
    follow(client, client.cluster_create(name, managers, workers, fast_drills=fast_drills))


@cluster.command("ls")
@machine_option
@friendly
def cluster_ls(machine: str) -> None:
    """Every cluster of the machine."""
    found = agent_for(machine).clusters().clusters
    if not found:
        console.print("no clusters: `moorage cluster create NAME` makes one")
    for c in found:
        managers = sum(1 for n in c.nodes if n.role == "manager")
        console.print(
            f"{c.name:12} {c.state:10} {managers} managers, {len(c.nodes) - managers} workers"
            f"  {c.context or ''}"
        )


def _table(nodes: list[NodeInfo]) -> None:
    rows = [("NODE", "ROLE", "STATE", "AVAILABILITY", "MANAGER", "ENGINE", "ADDRESS", "DRILL")]
    for n in nodes:
        condition = "stopped" if n.stopped else n.container
        rows.append((
            n.name,
            n.role,
            f"{n.state or '?'} ({condition})" if condition != "running" else (n.state or "?"),
            n.availability or "",
            "leader" if n.leader else (n.manager or ""),
            (n.engine_version or "").split("+")[0],
            n.address,
            n.drill or "",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        console.print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _show_status(c: ClusterStatus) -> None:
    colour = {"running": "green", "degraded": "yellow", "no-quorum": "red"}.get(c.state, "white")
    console.print(f"cluster:  {c.name}")
    console.print(
        f"state:    [{colour}]{c.state}[/{colour}]" + (f" ({c.operation})" if c.operation else "")
    )
    if c.context:
        console.print(f"context:  {c.context}  (docker --context {c.context} service ls)")
    console.print(f"socket:   {c.socket}")
    console.print(
        f"timers:   heartbeat {c.heartbeat_s:g}s (Down after {c.down_after_s:g}s), Raft election "
        f"{c.election_tick} ticks of 1s" + (", fast drills" if c.fast_drills else "")
    )
    if c.ports:
        console.print(f"ports:    {', '.join(c.ports)}")
    for conflict in c.port_conflicts:
        console.print(f"[yellow]port:[/yellow]     {conflict}")
    if c.problem:
        console.print(f"[red]problem:[/red]  {c.problem}")
    if c.fix:
        console.print(f"fix:      {c.fix}")
    console.print("")
    _table(c.nodes)


@cluster.command("status")
@machine_option
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def cluster_status(machine: str, name: str, as_json: bool) -> None:
    """The cluster's state, quorum, context, ports and nodes."""
    c = agent_for(machine).cluster(name)
    if as_json:
        console.print_json(data=c.to_json())
    else:
        _show_status(c)


@cluster.command("nodes")
@machine_option
@click.argument("name")
@friendly
def cluster_nodes(machine: str, name: str) -> None:
    """Each node's role, state, availability, leader and reachability, engine and address."""
    _table(agent_for(machine).cluster(name).nodes)


def _op(op: str, help_: str) -> None:
    @cluster.command(op, help=help_)
    @machine_option
    @click.argument("name")
    @friendly
    def command(machine: str, name: str) -> None:
        client = agent_for(machine)
        follow(client, client.cluster_request(name, op))


_op("start", "Start every node of the cluster.")
_op("stop", "Stop every node (workers first); `cluster start` brings it back.")
_op("heal", "Undo the drills: unfreeze, reconnect, start killed nodes.")
_op(
    "recover",
    "After lost quorum: a new cluster from a surviving manager (--force-new-cluster), "
    "keeping its services; the other managers join again.",
)


@cluster.command("rm")
@machine_option
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def cluster_rm(machine: str, name: str, yes: bool) -> None:
    """Remove the cluster: its nodes, their data, its network and context."""
    if not yes and not click.confirm(f"Remove cluster {name!r} and all its data?", default=False):
        raise click.Abort()
    client = agent_for(machine)
    follow(client, client.cluster_request(name, "rm"))


@cluster.command("add")
@machine_option
@click.argument("name")
@click.option("--manager", "role", flag_value="manager", help="Add a manager.")
@click.option("--worker", "role", flag_value="worker", default=True, help="Add a worker.")
@friendly
def cluster_add(machine: str, name: str, role: str) -> None:
    """Add a node to the cluster."""
    client = agent_for(machine)
    follow(client, client.cluster_add(name, role))


NODE_ACTIONS = ("drain", "pause", "activate", "promote", "demote", "stop", "start", "rm")


@cluster.command("node")
@machine_option
@click.argument("name")
@click.argument("node")
@click.argument("action", type=click.Choice(NODE_ACTIONS))
@friendly
def cluster_node(machine: str, name: str, node: str, action: str) -> None:
    """Act on NODE: the swarm's availability and role, or its container."""
    _table(agent_for(machine).node_action(name, node, action).nodes)


def _drill(action: str, help_: str) -> None:
    @cluster.command(action, help=help_)
    @machine_option
    @click.argument("name")
    @click.argument("node")
    @friendly
    def command(machine: str, name: str, node: str) -> None:
        _table(agent_for(machine).node_action(name, node, action).nodes)


_drill("kill", "Drill: cut NODE's power (its container is killed).")
_drill("freeze", "Drill: hang NODE (its processes are paused; heartbeats stop).")
_drill("partition", "Drill: pull NODE's cable (off the cluster network, still running).")


@cluster.command("load")
@machine_option
@click.argument("name")
@click.argument("images", nargs=-1, required=True)
@click.option("-q", "--quiet", is_flag=True, help="Print only the references to use, one a line.")
@friendly
def cluster_load(machine: str, name: str, images: tuple[str, ...], quiet: bool) -> None:
    """Copy IMAGES from the machine's engine into every node (no registry needed)."""
    client = agent_for(machine)
    accepted = client.cluster_load(name, list(images))
    if quiet:
        for event in client.follow(accepted):
            if event.kind == "error" and event.cluster == name:
                err.print(f"[red]error:[/red] {event.message}")
                sys.exit(1)
        for ref in accepted.refs:
            click.echo(ref)
        return
    follow(client, accepted)
    console.print("  services use: " + " ".join(accepted.refs))


@cluster.command("unlock")
@machine_option
@click.argument("name")
@click.argument("node", required=False)
@click.option(
    "--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the unlock key from this file (else it is asked for, not echoed).",
)  # fmt: skip
@friendly
def cluster_unlock(machine: str, name: str, node: str | None, key_file: Path | None) -> None:
    """Unlock autolocked managers with the key `docker swarm unlock-key` printed."""
    if key_file is not None:
        key = key_file.read_text().strip()
    elif not sys.stdin.isatty():
        key = sys.stdin.readline().strip()
    else:
        key = click.prompt("unlock key", hide_input=True)
    _table(agent_for(machine).cluster_unlock(name, key, node).nodes)
