"""Logins are checked against Django's auth_user, and keys die with the password
(docs/design.md#authentication)."""

import pytest
from anki.errors import SyncError, SyncErrorKind

from support import protocol
from support.client import NO_CHANGES


def assert_auth_error(excinfo: pytest.ExceptionInfo[SyncError]) -> None:
    assert excinfo.value.kind == SyncErrorKind.AUTH, f"expected AUTH, got {excinfo.value!r}"


def test_correct_password_logs_in(backend, make_client):
    user = backend.create_user()
    client = make_client(backend.url)

    auth = client.login(user.username, user.password)

    assert auth.hkey
    # The key is only worth something if the server accepts it for a sync.
    assert client.sync() == NO_CHANGES


def test_wrong_password_is_refused(backend, make_client):
    user = backend.create_user()
    client = make_client(backend.url)

    with pytest.raises(SyncError) as excinfo:
        client.login(user.username, user.password + "-wrong")
    assert_auth_error(excinfo)


def test_unknown_user_is_refused(backend, make_client):
    client = make_client(backend.url)

    with pytest.raises(SyncError) as excinfo:
        client.login("nobody-by-this-name", "whatever-password")
    assert_auth_error(excinfo)


def test_inactive_user_is_refused(backend, make_client):
    user = backend.create_user(active=False)
    client = make_client(backend.url)

    with pytest.raises(SyncError) as excinfo:
        client.login(user.username, user.password)
    assert_auth_error(excinfo)


def test_password_change_in_django_revokes_the_key(backend, make_client):
    user = backend.create_user()
    client = make_client(backend.url)
    client.login(user.username, user.password)
    assert client.sync() == NO_CHANGES
    old_key = client.auth.hkey
    old_password = user.password

    backend.database.set_password(user, user.password + "-changed")

    with pytest.raises(SyncError) as excinfo:
        client.sync()
    assert_auth_error(excinfo)
    reply = protocol.meta(backend.url, old_key)
    assert reply.status == 403, reply
    with pytest.raises(SyncError) as excinfo:
        make_client(backend.url).login(user.username, old_password)
    assert_auth_error(excinfo)
    # The account itself still works, with the new password.
    fresh = make_client(backend.url)
    fresh.login(user.username, user.password)
    assert fresh.auth.hkey != old_key
    assert fresh.sync() == NO_CHANGES


def test_deactivation_in_django_revokes_the_key(backend, make_client):
    user = backend.create_user()
    client = make_client(backend.url)
    client.login(user.username, user.password)
    assert client.sync() == NO_CHANGES
    old_key = client.auth.hkey

    backend.database.set_active(user, False)

    with pytest.raises(SyncError) as excinfo:
        client.sync()
    assert_auth_error(excinfo)
    reply = protocol.meta(backend.url, old_key)
    assert reply.status == 403, reply


def test_every_login_gets_its_own_working_key(backend, make_client):
    first, second = backend.create_user(), backend.create_user()
    # Two devices of one user, and a device of another user.
    phone, laptop, other = (make_client(backend.url) for _ in range(3))
    phone.login(first.username, first.password)
    laptop.login(first.username, first.password)
    other.login(second.username, second.password)

    keys = {phone.auth.hkey, laptop.auth.hkey, other.auth.hkey}
    assert len(keys) == 3
    # A second login must not log the first device out.
    for key in keys:
        assert protocol.meta(backend.url, key).status == 200


def test_empty_and_made_up_keys_get_403(backend):
    for key in ("", "0" * 40, "not-a-key"):
        reply = protocol.meta(backend.url, key)
        assert reply.status == 403, (key, reply)
