"""Deck builder services: decks, notes, media, CSV import, sending to Anki."""

import io
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from decks import anki_ids, apkg, selectors, services
from decks.models import Deck, DeckPush, Note, NoteType
from support.web import tiny_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="a-long-password-1")


@pytest.fixture
def deck(alice):
    return services.deck_create(owner=alice, name="French", description="Words")


def png_upload(name="photo.png", **colour):
    return SimpleUploadedFile(name, tiny_png(**colour), content_type="image/png")


# --- decks ------------------------------------------------------------------------------------


def test_deck_names_are_unique_per_user_ignoring_case(alice, deck, django_user_model):
    with pytest.raises(ValidationError) as caught:
        services.deck_create(owner=alice, name="  french ")
    assert "name" in caught.value.message_dict

    bob = django_user_model.objects.create_user("bob", password="a-long-password-2")
    assert services.deck_create(owner=bob, name="French").name == "French"


def test_deck_name_is_cleaned_and_validated(alice):
    assert services.deck_create(owner=alice, name="  Lang   ::  Spanish ").name == (
        "Lang :: Spanish"
    )
    for bad in ("", "   ", "a::", "x" * 101):
        with pytest.raises(ValidationError):
            services.deck_create(owner=alice, name=bad)


def test_deck_anki_id_is_stable_and_in_the_past(deck):
    original = deck.anki_id
    services.deck_update(deck=deck, name="Français", description="")
    deck.refresh_from_db()

    assert deck.anki_id == original
    assert anki_ids.ID_LOW <= original < anki_ids.ID_LOW + anki_ids.ID_SPAN


def test_selectors_only_show_the_owners_decks(alice, deck, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="a-long-password-2")
    services.note_create(deck=deck, note_type=NoteType.BASIC, front="a", back="b")

    assert [d.note_count for d in selectors.deck_list(user=alice)] == [1]
    assert not selectors.deck_list(user=bob).exists()
    assert not selectors.deck_queryset(user=bob).filter(pk=deck.pk).exists()
    assert not selectors.note_queryset(user=bob).exists()


# --- notes ------------------------------------------------------------------------------------


def test_note_guid_is_generated_once_and_kept(deck):
    note = services.note_create(
        deck=deck, note_type=NoteType.BASIC, front="chat", back="cat", tags="animals, fr animals"
    )
    guid = note.guid

    services.note_update(note=note, front="chien", back="dog", tags="animals")
    note.refresh_from_db()

    assert note.guid == guid
    assert guid
    assert (note.front, note.back, note.tags) == ("chien", "dog", "animals")
    other = services.note_create(deck=deck, note_type=NoteType.BASIC, front="x", back="y")
    assert other.guid != guid


def test_tags_are_normalized(deck):
    note = services.note_create(
        deck=deck, note_type=NoteType.BASIC, front="a", back="b", tags=" verbs,Verbs  ch1 ,,"
    )
    assert note.tags == "verbs ch1"


@pytest.mark.parametrize(
    ("note_type", "front", "back", "field"),
    [
        (NoteType.BASIC, "   ", "b", "front"),
        (NoteType.CLOZE, "Paris is in France", "", "front"),
        (NoteType.BASIC_REVERSED, "front", "", "back"),
    ],
)
def test_note_content_is_validated(deck, note_type, front, back, field):
    with pytest.raises(ValidationError) as caught:
        services.note_create(deck=deck, note_type=note_type, front=front, back=back)
    assert field in caught.value.message_dict


def test_cloze_note_with_a_deletion_is_accepted(deck):
    note = services.note_create(
        deck=deck, note_type=NoteType.CLOZE, front="{{c1::Paris}} is in France", back=""
    )
    assert note.note_type == NoteType.CLOZE


def test_an_image_is_stored_under_a_safe_name(deck, settings):
    note = services.note_create(
        deck=deck,
        note_type=NoteType.BASIC,
        front="red",
        back="rouge",
        image=png_upload("../../../etc/Evil Name.PNG"),
    )

    name = note.image.name
    assert name.startswith(f"notes/{deck.owner_id}/image-")
    assert name.endswith(".png")
    assert ".." not in name
    assert "Evil" not in name
    stored = Path(settings.MEDIA_ROOT) / name
    assert stored.read_bytes() == tiny_png()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("fake.png", b"<svg onload=alert(1)>"),
        ("drawing.svg", b"<svg></svg>"),
        ("script.html", tiny_png()),
    ],
)
def test_bad_images_are_refused(deck, name, content):
    with pytest.raises(ValidationError) as caught:
        services.note_create(
            deck=deck,
            note_type=NoteType.BASIC,
            front="a",
            back="b",
            image=SimpleUploadedFile(name, content),
        )
    assert "image" in caught.value.message_dict
    assert not Note.objects.exists()


def test_audio_is_checked_by_content(deck):
    good = SimpleUploadedFile("word.mp3", b"ID3\x04\x00" + b"\x00" * 64)
    note = services.note_create(
        deck=deck, note_type=NoteType.BASIC, front="a", back="b", audio=good
    )
    assert note.audio.name.endswith(".mp3")

    with pytest.raises(ValidationError):
        services.note_create(
            deck=deck,
            note_type=NoteType.BASIC,
            front="a",
            back="b",
            audio=SimpleUploadedFile("word.mp3", b"not audio at all"),
        )


