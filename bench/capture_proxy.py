"""A logging proxy: shows what the real Anki client sends, to copy its request shapes.

    .venv/bin/python bench/capture_proxy.py --target http://127.0.0.1:8080/ --port 8090

Point a client at `http://127.0.0.1:8090/` and every request is forwarded to the target and
printed as one JSON line on stdout: path, the request headers that matter, and the start of
the decompressed request and answer bodies. `load_bench.py` copies these shapes; with
`--demo` this script starts a reference server, runs the real client through the proxy (a
full upload, a review sync, a full download and a media sync) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp
import zstandard
from aiohttp import web

PREVIEW = 600
KEPT_HEADERS = ("anki-sync", "transfer-encoding", "content-length", "content-type")


def preview(data: bytes) -> str:
    with contextlib.suppress(zstandard.ZstdError):
        data = zstandard.ZstdDecompressor().decompress(data, max_output_size=64 << 20)
    if data[:4] == b"PK\x03\x04":
        return f"<zip, {len(data)} bytes>"
    if data[:16] == b"SQLite format 3\x00":
        return f"<sqlite, {len(data)} bytes>"
    return data[:PREVIEW].decode(errors="replace")


def make_app(target: str, out) -> web.Application:
    session: dict[str, aiohttp.ClientSession] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        if "s" not in session:
            session["s"] = aiohttp.ClientSession()
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("anki-sync", "content-type")
        }
        async with session["s"].request(
            request.method, target.rstrip("/") + request.path_qs, data=body, headers=headers
        ) as answer:
            raw = await answer.read()
            record = {
                "path": request.path,
                "request_headers": {
                    k.lower(): v for k, v in request.headers.items() if k.lower() in KEPT_HEADERS
                },
                "request": preview(body),
                "status": answer.status,
                "anki-original-size": answer.headers.get("anki-original-size"),
                "answer": preview(raw),
            }
            print(json.dumps(record), file=out, flush=True)
            reply_headers = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("anki-original-size", "content-type")
            }
            return web.Response(status=answer.status, body=raw, headers=reply_headers)

    async def close(_app: web.Application) -> None:
        if "s" in session:
            await session["s"].close()

    app = web.Application(client_max_size=300 << 20)
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_cleanup.append(close)
    return app


def serve_in_thread(make: Callable[[], web.Application]) -> int:
    """Serves the app `make` builds on a free loopback port, in a daemon thread with its own
    event loop, for the rest of the process; returns the port once it listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready = threading.Event()

    def serve() -> None:
        async def main() -> None:
            runner = web.AppRunner(make())
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            ready.set()
            await asyncio.sleep(3600)

        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(10)
    return port


def demo() -> None:
    """Reference server, proxy in front, real client through it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import load_bench as lb

    with tempfile.TemporaryDirectory(prefix="capture-") as temp:
        work = Path(temp)
        users = [("capture", "capture-pw")]
        server = lb.ReferenceServer(work / "reference", users)
        server.start()
        port = serve_in_thread(lambda: make_app(server.url, sys.stdout))
        try:
            lb.capture_demo(f"http://127.0.0.1:{port}/", work / "clients", *users[0])
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="base URL of the server to forward to")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--demo", action="store_true", help="capture one run of the real client")
    args = parser.parse_args()
    if args.demo:
        demo()
        return
    if not args.target:
        parser.error("--target is required without --demo")
    web.run_app(make_app(args.target, sys.stdout), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
