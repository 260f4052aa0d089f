"""Server-side import (issue #5): packages pushed through the internal API reach the real
Anki client at its next sync, media included.

Packages are built with genanki (legacy, as the web app builds them) and exported by the
`anki` package itself (modern, `collection.anki21b`). What the client holds afterwards is read
from its own collection and media folder.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import genanki
import pytest
from anki.collection import DeckIdLimit, ExportAnkiPackageOptions

from support.client import FULL_SYNC, NO_CHANGES, AnkiClient
from support.collection_data import fill_like_a_real_user
from support.internal_api import internal_call, push_package
from support.media import sync_media
from support.paths import sidecar_binary
from support.web import tiny_png

pytestmark = pytest.mark.timeout(600)

DECK_NAME = "Imported::Spanish Verbs"
MODEL_ID = 1_607_392_319
DECK_ID = 2_059_400_110
NOTES = 50


# --- building packages -----------------------------------------------------------------------


def vocab_model() -> genanki.Model:
    """A custom notetype: 3 fields, 2 templates."""
    return genanki.Model(
        MODEL_ID,
        "Web Vocab (import test)",
        fields=[{"name": "Word"}, {"name": "Meaning"}, {"name": "Example"}],
        templates=[
            {"name": "Recognise", "qfmt": "{{Word}}", "afmt": "{{FrontSide}}<hr>{{Meaning}}"},
            {"name": "Recall", "qfmt": "{{Meaning}}", "afmt": "{{FrontSide}}<hr>{{Word}}"},
        ],
        css=".card { font-family: serif; }",
    )


def media_payload() -> dict[str, bytes]:
    return {
        "sol.png": tiny_png(250, 200, 10, size=3),
        "luna.png": tiny_png(20, 20, 200, size=4),
        "agua.png": tiny_png(10, 180, 240, size=5),
        "hablar.mp3": b"ID3\x03\x00\x00\x00" + os.urandom(4000),
    }


def note_fields(index: int, edited: set[int] = frozenset()) -> list[str]:
    images = ["sol.png", "luna.png", "agua.png"]
    meaning = f"meaning {index}" + (" (edited)" if index in edited else "")
    if index < 3:
        meaning += f'<img src="{images[index]}">'
    example = "[sound:hablar.mp3]" if index == 3 else f"example {index}"
    return [f"palabra {index}", meaning, example]


def guid_of(index: int) -> str:
    return f"import-test-{index:03}"


def genanki_package(
    tmp: Path, *, edited: set[int] = frozenset(), old_mod: int | None = None
) -> bytes:
    """The test deck as the web app builds it. With `old_mod`, notes other than `edited` keep
    that mtime, as a builder that tracks per-note changes would write them."""
    model = vocab_model()
    deck = genanki.Deck(DECK_ID, DECK_NAME, description="pushed from the web")
    for index in range(NOTES):
        deck.add_note(
            genanki.Note(
                model=model,
                fields=note_fields(index, edited),
                tags=["web", f"batch{index % 2}"],
                guid=guid_of(index),
            )
        )
    media_dir = tmp / f"media-{time.monotonic_ns()}"
    media_dir.mkdir()
    for name, data in MEDIA.items():
        (media_dir / name).write_bytes(data)
    path = tmp / f"deck-{time.monotonic_ns()}.apkg"
    genanki.Package(deck, media_files=[str(media_dir / name) for name in MEDIA]).write_to_file(
        str(path)
    )
    data = path.read_bytes()
    if old_mod is not None:
        keep = [guid_of(index) for index in range(NOTES) if index not in edited]
        data = rewrite_collection(
            data,
            lambda db: db.executemany(
                "UPDATE notes SET mod = ? WHERE guid = ?", [(old_mod, g) for g in keep]
            ),
        )
    return data


MEDIA = media_payload()


def rewrite_collection(package: bytes, change, member: str = "collection.anki2") -> bytes:
    """Applies `change(sqlite connection)` to the package's collection member."""
    with tempfile.TemporaryDirectory() as tmp:
        source = zipfile.ZipFile(io.BytesIO(package))
        db_path = Path(tmp) / "col.anki2"
        db_path.write_bytes(source.read(member))
        db = sqlite3.connect(db_path)
        change(db)
        db.commit()
        db.close()
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                data = db_path.read_bytes() if info.filename == member else source.read(info)
                target.writestr(info.filename, data)
        return out.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


