"""The guest's boot-log protocol: what the guest says on its serial console, as events.

The guest scripts (``guest/preinit.sh``, ``guest/boot.sh`` and the services it
starts) write lines that start with ``moorage: `` to ``/dev/console``, which the
hypervisor copies into the machine's serial log. The host follows that file while
the guest boots. This module is the one parser of those lines, kept next to the
scripts that write them so the two change together.

What the guest writes (``STEP``, ``NAME``, ``PATH`` … stand for values)::

    moorage: error: no writable root for the guest (STEP)   preinit.sh, boot fails
    moorage: init                                           boot.sh starts
    moorage: error: no config disk                          boot.sh stops
    moorage: config NAME
    moorage: error: no NIC with MAC MAC                     boot.sh goes on without it
    moorage: network
    moorage: error: no data disk                            boot.sh stops
    moorage: formatting new data disk
    moorage: error: data disk needs manual repair (e2fsck exit N); not mounting it
    moorage: error: cannot mount data disk                  boot.sh stops
    moorage: data SIZE
    moorage: shared PATH (MECHANISM)                        one per mounted host folder
    moorage: warning: the shared folder PATH could not be mounted (MECHANISM)
    moorage: boot done                                      boot.sh is finished
    moorage: dockerd starting without shared folders        run-dockerd.sh
    moorage: dockerd starting                               run-dockerd.sh, each time init
                                                            starts dockerd (it respawns it)
    moorage: shutting down                                  shutdown.sh
    moorage: halted                                         shutdown.sh

How a line becomes events (``parse_line``), in this order:

- ``moorage: error…``: an ``error`` whose text is what follows ``error`` and its
  colon (``no config disk``). The host treats any error as a failed boot.
- ``moorage: warning: TEXT``: a ``warning`` with TEXT, and nothing else.
- ``moorage: shared PATH (MECHANISM)``: a ``shared`` with the host folder PATH,
  then a ``progress`` with the whole message.
- ``moorage: boot done…``: a ``progress`` with the message, then ``done``.
- ``moorage: dockerd starting`` (only that): a ``progress`` with the message, then
  ``dockerd``. The host counts these: a dockerd that exits as soon as it starts is
  started again and again by init, and never answers.
- any other ``moorage: TEXT``: a ``progress`` with TEXT.
- lines not starting with ``moorage: `` (the kernel's, e2fsck's): nothing.

A new kind of line the guest writes is a ``progress`` unless this module learns it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PREFIX = "moorage: "
_ERROR = PREFIX + "error"
_WARNING = PREFIX + "warning: "
_SHARED = PREFIX + "shared "
_DONE = PREFIX + "boot done"
_DOCKERD = PREFIX + "dockerd starting"

BootEventKind = Literal["error", "warning", "shared", "progress", "done", "dockerd"]


@dataclass(frozen=True)
class BootEvent:
    """One thing the guest said while booting. ``text`` depends on ``kind``: the
    message for ``error``, ``warning`` and ``progress``, the host folder's path for
    ``shared``, the guest's last message for ``done``, the message for ``dockerd``."""

    kind: BootEventKind
    text: str


def parse_line(line: str) -> list[BootEvent]:
    """The events in one serial-log line (without its line break), in the order above."""
    if not line.startswith(PREFIX):
        return []
    if line.startswith(_ERROR):
        return [BootEvent("error", line.removeprefix(_ERROR).lstrip(":").strip())]
    if line.startswith(_WARNING):
        return [BootEvent("warning", line.removeprefix(_WARNING))]
    message = line.removeprefix(PREFIX)
    events: list[BootEvent] = []
    if line.startswith(_SHARED):
        events.append(BootEvent("shared", line.removeprefix(_SHARED).rsplit(" (", 1)[0]))
    events.append(BootEvent("progress", message))
    if line.startswith(_DONE):
        events.append(BootEvent("done", message))
    elif line.rstrip() == _DOCKERD:
        events.append(BootEvent("dockerd", message))
    return events


class BootLogReader:
    """Follows a serial log: each ``read_new`` returns the events of the whole lines
    written since the previous call.

    The guest may be half way through writing the last line, so a line counts only
    once its line break is there. A missing file means the hypervisor has not made it
    yet: no events. A log that was replaced or truncated (a new boot writes a new one)
    is read again from its start. Make one reader per boot all the same: a file that
    replaced a deleted one may get its inode number, and if it has also grown past
    what was read of the old one, nothing tells the two apart.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._file_id: tuple[int, int] | None = None

    def read_new(self) -> list[BootEvent]:
        try:
            with self.path.open("rb") as f:
                st = os.fstat(f.fileno())
                file_id = (st.st_dev, st.st_ino)
                if file_id != self._file_id or st.st_size < self._offset:
                    self._file_id, self._offset = file_id, 0
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        # Cut after the last b"\n": in UTF-8 it is never inside a character, so the
        # bytes before it decode on their own.
        end = data.rfind(b"\n") + 1
        self._offset += end
        text = data[:end].decode(errors="replace")
        return [event for line in text.splitlines() for event in parse_line(line)]
