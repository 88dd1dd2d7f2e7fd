"""Docker API round trip through the host socket against the guest's own socket.

The same client on both sides (curl, one connection kept alive, N requests),
so the ratio is the cost of moorage's path: host socket → ssh forward → guest.
Run: python bench/api_roundtrip.py [requests]
"""

from __future__ import annotations

import subprocess
import sys

from common import docker_socket, ensure_machine, env, guest, header, percentile

PATHS = ("/_ping", "/containers/json")


def curl_args(socket: str, path: str, n: int) -> list[str]:
    urls: list[str] = []
    for _ in range(n):
        urls += ["-o", "/dev/null", f"http://docker{path}"]  # -o applies to one URL each
    return ["curl", "-s", "-w", "%{time_total}\\n", "--unix-socket", socket, *urls]


def host_times(path: str, n: int) -> list[float]:
    out = subprocess.run(
        curl_args(str(docker_socket()), path, n),
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [float(x) * 1000 for x in out.split()]


def guest_times(path: str, n: int) -> list[float]:
    cmd = " ".join(f"'{a}'" for a in curl_args("/var/run/docker.sock", path, n))
    return [float(x) * 1000 for x in guest(cmd).split()]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    ensure_machine()
    header(f"Docker API round trip, {n} requests per side per round, 3 rounds alternating")
    for path in PATHS:
        host: list[float] = []
        inside: list[float] = []
        for _ in range(3):
            inside += guest_times(path, n)
            host += host_times(path, n)
        hp50, hp99 = percentile(host, 50), percentile(host, 99)
        gp50, gp99 = percentile(inside, 50), percentile(inside, 99)
        print(
            f"GET {path:18} host p50 {hp50:6.2f} ms p99 {hp99:6.2f} ms | "
            f"guest p50 {gp50:6.2f} ms p99 {gp99:6.2f} ms | "
            f"ratio p50 {hp50 / gp50:4.2f} p99 {hp99 / gp99:4.2f} (goal p50 <= 1.5)"
        )


if __name__ == "__main__":
    main()
