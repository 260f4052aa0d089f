"""The client-version matrix (issue 12): every listed Anki version, each from its pinned wheel in
its own venv and each device in its own process, runs the core stories against the real
sidecar on SQLite and on PostgreSQL.

2.1.50, 2.1.54 and 2.1.56 speak the legacy protocol (multipart, sync v10); the others v11.
The version differences are all in `support/anki_adapter.py`. One sidecar serves the whole
module per backend; each test has its own users.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.client_matrix import CLIENT_VERSIONS, ClientError, RemoteClient
from support.sidecar import Sidecar

pytestmark = pytest.mark.timeout(900)

FULL = {"FULL_SYNC", "FULL_UPLOAD", "FULL_DOWNLOAD"}


@pytest.fixture(scope="module")
def sidecar(django_database, tmp_path_factory) -> Iterator[Sidecar]:
    work = tmp_path_factory.mktemp(f"matrix-{django_database.kind}")
    sidecar = Sidecar(django_database.url, work, name="matrix-sidecar").start()
    try:
        yield sidecar
    finally:
        sidecar.stop()


@pytest.fixture
def devices(tmp_path: Path, sidecar: Sidecar):
    """`make(version, name)` starts a device process; all are closed at teardown."""
    started: list[RemoteClient] = []

    def make(version: str, name: str) -> RemoteClient:
        client = RemoteClient(version, tmp_path / name, sidecar.url, name=name)
        started.append(client)
        return client

    yield make
    for client in started:
        client.close()


def media_payload(tag: str) -> dict[str, bytes]:
    return {
        f"{tag}-picture.png": b"\x89PNG\r\n\x1a\n" + os.urandom(3000),
        f"{tag} sound ü.mp3": b"ID3\x03" + os.urandom(40_000),
        f"{tag}-note.txt": f"media of {tag}\n".encode(),
    }


def encoded(files: dict[str, bytes]) -> dict[str, str]:
    return {name: base64.b64encode(data).decode() for name, data in files.items()}


def sha1s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha1(data).hexdigest() for name, data in files.items()}


def assert_same_content(a: RemoteClient, b: RemoteClient) -> dict:
    left, right = a.content(), b.content()
    for section in left:
        assert left[section] == right[section], f"{a.name} and {b.name} differ in {section}"
    return left


def two_devices(
    django_database, devices, version_a: str, version_b: str, names: tuple[str, str] = ("A", "B")
):
    """A holds a small collection with reviews and uploads it; B downloads it."""
    user = django_database.create_user()
    a = devices(version_a, names[0])
    b = devices(version_b, names[1])
    a.add_notes(prefix="first", count=12, tags=["start"])
    assert a.review(count=4) == 4
    a.login(username=user.username, password=user.password)
    b.login(username=user.username, password=user.password)
    assert a.sync() == "FULL_UPLOAD"
    a.full_upload()
    assert b.sync() in {"FULL_DOWNLOAD", "FULL_SYNC"}
    b.full_download()
    assert a.sync() == "NO_CHANGES"
    assert b.sync() == "NO_CHANGES"
    content = assert_same_content(a, b)
    assert len(content["notes"]) == 12
    assert len(content["revlog"]) == 4
    return user, a, b


def normal_sync_both_ways(a: RemoteClient, b: RemoteClient) -> None:
    """Edits, deletions, reviews and additions on each side reach the other."""
    notes = [row[0] for row in a.query(sql="select id from notes order by id")]
    a.edit_note(note_id=notes[0], front="edited on A")
    a.remove_notes(note_ids=notes[1:3])
    a.add_notes(prefix="added on A", count=3, tags=["from-a"])
    assert a.review(count=2) == 2
    assert a.sync() == "NO_CHANGES"
    assert b.sync() == "NO_CHANGES"
    content = assert_same_content(a, b)
    assert len(content["notes"]) == 13
    assert "from-a" in content["tags"]

    notes = [row[0] for row in b.query(sql="select id from notes order by id")]
    b.edit_note(note_id=notes[-1], front="edited on B")
    b.remove_notes(note_ids=notes[3:4])
    b.add_notes(prefix="added on B", count=2, tags=["from-b"])
    assert b.review(count=3) == 3
    assert b.sync() == "NO_CHANGES"
    assert a.sync() == "NO_CHANGES"
    content = assert_same_content(a, b)
    assert len(content["notes"]) == 14
    assert len(content["revlog"]) == 9
    fronts = " ".join(note[3] for note in content["notes"])
    assert "edited on A" in fronts
    assert "edited on B" in fronts


def schema_change_forces_full_sync(changer: RemoteClient, other: RemoteClient) -> None:
    """A new field changes the schema: the changer must full-sync, then so must the other."""
    field = f"Extra from {changer.name.split()[0]}"
    changer.add_field(notetype="Basic", field=field)
    assert changer.sync() in FULL
    changer.full_upload()
    assert changer.sync() == "NO_CHANGES"
    assert other.sync() in FULL
    other.full_download()
    assert field in other.field_names(notetype="Basic")
    assert other.sync() == "NO_CHANGES"
    assert_same_content(changer, other)


def media_both_ways(a: RemoteClient, b: RemoteClient) -> None:
    from_a = media_payload("from A")
    a.write_media(files=encoded(from_a))
    a.sync_media()
    b.sync_media()
    assert b.media_files() == sha1s(from_a)

    from_b = media_payload("from B")
    b.write_media(files=encoded(from_b))
    gone = sorted(from_a)[0]
    b.delete_media(names=[gone])
    b.sync_media()
    a.sync_media()
    expected = {**sha1s(from_a), **sha1s(from_b)}
    del expected[gone]
    assert a.media_files() == expected
    assert b.media_files() == expected


# --- a package pushed through the internal API -----------------------------------------------


def import_package(tmp_path: Path) -> tuple[bytes, dict[str, bytes]]:
    import genanki

    model = genanki.Model(
        1_607_392_319,
        "Matrix import",
        fields=[{"name": "Word"}, {"name": "Meaning"}],
        templates=[{"name": "Card 1", "qfmt": "{{Word}}", "afmt": "{{Meaning}}"}],
    )
    deck = genanki.Deck(2_059_400_777, "Pushed from the web")
    media = {"pushed-sun.png": b"\x89PNG\r\n\x1a\n" + os.urandom(2000)}
    for index in range(6):
        meaning = f"meaning {index}" + ('<img src="pushed-sun.png">' if index == 0 else "")
        deck.add_note(
            genanki.Note(model=model, fields=[f"pushed {index}", meaning], guid=f"mx-{index}")
        )
    media_dir = tmp_path / "push-media"
    media_dir.mkdir()
    for name, data in media.items():
        (media_dir / name).write_bytes(data)
    path = tmp_path / "push.apkg"
    genanki.Package(deck, media_files=[str(media_dir / n) for n in media]).write_to_file(str(path))
    return path.read_bytes(), media


def push_import(sidecar: Sidecar, user_id: int, package: bytes) -> dict:
    request = urllib.request.Request(
        f"{sidecar.internal_url}/internal/v1/users/{user_id}/imports",
        data=package,
        method="POST",
        headers={"Authorization": f"Bearer {sidecar.internal_token}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        return json.loads(response.read())


# --- the stories, for every version -------------------------------------------------------------


@pytest.mark.parametrize("version", CLIENT_VERSIONS)
def test_login_right_and_wrong_password(version, django_database, devices):
    user = django_database.create_user()
    device = devices(version, "A")
    with pytest.raises(ClientError) as refused:
        device.login(username=user.username, password=user.password + "-wrong")
    assert refused.value.auth, refused.value
    assert "Check Database" not in refused.value.message
    assert device.login(username=user.username, password=user.password)
    assert device.sync() == "NO_CHANGES"


@pytest.mark.parametrize("version", CLIENT_VERSIONS)
def test_full_normal_and_schema_sync(version, django_database, devices):
    _, a, b = two_devices(django_database, devices, version, version)
    normal_sync_both_ways(a, b)
    schema_change_forces_full_sync(a, b)
    schema_change_forces_full_sync(b, a)


@pytest.mark.parametrize("version", CLIENT_VERSIONS)
def test_media_and_server_import(version, sidecar, django_database, devices, tmp_path):
    user, a, b = two_devices(django_database, devices, version, version)
    media_both_ways(a, b)

    package, media = import_package(tmp_path)
    summary = push_import(sidecar, user.id, package)
    assert summary["notes"]["added"] == 6, summary
    for device in (a, b):
        assert device.sync() == "NO_CHANGES"
        device.sync_media()
        pushed = device.query(sql="select flds from notes where flds like 'pushed %'")
        assert len(pushed) == 6
        files = device.media_files()
        assert files["pushed-sun.png"] == hashlib.sha1(media["pushed-sun.png"]).hexdigest()
    assert_same_content(a, b)


# --- old and new clients on one account --------------------------------------------------------


def test_mixed_versions_share_one_account(sidecar, django_database, devices):
    """A 2.1.50 desktop (legacy protocol) and a 26.9.3 device (v11) of one user."""
    _, old, new = two_devices(django_database, devices, "2.1.50", "26.9.3")
    normal_sync_both_ways(old, new)
    media_both_ways(old, new)
    schema_change_forces_full_sync(old, new)
    schema_change_forces_full_sync(new, old)
    # And the first full upload may come from the new client too.
    _, new2, old2 = two_devices(django_database, devices, "26.9.3", "2.1.50", ("C", "D"))
    normal_sync_both_ways(new2, old2)
