"""The preferences dialog over a fake agent: widgets generated from the config schema,
the config's own errors by each field, saving, the restart question, shared folders,
the update channel and start at login."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer  # noqa: TID251
from PySide6.QtWidgets import (  # noqa: TID251
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QMessageBox,
    QSpinBox,
)
from pytestqt.qtbot import QtBot

from moorage import config as config_mod
from moorage.api.schema import ConfigView
from moorage.desktop import autostart
from moorage.desktop.app import DesktopApp
from moorage.desktop.calls import Calls
from moorage.desktop.preferences import FolderList, PreferencesDialog
from moorage.errors import ConfigError
from tests.helpers import fake_agent_client
from tests.helpers.fake_agent_client import FakeAgentClient, error


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread() -> None:
    """Collect the last test's Qt objects here, on the GUI thread. Left to chance, the
    cyclic GC may run on a Calls worker and destroy a QObject with a live timer there
    (Qt cannot stop a timer from another thread), which crashes a later event loop."""
    gc.collect()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake agent's host, with a home folder that exists (``~`` is shared)."""
    home = tmp_path / "home"
    (home / "src").mkdir(parents=True)
    monkeypatch.setattr(
        fake_agent_client,
        "HOST",
        config_mod.HostFacts(cpus=8, memory_mib=16384, home=home),
    )
    return home


class Harness:
    def __init__(self, qtbot: QtBot, client: FakeAgentClient, calls: Calls, tmp: Path) -> None:
        self.qtbot, self.client = qtbot, client
        self.dialog = PreferencesDialog(client, calls)  # type: ignore[arg-type]
        qtbot.addWidget(self.dialog)
        self.env = {
            "HOME": str(tmp / "home"),
            "XDG_CONFIG_HOME": str(tmp / "xdg"),
            "XDG_CONFIG_DIRS": str(tmp / "etc-xdg"),
        }
        self.dialog.autostart_env = self.env
        self.asked: list[tuple[str, str, list[str]]] = []
        self.answer: str | None = "Restart now"
        self.dialog.ask = self._ask
        self.chosen: list[str | None] = []
        self.dialog.choose_folder = lambda: self.chosen.pop(0)

    def _ask(
        self, title: str, text: str, buttons: list[str], then: Callable[[str | None], None]
    ) -> None:
        self.asked.append((title, text, buttons))
        then(self.answer)

    def open(self) -> PreferencesDialog:
        d = self.dialog
        d.open()
        self.qtbot.waitUntil(
            lambda: (
                d.machine.loaded is not None
                and d.updates.loaded is not None
                and d.apply_button.isEnabled()
            ),
            timeout=5000,
        )
        return d

    def editor(self, key: str) -> Any:
        if key in self.dialog.machine.editors:
            return self.dialog.machine.editors[key]
        return self.dialog.updates.editors[key]

    def widget(self, key: str) -> Any:
        return self.editor(key).widget

    def apply(self) -> None:
        d = self.dialog
        self.qtbot.mouseClick(d.apply_button, Qt.MouseButton.LeftButton)
        self.qtbot.waitUntil(lambda: not d.saving, timeout=5000)

    def status(self) -> str:
        return str(self.dialog.status.text())


@pytest.fixture
def harness(
    qtbot: QtBot, fake_client: FakeAgentClient, calls: Calls, home: Path, tmp_path: Path
) -> Iterator[Harness]:
    h = Harness(qtbot, fake_client, calls, tmp_path)
    yield h
    calls.wait(5000)


# ----- generated from the schema ---------------------------------------------------------------


