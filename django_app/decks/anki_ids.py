"""Ids and GUIDs for what the deck builder sends to Anki. Pure functions, no I/O.

* A note's GUID is generated once, when the note is created, and stored: Anki's importer
  matches notes by GUID, so re-sending a deck updates its notes instead of duplicating them.
* A deck's Anki id is generated once and stored (Anki matches decks by name on import, but
  a stable id keeps the packages reproducible).
* Notetype ids are derived from the user's id and the note type: one notetype per type per
  user. Anki adds a notetype whose id it does not know under that id and updates it when
  the id and the fields and templates match; one id per deck would put a copy of each
  notetype per deck into the user's collection, renamed "Basic+", "Basic++", ...

Anki rewrites ids more than a day in the future, so every id lies in the past: between
2001-09-09 (10^12 ms) and 2020-09-13 (1.6 * 10^12 ms), like the ms timestamps Anki uses.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

import genanki

ID_LOW = 1_000_000_000_000
ID_SPAN = 600_000_000_000


def new_deck_id() -> int:
    return ID_LOW + secrets.randbelow(ID_SPAN)


def new_guid() -> str:
    """Anki-style GUID (base91 of 64 random bits)."""
    return genanki.guid_for(uuid.uuid4().hex)


def model_id(user_id: int, note_type: str) -> int:
    digest = hashlib.sha256(f"deck-builder-model:{user_id}:{note_type}".encode()).digest()
    return ID_LOW + int.from_bytes(digest[:8], "big") % ID_SPAN
