"""The updater against a real repository on a real HTTP server on 127.0.0.1, through
python-tuf's real client: channels, each attack TUF must refuse, resumed downloads,
the user's choices (skip, no checks, no silent downgrade), rollback."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from moorage.installers.client import UpdateOffline, UpdateRefused
from moorage.installers.repository import Expiry
from moorage.installers.service import RETRY_EVERY, Updates
from moorage.vm.image import manifest, selection
from tests.unit.installers.conftest import Env, tree

DEB = "moorage_{v}_amd64.deb"
GUEST = "moorage-guest-debian-{v}.tar.gz"


def _untouched(client: Updates, but: tuple[str, ...] = ()) -> dict[str, object]:
    """What a refused update must leave as it was: TUF's trusted metadata (``but`` the
    roles TUF verified and kept on the way to the refusal), the downloads, the guest
    image selection and the image folders."""
    tuf = tree(client.home / "tuf") if (client.home / "tuf").exists() else {}
    return {
        "tuf": {k: v for k, v in tuf.items() if not k.endswith(but)} if but else tuf,
        "app": tree(client.home / "app") if (client.home / "app").exists() else {},
        "selection": selection.load("debian"),
        "images": sorted(p.name for p in selection.release_dir("debian", "x").parent.glob("*"))
        if selection.release_dir("debian", "x").parent.exists() else [],
    }  # fmt: skip


def test_publish_v1_and_install_it(env: Env) -> None:
    env.publish("1.0.0", promote=True)
    client = env.client("a", app="0.9.0")
    offer = client.check()
    assert offer.version == "1.0.0" and [p.what for p in offer.parts] == ["app", "guest"]
    assert offer.notes == [("1.0.0", "notes of 1.0.0")]
    seen: list[tuple[str, int, int]] = []
    applied = client.apply(
        lambda _m: None, lambda what, done, total: seen.append((what, done, total))
    )
    assert applied.install is not None and applied.install.privileged
    package = Path(applied.install.argv[-1])
    assert applied.install.argv[:2] == ["apt-get", "install"]
    assert package.read_bytes() == (env.tmp / "dist/1.0.0" / DEB.format(v="1.0.0")).read_bytes()
    assert selection.load("debian").staged == "1.0.0"
    manifest.verify(selection.release_dir("debian", "1.0.0"), full=True)
    assert seen and seen[-1][1] == seen[-1][2]  # progress reached the end
    assert not list((client.home / "partial").glob("*"))


def test_beta_first_and_stable_only_once_promoted(env: Env) -> None:
    env.publish("1.0.0", promote=True)
    env.publish("2.0.0")
    beta, stable = env.client("beta", channel="beta"), env.client("stable")
    assert beta.check().version == "2.0.0"
    assert {p.version for p in stable.check().parts} == {"1.0.0"}  # the guest, for a local image
    env.repo.promote("2.0.0")
    offer = stable.check()
    assert offer.version == "2.0.0" and offer.notes == [("2.0.0", "notes of 2.0.0")]


def test_a_tampered_target_is_refused_and_nothing_changes(env: Env) -> None:
    env.publish("2.0.0", promote=True)
    path = env.target_url("stable", "2.0.0", DEB.format(v="2.0.0"))
    data = bytearray((env.tmp / "dist/2.0.0" / DEB.format(v="2.0.0")).read_bytes())
    data[100] ^= 0x01
    env.knobs.override[path] = bytes(data)
    client = env.client("a")
    client.check()
    before = _untouched(client)
    with pytest.raises(UpdateRefused, match="LengthOrHashMismatch"):
        client.apply(lambda _m: None)
    assert _untouched(client) == before
    assert not list((client.home / "partial").glob("*"))  # a bad part is never resumed


def test_expired_timestamp_is_refused_freeze(env: Env) -> None:
    client = env.client("a")
    client.check()
    before = _untouched(client)
    env.repo.expiry = Expiry(timestamp=timedelta(seconds=-60))
    env.repo.refresh()
    env.publish("2.0.0", promote=True)  # a new release the frozen server hides
    with pytest.raises(UpdateRefused, match="Expired"):
        client.check()
    assert _untouched(client) == before


def test_older_metadata_served_again_is_refused_rollback(env: Env) -> None:
    old = (env.repo.metadata_dir / "timestamp.json").read_bytes()
    env.publish("2.0.0", promote=True)
    client = env.client("a")
    assert client.check().version == "2.0.0"
    before = _untouched(client)
    env.knobs.override["/metadata/timestamp.json"] = old
    with pytest.raises(UpdateRefused, match="BadVersionNumber"):
        client.check()
    assert _untouched(client) == before


def test_a_snapshot_that_does_not_match_targets_is_refused_mix_and_match(env: Env) -> None:
    client = env.client("a")
    client.check()
    old_stable = (env.repo.metadata_dir / "1.stable.json").read_bytes()
    env.publish("2.0.0", promote=True)  # stable.json is version 2 now, and snapshot says so
    # Timestamp and snapshot are genuine and newer: TUF keeps them; the old
    # stable.json served under the name the snapshot gives version 2 is refused.
    before = _untouched(client, but=("/timestamp.json", "/snapshot.json"))
    env.knobs.override["/metadata/2.stable.json"] = old_stable
    with pytest.raises(UpdateRefused, match=r"BadVersionNumber|expected version"):
        client.check()
    assert _untouched(client, but=("/timestamp.json", "/snapshot.json")) == before


def test_stable_metadata_signed_only_by_the_beta_key_is_refused(env: Env) -> None:
    env.publish("2.0.0", promote=True)
    client = env.client("a")
    # What a thief of the beta key could do: sign stable's metadata with it.
    forged = Metadata.from_file(str(env.repo.metadata_dir / "2.stable.json"))
    forged.signatures.clear()
    forged.sign(env.repo.keys.signer("beta"))
    env.knobs.override["/metadata/2.stable.json"] = forged.to_bytes()
    with pytest.raises(UpdateRefused, match="Unsigned"):
        client.check()
    assert _untouched(client)["app"] == {}


def test_a_beta_release_never_reaches_stable_through_the_beta_role(env: Env) -> None:
    env.publish("2.0.0")
    stable = env.client("stable", app="1.0.0")
    assert stable.check().parts == []
    asked = [p for p, _r in env.knobs.requests if p.endswith(".beta.json")]
    assert not asked  # a stable client never even reads the beta role


def test_an_interrupted_download_resumes(env: Env) -> None:
    env.publish("2.0.0", promote=True, deb=False)
    name = GUEST.format(v="2.0.0")
    path = env.target_url("stable", "2.0.0", name)
    size = (env.tmp / "dist/2.0.0" / name).stat().st_size
    env.knobs.cut_after[path] = size // 2
    client = env.client("a")
    with pytest.raises(UpdateOffline):
        client.apply(lambda _m: None)
    (part,) = (client.home / "partial").glob("*.part")
    assert 0 < part.stat().st_size < size
    client.apply(lambda _m: None)
    ranges = [r for p, r in env.knobs.requests if p == path]
    assert ranges[0] is None and ranges[-1] == f"bytes={part_size(ranges[-1])}-"
    assert part_size(ranges[-1]) >= size // 2 - 1 and selection.load("debian").staged == "2.0.0"
    assert not part.exists()


def part_size(header: str | None) -> int:
    assert header is not None
    return int(header.removeprefix("bytes=").rstrip("-"))


def test_offline_fails_quietly_and_is_retried_later(env: Env) -> None:
    client = env.client("a")
    env.knobs.down = True
    said: list[str] = []
    assert client.periodic(said.append) is None
    state = client.state()
    assert said == [] and state.last_error and "cannot be reached" in state.last_error
    assert not client.due(state.last_check + 60)
    assert client.due(state.last_check + RETRY_EVERY + 1)


def test_turning_checks_off_stops_them(env: Env) -> None:
    env.publish("2.0.0", promote=True)
    client = env.client("a", check=False)
    assert client.periodic(lambda _m: None) is None
    assert env.knobs.requests == []


def test_a_new_version_is_announced_once_and_a_skipped_one_never(env: Env) -> None:
    env.publish("2.0.0", promote=True)
    client, said = env.client("a"), []
    client.periodic(said.append)
    assert len(said) == 1 and "2.0.0 is available on stable" in said[0]
    client.skip("2.0.0")
    client._changing().__enter__  # noqa: B018 - the lock is there
    state = client.state()
    state_file = client.home / "state.json"
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "last_check": 0,
                                      "notified": None}))  # fmt: skip
    assert client.periodic(said.append).skipped and len(said) == 1
    assert state.skip == "2.0.0" and client.check().skipped


def test_switching_to_stable_never_downgrades_silently(env: Env) -> None:
    env.publish("1.0.0", promote=True)
    env.publish("2.0.0")
    client = env.client("a", channel="beta", app="1.0.0")
    client.apply(lambda _m: None)
    selection.promote("debian", "2.0.0")  # it booted
    client.app_version = "2.0.0"
    client.change_settings({"channel": "stable"})
    offer = client.check()
    assert offer.parts == [] and any(
        "stays at 2.0.0 until stable passes it" in h for h in offer.held
    )
    down = client.check(allow_downgrade=True)
    assert {(p.what, p.version, p.downgrade) for p in down.parts} == {
        ("app", "1.0.0", True), ("guest", "1.0.0", True)}  # fmt: skip
    env.publish("2.1.0", promote=True)
    assert client.check().version == "2.1.0"


def test_rollback_goes_back_to_the_previous_image_and_package(env: Env) -> None:
    env.publish("1.0.0", promote=True)
    env.publish("2.0.0", promote=True)
    client = env.client("a", app="1.0.0")
    applied = client.apply(lambda _m: None)
    assert applied.install is not None and applied.install.version == "2.0.0"
    previous = Path(client.state().app_previous or "")
    assert previous.read_bytes() == (env.tmp / "dist/1.0.0" / DEB.format(v="1.0.0")).read_bytes()
    selection.promote("debian", "2.0.0")
    client.app_version = "2.0.0"
    client.note_started()
    back = client.rollback()
    assert selection.load("debian").staged == selection.LOCAL
    assert back.install is not None and back.install.argv[-1] == str(previous)
    assert "--allow-downgrades" in back.install.argv


def test_a_checkout_updates_the_guest_and_says_git_pull(env: Env) -> None:
    env.publish("2.0.0", promote=True)
    client = env.client("a", kind="checkout")
    applied = client.apply(lambda _m: None)
    assert applied.install is None and selection.load("debian").staged == "2.0.0"
    assert any("git pull" in m for m in applied.messages)


def test_a_rotated_timestamp_key_is_followed_through_the_new_root(env: Env) -> None:
    client = env.client("a")
    client.check()
    env.repo.rotate("timestamp")
    env.publish("2.0.0", promote=True)
    assert client.check().version == "2.0.0"
    assert (client.home / "tuf").rglob("2.root.json")


def test_automatic_installs_stage_the_image_and_ready_the_package(env: Env) -> None:
    env.publish("2.0.0", promote=True)
    said: list[str] = []
    env.client("a", auto_install=True).periodic(said.append)
    assert selection.load("debian").staged == "2.0.0"
    assert any("2.0.0 is downloaded and verified" in m and "asks for your password" in m
               for m in said)  # fmt: skip
    said.clear()
    env.client("b").periodic(said.append)  # the default: only told
    assert len(said) == 1 and not (env.tmp / "client-b/updates/app").exists()
