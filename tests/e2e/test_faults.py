"""Fault injection (issue 11): kill -9 at each phase of every kind of write, and a full disk
during each kind of write. After each fault the server restarts on the same data folder, and
the test checks what the issue asks for: no corrupt database (SQLite's integrity check of
every per-user file), no acknowledged change lost (a second real client downloads and compares),
no user locked out (the real client syncs again), and no temporary file left after the
restart.

The crash is deterministic: `SIDECAR_FAULT_POINT` makes the sidecar abort (SIGABRT: no
unwinding, no destructors, no flushing, the state a kill -9 leaves) the moment it reaches the
named point (`sidecar/src/fault.rs`). The full disk is a small tmpfs mounted over the data
folder; without the right to mount, those tests skip and say so.

Storage is the same whatever Django's database is, so these run on SQLite only.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import sqlite3
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from anki.errors import NetworkError, SyncError

from support import protocol
from support.client import FULL_SYNC, FULL_UPLOAD, NO_CHANGES, AnkiClient
from support.collection_data import assert_same_collection, dump_collection, fill_like_a_real_user
from support.internal_api import push_package
from support.media import media_files, sync_media
from support.sidecar import Sidecar
from support.web import tiny_png

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.parametrize("django_database", ["sqlite"], indirect=True),
]

# The restarted server removes every stale temporary file, however fresh.
RESTART_ENV = {"SIDECAR_TEMP_CLEANUP_AGE_SECS": "0"}
PER_USER_DATABASES = ("collection.anki2", "media.db", "imports.db")
# What the client raises when the server dies mid-request (network) or answers 5xx (sync).
FAILED_SYNC = (NetworkError, SyncError)


class Server:
    """Successive sidecar processes on one data folder: the backend's own, then one armed with
    a fault point, then a clean restart."""

    def __init__(self, backend, work_dir: Path | None = None):
        self.backend = backend
        self.work_dir = work_dir or backend.sidecar.data_dir.parent
        self.current: Sidecar | None = backend.sidecar if work_dir is None else None
        self.runs = 0

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    def start(self, fault: str | None = None) -> Sidecar:
        if self.current is not None:
            self.current.stop()
        self.runs += 1
        env = dict(RESTART_ENV)
        if fault:
            env["SIDECAR_FAULT_POINT"] = fault
        sidecar = Sidecar(self.backend.database.url, self.work_dir, env, name=f"run-{self.runs}")
        # The backend stops it at teardown and attaches its log to a failing report.
        self.backend.sidecars.append(sidecar)
        self.current = sidecar.start()
        return sidecar

    def point_clients(self, *clients: AnkiClient) -> None:
        for client in clients:
            client.endpoint = self.current.url
            if client.auth is not None:
                client.use_key(client.auth.hkey)

    def wait_crashed(self, point: str) -> None:
        process = self.current.process
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the sidecar did not stop at {point}:\n{self.current.log_excerpt()}")
        assert process.returncode == -signal.SIGABRT, self.current.log_excerpt()
        assert f"fault injection: aborting at {point}" in self.current.log()


def temp_files(user_dir: Path) -> list[str]:
    """The server's temporary files (all start with a dot) in a user's folders."""
    found = []
    for folder in (user_dir, user_dir / "media", user_dir / "imports"):
        if folder.is_dir():
            found += [str(p) for p in folder.iterdir() if p.name.startswith(".")]
    return found


def check_user_files(user_dir: Path) -> None:
    """Every per-user database passes SQLite's integrity check, none had to be recovered,
    and no temporary file is left."""
    for name in PER_USER_DATABASES:
        path = user_dir / name
        if path.exists():
            with sqlite3.connect(path) as db:
                assert db.execute("pragma integrity_check").fetchone()[0] == "ok", name
    assert not list(user_dir.glob("*.corrupt-*")), "a database had to be replaced"
    assert temp_files(user_dir) == []


def restart_and_check(server: Server, user_dir: Path, *clients: AnkiClient) -> Sidecar:
    sidecar = server.start()
    server.point_clients(*clients)
    assert temp_files(user_dir) == [], "the restart removed every temporary file"
    assert "removed stale temporary files" in sidecar.log()
    return sidecar


def add_notes(client: AnkiClient, prefix: str, count: int) -> None:
    basic = client.col.models.by_name("Basic")
    for index in range(count):
        note = client.col.new_note(basic)
        note["Front"] = f"{prefix} {index} " + "x" * 200
        note["Back"] = f"back {index}"
        client.col.add_note(note, 1)


def uploaded_device(
    backend, make_client, user, name="A", notes=40, reviews=10, endpoint: str | None = None
) -> AnkiClient:
    """A device with a filled collection that it has full-uploaded (to `endpoint`, by default
    the backend's sidecar)."""
    client = make_client(endpoint or backend.url, name)
    fill_like_a_real_user(client.col, notes=notes, reviews=reviews)
    client.first_upload(user)
    return client


def downloaded_copy(make_client, endpoint: str, user, name: str) -> AnkiClient:
    copy = make_client(endpoint, name)
    copy.first_download(user)
    return copy


def without_usn(col) -> dict:
    """A collection's contents without the `usn` bookkeeping (see below)."""
    dump = dump_collection(col)
    for section, value in dump.items():
        if isinstance(value, dict) and "columns" in value and "usn" in value["columns"]:
            at = value["columns"].index("usn")
            value["rows"] = [row[:at] + row[at + 1 :] for row in value["rows"]]
            value["columns"] = [c for c in value["columns"] if c != "usn"]
        elif isinstance(value, list):
            dump[section] = [
                {k: v for k, v in item.items() if k != "usn"} if isinstance(item, dict) else item
                for item in value
            ]
    return dump


def assert_same_content(left, right) -> None:
    """Like `assert_same_collection`, but blind to `usn`. When the server committed a sync
    whose answer never reached the client, the client sends the same rows again at its next
    sync; the server keeps its copy (same modification time: not newer) under the earlier
    usn, while the client stamps them with the later one. The contents are identical."""
    a, b = without_usn(left), without_usn(right)
    assert a["notes"]["rows"]
    assert a["cards"]["rows"]
    for section in a:
        assert a[section] == b[section], f"collections differ in {section}"


def sync_until_settled(client: AnkiClient) -> None:
    """What a user does after an error: sync again (uploading if a full sync is asked for).
    The second sync must find nothing left to do."""
    required = client.sync()
    if required in (FULL_SYNC, FULL_UPLOAD):
        client.full_upload()
    assert client.sync() == NO_CHANGES


def settles_and_matches_a_new_device(a: AnkiClient, server, user, user_dir: Path, make_client):
    """After a failure: A syncs until settled, the user's files are sound, and a new device
    downloads exactly A's collection."""
    sync_until_settled(a)
    check_user_files(user_dir)
    c = downloaded_copy(make_client, server.current.url, user, "C")
    assert_same_collection(a.col, c.col)


# --- imports through the internal API ----------------------------------------------------------


def package_with_notes(guid_prefix: str, count: int) -> bytes:
    """A minimal legacy `.apkg` (schema 11, as genanki writes it) built from a client's own
    export, so it is certain to be a valid package."""
    import genanki

    model = genanki.Model(
        1_700_000_111,
        "Fault test",
        fields=[{"name": "Q"}, {"name": "A"}],
        templates=[{"name": "Card 1", "qfmt": "{{Q}}", "afmt": "{{A}}"}],
    )
    deck = genanki.Deck(1_900_000_222, "Pushed")
    for index in range(count):
        deck.add_note(
            genanki.Note(
                model=model, fields=[f"q {index}", f"a {index}"], guid=f"{guid_prefix}{index}"
            )
        )
    buffer = io.BytesIO()
    genanki.Package(deck).write_to_file(buffer)
    return buffer.getvalue()


def notes_with_guid_prefix(client: AnkiClient, prefix: str) -> int:
    return client.col.db.scalar("select count() from notes where guid like ?", f"{prefix}%")


# --- kill -9 at each phase ----------------------------------------------------------------------


@pytest.mark.parametrize("point", ["upload:spooled", "upload:converted", "upload:installed"])
def test_crash_during_a_full_upload(backend, make_client, point):
    user = backend.create_user()
    user_dir = backend.sidecar.data_dir / "users" / str(user.id)
    a = uploaded_device(backend, make_client, user, "A")
    b = make_client(backend.url, "B")
    fill_like_a_real_user(b.col, notes=25, reviews=5)
    add_notes(b, "from B", 5)
    b.login(user.username, user.password)
    assert b.sync() == FULL_SYNC

    server = Server(backend)
    server.start(fault=point)
    server.point_clients(a, b)
    with pytest.raises(FAILED_SYNC):
        b.full_upload()
    server.wait_crashed(point)

    restart_and_check(server, user_dir, a, b)
    # Nothing was acknowledged: the server holds A's collection or, past the swap, B's.
    stored = make_client(server.current.url, "probe")
    stored.first_download(user)
    notes = stored.col.note_count()
    assert notes in (a.col.note_count(), b.col.note_count())
    # B is not locked out: its next sync goes through, and a new device gets exactly B's data.
    sync_until_settled(b)
    check_user_files(user_dir)
    c = downloaded_copy(make_client, server.current.url, user, "C")
    assert_same_collection(b.col, c.col)


@pytest.mark.parametrize("point", ["sync:chunk-applied", "sync:before-commit", "sync:committed"])
def test_crash_during_a_normal_sync(backend, make_client, point):
    user = backend.create_user()
    user_dir = backend.sidecar.data_dir / "users" / str(user.id)
    a = uploaded_device(backend, make_client, user, "A")
    add_notes(a, "after upload", 12)

    server = Server(backend)
    server.start(fault=point)
    server.point_clients(a)
    with pytest.raises(FAILED_SYNC):
        a.sync()
    server.wait_crashed(point)

    restart_and_check(server, user_dir, a)
    sync_until_settled(a)
    check_user_files(user_dir)
    c = downloaded_copy(make_client, server.current.url, user, "C")
    assert_same_content(a.col, c.col)
    assert c.col.db.scalar("select count() from notes where flds like 'after upload%'") == 12


@pytest.mark.parametrize("point", ["media:files-placed", "media:committed"])
def test_crash_during_a_media_upload(backend, make_client, point):
    user = backend.create_user()
    user_dir = backend.sidecar.data_dir / "users" / str(user.id)
    a = uploaded_device(backend, make_client, user, "A", notes=10)
    for index in range(4):
        a.col.media.write_data(f"fault-{index}.png", tiny_png(10 * index, 100, 50, size=3 + index))
    sync_media(a)
    # A second batch is the one cut short.
    for index in range(4, 7):
        a.col.media.write_data(f"fault-{index}.png", tiny_png(10 * index, 20, 50, size=3 + index))

    server = Server(backend)
    server.start(fault=point)
    server.point_clients(a)
    with pytest.raises(FAILED_SYNC):
        sync_media(a)
    server.wait_crashed(point)

    restart_and_check(server, user_dir, a)
    # The media.db the crash left is the one before the batch, or the one after it.
    sync_media(a)
    check_user_files(user_dir)
    c = downloaded_copy(make_client, server.current.url, user, "C")
    sync_media(c)
    assert media_files(c) == media_files(a)
    assert len(media_files(c)) == 7


@pytest.mark.parametrize("point", ["import:spooled", "import:merged", "import:recorded"])
def test_crash_during_an_import(backend, make_client, point):
    user = backend.create_user()
    user_dir = backend.sidecar.data_dir / "users" / str(user.id)
    a = uploaded_device(backend, make_client, user, "A", notes=10)
    package = package_with_notes("fault-import-", 20)

    server = Server(backend)
    sidecar = server.start(fault=point)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        push_package(sidecar, user.id, package, key="push-1")
    server.wait_crashed(point)

    sidecar = restart_and_check(server, user_dir, a)
    # The operator retries with the same key; the notes arrive exactly once.
    status, body = push_package(sidecar, user.id, package, key="push-1")
    assert status == 200, body
    sync_until_settled(a)
    assert notes_with_guid_prefix(a, "fault-import-") == 20
    check_user_files(user_dir)
    c = downloaded_copy(make_client, server.current.url, user, "C")
    assert_same_collection(a.col, c.col)


def test_a_restart_removes_stale_temp_files_and_keeps_fresh_ones(backend, make_client):
    """Issue 11, defect 9: temporary files of interrupted requests stayed for ever."""
    user = backend.create_user()
    user_dir = backend.sidecar.data_dir / "users" / str(user.id)
    a = uploaded_device(backend, make_client, user, "A", notes=10)
    planted = {
        user_dir / ".upload-abc": 300_000,
        user_dir / ".upload-zst-abc": 100_000,
        user_dir / ".import-xyz.apkg": 50_000,
        user_dir / ".import-col-xyz": 70_000,
    }
    for path, size in planted.items():
        path.write_bytes(b"\0" * size)
    backend.sidecar.stop()
    # The default age keeps fresh files: they may belong to another live server process.
    fresh = Sidecar(backend.database.url, backend.sidecar.data_dir.parent, name="default-age")
    backend.sidecars.append(fresh)
    fresh.start()
    assert all(path.exists() for path in planted)
    fresh.stop()

    server = Server(backend)
    server.current = None
    sidecar = server.start()
    assert temp_files(user_dir) == []
    assert f"removed stale temporary files files={len(planted)} bytes={sum(planted.values())}" in (
        sidecar.log()
    )
    server.point_clients(a)
    assert a.sync() == NO_CHANGES
    check_user_files(user_dir)


# --- a full disk during each kind of write ------------------------------------------------------

DISK_MB = 24


@contextmanager
def small_disk(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a {DISK_MB} MiB tmpfs for the full-disk tests (needs root): "
            f"{mounted.stderr.strip()}"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


class Filler:
    """Fills the small disk up to `leave` free bytes, and frees it again."""

    def __init__(self, folder: Path):
        self.path = folder / "filler"

    def fill(self, leave: int = 0) -> None:
        block = b"\0" * (64 * 1024)
        full = False
        with self.path.open("ab", buffering=0) as out:
            while not full:
                try:
                    out.write(block)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    full = True
        if leave:
            os.truncate(self.path, max(0, self.path.stat().st_size - leave))

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture
def full_disk_server(backend, tmp_path):
    """A sidecar whose data folder is a small tmpfs, and the filler for it."""
    work_dir = tmp_path / "small-disk"
    with small_disk(work_dir / "data") as data:
        server = Server(backend, work_dir)
        server.start()
        yield server, Filler(data)
        server.current.stop()


def test_full_disk_on_a_first_media_upload(backend, make_client, full_disk_server):
    """Issue 11, defect 3: this left media.db at 0 bytes, and every later meta answered 500."""
    server, filler = full_disk_server
    user = backend.create_user()
    user_dir = server.data_dir / "users" / str(user.id)
    a = uploaded_device(
        backend, make_client, user, notes=10, reviews=3, endpoint=server.current.url
    )
    for index in range(3):
        a.col.media.write_data(f"disk-{index}.png", tiny_png(index, 2, 3, size=4 + index))

    filler.fill()
    with pytest.raises(FAILED_SYNC):
        sync_media(a)
    filler.free()

    hkey = protocol.login(server.current.url, user.username, user.password)
    assert protocol.meta(server.current.url, hkey).status == 200
    sync_media(a)
    assert a.sync() == NO_CHANGES
    check_user_files(user_dir)
    # And after a restart too.
    restart_and_check(server, user_dir, a)
    c = downloaded_copy(make_client, server.current.url, user, "C")
    sync_media(c)
    assert media_files(c) == media_files(a)


def test_full_disk_during_a_full_upload(backend, make_client, full_disk_server):
    server, filler = full_disk_server
    user = backend.create_user()
    user_dir = server.data_dir / "users" / str(user.id)
    a = make_client(server.current.url, "A")
    fill_like_a_real_user(a.col, notes=300, reviews=50)
    a.login(user.username, user.password)
    assert a.sync() == FULL_UPLOAD

    filler.fill(leave=64 * 1024)
    with pytest.raises(FAILED_SYNC):
        a.full_upload()
    check_user_files(user_dir)
    filler.free()

    settles_and_matches_a_new_device(a, server, user, user_dir, make_client)


def test_full_disk_during_a_normal_sync(backend, make_client, full_disk_server):
    server, filler = full_disk_server
    user = backend.create_user()
    user_dir = server.data_dir / "users" / str(user.id)
    a = uploaded_device(
        backend, make_client, user, notes=40, reviews=10, endpoint=server.current.url
    )
    add_notes(a, "on a full disk", 300)

    filler.fill()
    with pytest.raises(FAILED_SYNC):
        a.sync()
    check_user_files(user_dir)
    filler.free()

    settles_and_matches_a_new_device(a, server, user, user_dir, make_client)


def test_full_disk_during_an_import(backend, make_client, full_disk_server):
    server, filler = full_disk_server
    user = backend.create_user()
    user_dir = server.data_dir / "users" / str(user.id)
    a = uploaded_device(
        backend, make_client, user, notes=10, reviews=3, endpoint=server.current.url
    )
    package = package_with_notes("disk-import-", 30)

    filler.fill()
    status, body = push_package(server.current, user.id, package, key="disk-1")
    assert 400 <= status < 600, body
    check_user_files(user_dir)
    filler.free()

    status, body = push_package(server.current, user.id, package, key="disk-1")
    assert status == 200, body
    assert json.loads(body)["notes"]["added"] == 30
    sync_until_settled(a)
    assert notes_with_guid_prefix(a, "disk-import-") == 30
    check_user_files(user_dir)
