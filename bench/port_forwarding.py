"""Published ports: the host's 127.0.0.1 against the guest's own loopback, same container.

1. Throughput of a 1 GiB TCP transfer: the container sends 1 GiB on connect (dd, 1 MiB writes);
   the same client (busybox ``nc | wc -c``) reads it on the host and in the guest.
2. Requests/s of small HTTP requests with 64 concurrent clients: the same
   ``curl --parallel --parallel-max 64`` on the host and in the guest against
   busybox httpd in the container.

Rounds alternate host and guest. Goals (issue 3): throughput >= 0.7, requests/s >= 0.5.
Run: PATH=$PWD/.venv/bin:$PATH python bench/port_forwarding.py [rounds]
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import busybox_image, docker, ensure_machine, guest, header, median

GIB = 1 << 30
REQUESTS = 2000
SOURCE_PORT, HTTP_PORT = 19000, 19080


def _host_download() -> float:
    started = time.monotonic()
    out = subprocess.run(
        ["sh", "-c", f"/bin/busybox nc 127.0.0.1 {SOURCE_PORT} | wc -c"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    took = time.monotonic() - started
    assert int(out.stdout) == GIB, out.stdout
    return GIB / took / 1e6


def _guest_download() -> float:
    script = (
        f"s=$(date +%s.%N); n=$(busybox nc 127.0.0.1 {SOURCE_PORT} | wc -c); e=$(date +%s.%N); "
        'echo "$n $s $e"'
    )
    n, s, e = guest(script).split()
    assert int(n) == GIB, n
    return GIB / (float(e) - float(s)) / 1e6


def _curl(n: int) -> str:
    return (
        f"curl -s -Z --parallel-max 64 -o /dev/null -w '%{{http_code}}\\n' "
        f"'http://127.0.0.1:{HTTP_PORT}/index.html?[1-{n}]'"
    )


def _host_requests() -> float:
    started = time.monotonic()
    out = subprocess.run(["sh", "-c", _curl(REQUESTS)], capture_output=True, text=True, check=True)
    took = time.monotonic() - started
    assert out.stdout.split().count("200") == REQUESTS, out.stdout[-200:]
    return REQUESTS / took


def _guest_requests() -> float:
    script = f's=$(date +%s.%N); {_curl(REQUESTS)} | grep -c 200; e=$(date +%s.%N); echo "$s $e"'
    lines = guest(script).split()
    assert int(lines[0]) == REQUESTS, lines
    return REQUESTS / (float(lines[2]) - float(lines[1]))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    ensure_machine()
    header("port forwarding: host 127.0.0.1 vs guest loopback, same container")
    image = busybox_image()
    source = docker(
        "run", "-d", "-p", f"{SOURCE_PORT}:9000", image,
        "nc", "-ll", "-p", "9000", "-e", "dd", "if=/dev/zero", "bs=1M", f"count={GIB >> 20}",
    ).stdout.decode().strip()  # fmt: skip
    web = docker(
        "run", "-d", "-p", f"{HTTP_PORT}:80", image, "sh", "-c",
        "echo hello > /www/index.html && exec httpd -f -p 80 -h /www",
    ).stdout.decode().strip()  # fmt: skip
    try:
        time.sleep(5)  # the forwards follow within a second; let the first accept settle
        host_mb, guest_mb, host_rps, guest_rps = [], [], [], []
        for i in range(rounds):
            host_mb.append(_host_download())
            guest_mb.append(_guest_download())
            host_rps.append(_host_requests())
            guest_rps.append(_guest_requests())
            print(
                f"round {i + 1}: 1 GiB host {host_mb[-1]:.1f} MB/s, guest {guest_mb[-1]:.1f} MB/s;"
                f" http host {host_rps[-1]:.0f} req/s, guest {guest_rps[-1]:.0f} req/s",
                flush=True,
            )
        tput = median(host_mb) / median(guest_mb)
        rps = median(host_rps) / median(guest_rps)
        print(
            f"1 GiB TCP: host {median(host_mb):.1f} MB/s, guest {median(guest_mb):.1f} MB/s, "
            f"ratio {tput:.2f} (goal >= 0.7)"
        )
        print(
            f"HTTP, 64 clients, {REQUESTS} requests: host {median(host_rps):.0f} req/s, "
            f"guest {median(guest_rps):.0f} req/s, ratio {rps:.2f} (goal >= 0.5)"
        )
    finally:
        docker("rm", "-f", source, web)


if __name__ == "__main__":
    main()
