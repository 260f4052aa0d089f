"""Admin operations on a user's sync data, against the real sidecar and the real client.

In the admin (a real browser): the stats page shows what the server holds, a dry-run reset
shows the counts and deletes nothing, a confirmed reset empties the user's server data and
the real client is then offered a full upload. The management commands do the same from a
shell, and "log out devices" makes the client log in again.
"""

from __future__ import annotations

import json
import secrets

import pytest
from anki.errors import SyncError, SyncErrorKind
from playwright.sync_api import sync_playwright

from ankisync.sidecar_client import SidecarClient
from support.client import FULL_UPLOAD, NO_CHANGES, AnkiClient, required_name
from support.media import add_notes_with_media, sync_media
from support.paths import ROOT
from support.web import open_browser

ARTIFACTS = ROOT / "tests" / "artifacts"


def upload_a_collection(backend, make_client, notes: int = 12) -> tuple[object, AnkiClient]:
    """A user whose device uploaded notes, reviews and two media files."""
    user = backend.create_user()
    client = make_client(backend.url, "desktop")
    add_notes_with_media(client, "Admin test", notes, colour=(10, 200, 10), sound_bytes=200)
    col = client.col
    deck_id = col.decks.id("Admin test")
    col.decks.select(deck_id)
    for _ in range(3):
        card = col.sched.getCard()
        card.start_timer()
        col.sched.answerCard(card, 3)
    client.first_upload(user)
    sync_media(client)
    return user, client


def test_admin_dry_run_deletes_nothing_and_confirmed_reset_empties_the_server(
    backend, web, make_client
):
    user, client = upload_a_collection(backend, make_client)
    sidecar = SidecarClient(backend.sidecar.internal_url, backend.sidecar.internal_token)
    before = sidecar.stats(user.id)
    assert (before.notes, before.cards, before.revlog, before.media_files) == (12, 12, 3, 2)

    admin_name, admin_password = f"admin-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    web.manage("createsuperuser", "--noinput", "--username", admin_name, "--email", "a@b.test")
    web.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model as g; "
        f"u = g().objects.get(username={admin_name!r}); "
        f"u.set_password({admin_password!r}); u.save()",
    )
    sync_page = f"{web.url}/admin/auth/user/{user.id}/sync/"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright)
        try:
            page.goto(f"{web.url}/admin/login/?next=/admin/")
            page.fill("#id_username", admin_name)
            page.fill("#id_password", admin_password)
            page.click("input[type=submit]")
            page.wait_for_url(f"{web.url}/admin/")

            # The user's change page links to the sync page, which shows the stats.
            page.goto(f"{web.url}/admin/auth/user/{user.id}/change/")
            page.click(f"a[href='/admin/auth/user/{user.id}/sync/']")
            page.wait_for_url(sync_page)
            stat = lambda name: page.inner_text(f"[data-stat={name}]")  # noqa: E731
            assert (stat("cards"), stat("notes"), stat("revlog")) == ("12", "12", "3")
            assert stat("media_files") == "2"
            assert stat("usn") == str(before.usn)

            # Dry run: shows the counts, deletes nothing.
            page.click("button[value=dry_run]")
            page.wait_for_selector("#dry-run-report")
            deleted = lambda name: page.inner_text(f"[data-deleted={name}]")  # noqa: E731
            assert (deleted("notes"), deleted("cards"), deleted("revlog")) == ("12", "12", "3")
            assert deleted("media_files") == "2"
            assert "nothing was deleted" in page.inner_text("#dry-run-report")
            after_dry_run = sidecar.stats(user.id)
            assert after_dry_run.notes == 12
            assert after_dry_run.media_files == 2
            assert after_dry_run.has_collection

            # "Reset for real" without the confirmation box is still only a dry run.
            page.click("button[value=reset]")
            page.wait_for_selector("#dry-run-report")
            assert "Nothing was deleted" in page.inner_text("ul.messagelist")
            assert sidecar.stats(user.id).notes == 12

            # Confirmed: the server's data is gone.
            page.check("#id_confirm")
            page.click("button[value=reset]")
            page.wait_for_url(sync_page)
            assert "Reset done: deleted 12 notes, 12 cards, 2 media files" in page.inner_text(
                "ul.messagelist"
            )
            assert stat("cards") == "0"
            assert stat("media_files") == "0"
            actions = page.locator("#audit-log tr td:nth-child(2)").all_inner_texts()
            assert actions == ["Reset", "Reset (dry run)", "Reset (dry run)"]
            page.screenshot(path=str(ARTIFACTS / f"admin-sync-{backend.kind}.png"), full_page=True)
        finally:
            browser.close()

    after = sidecar.stats(user.id)
    assert not after.has_collection
    assert (after.notes, after.cards, after.revlog, after.media_files) == (0, 0, 0, 0)
    # The device still has everything, and is now offered a clean full upload.
    assert required_name(client.sync()) == required_name(FULL_UPLOAD)
    client.full_upload()
    assert sidecar.stats(user.id).notes == 12
    assert required_name(client.sync()) == required_name(NO_CHANGES)


def test_management_commands_against_the_real_sidecar(backend, web, make_client):
    user, client = upload_a_collection(backend, make_client, notes=5)

    stats = json.loads(web.manage("sync_stats", user.username, "--json"))
    assert (stats["notes"], stats["media_files"], stats["devices"]) == (5, 2, 1)

    dry = web.manage("reset_sync_data", user.username)
    assert "would delete 5 notes, 5 cards, 3 revlog entries; 2 media files" in dry
    assert json.loads(web.manage("sync_stats", user.username, "--json"))["notes"] == 5

    done = web.manage("reset_sync_data", user.username, "--confirm", "--keep-media")
    assert "deleted 5 notes, 5 cards, 3 revlog entries; media kept" in done
    stats = json.loads(web.manage("sync_stats", user.username, "--json"))
    assert (stats["has_collection"], stats["notes"], stats["media_files"]) == (False, 0, 2)

    assert f"{user.username}: logged out 1 device(s)" in web.manage("logout_devices", user.username)
    with pytest.raises(SyncError) as refused:
        client.sync()
    assert refused.value.kind == SyncErrorKind.AUTH
    client.login(user.username, user.password)
    assert required_name(client.sync()) == required_name(FULL_UPLOAD)
