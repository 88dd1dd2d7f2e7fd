"""Updates through the agent's API (the real server and client) against a repository
served on 127.0.0.1, and the agent's periodic check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage import update_settings
from moorage.api.schema import Event
from moorage.errors import ConfigError, UpdateError
from moorage.installers.repository import files_of
from moorage.paths import update_config_file
from moorage.vm.image import selection
from tests.helpers.update_repo import ServerKnobs, new_repo, release_files, serve
from tests.unit.agent import test_server
from tests.unit.agent.conftest import Machine
from tests.unit.agent.test_server import Served

Repo = tuple[str, ServerKnobs, Path]
served = test_server.served  # the real server and client over an agent


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    r = new_repo(tmp_path)
    r.create()
    r.publish("1.0.0", files_of(release_files(tmp_path / "dist", "1.0.0")), "the first")
    r.promote("1.0.0")
    with serve(r.folder) as (url, knobs):
        update_settings.write(update_config_file(), {
            "url": url, "root": str(r.metadata_dir / "1.root.json")})  # fmt: skip
        yield url, knobs, tmp_path


def test_check_and_apply_through_the_api(served: Served, repo: Repo) -> None:
    client = served.client
    view = client.update_check()
    assert view.install_kind == "checkout" and view.offer is not None
    assert view.offer["version"] == "1.0.0" and view.offer["notes"] == [["1.0.0", "the first"]]
    accepted = client.update_apply()
    events: list[Event] = list(client.follow(accepted))
    assert events[-1].kind == "done" and events[-1].op == "update"
    sized = [e for e in events if e.total]
    assert sized and sized[-1].done == sized[-1].total
    view = client.update_view()
    assert view.guest["staged"] == "1.0.0" and view.install is None
    assert any("git pull" in m for m in view.messages)
    assert selection.release_dir("debian", "1.0.0").is_dir()


def test_settings_are_validated_and_written(served: Served, repo: Repo) -> None:
    with pytest.raises(ConfigError, match="channel"):
        served.client.update_settings({"channel": "nightly"})
    view = served.client.update_settings({"channel": "beta", "check": False})
    assert (view.settings["channel"], view.settings["check"]) == ("beta", False)
    assert update_settings.load(update_config_file()).channel == "beta"
    assert [o["key"] for o in view.schema][:2] == ["url", "channel"]


def test_skip_and_nothing_to_roll_back(served: Served, repo: Repo) -> None:
    assert served.client.update_skip("1.0.0").skip == "1.0.0"
    assert served.client.update_check().offer["skipped"]  # type: ignore[index]
    with pytest.raises(UpdateError, match="nothing to go back to"):
        served.client.update_rollback()


def test_a_failed_apply_ends_in_an_error_event(served: Served, repo: Repo) -> None:
    _url, knobs, _tmp = repo
    knobs.down = True
    events = list(served.client.follow(served.client.update_apply()))
    assert events[-1].kind == "error" and events[-1].code == "update"
    assert "cannot be reached" in events[-1].message


def test_the_periodic_check_announces_once_and_stops_when_turned_off(
    machine: Machine, repo: Repo
) -> None:
    _url, knobs, _tmp = repo
    agent = machine.agent()
    since = agent.events.last_id
    agent.updates.tick()
    agent.updates.tick()  # not due again for a day
    said = [e for e in agent.events.after(since, 0) if e.kind == "update"]
    assert len(said) == 1 and "1.0.0 is available on stable" in said[0].message
    update_settings.write(update_config_file(), {"check": False})
    asked = len(knobs.requests)
    state = agent.updates.service.home / "state.json"
    state.unlink()  # as if it had never checked: only the setting holds it back
    agent.updates.tick()
    assert len(knobs.requests) == asked


def test_the_cli_checks_applies_and_switches_channel(served: Served, repo: Repo) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from moorage.cli.main import main  # noqa: PLC0415

    runner = CliRunner()
    shown = runner.invoke(main, ["update", "check"])
    assert shown.exit_code == 0, shown.output
    assert "available: guest 1.0.0" in shown.output and "the first" in shown.output
    applied = runner.invoke(main, ["update", "apply", "-y"])
    assert applied.exit_code == 0, applied.output
    assert "staged" in applied.output and "git pull" in applied.output
    assert selection.load("debian").staged == "1.0.0"
    switched = runner.invoke(main, ["update", "channel", "beta"])
    assert "following beta" in switched.output
    assert update_settings.load(update_config_file()).channel == "beta"
    bad = runner.invoke(main, ["update", "set", "check", "maybe"])
    assert bad.exit_code == 1 and "wrong type" in bad.output
