"""Swarm clusters: creation split by phase against its critical path, the drills
against the engine's own timers, and memory per node.

For each setting (``--fast-drills`` and the engine's defaults) one 3-manager,
2-worker cluster is made on the bench machine and measured, then removed:

- **create**: each phase's time from the agent's events, against the critical path
  measured in the same run: the slowest node's engine from its container's start to
  its ``/_ping``, plus ``swarm init``, plus the managers' joins (one at a time, as
  Raft wants) and the slowest worker's join. Goal: total <= 1.5 x critical path.
- **failover**: ``kill`` of the leader until another manager says it leads, polled
  every 0.2 s through the cluster's socket, three times (the median). Floor: the Raft
  election timeout, 10 ticks of 1 s (Raft draws each follower's timeout from 10 to 20
  ticks). Goal: within 3 s of it.
- **rescheduling**: ``kill`` of a worker running a 2-replica service until the swarm
  has given its task to another node (a task assigned elsewhere), and until that
  task runs. Floor: the node's Down time, 3 heartbeats (the orchestrator moves a down
  node's tasks at once: no restart delay applies). Goal: within 3 s of it.
- **drain**: ``drain`` of a node until both tasks run elsewhere (no floor: a task's
  stop and start).
- **wake**: ``moorage restart`` until the cluster has a leader and a service's port
  answers on the host, counted from the machine's ready. Floor: the slowest node's
  engine answering again (measured: dockerd's own start, no timer), plus the election
  timeout.
- **memory**: the VM's used memory (``free -m`` in the guest) before the cluster and
  with it idle, per node. Goal: under 150 MB a node.

Run: python bench/swarm.py [fast|default|both]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import HOME, NAME, busybox_image, ensure_machine, env, guest, header, moorage

from moorage.api.client import AgentClient
from moorage.docker_api import api_client

CLUSTER = "bench"
PORT = 18580


def used_mib() -> int:
    guest("sync; echo 1 > /proc/sys/vm/drop_caches")
    line = guest("free -m").splitlines()[1].split()
    return int(line[2])


def cluster_status() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(moorage("cluster", "status", CLUSTER, "--json").stdout)
    return data


def create(fast: bool) -> dict[str, float]:
    """Create the cluster through the API and time its phases from the events."""
    import os  # noqa: PLC0415

    os.environ["MOORAGE_HOME"] = str(HOME)
    client = AgentClient(NAME)
    accepted = client.cluster_create(CLUSTER, 3, 2, fast_drills=fast)
    began = time.time()
    phases: dict[str, float] = {}
    started: dict[str, float] = {}
    answered: dict[str, float] = {}
    joined: dict[str, float] = {}
    phase, phase_began = "", began
    for event in client.follow(accepted):
        if event.cluster != CLUSTER:
            continue
        if event.kind == "error":
            raise SystemExit(f"create failed: {event.message}")
        if event.kind == "phase":
            if phase:
                phases[phase] = event.time - phase_began
            phase, phase_began = event.phase or "?", event.time
        elif event.kind == "progress":
            node = event.message.split(":", 1)[0]
            if "container started" in event.message:
                started[node] = event.time
            elif "engine answers" in event.message:
                answered[node] = event.time
            elif "joined" in event.message or "initialised" in event.message:
                joined[node] = event.time
        elif event.kind == "done":
            phases[phase] = event.time - phase_began
    total = time.time() - began
    engines = max(answered[n] - started[n] for n in answered)
    critical = engines + phases["init"] + phases["managers"] + phases["workers"]
    return {"total": total, "critical": critical, "slowest_engine": engines, **phases}


def docker_cluster(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    context = cluster_status()["context"]
    e = {k: v for k, v in env().items() if k != "DOCKER_HOST"}
    return subprocess.run(["docker", "--context", context, *args], env=e, capture_output=True,
                          text=True, check=check)  # fmt: skip


def leader(socket: Path) -> str | None:
    try:
        client = api_client(socket, timeout=3)
        try:
            for n in client.nodes():
                if (n.get("ManagerStatus") or {}).get("Leader"):
                    return str(n["Description"]["Hostname"])
        finally:
            client.close()
    except Exception:
        return None
    return None


def pings(socket: Path) -> bool:
    try:
        client = api_client(socket, timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def until(what: Any, timeout: float = 300, every: float = 0.2) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if what():
            return time.monotonic() - began
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout}s")


def tasks(service: str) -> list[tuple[str, str]]:
    out = docker_cluster("service", "ps", service, "--filter", "desired-state=running",
                         "--format", "{{.Node}} {{.CurrentState}}", check=False).stdout  # fmt: skip
    return [(line.split()[0], line.split()[1]) for line in out.splitlines() if line.strip()]


def service(name: str, *args: str) -> None:
    docker_cluster("service", "create", "--detach", "--name", name, "--replicas", "2",
                   "--constraint", "node.role==worker", *args)  # fmt: skip
    until(lambda: sum(1 for _n, s in tasks(name) if s == "Running") == 2)


def http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3):
            return True
    except OSError as exc:
        return "404" in str(exc)


def run(fast: bool, image: str) -> dict[str, float]:
    before = used_mib()
    r = create(fast)
    st = cluster_status()
    socket = Path(st["socket"])
    heartbeat, election = float(st["heartbeat_s"]), int(st["election_tick"])
    moorage("cluster", "load", CLUSTER, image, "--quiet")
    time.sleep(30)
    r["mib_per_node"] = (used_mib() - before) / 5
    r["floor_down"], r["floor_election"] = 3 * heartbeat, float(election)

    failovers = []
    for _ in range(3):
        old = leader(socket)
        began = time.monotonic()
        moorage("cluster", "kill", CLUSTER, str(old))
        until(lambda old=old: (new := leader(socket)) is not None and new != old, 120)
        failovers.append(time.monotonic() - began)
        moorage("cluster", "heal", CLUSTER)
        until(lambda: all(n["state"] == "ready" for n in cluster_status()["nodes"]), 300, 1)
    r["failover"] = sorted(failovers)[1]
    r["failovers"] = failovers  # type: ignore[assignment]

    service("moving", image, "sleep", "100000")
    victim = tasks("moving")[0][0]
    began = time.monotonic()
    moorage("cluster", "kill", CLUSTER, victim)
    until(lambda: any(n != victim for n, _s in tasks("moving")) and len(tasks("moving")) == 2
          and all(n != victim for n, _s in tasks("moving")), 300)  # fmt: skip
    r["rescheduled"] = time.monotonic() - began
    until(lambda: all(s == "Running" for _n, s in tasks("moving")), 300)
    r["rescheduled_running"] = time.monotonic() - began
    docker_cluster("service", "rm", "moving")
    moorage("cluster", "heal", CLUSTER)
    until(lambda: all(n["state"] == "ready" for n in cluster_status()["nodes"]), 300, 1)

    service("drainme", image, "sleep", "100000")
    victim = tasks("drainme")[0][0]
    began = time.monotonic()
    moorage("cluster", "node", CLUSTER, victim, "drain")
    until(lambda: len(t := tasks("drainme")) == 2 and all(n != victim and s == "Running"
                                                          for n, s in t), 300)  # fmt: skip
    r["drain"] = time.monotonic() - began
    moorage("cluster", "node", CLUSTER, victim, "activate")
    docker_cluster("service", "rm", "drainme")

    docker_cluster("service", "create", "--detach", "--name", "web", "-p", f"{PORT}:80", image,
                   "httpd", "-f", "-p", "80", "-h", "/www")  # fmt: skip
    until(lambda: http_ok(PORT), 300)
    nodes = [Path(n["socket"]) for n in cluster_status()["nodes"]]
    moorage("restart")
    began = time.monotonic()
    until(lambda: all(pings(n) for n in nodes), 600, 0.5)
    r["engines_back"] = time.monotonic() - began
    until(lambda: leader(socket) is not None and http_ok(PORT), 600, 0.5)
    r["wake"] = time.monotonic() - began
    until(lambda: cluster_status()["operation"] is None, 600, 1)  # the start after the restart
    moorage("cluster", "rm", CLUSTER, "-y")
    return r


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    ensure_machine()
    header("swarm clusters: 3 managers, 2 workers")
    image = busybox_image()
    moorage("cluster", "rm", CLUSTER, "-y", check=False)
    for fast in {"fast": [True], "default": [False]}.get(which, [True, False]):
        r = run(fast, image)
        sys.stdout.flush()
        name = "--fast-drills" if fast else "defaults"
        print(f"\n## {name}")
        print(f"create {r['total']:.1f}s = " + ", ".join(
            f"{p} {r[p]:.1f}" for p in ("image", "network", "nodes", "engines", "init",
                                        "managers", "workers", "ready")))  # fmt: skip
        print(f"critical path {r['critical']:.1f}s (slowest engine {r['slowest_engine']:.1f}s "
              f"+ init + joins): ratio {r['total'] / r['critical']:.2f} (goal <= 1.5)")  # fmt: skip
        e, d = r["floor_election"], r["floor_down"]
        rounds = ", ".join(f"{f:.1f}" for f in r["failovers"])  # type: ignore[attr-defined]
        print(f"failover median {r['failover']:.1f}s ({rounds}), floor {e:.0f}s election: "
              f"+{r['failover'] - e:.1f}s (goal <= +3)")  # fmt: skip
        print(
            f"rescheduled {r['rescheduled']:.1f}s (running {r['rescheduled_running']:.1f}s), "
            f"floor {d:.0f}s (Down): +{r['rescheduled'] - d:.1f}s (goal <= +3)"
        )
        print(f"drain {r['drain']:.1f}s")
        w = r["engines_back"] + e
        print(
            f"wake after restart {r['wake']:.1f}s, floor {w:.1f}s (engines back "
            f"{r['engines_back']:.1f}s + election): +{r['wake'] - w:.1f}s (goal <= +3)"
        )
        print(f"memory {r['mib_per_node']:.0f} MiB of the VM per idle node (goal < 150)")


if __name__ == "__main__":
    main()
