"""The domain XML and QEMU command line against golden files.

Regenerate them after an intended change with ``MOORAGE_REGEN_GOLDEN=1 pytest tests/unit``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moorage.vm.driver import MachineSpec
from moorage.vm.drivers.libvirt import domain_xml
from moorage.vm.drivers.qemu import qemu_args
from moorage.vm.image.manifest import Manifest
from moorage.vm.spec import GuestReach, mac_for, machine_spec

GOLDEN = Path(__file__).parent / "golden"


def spec(accel: str = "tcg", shares: tuple[Path, ...] = ()) -> MachineSpec:
    manifest = Manifest(
        recipe="debian",
        version="v",
        created="c",
        kernel="vmlinuz",
        initrd="initrd.img",
        root="root.img",
        cmdline="root=/dev/vda ro console=ttyS0",
        engine_version="26.1",
        files={},
    )
    return machine_spec(
        name="default",
        cpus=2,
        memory_mib=2048,
        image_dir=Path("/img"),
        manifest=manifest,
        data_disk=Path("/m/data.img"),
        config_disk=Path("/m/config.tar"),
        serial_log=Path("/m/serial.log"),
        run_dir=Path("/run/m"),
        accel=accel,  # type: ignore[arg-type]
        reach=GuestReach(ssh_port=40022, api_port=40375, api_token="t" * 64),
        uid=1000,
        gid=1000,
        shares=shares,
    )


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MOORAGE_REGEN_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; regenerate with MOORAGE_REGEN_GOLDEN=1"


@pytest.mark.parametrize("accel", ["tcg", "kvm"])
def test_domain_xml(accel: str) -> None:
    check_golden(f"domain-{accel}.xml", domain_xml(spec(accel), "/usr/bin/qemu-system-x86_64"))


@pytest.mark.parametrize("accel", ["tcg", "kvm"])
def test_qemu_args(accel: str) -> None:
    check_golden(
        f"qemu-{accel}.args", "\n".join(qemu_args(spec(accel), "qemu-system-x86_64")) + "\n"
    )


def test_shared_folders_get_shared_memory_and_a_vhost_user_device_each() -> None:
    shared = spec(shares=(Path("/home/ann"), Path("/srv/code")))
    check_golden("domain-shares.xml", domain_xml(shared, "/usr/bin/qemu-system-x86_64"))
    check_golden("qemu-shares.args", "\n".join(qemu_args(shared, "qemu-system-x86_64")) + "\n")


@pytest.mark.parametrize("shares", [(), (Path("/home/ann"),)])
def test_libvirt_accepts_the_domain(shares: tuple[Path, ...]) -> None:
    libvirt = pytest.importorskip("libvirt")
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    conn = libvirt.open("test:///default")
    try:
        xml = domain_xml(spec(shares=shares), "/usr/bin/qemu-system-x86_64").replace(
            'type="qemu"', 'type="test"', 1
        )
        dom = conn.defineXML(xml)
        assert dom.name() == "moorage-default"
        assert dom.maxMemory() == 2048 * 1024
        dom.undefine()
    finally:
        conn.close()


def test_macs_are_stable_and_local() -> None:
    assert mac_for("default") == mac_for("default")
    assert mac_for("default") != mac_for("other")
    assert mac_for("default").startswith("52:54:00:")


def test_disks_are_found_by_serial_and_only_data_is_writable() -> None:
    s = spec()
    assert [(d.serial, d.readonly) for d in s.disks] == [
        ("moorage-root", True),
        ("moorage-data", False),
        ("moorage-config", True),
    ]
    # The host reaches the guest's sshd and docker gate from its loopback only.
    assert [(f.host_addr, f.host_port, f.guest_port) for f in s.forwards] == [
        ("127.0.0.1", 40022, 22),
        ("127.0.0.1", 40375, 2375),
    ]


def test_guest_reach_survives_its_record_and_refuses_an_old_one() -> None:
    reach = GuestReach(ssh_port=1, api_port=2, api_token="x" * 64)
    assert GuestReach.from_record({**reach.record(), "vm_pid": 9}) == reach
    assert GuestReach.from_record({"ssh_port": 1}) is None  # written by an older agent
    assert GuestReach.from_record(None) is None


def test_only_emulated_guests_boot_without_speculation_defences() -> None:
    assert spec("tcg").cmdline == "root=/dev/vda ro console=ttyS0 mitigations=off"
    assert spec("kvm").cmdline == "root=/dev/vda ro console=ttyS0"
