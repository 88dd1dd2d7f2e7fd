"""``POST /v1/diagnose``: a zip of what a bug report needs, with its secrets scrubbed.

The bundle (``diagnostics-YYYYMMDD-HHMMSS.zip``, 0600, in the machine's state folder)
holds the agent's log, the VM console, the status and the clusters' status as JSON,
the engine's ``docker info`` and version (or why they could not be had), the config
file and ``versions.txt``. Every file goes through ``scrub`` on its way in, a pure
function: swarm join tokens and unlock keys, PEM private keys, the Docker socket's
gate token, and the values of keys named like a token, password, secret or key (in
JSON and in ``key = value`` text) are replaced with ``[scrubbed]``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moorage import __version__
from moorage import config as config_mod
from moorage.api.schema import Diagnostics
from moorage.errors import MoorageError
from moorage.paths import private_dir
from moorage.runtime import RuntimeRecord
from moorage.vm import accel
from moorage.vm.image import manifest as manifest_mod
from moorage.vm.image import selection, store
from moorage.vm.image.manifest import Manifest

if TYPE_CHECKING:
    from moorage.agent.machine import MachineAgent

PLACEHOLDER = "[scrubbed]"
LOG_TAIL = 4 << 20
"""The end of each log that goes in: a bundle must stay small enough to attach."""
ENGINE_TIMEOUT = 10.0
TOOL_TIMEOUT = 10.0
MIN_SECRET = 8
"""Shorter literal secrets are not searched for: they would match ordinary text."""

_PEM = re.compile(
    r"(-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----)"
    r"(?:.*?-----END \2PRIVATE KEY-----|(?:\s*(?:(?!-----)[A-Za-z0-9+/=:,\-])+(?:\\n)?)*)",
    re.DOTALL,
)
_SWARM = re.compile(r"\b(SWMTKN-1-|SWMKEY-1-)[A-Za-z0-9+/=_-]+")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)([^@\s/]+)@")
# The last word of a secret's name (words split at snake, kebab, dotted or camel case).
_SECRET_WORDS = frozenset(
    {"token", "tokens", "password", "passwords", "passwd", "passphrase", "secret",
     "secrets", "key", "keys", "credential", "credentials"}
)  # fmt: skip
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# "name": "value" in JSON (the value a string; escaped quotes inside it allowed).
_JSON_PAIR = re.compile(r'("([^"\\]*)"\s*:\s*)"((?:[^"\\]|\\.)*)"')
# name = value, name=value (TOML, INI, env files, log lines), the name perhaps quoted
# (TOML): a quoted value to its closing quote, an unquoted one to the end of the word.
_TEXT_PAIR = re.compile(
    r"""(?<![\w.\-])("[^"\n]+"|[A-Za-z_][\w.\-]*)(\s*=\s*)"""
    r"""("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;&"'{}\[\]]+)"""
)


def secret_name(name: str) -> bool:
    """Whether a key's name says its value is a secret: its last word is token,
    password, secret, key (``join_token``, ``JoinTokens``, ``apiKey``, ``db.password``),
    not some other word (``monkey``, ``key_file``, ``StrictHostKeyChecking``)."""
    words = _WORD.findall(name)
    return bool(words) and words[-1].lower() in _SECRET_WORDS


