"""Admin operations on sync data: services, the audit log, commands and the admin page."""

import json

import pytest
from django.core.management import CommandError, call_command

from ankisync import selectors, services
from ankisync.models import SyncAdminAudit
from ankisync.sidecar_client import SidecarError

pytestmark = pytest.mark.django_db


@pytest.fixture
def carol(django_user_model):
    return django_user_model.objects.create_user("carol", password="a-long-password-3")


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="a-long-admin-password")


def reset_answer(stats, dry_run, keep_media=False):
    deleted = dict(stats)
    if keep_media:
        deleted.update(media_files=0, media_bytes=0, media_usn=0)
    return {"dry_run": dry_run, "keep_media": keep_media, "deleted": deleted}


def test_dry_run_reset_is_audited(carol, root, fake_sidecar, stats_payload):
    path = f"/internal/v1/users/{carol.pk}/reset"
    fake_sidecar.answer("POST", path, 200, reset_answer(stats_payload, True))

    report, audit = services.sync_data_reset(user=carol, actor=root)

    assert fake_sidecar.requests[0].json() == {"dry_run": True, "keep_media": False}
    assert report.dry_run
    assert report.deleted.cards == 12
    assert audit.action == SyncAdminAudit.Action.RESET_DRY_RUN
    assert (audit.actor, audit.actor_username, audit.target_username) == (root, "root", "carol")
    assert audit.succeeded
    assert audit.result["deleted"]["notes"] == 7


def test_confirmed_reset_with_keep_media(carol, root, fake_sidecar, stats_payload):
    path = f"/internal/v1/users/{carol.pk}/reset"
    fake_sidecar.answer("POST", path, 200, reset_answer(stats_payload, False, keep_media=True))

    report, audit = services.sync_data_reset(user=carol, actor=root, confirm=True, keep_media=True)

    assert fake_sidecar.requests[0].json() == {"dry_run": False, "keep_media": True}
    assert not report.dry_run
    assert report.deleted.media_files == 0
    assert audit.action == SyncAdminAudit.Action.RESET
    assert audit.keep_media


def test_a_failed_reset_is_audited_and_raised(carol, root, fake_sidecar):
    fake_sidecar.answer("POST", f"/internal/v1/users/{carol.pk}/reset", 500, "disk full")

    with pytest.raises(SidecarError):
        services.sync_data_reset(user=carol, actor=root, confirm=True)

    audit = SyncAdminAudit.objects.get()
    assert not audit.succeeded
    assert "disk full" in audit.error


def test_logout_devices_is_audited(carol, root, fake_sidecar):
    fake_sidecar.answer("DELETE", f"/internal/v1/users/{carol.pk}/host-keys", 200, {"revoked": 2})

    assert services.devices_logout(user=carol, actor=root) == 2
    audit = SyncAdminAudit.objects.get()
    assert audit.action == SyncAdminAudit.Action.LOGOUT_DEVICES
    assert audit.result == {"revoked": 2}


def test_sync_status_of_an_unreachable_sidecar_is_a_message(carol, settings):
    settings.SIDECAR_INTERNAL_URL = "http://127.0.0.1:9"

    status = selectors.sync_status_get(user=carol)

    assert status.stats is None
    assert "cannot be reached" in status.error


def test_sync_status_has_dates(carol, fake_sidecar, stats_payload):
    fake_sidecar.answer("GET", f"/internal/v1/users/{carol.pk}/stats", 200, stats_payload)

    status = selectors.sync_status_get(user=carol)

    assert status.last_sync.year == 2023
    assert status.stats.devices == 2


# --- management commands ----------------------------------------------------------------------


def test_sync_stats_command(carol, fake_sidecar, stats_payload, capsys):
    fake_sidecar.answer("GET", f"/internal/v1/users/{carol.pk}/stats", 200, stats_payload)

    call_command("sync_stats", "carol", "--json")

    assert json.loads(capsys.readouterr().out)["revlog"] == 30


def test_reset_command_is_a_dry_run_by_default(carol, fake_sidecar, stats_payload, capsys):
    path = f"/internal/v1/users/{carol.pk}/reset"
    fake_sidecar.answer("POST", path, 200, reset_answer(stats_payload, True))

    call_command("reset_sync_data", "carol")

    out = capsys.readouterr().out
    assert "would delete 7 notes, 12 cards, 30 revlog entries; 3 media files" in out
    assert "dry run" in out
    assert fake_sidecar.requests[0].json() == {
        "dry_run": True,
        "keep_media": False,
        "media": "delete",
    }
    audit = SyncAdminAudit.objects.get()
    assert audit.via == SyncAdminAudit.Via.COMMAND
    assert audit.actor is None