def test_replacing_an_image_deletes_the_old_file_after_commit(
    deck, settings, django_capture_on_commit_callbacks
):
    note = services.note_create(
        deck=deck, note_type=NoteType.BASIC, front="a", back="b", image=png_upload()
    )
    old = Path(settings.MEDIA_ROOT) / note.image.name

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.note_update(note=note, front="a", back="b", image=png_upload(green=255))
    assert old.exists(), "deleted before the commit"
    for callback in callbacks:
        callback()

    assert not old.exists()
    assert (Path(settings.MEDIA_ROOT) / note.image.name).read_bytes() == tiny_png(green=255)


def test_deleting_a_note_removes_its_media(deck, settings, django_capture_on_commit_callbacks):
    note = services.note_create(
        deck=deck, note_type=NoteType.BASIC, front="a", back="b", image=png_upload()
    )
    stored = Path(settings.MEDIA_ROOT) / note.image.name

    with django_capture_on_commit_callbacks(execute=True):
        services.note_delete(note=note)

    assert not stored.exists()
    assert not Note.objects.exists()


# --- CSV --------------------------------------------------------------------------------------

CSV_WITH_BAD_ROWS = (
    "front,back,tags\n"
    "bonjour,hello,greetings\n"
    "merci,thank you\n"
    "only one column\n"
    ",empty front,x\n"
    "a,b,c,d\n"
    '"au revoir","good\nbye","greetings farewell"\n'
    "\n"
    "chat,cat,animals\n"
)


def test_csv_import_keeps_good_rows_and_reports_bad_ones(deck):
    report = services.deck_csv_import(deck=deck, data=CSV_WITH_BAD_ROWS.encode())

    assert report.imported == 4
    assert report.file_error == ""
    assert [(error.line, error.message) for error in report.errors] == [
        (4, "Expected 2 or 3 columns (front, back, tags), found 1."),
        (5, "Front is empty."),
        (6, "Expected 2 or 3 columns (front, back, tags), found 4."),
    ]
    assert report.errors[0].excerpt == "only one column"
    notes = list(deck.notes.order_by("id"))
    assert [(n.front, n.back, n.tags) for n in notes] == [
        ("bonjour", "hello", "greetings"),
        ("merci", "thank you", ""),
        ("au revoir", "good\nbye", "greetings farewell"),
        ("chat", "cat", "animals"),
    ]
    assert len({n.guid for n in notes}) == 4


def test_csv_import_for_cloze_requires_deletions(deck):
    data = b"{{c1::Paris}} is in France,capital\nBerlin is in Germany,no deletion\n"

    report = services.deck_csv_import(deck=deck, data=data, note_type=NoteType.CLOZE)

    assert report.imported == 1
    assert report.errors[0].line == 2
    assert "cloze" in report.errors[0].message.lower()


def test_csv_import_accepts_semicolons_and_a_bom(deck):
    data = "\ufefffront;back\nuno;one\ndos;two\n".encode()

    report = services.deck_csv_import(deck=deck, data=data)

    assert (report.imported, report.errors) == (2, [])


def test_csv_that_is_not_utf8_imports_nothing(deck):
    report = services.deck_csv_import(deck=deck, data="café,coffee\n".encode("latin-1"))

    assert report.imported == 0
    assert "UTF-8" in report.file_error
    assert not deck.notes.exists()


# --- the package ------------------------------------------------------------------------------


def open_package(data: bytes, tmp_path: Path):
    archive = zipfile.ZipFile(io.BytesIO(data))
    path = tmp_path / "collection.anki2"
    path.write_bytes(archive.read("collection.anki2"))
    media_map = json.loads(archive.read("media"))
    media = {name: archive.read(index) for index, name in media_map.items()}
    return sqlite3.connect(path), media