# --- the internal API --------------------------------------------------------------------------


def push(backend, user_id: int, package: bytes, key: str | None = None) -> dict:
    status, body = push_package(backend.sidecar, user_id, package, key)
    assert status == 200, body.decode(errors="replace")
    return json.loads(body)


def push_refused(backend, user_id: int, package: bytes, key: str | None = None) -> tuple[int, str]:
    status, body = push_package(backend.sidecar, user_id, package, key)
    return status, body.decode(errors="replace")


def server_stats(backend, user_id: int) -> dict:
    sidecar = backend.sidecar
    status, body = internal_call(
        f"{sidecar.internal_url}/internal/v1/users/{user_id}/stats", token=sidecar.internal_token
    )
    assert status == 200, body
    return json.loads(body)


# --- what the client holds ---------------------------------------------------------------------


def synced_device(backend, make_client, name: str = "A", notes: int = 15):
    user = backend.create_user()
    client = make_client(backend.url, name)
    fill_like_a_real_user(client.col, notes=notes, reviews=5)
    client.first_upload(user)
    assert client.sync() == NO_CHANGES
    return user, client


def imported_notes(client: AnkiClient) -> dict[str, list[str]]:
    rows = client.col.db.all(
        "select n.guid, n.flds from notes n where n.guid like 'import-test-%' order by n.guid"
    )
    return {guid: fields.split("\x1f") for guid, fields in rows}


def assert_holds_the_deck(client: AnkiClient, edited: set[int] = frozenset()) -> None:
    notes = imported_notes(client)
    assert len(notes) == NOTES
    for index in range(NOTES):
        assert notes[guid_of(index)] == note_fields(index, edited), index
    model = client.col.models.by_name("Web Vocab (import test)")
    assert model is not None
    assert [field["name"] for field in model["flds"]] == ["Word", "Meaning", "Example"]
    assert [t["name"] for t in model["tmpls"]] == ["Recognise", "Recall"]
    assert model["css"] == ".card { font-family: serif; }"
    deck = client.col.decks.by_name(DECK_NAME)
    assert deck is not None
    assert deck["desc"] == "pushed from the web"
    assert client.col.decks.by_name("Imported") is not None
    cards = client.col.db.scalar(
        "select count() from cards c join notes n on c.nid = n.id "
        "where n.guid like 'import-test-%' and c.did = ? and c.type = 0",
        deck["id"],
    )
    assert cards == 2 * NOTES
    tags = client.col.db.scalar("select tags from notes where guid = ?", guid_of(1)).split()
    assert sorted(tags) == ["batch1", "web"]


def assert_holds_the_media(client: AnkiClient) -> None:
    folder = Path(client.col.media.dir())
    for name, data in MEDIA.items():
        assert (folder / name).read_bytes() == data, name


# --- the tests -----------------------------------------------------------------------------------


def test_a_new_deck_reaches_a_client_that_is_already_syncing(backend, make_client, tmp_path):
    user, client = synced_device(backend, make_client)
    summary = push(backend, user.id, genanki_package(tmp_path))
    assert summary["notes"] == {"added": NOTES, "updated": 0, "skipped": 0}
    assert summary["cards"]["added"] == 2 * NOTES
    assert summary["notetypes"]["added"] == 1
    assert summary["decks"]["added"] == 2  # "Imported" and "Imported::Spanish Verbs"
    assert summary["media"]["added"] == len(MEDIA)
    assert summary["package"]["format"] == "legacy1"

    # A normal sync brings it: no full-sync prompt.
    assert client.sync() == NO_CHANGES
    assert_holds_the_deck(client)
    sync_media(client)
    assert_holds_the_media(client)
    assert client.sync() == NO_CHANGES
    # Anki's own Check Database finds nothing to repair in what arrived.
    problems, ok = client.col.fix_integrity()
    assert ok, problems
    assert problems.strip() == "Database rebuilt and optimized.", problems

    # Another device of the same user gets the same through a full download.
    other = make_client(backend.url, "B")
    other.first_download(user)
    assert_holds_the_deck(other)
    sync_media(other)
    assert_holds_the_media(other)


def test_a_user_who_never_synced_gets_the_deck_by_full_download(backend, make_client, tmp_path):
    user = backend.create_user()
    summary = push(backend, user.id, genanki_package(tmp_path))
    assert summary["notes"]["added"] == NOTES
    client = make_client(backend.url)
    client.first_download(user)
    assert_holds_the_deck(client)
    sync_media(client)
    assert_holds_the_media(client)
    assert client.sync() == NO_CHANGES


