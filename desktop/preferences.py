"""The preferences dialog: the machine's settings, the app's update settings and start
at login. ``DesktopApp.show_preferences`` opens it.

The machine's settings are generated from the agent's config schema
(``ConfigView.schema``) and the update settings from the update schema
(``UpdateView.schema``): ``schema_form`` turns each entry into a field, and this
module draws a widget per field kind, with the option's description as help. A key
the agent adds appears here with no change to the desktop.

Every error shown is the agent's own: Apply sends the values to
``validate_config`` first, and each problem of its ``ConfigError`` is shown under the
field it names, all at once, with nothing written. Then the update settings (which
validate themselves) and the config file are written. When the machine is running
and a change applies only at its next start, the dialog asks whether to restart now;
"Restart now" emits ``restart_requested``, which the app connects to its own restart
(pending state, progress, errors); with nothing connected, the dialog sends the
restart itself.

Every agent call runs through ``Calls``: the dialog says "loading…" and stays
responsive meanwhile, and a failed call's message and fix are shown in it. Start at
login is files only (``autostart``), so it is done at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import SIGNAL, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from moorage.api.client import AgentClient
from moorage.api.schema import ConfigView, Status, UpdateView
from moorage.desktop import autostart
from moorage.desktop import schema_form as form
from moorage.desktop.calls import Calls
from moorage.errors import ConfigError, MoorageError

Ask = Callable[[str, str, list[str], Callable[[str | None], None]], None]
"""(title, text, buttons, then), as ``DesktopApp.ask``: ``then`` gets the button's
label, or None when the question was dismissed."""

RESTART_NOW, LATER = "Restart now", "Later"
RUNNING = ("running", "degraded")
INT_MAX = 2**31 - 1


def _explain(exc: BaseException) -> str:
    if isinstance(exc, MoorageError):
        return exc.message + (f"\nFix: {exc.fix}" if exc.fix else "")
    return f"{type(exc).__name__}: {exc}"


class FolderList(QWidget):
    """The shared folders: a list with Add… (a folder chooser) and Remove."""

    def __init__(self, choose: Callable[[], str | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._choose = choose
        self.list = QListWidget(self)
        self.list.setMinimumHeight(70)
        self.list.setMaximumHeight(120)
        self.add = QPushButton("Add…", self)
        self.remove = QPushButton("Remove", self)
        self.remove.setEnabled(False)
        buttons = QVBoxLayout()
        buttons.addWidget(self.add)
        buttons.addWidget(self.remove)
        buttons.addStretch()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.list, 1)
        row.addLayout(buttons)
        self.add.clicked.connect(self._add)
        self.remove.clicked.connect(self._remove)
        self.list.itemSelectionChanged.connect(
            lambda: self.remove.setEnabled(bool(self.list.selectedItems()))
        )

    def folders(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def set_folders(self, folders: list[str]) -> None:
        self.list.clear()
        self.list.addItems([str(f) for f in folders])

    def _add(self) -> None:
        chosen = self._choose()
        if chosen and chosen not in self.folders():
            self.list.addItem(chosen)

    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))


class Editor:
    """One field's widget, its help and its error line."""

    def __init__(
        self, field: form.Field, choose: Callable[[], str | None], parent: QWidget
    ) -> None:
        self.field = field
        self._table: Any = None
        self.widget = self._make(field, choose, parent)
        self.widget.setObjectName(f"field-{field.key}")
        tip = field.help + (f"\nAllowed: {field.allowed}" if field.allowed else "")
        self.widget.setToolTip(tip)
        self.help = QLabel(field.help, parent)
        self.help.setWordWrap(True)
        small = QFont(self.help.font())
        small.setPointSizeF(max(small.pointSizeF() * 0.9, 7.0))
        self.help.setFont(small)
        self.help.setStyleSheet("color: palette(mid);")
        self.help.setVisible(bool(field.help))
        self.error = QLabel("", parent)
        self.error.setObjectName(f"error-{field.key}")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        self.box = QWidget(parent)
        column = QVBoxLayout(self.box)
        column.setContentsMargins(0, 0, 0, 4)
        column.setSpacing(2)
        if field.kind in ("folders", "text", "table"):
            column.addWidget(self.widget)
        else:  # a spin box, a combo box, a checkbox: their own width, at the left
            column.addWidget(self.widget, 0, Qt.AlignmentFlag.AlignLeft)
        column.addWidget(self.help)
        column.addWidget(self.error)

    @staticmethod
    def _make(field: form.Field, choose: Callable[[], str | None], parent: QWidget) -> QWidget:
        low = field.minimum if field.minimum is not None else 0
        high = field.maximum if field.maximum is not None else INT_MAX
        suffix = f" {field.unit}" if field.unit else ""
        match field.kind:
            case "check":
                return QCheckBox(parent)
            case "choice":
                combo = QComboBox(parent)
                # Long choice help shows in full in the popup, not in the dialog's width.
                combo.setSizeAdjustPolicy(
                    QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
                )
                combo.setMinimumContentsLength(34)
                for value, text in field.choices:
                    combo.addItem(text, value)
                return combo
            case "int":
                spin = QSpinBox(parent)
                spin.setRange(int(low), int(high))
                spin.setSuffix(suffix)
                spin.setMinimumWidth(120)
                return spin
            case "float":
                dspin = QDoubleSpinBox(parent)
                dspin.setDecimals(1)
                dspin.setSingleStep(0.5)
                dspin.setRange(low, high)
                dspin.setSuffix(suffix)
                dspin.setMinimumWidth(120)
                return dspin
            case "folders":
                return FolderList(choose, parent)
            case "text":
                line = QLineEdit(parent)
                if field.default == "":
                    line.setPlaceholderText("empty: the default")
                return line
            case _:
                # A table (dockerd's settings): shown, edited in the file, sent back as is.
                label = QLabel(parent)
                label.setWordWrap(True)
                label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                return label

    def value(self) -> Any:
        w = self.widget
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, QSpinBox | QDoubleSpinBox):
            return w.value()
        if isinstance(w, FolderList):
            return w.folders()
        if isinstance(w, QLineEdit):
            return w.text()
        return self._table

    def set_value(self, value: Any) -> None:
        w = self.widget
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            index = w.findData(value)
            if index < 0:  # a value the schema does not list: shown, kept
                w.addItem(str(value), value)
                index = w.count() - 1
            w.setCurrentIndex(index)
        elif isinstance(w, QSpinBox):
            w.setValue(int(value))
        elif isinstance(w, QDoubleSpinBox):
            # As many decimals as the value has (up to 3), so showing it does not round
            # it: a rounded value would count as a change and be written.
            digits = f"{float(value):.3f}".rstrip("0").split(".")[1]
            w.setDecimals(max(1, len(digits)))
            w.setValue(float(value))
        elif isinstance(w, FolderList):
            w.set_folders(list(value or []))
        elif isinstance(w, QLineEdit):
            w.setText("" if value is None else str(value))
        elif isinstance(w, QLabel):
            self._table = value
            shown = json.dumps(value, sort_keys=True) if value else "none"
            w.setText(f"{shown}  (edit this in the config file)")

    def set_errors(self, problems: list[str]) -> None:
        self.error.setText("\n".join(problems))
        self.error.setVisible(bool(problems))


