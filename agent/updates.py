"""The agent's side of updates: the API's update routes over ``installers.service``,
the download of ``apply`` in a thread of its own (its progress as events), and the
periodic check.

Updates are app-wide, so every machine's agent can answer; the periodic check runs in
each agent but ``Updates.periodic`` lets one at a time ask the server, and only when
it is due (about once a day, an hour after a failure, never with ``check = false``).
A new version is announced once, as an ``update`` event.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from moorage import update_settings
from moorage.api.schema import Accepted, InstallCommand, OperationRunning, UpdateView, error_body
from moorage.errors import AgentError, MoorageError
from moorage.installers.service import Applied, Updates, offer_json
from moorage.vm.image import selection

if TYPE_CHECKING:
    from moorage.agent.machine import MachineAgent

log = logging.getLogger("moorage.agent")

CHECK_TICK = 60.0
"""How often the periodic check asks whether it is due (cheap: a file read)."""
PROGRESS_EVERY = 0.5


class AgentUpdates:
    def __init__(self, agent: MachineAgent, service: Updates | None = None) -> None:
        self.agent = agent
        self.service = service or Updates()
        self._lock = threading.Lock()
        self._applying = False
        self._last: Applied | None = None

    # ----- answers ----------------------------------------------------------------

    def view(self) -> UpdateView:
        service = self.service
        state = service.state()
        install = None
        last = self._last
        if last is not None and last.install is not None:
            step = last.install
            install = InstallCommand(step.argv, step.privileged, step.version)
        settings = service.settings()
        return UpdateView(
            app_version=service.app_version,
            install_kind=service.kind,
            settings=asdict(settings),
            schema=update_settings.schema_json(),
            guest=asdict(selection.load(service.recipe)),
            last_check=state.last_check,
            last_error=state.last_error,
            offer=state.offer,
            skip=state.skip,
            install=install,
            messages=list(last.messages) if last is not None else [],
        )

    def check(self, downgrade: bool) -> UpdateView:
        self.service.check(allow_downgrade=downgrade)
        return self.view()

    def change_settings(self, values: dict[str, Any]) -> UpdateView:
        self.service.change_settings(values)
        return self.view()

    def skip(self, version: str | None) -> UpdateView:
        self.service.skip(version)
        return self.view()

    def rollback(self) -> UpdateView:
        self._last = self.service.rollback()
        return self.view()

    # ----- apply, in the background ---------------------------------------------------

    def apply(self, downgrade: bool) -> Accepted:
        """Begin downloading and staging; follow the events of op ``update`` to its end."""
        with self._lock:
            if self._applying:
                raise OperationRunning(
                    "an update is being applied already",
                    fix="follow it with `moorage update apply`",
                )
            self._applying = True
        since = self.agent.events.last_id
        threading.Thread(target=self._apply, args=(downgrade,), name="update", daemon=True).start()
        return Accepted(since, "update")

    def _apply(self, downgrade: bool) -> None:
        events = self.agent.events
        last_emit = [0.0]

        def say(message: str) -> None:
            events.emit("progress", message, op="update", phase="update")

        def progress(what: str, done: int, total: int) -> None:
            self.agent.touch()
            now = time.monotonic()
            if done < total and now - last_emit[0] < PROGRESS_EVERY:
                return
            last_emit[0] = now
            events.emit("progress", f"{what}: {done / 1e6:.1f} of {total / 1e6:.1f} MB",
                        op="update", phase="update", done=done, total=total)  # fmt: skip

        try:
            applied = self.service.apply(say, progress, allow_downgrade=downgrade)
            self._last = applied
            for message in applied.messages:
                say(message)
            events.emit("done", "the update is verified and staged" if applied.install or any(
                "staged" in m for m in applied.messages) else "nothing to update", op="update")  # fmt: skip
        except MoorageError as exc:
            body = error_body(exc)
            events.emit("error", body.message, op="update", code=body.code, fix=body.fix)
        except Exception as exc:
            log.exception("update apply")
            error = AgentError(
                f"unexpected error: {exc!r}", fix=f"see {self.agent.paths.agent_log}"
            )
            events.emit("error", error.message, op="update", code="agent", fix=error.fix)
        finally:
            with self._lock:
                self._applying = False

    # ----- the periodic check -------------------------------------------------------

    def tick(self) -> None:
        """One look: check if due, announce a new version as an ``update`` event."""

        def say(message: str) -> None:
            self.agent.events.emit("update", message)

        offer = self.service.periodic(say)
        if offer is not None:
            log.info("update check: %s", offer_json(offer).get("version") or "up to date")

    def forever(self, stop: threading.Event) -> None:
        try:
            self.service.note_started()
        except (OSError, MoorageError) as exc:
            log.warning("update state: %s", exc)
        while True:
            try:
                self.tick()
            except MoorageError as exc:
                log.warning("update check: %s", exc.message)  # quietly: tried again later
            except Exception:
                log.exception("update check failed")
            if stop.wait(CHECK_TICK):
                return
