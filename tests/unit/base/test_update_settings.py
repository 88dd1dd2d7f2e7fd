from __future__ import annotations

from pathlib import Path

import pytest

from moorage import paths, update_settings
from moorage.errors import ConfigError

README = Path(__file__).parents[3] / "README.md"


def test_the_file_is_app_wide_beside_machines_and_under_moorage_home(moorage_home: Path) -> None:
    assert paths.update_config_file() == moorage_home / "config" / "update.toml"
    assert paths.update_config_file().parent == paths.MachinePaths("x").config_file.parents[2]
    assert paths.updates_dir().is_relative_to(moorage_home)


def test_defaults_then_every_problem_at_once(tmp_path: Path) -> None:
    assert update_settings.load(tmp_path / "none.toml") == update_settings.UpdateSettings()
    with pytest.raises(ConfigError) as caught:
        update_settings.validate(
            {"channel": "nightly", "check": "yes", "url": "ftp://x", "root": "rel", "colour": 1},
            "update.toml",
        )
    text = "\n".join(caught.value.problems)
    for needle in ("unknown key 'colour'", "channel = 'nightly'", "check = 'yes' has the wrong type",
                   "url = 'ftp://x'", "root = 'rel'"):  # fmt: skip
        assert needle in text


def test_write_keeps_other_keys_and_refuses_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "update.toml"
    update_settings.write(path, {"url": "https://updates.example/repo"})
    settings = update_settings.write(path, {"channel": "beta"})
    assert (settings.url, settings.channel, settings.check) == (
        "https://updates.example/repo", "beta", True)  # fmt: skip
    with pytest.raises(ConfigError):
        update_settings.write(path, {"channel": "nightly"})
    assert update_settings.load(path).channel == "beta"


def test_schema_json_names_every_key() -> None:
    keys = [o["key"] for o in update_settings.schema_json()]
    assert keys == ["url", "channel", "check", "auto_install", "root"]


def test_readme_shows_the_table_from_the_schema() -> None:
    assert update_settings.markdown_table() in README.read_text(), (
        "paste update_settings.markdown_table() into README.md's Updates section"
    )
