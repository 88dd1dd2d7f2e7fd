"""Start to ready, split by phase, against a bare baseline.

Baseline: the same kernel, initrd, root, data and config disks booted by one
plain `qemu-system-x86_64` command, ready when dockerd in the guest answers
`GET /_ping` (asked over ssh, polled every 0.2 s). moorage: `moorage start`
from stopped until "ready", which includes image verification, the driver,
the socket forward and the docker context. Both alternate on the same disks.
Goal: moorage / baseline <= 1.15.
Run: python bench/start_to_ready.py [rounds]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from common import HOME, NAME, ensure_machine, header, moorage, status

from moorage.agent.start import free_ports
from moorage.vm.driver import TCG_CPU_MODEL, guest_cmdline
from moorage.vm.image import store
from moorage.vm.spec import mac_for


def baseline(accel: str, cpus: int) -> float:
    image = store.image_path("debian")
    manifest = json.loads((image / "manifest.json").read_text())
    state = HOME / "data" / "machines" / NAME
    (port,) = free_ports(1)
    cmd = [
        "qemu-system-x86_64",
        "-machine",
        "q35",
        "-accel",
        accel,
        # The VM's own CPU model and count (under TCG: TCG_CPU_MODEL, TCG_VCPUS).
        "-cpu",
        TCG_CPU_MODEL if accel == "tcg" else "host",
        "-smp",
        str(cpus),
        "-m",
        "2048M",
        "-nodefaults",
        "-display",
        "none",
        "-kernel",
        str(image / "vmlinuz"),
        "-initrd",
        str(image / "initrd.img"),
        "-append",
        guest_cmdline(manifest["cmdline"], accel),  # the VM's own (under TCG: TCG_KERNEL_ARGS)
        "-serial",
        f"file:{HOME}/baseline-serial.log",
        "-object",
        "rng-random,id=rng0,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,rng=rng0",
        "-drive",
        f"if=none,id=d0,file={image / 'root.img'},format=raw,readonly=on",
        "-device",
        "virtio-blk-pci,drive=d0,serial=moorage-root",
        "-drive",
        f"if=none,id=d1,file={state / 'data.img'},format=raw",
        "-device",
        "virtio-blk-pci,drive=d1,serial=moorage-data",
        "-drive",
        f"if=none,id=d2,file={state / 'config.tar'},format=raw,readonly=on",
        "-device",
        "virtio-blk-pci,drive=d2,serial=moorage-config",
        "-netdev",
        f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={_mac()}",
    ]
    ssh = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(state / "ssh" / "id_ed25519"),
        "-p",
        str(port),
        "-o",
        f"UserKnownHostsFile={state / 'ssh' / 'known_hosts'}",
        "-o",
        f"HostKeyAlias=moorage-{NAME}",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=2",
        "root@127.0.0.1",
        "curl -sf --unix-socket /var/run/docker.sock http://d/_ping",
    ]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            r = subprocess.run(ssh, capture_output=True, text=True, check=False)
            if r.stdout.strip() == "OK":
                took = time.monotonic() - started
                break
            time.sleep(0.2)
        subprocess.run([*ssh[:-1], "busybox poweroff"], capture_output=True, check=False)
        proc.wait(60)
    finally:
        proc.kill()
        proc.wait()
    return took


def _mac() -> str:
    """The NIC must have the MAC in the machine's network plan, which the guest matches on."""
    return mac_for(NAME)


def ours() -> tuple[float, dict[str, float]]:
    moorage("stop")
    started = time.monotonic()
    moorage("start")
    took = time.monotonic() - started
    return took, dict(status()["phase_seconds"])  # type: ignore[arg-type]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    st = ensure_machine()
    accel = str(st["accel"])
    header(f"start to ready, {rounds} rounds alternating (moorage stop → start vs plain qemu)")
    mine: list[float] = []
    base: list[float] = []
    phases: list[dict[str, float]] = []
    for _ in range(rounds):
        moorage("stop")
        base.append(baseline(accel, int(str(st["cpus"]))))
        took, split = ours()
        mine.append(took)
        phases.append(split)
    for i, (m, b, p) in enumerate(zip(mine, base, phases, strict=True)):
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in p.items())
        print(
            f"round {i + 1}: moorage {m:6.1f} s ({parts}) | baseline {b:6.1f} s | ratio {m / b:4.2f}"
        )
    print(
        f"median ratio moorage/baseline: {sorted(m / b for m, b in zip(mine, base, strict=True))[len(mine) // 2]:4.2f} (goal <= 1.15)"
    )


if __name__ == "__main__":
    main()
