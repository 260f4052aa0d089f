"""The one sidecar client: token, timeouts, typed answers, one error type."""

import json
import socket

import pytest

from ankisync.sidecar_client import SidecarClient, SidecarError, SyncStats, get_client


def test_stats_sends_the_bearer_token_and_parses_the_answer(fake_sidecar, stats_payload):
    fake_sidecar.answer("GET", "/internal/v1/users/42/stats", 200, {**stats_payload, "user_id": 42})

    stats = get_client().stats(42)

    assert stats == SyncStats.from_json(stats_payload)
    assert (stats.cards, stats.notes, stats.revlog, stats.media_files) == (12, 7, 30, 3)
    request = fake_sidecar.requests[0]
    assert request.headers["authorization"] == f"Bearer {fake_sidecar.token}"
    assert request.headers["accept"] == "application/json"


def test_reset_is_a_dry_run_unless_asked(fake_sidecar, stats_payload):
    answer = {"dry_run": True, "keep_media": False, "deleted": stats_payload}
    fake_sidecar.answer("POST", "/internal/v1/users/7/reset", 200, answer)

    report = get_client().reset(7)
    get_client().reset(7, dry_run=False, keep_media=True)

    assert report.dry_run is True
    assert report.deleted.notes == 7
    assert fake_sidecar.requests[0].json() == {"dry_run": True, "keep_media": False}
    assert fake_sidecar.requests[1].json() == {"dry_run": False, "keep_media": True}
    assert fake_sidecar.requests[1].headers["content-type"] == "application/json"


def test_revoke_host_keys_returns_the_count(fake_sidecar):
    fake_sidecar.answer("DELETE", "/internal/v1/users/3/host-keys", 200, {"revoked": 4})

    assert get_client().revoke_host_keys(3) == 4


def test_import_sends_the_package_and_the_idempotency_key(fake_sidecar):
    fake_sidecar.answer("POST", "/internal/v1/users/5/imports", 200, {"notes_added": 3})

    summary = get_client().import_package(5, b"PK\x03\x04zip", idempotency_key="key-1")

    assert summary == {"notes_added": 3}
    request = fake_sidecar.requests[0]
    assert request.body == b"PK\x03\x04zip"
    assert request.headers["idempotency-key"] == "key-1"
    assert request.headers["content-type"] == "application/octet-stream"


def test_an_error_status_becomes_sidecar_error_without_the_token(fake_sidecar, settings):
    settings.SIDECAR_INTERNAL_TOKEN = "wrong-" + fake_sidecar.token

    with pytest.raises(SidecarError) as caught:
        get_client().stats(1)

    assert caught.value.status == 403
    assert not caught.value.unreachable
    assert "wrong bearer token" in str(caught.value)
    assert fake_sidecar.token not in str(caught.value)


def test_a_server_error_keeps_a_short_excerpt(fake_sidecar):
    fake_sidecar.answer("GET", "/internal/v1/users/1/stats", 500, "x" * 5000)

    with pytest.raises(SidecarError) as caught:
        get_client().stats(1)

    assert caught.value.status == 500
    assert len(str(caught.value)) < 500


def test_a_refused_connection_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = SidecarClient(f"http://127.0.0.1:{port}", "t", timeout=2)

    with pytest.raises(SidecarError) as caught:
        client.stats(1)

    assert caught.value.unreachable


def test_a_slow_sidecar_times_out(fake_sidecar, stats_payload):
    fake_sidecar.answer("GET", "/internal/v1/users/1/stats", 200, stats_payload)
    fake_sidecar.delay = 1.5
    client = SidecarClient(fake_sidecar.url, fake_sidecar.token, timeout=0.3)

    with pytest.raises(SidecarError) as caught:
        client.stats(1)

    assert caught.value.unreachable
    assert "in time" in str(caught.value)


def test_an_answer_that_is_not_json_is_an_error(fake_sidecar):
    fake_sidecar.answer("GET", "/internal/v1/users/1/stats", 200, "<html>proxy</html>")

    with pytest.raises(SidecarError, match="no JSON"):
        get_client().stats(1)


def test_an_answer_of_the_wrong_shape_is_an_error(fake_sidecar):
    fake_sidecar.answer("DELETE", "/internal/v1/users/1/host-keys", 200, {"gone": True})

    with pytest.raises(SidecarError, match="unexpected"):
        get_client().revoke_host_keys(1)


def test_the_token_never_shows_in_repr():
    client = SidecarClient("http://127.0.0.1:1", "s3cret-token")

    assert "s3cret" not in repr(client)
    assert "s3cret" not in json.dumps(str(client))
