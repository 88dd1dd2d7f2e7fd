"""The host agent's idle cost: RSS and CPU over 60 s of a running, idle machine.

Also reports the ssh process that carries the Docker socket, which the agent
owns. Goal: agent <= 60 MB RSS and < 0.5 % of one core.
Run: python bench/agent_idle.py [seconds]
"""

from __future__ import annotations

import sys
import time

from common import HOME, NAME, cpu_seconds, ensure_machine, header, rss_mb


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    st = ensure_machine()
    header(f"host agent idle cost over {seconds:.0f} s")
    agent = int(st["agent_pid"])  # type: ignore[arg-type]
    ssh = int((HOME / "run" / NAME / "ssh.pid").read_text())
    time.sleep(5)  # let the start settle
    before = {p: cpu_seconds(p) for p in (agent, ssh)}
    time.sleep(seconds)
    for label, pid in (("agent", agent), ("ssh master", ssh)):
        used = cpu_seconds(pid) - before[pid]
        print(
            f"{label:12} RSS {rss_mb(pid):6.1f} MB  CPU {100 * used / seconds:5.2f} % of a core"
            + ("  (goal <= 60 MB, < 0.5 %)" if label == "agent" else "")
        )


if __name__ == "__main__":
    main()
