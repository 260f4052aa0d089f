"""Compare the sidecar with Anki's reference sync server on this machine, in one run.

Both servers run on loopback and are driven by the same real client (the `anki` package) with
the same workload. The report gives each step's wall time and the ratio sidecar / reference
(below 1.0 means the sidecar is faster).

    .venv/bin/python bench/sync_bench.py [--notes 5000] [--media 200] [--rounds 3]

Needs a release build of the sidecar (`cargo build --release -p anki-sidecar`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDECAR_BIN = Path(os.environ.get("SIDECAR_BIN", ROOT / "target/release/anki-sidecar"))
USERNAME = "bench"
PASSWORD = "bench-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_log(process: subprocess.Popen, log: Path, pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        match = re.search(pattern, log.read_text())
        if match:
            return match.group(1)
        time.sleep(0.05)
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def make_django_database(path: Path) -> None:
    """A Django-migrated SQLite database with one user, hashed by real Django."""
    script = f"""
import django
from django.conf import settings
settings.configure(
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {str(path)!r}}}}},
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
)
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
User.objects.create_user({USERNAME!r}, "", {PASSWORD!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True)


def start_sidecar(work: Path) -> tuple[subprocess.Popen, str]:
    db = work / "django.sqlite3"
    make_django_database(db)
    log = work / "sidecar.log"
    env = dict(
        os.environ,
        SIDECAR_DATABASE_URL=f"sqlite:///{db}",
        SIDECAR_DATA_DIR=str(work / "sidecar-data"),
        SIDECAR_PUBLIC_ADDR="127.0.0.1:0",
        SIDECAR_INTERNAL_ADDR="127.0.0.1:0",
        RUST_LOG="info",
    )
    process = subprocess.Popen(
        [str(SIDECAR_BIN)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    address = wait_for_log(process, log, r"listening public=(\S+)")
    return process, f"http://{address}/"


def start_reference(work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = work / "reference.log"
    env = dict(
        os.environ,
        SYNC_USER1=f"{USERNAME}:{PASSWORD}",
        SYNC_BASE=str(work / "reference-data"),
        SYNC_HOST="127.0.0.1",
        SYNC_PORT=str(port),
        RUST_LOG="warn",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "anki.syncserver"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}/"
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.05)
    raise RuntimeError("reference server did not start")


def timed(results: dict[str, list[float]], name: str, action) -> None:
    started = time.perf_counter()
    action()
    results.setdefault(name, []).append(time.perf_counter() - started)


def wait_media(col) -> None:
    while True:
        status = col.media_sync_status()
        if not status.active:
            return
        time.sleep(0.02)


def run_workload(endpoint: str, work: Path, notes: int, media: int, results: dict) -> None:
    from anki.collection import Collection
    from anki.sync import SyncAuth

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "a").mkdir()
    a = Collection(str(work / "a" / "collection.anki2"))
    basic = a.models.by_name("Basic")
    deck = a.decks.id("Bench")
    for index in range(notes):
        note = a.new_note(basic)
        note["Front"] = f"front {index}"
        note["Back"] = f"back {index} " + "x" * 40
        note.tags = ["bench", f"group{index % 10}"]
        a.add_note(note, deck)
    for _ in range(min(notes, 200)):
        card = a.sched.getCard()
        if card is None:
            break
        card.start_timer()
        a.sched.answerCard(card, 3)

    hkey = a.sync_login(username=USERNAME, password=PASSWORD, endpoint=endpoint).hkey
    auth = SyncAuth(hkey=hkey, endpoint=endpoint, io_timeout_secs=120)
    a.sync_collection(auth, False)

    def full_upload():
        a.close_for_full_sync()
        a.full_upload_or_download(auth=auth, upload=True, server_usn=None)
        a.reopen(after_full_sync=True)

    timed(results, "full upload", full_upload)

    (work / "b").mkdir()
    b = Collection(str(work / "b" / "collection.anki2"))
    b.sync_collection(auth, False)

    def full_download():
        b.close_for_full_sync()
        b.full_upload_or_download(auth=auth, upload=False, server_usn=None)
        b.reopen(after_full_sync=True)

    timed(results, "full download", full_download)

    changed = a.find_notes("tag:group1")
    for note_id in changed:
        note = a.get_note(note_id)
        note["Back"] = note["Back"] + " edited"
        a.update_note(note)
    timed(results, f"normal sync, {len(changed)} notes up", lambda: a.sync_collection(auth, False))
    timed(
        results, f"normal sync, {len(changed)} notes down", lambda: b.sync_collection(auth, False)
    )
    timed(results, "normal sync, nothing to do", lambda: b.sync_collection(auth, False))

    media_dir = Path(a.media.dir())
    for index in range(media):
        (media_dir / f"bench-{index}.bin").write_bytes(os.urandom(20_000))

    def media_up():
        a.sync_media(auth)
        wait_media(a)

    def media_down():
        b.sync_media(auth)
        wait_media(b)

    timed(results, f"media sync, {media} files up", media_up)
    timed(results, f"media sync, {media} files down", media_down)
    a.close()
    b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=5000)
    parser.add_argument("--media", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not SIDECAR_BIN.exists():
        sys.exit(f"{SIDECAR_BIN} is missing: run `cargo build --release -p anki-sidecar` first")

    with tempfile.TemporaryDirectory(prefix="sync-bench-") as temp:
        work = Path(temp)
        sidecar, sidecar_url = start_sidecar(work)
        reference, reference_url = start_reference(work)
        results: dict[str, dict[str, list[float]]] = {"sidecar": {}, "reference": {}}
        try:
            for round_index in range(args.rounds):
                # Alternate the order so neither server always runs on a warmer machine.
                order = [("sidecar", sidecar_url), ("reference", reference_url)]
                if round_index % 2:
                    order.reverse()
                for name, url in order:
                    # Both servers keep one account across rounds; each round's full upload
                    # replaces its collection, so every round starts from the same state.
                    run_workload(
                        url, work / f"{name}-{round_index}", args.notes, args.media, results[name]
                    )
        finally:
            for process in (sidecar, reference):
                process.terminate()
                process.wait(timeout=10)

    print(
        f"\nAnki sync: sidecar vs reference server, {args.notes} notes, {args.media} media"
        f" files, median of {args.rounds} rounds\n"
    )
    print(f"{'step':42} {'sidecar s':>10} {'reference s':>12} {'ratio':>7}")
    for step, timings in results["sidecar"].items():
        ours = statistics.median(timings)
        theirs = statistics.median(results["reference"][step])
        print(f"{step:42} {ours:10.3f} {theirs:12.3f} {ours / theirs:7.2f}")


if __name__ == "__main__":
    main()
