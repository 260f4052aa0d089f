"""The whole web story in a real browser, ending in the real Anki client.

Sign up on the website, build a deck of three notes (one with an image), send it to Anki,
then log in to the sync server with the same credentials from a fresh Anki profile: the full
download and the media sync bring the deck, the notes and the image bytes. Finally a password
change on the website logs Anki devices out.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from anki.errors import SyncError, SyncErrorKind
from playwright.sync_api import sync_playwright

from ankisync.sidecar_client import SidecarClient
from support.client import FULL_DOWNLOAD, NO_CHANGES, required_name
from support.media import sync_media
from support.paths import ROOT
from support.web import DjangoServer, open_browser, tiny_png

ARTIFACTS = ROOT / "tests" / "artifacts"


def test_sign_up_build_a_deck_send_it_and_sync_it_into_anki(backend, web, make_client, tmp_path):
    username = f"web-{secrets.token_hex(4)}"
    password = f"Pw-{secrets.token_urlsafe(12)}"
    deck_name = f"Story deck {secrets.token_hex(2)}"
    image = tmp_path / "Red Square.png"
    image.write_bytes(tiny_png(200, 30, 30, size=24))

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright)
        try:
            # Sign up: lands on the (empty) deck list, signed in.
            sign_up(page, web, username, password)
            assert "No decks yet" in page.content()

            # A CSV with a bad row: the bad row is reported with its line, the good ones land.
            page.fill("#id_name", f"CSV {deck_name}")
            page.click("#new-deck button[type=submit]")
            page.wait_for_url(f"{web.url}/decks/*/")
            csv_rows = "front,back,tags\nuno,one,numbers\nthis row is broken\ndos,two\n"
            page.set_input_files(
                "#id_file",
                {"name": "words.csv", "mimeType": "text/csv", "buffer": csv_rows.encode()},
            )
            page.click("form[action$='/import/'] button[type=submit]")
            page.wait_for_selector("#import-report")
            assert page.inner_text("#imported-count") == "2"
            assert page.inner_text("#bad-row-count") == "1"
            bad_row = page.locator("#bad-rows tbody tr").inner_text()
            assert bad_row.startswith("3\t")
            assert "Expected 2 or 3 columns" in bad_row
            page.click("text=Back to the deck")
            assert page.locator("#notes li.note").count() == 2
            page.goto(f"{web.url}/decks/")

            # A deck with three notes: Basic with an image, Basic (and reversed), Cloze.
            page.fill("#id_name", deck_name)
            page.click("#new-deck button[type=submit]")
            page.wait_for_url(f"{web.url}/decks/*/")
            deck_url = page.url
            notes = [
                ("basic", "Which colour is this?", "Red", "colours web-story", image),
                ("basic_reversed", "perro", "dog", "spanish", None),
                ("cloze", "{{c1::Paris}} is the capital of France", "Europe", "geo", None),
            ]
            for note_type, front, back, tags, upload in notes:
                page.click("#add-note")
                page.select_option("#id_note_type", note_type)
                page.fill("#id_front", front)
                page.fill("#id_back", back)
                page.fill("#id_tags", tags)
                if upload is not None:
                    page.set_input_files("#id_image", str(upload))
                page.click("button[name=save]")
                page.wait_for_url(deck_url)
            assert page.locator("#notes li.note").count() == 3
            # The uploaded image is served back to its owner.
            assert page.locator("#notes img.thumb").evaluate("img => img.naturalWidth") == 24

            # Send to Anki: delivered through the sidecar's import API.
            page.click("#send-to-anki")
            page.wait_for_url(deck_url)
            status = page.locator("#push-history .push-status").first.inner_text()
            details = page.locator("#push-history .push-result").first.inner_text()
            summary = page.locator("#push-history .push-summary").first.inner_text()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / f"web-story-deck-{backend.kind}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert status == "Delivered", details
            # A short human summary; the import's details stay behind the disclosure.
            assert summary == "3 notes added; 1 media file"
            assert not page.locator("#push-history .push-details").first.is_visible()
            page.locator("#push-history .push-summary").first.click()
            assert page.locator("#push-history .push-details").first.is_visible()

            # The Connect page names the exact sync URL and the server's status.
            page.goto(f"{web.url}/connect/")
            assert page.inner_text("#sync-url") == backend.url
            assert "Cards" in page.inner_text("#sync-status")
        finally:
            browser.close()

    # The real Anki client, logged in with the same credentials, receives the deck.
    client = make_client(backend.url, "phone")
    client.login(username, password)
    assert required_name(client.sync()) == required_name(FULL_DOWNLOAD)
    client.full_download()
    sync_media(client)

    col = client.col
    assert col.decks.by_name(deck_name) is not None
    note_ids = col.find_notes(f'"deck:{deck_name}"')
    assert len(note_ids) == 3
    by_front = {}
    for note_id in note_ids:
        note = col.get_note(note_id)
        by_front[note.fields[0]] = note
    basic = by_front["Which colour is this?"]
    assert basic.fields[1].startswith('Red<br><img src="')
    assert set(basic.tags) == {"colours", "web-story"}
    assert "{{c1::Paris}} is the capital of France" in by_front
    assert len(col.find_cards(f'"deck:{deck_name}"')) == 4, "basic 1 + reversed 2 + cloze 1"
    [media_name] = col.media.files_in_str(basic.mid, basic.fields[1])
    media_file = Path(col.media.dir()) / media_name
    assert media_file.read_bytes() == image.read_bytes()

    # Edit a note on the website and send again: the device's next normal sync updates the
    # note in place; nothing is duplicated.
    with sync_playwright() as playwright:
        browser, page = open_browser(playwright)
        try:
            log_in(page, web, username, password)
            page.goto(deck_url)
            page.locator("#notes li.note", has_text="Which colour is this?").get_by_text(
                "Edit"
            ).click()
            page.fill("#id_back", "Red (rouge)")
            page.click("button[name=save]")
            page.wait_for_url(deck_url)
            page.click("#send-to-anki")
            page.wait_for_url(deck_url)
            assert page.locator("#push-history .push-status").first.inner_text() == "Delivered"
            assert page.locator("#push-history tbody tr").count() == 2
            resent = page.locator("#push-history .push-summary").first.inner_text()
            # The deck is built anew for each send, so its notes come back as updated.
            assert re.fullmatch(r"\d+ notes? updated", resent), resent
        finally:
            browser.close()
    sidecar = SidecarClient(backend.sidecar.internal_url, backend.sidecar.internal_token)
    stats = sidecar.stats(_user_id(web, username))
    assert (stats.notes, stats.cards, stats.media_files) == (3, 4, 1)

    client.sync()
    assert len(col.find_notes(f'"deck:{deck_name}"')) == 3
    assert col.get_note(basic.id).fields[1].startswith('Red (rouge)<br><img src="')


def test_a_password_change_on_the_website_logs_anki_devices_out(backend, web, make_client):
    username = f"pw-{secrets.token_hex(4)}"
    password = f"Pw-{secrets.token_urlsafe(12)}"
    new_password = f"New-{secrets.token_urlsafe(12)}"

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright)
        try:
            sign_up(page, web, username, password)
            client = make_client(backend.url, "phone")
            client.login(username, password)
            assert required_name(client.sync()) == required_name(NO_CHANGES)

            page.goto(f"{web.url}/accounts/password/")
            assert "logs out Anki on every device" in page.inner_text("main")
            page.fill("#id_old_password", password)
            page.fill("#id_new_password1", new_password)
            page.fill("#id_new_password2", new_password)
            page.click("main form button[type=submit]")
            page.wait_for_url(f"{web.url}/accounts/password/done/")
            assert "Your Anki devices are now logged out" in page.inner_text("#devices-logged-out")
        finally:
            browser.close()

    with pytest.raises(SyncError) as refused:
        client.sync()
    assert refused.value.kind == SyncErrorKind.AUTH
    with pytest.raises(SyncError):
        client.login(username, password)
    client.login(username, new_password)
    assert required_name(client.sync()) == required_name(NO_CHANGES)


def sign_up(page, web: DjangoServer, username: str, password: str) -> None:
    page.goto(f"{web.url}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password1", password)
    page.fill("#id_password2", password)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{web.url}/decks/")


def log_in(page, web: DjangoServer, username: str, password: str) -> None:
    page.goto(f"{web.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{web.url}/decks/")


def _user_id(web: DjangoServer, username: str) -> int:
    out = web.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model as g; "
        f"print(g().objects.get(username={username!r}).pk)",
    )
    return int(out.strip().splitlines()[-1])