def test_one_widget_per_option_with_the_schemas_ranges_and_help(harness: Harness) -> None:
    d = harness.open()
    assert list(d.machine.editors) == [o.key for o in config_mod.OPTIONS]
    cpus = harness.widget("cpus")
    assert isinstance(cpus, QSpinBox)
    assert (cpus.minimum(), cpus.maximum(), cpus.value()) == (1, 8, 2)
    memory = harness.widget("memory_gib")
    assert isinstance(memory, QDoubleSpinBox)
    assert (memory.minimum(), memory.maximum(), memory.value()) == (0.5, 16.0, 2.0)
    assert memory.suffix() == " GiB"
    disk = harness.widget("disk_gib")
    assert isinstance(disk, QSpinBox)
    assert (disk.minimum(), disk.maximum(), disk.suffix()) == (8, 16384, " GiB")
    driver = harness.widget("driver")
    assert isinstance(driver, QComboBox)
    assert [driver.itemData(i) for i in range(driver.count())] == ["libvirt", "qemu"]
    assert driver.itemText(1) == "qemu — no daemon needed"
    expose = harness.widget("expose_ports")
    assert isinstance(expose, QCheckBox)
    assert not expose.isChecked()
    mounts = harness.widget("mounts")
    assert isinstance(mounts, FolderList)
    assert mounts.folders() == ["~"]
    assert isinstance(harness.widget("engine"), QLabel)
    for option in config_mod.OPTIONS:
        editor = harness.editor(option.key)
        assert option.description in editor.widget.toolTip()
        assert editor.help.text() == option.description
    channel = harness.widget("channel")
    assert isinstance(channel, QComboBox)
    assert [channel.itemData(i) for i in range(channel.count())] == ["stable", "beta"]
    assert channel.currentData() == "stable"
    assert {"url", "check", "auto_install", "root"} <= set(d.updates.editors)
    assert "Machine 'default'" in d.machine.group.title()