def test_importing_again_with_two_edits_updates_just_those(backend, make_client, tmp_path):
    user, client = synced_device(backend, make_client)
    first = genanki_package(tmp_path)
    push(backend, user.id, first)
    assert client.sync() == NO_CHANGES
    first_mod = sqlite_mod_of(first)
    time.sleep(1.1)  # note mtimes are whole seconds

    edited = {5, 17}
    summary = push(backend, user.id, genanki_package(tmp_path, edited=edited, old_mod=first_mod))
    assert summary["notes"] == {"added": 0, "updated": 2, "skipped": NOTES - 2}
    assert summary["cards"]["added"] == 0
    assert summary["notetypes"]["added"] == 0
    assert summary["decks"]["added"] == 0
    assert client.sync() == NO_CHANGES
    assert_holds_the_deck(client, edited)
    assert client.col.db.scalar("select count() from notes where guid like 'import-test-%'") == (
        NOTES
    )


def sqlite_mod_of(package: bytes) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.anki2"
        path.write_bytes(zipfile.ZipFile(io.BytesIO(package)).read("collection.anki2"))
        db = sqlite3.connect(path)
        try:
            return db.execute("select max(mod) from notes").fetchone()[0]
        finally:
            db.close()


def test_a_repeated_push_with_the_same_key_changes_nothing(backend, make_client, tmp_path):
    user, client = synced_device(backend, make_client)
    package = genanki_package(tmp_path)
    first = push(backend, user.id, package, key="push-42")
    assert first["replayed"] is False
    assert client.sync() == NO_CHANGES
    before = server_stats(backend, user.id)

    again = push(backend, user.id, package, key="push-42")
    assert again["replayed"] is True
    assert {**again, "replayed": False} == first
    assert server_stats(backend, user.id) == before
    assert client.sync() == NO_CHANGES
    assert len(imported_notes(client)) == NOTES

    # The same key for another package is a client error, and applies nothing.
    other = genanki_package(tmp_path, edited={1})
    status, message = push_refused(backend, user.id, other, key="push-42")
    assert status == 409, message
    assert server_stats(backend, user.id) == before


def test_a_package_exported_by_anki_itself_imports(backend, make_client, tmp_path):
    author = AnkiClient(tmp_path / "author", "http://unused.invalid/", name="author")
    try:
        deck_id = author.col.decks.id("Modern Export::Chapter 1")
        basic = author.col.models.by_name("Basic")
        picture = tiny_png(1, 2, 3, size=6)
        picture_name = author.col.media.write_data("modern-picture.png", picture)
        expected = {}
        for index in range(8):
            note = author.col.new_note(basic)
            note["Front"] = f"modern front {index}"
            note["Back"] = f'modern back {index}<img src="{picture_name}">' if index == 0 else "b"
            note.tags = ["exported"]
            author.col.add_note(note, deck_id)
            expected[note.guid] = [note["Front"], note["Back"]]
        out = tmp_path / "modern.apkg"
        author.col.export_anki_package(
            out_path=str(out),
            options=ExportAnkiPackageOptions(
                with_scheduling=False, with_deck_configs=False, with_media=True, legacy=False
            ),
            limit=DeckIdLimit(deck_id),
        )
    finally:
        author.close()
    package = out.read_bytes()
    assert "collection.anki21b" in zipfile.ZipFile(io.BytesIO(package)).namelist()

    user, client = synced_device(backend, make_client)
    summary = push(backend, user.id, package)
    assert summary["package"]["format"] == "latest"
    assert summary["notes"]["added"] == 8
    assert summary["media"]["added"] == 1
    assert client.sync() == NO_CHANGES
    for guid, fields in expected.items():
        stored = client.col.db.scalar("select flds from notes where guid = ?", guid)
        assert stored is not None
        assert stored.split("\x1f") == fields
    assert client.col.decks.by_name("Modern Export::Chapter 1") is not None
    sync_media(client)
    assert (Path(client.col.media.dir()) / picture_name).read_bytes() == picture


