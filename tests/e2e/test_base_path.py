"""Under SIDECAR_BASE_PATH the whole public side moves below the prefix
(docs/design.md#processes-and-listeners)."""

from support import protocol
from support.collection_data import assert_same_collection, fill_like_a_real_user


def test_clients_sync_under_a_path_prefix(backend, make_client):
    sidecar = backend.start_sidecar({"SIDECAR_BASE_PATH": "/anki"})
    assert sidecar.url.endswith("/anki/")
    user = backend.create_user()
    a = make_client(sidecar.url, "device-a")
    fill_like_a_real_user(a.col, notes=30, reviews=10)
    a.first_upload(user)

    b = make_client(sidecar.url, "device-b")
    b.first_download(user)

    assert_same_collection(a.col, b.col)
    # Nothing is served outside the prefix.
    outside = protocol.meta(sidecar.root_url + "/", a.auth.hkey)
    assert outside.status == 404, outside