def test_a_new_config_key_appears_with_no_desktop_change(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = harness.client
    plain = client.config

    def config() -> ConfigView:
        view = plain()
        extra = {"key": "swap_gib", "type": "int", "default": 0, "description": "Swap space.",
                 "choices": None, "choice_help": {}, "min": 0, "max": 32, "unit": "GiB",
                 "allowed": "0 to 32", "restart": True}  # fmt: skip
        return ConfigView(view.path, {**view.values, "swap_gib": 4}, [*view.schema, extra])

    monkeypatch.setattr(client, "config", config)
    d = harness.open()
    swap = harness.widget("swap_gib")
    assert isinstance(swap, QSpinBox)
    assert (swap.minimum(), swap.maximum(), swap.value(), swap.suffix()) == (0, 32, 4, " GiB")
    assert harness.editor("swap_gib").help.text() == "Swap space."
    form = d.machine.group.layout().itemAt(1).widget().layout()
    assert form.labelForField(harness.editor("swap_gib").box).text() == "Swap"


def test_a_value_with_more_decimals_is_shown_unrounded_and_not_taken_for_a_change(
    harness: Harness,
) -> None:
    harness.client.paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    harness.client.paths.config_file.write_text("memory_gib = 2.25\n")
    harness.open()
    memory = harness.widget("memory_gib")
    assert (memory.value(), memory.decimals()) == (2.25, 2)
    harness.apply()
    assert harness.status() == "Nothing changed."


# ----- loading ---------------------------------------------------------------------------------


def test_loading_says_so_and_the_dialog_stays_responsive(harness: Harness) -> None:
    harness.client.delays["config"] = 0.8
    d = harness.dialog
    d.open()
    assert d.status.text() == "Loading the settings…"
    assert d.machine.note.text() == "loading…"
    assert not d.apply_button.isEnabled()
    ticks: list[int] = []
    QTimer.singleShot(20, lambda: ticks.append(1))
    harness.qtbot.waitUntil(lambda: bool(ticks), timeout=400)  # the event loop runs meanwhile
    assert d.machine.loaded is None
    harness.qtbot.waitUntil(lambda: d.machine.loaded is not None, timeout=5000)
    assert d.apply_button.isEnabled()
    assert d.status.text() == ""


def test_a_failed_load_shows_its_message_and_fix_and_can_be_tried_again(harness: Harness) -> None:
    harness.client.fail_once["config"] = error("the host agent is busy", fix="wait a moment")
    d = harness.dialog
    d.open()
    harness.qtbot.waitUntil(lambda: d.retry.isVisible() or not d.isVisible(), timeout=5000)
    assert "the host agent is busy" in d.status.text()
    assert "Fix: wait a moment" in d.status.text()
    assert "Fix: wait a moment" in d.machine.note.text()
    assert d.updates.loaded is not None  # the other half still loaded
    harness.qtbot.mouseClick(d.retry, Qt.MouseButton.LeftButton)
    harness.qtbot.waitUntil(lambda: d.machine.loaded is not None, timeout=5000)
    assert not d.retry.isVisible()
    assert "cpus" in d.machine.editors


# ----- applying --------------------------------------------------------------------------------


def test_bad_values_show_the_configs_own_errors_by_their_fields_and_nothing_is_written(
    harness: Harness, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.open()
    harness.widget("cpus").setValue(3)
    harness.chosen.append(str(home / "src"))  # inside ~, which is shared already
    harness.qtbot.mouseClick(harness.widget("mounts").add, Qt.MouseButton.LeftButton)
    # The host shrank since the dialog loaded: 3 CPUs are now too many too.
    small = config_mod.HostFacts(cpus=2, memory_mib=16384, home=home)
    monkeypatch.setattr(fake_agent_client, "HOST", small)
    with pytest.raises(ConfigError) as own:
        config_mod.validate({"cpus": 3, "mounts": ["~", str(home / "src")]}, small, "x")
    cpus_problem, mounts_problem = own.value.problems

    harness.apply()
    assert harness.editor("cpus").error.text() == cpus_problem
    assert harness.editor("mounts").error.text() == mounts_problem
    assert "overlaps another shared folder" in mounts_problem
    assert harness.editor("cpus").error.isVisibleTo(harness.dialog)
    assert not harness.editor("memory_gib").error.isVisibleTo(harness.dialog)
    assert harness.status() == "Not saved: 2 problems, shown by each setting."
    assert harness.client.called("write_config") == []
    assert not harness.client.paths.config_file.exists()

    harness.widget("cpus").setValue(2)  # fixed: the errors go with the next apply
    harness.qtbot.mouseClick(harness.widget("mounts").list, Qt.MouseButton.LeftButton)
    mounts = harness.widget("mounts")
    mounts.list.setCurrentRow(1)
    harness.qtbot.mouseClick(mounts.remove, Qt.MouseButton.LeftButton)
    harness.apply()
    assert harness.editor("cpus").error.text() == ""
    assert harness.status() == "Nothing changed."


def test_a_rule_beyond_the_range_is_the_configs_own_too(
    harness: Harness, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spin box allows 8 to 16384 GiB; that the disk never shrinks is the config's
    rule, and its words are what the dialog shows."""
    grown = config_mod.HostFacts(cpus=8, memory_mib=16384, home=home, disk_bytes=100 << 30)
    monkeypatch.setattr(fake_agent_client, "HOST", grown)
    harness.open()
    disk = harness.widget("disk_gib")
    assert disk.value() == 100
    disk.setValue(80)
    harness.apply()
    assert harness.editor("disk_gib").error.text() == (
        "disk_gib = 80 is not allowed; the disk is already 100 GiB and can only grow: use at "
        "least 100, or `moorage reset` to start over with an empty disk"
    )
    assert harness.client.called("write_config") == []


def test_a_good_value_is_written_and_a_stopped_machine_is_not_asked_about(
    harness: Harness,
) -> None:
    harness.client.set_state("stopped", vm_pid=None)
    harness.open()
    harness.widget("cpus").setValue(4)
    harness.widget("memory_gib").setValue(3.5)
    harness.apply()
    written = {"cpus": 4, "memory_gib": 3.5}
    assert harness.client.called("validate_config") == [(written,)]
    assert harness.client.called("write_config") == [(written,)]
    text = harness.client.paths.config_file.read_text()
    assert "cpus = 4" in text
    assert "memory_gib = 3.5" in text
    assert harness.asked == []
    assert harness.status() == "Saved. CPUs and Memory: the change applies when the machine starts."
    harness.apply()  # saved is the new baseline
    assert harness.status() == "Nothing changed."
    assert len(harness.client.called("write_config")) == 1


def test_a_running_machine_is_asked_and_restart_now_reaches_the_agent(harness: Harness) -> None:
    harness.open()
    harness.widget("cpus").setValue(4)
    harness.apply()
    assert harness.asked == [
        (
            "Restart the machine?",
            "Restart machine 'default' now to apply CPUs?\n\n"
            "Restarting stops its running containers.",
            ["Restart now", "Later"],
        )
    ]
    harness.qtbot.waitUntil(lambda: harness.client.called("request") == [("restart",)])
    assert harness.status().startswith("Saved. Restarting machine 'default'")


def test_later_saves_only(harness: Harness) -> None:
    harness.answer = "Later"
    harness.open()
    harness.widget("expose_ports").setChecked(True)
    harness.apply()
    assert len(harness.asked) == 1
    assert harness.client.called("write_config") == [({"expose_ports": True},)]
    assert (
        harness.status() == "Saved. Expose ports: the change applies at the machine's next start."
    )
    harness.qtbot.wait(50)
    assert harness.client.called("request") == []


def test_no_question_for_changes_that_need_no_restart(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = harness.client.config

    def config() -> ConfigView:
        view = plain()
        schema = [{**e, "restart": False} if e["key"] == "expose_ports" else e for e in view.schema]
        return ConfigView(view.path, view.values, schema)

    monkeypatch.setattr(harness.client, "config", config)
    harness.open()
    harness.widget("expose_ports").setChecked(True)
    harness.apply()
    assert harness.client.called("write_config") == [({"expose_ports": True},)]
    assert harness.asked == []
    assert harness.status() == "Saved."


def test_shared_folders_add_and_remove(harness: Harness, tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    projects.mkdir()
    harness.answer = "Later"
    harness.open()
    mounts = harness.widget("mounts")
    assert not mounts.remove.isEnabled()
    harness.chosen += [str(projects), str(projects), None]
    for _ in range(3):  # the same folder twice is listed once; a cancelled chooser adds none
        harness.qtbot.mouseClick(mounts.add, Qt.MouseButton.LeftButton)
    assert mounts.folders() == ["~", str(projects)]
    mounts.list.setCurrentRow(0)
    assert mounts.remove.isEnabled()
    harness.qtbot.mouseClick(mounts.remove, Qt.MouseButton.LeftButton)
    assert mounts.folders() == [str(projects)]
    harness.apply()
    assert harness.client.called("write_config") == [({"mounts": [str(projects)]},)]
    assert harness.client.config().values["mounts"] == [str(projects)]


def test_the_update_channel_reaches_update_settings(harness: Harness) -> None:
    harness.open()
    channel = harness.widget("channel")
    channel.setCurrentIndex(channel.findData("beta"))
    harness.apply()
    assert harness.client.called("update_settings") == [({"channel": "beta"},)]
    assert harness.client.update.settings["channel"] == "beta"
    assert harness.client.called("validate_config") == []
    assert harness.client.called("write_config") == []
    assert harness.asked == []
    assert harness.status() == "Saved."


def test_an_update_settings_error_is_shown_by_its_field(harness: Harness) -> None:
    harness.open()
    harness.widget("url").setText("ftp://example.com")
    harness.widget("cpus").setValue(3)
    harness.apply()
    assert harness.editor("url").error.text() == (
        "url = 'ftp://example.com' is not allowed; must be an http:// or https:// URL "
        "(or empty for the shipped one)"
    )
    assert harness.client.called("write_config") == []  # all or nothing


def test_an_agent_that_fails_while_saving_says_why(harness: Harness) -> None:
    harness.open()
    harness.client.fail_once["validate_config"] = error("the host agent is busy", "try again")
    harness.widget("cpus").setValue(3)
    harness.apply()
    assert harness.status() == "Not saved: the host agent is busy\nFix: try again"
    assert harness.client.called("write_config") == []


def test_start_at_login_on_and_off(harness: Harness, tmp_path: Path) -> None:
    entry = tmp_path / "xdg" / "autostart" / "moorage-tray.desktop"
    d = harness.open()
    assert not d.start_at_login.isChecked()
    d.start_at_login.setChecked(True)
    harness.apply()
    assert entry.exists()
    assert "tray" in entry.read_text()
    assert autostart.is_enabled(harness.env)
    assert harness.status() == "Saved."
    assert harness.client.called("write_config") == []

    d.start_at_login.setChecked(False)
    harness.open()  # Preferences… again while shown: the edit in progress stays
    assert not d.start_at_login.isChecked()
    d.close()
    harness.open()  # opened again: what the file says
    assert d.start_at_login.isChecked()
    d.start_at_login.setChecked(False)
    harness.apply()
    assert not entry.exists()


def test_an_autostart_folder_that_cannot_be_written_says_so(
    harness: Harness, tmp_path: Path
) -> None:
    (tmp_path / "xdg").write_text("a file where the folder should be")
    d = harness.open()
    d.start_at_login.setChecked(True)
    harness.apply()
    assert d.start_at_login_error.isVisibleTo(d)
    assert "Could not write" in d.start_at_login_error.text()


def test_the_dialogs_own_question_box(harness: Harness) -> None:
    d = harness.open()
    answers: list[str | None] = []
    PreferencesDialog._ask(d, "Restart the machine?", "Restart?", ["Restart now", "Later"],
                           answers.append)  # fmt: skip
    box = d.findChild(QMessageBox)
    assert box is not None
    assert [b.text() for b in box.buttons()] == ["Restart now", "Later"]
    assert box.defaultButton().text() == "Restart now"
    harness.qtbot.mouseClick(box.buttons()[1], Qt.MouseButton.LeftButton)
    harness.qtbot.waitUntil(lambda: answers == ["Later"])


# ----- through the app -------------------------------------------------------------------------


def test_the_apps_preferences_restart_through_the_apps_own_handler(
    qtbot: QtBot, fake_client: FakeAgentClient, home: Path
) -> None:
    app = DesktopApp(
        fake_client,  # type: ignore[arg-type]
        engine=lambda _socket: fake_client.docker,
        dashboard_class=lambda: QLabel,
    )
    try:
        app.show_preferences()
        qtbot.waitUntil(lambda: isinstance(app.preferences, PreferencesDialog), timeout=5000)
        d: PreferencesDialog = app.preferences
        d.ask = lambda _t, _x, buttons, then: then(buttons[0])
        qtbot.waitUntil(lambda: d.machine.loaded is not None and d.apply_button.isEnabled())
        d.machine.editors["memory_gib"].widget.setValue(4.0)
        pending: list[frozenset[str]] = []
        d.restart_requested.connect(lambda: pending.append(app.view.pending))
        d.apply()
        qtbot.waitUntil(lambda: fake_client.called("request") == [("restart",)], timeout=5000)
        assert fake_client.called("write_config") == [({"memory_gib": 4.0},)]
        # The app's own handler ran first: the restart shows as pending in its menu.
        assert pending and "restart" in pending[0]
        qtbot.waitUntil(lambda: "restart" not in app.view.pending, timeout=5000)
    finally:
        if app.preferences is not None:
            app.preferences.close()
        app.shutdown()
