"""Fixtures of the Django unit tests: private media folders and an HTTP fake of the sidecar."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

FAKE_TOKEN = "fake-internal-token"


@pytest.fixture(autouse=True)
def _private_media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Unit tests only: no sidecar reads these hashes, and 1 M PBKDF2 rounds per user is slow.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class FakeSidecar:
    """Answers (method, path) with a canned (status, body); records every request."""

    url: str = ""
    token: str = FAKE_TOKEN
    routes: dict[tuple[str, str], tuple[int, object]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    delay: float = 0.0

    def answer(self, method: str, path: str, status: int, body: object) -> None:
        self.routes[(method, path)] = (status, body)


@pytest.fixture
def fake_sidecar(settings) -> Iterator[FakeSidecar]:
    fake = FakeSidecar()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fake.requests.append(
                Recorded(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
            if fake.delay:
                time.sleep(fake.delay)
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                status, answer = 403, "missing or wrong bearer token\n"
            else:
                status, answer = fake.routes.get((self.command, self.path), (404, "not found\n"))
            raw = (
                answer
                if isinstance(answer, bytes)
                else (answer.encode() if isinstance(answer, str) else json.dumps(answer).encode())
            )
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    settings.SIDECAR_INTERNAL_URL = fake.url
    settings.SIDECAR_INTERNAL_TOKEN = FAKE_TOKEN
    settings.SIDECAR_TIMEOUT_SECONDS = 2
    settings.SIDECAR_IMPORT_TIMEOUT_SECONDS = 2
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


STATS_PAYLOAD = {
    "user_id": 0,
    "has_collection": True,
    "cards": 12,
    "notes": 7,
    "revlog": 30,
    "usn": 5,
    "modified_ms": 1_700_000_000_000,
    "last_sync_ms": 1_700_000_100_000,
    "collection_bytes": 98304,
    "media_files": 3,
    "media_bytes": 4096,
    "media_usn": 2,
    "devices": 2,
    "last_seen": 1_700_000_100,
    "sync_in_progress": False,
}


@pytest.fixture
def stats_payload() -> dict:
    """A stats answer as the sidecar sends it."""
    return dict(STATS_PAYLOAD)
