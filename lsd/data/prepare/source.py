"""Where a TFDS release is read from: a local folder, or HTTPS (the public bucket), streamed.

A source is the release's version folder (the one holding ``dataset_info.json``,
``features.json`` and the shards). Given a TFDS ``data_dir`` instead (a folder or URL whose last
part is not a version like ``1.0.0``), ``<data_dir>/<name>/<config>/<version>/`` is used.

Over HTTPS a shard is streamed, never stored: :class:`ResumableStream` reads it in order and,
when the connection drops (an error, a timeout, or the body ending before its length), reopens
it from the byte it had reached with an HTTP ``Range`` request, after a pause that doubles on
each retry (1, 2, 4, ... s). After ``retries`` failed reopenings in a row it raises
:class:`DownloadError` naming the URL and the byte.
"""

from __future__ import annotations

import http.client
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

#: The public bucket's TFDS folder over HTTPS (what the release reads as gs://kubric-public/tfds).
PUBLIC_TFDS = "https://storage.googleapis.com/kubric-public/tfds"

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


class DownloadError(OSError):
    """A file could not be fetched (after the retries, or with an HTTP error)."""


class Source(Protocol):
    """A TFDS release folder: small files read whole, shards opened as streams.
    ``bytes_read`` counts every byte its streams delivered."""

    bytes_read: int

    def describe(self, name: str) -> str:
        """The path or URL of ``name`` (for messages)."""

    def read_bytes(self, name: str) -> bytes:
        """A small file (``dataset_info.json``, ``features.json``) whole."""

    def open(self, name: str) -> BinaryIO:
        """A shard, as a stream read from its start."""


@dataclass
class _CountingFile:
    """A binary file whose reads are added to ``owner.bytes_read``."""

    handle: BinaryIO
    owner: LocalSource

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.owner.bytes_read += len(chunk)
        return chunk

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> _CountingFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class LocalSource:
    folder: Path
    bytes_read: int = 0

    def describe(self, name: str) -> str:
        return str(self.folder / name)

    def read_bytes(self, name: str) -> bytes:
        path = self.folder / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"missing {path} (is {self.folder} a TFDS release folder?)") from None

    def open(self, name: str) -> _CountingFile:
        path = self.folder / name
        try:
            return _CountingFile(path.open("rb"), self)
        except FileNotFoundError:
            raise FileNotFoundError(f"missing shard {path}") from None


def _is_retryable(err: BaseException) -> bool:
    if isinstance(err, urllib.error.HTTPError):
        return err.code in (408, 429) or err.code >= 500
    return isinstance(
        err, (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)
    )


@dataclass
class ResumableStream:
    """A read-only stream of one URL that reconnects where it stopped (see the module docstring).

    ``bytes_read`` counts the bytes delivered; ``on_bytes(n)`` is told of each chunk.
    """

    url: str
    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0
    on_bytes: Callable[[int], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    bytes_read: int = 0
    size: int | None = None
    _response: http.client.HTTPResponse | None = field(default=None, repr=False)

    def _connect(self) -> None:
        headers = {"Range": f"bytes={self.bytes_read}-"} if self.bytes_read else {}
        response = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.timeout)
        if self.bytes_read and response.status != 206:  # the server ignored the range: skip ahead
            skipped = 0
            while skipped < self.bytes_read:
                chunk = response.read(min(1 << 20, self.bytes_read - skipped))
                if not chunk:
                    raise ConnectionError("the body ended before the resume point")
                skipped += len(chunk)
        if self.size is None:
            length = response.headers.get("Content-Length")
            self.size = int(length) if length is not None else None
        self._response = response

    def _fail(self, err: BaseException, attempt: int) -> None:
        self.close()
        if attempt >= self.retries or not _is_retryable(err):
            of = f" of {self.size}" if self.size is not None else ""
            raise DownloadError(
                f"{self.url}: download failed at byte {self.bytes_read}{of} after {attempt} retries ({err})"
            ) from err
        self.sleep(self.backoff * 2**attempt)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        attempt = 0
        while True:
            try:
                if self._response is None:
                    self._connect()
                chunk = self._response.read(size) if self._response is not None else b""
                if not chunk and self.size is not None and self.bytes_read < self.size:
                    raise ConnectionError(f"connection closed at byte {self.bytes_read}")
            except Exception as err:  # noqa: BLE001 - sorted by _is_retryable, re-raised by _fail
                self._fail(err, attempt)
                attempt += 1
                continue
            self.bytes_read += len(chunk)
            if self.on_bytes is not None and chunk:
                self.on_bytes(len(chunk))
            return chunk

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def __enter__(self) -> ResumableStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class HttpSource:
    """A release folder over HTTP(S); ``base`` is the folder's URL (no trailing slash)."""

    base: str
    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    bytes_read: int = 0

    def _count(self, n: int) -> None:
        self.bytes_read += n

    def describe(self, name: str) -> str:
        return f"{self.base}/{name}"

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as stream:
            chunks = []
            while chunk := stream.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)

    def open(self, name: str) -> ResumableStream:
        return ResumableStream(self.describe(name), self.retries, self.backoff, self.timeout, self._count, self.sleep)


def open_source(location: str | None, name: str, config: str, version: str = "1.0.0", **http_options) -> Source:
    """The source for ``--source`` (a folder, or an http(s) URL; default: the public bucket)."""
    location = location or PUBLIC_TFDS
    if re.match(r"^https?://", location):
        base = location.rstrip("/")
        if not _VERSION.match(base.rsplit("/", 1)[-1]):
            base = f"{base}/{name}/{config}/{version}"
        return HttpSource(base, **http_options)
    folder = Path(location)
    if not folder.is_dir():
        raise FileNotFoundError(f"--source {folder} is not a folder (nor an http(s) URL)")
    if not (folder / "dataset_info.json").is_file() and not _VERSION.match(folder.name):
        folder = folder / name / config / version
    return LocalSource(folder)
