"""Normal (incremental) sync with two real clients through the sidecar (issue #3).

Each test first gives both devices the same collection (A uploads, B downloads), then changes
one or both and lets them sync normally. After every exchange the two collections are compared
in full: rows of notes, cards and revlog, and notetypes, decks, deck configs, config and tags.
"""

from __future__ import annotations

import time

import pytest

from support.client import (
    FULL_SYNC,
    NO_CHANGES,
    AnkiClient,
    upload_then_download,
)
from support.collection_data import fill_like_a_real_user, synced_collection

pytestmark = pytest.mark.timeout(600)


def assert_in_sync(a: AnkiClient, b: AnkiClient) -> None:
    left, right = synced_collection(a.col), synced_collection(b.col)
    for section in left:
        assert left[section] == right[section], f"{a.name} and {b.name} differ in {section}"


def two_devices(backend, make_client, notes: int = 60) -> tuple[AnkiClient, AnkiClient]:
    user = backend.create_user()
    a = make_client(backend.url, "A")
    b = make_client(backend.url, "B")
    fill_like_a_real_user(a.col, notes=notes, reviews=12)
    upload_then_download(a, b, user)
    assert a.sync() == NO_CHANGES
    assert b.sync() == NO_CHANGES
    assert_in_sync(a, b)
    return a, b


def sync_both_twice(a: AnkiClient, b: AnkiClient) -> None:
    for _ in range(2):
        assert a.sync() == NO_CHANGES
        assert b.sync() == NO_CHANGES


def later_second() -> None:
    """Note and card mtimes are whole seconds; "newer wins" needs a visible difference."""
    time.sleep(1.1)


def test_changes_flow_both_ways(backend, make_client):
    a, b = two_devices(backend, make_client)

    basic = a.col.models.by_name("Basic")
    added = []
    for index in range(5):
        note = a.col.new_note(basic)
        note["Front"] = f"new on A {index}"
        note["Back"] = "<b>bold</b> answer"
        note.tags = ["added-on-a"]
        a.col.add_note(note, a.col.decks.id("History"))
        added.append(note.id)
    edited = a.col.find_notes("tag:history")[:3]
    for note_id in edited:
        note = a.col.get_note(note_id)
        note.fields[0] = note.fields[0] + " (edited on A)"
        a.col.update_note(note)
    deleted = a.col.find_notes("tag:geo")[:2]
    a.col.remove_notes(deleted)

    assert a.sync() == NO_CHANGES
    assert b.sync() == NO_CHANGES
    assert_in_sync(a, b)
    assert b.col.get_note(added[0])["Front"] == "new on A 0"
    assert b.col.get_note(edited[0]).fields[0].endswith("(edited on A)")
    for note_id in deleted:
        assert not b.col.find_notes(f"nid:{note_id}")
        assert not b.col.find_cards(f"nid:{note_id}")

    # B reviews, adds a deck and changes a deck option; A receives all of it.
    b.col.decks.select(b.col.decks.id("History"))
    reviewed = 0
    for _ in range(4):
        card = b.col.sched.getCard()
        if card is None:
            break
        card.start_timer()
        b.col.sched.answerCard(card, 3)
        reviewed += 1
    assert reviewed > 0
    new_deck = b.col.decks.id("Added on B::Child")
    options = b.col.decks.get_config(1)
    options["new"]["perDay"] = 7
    options["rev"]["perDay"] = 70
    b.col.decks.update_config(options)
    revlog_before = a.col.db.scalar("select count() from revlog")

    assert b.sync() == NO_CHANGES
    assert a.sync() == NO_CHANGES
    assert_in_sync(a, b)
    assert a.col.decks.get(new_deck)["name"] == "Added on B::Child"
    assert a.col.decks.get_config(1)["new"]["perDay"] == 7
    assert a.col.db.scalar("select count() from revlog") == revlog_before + reviewed
    sync_both_twice(a, b)
    assert_in_sync(a, b)


@pytest.mark.parametrize("later", ["A", "B"])
def test_the_later_edit_wins_on_both(backend, make_client, later):
    a, b = two_devices(backend, make_client)
    note_id = a.col.find_notes("tag:history")[0]
    first, second = (b, a) if later == "A" else (a, b)
    for device in (first, second):
        note = device.col.get_note(note_id)
        note["Back"] = f"edited on {device.name}"
        device.col.update_note(note)
        later_second()
    sync_both_twice(a, b)
    assert a.col.get_note(note_id)["Back"] == f"edited on {later}"
    assert b.col.get_note(note_id)["Back"] == f"edited on {later}"
    assert_in_sync(a, b)


