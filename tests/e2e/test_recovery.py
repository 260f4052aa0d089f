"""Recovery of damaged per-user files with the real client (issue 11: a missing, empty or
corrupt collection or media.db must never lock a user out; docs/operations.md, section 9a).
"""

from __future__ import annotations

import pytest

from support.client import FULL_SYNC, FULL_UPLOAD, NO_CHANGES, AnkiClient
from support.collection_data import assert_same_collection, fill_like_a_real_user
from support.media import media_files, sync_media
from support.web import tiny_png

pytestmark = pytest.mark.timeout(600)


def uploaded(backend, make_client, user) -> AnkiClient:
    a = make_client(backend.url, "A")
    fill_like_a_real_user(a.col, notes=30, reviews=6)
    a.first_upload(user)
    return a


def test_a_corrupt_collection_sends_the_client_to_a_full_upload(backend, make_client):
    user = backend.create_user()
    a = uploaded(backend, make_client, user)
    user_dir = backend.sidecar.data_dir / "users" / str(user.id)
    (user_dir / "collection.anki2").write_bytes(b"\x5a" * 65536)

    # The server is empty now and has a new schema time: the client must full-sync, and
    # only the upload direction makes sense.
    assert a.sync() in (FULL_SYNC, FULL_UPLOAD)
    a.full_upload()
    assert a.sync() == NO_CHANGES
    # One damaged file kept aside (its write-ahead log and index, if any, go with it).
    kept = [
        path
        for path in user_dir.glob("collection.anki2.corrupt-*")
        if not path.name.endswith(("-wal", "-shm"))
    ]
    assert len(kept) == 1
    assert "damaged per-user file replaced" in backend.sidecar.log()
    b = make_client(backend.url, "B")
    b.first_download(user)
    assert_same_collection(a.col, b.col)


@pytest.mark.parametrize("damage", [b"", b"\x33" * 8192])
def test_an_empty_or_corrupt_media_db_is_rebuilt(backend, make_client, damage):
    user = backend.create_user()
    a = uploaded(backend, make_client, user)
    for index in range(5):
        a.col.media.write_data(f"rebuild-{index}.png", tiny_png(index, 9, 9, size=3 + index))
    sync_media(a)
    user_dir = backend.sidecar.data_dir / "users" / str(user.id)
    (user_dir / "media.db").write_bytes(damage)

    assert a.sync() == NO_CHANGES
    sync_media(a)
    # A second device gets every file from the rebuilt list.
    b = make_client(backend.url, "B")
    b.first_download(user)
    sync_media(b)
    assert media_files(b) == media_files(a)
    assert len(media_files(b)) == 5
    # And the first device still syncs media cleanly afterwards.
    a.col.media.write_data("after-rebuild.png", tiny_png(1, 2, 3, size=9))
    sync_media(a)
    sync_media(b)
    assert media_files(b) == media_files(a)
