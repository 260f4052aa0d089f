"""Logins under attack, with the real client: throttling slows the attacker without locking the
real user out, oversized credentials are refused before they are stored or logged, and a
deactivation logs every device out for good (docs/operations.md, section 7b)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from urllib.parse import urlsplit

import pytest
from anki.errors import SyncError, SyncErrorKind

from support import protocol
from support.client import FULL_DOWNLOAD, FULL_UPLOAD, NO_CHANGES

# Loopback is a whole /8 on Linux: a second source address makes a second client address
# without any proxy header.
ATTACKER_ADDRESS = "127.0.0.2"


def host_key_from(base_url: str, source: str, username: str, password: str) -> int:
    """A login sent from the local address `source`; returns the status."""
    url = urlsplit(base_url)
    body = protocol.compress(json.dumps({"u": username, "p": password}).encode())
    conn = http.client.HTTPConnection(
        url.hostname, url.port, timeout=60, source_address=(source, 0)
    )
    try:
        conn.request(
            "POST",
            f"{url.path}sync/hostKey",
            body=body,
            headers={
                "anki-sync": protocol.sync_header(),
                "Content-Type": "application/octet-stream",
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def assert_auth_error(excinfo: pytest.ExceptionInfo[SyncError]) -> None:
    assert excinfo.value.kind == SyncErrorKind.AUTH, f"expected AUTH, got {excinfo.value!r}"


def test_an_attacker_cannot_lock_the_real_user_out(backend, make_client):
    # The production default. The database is shared by the whole run, and the real client
    # always comes from 127.0.0.1, so that address's own budget (5 x 10 failures per window)
    # must stay above what other tests spend there.
    sidecar = backend.start_sidecar({"SIDECAR_LOGIN_MAX_FAILURES": "10"})
    user = backend.create_user()

    statuses = [
        host_key_from(sidecar.url, ATTACKER_ADDRESS, user.username, f"guess-{i}") for i in range(14)
    ]
    assert statuses[:10] == [403] * 10, statuses
    assert set(statuses[10:]) == {429}, statuses

    # The real user, from their own address, logs in and syncs with the real client.
    client = make_client(sidecar.url)
    client.login(user.username, user.password)
    assert client.sync() == NO_CHANGES
    # The attacker's address stays throttled, even with the right password.
    assert host_key_from(sidecar.url, ATTACKER_ADDRESS, user.username, user.password) == 429
    log = sidecar.log()
    assert "login throttled" in log
    assert "budget=username_from_address" in log


def test_oversized_usernames_are_refused_and_never_logged_in_full(backend):
    url = backend.url
    too_long = "x" * 151
    reply = protocol.host_key(url, too_long, "whatever")
    assert reply.status == 400, reply
    assert "username longer than 150" in reply.text()
    assert protocol.host_key(url, "alice", "p" * 4097).status == 400

    longest = "y" * 150
    assert protocol.host_key(url, longest, "whatever").status == 403
    log = backend.sidecar.log()
    assert too_long not in log
    assert "x" * 33 not in log
    assert "y" * 33 not in log, "a username is logged cut to 32 characters"
    assert "y" * 32 + "…" in log


def test_deactivation_logs_every_device_out_for_good(backend, make_client):
    user = backend.create_user()
    phone, laptop = make_client(backend.url, "phone"), make_client(backend.url, "laptop")
    phone.login(user.username, user.password)
    laptop.login(user.username, user.password)
    assert phone.sync() == NO_CHANGES
    old_keys = [phone.auth.hkey, laptop.auth.hkey]

    backend.database.set_active(user, False)
    with pytest.raises(SyncError) as excinfo:
        phone.sync()
    assert_auth_error(excinfo)

    backend.database.set_active(user, True)
    # Reactivated: the old keys stay dead, also the laptop's, which made no request meanwhile.
    with pytest.raises(SyncError) as excinfo:
        phone.sync()
    assert_auth_error(excinfo)
    with pytest.raises(SyncError) as excinfo:
        laptop.sync()
    assert_auth_error(excinfo)
    for key in old_keys:
        assert protocol.meta(backend.url, key).status == 403

    # A new login works, and what one device sends the other receives.
    phone.login(user.username, user.password)
    laptop.login(user.username, user.password)
    assert phone.auth.hkey not in old_keys
    assert phone.sync() == NO_CHANGES
    note = phone.col.new_note(phone.col.models.by_name("Basic"))
    note["Front"] = "after reactivation"
    phone.col.add_note(note, phone.col.decks.id("Default"))
    # The first note of a fresh profile makes the client ask for a one-way sync.
    assert phone.sync() == FULL_UPLOAD
    phone.full_upload()
    assert laptop.sync() == FULL_DOWNLOAD
    laptop.full_download()
    assert laptop.col.find_notes('"front:after reactivation"')
    assert phone.sync() == NO_CHANGES
    assert laptop.sync() == NO_CHANGES


def test_deactivation_through_django_revokes_at_once(backend, make_client, monkeypatch):
    """With the internal API configured, Django's signal revokes the keys right after the
    deactivation commits: deactivating and reactivating with no request in between still
    logs the device out."""
    sidecar = backend.sidecar
    monkeypatch.setenv("SIDECAR_INTERNAL_URL", sidecar.internal_url)
    monkeypatch.setenv("SIDECAR_INTERNAL_TOKEN", sidecar.internal_token)
    user = backend.create_user()
    client = make_client(backend.url)
    client.login(user.username, user.password)
    assert client.sync() == NO_CHANGES

    backend.database.set_active(user, False)
    backend.database.set_active(user, True)

    with pytest.raises(SyncError) as excinfo:
        client.sync()
    assert_auth_error(excinfo)
    assert f"path=/internal/v1/users/{user.id}/host-keys status=200" in sidecar.log()
    client.login(user.username, user.password)
    assert client.sync() == NO_CHANGES


def devices_of(sidecar, user_id: int) -> int:
    request = urllib.request.Request(
        f"{sidecar.internal_url}/internal/v1/users/{user_id}/stats",
        headers={"Authorization": f"Bearer {sidecar.internal_token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["devices"]


def test_the_sweep_revokes_keys_without_any_request(backend, make_client):
    """Deactivated outside the sidecar's sight (no signal reaches it, no device syncs): the
    periodic sweep deletes the keys, so a reactivation does not bring them back."""
    sidecar = backend.start_sidecar({"SIDECAR_AUTH_SWEEP_SECS": "1"})
    user, other = backend.create_user(), backend.create_user()
    client, bystander = make_client(sidecar.url), make_client(sidecar.url)
    client.login(user.username, user.password)
    bystander.login(other.username, other.password)
    assert client.sync() == NO_CHANGES
    assert devices_of(sidecar, user.id) == 1

    backend.database.set_active(user, False)
    deadline = time.monotonic() + 30
    while devices_of(sidecar, user.id) != 0:
        assert time.monotonic() < deadline, "the sweep never revoked the keys"
        time.sleep(0.2)
    backend.database.set_active(user, True)

    with pytest.raises(SyncError) as excinfo:
        client.sync()
    assert_auth_error(excinfo)
    assert bystander.sync() == NO_CHANGES, "active users keep their keys"
    assert "auth sweep failed" not in sidecar.log()
