"""Load benchmark: the sidecar against Anki's own sync server, side by side, in one run.

    .venv/bin/python bench/load_bench.py              # the full run (about 15 minutes)
    .venv/bin/python bench/load_bench.py --quick      # one round of 10 s phases
    .venv/bin/python bench/load_bench.py --smoke      # a few seconds per phase (CI)

Both servers run on loopback: `target/release/anki-sidecar` (or `SIDECAR_BIN`) on a
Django-migrated SQLite database, and `python -m anki.syncserver` from the pinned `anki`
package. Users are seeded through each server with the real client (a full upload of a
generated collection). Then the benchmark speaks the raw v11 protocol itself, with the request
shapes the real client sends (see `bench/capture_proxy.py`), and checks every answer: the HTTP
status, `anki-original-size` against the decompressed body, the sanity check's `ok`, and the
collection usn rising by exactly one per sync (media: the media usn by one per file).

The review syncs are made by a Rust driver (`bench/loadgen`, binary `anki-loadgen`) with the
same requests and checks, when it is built: the Python client costs 2 to 3 ms of CPU per sync
on the cores the servers share. `--driver python` makes them here instead (the fallback when
the binary is missing). Downloads, media syncs and the login storm always run in Python.

Phases alternate between the two servers (the order flips every round) because this machine's
noise is large. For each phase it reports syncs/s, latency percentiles, the server's CPU per
sync (utime+stime from /proc/<pid>/stat), its peak RSS in the phase (VmHWM, reset through
/proc/<pid>/clear_refs when allowed) and its disk writes per sync (/proc/<pid>/io
write_bytes), with the ratio ours/official for each figure. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import zstandard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.django_db import sqlite_database  # noqa: E402
from support.sidecar import Sidecar  # noqa: E402

PASSWORD = "bench-password-1"
CLIENT_VERSION_SHORT = "26.09.3,bench,linux"
CLIENT_VERSION_LONG = "anki,26.09.3 (bench),linux"
SYNC_VERSION = 11
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Every request and every phase is bounded: a stuck server fails the run, never hangs it.
REQUEST_TIMEOUT = 120
MAX_CHUNK_CALLS = 10_000
REVIEWED_CARDS = 10
MEDIA_FILES_PER_SYNC = 5
MEDIA_FILE_BYTES = 8_000
STORM_LOGINS = 20
# TLS trust for an https:// server (bench/cluster_bench.py sets its test CA); True: the
# system's roots, which plain-HTTP servers never use.
SSL_CONTEXT: ssl.SSLContext | bool = True


class BenchError(AssertionError):
    """A wrong answer from a server. The run counts them and fails at the end."""


# ---------------------------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcStats:
    """Counters of one server process, read from /proc."""

    def __init__(self, pid: int):
        self.pid = pid

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        # After the command name: state is field 3, utime field 14, stime field 15.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def write_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
        return 0

    def _status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def rss_kb(self) -> int:
        return self._status_kb("VmRSS")

    def peak_rss_kb(self) -> int:
        return self._status_kb("VmHWM")

    def reset_peak(self) -> bool:
        """Resets VmHWM to the current RSS (Linux 4.0+); needs write access to clear_refs."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False


class OursServer:
    name = "ours"

    def __init__(self, work: Path, users: list[str]):
        self.work = work
        self.users = users
        self.sidecar: Sidecar | None = None

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        database = sqlite_database(self.work)
        database.migrate()
        create_django_users(database.env(), self.users, PASSWORD)
        self.sidecar = Sidecar(database.url, self.work / "sidecar", name="sidecar").start()
        self.stats = ProcStats(self.sidecar.process.pid)

    @property
    def url(self) -> str:
        return self.sidecar.url

    def stop(self) -> None:
        if self.sidecar:
            self.sidecar.stop()