class Section:
    """A group of editors generated from one schema."""

    def __init__(self, title: str, parent: QWidget) -> None:
        self.group = QGroupBox(title, parent)
        self._column = QVBoxLayout(self.group)
        self.note = QLabel("loading…", self.group)
        self.note.setWordWrap(True)
        self._column.addWidget(self.note)
        self._body: QWidget | None = None
        self.fields: list[form.Field] = []
        self.editors: dict[str, Editor] = {}
        self.loaded: dict[str, Any] | None = None
        """The values last read from (or written to) the agent; None until then."""

    def loading(self) -> None:
        self.note.setText("loading…")
        self.note.show()

    def failed(self, text: str) -> None:
        if self.loaded is None:
            self.note.setText(text)
            self.note.show()

    def build(
        self, schema: list[dict[str, Any]], values: Mapping[str, Any], note: str,
        choose: Callable[[], str | None],
    ) -> None:  # fmt: skip
        if self._body is not None:
            self._column.removeWidget(self._body)
            self._body.deleteLater()
        self._body = QWidget(self.group)
        rows = QFormLayout(self._body)
        rows.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.fields = form.fields(schema)
        self.editors = {}
        for field in self.fields:
            editor = Editor(field, choose, self._body)
            editor.set_value(values.get(field.key, field.default))
            self.editors[field.key] = editor
            rows.addRow(field.label, editor.box)
        self._column.addWidget(self._body)
        self.loaded = {f.key: values.get(f.key, f.default) for f in self.fields}
        self.note.setText(note)
        self.note.setVisible(bool(note))

    def values(self) -> dict[str, Any]:
        return {key: editor.value() for key, editor in self.editors.items()}

    def changed(self) -> list[str]:
        if self.loaded is None:
            return []
        return form.changed(self.loaded, self.values())

    def set_errors(self, by_key: Mapping[str, list[str]]) -> None:
        for key, editor in self.editors.items():
            editor.set_errors(list(by_key.get(key, [])))


