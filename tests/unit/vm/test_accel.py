"""The KVM probe's judgement, with a stand-in for qemu that prints what a guest would."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from moorage.vm import accel


def fake_qemu(tmp_path: Path, body: str) -> str:
    script = tmp_path / "qemu"
    script.write_text(
        '#!/bin/sh\nfor a in "$@"; do case "$a" in file:*) out="${a#file:}";; esac; done\n' + body
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.fixture(autouse=True)
def kvm_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "kvm_device_problem", lambda: None)


def test_a_kernel_that_boots_to_its_end_means_kvm(tmp_path: Path) -> None:
    qemu = fake_qemu(
        tmp_path,
        'echo "Linux version 6.12"; echo "Kernel panic - not syncing" >> "$out"; sleep 30\n',
    )
    choice = accel.probe_kvm(qemu, tmp_path / "vmlinuz", timeout=5)
    assert choice.accel == "kvm" and choice.warning is None


def test_qemu_failing_means_tcg_with_its_error(tmp_path: Path) -> None:
    qemu = fake_qemu(tmp_path, 'echo "qemu: error: failed to set MSR 0x10a" >&2; exit 1\n')
    choice = accel.probe_kvm(qemu, tmp_path / "vmlinuz", timeout=5)
    assert choice.accel == "tcg"
    assert "failed to set MSR" in choice.reason
    assert choice.warning is not None and "TCG" in choice.warning


def test_a_silent_guest_means_tcg_after_the_bound(tmp_path: Path) -> None:
    qemu = fake_qemu(tmp_path, "sleep 30\n")
    choice = accel.probe_kvm(qemu, tmp_path / "vmlinuz", timeout=1.0)
    assert choice == accel.AccelChoice("tcg", "a KVM test boot printed nothing useful within 1s")


def test_the_answer_is_kept_for_this_host_boot(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    qemu = fake_qemu(tmp_path, f'echo x >> {calls}; echo "Kernel panic" >> "$out"; sleep 30\n')
    cache = tmp_path / "accel.json"
    assert accel.choose(qemu, tmp_path / "k", cache).accel == "kvm"
    assert accel.choose(qemu, tmp_path / "k", cache).accel == "kvm"
    assert calls.read_text().count("x") == 1
    assert accel.choose(qemu, tmp_path / "k", cache, want="tcg").accel == "tcg"


def test_no_device_means_tcg_without_a_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accel, "kvm_device_problem", lambda: "/dev/kvm does not exist")
    calls = tmp_path / "calls"
    qemu = fake_qemu(tmp_path, f'echo x >> {calls}; echo "Kernel panic" >> "$out"\n')
    choice = accel.probe_kvm(qemu, tmp_path / "k")
    assert choice == accel.AccelChoice("tcg", "/dev/kvm does not exist")
    assert not calls.exists(), "the probe booted although /dev/kvm cannot be used"
