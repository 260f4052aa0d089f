"""Full upload, then full download to a fresh device, must give back the same collection."""

from support import protocol
from support.client import FULL_UPLOAD, NO_CHANGES, required_name
from support.collection_data import assert_same_collection, fill_like_a_real_user


def test_full_upload_then_full_download_gives_the_same_collection(backend, make_client):
    user = backend.create_user()
    a = make_client(backend.url, "device-a")
    fill_like_a_real_user(a.col, notes=300)
    a.login(user.username, user.password)

    assert required_name(a.sync()) == required_name(FULL_UPLOAD)
    a.full_upload()

    b = make_client(backend.url, "device-b")
    b.first_download(user)

    assert b.col.note_count() == 300
    assert_same_collection(a.col, b.col)
    assert required_name(a.sync()) == required_name(NO_CHANGES)
    assert required_name(b.sync()) == required_name(NO_CHANGES)
    # Those syncs changed nothing on either side.
    assert_same_collection(a.col, b.col)


def test_fresh_empty_client_and_new_user_need_no_sync(backend, make_client):
    user = backend.create_user()
    client = make_client(backend.url)
    client.login(user.username, user.password)

    assert required_name(client.sync()) == required_name(NO_CHANGES)
    # The new user's server collection is untouched: mod 0, empty (docs/sync-protocol.md#meta).
    reply = protocol.meta(backend.url, client.auth.hkey)
    assert reply.status == 200, reply
    answer = reply.json()
    assert answer["mod"] == 0
    assert answer["empty"] is True
    assert answer["cont"] is True