def test_package_has_stable_guids_models_and_media(deck, tmp_path):
    basic = services.note_create(
        deck=deck,
        note_type=NoteType.BASIC,
        front="<b>red</b> & blue",
        back="line one\nline two",
        tags="colours",
        image=png_upload(),
    )
    cloze = services.note_create(
        deck=deck, note_type=NoteType.CLOZE, front="{{c1::Paris}} is in France", back=""
    )
    reversed_ = services.note_create(
        deck=deck, note_type=NoteType.BASIC_REVERSED, front="uno", back="one"
    )

    first = apkg.build_package(deck)
    second = apkg.build_package(deck)
    assert (first.note_count, first.media_count) == (3, 1)

    runs = []
    for built in (first, second):
        db, media = open_package(built.data, tmp_path)
        notes = {
            guid: (mid, flds, tags)
            for guid, mid, flds, tags in db.execute("select guid, mid, flds, tags from notes")
        }
        models = json.loads(db.execute("select models from col").fetchone()[0])
        decks = json.loads(db.execute("select decks from col").fetchone()[0])
        cards = db.execute("select count(*) from cards").fetchone()[0]
        db.close()
        runs.append((notes, set(models), media, decks, cards))

    (notes, model_ids, media, decks, cards), again = runs
    assert again[:2] == (notes, model_ids), "a rebuild must give the same ids"
    assert set(notes) == {basic.guid, cloze.guid, reversed_.guid}
    assert cards == 4, "basic 1 + cloze 1 + reversed 2"
    assert model_ids == {
        str(anki_ids.model_id(deck.owner_id, t))
        for t in (NoteType.BASIC, NoteType.CLOZE, NoteType.BASIC_REVERSED)
    }
    assert decks[str(deck.anki_id)]["name"] == "French"

    _mid, fields, tags = notes[basic.guid]
    front, back = fields.split("\x1f")
    [media_name] = media
    assert front == "&lt;b&gt;red&lt;/b&gt; &amp; blue", "plain text is escaped"
    assert back == f'line one<br>line two<br><img src="{media_name}">'
    assert tags.strip() == "colours"
    assert media[media_name] == tiny_png()
    assert media_name.startswith("deckbuilder-")
    assert media_name.endswith(".png")
    assert notes[cloze.guid][1].split("\x1f")[0] == "{{c1::Paris}} is in France"


def test_model_ids_differ_per_user_and_type():
    ids = {anki_ids.model_id(user, t) for user in (1, 2) for t in NoteType.values}
    assert len(ids) == 6


# --- sending to Anki --------------------------------------------------------------------------


def test_push_is_sent_only_after_commit_with_its_idempotency_key(
    alice, deck, fake_sidecar, django_capture_on_commit_callbacks
):
    services.note_create(deck=deck, note_type=NoteType.BASIC, front="a", back="b")
    summary = {"notes": {"added": 1, "updated": 0, "skipped": 0}, "cards": 1}
    fake_sidecar.answer("POST", f"/internal/v1/users/{alice.pk}/imports", 200, summary)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        push = services.deck_push_request(deck=deck, user=alice)
    assert push.status == DeckPush.Status.PENDING
    assert fake_sidecar.requests == [], "nothing may be sent before the commit"

    for callback in callbacks:
        callback()
    push.refresh_from_db()

    assert push.status == DeckPush.Status.DELIVERED
    assert push.summary == summary
    assert push.finished_at is not None
    [request] = fake_sidecar.requests
    assert request.headers["idempotency-key"] == str(push.idempotency_key)
    assert zipfile.ZipFile(io.BytesIO(request.body)).namelist()[0] == "collection.anki2"
    assert selectors.summary_items(push) == [
        ("notes added", 1),
        ("notes updated", 0),
        ("notes skipped", 0),
        ("cards", 1),
    ]


def test_a_failed_push_records_the_reason(
    alice, deck, fake_sidecar, django_capture_on_commit_callbacks
):
    services.note_create(deck=deck, note_type=NoteType.BASIC, front="a", back="b")
    fake_sidecar.answer("POST", f"/internal/v1/users/{alice.pk}/imports", 500, "boom")

    with django_capture_on_commit_callbacks(execute=True):
        push = services.deck_push_request(deck=deck, user=alice)
    push.refresh_from_db()

    assert push.status == DeckPush.Status.FAILED
    assert "500" in push.error
    assert "boom" in push.error


def test_a_push_with_the_sidecar_down_fails_gracefully(
    alice, deck, settings, django_capture_on_commit_callbacks
):
    settings.SIDECAR_INTERNAL_URL = "http://127.0.0.1:9"
    services.note_create(deck=deck, note_type=NoteType.BASIC, front="a", back="b")

    with django_capture_on_commit_callbacks(execute=True):
        push = services.deck_push_request(deck=deck, user=alice)
    push.refresh_from_db()

    assert push.status == DeckPush.Status.FAILED
    assert "unreachable" in push.error


def test_an_empty_deck_cannot_be_sent(alice, deck):
    with pytest.raises(ValidationError):
        services.deck_push_request(deck=deck, user=alice)
    assert not DeckPush.objects.exists()


def test_pending_pushes_are_delivered_later_with_the_same_key(alice, deck, fake_sidecar):
    services.note_create(deck=deck, note_type=NoteType.BASIC, front="a", back="b")
    fake_sidecar.answer("POST", f"/internal/v1/users/{alice.pk}/imports", 200, {"ok": 1})
    # As if the process died between the commit and the delivery.
    push = DeckPush.objects.create(
        deck=deck, requested_by=alice, idempotency_key="00000000-0000-4000-8000-000000000001"
    )

    [done] = services.pending_pushes_deliver(older_than_seconds=-1)

    assert done.pk == push.pk
    assert done.status == DeckPush.Status.DELIVERED
    assert fake_sidecar.requests[0].headers["idempotency-key"] == str(push.idempotency_key)
    assert services.pending_pushes_deliver(older_than_seconds=-1) == []


def test_deleting_a_deck_deletes_its_notes(deck):
    services.note_create(deck=deck, note_type=NoteType.BASIC, front="a", back="b")
    services.deck_delete(deck=deck)
    assert not Deck.objects.exists()
    assert not Note.objects.exists()
