"""The HTTPS source against a local server on 127.0.0.1 serving the tfds-written fixture shards:
a connection cut mid-shard is resumed with a Range request, a corrupted shard is named, a
connection that keeps dropping is named after the retries. Every request stays on 127.0.0.1."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lsd.data.prepare import prepare_movi
from lsd.data.prepare.source import DownloadError
from lsd.data.prepare.tfrecord import CorruptRecordError

from .movi_tfds import FIXTURES

SHARD = "/movi_e/16x16/1.0.0/movi_e-train.tfrecord-00001-of-00002"
FAST = dict(resolution=16, progress=False, backoff=0.0, timeout=10.0)


class Server:
    """Files under ``root`` over HTTP with byte ranges. ``cut[path] = n``: the next ``n`` full
    requests of ``path`` announce the whole length but send half and drop the connection;
    ``stall``: paths whose every request stops at half the file (so no retry gets further);
    ``corrupt``: paths served with one byte flipped; ``ranges=False``: Range headers ignored (the
    whole file again, status 200). ``requests`` logs (path, Range header)."""

    def __init__(self, root: Path, ranges: bool = True):
        self.root, self.cut, self.stall, self.corrupt, self.requests = root, {}, set(), set(), []
        self.ranges = ranges
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                file = server.root / self.path.lstrip("/")
                if not file.is_file():
                    self.send_error(404)
                    return
                data = bytearray(file.read_bytes())
                if self.path in server.corrupt:
                    data[len(data) // 2] ^= 0xFF
                asked = self.headers.get("Range") if server.ranges else None
                start = int(asked.split("=")[1].rstrip("-")) if asked else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cut = not start and server.cut.get(self.path, 0) > 0
                if cut or self.path in server.stall:
                    server.cut[self.path] = server.cut.get(self.path, 0) - cut
                    self.wfile.write(bytes(data[start : max(start, len(data) // 2)]))
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(bytes(data[start:]))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".prepare" not in p.parts}  # fmt: skip


@pytest.fixture(scope="module")
def local_dump(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    prepare_movi("movi-e", out, source=str(FIXTURES), splits=["train"], resolution=16, progress=False)
    return _files(out)


@pytest.mark.parametrize("ranges", [True, False], ids=["range", "server-ignores-range"])
def test_connection_cut_mid_shard_is_resumed(tmp_path, local_dump, ranges):
    with Server(FIXTURES, ranges=ranges) as server:
        server.cut[SHARD] = 1
        (result,) = prepare_movi("movi-e", tmp_path, source=server.url, splits=["train"], **FAST)
    assert _files(tmp_path) == local_dump  # the same dump as from the local shards
    shard_requests = [r for p, r in server.requests if p == SHARD]
    size = (FIXTURES / SHARD.lstrip("/")).stat().st_size
    assert shard_requests == [None, f"bytes={size // 2}-"]  # resumed where the cut left it
    shards = (FIXTURES / "movi_e/16x16/1.0.0").glob("movi_e-train.tfrecord-*")
    assert result.bytes_read == sum(p.stat().st_size for p in shards)  # each byte delivered once


def test_corrupted_shard_is_named(tmp_path):
    with Server(FIXTURES) as server:
        server.corrupt.add(SHARD)
        with pytest.raises(CorruptRecordError, match=rf"{server.url}{SHARD}: record \d+ \(byte \d+\): .*CRC32C"):
            prepare_movi("movi-e", tmp_path, source=server.url, splits=["train"], **FAST)


def test_a_connection_that_keeps_dropping_is_named_after_the_retries(tmp_path):
    with Server(FIXTURES) as server:
        server.stall.add(SHARD)
        size = (FIXTURES / SHARD.lstrip("/")).stat().st_size
        pauses = []
        with pytest.raises(DownloadError, match=rf"{server.url}{SHARD}: download failed at byte {size // 2} of {size}"):
            options = {**FAST, "backoff": 0.5, "sleep": pauses.append}
            prepare_movi("movi-e", tmp_path, source=server.url, splits=["train"], retries=2, **options)
        shard_requests = [r for p, r in server.requests if p == SHARD]
    assert shard_requests == [None] + [f"bytes={size // 2}-"] * 2  # the first try, then 2 retries
    assert pauses == [0.5, 1.0]  # the pause doubles


def test_missing_file_is_named_without_retrying(tmp_path):
    with Server(FIXTURES) as server:
        with pytest.raises(DownloadError, match=rf"{server.url}/movi_c/128x128/1.0.0/dataset_info.json: .*404"):
            prepare_movi("movi-c", tmp_path, source=server.url, progress=False, resolution=128, backoff=0.0)
        assert len(server.requests) == 1


def test_source_locations():
    from lsd.data.prepare.source import PUBLIC_TFDS, HttpSource, LocalSource, open_source

    public = open_source(None, "movi_e", "256x256")
    assert isinstance(public, HttpSource) and public.base == f"{PUBLIC_TFDS}/movi_e/256x256/1.0.0"
    assert open_source("https://example.org/x/movi_c/128x128/1.0.0/", "movi_c", "256x256").base == (
        "https://example.org/x/movi_c/128x128/1.0.0"  # a version folder is taken as it is
    )
    local = open_source(str(FIXTURES), "movi_c", "8x8")
    assert isinstance(local, LocalSource) and local.folder == FIXTURES / "movi_c" / "8x8" / "1.0.0"
    assert open_source(str(local.folder), "movi_c", "256x256").folder == local.folder