def test_an_undelivered_import_survives_a_full_upload_and_reaches_both(
    backend, make_client, tmp_path
):
    user, a = synced_device(backend, make_client, "A")
    b = make_client(backend.url, "B")
    b.first_download(user)

    push(backend, user.id, genanki_package(tmp_path))

    # B never saw the import, changes its schema and overwrites the server.
    basic = b.col.models.by_name("Basic")
    b.col.models.add_field(basic, b.col.models.new_field("Hint"))
    b.col.models.update_dict(basic)
    assert b.sync() == FULL_SYNC
    b.full_upload()
    # The import is merged again after the upload, so B's next sync brings it.
    assert b.sync() == NO_CHANGES
    assert_holds_the_deck(b)
    sync_media(b)
    assert_holds_the_media(b)

    # A must take B's schema change by full download, and then has the import too.
    assert a.sync() == FULL_SYNC
    a.full_download()
    assert_holds_the_deck(a)
    assert [f["name"] for f in a.col.models.by_name("Basic")["flds"]] == ["Front", "Back", "Hint"]
    sync_media(a)
    assert_holds_the_media(a)
    assert a.sync() == NO_CHANGES
    assert b.sync() == NO_CHANGES


def test_the_import_api_needs_the_token_and_is_not_public(backend, make_client, tmp_path):
    user, client = synced_device(backend, make_client)
    package = genanki_package(tmp_path)
    path = f"/internal/v1/users/{user.id}/imports"
    status, _ = internal_call(backend.sidecar.internal_url + path, token=None, body=package)
    assert status == 403
    status, _ = internal_call(
        backend.sidecar.internal_url + path, token="wrong-token", body=package
    )
    assert status == 403
    status, _ = internal_call(
        backend.sidecar.root_url + path, token=backend.sidecar.internal_token, body=package
    )
    assert status == 404
    assert client.sync() == NO_CHANGES
    assert imported_notes(client) == {}


def bad_packages(tmp: Path) -> dict[str, bytes]:
    good = genanki_package(tmp)
    members = {
        info.filename: zipfile.ZipFile(io.BytesIO(good)).read(info)
        for info in zipfile.ZipFile(io.BytesIO(good)).infolist()
    }
    without_collection = {k: v for k, v in members.items() if k != "collection.anki2"}
    hostile_media = dict(members, media=json.dumps({"0": "../evil.png"}).encode())
    return {
        "not a zip": os.urandom(3000),
        "no collection": zip_of(without_collection),
        "collection not SQLite": zip_of(dict(members, **{"collection.anki2": b"hello" * 100})),
        "schema 99": rewrite_collection(good, lambda db: db.execute("update col set ver = 99")),
        "media name with ../": zip_of(hostile_media),
        "broken zstd": zip_of(
            {
                "meta": b"\x08\x03",
                "collection.anki21b": b"\x28\xb5\x2f\xfd" + os.urandom(500),
                "collection.anki2": members["collection.anki2"],
                "media": b"",
            }
        ),
    }


def test_bad_packages_are_refused_and_change_nothing(backend, make_client, tmp_path):
    user, client = synced_device(backend, make_client)
    before = server_stats(backend, user.id)
    media_before = sorted(os.listdir(client.col.media.dir()))
    for kind, package in bad_packages(tmp_path).items():
        status, message = push_refused(backend, user.id, package)
        assert status == 400, (kind, status, message)
        assert "bad package" in message, (kind, message)
        assert server_stats(backend, user.id) == before, kind
    assert client.sync() == NO_CHANGES
    sync_media(client)
    assert sorted(os.listdir(client.col.media.dir())) == media_before
    assert not any(name.endswith("evil.png") for name in media_before)


def test_the_command_line_client_imports_by_username(backend, make_client, tmp_path):
    user, client = synced_device(backend, make_client)
    package = tmp_path / "cli-deck.apkg"
    package.write_bytes(genanki_package(tmp_path))
    sidecar = backend.sidecar
    command = [
        str(sidecar_binary()),
        "import",
        "--user",
        user.username,
        "--url",
        sidecar.internal_url,
        "--idempotency-key",
        "cli-1",
        str(package),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    result = subprocess.run(
        command,
        env={**env, "SIDECAR_INTERNAL_TOKEN": sidecar.internal_token},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["notes"]["added"] == NOTES
    assert client.sync() == NO_CHANGES
    assert len(imported_notes(client)) == NOTES

    refused = subprocess.run(
        command,
        env={**env, "SIDECAR_INTERNAL_TOKEN": "not-the-token"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "token" in refused.stderr
