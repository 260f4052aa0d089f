"""The pages: sign-up, password change, deck builder, Connect Anki. Thin, but wired right."""

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from decks import services
from decks.models import Note, NoteType
from support.web import tiny_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def dora(django_user_model):
    return django_user_model.objects.create_user("dora", password="a-long-password-4")


def test_signup_creates_an_account_and_logs_in(client):
    page = client.post(
        "/accounts/signup/",
        {"username": "eve", "password1": "zebra-lantern-93", "password2": "zebra-lantern-93"},
        follow=True,
    )

    assert page.redirect_chain[-1][0] == "/decks/"
    user = get_user_model().objects.get(username="eve")
    assert user.check_password("zebra-lantern-93")
    assert user.is_active
    assert page.context["user"] == user


def test_signup_refuses_a_weak_password(client):
    page = client.post(
        "/accounts/signup/", {"username": "eve", "password1": "123", "password2": "123"}
    )
    assert page.status_code == 200
    assert not get_user_model().objects.filter(username="eve").exists()


def test_password_change_says_devices_are_logged_out(client, dora):
    client.force_login(dora)

    page = client.post(
        "/accounts/password/",
        {
            "old_password": "a-long-password-4",
            "new_password1": "quiet-harbor-571",
            "new_password2": "quiet-harbor-571",
        },
        follow=True,
    )

    assert b"Your Anki devices are now logged out" in page.content
    assert b"new password" in page.content


def test_pages_need_a_login(client):
    assert client.get("/decks/").status_code == 302
    assert client.get("/connect/").status_code == 302


def test_pages_are_phone_friendly(client, dora):
    client.force_login(dora)
    page = client.get("/decks/").content.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "css/site.css" in page


def test_deck_and_note_pages(client, dora):
    client.force_login(dora)

    created = client.post("/decks/", {"name": "Spanish", "description": ""}, follow=True)
    deck = dora.decks.get()
    assert created.redirect_chain[-1][0] == f"/decks/{deck.pk}/"

    client.post(
        f"/decks/{deck.pk}/notes/new/",
        {
            "note_type": NoteType.BASIC,
            "front": "rojo",
            "back": "red",
            "tags": "colours",
            "image": SimpleUploadedFile("rojo.png", tiny_png()),
        },
    )
    note = Note.objects.get()
    page = client.get(f"/decks/{deck.pk}/").content.decode()
    assert "rojo" in page
    assert f"/decks/notes/{note.pk}/image/" in page
    assert client.get(f"/decks/notes/{note.pk}/image/").getvalue() == tiny_png()

    client.post(f"/decks/notes/{note.pk}/edit/", {"front": "azul", "back": "blue", "tags": ""})
    note.refresh_from_db()
    assert note.front == "azul"
    client.post(f"/decks/notes/{note.pk}/delete/")
    assert not Note.objects.exists()


def test_another_users_deck_and_media_are_not_found(client, dora, django_user_model):
    deck = services.deck_create(owner=dora, name="Private")
    note = services.note_create(
        deck=deck,
        note_type=NoteType.BASIC,
        front="a",
        back="b",
        image=SimpleUploadedFile("a.png", tiny_png()),
    )
    mallory = django_user_model.objects.create_user("mallory", password="a-long-password-5")
    client.force_login(mallory)

    assert client.get(f"/decks/{deck.pk}/").status_code == 404
    assert client.get(f"/decks/notes/{note.pk}/image/").status_code == 404
    assert client.post(f"/decks/notes/{note.pk}/delete/").status_code == 404
    assert client.post(f"/decks/{deck.pk}/send/").status_code == 404


def test_csv_upload_shows_the_bad_rows(client, dora):
    deck = services.deck_create(owner=dora, name="Words")
    client.force_login(dora)

    page = client.post(
        f"/decks/{deck.pk}/import/",
        {
            "note_type": NoteType.BASIC,
            "file": SimpleUploadedFile("w.csv", b"one,uno\nbroken\ntwo,dos,numbers\n"),
        },
    )

    html = page.content.decode()
    assert 'id="imported-count">2<' in html
    assert 'id="bad-row-count">1<' in html
    assert "<td>2</td><td>Expected 2 or 3 columns" in html
    assert deck.notes.count() == 2


@pytest.mark.django_db(transaction=True)
def test_send_to_anki_records_the_push(client, dora, fake_sidecar):
    # A real commit (transaction=True): the push is delivered by on_commit inside the request.
    deck = services.deck_create(owner=dora, name="Words")
    services.note_create(deck=deck, note_type=NoteType.BASIC, front="a", back="b")
    fake_sidecar.answer("POST", f"/internal/v1/users/{dora.pk}/imports", 200, {"notes_added": 1})
    client.force_login(dora)

    page = client.post(f"/decks/{deck.pk}/send/", follow=True)

    assert b"Sent 1 notes to Anki" in page.content
    assert b'class="push-status">Delivered<' in page.content
    assert b"<dt>Notes added</dt><dd>1</dd>" in page.content


def test_connect_page_shows_the_url_and_status(client, dora, settings, fake_sidecar, stats_payload):
    settings.ANKI_SYNC_PUBLIC_URL = "https://anki.example.org/"
    fake_sidecar.answer("GET", f"/internal/v1/users/{dora.pk}/stats", 200, stats_payload)
    client.force_login(dora)

    page = client.get("/connect/").content.decode()

    assert '<code id="sync-url">https://anki.example.org/</code>' in page
    for client_name in ("Anki Desktop", "AnkiDroid", "AnkiMobile"):
        assert client_name in page
    assert "<dt>Cards</dt><dd>12</dd>" in page


def test_connect_page_when_the_sidecar_is_down(client, dora, settings):
    settings.SIDECAR_INTERNAL_URL = "http://127.0.0.1:9"
    client.force_login(dora)

    page = client.get("/connect/")

    assert page.status_code == 200
    assert b"cannot be reached right now" in page.content
