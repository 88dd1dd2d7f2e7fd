"""python-tuf's network side, on httpx: downloads that resume and report progress.

ngclient asks its fetcher for every file and verifies what it gets (metadata by
signatures, targets by length and hashes) before anything is used. This fetcher only
changes how bytes arrive: a target's download goes to a ``.part`` file that survives an
interruption, and the next try asks for the rest with a ``Range`` header (a server
that ignores it sends the whole file, which starts over). The part is removed once
ngclient has verified it, and also when verification fails, so a bad part is never
resumed. Metadata is small and always fetched whole.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

from moorage import __version__

log = logging.getLogger("moorage.installers")

Progress = Callable[[int, int], None]
"""Called with (bytes so far, bytes in all) as a target downloads."""


class ResumingFetcher(FetcherInterface):
    """A ``FetcherInterface`` whose target downloads resume (``partial_dir``)."""

    def __init__(
        self,
        partial_dir: Path,
        targets_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.partial_dir = partial_dir
        self.targets_url = targets_url
        self.progress: Progress | None = None
        self.received = 0
        """Bytes that came over the network (the benchmark compares it with sizes)."""
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            # identity: ranges must count the file's own bytes, never a compressed form.
            headers={"User-Agent": f"moorage/{__version__}", "Accept-Encoding": "identity"},
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def _fetch(self, url: str) -> Iterator[bytes]:
        return self._stream(url, {})

    def _stream(
        self, url: str, headers: dict[str, str], seen: list[int] | None = None
    ) -> Iterator[bytes]:
        """The body of ``url``; ``seen``, if given, receives the status code first."""
        request = self._client.build_request("GET", url, headers=headers)
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise exceptions.SlowRetrievalError(f"no answer from {url}") from exc
        except httpx.HTTPError as exc:
            raise exceptions.DownloadError(f"cannot reach {url}: {exc}") from exc
        if response.status_code >= 400 and response.status_code != 416:
            response.close()
            raise exceptions.DownloadHTTPError(
                f"{url} answered {response.status_code}", response.status_code
            )
        if seen is not None:
            seen.append(response.status_code)
        return self._chunks(url, response)

    def _chunks(self, url: str, response: httpx.Response) -> Iterator[bytes]:
        try:
            # Raw bytes as they arrive: a chunker would hold back (and lose) the last
            # bytes before a connection drops, which the resume needs.
            for chunk in response.iter_raw():
                self.received += len(chunk)
                yield chunk
        except httpx.TimeoutException as exc:
            raise exceptions.SlowRetrievalError(f"{url} stalled") from exc
        except httpx.HTTPError as exc:
            raise exceptions.DownloadError(f"the download of {url} broke off: {exc}") from exc
        finally:
            response.close()

    @contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        if not url.startswith(self.targets_url):
            with super().download_file(url, max_length) as f:
                yield f
            return
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        part = self.partial_dir / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".part")
        have = part.stat().st_size if part.exists() else 0
        if have > max_length:
            have = 0
        with part.open("r+b" if have else "w+b") as f:
            try:
                self._fill(f, url, have, max_length)
                f.seek(0)
                yield f
            except exceptions.DownloadLengthMismatchError:
                part.unlink(missing_ok=True)  # too long: these bytes are not the target
                raise
            except exceptions.DownloadError:
                raise  # the part stays, to resume from
            except BaseException:
                part.unlink(missing_ok=True)  # verification failed: never resume this
                raise
        part.unlink(missing_ok=True)

    def _fill(self, f: IO[bytes], url: str, have: int, total: int) -> None:
        headers = {"Range": f"bytes={have}-"} if have else {}
        status: list[int] = []
        chunks = self.fetch_with(url, headers, status)
        if status[0] == 416:
            return  # the part is whole already; ngclient verifies it
        if status[0] != 206:
            have = 0  # the server sent the whole file: start over
        else:
            log.info("resuming %s at byte %d of %d", url, have, total)
        f.seek(have)
        f.truncate()
        done = have
        for chunk in chunks:
            done += len(chunk)
            if done > total:
                raise exceptions.DownloadLengthMismatchError(
                    f"{url} is longer than the {total} bytes its metadata says"
                )
            f.write(chunk)
            if self.progress is not None:
                self.progress(done, total)
        f.flush()

    def fetch_with(self, url: str, headers: dict[str, str], status: list[int]) -> Iterator[bytes]:
        try:
            return self._stream(url, headers, status)
        except exceptions.DownloadError:
            raise
        except Exception as exc:
            raise exceptions.DownloadError(f"failed to download {url}") from exc
