"""Under SIDECAR_BASE_PATH the whole public side moves below the prefix (design §1)."""

from support import protocol
from support.client import FULL_DOWNLOAD, FULL_UPLOAD, required_name
from support.collection_data import assert_same_collection, fill_like_a_real_user


def test_clients_sync_under_a_path_prefix(backend, make_client):
    sidecar = backend.start_sidecar({"SIDECAR_BASE_PATH": "/anki"})
    assert sidecar.url.endswith("/anki/")
    user = backend.create_user()
    a = make_client(sidecar.url, "device-a")
    fill_like_a_real_user(a.col, notes=30, reviews=10)
    a.login(user.username, user.password)
    assert required_name(a.sync()) == required_name(FULL_UPLOAD)
    a.full_upload()

    b = make_client(sidecar.url, "device-b")
    b.login(user.username, user.password)
    assert required_name(b.sync()) == required_name(FULL_DOWNLOAD)
    b.full_download()

    assert_same_collection(a.col, b.col)
    # Nothing is served outside the prefix.
    outside = protocol.meta(sidecar.root_url + "/", a.auth.hkey)
    assert outside.status == 404, outside
