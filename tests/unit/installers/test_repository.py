"""The update repository tooling (``installers/repository.py``, ``scripts/release``)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root

from moorage.errors import UpdateError
from moorage.installers import release
from moorage.installers.repository import CHANNELS, ROLES, Keys, Repository, files_of
from tests.helpers.update_repo import new_repo, release_files


def _publish(repo: Repository, dist: Path, version: str) -> None:
    if not repo.exists():
        repo.create()
    repo.publish(version, files_of(release_files(dist, version)), f"notes {version}")


def test_publish_creates_the_repository_with_private_keys_outside_it(tmp_path: Path) -> None:
    release_files(tmp_path / "dist", "1.0.0")
    code = release.main(["publish", "1.0.0", "--repo", str(tmp_path / "repo"), "--keys",
                         str(tmp_path / "keys"), "--dist", str(tmp_path / "dist")])  # fmt: skip
    assert code == 0
    meta = tmp_path / "repo" / "metadata"
    assert (meta / "1.root.json").is_file() and (meta / "timestamp.json").is_file()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    for role in ROLES:
        assert stat.S_IMODE((tmp_path / "keys" / f"{role}.pem").stat().st_mode) == 0o600
    assert not list((tmp_path / "repo").rglob("*.pem"))
    root = Metadata[Root].from_file(str(meta / "1.root.json")).signed
    assert root.consistent_snapshot
    repo = new_repo(tmp_path)
    assert [r.version for r in repo.index("beta").releases] == ["1.0.0"]
    assert repo.index("stable").releases == []


def test_channels_are_delegated_to_keys_of_their_own(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.create()
    delegations = repo.load("targets").signed.delegations
    keyids = {name: role.keyids for name, role in delegations.roles.items()}
    assert set(keyids) == set(CHANNELS)
    assert not set(keyids["beta"]) & set(keyids["stable"])
    assert delegations.roles["stable"].paths == ["stable/*", "stable/*/*"]
    assert delegations.roles["stable"].terminating


def test_promote_signs_the_same_bytes_for_stable(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    _publish(repo, tmp_path / "dist", "1.0.0")
    stable_v = repo.load("stable").signed.version
    repo.promote("1.0.0")
    beta, stable = repo.load("beta").signed, repo.load("stable").signed
    assert stable.version == stable_v + 1
    for path, info in beta.targets.items():
        if path.endswith("releases.json"):
            continue
        twin = stable.targets["stable/" + path.removeprefix("beta/")]
        assert (twin.length, twin.hashes) == (info.length, info.hashes)
        name = path.rpartition("/")[2]
        a = tmp_path / "repo/targets/beta/1.0.0" / f"{info.hashes['sha256']}.{name}"
        b = tmp_path / "repo/targets/stable/1.0.0" / f"{info.hashes['sha256']}.{name}"
        assert a.stat().st_ino == b.stat().st_ino  # one copy of the bytes
    assert repo.index("stable").releases[0].notes == "notes 1.0.0"


def test_a_release_never_changes_and_only_what_is_on_beta_is_promoted(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    _publish(repo, tmp_path / "dist", "1.0.0")
    with pytest.raises(UpdateError, match="already on beta"):
        repo.publish("1.0.0", files_of(tmp_path / "dist" / "1.0.0"), "")
    with pytest.raises(UpdateError, match="not on beta"):
        repo.promote("2.0.0")
    with pytest.raises(UpdateError, match="not a release version"):
        repo.publish("two", [], "")


def test_refresh_signs_new_snapshot_and_timestamp(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.create()
    before = repo.load("timestamp").signed
    snapshot, timestamp = repo.refresh()
    after = repo.load("timestamp").signed
    assert timestamp == before.version + 1 and after.snapshot_meta.version == snapshot
    assert after.expires >= before.expires
    assert release.main(["refresh", "--repo", str(repo.folder), "--keys",
                         str(repo.keys.folder)]) == 0  # fmt: skip
    assert repo.load("timestamp").signed.version == timestamp + 1


def test_rotating_root_chains_the_new_root_to_the_old(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.create()
    old = Metadata[Root].from_file(str(repo.metadata_dir / "1.root.json"))
    new_id = repo.rotate("root")
    new = Metadata[Root].from_file(str(repo.metadata_dir / "2.root.json"))
    assert new.signed.roles["root"].keyids == [new_id]
    old.signed.verify_delegate("root", new.signed_bytes, new.signatures)  # old trusts new
    new.signed.verify_delegate("root", new.signed_bytes, new.signatures)
    assert list((repo.keys.folder / "retired").glob("root-*.pem"))


def test_rotating_a_channel_key_changes_only_its_delegation(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.create()
    stable_keys = repo.load("targets").signed.delegations.roles["stable"].keyids
    new_id = repo.rotate("beta")
    roles = repo.load("targets").signed.delegations.roles
    assert roles["beta"].keyids == [new_id] and roles["stable"].keyids == stable_keys
    beta = repo.load("beta")
    repo.load("targets").signed.verify_delegate("beta", beta.signed_bytes, beta.signatures)


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.create()
    repo.keys.path("timestamp").chmod(0o644)
    with pytest.raises(UpdateError, match="readable by others"):
        repo.refresh()


def test_show_and_a_missing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = new_repo(tmp_path)
    _publish(repo, tmp_path / "dist", "1.0.0")
    assert release.main(["show", "--repo", str(repo.folder)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["beta"]["releases"] == ["1.0.0"] and shown["stable"]["releases"] == []
    other = Repository(repo.folder, Keys(tmp_path / "elsewhere"))
    assert release.main(["promote", "1.0.0", "--repo", str(repo.folder), "--keys",
                         str(other.keys.folder)]) == 1  # fmt: skip
    assert "no stable key" in capsys.readouterr().err