def test_reset_command_with_confirm_and_keep_media(carol, fake_sidecar, stats_payload, capsys):
    path = f"/internal/v1/users/{carol.pk}/reset"
    fake_sidecar.answer("POST", path, 200, reset_answer(stats_payload, False, keep_media=True))

    call_command("reset_sync_data", "carol", "--confirm", "--keep-media")

    assert fake_sidecar.requests[0].json() == {
        "dry_run": False,
        "keep_media": True,
        "media": "keep",
    }
    assert "deleted 7 notes" in capsys.readouterr().out


def test_logout_devices_command(carol, fake_sidecar, capsys):
    fake_sidecar.answer("DELETE", f"/internal/v1/users/{carol.pk}/host-keys", 200, {"revoked": 3})

    call_command("logout_devices", "carol")

    assert "logged out 3 device(s)" in capsys.readouterr().out


def test_commands_fail_clearly(carol, settings):
    with pytest.raises(CommandError, match="no user named"):
        call_command("sync_stats", "nobody")
    settings.SIDECAR_INTERNAL_URL = "http://127.0.0.1:9"
    with pytest.raises(CommandError, match="unreachable"):
        call_command("logout_devices", "carol")


# --- the admin page ---------------------------------------------------------------------------


def sync_page(user):
    return f"/admin/auth/user/{user.pk}/sync/"


def test_admin_page_shows_the_stats(client, root, carol, fake_sidecar, stats_payload):
    fake_sidecar.answer("GET", f"/internal/v1/users/{carol.pk}/stats", 200, stats_payload)
    client.force_login(root)

    page = client.get(sync_page(carol)).content.decode()

    for label, value in [("cards", 12), ("notes", 7), ("revlog", 30), ("usn", 5)]:
        assert f'data-stat="{label}">{value}<' in page
    assert 'data-stat="media_files">3<' in page
    assert client.get(f"/admin/auth/user/{carol.pk}/change/").content.count(
        sync_page(carol).encode()
    )


def test_admin_reset_needs_the_confirmation(client, root, carol, fake_sidecar, stats_payload):
    fake_sidecar.answer("GET", f"/internal/v1/users/{carol.pk}/stats", 200, stats_payload)
    path = f"/internal/v1/users/{carol.pk}/reset"
    fake_sidecar.answer("POST", path, 200, reset_answer(stats_payload, True))
    client.force_login(root)

    dry = client.post(sync_page(carol), {"operation": "dry_run"})
    unconfirmed = client.post(sync_page(carol), {"operation": "reset"})

    assert 'data-deleted="cards">12<' in dry.content.decode()
    assert b"Nothing was deleted" in unconfirmed.content
    resets = [r.json() for r in fake_sidecar.requests if r.method == "POST"]
    assert resets == [{"dry_run": True, "keep_media": False}] * 2

    fake_sidecar.answer("POST", path, 200, reset_answer(stats_payload, False))
    done = client.post(sync_page(carol), {"operation": "reset", "confirm": "on"}, follow=True)
    assert b"Reset done" in done.content
    assert [r.json() for r in fake_sidecar.requests if r.method == "POST"][-1]["dry_run"] is False
    assert SyncAdminAudit.objects.filter(action=SyncAdminAudit.Action.RESET).count() == 1


def test_admin_logout_devices(client, root, carol, fake_sidecar, stats_payload):
    fake_sidecar.answer("GET", f"/internal/v1/users/{carol.pk}/stats", 200, stats_payload)
    fake_sidecar.answer("DELETE", f"/internal/v1/users/{carol.pk}/host-keys", 200, {"revoked": 1})
    client.force_login(root)

    page = client.post(sync_page(carol), {"operation": "logout"}, follow=True)

    assert b"Logged out 1 device(s)" in page.content


def test_admin_page_survives_a_sidecar_that_is_down(client, root, carol, settings):
    settings.SIDECAR_INTERNAL_URL = "http://127.0.0.1:9"
    client.force_login(root)

    page = client.get(sync_page(carol))

    assert page.status_code == 200
    assert b"cannot be reached" in page.content


def test_non_staff_cannot_reach_the_admin_page(client, carol):
    client.force_login(carol)
    assert client.get(sync_page(carol)).status_code == 302
