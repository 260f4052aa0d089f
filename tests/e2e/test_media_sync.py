"""Media sync with two real clients through the sidecar (issue #4).

Files are compared byte for byte (by SHA-1 of each file's content) in both media folders.
Hostile uploads are tested at HTTP level in `sidecar/tests/media_http.rs`.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata

import pytest

from support.client import FULL_UPLOAD, NO_CHANGES, AnkiClient
from support.media import media_files, media_folder, sync_media, wait_for_media

pytestmark = pytest.mark.timeout(600)


def sync_collection_and_media(client: AnkiClient) -> int:
    """The path that skips /msync/begin and trusts `media_usn` from meta."""
    assert client.auth is not None
    required = client.step(
        "sync_collection with media", lambda: client.col.sync_collection(client.auth, True)
    ).required
    wait_for_media(client)
    return required


def add_mixed_files(client: AnkiClient) -> dict[str, bytes]:
    """About 40 files: binary, one of about 2 MB, non-ASCII names; more than 25, so several
    upload and download batches are needed. Copied straight into the folder so names keep
    their case (the client's own helper lowercases)."""
    files: dict[str, bytes] = {}
    for index in range(36):
        files[f"Binary-{index:02}.bin"] = os.urandom(1024 + index * 97)
    files["big-recording.mp3"] = os.urandom(2_000_000)
    files["ünïcødé café.png"] = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
    files["日本語の画像.jpg"] = os.urandom(7000)
    files["emoji 🦉 owl.gif"] = os.urandom(3000)
    for name, data in files.items():
        (media_folder(client) / name).write_bytes(data)
    return files


def logged_in_pair(backend, make_client) -> tuple[AnkiClient, AnkiClient]:
    user = backend.create_user()
    a = make_client(backend.url, "A")
    b = make_client(backend.url, "B")
    a.login(user.username, user.password)
    b.login(user.username, user.password)
    return a, b


def media_requests(backend) -> dict[str, int]:
    """How many upload and download calls the sidecar has answered so far, from its log."""
    log = backend.sidecar.log()
    return {
        method: len(re.findall(rf"path=\S*/msync/{method}\b", log))
        for method in ("uploadChanges", "downloadFiles")
    }


def test_begin_path_moves_files_byte_identical(backend, make_client):
    a, b = logged_in_pair(backend, make_client)
    files = add_mixed_files(a)
    sync_media(a)
    sync_media(b)
    expected = {
        unicodedata.normalize("NFC", name): hashlib.sha1(data).hexdigest()
        for name, data in files.items()
    }
    assert media_files(a, nfc=True) == expected
    assert media_files(b, nfc=True) == expected
    requests = media_requests(backend)
    assert requests["uploadChanges"] >= 2, "more than 25 files need several batches"
    assert requests["downloadFiles"] >= 2

    # Nothing to do: no file moves either way.
    before = media_requests(backend)
    sync_media(a)
    sync_media(b)
    assert media_requests(backend) == before


def test_sync_collection_path_trusts_meta_media_usn(backend, make_client):
    a, b = logged_in_pair(backend, make_client)
    note = a.col.new_note(a.col.models.by_name("Basic"))
    note["Front"] = 'picture <img src="diagram.png">'
    note["Back"] = "[sound:voice.mp3]"
    a.col.add_note(note, 1)
    (media_folder(a) / "diagram.png").write_bytes(os.urandom(4000))
    (media_folder(a) / "voice.mp3").write_bytes(os.urandom(9000))
    add_mixed_files(a)

    assert a.sync() == FULL_UPLOAD
    a.full_upload()
    assert sync_collection_and_media(a) == NO_CHANGES
    # B starts empty: the collection comes by full download, then media through meta's usn.
    b.sync()
    b.full_download()
    assert sync_collection_and_media(b) == NO_CHANGES
    assert media_files(b, nfc=True) == media_files(a, nfc=True)
    assert len(media_files(b, nfc=True)) == 42


def test_deletions_travel_both_ways(backend, make_client):
    a, b = logged_in_pair(backend, make_client)
    add_mixed_files(a)
    sync_media(a)
    sync_media(b)

    (media_folder(a) / "Binary-03.bin").unlink()
    sync_media(a)
    sync_media(b)
    assert "Binary-03.bin" not in media_files(b, nfc=True)

    (media_folder(b) / "big-recording.mp3").unlink()
    sync_media(b)
    sync_media(a)
    assert "big-recording.mp3" not in media_files(a, nfc=True)
    assert media_files(a, nfc=True) == media_files(b, nfc=True)
    assert len(media_files(a, nfc=True)) == 38


def test_a_thousand_small_files_go_up_and_down(backend, make_client):
    a, b = logged_in_pair(backend, make_client)
    for index in range(1000):
        (media_folder(a) / f"small-{index:04}.txt").write_bytes(f"file {index}\n".encode() * 3)
    sync_media(a)
    sync_media(b)
    assert len(media_files(b, nfc=True)) == 1000
    assert media_files(b, nfc=True) == media_files(a, nfc=True)