def scrub(text: str, secrets: Iterable[str] = ()) -> tuple[str, int]:
    """``text`` with every secret replaced by ``[scrubbed]``, and how many were.

    Replaced: PEM private key blocks (a block cut short too), swarm join tokens
    (``SWMTKN-1-…``) and unlock keys (``SWMKEY-1-…``), passwords in URLs
    (``https://user:PASSWORD@host``, a proxy's), each of ``secrets`` (literal
    strings, such as the Docker socket's gate token), and the values of keys named
    like a secret (``secret_name``) in JSON (string values) and in ``key = value``
    text. A value already scrubbed is not counted again.
    """
    count = 0

    def counted(replacement: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
        def replace(m: re.Match[str]) -> str:
            nonlocal count
            new = replacement(m)
            if new != m.group(0):
                count += 1
            return new

        return replace

    def pem(m: re.Match[str]) -> str:
        if m.group(0).endswith("-----") and m.group(0) != m.group(1):  # BEGIN to END
            return f"{m.group(1)} {PLACEHOLDER} -----END {m.group(2)}PRIVATE KEY-----"
        if m.string.startswith(f" {PLACEHOLDER}", m.end()):  # a cut block, scrubbed before
            return m.group(0)
        return f"{m.group(1)} {PLACEHOLDER}"

    text = _PEM.sub(counted(pem), text)
    text = _SWARM.sub(counted(lambda m: f"{m.group(1)}{PLACEHOLDER}"), text)
    text = _URL_PASSWORD.sub(counted(lambda m: f"{m.group(1)}{PLACEHOLDER}@"), text)
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        found = text.count(secret)
        if found:
            count += found
            text = text.replace(secret, PLACEHOLDER)

    def json_value(m: re.Match[str]) -> str:
        value = m.group(3)
        if not secret_name(m.group(2)) or not value or PLACEHOLDER in value:
            return m.group(0)
        return f'{m.group(1)}"{PLACEHOLDER}"'

    def text_value(m: re.Match[str]) -> str:
        value = m.group(3)
        bare = value.strip("\"'")
        # An unquoted value ends before a bracket: look on past it for a placeholder.
        scrubbed = PLACEHOLDER in m.string[m.start(3) : m.end(3) + len(PLACEHOLDER)]
        if not secret_name(m.group(1).strip('"')) or not bare or scrubbed:
            return m.group(0)
        quote = value[0] if value[0] in "\"'" else ""
        return f"{m.group(1)}{m.group(2)}{quote}{PLACEHOLDER}{quote}"

    text = _JSON_PAIR.sub(counted(json_value), text)
    text = _TEXT_PAIR.sub(counted(text_value), text)
    return text, count


# ----- the bundle's parts ------------------------------------------------------------


def _tail(path: Path, limit: int = LOG_TAIL) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            data = f.read()
    except FileNotFoundError:
        return f"(no file at {path})\n"
    except OSError as exc:
        return f"(cannot read {path}: {exc})\n"
    head = f"(the last {limit >> 20} MiB of {size} bytes)\n" if size > limit else ""
    return head + data.decode(errors="replace")


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def tool_version(argv: list[str]) -> str:
    """The first line a tool prints for ``--version``, or why there is none."""
    if shutil.which(argv[0]) is None:
        return "not found"
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no answer ({exc})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else f"no output (exit {proc.returncode})"


def _image_manifest(agent: MachineAgent) -> tuple[Manifest | None, str]:
    """The guest image booted last, or the one the next start would boot (without
    building or hashing anything), and where it was found."""
    if agent.image_manifest is not None:
        return agent.image_manifest, "booted by the last start"
    try:
        recipe = str(config_mod.read_file(agent.paths.config_file).get("image") or "")
    except MoorageError:
        recipe = ""
    recipe = recipe or store.DEFAULT_RECIPE
    try:
        version = selection.load(recipe).boot()
        folder = (
            store.image_path(recipe)
            if version == selection.LOCAL
            else selection.release_dir(recipe, version)
        )
        return manifest_mod.load(folder), f"the next start's, in {folder}"
    except MoorageError as exc:
        return None, exc.message


def versions(agent: MachineAgent, tool: Callable[[list[str]], str] | None = None) -> str:
    """versions.txt: moorage, Python, the host, QEMU, libvirt, the docker CLI, the
    guest image. ``tool`` asks a tool its version (``tool_version``)."""
    tool = tool or tool_version
    qemu = accel.find_qemu() or "qemu-system-x86_64"
    lines = [
        f"moorage: {__version__}",
        f"python: {sys.version.split()[0]} ({sys.executable})",
        f"host: {platform.platform()}",
        f"qemu: {tool([qemu, '--version'])}",
        f"libvirt: {tool(['libvirtd', '--version'])}",
        f"virsh: {tool(['virsh', '--version'])}",
        f"docker cli: {tool(['docker', '--version'])}",
    ]
    manifest, where = _image_manifest(agent)
    if manifest is None:
        lines.append(f"guest image: none found ({where})")
    else:
        lines += [
            f"guest image: {manifest.recipe} {manifest.version} ({where})",
            f"guest image created: {manifest.created}",
            f"guest engine: {manifest.engine_version}",
            f"guest kernel: {manifest.kernel} ({manifest.cmdline})",
        ]
    status = agent.snapshot()
    lines.append(f"driver: {status.driver or 'not chosen yet'}; accel: {status.accel or '-'}")
    return "\n".join(lines) + "\n"


def _engine(agent: MachineAgent) -> dict[str, str]:
    state = agent.state()
    if state not in ("running", "degraded"):
        return {"engine.txt": f"no engine: the machine is {state}\n"}
    try:
        facts = agent.engine.describe(ENGINE_TIMEOUT)
    except MoorageError as exc:
        return {"engine.txt": f"the engine did not answer: {exc}\n"}
    return {
        "engine-info.json": _json(facts.get("info")),
        "engine-version.json": _json(facts.get("version")),
    }


def _clusters(agent: MachineAgent) -> str:
    try:
        return _json([c.to_json() for c in agent.clusters.listing().clusters])
    except MoorageError as exc:
        return _json({"error": str(exc)})


def _config(agent: MachineAgent) -> str:
    path = agent.paths.config_file
    try:
        return path.read_text()
    except FileNotFoundError:
        return f"# no config file at {path}: every value is its default\n"
    except OSError as exc:
        return f"# cannot read {path}: {exc}\n"


def parts(agent: MachineAgent) -> dict[str, str]:
    """The bundle's files, by name, before scrubbing."""
    paths = agent.paths
    files = {
        "agent.log": _tail(paths.agent_log),
        "serial.log": _tail(paths.serial_log),
        "status.json": _json(agent.status_now().to_json()),
        "clusters.json": _clusters(agent),
    }
    files.update(_engine(agent))
    files["config.toml"] = _config(agent)
    files["versions.txt"] = versions(agent)
    return files


def known_secrets(agent: MachineAgent) -> list[str]:
    """Secrets the agent holds that could show up anywhere: the Docker gate's token."""
    record = RuntimeRecord.load(agent.paths.ports_file)
    return [record.api_token] if record is not None and record.api_token else []


def _bundle_path(folder: Path, now: float) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = folder / f"diagnostics-{stamp}.zip"
    n = 2
    while path.exists():  # two bundles within a second
        path = folder / f"diagnostics-{stamp}-{n}.zip"
        n += 1
    return path


def write_zip(path: Path, files: dict[str, str], when: float) -> None:
    """``files`` into a new zip at ``path``, created 0600 (never readable by others,
    not even for a moment), each member marked 0600 too."""
    date = time.localtime(when)[:6]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
            fd = -1
            for name, text in files.items():
                info = zipfile.ZipInfo(name, date_time=date)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o100600 << 16
                z.writestr(info, text)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)
        raise


def write(agent: MachineAgent, *, now: Callable[[], float] = time.time) -> Diagnostics:
    """Gather, scrub and write the bundle into the machine's state folder."""
    files = parts(agent)
    secrets = known_secrets(agent)
    scrubbed = 0
    for name, text in files.items():
        files[name], n = scrub(text, secrets)
        scrubbed += n
    when = now()
    folder = private_dir(agent.paths.state)
    path = _bundle_path(folder, when)
    write_zip(path, files, when)
    return Diagnostics(str(path), path.stat().st_size, list(files), scrubbed)