def test_a_card_answered_on_both_keeps_both_reviews(backend, make_client):
    a, b = two_devices(backend, make_client)
    history = a.col.decks.id("History")
    card_ids = a.col.find_cards(f"did:{history} is:new")
    target = card_ids[0]
    revlog_ids = []
    for device in (a, b):
        card = device.col.get_card(target)
        card.start_timer()
        device.col.sched.answerCard(card, 3)
        revlog_ids.append(device.col.db.scalar("select max(id) from revlog where cid = ?", target))
        later_second()
    sync_both_twice(a, b)
    for device in (a, b):
        ids = device.col.db.list("select id from revlog where cid = ? order by id", target)
        assert ids == sorted(revlog_ids)
    assert_in_sync(a, b)


@pytest.mark.parametrize("deleter", ["A", "B"])
def test_a_deletion_beats_a_concurrent_edit(backend, make_client, deleter):
    a, b = two_devices(backend, make_client)
    note_id = a.col.find_notes("tag:history")[1]
    deleting, editing = (a, b) if deleter == "A" else (b, a)
    deleting.col.remove_notes([note_id])
    note = editing.col.get_note(note_id)
    note["Back"] = "edited after the other device deleted it"
    editing.col.update_note(note)
    # The deleting device syncs first in one case and last in the other.
    order = (a, b) if deleter == "A" else (b, a)
    for device in order + order:
        assert device.sync() == NO_CHANGES
    for device in (a, b):
        assert not device.col.find_notes(f"nid:{note_id}")
        assert not device.col.find_cards(f"nid:{note_id}")
    assert_in_sync(a, b)


def test_a_schema_change_needs_a_full_sync(backend, make_client):
    a, b = two_devices(backend, make_client)
    notetype = a.col.models.by_name("Basic")
    a.col.models.add_field(notetype, a.col.models.new_field("Extra"))
    a.col.models.update_dict(notetype)
    assert a.sync() == FULL_SYNC
    a.full_upload()
    assert a.sync() == NO_CHANGES
    assert b.sync() == FULL_SYNC
    b.full_download()
    assert b.sync() == NO_CHANGES
    fields = [field["name"] for field in b.col.models.by_name("Basic")["flds"]]
    assert fields == ["Front", "Back", "Extra"]
    assert_in_sync(a, b)


def test_an_edited_notetype_syncs_normally_when_its_shape_is_unchanged(backend, make_client):
    a, b = two_devices(backend, make_client)
    notetype = a.col.models.by_name("Basic")
    notetype["css"] += "\n.card { color: darkred; }\n"
    notetype["tmpls"][0]["afmt"] += "<div>edited</div>"
    a.col.models.update_dict(notetype)
    assert a.sync() == NO_CHANGES
    assert b.sync() == NO_CHANGES
    assert "darkred" in b.col.models.by_name("Basic")["css"]
    assert_in_sync(a, b)


def test_twenty_rounds_of_reviews(backend, make_client):
    a, b = two_devices(backend, make_client, notes=150)
    a.col.decks.select(a.col.decks.id("Languages::Spanish"))
    for round_index in range(20):
        answered = 0
        for _ in range(5):
            card = a.col.sched.getCard()
            if card is None:
                break
            card.start_timer()
            a.col.sched.answerCard(card, (3, 4, 2)[round_index % 3])
            answered += 1
        assert answered > 0, f"round {round_index}: nothing left to review"
        assert a.sync() == NO_CHANGES
        assert b.sync() == NO_CHANGES
        for table in ("notes", "cards", "revlog"):
            count = "select count() from " + table
            assert a.col.db.scalar(count) == b.col.db.scalar(count), f"round {round_index}"
        assert_in_sync(a, b)


@pytest.mark.timeout(1500)
def test_twenty_thousand_notes_then_three_thousand_changes(backend, make_client):
    user = backend.create_user()
    a = make_client(backend.url, "A")
    b = make_client(backend.url, "B")
    basic = a.col.models.by_name("Basic")
    deck = a.col.decks.id("Big")
    requests = []
    for index in range(20_000):
        note = a.col.new_note(basic)
        note["Front"] = f"question {index}"
        note["Back"] = f"answer {index} " + "lorem ipsum " * 4
        note.tags = [f"group{index % 20}"]
        requests.append((note, deck))
    from anki.collection import AddNoteRequest

    a.col.add_notes([AddNoteRequest(note=note, deck_id=deck_id) for note, deck_id in requests])
    assert a.col.note_count() == 20_000
    upload_then_download(a, b, user)

    changed = a.col.find_notes("tag:group0 or tag:group1 or tag:group2")
    assert len(changed) == 3_000
    notes = []
    for note_id in changed:
        note = a.col.get_note(note_id)
        note["Back"] = "changed " + note["Back"]
        notes.append(note)
    a.col.update_notes(notes)
    assert a.sync() == NO_CHANGES
    assert b.sync() == NO_CHANGES
    received = b.col.db.scalar("select count() from notes where flds like '%changed answer%'")
    assert received == 3_000
    assert_in_sync(a, b)
