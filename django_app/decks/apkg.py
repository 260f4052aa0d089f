"""Building the `.apkg` a deck is sent to Anki as (genanki, legacy schema-11 package).

Re-sending updates rather than duplicates: each note carries its stored GUID, the notetypes
have stable ids (`anki_ids.model_id`), and the deck keeps its name and stored id. Note `mod`
is the build time, so Anki's importer (update if newer) takes the new content.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import genanki

from decks import anki_ids
from decks.content import text_to_field
from decks.media import anki_media_name
from decks.models import Deck, Note, NoteType

CSS = """\
.card { font-family: system-ui, arial, sans-serif; font-size: 22px; text-align: center;
        color: black; background-color: white; }
.card img { max-width: 100%; height: auto; }
.cloze { font-weight: bold; color: #1a5fb4; }
"""

MODEL_NAMES = {
    NoteType.BASIC: "Basic (deck builder)",
    NoteType.BASIC_REVERSED: "Basic and reversed (deck builder)",
    NoteType.CLOZE: "Cloze (deck builder)",
}


def build_model(user_id: int, note_type: str) -> genanki.Model:
    model_id = anki_ids.model_id(user_id, note_type)
    name = MODEL_NAMES[NoteType(note_type)]
    if note_type == NoteType.CLOZE:
        return genanki.Model(
            model_id,
            name,
            fields=[{"name": "Text"}, {"name": "Back Extra"}],
            templates=[
                {
                    "name": "Cloze",
                    "qfmt": "{{cloze:Text}}",
                    "afmt": "{{cloze:Text}}<br>\n{{Back Extra}}",
                }
            ],
            css=CSS,
            model_type=genanki.Model.CLOZE,
        )
    templates = [
        {
            "name": "Card 1",
            "qfmt": "{{Front}}",
            "afmt": "{{FrontSide}}\n\n<hr id=answer>\n\n{{Back}}",
        }
    ]
    if note_type == NoteType.BASIC_REVERSED:
        templates.append(
            {
                "name": "Card 2",
                "qfmt": "{{Back}}",
                "afmt": "{{FrontSide}}\n\n<hr id=answer>\n\n{{Front}}",
            }
        )
    return genanki.Model(
        model_id,
        name,
        fields=[{"name": "Front"}, {"name": "Back"}],
        templates=templates,
        css=CSS,
    )


@dataclass(frozen=True)
class BuiltPackage:
    data: bytes
    note_count: int
    media_count: int


def _media_field(note: Note, media_dir: Path, written: set[str]) -> str:
    """Writes the note's media into `media_dir` under its Anki name; returns the references."""
    parts: list[str] = []
    for field_file, kind in ((note.image, "image"), (note.audio, "audio")):
        if not field_file:
            continue
        with field_file.open("rb") as handle:
            content = handle.read()
        name = anki_media_name(content, field_file.name)
        if name not in written:
            (media_dir / name).write_bytes(content)
            written.add(name)
        parts.append(f'<img src="{name}">' if kind == "image" else f"[sound:{name}]")
    return "".join(parts)


def note_fields(note: Note, media: str) -> list[str]:
    back = text_to_field(note.back)
    if media:
        back = f"{back}<br>{media}" if back else media
    return [text_to_field(note.front), back]


def build_package(deck: Deck, *, timestamp: float | None = None) -> BuiltPackage:
    user_id = deck.owner_id
    package_deck = genanki.Deck(deck.anki_id, deck.name, description=deck.description)
    models: dict[str, genanki.Model] = {}
    written: set[str] = set()
    notes = list(deck.notes.all())
    with tempfile.TemporaryDirectory(prefix="apkg-") as tmp:
        media_dir = Path(tmp) / "media"
        media_dir.mkdir()
        for note in notes:
            model = models.get(note.note_type)
            if model is None:
                model = models[note.note_type] = build_model(user_id, note.note_type)
            fields = note_fields(note, _media_field(note, media_dir, written))
            package_deck.add_note(
                genanki.Note(model=model, fields=fields, tags=note.tag_list, guid=note.guid)
            )
        package = genanki.Package(
            package_deck, media_files=[str(media_dir / name) for name in sorted(written)]
        )
        path = Path(tmp) / "deck.apkg"
        package.write_to_file(str(path), timestamp=timestamp)
        return BuiltPackage(path.read_bytes(), len(notes), len(written))
