"""The guest's boot-log lines, as the host reads them from the serial log."""

from __future__ import annotations

from pathlib import Path

from moorage.vm.image.bootlog import BootEvent, BootLogReader, parse_line


def test_other_lines_say_nothing() -> None:
    assert parse_line("[    0.000000] Linux version 6.12") == []
    assert parse_line("") == []
    assert parse_line("not moorage: init") == []
    assert parse_line("moorage:init") == []


def test_a_step_is_progress() -> None:
    assert parse_line("moorage: config default") == [BootEvent("progress", "config default")]


def test_an_error_is_only_an_error() -> None:
    assert parse_line("moorage: error: no config disk") == [BootEvent("error", "no config disk")]
    assert parse_line("moorage: error: no writable root for the guest (overlay)") == [
        BootEvent("error", "no writable root for the guest (overlay)")
    ]


def test_a_warning_is_only_a_warning() -> None:
    line = "moorage: warning: the shared folder /home/ann could not be mounted (virtiofs)"
    assert parse_line(line) == [
        BootEvent("warning", "the shared folder /home/ann could not be mounted (virtiofs)")
    ]


def test_a_shared_folder_is_its_path_then_progress() -> None:
    assert parse_line("moorage: shared /work/my (odd) src (virtiofs)") == [
        BootEvent("shared", "/work/my (odd) src"),
        BootEvent("progress", "shared /work/my (odd) src (virtiofs)"),
    ]


def test_boot_done_is_progress_then_done() -> None:
    assert parse_line("moorage: boot done") == [
        BootEvent("progress", "boot done"),
        BootEvent("done", "boot done"),
    ]


def test_each_start_of_dockerd_is_progress_then_dockerd() -> None:
    assert parse_line("moorage: dockerd starting") == [
        BootEvent("progress", "dockerd starting"),
        BootEvent("dockerd", "dockerd starting"),
    ]
    # Said before the start line, not instead of it: one start, not two.
    assert parse_line("moorage: dockerd starting without shared folders") == [
        BootEvent("progress", "dockerd starting without shared folders")
    ]


def test_a_missing_log_has_no_events_yet(tmp_path: Path) -> None:
    reader = BootLogReader(tmp_path / "serial.log")
    assert reader.read_new() == []
    (tmp_path / "serial.log").write_bytes(b"moorage: init\r\n")
    assert reader.read_new() == [BootEvent("progress", "init")]


def test_a_half_written_line_waits_for_its_end(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_bytes(b"Booting\r\nmoorage: init\r\nmoorage: conf")
    reader = BootLogReader(log)
    assert reader.read_new() == [BootEvent("progress", "init")]
    assert reader.read_new() == []
    with log.open("ab") as f:
        f.write(b"ig default\r\nmoorage: net")
    assert reader.read_new() == [BootEvent("progress", "config default")]
    with log.open("ab") as f:
        f.write(b"work\nmoorage: boot done\n")
    assert reader.read_new() == [
        BootEvent("progress", "network"),
        BootEvent("progress", "boot done"),
        BootEvent("done", "boot done"),
    ]
    assert reader.read_new() == []


def test_a_character_split_across_reads_is_whole(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    shared = "moorage: shared /home/zoë (virtiofs)\n".encode()
    cut = shared.index("ë".encode()) + 1  # inside the two bytes of ë
    log.write_bytes(shared[:cut])
    reader = BootLogReader(log)
    assert reader.read_new() == []
    with log.open("ab") as f:
        f.write(shared[cut:])
    assert reader.read_new()[0] == BootEvent("shared", "/home/zoë")


def test_a_new_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_bytes(b"moorage: init\nmoorage: network\n")
    reader = BootLogReader(log)
    assert len(reader.read_new()) == 2
    new = tmp_path / "serial.log.new"
    new.write_bytes(b"moorage: init\nmoorage: network\nmoorage: data 60G\n")
    new.replace(log)  # another file, longer than what was read of the old one
    assert [e.text for e in reader.read_new()] == ["init", "network", "data 60G"]
    log.write_bytes(b"moorage: init\n")  # truncated in place, as libvirt does
    assert reader.read_new() == [BootEvent("progress", "init")]
