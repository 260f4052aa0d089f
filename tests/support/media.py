"""Media on the side of a real client (`support.client.AnkiClient`): notes that use media, the
background media sync driven to its end, and the files of a media folder by content digest."""

from __future__ import annotations

import hashlib
import secrets
import time
import unicodedata
from pathlib import Path

from support.client import AnkiClient
from support.web import tiny_png

# The longest a media sync may take before the test fails (and aborts it).
MEDIA_TIMEOUT = 180


def media_folder(client: AnkiClient) -> Path:
    return Path(client.col.media.dir())


def media_files(client: AnkiClient, algorithm: str = "sha1", nfc: bool = False) -> dict[str, str]:
    """Every file of the client's media folder: name -> hex digest of its content. `nfc`
    compares names in NFC, the form the protocol uses on the wire."""
    return {
        (unicodedata.normalize("NFC", path.name) if nfc else path.name): hashlib.new(
            algorithm, path.read_bytes()
        ).hexdigest()
        for path in media_folder(client).iterdir()
        if path.is_file()
    }


def wait_for_media(client: AnkiClient) -> None:
    """Polls the background media sync to its end; the poll raises the sync's error, if any."""
    deadline = time.monotonic() + MEDIA_TIMEOUT
    while client.col.media_sync_status().active:
        if time.monotonic() > deadline:
            client.col.abort_media_sync()
            raise AssertionError(f"{client.name}: media sync did not finish in {MEDIA_TIMEOUT} s")
        time.sleep(0.05)
    # One more poll after it ended surfaces an error the last poll did not.
    client.col.media_sync_status()


def sync_media(client: AnkiClient) -> None:
    """A standalone media sync (it calls /msync/begin), polled to its end."""
    assert client.auth is not None
    client.col.sync_media(client.auth)
    wait_for_media(client)


def add_notes_with_media(
    client: AnkiClient,
    deck: str,
    notes: int,
    colour: tuple[int, int, int] = (255, 0, 0),
    sound_bytes: int = 200,
) -> None:
    """`notes` Basic notes in `deck`; the first one shows `picture.png` (a tiny PNG of
    `colour`), and `sound.mp3` (`sound_bytes` random bytes after an ID3 tag) lies in the media
    folder without a note using it."""
    col = client.col
    basic = col.models.by_name("Basic")
    deck_id = col.decks.id(deck)
    picture = col.media.write_data("picture.png", tiny_png(*colour))
    col.media.write_data("sound.mp3", b"ID3" + secrets.token_bytes(sound_bytes))
    for index in range(notes):
        note = col.new_note(basic)
        note["Front"] = f"question {index}"
        note["Back"] = f'answer {index} <img src="{picture}">' if index == 0 else f"answer {index}"
        col.add_note(note, deck_id)
