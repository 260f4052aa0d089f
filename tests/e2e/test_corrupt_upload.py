"""A broken full upload is refused with the client's own message, and nothing is lost."""

import os
import random
import sqlite3
from pathlib import Path

import pytest

from support import protocol
from support.collection_data import assert_same_collection, fill_like_a_real_user

CORRUPT_MESSAGE = "Your upload was corrupt. Please use Check Database, or restore from backup."


def snapshot(collection_path: Path, target: Path) -> bytes:
    """A self-contained copy of a (possibly open, WAL-mode) collection file."""
    with sqlite3.connect(collection_path) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
        copy.execute("pragma journal_mode=delete")
    return target.read_bytes()


def integrity_fails(data: bytes, scratch: Path) -> bool:
    scratch.write_bytes(data)
    try:
        with sqlite3.connect(scratch) as db:
            return db.execute("pragma integrity_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError:
        return True


def user_files(user_dir: Path) -> set[str]:
    # SQLite's own journal files come and go with open connections; they are not leftovers.
    return {
        name for name in os.listdir(user_dir) if not name.endswith(("-wal", "-shm", "-journal"))
    }


def not_sqlite(original: bytes, scratch: Path) -> bytes:
    return b"this is not a database, just text\n" * 2000


def truncated(original: bytes, scratch: Path) -> bytes:
    return original[: len(original) // 2]


def garbled_pages(original: bytes, scratch: Path) -> bytes:
    """Valid header, but b-tree pages in the middle overwritten with noise."""
    page_size = int.from_bytes(original[16:18], "big")
    pages = len(original) // page_size
    noise = random.Random(4242)
    data = bytearray(original)
    for page in range(pages // 3, pages // 3 + 4):
        start = page * page_size
        data[start : start + page_size] = noise.randbytes(page_size)
    return bytes(data)


def sqlite_but_not_a_collection(original: bytes, scratch: Path) -> bytes:
    with sqlite3.connect(scratch) as db:
        db.execute("create table notes (id integer primary key, text text)")
        db.executemany("insert into notes (text) values (?)", [("x" * 100,)] * 200)
    return scratch.read_bytes()


@pytest.mark.parametrize(
    "make_body", [not_sqlite, truncated, garbled_pages, sqlite_but_not_a_collection]
)
def test_corrupt_upload_is_refused_and_the_collection_survives(
    backend, make_client, tmp_path, make_body
):
    user = backend.create_user()
    a = make_client(backend.url, "device-a")
    fill_like_a_real_user(a.col, notes=60, reviews=20)
    a.first_upload(user)
    good = snapshot(a.path, tmp_path / "snapshot.anki2")
    body = make_body(good, tmp_path / "scratch.anki2")
    if make_body is not sqlite_but_not_a_collection:
        # Otherwise the test would not test what it says.
        assert integrity_fails(body, tmp_path / "check.anki2")

    hkey = protocol.login(backend.url, user.username, user.password)
    meta_before = protocol.meta(backend.url, hkey).json()
    user_dir = backend.sidecar.data_dir / "users" / str(user.id)
    files_before = user_files(user_dir)
    reply = protocol.call(backend.url, "sync/upload", body, hkey=hkey)

    assert reply.status == 200, reply
    assert reply.text() == CORRUPT_MESSAGE
    meta_after = protocol.meta(backend.url, hkey).json()
    assert (meta_after["scm"], meta_after["usn"]) == (meta_before["scm"], meta_before["usn"])
    b = make_client(backend.url, "device-b")
    b.first_download(user)
    assert_same_collection(a.col, b.col)
    # The refused upload left no temporary file behind.
    assert user_files(user_dir) == files_before
