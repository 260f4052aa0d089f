"""Full upload, side by side: the sidecar against Anki's own sync server, many samples.

    .venv/bin/python bench/upload_bench.py --notes 300000 --rounds 6

`bench/load_bench.py` measures one real-client upload per size while seeding, which is too
coarse to compare two servers on a shared machine. This driver captures once what the real
client sends for a full upload of a generated collection (the client's own `sync/upload`
body: the schema-18 file it closed in DELETE mode, zstd-compressed, recorded by a small proxy
in front of the official server), then posts that same body to each server, alternately
(the order flips every round), with the raw v11 protocol (`sync/hostKey`, `sync/meta`,
`sync/upload`). For each upload it records the wall time of `sync/upload`, the server's CPU
(utime+stime from /proc/<pid>/stat, all threads), its peak RSS growth (VmHWM after resetting
it through /proc/<pid>/clear_refs, minus VmRSS before) and its disk writes
(/proc/<pid>/io write_bytes), and reports the medians with ratios ours/official.

The body goes with a Content-Length, not chunked as the real client streams it (as in
`load_bench.py`); both servers read it the same way. Templates are generated with the real
client (`load_bench.make_template`) and kept in `--work-dir` so that later runs reuse them;
without it, everything goes to a temporary folder removed at the end. `SIDECAR_BIN` picks the
sidecar binary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_bench as lb
from capture_proxy import serve_in_thread

USER = "upload1"


@dataclass
class Sample:
    wall: float
    cpu: float
    peak_growth_kb: int
    write_bytes: int


@dataclass
class Results:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    def spread(self, attr: str) -> tuple[float, float]:
        values = [getattr(s, attr) for s in self.samples]
        return min(values), max(values)


def capture_upload_body(template: Path, work: Path) -> bytes:
    """The compressed body of the real client's `sync/upload` for `template`, recorded by a
    proxy in front of a throwaway official server."""
    server = lb.ReferenceServer(work / "capture-server", [USER])
    server.start()
    captured: dict[str, bytes] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path.endswith("/upload"):
            captured["body"] = body
            captured["header"] = request.headers.get("anki-sync", "").encode()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("anki-sync", "content-type")
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, server.url.rstrip("/") + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            raw = await answer.read()
            reply = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("anki-original-size", "content-type")
            }
            return web.Response(status=answer.status, body=raw, headers=reply)

    def make() -> web.Application:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", forward)
        return app

    port = serve_in_thread(make)
    try:
        tpl = lb.Template(template, 0, {}, [], {}, {}, 0)
        lb.seed_user(f"http://127.0.0.1:{port}/", tpl, work / "capture-client", USER)
    finally:
        server.stop()
    if "body" not in captured:
        raise lb.BenchError("the client sent no sync/upload")
    return captured["body"]


def describe_body(body: bytes, work: Path) -> str:
    import zstandard

    plain = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    path = work / "captured.anki2"
    path.write_bytes(plain)
    db = sqlite3.connect(path)
    try:
        ver = db.execute("select ver from col").fetchone()[0]
        mode = db.execute("pragma journal_mode").fetchone()[0]
        free = db.execute("pragma freelist_count").fetchone()[0]
        pages = db.execute("pragma page_count").fetchone()[0]
    finally:
        db.close()
    path.unlink()
    return (
        f"body {len(body) / 1e6:.1f} MB compressed, {len(plain) / 1e6:.1f} MB SQLite file: "
        f"schema {ver}, journal_mode {mode}, {pages} pages, {free} free"
    )


async def upload_once(server, body: bytes, hkey: str) -> Sample:
    stats: lb.ProcStats = server.stats
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=lb.REQUEST_TIMEOUT)
    ) as http:
        client = lb.Client(http, server.url)
        skey = lb.session_key()
        await client.json(
            "sync/meta", {"v": lb.SYNC_VERSION, "cv": lb.CLIENT_VERSION_LONG}, hkey, skey
        )
        header = json.dumps(
            {"v": lb.SYNC_VERSION, "k": hkey, "c": lb.CLIENT_VERSION_SHORT, "s": skey},
            separators=(",", ":"),
        )
        stats.reset_peak()
        rss0, cpu0, io0 = stats.rss_kb(), stats.cpu_seconds(), stats.write_bytes()
        t0 = time.perf_counter()
        async with http.post(
            server.url + "sync/upload",
            data=body,
            headers={"anki-sync": header, "Content-Type": "application/octet-stream"},
        ) as answer:
            raw = await answer.read()
        wall = time.perf_counter() - t0
        # The answer's body is zstd-compressed "OK".
        import zstandard

        text = zstandard.ZstdDecompressor().decompress(raw, max_output_size=64)
        if answer.status != 200 or text != b"OK":
            raise lb.BenchError(f"{server.name}: upload answered {answer.status} {text!r}")
        # Let the server's last accounting settle (CPU ticks of a finishing thread).
        await asyncio.sleep(0.05)
        return Sample(
            wall=wall,
            cpu=stats.cpu_seconds() - cpu0,
            peak_growth_kb=stats.peak_rss_kb() - rss0,
            write_bytes=stats.write_bytes() - io0,
        )


async def hostkey(server) -> str:
    async with aiohttp.ClientSession() as http:
        return await lb.login(lb.Client(http, server.url), USER)


def report(results: dict[str, Results], rounds: int) -> str:
    ours, official = results["ours"], results["official"]
    rows = []
    metrics = [
        ("time s", "wall", 1.0, "{:.2f}"),
        ("server CPU s", "cpu", 1.0, "{:.2f}"),
        ("peak RSS growth MB", "peak_growth_kb", 1 / 1024, "{:.0f}"),
        ("disk writes MB", "write_bytes", 1 / 1e6, "{:.0f}"),
    ]
    for label, attr, scale, fmt in metrics:
        o, t = ours.median(attr) * scale, official.median(attr) * scale
        olo, ohi = (v * scale for v in ours.spread(attr))
        tlo, thi = (v * scale for v in official.spread(attr))
        ratio = f"{o / t:.2f}" if t else "-"
        rows.append(
            f"| {label} | {fmt.format(t)} ({fmt.format(tlo)}-{fmt.format(thi)}) "
            f"| {fmt.format(o)} ({fmt.format(olo)}-{fmt.format(ohi)}) | {ratio} |"
        )
    head = (
        f"medians of {rounds} uploads per server (min-max in brackets)\n\n"
        "| figure | official | ours | ours/official |\n|---|---|---|---|"
    )
    return head + "\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--work-dir", help="keep templates, the captured body and server data here")
    parser.add_argument("--json", help="also write every sample here")
    args = parser.parse_args(argv)

    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        return run(args, work)
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as temp:
        return run(args, Path(temp))


def run(args: argparse.Namespace, work: Path) -> int:
    template = work / "templates" / f"{args.notes}.anki2"
    if not template.exists():
        print(f"generating a {args.notes}-note collection with the real client", flush=True)
        lb.make_template(template, args.notes)
    body_path = work / f"upload-{args.notes}.zst"
    if not body_path.exists():
        body_path.write_bytes(capture_upload_body(template, work))
        shutil.rmtree(work / "capture-server", ignore_errors=True)
        shutil.rmtree(work / "capture-client", ignore_errors=True)
    body = body_path.read_bytes()
    print(describe_body(body, work), flush=True)

    for name in ("ours", "official"):
        shutil.rmtree(work / name, ignore_errors=True)
    servers = {
        "ours": lb.OursServer(work / "ours", [USER]),
        "official": lb.ReferenceServer(work / "official", [USER]),
    }
    results = {name: Results(name) for name in servers}
    try:
        for server in servers.values():
            server.start()
        keys = {name: asyncio.run(hostkey(server)) for name, server in servers.items()}
        # One upload each, not counted: the first creates the user's folder and warms caches.
        for name, server in servers.items():
            asyncio.run(upload_once(server, body, keys[name]))
        names = list(servers)
        for round_index in range(args.rounds):
            order = names if round_index % 2 == 0 else names[::-1]
            for name in order:
                sample = asyncio.run(upload_once(servers[name], body, keys[name]))
                results[name].samples.append(sample)
                print(
                    f"round {round_index + 1} {name}: {sample.wall:.2f} s, CPU {sample.cpu:.2f} s, "
                    f"peak +{sample.peak_growth_kb / 1024:.0f} MB, "
                    f"writes {sample.write_bytes / 1e6:.0f} MB",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
    print()
    print(report(results, args.rounds))
    if args.json:
        Path(args.json).write_text(
            json.dumps({n: [s.__dict__ for s in r.samples] for n, r in results.items()}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
