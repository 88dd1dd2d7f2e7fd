"""An update repository for tests, made with our own release tooling, and a real
static HTTP server for it on 127.0.0.1 (an ephemeral port; nothing else is contacted).

The server is ``http.server``'s ThreadingHTTPServer serving the repository's folder,
with what a test needs to play the attacker or the network: ``override`` serves other
bytes for a path (a tampered target, old metadata), ``cut_after`` drops the connection
after so many bytes of a path (an interrupted download), ``requests`` records every
path asked for, and byte ranges are answered as any static server does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from moorage.installers.repository import Keys, Repository
from tests.helpers.images import write_image

_RANGE_PREFIX = "bytes="


@dataclass
class ServerKnobs:
    override: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    """Path -> bytes sent before the connection drops (once per path)."""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) of every request."""
    down: bool = False
    """Refuse everything with 503, as a server under maintenance."""
    sent: dict[str, int] = field(default_factory=dict)
    """Path -> body bytes sent for it, in all."""


class _Handler(SimpleHTTPRequestHandler):
    knobs: ServerKnobs

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        knobs = self.knobs
        path = self.path.split("?", 1)[0]
        knobs.requests.append((path, self.headers.get("Range")))
        if knobs.down:
            self.send_error(503)
            return
        if path in knobs.override:
            data = knobs.override[path]
        else:
            local = Path(self.translate_path(path))
            if not local.is_file():
                self.send_error(404)
                return
            data = local.read_bytes()
        start = 0
        header = self.headers.get("Range")
        if header and header.startswith(_RANGE_PREFIX):
            start = int(header[len(_RANGE_PREFIX) :].split("-", 1)[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = knobs.cut_after.pop(path, None)
        knobs.sent[path] = knobs.sent.get(path, 0) + (len(body) if cut is None else cut)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@contextmanager
def serve(folder: Path) -> Iterator[tuple[str, ServerKnobs]]:
    """Serve ``folder`` at ``http://127.0.0.1:PORT``; yields the URL and the knobs."""
    knobs = ServerKnobs()
    handler = type("Handler", (_Handler,), {"knobs": knobs})

    def make(*args: Any, **kwargs: Any) -> _Handler:
        return handler(*args, directory=str(folder), **kwargs)  # type: ignore[no-any-return]

    server = ThreadingHTTPServer(("127.0.0.1", 0), make)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", knobs
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def release_files(dist: Path, version: str, *, guest: bool = True, deb: bool = True,
                  size: int = 4096) -> Path:  # fmt: skip
    """``dist/VERSION`` as ``scripts/release build`` leaves it, with small stand-ins:
    a real guest archive of a tiny image, and .deb/.whl files of ``size`` bytes."""
    from moorage.installers.build import pack_guest  # noqa: PLC0415

    out = dist / version
    out.mkdir(parents=True, exist_ok=True)
    (out / "notes.md").write_text(f"moorage {version}: what changed\n")
    if deb:
        (out / f"moorage_{version}_amd64.deb").write_bytes(os.urandom(size))
    (out / f"moorage-{version}-py3-none-any.whl").write_bytes(os.urandom(size))
    if guest:
        image = dist / f".image-{version}"
        write_image(image, version=f"image-{version}",
                    contents={"root.img": f"root of {version}".encode() * 64})  # fmt: skip
        pack_guest(image, out, "debian", version, lambda _line: None)
    return out


def new_repo(tmp: Path) -> Repository:
    return Repository(tmp / "repo", Keys(tmp / "keys"))


def copy_image(source: Path, dest: Path, *, without_dockerd: bool = False) -> Path:
    """A copy of a built guest image, optionally with dockerd removed from its root
    disk (``debugfs``, no mount needed): the guest boots, and dockerd exits as soon as
    it starts (run-dockerd.sh's ``exec`` finds nothing; init starts it again and
    again). The manifest is rewritten with the new hashes, so the image still verifies."""
    import json  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    from moorage.vm.image import manifest  # noqa: PLC0415

    dest.mkdir(parents=True)
    m = manifest.load(source)
    for name in m.files:
        shutil.copyfile(source / name, dest / name)
    if without_dockerd:
        subprocess.run(["debugfs", "-w", "-R", "rm /usr/sbin/dockerd", str(dest / m.root)],
                       check=True, capture_output=True)  # fmt: skip
    data = json.loads(m.to_json())
    data["files"] = {name: manifest.sha256_file(dest / name) for name in m.files}
    (dest / manifest.MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    manifest.verify(dest, full=True)
    return dest


def publish_image(
    tmp: Path, image: Path, version: str, repo: Repository | None = None
) -> Repository:
    """Publish a release holding only the guest image ``image``, on beta and stable."""
    from moorage.installers.build import pack_guest  # noqa: PLC0415

    repo = repo or new_repo(tmp)
    if not repo.exists():
        repo.create()
    out = tmp / "dist" / version
    out.mkdir(parents=True)
    archive = pack_guest(image, out, "debian", version, lambda _line: None)
    repo.publish(version, [archive], f"guest image {version}")
    repo.promote(version)
    return repo
