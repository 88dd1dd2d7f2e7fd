"""Updates as the host agent offers them: check, apply, roll back, settings, the
periodic check. The agent carries these over its API; everything that decides is
here or in ``plan``.

What is kept, in ``paths.updates_dir()``:

    state.json          the last check (when, what it found or why it failed), the
                        skipped version, the app packages kept for rollback
    tuf/KEY/            TUF's trusted metadata, one folder per (server, root)
    partial/            downloads that broke off, resumed by the next try
    app/                the verified package of the app to install, and previous/
                        the one installed before it (``update rollback`` goes back)
    guest/              verified guest archives, removed once unpacked

How the app is updated depends on how it was installed (``install_kind``): from the
Debian package, dpkg stays the owner of the files, so the verified ``.deb`` goes
through the package manager, which the client runs with a privilege prompt
(``InstallStep``); from a git checkout only the guest image is updated and the user is
told to ``git pull`` (the checkout is theirs); anything else gets the verified wheel
and the pip command.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from moorage import __version__
from moorage import update_settings as settings_mod
from moorage.errors import MoorageError, UpdateError
from moorage.installers import guest
from moorage.installers.client import UpdateClient, UpdateOffline, source
from moorage.installers.plan import Installed, Offer, Part, plan
from moorage.installers.releases import Kind
from moorage.paths import update_config_file, updates_dir
from moorage.update_settings import UpdateSettings
from moorage.vm.image import selection

CHECK_EVERY = 24 * 3600.0
RETRY_EVERY = 3600.0
"""After a failed check (offline): try again this soon, quietly."""
SOURCE = Path(__file__).resolve().parents[1]
DEB_CURRENT = "/opt/moorage/current"

InstallKind = Literal["deb", "checkout", "pip"]
Say = Callable[[str], None]
Progress = Callable[[str, int, int], None]
"""(what, bytes so far, bytes in all) while a file downloads."""


def install_kind() -> InstallKind:
    """How this moorage was installed: by the Debian package (its environment lives
    under /opt/moorage), from a git checkout, or some other way (pip)."""
    here = Path(__file__).resolve()
    if here.is_relative_to("/opt/moorage") and Path("/usr/lib/moorage/wheels").is_dir():
        return "deb"
    if (SOURCE / ".git").exists() and (SOURCE / "pyproject.toml").is_file():
        return "checkout"
    return "pip"


def installed_version(kind: InstallKind) -> str:
    """The app version installed now. For the Debian package that is the environment
    ``/opt/moorage/current`` names, which an install switches while this process (an
    agent started before it) still runs the version it was started with."""
    if kind == "deb":
        with contextlib.suppress(OSError):
            return os.readlink(DEB_CURRENT)
    return __version__


APP_KINDS: dict[InstallKind, tuple[Kind, ...]] = {
    "deb": ("deb",),
    "checkout": (),
    "pip": ("wheel",),
}


@dataclass
class State:
    last_check: float | None = None
    last_error: str | None = None
    offer: dict[str, Any] | None = None
    skip: str | None = None
    notified: str | None = None
    app_pending: str | None = None
    """The verified package of the version being installed."""
    app_pending_version: str | None = None
    app_previous: str | None = None
    """The package of the version that ran before, kept for ``rollback``."""
    app_previous_version: str | None = None


@dataclass(frozen=True)
class InstallStep:
    """A command the client runs to install the app (a privilege prompt first when
    ``privileged``: sudo in a terminal, pkexec in a desktop session)."""

    argv: list[str]
    privileged: bool
    version: str


@dataclass
class Applied:
    """What ``apply`` or ``rollback`` did, and what is left for the client."""

    messages: list[str] = field(default_factory=list)
    install: InstallStep | None = None


def offer_json(offer: Offer) -> dict[str, Any]:
    return asdict(offer) | {"version": offer.version}


class Updates:
    def __init__(
        self,
        *,
        home: Path | None = None,
        settings_path: Path | None = None,
        recipe: str = "debian",
        app_version: str | None = None,
        kind: InstallKind | None = None,
    ) -> None:
        self.home = home or updates_dir()
        self.settings_path = settings_path or update_config_file()
        self.recipe = recipe
        self.kind: InstallKind = kind or install_kind()
        self._app_version = app_version

    @property
    def app_version(self) -> str:
        return self._app_version or installed_version(self.kind)

    @app_version.setter
    def app_version(self, version: str) -> None:
        self._app_version = version

    # ----- state ---------------------------------------------------------------

    @property
    def _state_file(self) -> Path:
        return self.home / "state.json"

    def state(self) -> State:
        try:
            data = json.loads(self._state_file.read_text())
            return State(**{k: v for k, v in data.items() if k in State.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return State()

    @contextmanager
    def _changing(self) -> Iterator[State]:
        """The state, locked against other agents, saved when the block ends."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.home / ".state.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.state()
            yield state
            tmp = self._state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
            os.replace(tmp, self._state_file)

    def settings(self) -> UpdateSettings:
        return settings_mod.load(self.settings_path)

    def change_settings(self, changes: dict[str, Any]) -> UpdateSettings:
        return settings_mod.write(self.settings_path, changes)

    def installed(self) -> Installed:
        return Installed(self.app_version, selection.load(self.recipe).boot(),
                         APP_KINDS[self.kind])  # fmt: skip

    def skip(self, version: str | None) -> None:
        with self._changing() as state:
            state.skip = version

    # ----- check -----------------------------------------------------------------

    def _client(self) -> UpdateClient:
        return UpdateClient(source(self.settings()), self.home)

    def check(self, *, allow_downgrade: bool = False) -> Offer:
        """Ask the channel what it has (verified by TUF), and what of it is for us."""
        client: UpdateClient | None = None
        try:
            settings = self.settings()
            client = self._client()
            index = client.index(settings.channel)
        except MoorageError as exc:
            with self._changing() as state:
                state.last_check, state.last_error = time.time(), exc.message
            raise
        finally:
            if client is not None:
                client.close()
        sel = selection.load(self.recipe)
        offer = plan(index, self.installed(), allow_downgrade=allow_downgrade,
                     skip=self.state().skip, failed_guests=frozenset(sel.failed))  # fmt: skip
        with self._changing() as state:
            state.last_check, state.last_error = time.time(), None
            state.offer = offer_json(offer)
        return offer

    def due(self, now: float | None = None) -> bool:
        """Whether the periodic check should run now: never when ``check = false``."""
        if not self.settings().check:
            return False
        state = self.state()
        if state.last_check is None:
            return True
        wait = RETRY_EVERY if state.last_error else CHECK_EVERY
        return (now if now is not None else time.time()) - state.last_check >= wait

    def periodic(self, say: Say, progress: Progress | None = None) -> Offer | None:
        """One periodic check, if due and no other agent runs one: announce a new
        version once (not a skipped one), stage it when ``auto_install`` is on.
        Offline, it fails quietly (the state says when it is tried again)."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.home / ".check.lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another machine's agent is checking
            if not self.due():
                return None
            try:
                offer = self.check()
            except UpdateOffline:
                return None
            version = offer.version
            if version is None or offer.skipped:
                return offer
            with self._changing() as state:
                fresh = state.notified != version
                state.notified = version
            if fresh:
                say(f"moorage {version} is available on {offer.channel}: `moorage update check` "
                    "shows what changed, `moorage update apply` installs it")  # fmt: skip
            if self.settings().auto_install:
                applied = self.apply(say, progress)
                if applied.install is not None:
                    say(f"moorage {applied.install.version} is downloaded and verified; "
                        "`moorage update apply` installs it (it asks for your password)")  # fmt: skip
            return offer

    # ----- apply -------------------------------------------------------------------

    def apply(self, say: Say, progress: Progress | None = None, *,
              allow_downgrade: bool = False) -> Applied:  # fmt: skip
        """Download and verify what the channel offers; stage the guest image; get the
        app's package ready for the client to install."""
        offer = self.check(allow_downgrade=allow_downgrade)
        applied = Applied()
        applied.messages.extend(offer.held)
        if not offer.parts:
            applied.messages.append(
                f"up to date: {self.app_version} on {offer.channel}"
                + (f" (the channel's newest is {offer.newest})" if offer.newest else "")
            )
        client = self._client()
        try:
            for part in offer.parts:
                if part.what == "guest":
                    applied.messages.append(self._apply_guest(client, part, progress))
                else:
                    applied.install = self._fetch_app(client, part, offer.channel, progress)
                    applied.messages.append(
                        f"moorage {part.version} is downloaded and verified"
                        + (" (a downgrade, as asked)" if part.downgrade else "")
                    )
        finally:
            client.close()
        if self.kind == "checkout":
            applied.messages.append(
                f"this moorage runs from a git checkout ({SOURCE}); it is yours to update: "
                "`git pull` there"
            )
        return applied

    def _apply_guest(self, client: UpdateClient, part: Part, progress: Progress | None) -> str:
        name = part.target.rpartition("/")[2]
        archive = self.home / "guest" / name
        client.fetch(part.target, archive, _bytes(progress, f"guest image {part.version}"))
        guest.install(archive, self.recipe, part.version)
        archive.unlink(missing_ok=True)
        guest.prune(self.recipe)
        return (
            f"the guest image {part.version} is staged: each machine boots it at its next "
            "`moorage restart` (and goes back to the current one if its engine does not start)"
        )

    def _fetch_app(self, client: UpdateClient, part: Part, channel: str,
                   progress: Progress | None) -> InstallStep:  # fmt: skip
        app = self.home / "app"
        name = part.target.rpartition("/")[2]
        package = client.fetch(part.target, app / name, _bytes(progress, f"moorage {part.version}"))
        previous = self._keep_previous(client, channel)
        with self._changing() as state:
            state.app_pending, state.app_pending_version = str(package), part.version
            if previous is not None:
                state.app_previous, state.app_previous_version = str(previous), self.app_version
        return self._install_step(package, part.version)

    def _keep_previous(self, client: UpdateClient, channel: str) -> Path | None:
        """The running version's own package, verified, for ``rollback``: from the
        channel when it still lists it, else the one kept last time."""
        kind = APP_KINDS[self.kind]
        try:
            release = client.index(channel).get(self.app_version)
        except UpdateError:
            release = None
        target = next((release.file(k) for k in kind if release and release.file(k)), None)
        if target is None:
            kept = self.state().app_previous
            return (
                Path(kept)
                if kept and self.state().app_previous_version == self.app_version
                else None
            )
        dest = self.home / "app" / "previous" / target.rpartition("/")[2]
        return client.fetch(target, dest)

    def _install_step(self, package: Path, version: str) -> InstallStep:
        if self.kind == "deb":
            argv = ["apt-get", "install", "-y", "--allow-downgrades", str(package)]
            return InstallStep(argv, True, version)
        return InstallStep([sys.executable, "-m", "pip", "install", str(package)], False, version)

    def note_started(self) -> None:
        """The app started: once it is the version that was being installed, that
        install is done; packages older than the previous one go."""
        state = self.state()
        if state.app_pending_version != self.app_version:
            return
        with self._changing() as state:
            keep = {state.app_pending, state.app_previous}
            state.app_pending = state.app_pending_version = None
        for folder in (self.home / "app", self.home / "app" / "previous"):
            for f in folder.glob("*") if folder.is_dir() else ():
                if f.is_file() and str(f) not in keep:
                    f.unlink()

    # ----- rollback ------------------------------------------------------------------

    def rollback(self) -> Applied:
        """Go back: the guest image to the previous one (at the next restart), and the
        app to the package kept from before its update."""
        applied = Applied()
        sel = selection.load(self.recipe)
        if sel.previous is not None and sel.previous != sel.current:
            folder = selection.release_dir(self.recipe, sel.previous)
            if sel.previous == selection.LOCAL or folder.is_dir():
                selection.stage(self.recipe, sel.previous)
                applied.messages.append(
                    f"the guest image goes back from {sel.current} to {sel.previous} at the "
                    "next `moorage restart`"
                )
        state = self.state()
        if state.app_previous and Path(state.app_previous).is_file():
            version = state.app_previous_version or "the previous version"
            if version != self.app_version:
                applied.install = self._install_step(Path(state.app_previous), version)
                applied.messages.append(f"moorage {version} is ready to be installed again")
        if not applied.messages:
            raise UpdateError(
                "there is nothing to go back to: no earlier guest image or app package is kept",
                fix="`moorage update check` shows what the channel has",
            )
        return applied


def _bytes(progress: Progress | None, what: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(what, done, total)
