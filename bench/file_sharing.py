"""Shared folders against the guest's own disk, the same compiled program on both.

For the mechanism asked for (the default's, virtiofs here; sshfs too), inside the guest:
1. sequential write (fsync) and read (after dropping the guest's caches) of 1 GiB;
2. 10,000 files of 4 KiB created and written, stat'ed, deleted;
3. an lstat walk of a 50,000-file tree (what `git status` does), guest caches dropped.

Ratios are the guest disk's time over the share's (1.0 = as fast as the guest's disk).
Goals (issue 3): sequential >= 0.7, small files and tree walk >= 0.3.
Run: PATH=$PWD/.venv/bin:$PATH python bench/file_sharing.py [rounds] [tree files] [mechanism]
(mechanism: the machine's file_sharing setting; auto, the default, picks virtiofs here)
The guest caches what it can (virtiofs cache=auto) within the inode budget that
virtiofsd's descriptor limit allows (vm/virtiofs.py); the budget is printed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from common import SHARE, ensure_machine, guest, header, median

GUEST_DISK = "/mnt/data/moorage-bench"
SMALL_KEYS = ("small_create", "small_stat", "small_delete")
SEQ_MIB, SMALL, TREE = 1024, 10_000, 50_000


def run(binary: Path, *args: str) -> dict[str, float]:
    out = guest(" ".join([str(binary), *args]), timeout=1800)
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    tree = int(sys.argv[2]) if len(sys.argv) > 2 else TREE
    mechanism = sys.argv[3] if len(sys.argv) > 3 else "auto"
    st = ensure_machine(file_sharing=mechanism)
    header("file sharing: shared folder vs the guest's own disk")
    budget = guest("grep VIRTIOFS_INODES /run/moorage/machine.env || true").strip()
    print(f"# mechanism: {st.get('file_sharing')} ({budget or 'no inode budget'}); "
          f"share {SHARE}; guest disk {GUEST_DISK}")  # fmt: skip
    binary = SHARE / "fsbench"
    subprocess.run(
        ["gcc", "-O2", "-static", "-o", str(binary), str(Path(__file__).with_name("fsbench.c"))],
        check=True,
    )
    targets = {"share": str(SHARE / "work"), "disk": GUEST_DISK}
    shutil.rmtree(SHARE / "work", ignore_errors=True)
    (SHARE / "work").mkdir()
    guest(f"rm -rf {GUEST_DISK}; mkdir -p {GUEST_DISK}")
    results: dict[str, dict[str, list[float]]] = {t: {} for t in targets}
    # The trees are made where making them is fast (it is not what is measured): the
    # share's on the host, with the same program.
    subprocess.run([str(binary), "tree", f"{targets['share']}/tree", str(tree)], check=True)
    run(binary, "tree", f"{targets['disk']}/tree", str(tree))
    for i in range(rounds):
        for name, path in targets.items():
            timings = run(binary, "seq", path, str(SEQ_MIB))
            timings |= run(binary, "small", path, str(SMALL))
            guest("sync; echo 3 > /proc/sys/vm/drop_caches")
            timings |= run(binary, "walk", f"{path}/tree")
            for key, value in timings.items():
                results[name].setdefault(key, []).append(value)
            shown = ", ".join(f"{k} {v:.2f}s" for k, v in timings.items() if k != "walk_entries")
            print(f"round {i + 1} {name}: {shown}", flush=True)
    guest(f"rm -rf {GUEST_DISK}")
    shutil.rmtree(SHARE / "work")  # on the host: through the share it takes minutes

    def ratio(*keys: str) -> tuple[float, float, float]:
        share = sum(median(results["share"][k]) for k in keys)
        disk = sum(median(results["disk"][k]) for k in keys)
        return share, disk, disk / share

    rows = [
        ("sequential write 1 GiB", ("seq_write",), 0.7),
        ("sequential read 1 GiB", ("seq_read",), 0.7),
        ("10,000 small files (create+write, stat, delete)", SMALL_KEYS, 0.3),
        (f"stat walk of {tree:,} files", ("walk",), 0.3),
    ]
    for label, keys, goal in rows:
        share, disk, r = ratio(*keys)
        print(
            f"{label}: share {share:.2f}s, guest disk {disk:.2f}s, ratio {r:.2f} (goal >= {goal})"
        )


if __name__ == "__main__":
    main()
