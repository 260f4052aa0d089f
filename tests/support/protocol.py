"""Raw sync protocol v11 over HTTP/1.1, for tests that must send what no real client sends.

A request is a POST with the `anki-sync` header and a zstd body; a successful answer carries
`anki-original-size` and a zstd body (docs/sync-protocol.md#requests,
docs/sync-protocol.md#the-anki-sync-header, docs/sync-protocol.md#responses). Bodies can go out
chunked, as the real client sends them, or with a Content-Length.

The request is written from a second thread while the answer is read: a server that refuses a
large body answers before it has read all of it, and the answer must be read before the
connection is torn down.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import zstandard

SYNC_VERSION = 11
CLIENT_VERSION = "anki-sidecar-tests"
REQUEST_TIMEOUT = 60
CHUNK = 64 * 1024


def compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def sync_header(hkey: str = "", session: str = "test", version: int = SYNC_VERSION) -> str:
    return json.dumps({"v": version, "k": hkey, "c": CLIENT_VERSION, "s": session})


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def original_size(self) -> int | None:
        value = self.headers.get("anki-original-size")
        return None if value is None else int(value)

    @property
    def body(self) -> bytes:
        """The decoded body of a successful answer; error bodies are plain
        (docs/sync-protocol.md#responses)."""
        if self.status != 200:
            return self.raw
        size = self.original_size
        if size is None:
            raise AssertionError(f"200 answer without anki-original-size: {self.headers}")
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(self.raw))
        data = reader.read(size + 1)
        if len(data) != size:
            raise AssertionError(f"anki-original-size says {size} bytes, body has {len(data)}")
        return data

    def json(self):
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode()

    def __repr__(self) -> str:
        preview = self.raw[:200]
        return f"Reply({self.status}, {self.headers}, {preview!r})"


def post(
    base_url: str,
    method: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    chunked: bool = True,
    timeout: float = REQUEST_TIMEOUT,
) -> Reply:
    """POSTs `body` (sent as given: compress it first) to `<base_url><method>`."""
    url = urlsplit(base_url + method)
    host, port = url.hostname, url.port or 80
    lines = [f"POST {url.path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()

    sock = socket.create_connection((host, port), timeout=timeout)
    send_error: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(head)
            if not chunked:
                sock.sendall(body)
                return
            for start in range(0, len(body), CHUNK):
                piece = body[start : start + CHUNK]
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError as error:
            # The server may answer and close before taking the whole body (e.g. 413).
            send_error.append(error)

    sender = threading.Thread(target=send, name=f"send {method}", daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock, method="POST")
        try:
            response.begin()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ConnectionError(
                f"no HTTP answer to {method} ({error}); sending failed with: {send_error}"
            ) from error
        reply_headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, reply_headers, raw)
    finally:
        sender.join(timeout)
        sock.close()


def call(
    base_url: str,
    method: str,
    payload: bytes | dict | None = None,
    *,
    hkey: str = "",
    session: str = "test",
    chunked: bool = True,
) -> Reply:
    """A well-formed v11 request: JSON (or raw bytes) payload, zstd, `anki-sync` header."""
    if payload is None:
        # What the real client sends to argument-less methods (docs/sync-protocol.md#requests).
        payload = {"_pad": None}
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return post(
        base_url,
        method,
        compress(data),
        headers={
            "anki-sync": sync_header(hkey, session),
            "Content-Type": "application/octet-stream",
        },
        chunked=chunked,
    )


def meta_payload() -> dict:
    return {"v": SYNC_VERSION, "cv": f"anki,26.09.3 ({CLIENT_VERSION}),linux"}


def host_key(base_url: str, username: str, password: str) -> Reply:
    return call(base_url, "sync/hostKey", {"u": username, "p": password})


def login(base_url: str, username: str, password: str) -> str:
    reply = host_key(base_url, username, password)
    if reply.status != 200:
        raise AssertionError(f"login of {username!r} failed: {reply!r}")
    return reply.json()["key"]


def meta(base_url: str, hkey: str) -> Reply:
    return call(base_url, "sync/meta", meta_payload(), hkey=hkey)
