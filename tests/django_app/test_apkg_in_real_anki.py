"""The package the deck builder sends, imported by real Anki's importer (the `anki` wheel).

The sidecar applies Anki's import rules on the server; here the client library's own importer
checks the same package: notes, cards, tags, the notetypes and the image arrive, and sending
again after an edit updates the notes instead of duplicating them.
"""

import time
from pathlib import Path

import pytest
from anki.collection import Collection
from anki.import_export_pb2 import ImportAnkiPackageOptions, ImportAnkiPackageRequest
from django.core.files.uploadedfile import SimpleUploadedFile

from decks import apkg, services
from decks.models import NoteType
from support.web import tiny_png

pytestmark = pytest.mark.django_db


def import_into(col: Collection, data: bytes, folder: Path) -> None:
    path = folder / f"deck-{time.monotonic_ns()}.apkg"
    path.write_bytes(data)
    col.import_anki_package(
        ImportAnkiPackageRequest(
            package_path=str(path),
            options=ImportAnkiPackageOptions(with_scheduling=False, with_deck_configs=False),
        )
    )


def test_real_anki_imports_the_deck_and_updates_it_on_resend(django_user_model, tmp_path):
    owner = django_user_model.objects.create_user("frank", password="a-long-password-6")
    deck = services.deck_create(owner=owner, name="Lang::French")
    basic = services.note_create(
        deck=deck,
        note_type=NoteType.BASIC,
        front="le chat",
        back="the cat",
        tags="animals",
        image=SimpleUploadedFile("cat.png", tiny_png(1, 2, 3)),
    )
    services.note_create(deck=deck, note_type=NoteType.BASIC_REVERSED, front="un", back="one")
    services.note_create(
        deck=deck, note_type=NoteType.CLOZE, front="{{c1::Paris}} est en France", back=""
    )
    col = Collection(str(tmp_path / "collection.anki2"))
    try:
        import_into(col, apkg.build_package(deck).data, tmp_path)

        assert col.decks.by_name("Lang::French") is not None
        note_ids = col.find_notes('"deck:Lang::French"')
        assert len(note_ids) == 3
        assert len(col.find_cards('"deck:Lang::French"')) == 4
        [cat_id] = col.find_notes("le chat")
        cat = col.get_note(cat_id)
        assert cat.guid == basic.guid
        assert cat.tags == ["animals"]
        assert cat.note_type()["name"] == "Basic (deck builder)"
        [image_name] = col.media.files_in_str(cat.mid, cat.fields[1])
        assert (Path(col.media.dir()) / image_name).read_bytes() == tiny_png(1, 2, 3)
        notetypes = {nt.name for nt in col.models.all_names_and_ids()}

        # Edit on the website and send again: updated in place, nothing duplicated.
        time.sleep(1.1)  # note mod is in whole seconds; "update if newer"
        services.note_update(note=basic, front="le chat", back="the cat (m.)", tags="animals")
        services.note_create(deck=deck, note_type=NoteType.BASIC, front="le chien", back="dog")
        import_into(col, apkg.build_package(deck).data, tmp_path)

        assert len(col.find_notes('"deck:Lang::French"')) == 4
        assert col.get_note(cat_id).fields[1].startswith("the cat (m.)<br><img")
        assert {nt.name for nt in col.models.all_names_and_ids()} == notetypes
    finally:
        col.close(downgrade=False)