class ReferenceServer:
    name = "official"

    def __init__(self, work: Path, users: list[tuple[str, str]] | list[str]):
        self.work = work
        self.users = [u if isinstance(u, tuple) else (u, PASSWORD) for u in users]
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = dict(os.environ, SYNC_BASE=str(self.work / "data"), SYNC_HOST="127.0.0.1")
        env.update(SYNC_PORT=str(self.port), RUST_LOG="info")
        for index, (user, password) in enumerate(self.users, start=1):
            env[f"SYNC_USER{index}"] = f"{user}:{password}"
        log = (self.work / "reference.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "anki.syncserver"], env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.work / "reference.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self.stats = ProcStats(self.process.pid)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the reference server did not start within 60 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


DJANGO_USERS_SCRIPT = """
import json, os, sys
sys.path.insert(0, os.environ["BENCH_DJANGO_APP"])
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
names = json.loads(os.environ["BENCH_USERS"])
# One hash with Django's default hasher and cost, shared by every bench user: hashing each
# password separately would cost a second per user and change nothing the sidecar sees.
encoded = make_password(os.environ["BENCH_PASSWORD"])
User = get_user_model()
User.objects.bulk_create([User(username=n, password=encoded, is_active=True) for n in names])
print(encoded.split("$")[0], encoded.split("$")[1])
"""


def create_django_users(env: dict[str, str], names: list[str], password: str) -> None:
    env = dict(env, BENCH_USERS=json.dumps(names), BENCH_PASSWORD=password)
    env["BENCH_DJANGO_APP"] = str(ROOT / "django_app")
    subprocess.run(
        [sys.executable, "-c", DJANGO_USERS_SCRIPT],
        env=env,
        cwd=ROOT / "django_app",
        check=True,
        capture_output=True,
        timeout=300,
    )


# ---------------------------------------------------------------------------------------------
# Seeding with the real client


@dataclass
class Template:
    """A generated collection and what a review sync needs to know about it."""

    path: Path
    notes: int
    counts: dict[str, int]
    cards: list[list]
    deck: dict
    conf: dict
    crt: int


def make_template(path: Path, notes: int) -> Template:
    from anki.collection import AddNoteRequest, Collection

    path.parent.mkdir(parents=True, exist_ok=True)
    col = Collection(str(path))
    basic = col.models.by_name("Basic")
    deck_id = col.decks.id("Bench")
    batch = 5_000
    for start in range(0, notes, batch):
        requests = []
        for index in range(start, min(notes, start + batch)):
            note = col.new_note(basic)
            note["Front"] = f"front {index}"
            note["Back"] = f"back {index} " + "x" * 40
            note.tags = ["bench", f"group{index % 10}"]
            requests.append(AddNoteRequest(note=note, deck_id=deck_id))
        col.add_notes(requests)
    col.decks.select(deck_id)
    for _ in range(min(notes, 20)):
        card = col.sched.getCard()
        if card is None:
            break
        card.start_timer()
        col.sched.answerCard(card, 3)
    deck = col.decks.get(deck_id)
    conf = col.all_config()
    crt = col.crt
    col.close()
    return read_template(path, notes, deck, conf, crt)


CARD_COLUMNS = (
    "id,nid,did,ord,mod,usn,type,queue,due,ivl,factor,reps,lapses,left,odue,odid,flags,data"
)


def read_template(path: Path, notes: int, deck: dict, conf: dict, crt: int) -> Template:
    db = sqlite3.connect(path)
    # Anki's indexes on names use its own collation; counting may walk one of them.
    db.create_collation("unicase", lambda a, b: (a.lower() > b.lower()) - (a.lower() < b.lower()))
    try:
        counts = {
            table: db.execute(f"select count() from {table}").fetchone()[0]
            for table in ("cards", "notes", "revlog", "graves", "notetypes", "decks", "deck_config")
        }
        cards = [list(row) for row in db.execute(f"select {CARD_COLUMNS} from cards limit 500")]
    finally:
        db.close()
    return Template(path, notes, counts, cards, deck, conf, crt)


def seed_user(
    endpoint: str, template: Template, folder: Path, user: str, upload: Phase | None = None
) -> None:
    """Copies the template and full-uploads it with the real client, as a device would. With
    `upload`, the upload itself is measured into it (one op)."""
    from anki.collection import Collection
    from anki.sync import SyncAuth
    from anki.sync_pb2 import SyncCollectionResponse

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "collection.anki2"
    shutil.copyfile(template.path, path)
    col = Collection(str(path))
    try:
        hkey = col.sync_login(username=user, password=PASSWORD, endpoint=endpoint).hkey
        auth = SyncAuth(hkey=hkey, endpoint=endpoint, io_timeout_secs=REQUEST_TIMEOUT)
        out = col.sync_collection(auth, False)
        if out.required != SyncCollectionResponse.ChangesRequired.FULL_UPLOAD:
            raise BenchError(f"{user}: expected a full upload, the client says {out.required}")
        col.close_for_full_sync()
        measure = upload is not None and upload.extra.get("stats") is not None
        if measure:
            stats: ProcStats = upload.extra["stats"]
            upload.peak_reset = stats.reset_peak()
            rss0, cpu0, io0 = stats.rss_kb(), stats.cpu_seconds(), stats.write_bytes()
            t0 = time.perf_counter()
        col.full_upload_or_download(auth=auth, upload=True, server_usn=None)
        if measure:
            upload.wall = time.perf_counter() - t0
            upload.latencies.append(upload.wall)
            upload.ops = 1
            upload.cpu = stats.cpu_seconds() - cpu0
            upload.write_bytes = stats.write_bytes() - io0
            upload.peak_rss_kb = stats.peak_rss_kb()
            upload.extra["rss_before_kb"] = rss0
        col.reopen(after_full_sync=True)
    finally:
        col.close()


# ---------------------------------------------------------------------------------------------
# The raw protocol


class Client:
    """One HTTP client session shared by all virtual devices of a phase."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str):
        self.session = session
        self.base_url = base_url
        self.compressor = zstandard.ZstdCompressor()
        self.decompressor = zstandard.ZstdDecompressor()

    async def post(self, method: str, payload: bytes, hkey: str, session_key: str) -> bytes:
        """POSTs like the real client (zstd body, `anki-sync` header) and checks the
        answer's status and `anki-original-size`; returns the decompressed body."""
        header = json.dumps(
            {"v": SYNC_VERSION, "k": hkey, "c": CLIENT_VERSION_SHORT, "s": session_key},
            separators=(",", ":"),
        )
        body = self.compressor.compress(payload)
        # The real client streams its bodies chunked. The bench sends a Content-Length instead:
        # aiohttp's streamed-body writer races with the official server's answer on reused
        # connections and fails a few percent of requests. The payloads are the client's.
        async with self.session.post(
            self.base_url + method,
            data=body,
            headers={"anki-sync": header, "Content-Type": "application/octet-stream"},
        ) as answer:
            raw = await answer.read()
            if answer.status != 200:
                raise BenchError(f"{method}: HTTP {answer.status}: {raw[:200]!r}")
            size = answer.headers.get("anki-original-size")
            if size is None:
                raise BenchError(f"{method}: 200 without anki-original-size")
            data = self.decompressor.decompress(raw, max_output_size=int(size) + 1)
            if len(data) != int(size):
                raise BenchError(f"{method}: anki-original-size {size}, body has {len(data)}")
            return data

    async def json(self, method: str, payload, hkey: str, session_key: str):
        data = json.dumps(payload, separators=(",", ":")).encode()
        return json.loads(await self.post(method, data, hkey, session_key))


def session_key() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(random.choice(alphabet) for _ in range(6))


@dataclass
class Device:
    """What a client device knows about one user's collection on one server."""

    user: str
    template: Template
    hkey: str = ""
    usn: int = -1  # the server usn expected in the next meta; -1 until the first meta
    revlog: int = 0
    next_revlog_id: int = 0
    next_card: int = 0
    media_usn: int = -1
    media_files: int = 0
    media_counter: int = 0
    syncs: int = 0


async def login(client: Client, user: str) -> str:
    answer = await client.json("sync/hostKey", {"u": user, "p": PASSWORD}, "", session_key())
    if not isinstance(answer, dict) or not answer.get("key"):
        raise BenchError(f"hostKey: no key in {answer!r}")
    return answer["key"]


async def review_sync(client: Client, dev: Device) -> None:
    """One review sync as the 26.9.3 client sends it after 10 reviews on one device."""
    sk = session_key()
    meta = await client.json(
        "sync/meta", {"v": SYNC_VERSION, "cv": CLIENT_VERSION_LONG}, dev.hkey, sk
    )
    if not meta.get("cont") or meta.get("msg"):
        raise BenchError(f"meta: {meta}")
    if dev.usn >= 0 and meta["usn"] != dev.usn:
        raise BenchError(f"meta: usn {meta['usn']}, expected {dev.usn}")
    usn = meta["usn"]
    now = int(time.time())

    graves = await client.json(
        "sync/start", {"minUsn": usn, "lnewer": True, "graves": None}, dev.hkey, sk
    )
    if not all(isinstance(graves.get(k), list) for k in ("cards", "notes", "decks")):
        raise BenchError(f"start: {graves}")

    # Reviewing changes the deck's "today" counters, so the deck goes up with the local config.
    deck = dict(dev.template.deck, mod=now, usn=usn)
    changes = {
        "models": [],
        "decks": [[deck], []],
        "tags": [],
        "conf": dev.template.conf,
        "crt": dev.template.crt,
    }
    theirs = await client.json("sync/applyChanges", {"changes": changes}, dev.hkey, sk)
    if not (isinstance(theirs.get("models"), list) and isinstance(theirs.get("decks"), list)):
        raise BenchError(f"applyChanges: {theirs}")

    for _ in range(MAX_CHUNK_CALLS):
        chunk = await client.json("sync/chunk", {"_pad": None}, dev.hkey, sk)
        if chunk.get("done"):
            break
    else:
        raise BenchError(f"chunk: no done after {MAX_CHUNK_CALLS} calls")

    cards, revlog = [], []
    pool = dev.template.cards
    for index in range(REVIEWED_CARDS):
        row = list(pool[(dev.next_card + index) % len(pool)])
        # id,nid,did,ord,mod,usn,type,queue,due,ivl,factor,reps,lapses,left,odue,odid,flags,data
        reps = row[11] + dev.syncs + 1
        row[4:14] = [now, usn, 2, 2, 10 + dev.syncs, 3, 2500, reps, 0, 0]
        cards.append(row)
        revlog.append([dev.next_revlog_id + index, row[0], usn, 3, 3, 1, 2500, 6000, 1])
    dev.next_card += REVIEWED_CARDS
    dev.next_revlog_id += REVIEWED_CARDS
    answer = await client.json(
        "sync/applyChunk",
        {"chunk": {"done": True, "revlog": revlog, "cards": cards}},
        dev.hkey,
        sk,
    )
    if answer is not None:
        raise BenchError(f"applyChunk: {answer!r}")

    counts = dev.template.counts
    client_counts = [
        [0, 0, 0],
        counts["cards"],
        counts["notes"],
        dev.revlog + REVIEWED_CARDS,
        0,
        counts["notetypes"],
        counts["decks"],
        counts["deck_config"],
    ]
    sanity = await client.json("sync/sanityCheck2", {"client": client_counts}, dev.hkey, sk)
    if sanity.get("status") != "ok":
        raise BenchError(f"sanityCheck2: {sanity}")

    finished = await client.json("sync/finish", {"_pad": None}, dev.hkey, sk)
    if not isinstance(finished, int) or finished <= 0:
        raise BenchError(f"finish: {finished!r}")
    dev.revlog += REVIEWED_CARDS
    dev.usn = usn + 1
    dev.syncs += 1


async def full_download(client: Client, dev: Device) -> None:
    sk = session_key()
    meta = await client.json(
        "sync/meta", {"v": SYNC_VERSION, "cv": CLIENT_VERSION_LONG}, dev.hkey, sk
    )
    if dev.usn >= 0 and meta["usn"] != dev.usn:
        raise BenchError(f"meta before download: usn {meta['usn']}, expected {dev.usn}")
    data = await client.post("sync/download", b'{"_pad":null}', dev.hkey, session_key())
    if not data.startswith(b"SQLite format 3\x00"):
        raise BenchError(f"download: not a SQLite file ({len(data)} bytes)")
    # A full download bumps the server usn (and mod) by one, on both servers.
    dev.usn = meta["usn"] + 1


def media_zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        meta = []
        for index, (name, data) in enumerate(files.items()):
            archive.writestr(str(index), data)
            meta.append([name, str(index)])
        archive.writestr("_meta", json.dumps(meta))
    return out.getvalue()


async def media_sync(client: Client, dev: Device) -> None:
    """A standalone media sync that uploads 5 new files (begin, uploadChanges, mediaSanity),
    then a second device's media sync that fetches them (begin, mediaChanges, downloadFiles,
    mediaChanges, mediaSanity), as the captured client does."""
    sk = session_key()

    async def msync(method: str, payload):
        answer = await client.json("msync/" + method, payload, dev.hkey, sk)
        if not isinstance(answer, dict) or answer.get("err") != "" or "data" not in answer:
            raise BenchError(f"{method}: {answer!r}")
        return answer["data"]

    begun = await msync("begin", {"v": CLIENT_VERSION_LONG})
    if dev.media_usn >= 0 and begun["usn"] != dev.media_usn:
        raise BenchError(f"begin: media usn {begun['usn']}, expected {dev.media_usn}")
    start_usn = begun["usn"]
    if dev.media_usn < 0:
        # First media sync of this device (or after a wrong answer): catch up first.
        dev.media_files = 0
        last = 0
        for _ in range(MAX_CHUNK_CALLS):
            batch = await msync("mediaChanges", {"lastUsn": last})
            if not batch:
                break
            dev.media_files += sum(1 for entry in batch if entry[2])
            last = batch[-1][1]

    files = {}
    for index in range(MEDIA_FILES_PER_SYNC):
        dev.media_counter += 1
        files[f"{dev.user}-{dev.media_counter}-{index}.jpg"] = os.urandom(MEDIA_FILE_BYTES)
    uploaded = json.loads(await client.post("msync/uploadChanges", media_zip(files), dev.hkey, sk))
    expected_usn = start_usn + len(files)
    if uploaded.get("err") != "" or uploaded.get("data") != [len(files), expected_usn]:
        raise BenchError(f"uploadChanges: {uploaded!r}, from usn {start_usn}")
    dev.media_files += len(files)
    sanity = await msync("mediaSanity", {"local": dev.media_files})
    if sanity != "OK":
        raise BenchError(f"mediaSanity: {sanity!r}")

    # The second device, one sync behind.
    sk = session_key()
    begun = await msync("begin", {"v": CLIENT_VERSION_LONG})
    if begun["usn"] != expected_usn:
        raise BenchError(f"begin (second device): media usn {begun['usn']}, not {expected_usn}")
    changes = await msync("mediaChanges", {"lastUsn": start_usn})
    expected = [
        [name, start_usn + i + 1, hashlib.sha1(data).hexdigest()]
        for i, (name, data) in enumerate(files.items())
    ]
    if changes != expected:
        raise BenchError(f"mediaChanges: {changes!r}, expected {expected!r}")
    zipped = await client.post(
        "msync/downloadFiles", json.dumps({"files": list(files)}).encode(), dev.hkey, sk
    )
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        names = json.loads(archive.read("_meta"))
        got = {names[member]: archive.read(member) for member in names}
    if got != files:
        raise BenchError("downloadFiles: the files differ from the uploaded ones")
    if await msync("mediaChanges", {"lastUsn": expected_usn}) != []:
        raise BenchError("mediaChanges: changes after the last usn")
    sanity = await msync("mediaSanity", {"local": dev.media_files})
    if sanity != "OK":
        raise BenchError(f"mediaSanity (second device): {sanity!r}")
    dev.media_usn = expected_usn


# ---------------------------------------------------------------------------------------------
# Phases


@dataclass
class Phase:
    server: str
    name: str
    concurrency: int
    ops: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    write_bytes: int = 0
    peak_rss_kb: int = 0
    peak_reset: bool = False
    client_cpu: float = 0.0
    driver: str = "python"
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ops / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def cpu_per_op_ms(self) -> float:
        return self.cpu / self.ops * 1000 if self.ops else float("nan")

    @property
    def cores(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0

    @property
    def kb_written_per_op(self) -> float:
        return self.write_bytes / self.ops / 1000 if self.ops else float("nan")

    @property
    def client_cpu_per_op_ms(self) -> float:
        return self.client_cpu / self.ops * 1000 if self.ops else float("nan")


Op = Callable[[Client, Device], Awaitable[None]]


async def run_phase(
    server,
    name: str,
    op: Op,
    devices: list[Device],
    concurrency: int,
    duration: float,
    max_ops: int,
    background: Callable[[Client, float], Awaitable[None]] | None = None,
) -> Phase:
    """`concurrency` workers, each with its own devices (one user's syncs never overlap),
    run `op` until `duration` seconds or `max_ops` operations have passed."""
    phase = Phase(server.name, name, concurrency)
    connector = aiohttp.TCPConnector(limit=0, force_close=False, ssl=SSL_CONTEXT)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        client = Client(http, server.url)
        stats: ProcStats = server.stats
        phase.peak_reset = stats.reset_peak()
        cpu0, io0 = stats.cpu_seconds(), stats.write_bytes()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        deadline = started + duration
        remaining = [max_ops]

        async def worker(mine: list[Device]) -> None:
            turn = 0
            while time.perf_counter() < deadline and remaining[0] > 0:
                remaining[0] -= 1
                dev = mine[turn % len(mine)]
                turn += 1
                t0 = time.perf_counter()
                try:
                    await op(client, dev)
                except (TimeoutError, BenchError, aiohttp.ClientError, ValueError) as e:
                    phase.errors.append(f"{dev.user}: {type(e).__name__}: {e}")
                    if len(phase.errors) >= 20:
                        remaining[0] = 0
                    # Resynchronise the expectations with the server before going on.
                    dev.usn = -1
                    dev.media_usn = -1
                    continue
                phase.latencies.append(time.perf_counter() - t0)
                phase.ops += 1

        workers = max(1, min(concurrency, len(devices)))
        groups = [devices[i::workers] for i in range(workers)]
        tasks = [asyncio.create_task(worker(group)) for group in groups]
        if background is not None:
            tasks.append(asyncio.create_task(background(client, deadline)))
        await asyncio.gather(*tasks)
        phase.wall = time.perf_counter() - started
        phase.cpu = stats.cpu_seconds() - cpu0
        phase.write_bytes = stats.write_bytes() - io0
        phase.peak_rss_kb = stats.peak_rss_kb()
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        phase.client_cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return phase


def loadgen_binary() -> Path:
    """The Rust load driver (bench/loadgen): `LOADGEN_BIN`, or the workspace's release build."""
    return Path(os.environ.get("LOADGEN_BIN") or ROOT / "target/release/anki-loadgen")


def loadgen_job(server, devices: list[Device], concurrency: int, duration: float, max_ops: int):
    """The Rust driver's job: the phase, the devices, and each template they start from once."""
    templates: list[Template] = []
    for dev in devices:
        if not any(t is dev.template for t in templates):
            templates.append(dev.template)
    return {
        "base_url": server.url,
        "concurrency": concurrency,
        "duration": duration,
        "max_ops": max_ops,
        "templates": [
            {"deck": t.deck, "conf": t.conf, "crt": t.crt, "counts": t.counts, "cards": t.cards}
            for t in templates
        ],
        "devices": [
            {
                "user": dev.user,
                "hkey": dev.hkey,
                "usn": dev.usn,
                "revlog": dev.revlog,
                "next_revlog_id": dev.next_revlog_id,
                "next_card": dev.next_card,
                "syncs": dev.syncs,
                "template": next(i for i, t in enumerate(templates) if t is dev.template),
            }
            for dev in devices
        ],
    }


def drive_loadgen(job: dict, limit: float) -> tuple[dict | None, str, float]:
    """Runs the Rust driver on `job` (killed after `limit` seconds) and returns its outcome
    (None if it failed), its stderr and its CPU seconds (the child's rusage)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [str(loadgen_binary())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
        watchdog = threading.Timer(limit, process.kill)
        watchdog.start()
        try:
            # The driver reads the whole job before it writes anything: no pipe can fill up.
            process.stdin.write(json.dumps(job, separators=(",", ":")).encode())
            process.stdin.close()
            out = process.stdout.read()
            process.stdout.close()
        finally:
            # Reaped here rather than by Popen.wait, for the child's resource usage.
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            watchdog.cancel()
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    if process.returncode != 0:
        return None, f"exit status {process.returncode}: {errors[-2000:]}", cpu
    try:
        return json.loads(out), errors, cpu
    except ValueError as e:
        return None, f"unreadable outcome ({e}): {out[:200]!r} {errors[-2000:]}", cpu


async def run_phase_rust(
    server,
    name: str,
    devices: list[Device],
    concurrency: int,
    duration: float,
    max_ops: int,
    background: Callable[[Client, float], Awaitable[None]] | None = None,
) -> Phase:
    """`run_phase` for review syncs, the syncs made by the Rust driver (bench/loadgen) with
    the same grouping, limits and checks; `background` still runs here, in Python."""
    phase = Phase(server.name, name, concurrency, driver="rust")
    job = loadgen_job(server, devices, concurrency, duration, max_ops)
    stats: ProcStats = server.stats
    phase.peak_reset = stats.reset_peak()
    cpu0, io0 = stats.cpu_seconds(), stats.write_bytes()
    deadline = time.perf_counter() + duration
    limit = duration + REQUEST_TIMEOUT + 60
    driven = asyncio.create_task(asyncio.to_thread(drive_loadgen, job, limit))
    if background is not None:
        connector = aiohttp.TCPConnector(limit=0, force_close=False, ssl=SSL_CONTEXT)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await background(Client(http, server.url), deadline)
    outcome, stderr, phase.client_cpu = await driven
    phase.cpu = stats.cpu_seconds() - cpu0
    phase.write_bytes = stats.write_bytes() - io0
    phase.peak_rss_kb = stats.peak_rss_kb()
    if outcome is None:
        phase.errors.append(f"anki-loadgen: {stderr}")
        return phase
    phase.ops = outcome["ops"]
    phase.latencies = outcome["latencies"]
    phase.wall = outcome["wall"]
    phase.errors = outcome["errors"]
    if outcome["error_count"] > len(phase.errors):
        phase.errors.append(f"({outcome['error_count'] - len(phase.errors)} more not kept)")
    by_user = {dev.user: dev for dev in devices}
    for state in outcome["devices"]:
        dev = by_user[state["user"]]
        for key in ("usn", "revlog", "next_revlog_id", "next_card", "syncs"):
            setattr(dev, key, state[key])
    return phase


def login_storm(users: list[str], results: Phase) -> Callable[[Client, float], Awaitable[None]]:
    """20 devices logging in at once, again and again, until the phase ends."""

    async def storm(client: Client, deadline: float) -> None:
        async def one(user: str) -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    await login(client, user)
                except (TimeoutError, BenchError, aiohttp.ClientError) as e:
                    results.errors.append(f"login {user}: {e}")
                    return
                results.extra.setdefault("login_latencies", []).append(time.perf_counter() - t0)

        await asyncio.gather(*(one(user) for user in users))

    return storm


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Settings:
    users: int
    notes: int
    levels: list[int]
    rounds: int
    duration: float
    other_concurrency: int
    sizes: list[int]
    size_duration: float
    storm_duration: float
    max_ops: int
    servers: list[str] = field(default_factory=lambda: ["ours", "official"])
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    # Who makes the review syncs: "rust" (bench/loadgen) or "python" (run_phase).
    driver: str = "python"


PHASES = ("review", "download", "media", "sizes", "storm")
DRIVERS = {
    "rust": "the Rust driver (bench/loadgen, target/release/anki-loadgen)",
    "python": "the Python client (aiohttp)",
}


QUICK = dict(rounds=1, duration=10.0, size_duration=6.0, storm_duration=8.0)
SMOKE = dict(
    users=4,
    notes=60,
    levels=[1, 4],
    rounds=1,
    duration=1.5,
    other_concurrency=2,
    sizes=[60, 300],
    size_duration=1.0,
    storm_duration=1.5,
    max_ops=400,
)


def fmt_ratio(ours: float, theirs: float) -> str:
    if not theirs or theirs != theirs or ours != ours:
        return "n/a"
    return f"{ours / theirs:.2f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def merge(phases: list[Phase]) -> Phase:
    """All rounds of one phase and server together; peak RSS is the largest."""
    first = phases[0]
    total = Phase(first.server, first.name, first.concurrency)
    for p in phases:
        total.ops += p.ops
        total.errors += p.errors
        total.latencies += p.latencies
        total.wall += p.wall
        total.cpu += p.cpu
        total.write_bytes += p.write_bytes
        total.peak_rss_kb = max(total.peak_rss_kb, p.peak_rss_kb)
        total.client_cpu += p.client_cpu
    total.driver = first.driver
    total.extra["rates"] = [p.rate for p in phases]
    return total


def phase_rows(pairs: list[tuple[str, Phase, Phase]]) -> str:
    header = [
        "phase",
        "server",
        "ops",
        "ops/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU ms/op",
        "CPU cores",
        "peak RSS MB",
        "disk KB/op",
        "client CPU ms/op",
        "spread of ops/s",
    ]
    rows = []
    for label, ours, theirs in pairs:
        for p in (theirs, ours):
            rates = p.extra.get("rates", [p.rate])
            spread = "-"
            if len(rates) > 1 and statistics.median(rates):
                med = statistics.median(rates)
                spread = (
                    f"{(min(rates) / med - 1) * 100:+.0f}%/{(max(rates) / med - 1) * 100:+.0f}%"
                )
            rows.append(
                [
                    label,
                    p.server,
                    str(p.ops),
                    f"{p.rate:.1f}",
                    f"{p.pct(0.5):.1f}",
                    f"{p.pct(0.95):.1f}",
                    f"{p.pct(0.99):.1f}",
                    f"{p.cpu_per_op_ms:.2f}",
                    f"{p.cores:.2f}",
                    f"{p.peak_rss_kb / 1024:.0f}",
                    f"{p.kb_written_per_op:.0f}",
                    f"{p.client_cpu_per_op_ms:.2f} ({p.driver})",
                    spread,
                ]
            )
        rows.append(
            [
                label,
                "**ours/official**",
                "",
                fmt_ratio(ours.rate, theirs.rate),
                fmt_ratio(ours.pct(0.5), theirs.pct(0.5)),
                fmt_ratio(ours.pct(0.95), theirs.pct(0.95)),
                fmt_ratio(ours.pct(0.99), theirs.pct(0.99)),
                fmt_ratio(ours.cpu_per_op_ms, theirs.cpu_per_op_ms),
                fmt_ratio(ours.cores, theirs.cores),
                fmt_ratio(ours.peak_rss_kb, theirs.peak_rss_kb),
                fmt_ratio(ours.kb_written_per_op, theirs.kb_written_per_op),
                "",
                "",
            ]
        )
    return table(rows, header)


def seed(
    server, templates: dict[str, Template], clients: Path, uploads: dict[str, Phase]
) -> dict[str, Device]:
    """Seeds every user; the upload of each size user is measured into `uploads`."""
    devices = {}
    for user, template in templates.items():
        upload = None
        if user.startswith("size"):
            upload = Phase(server.name, f"full upload, {template.notes} notes", 1)
            upload.extra["stats"] = server.stats
            uploads[user] = upload
        seed_user(server.url, template, clients / server.name / user, user, upload)
        devices[user] = Device(user, template, next_revlog_id=int(time.time() * 1000))
        devices[user].revlog = template.counts["revlog"]
    return devices


async def login_all(server, devices: dict[str, Device]) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=SSL_CONTEXT)) as http:
        client = Client(http, server.url)
        for dev in devices.values():
            dev.hkey = await login(client, dev.user)


def run(settings: Settings, work: Path, out_json: Path | None) -> int:
    load_users = [f"bench{i}" for i in range(settings.users)]
    size_users = [f"size{n}" for n in settings.sizes]
    storm_users = [f"storm{i}" for i in range(STORM_LOGINS)]
    everyone = load_users + size_users + storm_users
    servers = [OursServer(work / "ours", everyone), ReferenceServer(work / "official", everyone)]
    servers = [server for server in servers if server.name in settings.servers]
    phases = set(settings.phases)
    if "sizes" not in phases:
        size_users = []
    storm_level = min(8, len(load_users))
    log = print
    try:
        for server in servers:
            server.start()
            log(f"{server.name}: {server.url} (pid {server.stats.pid})")
        t0 = time.perf_counter()
        templates: dict[int, Template] = {}
        for n in sorted({settings.notes, *(settings.sizes if size_users else [])}):
            templates[n] = make_template(work / "templates" / f"{n}.anki2", n)
            log(f"template of {n} notes made in {time.perf_counter() - t0:.1f} s")
        assignment = {u: templates[settings.notes] for u in load_users}
        assignment.update({u: templates[int(u[4:])] for u in size_users})
        results: dict[tuple[str, str], list[Phase]] = {}
        phase_names = []

        def record(key_name: str, phase: Phase) -> None:
            if key_name not in phase_names:
                phase_names.append(key_name)
            results.setdefault((key_name, phase.server), []).append(phase)

        devices = {}
        for server in servers:
            t1 = time.perf_counter()
            uploads: dict[str, Phase] = {}
            devices[server.name] = seed(server, assignment, work / "clients", uploads)
            asyncio.run(login_all(server, devices[server.name]))
            for upload in uploads.values():
                # Not alternated: each server's users are seeded in one go.
                record(upload.name, upload)
                log(
                    f"  {upload.name:28} {server.name:8} {upload.wall:6.2f} s, server CPU "
                    f"{upload.cpu:.2f} s, peak RSS {upload.peak_rss_kb / 1024:.0f} MB "
                    f"(before: {upload.extra['rss_before_kb'] / 1024:.0f} MB)"
                )
            log(
                f"{server.name}: {len(assignment)} users seeded by full upload in "
                f"{time.perf_counter() - t1:.1f} s"
            )

        def order(round_index: int):
            return servers if round_index % 2 == 0 else list(reversed(servers))

        def go(server, name, op, devs, conc, duration, background=None) -> Phase:
            if op is review_sync and settings.driver == "rust":
                phase = asyncio.run(
                    run_phase_rust(server, name, devs, conc, duration, settings.max_ops, background)
                )
            else:
                phase = asyncio.run(
                    run_phase(server, name, op, devs, conc, duration, settings.max_ops, background)
                )
            log(
                f"  {name:28} {server.name:8} {phase.ops:5} ops {phase.rate:7.1f}/s "
                f"p99 {phase.pct(0.99):7.1f} ms cpu {phase.cpu_per_op_ms:6.2f} ms/op "
                f"client ({phase.driver}) {phase.client_cpu_per_op_ms:5.2f} ms/op "
                f"errors {len(phase.errors)}"
            )
            for error in phase.errors[:5]:
                log(f"    ! {error}")
            return phase

        load = {s.name: [devices[s.name][u] for u in load_users] for s in servers}
        for r in range(settings.rounds):
            log(f"round {r + 1} of {settings.rounds}")
            for level in settings.levels if "review" in phases else []:
                for server in order(r + level):
                    name = f"review sync x{level}"
                    record(
                        name,
                        go(server, name, review_sync, load[server.name], level, settings.duration),
                    )
            oc = settings.other_concurrency
            for server in order(r) if "download" in phases else []:
                name = f"full download x{oc}"
                record(
                    name, go(server, name, full_download, load[server.name], oc, settings.duration)
                )
            for server in order(r + 1) if "media" in phases else []:
                name = f"media sync x{oc}"
                record(name, go(server, name, media_sync, load[server.name], oc, settings.duration))

        for n in settings.sizes if size_users else []:
            for server in order(n):
                name = f"review sync, {n} notes"
                dev = devices[server.name][f"size{n}"]
                record(name, go(server, name, review_sync, [dev], 1, settings.size_duration))

        for server in servers if "storm" in phases else []:
            quiet = go(
                server,
                f"quiet review sync x{storm_level}",
                review_sync,
                load[server.name],
                storm_level,
                settings.storm_duration,
            )
            record(f"quiet review sync x{storm_level}", quiet)
            stormy = Phase(server.name, "storm", storm_level)
            phase = go(
                server,
                f"review sync x{storm_level} + storm",
                review_sync,
                load[server.name],
                storm_level,
                settings.storm_duration,
                background=login_storm(storm_users, stormy),
            )
            phase.errors += stormy.errors
            phase.extra["logins"] = len(stormy.extra.get("login_latencies", []))
            phase.extra["login_p50_ms"] = (
                statistics.median(stormy.extra["login_latencies"]) * 1000
                if stormy.extra.get("login_latencies")
                else float("nan")
            )
            record(f"review sync x{storm_level} + storm", phase)
    finally:
        for server in servers:
            server.stop()

    merged = {key: merge(phases) for key, phases in results.items()}

    def get(name: str, server: str) -> Phase:
        return merged.get((name, server)) or Phase(server, name, 0)

    pairs = [(name, get(name, "ours"), get(name, "official")) for name in phase_names]
    report = [
        f"## Load benchmark: ours (anki-sidecar) vs official (anki {anki_version()} syncserver)",
        "",
        f"{settings.users} users of {settings.notes} notes; {settings.rounds} round(s) of "
        f"{settings.duration:g} s per phase, alternating; machine: {machine()}",
        "",
        f"Load driver of the review syncs: {DRIVERS[settings.driver]}; of the downloads and "
        "media syncs: the Python client. Client CPU ms/op: the driver's own CPU per operation "
        "(for Python, the whole benchmark process's).",
        "",
        phase_rows(pairs),
        "",
    ]
    storm_lines = []
    for server in ("official", "ours"):
        quiet = merged.get((f"quiet review sync x{storm_level}", server))
        stormy = merged.get((f"review sync x{storm_level} + storm", server))
        if quiet and stormy:
            logins = sum(
                p.extra.get("logins", 0)
                for p in results[(f"review sync x{storm_level} + storm", server)]
            )
            storm_lines.append(
                f"- {server}: small-sync p99 {quiet.pct(0.99):.1f} ms quiet, "
                f"{stormy.pct(0.99):.1f} ms during the storm "
                f"({fmt_ratio(stormy.pct(0.99), quiet.pct(0.99))}x; {logins} logins)"
            )
    if storm_lines:
        report += [
            f"Login storm ({STORM_LOGINS} devices logging in again and again during review "
            f"syncs x{storm_level}):",
            "",
            *storm_lines,
            "",
        ]
    size_lines = []
    for n in settings.sizes if size_users else []:
        ours = get(f"review sync, {n} notes", "ours")
        theirs = get(f"review sync, {n} notes", "official")
        size_lines.append(
            f"| {n} | {theirs.pct(0.5):.1f} | {ours.pct(0.5):.1f} | "
            f"{fmt_ratio(ours.pct(0.5), theirs.pct(0.5))} | {theirs.cpu_per_op_ms:.2f} | "
            f"{ours.cpu_per_op_ms:.2f} |"
        )
    if size_lines:
        report += [
            "Small sync against collection size (1 device, p50):",
            "",
            "| notes | official ms | ours ms | ratio | official CPU ms | ours CPU ms |",
            "|---|---|---|---|---|---|",
            *size_lines,
            "",
        ]
    upload_lines = []
    for n in settings.sizes if size_users else []:
        ours, theirs = (
            get(f"full upload, {n} notes", "ours"),
            get(f"full upload, {n} notes", "official"),
        )

        def growth(p: Phase) -> str:
            runs = results.get((p.name, p.server), [])
            if not runs or "rss_before_kb" not in runs[0].extra:
                return "n/a"
            return f"{(runs[0].peak_rss_kb - runs[0].extra['rss_before_kb']) / 1024:+.0f}"

        upload_lines.append(
            f"| {n} | {theirs.wall:.2f} | {ours.wall:.2f} | {fmt_ratio(ours.wall, theirs.wall)} | "
            f"{theirs.cpu:.2f} | {ours.cpu:.2f} | {growth(theirs)} | {growth(ours)} |"
        )
    if upload_lines:
        report += [
            "Full upload by the real client (while seeding; not alternated):",
            "",
            "| notes | official s | ours s | ratio | official CPU s | ours CPU s "
            "| official peak RSS growth MB | ours peak RSS growth MB |",
            "|---|---|---|---|---|---|---|---|",
            *upload_lines,
            "",
        ]
    if not all(p.peak_reset for phases in results.values() for p in phases):
        report += ["Note: VmHWM could not be reset here; peak RSS is since the server started.", ""]
    errors = [e for p in merged.values() for e in p.errors]
    total_ops = sum(p.ops for p in merged.values())
    report.append(f"Answers checked: {total_ops} operations, {len(errors)} wrong answers.")
    text = "\n".join(report)
    print("\n" + text)
    if out_json:
        out_json.write_text(
            json.dumps(
                {
                    "settings": settings.__dict__,
                    "phases": [
                        {
                            "phase": name,
                            "server": p.server,
                            "ops": p.ops,
                            "ops_per_s": p.rate,
                            "p50_ms": p.pct(0.5),
                            "p95_ms": p.pct(0.95),
                            "p99_ms": p.pct(0.99),
                            "cpu_ms_per_op": p.cpu_per_op_ms,
                            "cores": p.cores,
                            "peak_rss_kb": p.peak_rss_kb,
                            "write_kb_per_op": p.kb_written_per_op,
                            "client_cpu_s": p.client_cpu,
                            "client_cpu_ms_per_op": p.client_cpu_per_op_ms,
                            "driver": p.driver,
                            "errors": p.errors,
                            "rates": p.extra.get("rates"),
                        }
                        for (name, _), p in merged.items()
                    ],
                    "report": text,
                },
                indent=1,
            )
        )
    for error in errors[:20]:
        print("wrong answer:", error, file=sys.stderr)
    return 1 if errors or total_ops == 0 else 0


def anki_version() -> str:
    try:
        from importlib.metadata import version

        return version("anki")
    except Exception:
        return "?"


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()[0]
    return f"{cpus} cores ({model}), load average {load:.1f} at the end"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--notes", type=int, default=2000, help="notes per load user")
    parser.add_argument("--levels", default="1,8,32", help="concurrent syncs, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument(
        "--other-concurrency",
        type=int,
        default=8,
        help="concurrency of the download and media phases",
    )
    parser.add_argument(
        "--sizes",
        default="2000,20000",
        help="collection sizes for the scaling phase (add 200000 for the big one)",
    )
    parser.add_argument("--big", action="store_true", help="add the 200,000-note collection")
    parser.add_argument("--size-duration", type=float, default=10.0)
    parser.add_argument("--storm-duration", type=float, default=12.0)
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="cap per phase")
    parser.add_argument("--quick", action="store_true", help="1 round, shorter phases")
    parser.add_argument("--smoke", action="store_true", help="CI: tiny users, seconds per phase")
    parser.add_argument(
        "--servers", default="ours,official", help="which servers to run (ours, official)"
    )
    parser.add_argument("--phases", default=",".join(PHASES), help="which phases to run")
    parser.add_argument("--work-dir", type=Path, help="keep the servers' data here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--driver",
        choices=tuple(DRIVERS),
        help="who makes the review syncs; default: rust when target/release/anki-loadgen "
        "(or LOADGEN_BIN) exists, else python",
    )
    args = parser.parse_args(argv)
    values = dict(
        users=args.users,
        notes=args.notes,
        levels=[int(x) for x in args.levels.split(",")],
        rounds=args.rounds,
        duration=args.duration,
        other_concurrency=args.other_concurrency,
        sizes=[int(x) for x in args.sizes.split(",") if x],
        size_duration=args.size_duration,
        storm_duration=args.storm_duration,
        max_ops=args.max_ops,
        servers=args.servers.split(","),
        phases=args.phases.split(","),
    )
    if args.big and 200_000 not in values["sizes"]:
        values["sizes"].append(200_000)
    if args.quick:
        values.update(QUICK)
    if args.smoke:
        values.update(SMOKE)
    binary = Path(os.environ.get("SIDECAR_BIN") or ROOT / "target/release/anki-sidecar")
    if not binary.is_file():
        print(f"{binary} is missing: run `cargo build --release -p anki-sidecar` first")
        return 2
    loadgen = loadgen_binary()
    values["driver"] = args.driver or ("rust" if loadgen.is_file() else "python")
    if values["driver"] == "rust" and not loadgen.is_file():
        print(f"{loadgen} is missing: run `{BUILD_LOADGEN}` first, or use --driver python")
        return 2
    if args.driver is None and values["driver"] == "python":
        print(
            f"note: {loadgen} is missing, so the review syncs use the Python client, whose own "
            f"CPU cost competes with the servers; `{BUILD_LOADGEN}` builds the Rust driver"
        )
    settings = Settings(**values)
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        return run(settings, args.work_dir, args.json)
    with tempfile.TemporaryDirectory(prefix="load-bench-") as temp:
        return run(settings, Path(temp), args.json)


BUILD_LOADGEN = "cargo build --release --locked -p anki-sidecar -p anki-loadgen"


def capture_demo(endpoint: str, folder: Path, user: str, password: str) -> None:
    """The real client through the capture proxy: full upload, review sync, full download,
    media sync. Used by `capture_proxy.py --demo`."""
    from anki.collection import Collection
    from anki.sync import SyncAuth

    template = make_template(folder / "template.anki2", 30)
    a_dir, b_dir = folder / "a", folder / "b"
    a_dir.mkdir(parents=True)
    shutil.copyfile(template.path, a_dir / "collection.anki2")
    a = Collection(str(a_dir / "collection.anki2"))
    hkey = a.sync_login(username=user, password=password, endpoint=endpoint).hkey
    auth = SyncAuth(hkey=hkey, endpoint=endpoint, io_timeout_secs=60)
    print("# first sync, then full upload", flush=True)
    a.sync_collection(auth, False)
    a.close_for_full_sync()
    a.full_upload_or_download(auth=auth, upload=True, server_usn=None)
    a.reopen(after_full_sync=True)
    print("# review sync after reviews", flush=True)
    a.decks.select(a.decks.id("Bench"))
    for _ in range(3):
        card = a.sched.getCard()
        card.start_timer()
        a.sched.answerCard(card, 3)
    a.sync_collection(auth, False)
    print("# media sync", flush=True)
    Path(a.media.dir(), "capture.jpg").write_bytes(b"x" * 100)
    a.sync_media(auth)
    while a.media_sync_status().active:
        time.sleep(0.05)
    print("# second device: full download and media", flush=True)
    b_dir.mkdir()
    b = Collection(str(b_dir / "collection.anki2"))
    b.sync_collection(auth, False)
    b.close_for_full_sync()
    b.full_upload_or_download(auth=auth, upload=False, server_usn=None)
    b.reopen(after_full_sync=True)
    b.sync_media(auth)
    while b.media_sync_status().active:
        time.sleep(0.05)
    a.close()
    b.close()


if __name__ == "__main__":
    sys.exit(main())
