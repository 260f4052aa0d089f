"""Rules for note content, shared by forms, services and the CSV import. Pure functions.

Note text is plain text: what a user types is what Anki shows. It is HTML-escaped on its way
into Anki (newlines become <br>), so nobody's markup or script reaches a card by accident.
Cloze deletions ({{c1::...}}) pass through unchanged.
"""

from __future__ import annotations

import html
import re

from decks.models import NoteType

MAX_FIELD_CHARS = 10_000
MAX_TAG_CHARS = 100
CLOZE = re.compile(r"\{\{c\d+::.+?\}\}", re.DOTALL)
TAG_SEPARATORS = re.compile(r"[\s,]+")


def normalize_tags(text: str) -> str:
    """Tags separated by spaces or commas; duplicates (any case) dropped, order kept."""
    seen: set[str] = set()
    tags: list[str] = []
    for tag in TAG_SEPARATORS.split(text or ""):
        tag = tag.strip()
        if tag and tag.lower() not in seen:
            seen.add(tag.lower())
            tags.append(tag)
    return " ".join(tags)


def content_errors(note_type: str, front: str, back: str, tags: str = "") -> dict[str, str]:
    """Field name -> problem; empty when the note is fine."""
    errors: dict[str, str] = {}
    if not front.strip():
        errors["front"] = "The text is empty." if note_type == NoteType.CLOZE else "Front is empty."
    elif note_type == NoteType.CLOZE and not CLOZE.search(front):
        errors["front"] = "A cloze note needs at least one deletion, like {{c1::Paris}}."
    elif len(front) > MAX_FIELD_CHARS:
        errors["front"] = f"Front is longer than {MAX_FIELD_CHARS} characters."
    if note_type == NoteType.BASIC_REVERSED and not back.strip():
        errors["back"] = "Back is empty: the reversed card would be blank."
    elif len(back) > MAX_FIELD_CHARS:
        errors["back"] = f"Back is longer than {MAX_FIELD_CHARS} characters."
    long_tags = [tag for tag in normalize_tags(tags).split() if len(tag) > MAX_TAG_CHARS]
    if long_tags:
        errors["tags"] = f"A tag is longer than {MAX_TAG_CHARS} characters."
    return errors


def text_to_field(text: str) -> str:
    """Plain text as an Anki field (HTML)."""
    escaped = html.escape(text.strip(), quote=False)
    return escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")
