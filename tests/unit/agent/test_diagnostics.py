"""The diagnostics bundle: the scrubber (pure), and the zip an agent over fakes writes,
its files, its mode, and no secret in it."""

from __future__ import annotations

import json
import re
import stat
import zipfile
from pathlib import Path

import pytest

from moorage.agent import diagnostics
from moorage.agent.diagnostics import PLACEHOLDER, scrub, secret_name
from moorage.engine.docker_socket import new_token
from moorage.runtime import RuntimeRecord
from tests.unit.agent.conftest import Machine

JOIN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
UNLOCK = "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8"
PEM = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDzN0e8y1xgm8rjHmd4oZ4qF+XmEjFpMYD6zV5Ow4nYqQAAAJg3f2xCN39s
-----END OPENSSH PRIVATE KEY-----"""


@pytest.fixture(autouse=True)
def no_host_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """versions.txt asks QEMU, libvirt and docker for their versions: not in unit tests."""
    monkeypatch.setattr(diagnostics, "tool_version", lambda argv: f"{argv[0]} 1.0 (fake)")


# ----- the scrubber ----------------------------------------------------------------------


def test_swarm_join_tokens_and_unlock_keys_are_scrubbed() -> None:
    text = f"docker swarm join --token {JOIN} 10.0.2.15:2377\nunlock with {UNLOCK}.\n"
    out, n = scrub(text)
    assert n == 2
    assert JOIN not in out and UNLOCK not in out
    assert "--token SWMTKN-1-[scrubbed] 10.0.2.15:2377" in out
    assert f"unlock with SWMKEY-1-{PLACEHOLDER}." in out


def test_pem_private_keys_are_scrubbed_whole_and_public_ones_kept() -> None:
    public = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"
    out, n = scrub(f"key:\n{PEM}\nca:\n{public}\n")
    assert n == 1
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in out
    end = "-----END OPENSSH PRIVATE KEY-----"
    assert f"-----BEGIN OPENSSH PRIVATE KEY----- {PLACEHOLDER} {end}\nca:" in out
    assert public in out


def test_a_pem_key_cut_short_is_scrubbed_too() -> None:
    cut = "\n".join(PEM.splitlines()[:3])
    out, n = scrub(f"log: {cut}")
    assert n == 1
    assert "QyNTUxOQAAACDzN0e8y1xgm8rjHmd4oZ4qF" not in out
    assert scrub(out) == (out, 0)


def test_a_pem_key_inside_a_json_string_is_scrubbed() -> None:
    out, n = scrub(json.dumps({"pem": PEM}))
    assert n == 1
    assert "b3BlbnNzaC1rZXkt" not in out
    json.loads(out)


def test_consecutive_cut_pem_keys_are_each_counted() -> None:
    cut = "-----BEGIN RSA PRIVATE KEY-----\n" + "QUJD" * 16 + "\n"
    out, n = scrub(cut * 3)
    assert n == 3
    assert "QUJD" not in out


def test_passwords_in_urls_are_scrubbed() -> None:
    out, n = scrub("HTTPS_PROXY=http://me:s3cr%40t@proxy:3128 see https://example.com/a@b")
    assert n == 1
    assert out == f"HTTPS_PROXY=http://me:{PLACEHOLDER}@proxy:3128 see https://example.com/a@b"
    assert scrub(out) == (out, 0)


def test_given_secrets_are_scrubbed_wherever_they_are() -> None:
    token = new_token()
    out, n = scrub(f"gate {token}\nagain:{token}", [token])
    assert n == 2
    assert token not in out


def test_values_of_secret_keys_in_json_are_scrubbed() -> None:
    data = {
        "api_token": "abc123",
        "JoinTokens": {"Worker": JOIN},
        "UnlockKey": "0123456789",
        "password": "hunter2",
        "Secret": "s",
        "name": "default",
        "key_file": "/home/u/.ssh/id",
        "monkey": "banana",
        "empty_token": "",
        "nothing_key": None,
    }
    out, n = scrub(json.dumps(data, indent=2))
    back = json.loads(out)
    assert n == 5  # api_token, the join token, UnlockKey, password, Secret
    assert back["api_token"] == back["UnlockKey"] == back["password"] == back["Secret"]
    assert back["api_token"] == PLACEHOLDER
    assert back["JoinTokens"]["Worker"] == f"SWMTKN-1-{PLACEHOLDER}"
    kept = ("name", "key_file", "monkey", "empty_token", "nothing_key")
    assert {k: back[k] for k in kept} == {k: data[k] for k in kept}


def test_values_of_secret_keys_in_key_value_text_are_scrubbed() -> None:
    text = (
        'registry_password = "p@ss word"\n'
        "api_key=AKIA1234\n"
        "export GITHUB_TOKEN='ghp_abc'\n"
        "GET /v1/x?token=t0k3n&lines=5 200\n"
        "StrictHostKeyChecking=yes HostKeyAlias=moorage-default\n"
        "cpus = 2\n"
        'image = "debian"\n'
    )
    out, n = scrub(text)
    assert n == 4
    assert f'registry_password = "{PLACEHOLDER}"' in out
    assert f"api_key={PLACEHOLDER}\n" in out
    assert f"export GITHUB_TOKEN='{PLACEHOLDER}'" in out
    assert f"?token={PLACEHOLDER}&lines=5 " in out
    for kept in ("StrictHostKeyChecking=yes HostKeyAlias=moorage-default", "cpus = 2",
                 'image = "debian"'):  # fmt: skip
        assert kept in out


def test_scrubbing_twice_finds_nothing_more() -> None:
    once, n = scrub(f"token = {JOIN}\n{PEM}\n" + json.dumps({"secret": "x", "k": UNLOCK}))
    assert n == 4  # a join token under a token's name is one secret, not two
    assert scrub(once) == (once, 0)


def test_ordinary_text_is_left_alone() -> None:
    text = (
        "2026-12-06 03:10:00 INFO moorage.agent: agent 123 serving /run/moorage/agent.sock\n"
        '{"ServerVersion": "26.1.5", "Swarm": {"LocalNodeState": "inactive"}, "KeyCount": 3}\n'
        "keyboard = us\nmonkey=banana\n"
    )
    assert scrub(text) == (text, 0)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("join_token", True),
        ("JoinTokens", True),
        ("apiKey", True),
        ("db.password", True),
        ("AWS_SECRET", True),
        ("client-secret", True),
        ("credentials", True),
        ("key_file", False),
        ("StrictHostKeyChecking", False),
        ("monkey", False),
        ("keyboard", False),
        ("tokenizer", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert secret_name(name) is secret


# ----- the bundle ----------------------------------------------------------------------------


def _read(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name).decode() for name in z.namelist()}


def test_the_bundle_of_a_stopped_machine(machine: Machine) -> None:
    agent = machine.agent()
    paths = agent.paths
    paths.state.mkdir(parents=True, exist_ok=True)
    token = new_token()
    RuntimeRecord(ssh_port=2222, api_port=2375, api_token=token).save(paths.ports_file)
    paths.agent_log.write_text(
        f"INFO starting\nERROR join failed: docker swarm join --token {JOIN}\n"
        f"DEBUG gate line {token}\n{PEM}\n"
    )
    paths.serial_log.write_text(f"moorage: boot done\nunlock key {UNLOCK}\n")
    with paths.config_file.open("a") as f:
        f.write('engine = { "registry-password" = "hunter2" }\n')

    report = diagnostics.write(agent)

    path = Path(report.path)
    assert path.parent == paths.state
    assert re.fullmatch(r"diagnostics-\d{8}-\d{6}\.zip", path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert report.size == path.stat().st_size
    files = _read(path)
    assert report.contents == list(files)
    assert list(files) == ["agent.log", "serial.log", "status.json", "clusters.json",
                           "engine.txt", "config.toml", "versions.txt"]  # fmt: skip
    assert report.scrubbed == 5  # join token, gate token, private key, unlock key, password
    everything = "\n".join(files.values())
    for secret in (JOIN, UNLOCK, token, "hunter2", "b3BlbnNzaC1rZXkt"):
        assert secret not in everything
    assert "INFO starting" in files["agent.log"]
    assert "moorage: boot done" in files["serial.log"]
    assert json.loads(files["status.json"])["state"] == "stopped"
    assert json.loads(files["clusters.json"]) == []
    assert files["engine.txt"] == "no engine: the machine is stopped\n"
    assert '"registry-password" = "[scrubbed]"' in files["config.toml"]
    versions = files["versions.txt"]
    for line in ("moorage: ", "python: ", "qemu: ", "libvirt: ", "docker cli: docker 1.0",
                 "guest image: "):  # fmt: skip
        assert line in versions
    with zipfile.ZipFile(path) as z:
        assert all(stat.S_IMODE(i.external_attr >> 16) == 0o600 for i in z.infolist())


def test_the_bundle_of_a_running_machine_has_the_engine_and_its_image(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    record = RuntimeRecord.load(agent.paths.ports_file)
    assert record is not None
    with agent.paths.agent_log.open("a") as f:
        f.write(f"a careless line with the gate token {record.api_token}\n")

    report = diagnostics.write(agent)

    files = _read(Path(report.path))
    assert "engine.txt" not in files
    assert json.loads(files["engine-info.json"])["ServerVersion"] == "26.1.5"
    assert json.loads(files["engine-version.json"])["Version"] == "26.1.5"
    assert json.loads(files["status.json"])["state"] == "running"
    assert "guest image: debian test (booted by the last start)" in files["versions.txt"]
    assert record.api_token not in files["agent.log"]
    assert report.scrubbed == 1


def test_an_engine_that_does_not_answer_is_said_so(machine: Machine) -> None:
    agent = machine.agent()
    machine.start(agent)
    machine.fakes.engine.answering = False
    files = _read(Path(diagnostics.write(agent).path))
    assert "engine-info.json" not in files
    assert files["engine.txt"].startswith("the engine did not answer: ")


def test_two_bundles_in_one_second_do_not_overwrite_each_other(machine: Machine) -> None:
    agent = machine.agent()
    first = diagnostics.write(agent, now=lambda: 1_800_000_000.0)
    second = diagnostics.write(agent, now=lambda: 1_800_000_000.0)
    assert first.path != second.path
    assert Path(first.path).exists() and Path(second.path).exists()
