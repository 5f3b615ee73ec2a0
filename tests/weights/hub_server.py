"""A local HTTP server on 127.0.0.1 posing as the Hugging Face Hub endpoint (HF_ENDPOINT).

It answers what ``huggingface_hub.hf_hub_download`` asks: ``HEAD`` and ``GET`` of
``/{org}/{name}/resolve/{revision}/{path}``, with the ``X-Repo-Commit``, ``ETag`` and
``Content-Length`` headers the Hub sends; an unknown repository is a 404 with
``X-Error-Code: RepositoryNotFound``. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HubServer:
    """``repos``: repo id -> {path inside the repo: bytes}."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                parts = self.path.split("/", 5)  # "", org, name, "resolve", revision, path
                repo = f"{parts[1]}/{parts[2]}" if len(parts) == 6 else ""
                if len(parts) != 6 or parts[3] != "resolve" or repo not in hub.repos:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepositoryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                files = hub.repos[repo]
                if parts[5] not in files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = files[parts[5]]
                self.send_response(200)
                self.send_header("X-Repo-Commit", hashlib.sha1(repo.encode()).hexdigest())
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_folder(self, repo: str, folder: Path, prefix: str = "") -> None:
        """Serve every file under ``folder`` as ``repo``'s ``prefix/<relative path>``."""
        files = self.repos.setdefault(repo, {})
        for path in folder.rglob("*"):
            if path.is_file():
                files[f"{prefix}{path.relative_to(folder).as_posix()}"] = path.read_bytes()

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
