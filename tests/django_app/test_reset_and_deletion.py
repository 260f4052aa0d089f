"""Reset semantics and user deletion (issue 16, items 7 and 8), against a fake sidecar.

The real sidecar's side is tested in sidecar/tests/ and, with the real client, in
tests/e2e/test_operator.py."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def erin(django_user_model):
    return django_user_model.objects.create_user("erin", password="a-long-password-5")


def reset_answer(stats, dry_run, media):
    deleted = dict(stats)
    if media != "delete":
        deleted.update(media_files=0, media_bytes=0, media_usn=0)
    return {
        "dry_run": dry_run,
        "keep_media": media != "delete",
        "media": media,
        "deleted": deleted,
        "leftovers": 2,
    }


def test_keep_media_files_asks_the_sidecar_to_drop_only_media_db(erin, fake_sidecar, stats_payload):
    path = f"/internal/v1/users/{erin.pk}/reset"
    fake_sidecar.answer("POST", path, 200, reset_answer(stats_payload, False, "keep_files"))

    call_command("reset_sync_data", "erin", "--confirm", "--keep-media-files")

    assert fake_sidecar.requests[0].json() == {
        "dry_run": False,
        "keep_media": True,
        "media": "keep_files",
    }


def test_the_two_ways_of_keeping_media_exclude_each_other(erin, fake_sidecar):
    with pytest.raises(Exception, match="not allowed with"):
        call_command("reset_sync_data", "erin", "--keep-media", "--keep-media-files")
    assert fake_sidecar.requests == []


def test_a_terminal_asks_for_the_username(erin, fake_sidecar, stats_payload, monkeypatch, capsys):
    path = f"/internal/v1/users/{erin.pk}/reset"
    monkeypatch.setattr(
        "ankisync.management.commands.reset_sync_data.Command._interactive", lambda self: True
    )

    monkeypatch.setattr("builtins.input", lambda prompt: "not-erin")
    fake_sidecar.answer("POST", path, 200, reset_answer(stats_payload, True, "delete"))
    call_command("reset_sync_data", "erin")
    assert [r.json()["dry_run"] for r in fake_sidecar.requests] == [True]
    assert "not confirmed: nothing was deleted" in capsys.readouterr().out

    prompts = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "erin")
    call_command("reset_sync_data", "erin")
    assert [r.json()["dry_run"] for r in fake_sidecar.requests] == [True, True, False]
    assert "(erin)" in prompts[0]
    assert "2 leftover temp or import files" in capsys.readouterr().out


def test_deleting_a_user_removes_their_sync_data_after_the_commit(
    erin, fake_sidecar, django_capture_on_commit_callbacks
):
    path = f"/internal/v1/deleted-users/{erin.pk}"
    fake_sidecar.answer("DELETE", path, 200, {"user_id": erin.pk, "folder_removed": True})

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        get_user_model().objects.filter(pk=erin.pk).delete()
    assert fake_sidecar.requests == [], "nothing may be sent before the commit"

    for callback in callbacks:
        callback()
    [request] = fake_sidecar.requests
    assert (request.method, request.path) == ("DELETE", path)


def test_a_sidecar_that_is_down_does_not_stop_the_deletion(erin, settings, caplog):
    settings.SIDECAR_INTERNAL_URL = "http://127.0.0.1:9"
    settings.SIDECAR_TIMEOUT_SECONDS = 1

    with caplog.at_level("WARNING"):
        erin.delete()
        from ankisync.user_deletion import remove_sync_data

        remove_sync_data(4242)

    assert not get_user_model().objects.filter(username="erin").exists()
    assert "remove_orphaned_sync_data" in caplog.text


def test_orphan_command_is_a_dry_run_by_default(erin, fake_sidecar, capsys):
    listing = [
        {"user_id": 901, "folder": True, "host_keys": 2},
        # The sidecar and Django disagree: Django's word wins, a live user is never touched.
        {"user_id": erin.pk, "folder": True, "host_keys": 0},
    ]
    fake_sidecar.answer("GET", "/internal/v1/deleted-users", 200, {"users": listing})
    fake_sidecar.answer("DELETE", "/internal/v1/deleted-users/901", 200, {"user_id": 901})

    call_command("remove_orphaned_sync_data")
    out = capsys.readouterr().out
    assert "user 901: would remove folder users/901/ and 2 host key(s)" in out
    assert f"user {erin.pk}" not in out
    assert [r.method for r in fake_sidecar.requests] == ["GET"]

    call_command("remove_orphaned_sync_data", "--confirm")
    assert [(r.method, r.path) for r in fake_sidecar.requests][1:] == [
        ("GET", "/internal/v1/deleted-users"),
        ("DELETE", "/internal/v1/deleted-users/901"),
    ]
    assert "user 901: removed" in capsys.readouterr().out
