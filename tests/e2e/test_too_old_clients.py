"""A client the server cannot serve is told to update Anki, never to "Check Database".

No real client old enough to be refused runs on this Python, so the refused requests are made
by real clients whose requests a small proxy turns into an unsupported client's: a 26.9.3
request claiming sync version 7 in its `anki-sync` header, and a 2.1.50 request that is no
longer multipart (a wire format the server does not know). The sidecar's answer (501) goes back
unchanged, and the real client shows its own text for it. What each generation shows for
each status is in docs/connecting-clients.md.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from support.client_matrix import ClientError, RemoteClient

pytestmark = pytest.mark.timeout(300)

TOO_OLD = "Your Anki version is too old. Please update to the latest version to continue syncing."

Rewrite = Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(handler.rfile.readline().strip() or b"0", 16)
            chunk = handler.rfile.read(size + 2)[:size]
            if size == 0:
                return body
            body += chunk
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def start_proxy(upstream: str, rewrite: Rewrite) -> ThreadingHTTPServer:
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        def forward(self) -> None:
            body = read_body(self)
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in {"host", "content-length", "transfer-encoding"}
            }
            headers, body = rewrite(headers, body)
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        do_GET = forward
        do_POST = forward

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def claim_version_7(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    for name in list(headers):
        if name.lower() == "anki-sync":
            header = json.loads(headers[name])
            header["v"] = 7
            headers[name] = json.dumps(header)
    return headers, body


def not_multipart(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    for name in list(headers):
        if name.lower() == "content-type":
            headers[name] = "application/octet-stream"
    return headers, body


@pytest.fixture
def proxied(backend) -> Iterator[Callable[[Rewrite], str]]:
    servers: list[ThreadingHTTPServer] = []

    def make(rewrite: Rewrite) -> str:
        server = start_proxy(backend.url, rewrite)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("version", "rewrite"),
    [("26.9.3", claim_version_7), ("2.1.50", not_multipart)],
    ids=["v11-client-claiming-v7", "legacy-client-unknown-format"],
)
def test_an_unsupported_client_is_told_to_update(backend, proxied, tmp_path, version, rewrite):
    user = backend.create_user()
    device = RemoteClient(version, tmp_path / "device", proxied(rewrite), name="old")
    try:
        with pytest.raises(ClientError) as refused:
            device.login(username=user.username, password=user.password)
        assert refused.value.message == TOO_OLD
        assert "Check Database" not in refused.value.message
        assert not refused.value.auth
    finally:
        device.close()
    # The sidecar itself answered 501, and logged why.
    assert "status=501" in backend.sidecar.log()