class PreferencesDialog(QDialog):
    """Preferences of one machine (and of the app). ``open()`` loads them afresh."""

    restart_requested = Signal()
    """The user chose to restart the machine now to apply what was saved."""

    def __init__(self, client: AgentClient, calls: Calls, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.calls = calls
        self.ask: Ask = self._ask
        self.choose_folder: Callable[[], str | None] = self._choose_folder
        self.autostart_env: Mapping[str, str] | None = None
        """The environment whose XDG folders hold the autostart entry (None: the process's)."""
        self.saving = False
        self._boxes: list[QMessageBox] = []
        self.setWindowTitle(f"moorage preferences: machine {client.name!r}")
        self.resize(620, 720)

        self.status = QLabel("", self)
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry = QPushButton("Try again", self)
        self.retry.hide()
        self.retry.clicked.connect(self.load)
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.retry)

        inner = QWidget(self)
        column = QVBoxLayout(inner)
        self.machine = Section(f"Machine {client.name!r}", inner)
        self.updates = Section("Updates (every machine)", inner)
        desktop = QGroupBox("This desktop", inner)
        self.start_at_login = QCheckBox("Start the moorage tray when you log in", desktop)
        self.start_at_login.setObjectName("field-start_at_login")
        self.start_at_login_error = QLabel("", desktop)
        self.start_at_login_error.setWordWrap(True)
        self.start_at_login_error.setStyleSheet("color: #c62828;")
        self.start_at_login_error.hide()
        desk = QVBoxLayout(desktop)
        desk.addWidget(self.start_at_login)
        desk.addWidget(self.start_at_login_error)
        column.addWidget(self.machine.group)
        column.addWidget(self.updates.group)
        column.addWidget(desktop)
        column.addStretch()
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Apply | QDialogButtonBox.StandardButton.Close, self
        )
        apply = self.buttons.button(QDialogButtonBox.StandardButton.Apply)
        assert apply is not None
        self.apply_button: QAbstractButton = apply
        self.apply_button.clicked.connect(self.apply)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.buttons)
        self._autostart = False
        self._out = 0

    # ----- loading -------------------------------------------------------------------

    def open(self) -> None:
        """Show the dialog with the settings read afresh; when it is shown already (the
        menu's Preferences… again), bring it to the front and keep what is being edited."""
        if self.isVisible():
            self.raise_()
            self.activateWindow()
            return
        self.load()
        super().open()

    def load(self) -> None:
        """Ask the agent for the config and the update settings (on workers)."""
        self.retry.hide()
        self._say("Loading the settings…")
        self.machine.loading()
        self.updates.loading()
        self._out = 2
        self._busy()
        self.calls.run(self.client.config, done=self._got_config, failed=self._config_failed)
        self.calls.run(self.client.update_view, done=self._got_update, failed=self._update_failed)
        self._autostart = autostart.is_enabled(self.autostart_env)
        self.start_at_login.setChecked(self._autostart)
        self.start_at_login_error.hide()

    def _loaded_one(self) -> None:
        self._out = max(0, self._out - 1)
        self._busy()
        if self._out == 0 and self.retry.isHidden():
            self._say("")

    def _got_config(self, view: ConfigView) -> None:
        self.machine.build(
            view.schema,
            view.values,
            f"Saved in {view.path}. Changes apply when the machine starts.",
            self._choose,
        )
        self._loaded_one()

    def _got_update(self, view: UpdateView) -> None:
        self.updates.build(view.schema, view.settings, "", self._choose)
        self._loaded_one()

    def _config_failed(self, exc: Exception) -> None:
        self._load_failed(self.machine, "Could not read the machine's settings", exc)

    def _update_failed(self, exc: Exception) -> None:
        self._load_failed(self.updates, "Could not read the update settings", exc)

    def _load_failed(self, section: Section, what: str, exc: Exception) -> None:
        text = f"{what}: {_explain(exc)}"
        section.failed(text)
        self._say(text)
        self.retry.show()
        self._loaded_one()

    def _choose(self) -> str | None:
        return self.choose_folder()

    def _choose_folder(self) -> str | None:
        chosen = QFileDialog.getExistingDirectory(
            self, "Share a folder with the machine", str(Path.home())
        )
        return chosen or None

    # ----- applying --------------------------------------------------------------------

    def apply(self) -> None:
        """Validate and save what changed; then, if needed, ask about a restart."""
        if self.saving or self._out:
            return
        self.machine.set_errors({})
        self.updates.set_errors({})
        self.start_at_login_error.hide()
        config_keys = self.machine.changed()
        update_keys = self.updates.changed()
        saved_autostart = self._apply_autostart()
        if saved_autostart is None:
            return
        if not config_keys and not update_keys:
            self._say("Saved." if saved_autostart else "Nothing changed.")
            return
        values = form.to_write(self.machine.fields, self.machine.values())
        updates = self.updates.values()
        update_changes = {k: updates[k] for k in update_keys}
        restart = form.restart_needed(self.machine.fields, config_keys)
        client = self.client

        def save() -> tuple[ConfigView | None, UpdateView | None, Status | None]:
            if config_keys:
                client.validate_config(values)
            update_view = client.update_settings(update_changes) if update_changes else None
            config_view = client.write_config(values) if config_keys else None
            status = client.status_or_files() if restart else None
            return config_view, update_view, status

        self.saving = True
        self._busy()
        self._say("Saving…")
        self.calls.run(
            save, done=lambda result: self._saved(result, restart), failed=self._save_failed
        )

    def _apply_autostart(self) -> bool | None:
        """Turn start at login on or off if it changed: whether it did, None on failure."""
        wanted = self.start_at_login.isChecked()
        if wanted == self._autostart:
            return False
        try:
            autostart.set_enabled(wanted, self.autostart_env)
        except OSError as exc:
            self.start_at_login_error.setText(
                f"Could not {'write' if wanted else 'remove'} "
                f"{autostart.user_entry(self.autostart_env)}: {exc.strerror or exc}"
            )
            self.start_at_login_error.show()
            return None
        self._autostart = wanted
        return True

    def _saved(
        self,
        result: tuple[ConfigView | None, UpdateView | None, Status | None],
        restart: list[form.Field],
    ) -> None:
        config_view, update_view, status = result
        self.saving = False
        self._busy()
        if config_view is not None:
            self.machine.loaded = {
                f.key: config_view.values.get(f.key, f.default) for f in self.machine.fields
            }
        if update_view is not None:
            self.updates.loaded = {
                f.key: update_view.settings.get(f.key, f.default) for f in self.updates.fields
            }
        labels = form.listing([f.label for f in restart])
        if not restart:
            self._say("Saved.")
        elif status is not None and status.state in RUNNING:
            self._say("Saved.")
            self.ask(
                "Restart the machine?",
                f"Restart machine {self.client.name!r} now to apply {labels}?\n\n"
                "Restarting stops its running containers.",
                [RESTART_NOW, LATER],
                lambda answer: self._answered(answer, labels),
            )
        else:
            self._say(f"Saved. {labels}: the change applies when the machine starts.")

    def _answered(self, answer: str | None, labels: str) -> None:
        if answer != RESTART_NOW:
            self._say(f"Saved. {labels}: the change applies at the machine's next start.")
            return
        self._say(f"Saved. Restarting machine {self.client.name!r} to apply {labels}…")
        if self.receivers(SIGNAL("restart_requested()")) > 0:
            self.restart_requested.emit()
            return
        self.calls.run(
            lambda: self.client.request("restart"),
            failed=lambda exc: self._say(f"Could not restart: {_explain(exc)}"),
        )

    def _save_failed(self, exc: Exception) -> None:
        self.saving = False
        self._busy()
        if isinstance(exc, ConfigError):
            known = [*self.machine.editors, *self.updates.editors]
            by_key, rest = form.problems_by_key(exc.problems, known)
            self.machine.set_errors(by_key)
            self.updates.set_errors(by_key)
            count = sum(len(p) for p in by_key.values()) + len(rest)
            text = f"Not saved: {count} problem{'s' if count != 1 else ''}, shown by each setting."
            if rest:
                text = "Not saved:\n" + "\n".join(rest)
                if by_key:
                    text += "\nand the problems shown by each setting."
            self._say(text)
            return
        self._say(f"Not saved: {_explain(exc)}")

    # ----- telling the user --------------------------------------------------------------

    def _busy(self) -> None:
        self.apply_button.setEnabled(not self.saving and self._out == 0)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _ask(
        self, title: str, text: str, buttons: list[str], then: Callable[[str | None], None]
    ) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, self
        )
        for i, label in enumerate(buttons):
            role = (
                QMessageBox.ButtonRole.RejectRole
                if label in (LATER, "Cancel")
                else QMessageBox.ButtonRole.AcceptRole
            )
            button = box.addButton(label, role)
            if i == 0:
                box.setDefaultButton(button)

        def done(_: int) -> None:
            clicked = box.clickedButton()
            if box in self._boxes:
                self._boxes.remove(box)
            then(clicked.text().replace("&", "") if clicked is not None else None)

        box.finished.connect(done)
        self._boxes.append(box)
        box.open()
