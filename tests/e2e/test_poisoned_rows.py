"""Rows that don't fit the client's types can't be planted on a user's other devices.

Issue 11, defect 6: a card with `ord` 70000, `due` 2^40 and `flags` 300 sent through
`applyChunk` used to be committed, and every other device of the user then failed every sync.
Here device A syncs normally, a hostile raw-protocol client logged in as the same user tries
to plant bad rows and objects and is refused with 400 each time, and device B then syncs
normally and ends up with exactly A's data.
"""

from __future__ import annotations

import pytest

from support import protocol
from support.client import NO_CHANGES, upload_then_download
from support.collection_data import dump_collection, fill_like_a_real_user

pytestmark = pytest.mark.timeout(600)

SESSION = "hostile"


def comparable(col) -> dict:
    """The data both devices must share: graves are each device's own log, and a new tag's
    usn differs by one round between the sender and the receiver."""
    dump = dump_collection(col)
    dump.pop("graves")
    usn = dump["tags"]["columns"].index("usn")
    dump["tags"]["rows"] = [row[:usn] + row[usn + 1 :] for row in dump["tags"]["rows"]]
    return dump


def hostile_call(url: str, hkey: str, method: str, payload: dict | None = None):
    return protocol.call(url, f"sync/{method}", payload, hkey=hkey, session=SESSION)


def open_hostile_sync(url: str, hkey: str) -> None:
    assert protocol.meta(url, hkey).status == 200
    start = hostile_call(url, hkey, "start", {"minUsn": 0, "lnewer": True, "graves": None})
    assert start.status == 200, start
    changes = hostile_call(
        url,
        hkey,
        "applyChanges",
        {"changes": {"models": [], "decks": [[], []], "tags": ["planted-tag"]}},
    )
    assert changes.status == 200, changes
    assert hostile_call(url, hkey, "chunk").status == 200


def test_bad_rows_are_refused_and_other_devices_keep_syncing(backend, make_client):
    user = backend.create_user()
    a = make_client(backend.url, "A")
    b = make_client(backend.url, "B")
    fill_like_a_real_user(a.col, notes=20, reviews=6)
    upload_then_download(a, b, user)

    # Device A adds a note and syncs normally.
    basic = a.col.models.by_name("Basic")
    note = a.col.new_note(basic)
    note["Front"] = "added on A"
    note["Back"] = "after the upload"
    a.col.add_note(note, a.col.decks.id("Default"))
    assert a.sync() == NO_CHANGES

    card_id = a.col.find_cards(f"nid:{note.id}")[0]
    card = a.col.get_card(card_id)
    good_card = [
        card.id,
        card.nid,
        card.did,
        card.ord,
        card.mod,
        -1,
        card.type,
        card.queue,
        card.due,
        card.ivl,
        card.factor,
        card.reps,
        card.lapses,
        card.left,
        card.odue,
        card.odid,
        card.flags,
        "",
    ]
    poisoned = list(good_card)
    poisoned[3], poisoned[8], poisoned[16] = 70000, 2**40, 300
    planted_new = list(poisoned)
    planted_new[0] = card.id + 12345
    id_true = list(good_card)
    id_true[0] = True
    twelve_columns = [
        note.id + 777,
        "planted-guid",
        basic["id"],
        note.mod + 100,
        -1,
        "",
        "x\x1fy",
        "",
        "",
        0,
        "",
        "extra",
    ]
    bad_notetype = dict(basic)
    bad_notetype["sortf"] = 70000
    bad_notetype["mod"] = basic["mod"] + 1000

    hkey = protocol.login(backend.url, user.username, user.password)
    before = protocol.meta(backend.url, hkey).json()
    attempts = [
        ("applyChunk", {"chunk": {"done": True, "cards": [poisoned]}}),
        ("applyChunk", {"chunk": {"done": True, "cards": [planted_new]}}),
        ("applyChunk", {"chunk": {"done": True, "cards": [id_true]}}),
        ("applyChunk", {"chunk": {"done": True, "notes": [twelve_columns]}}),
        ("applyGraves", {"chunk": {"cards": [True], "notes": [], "decks": []}}),
        (
            "applyChanges",
            {"changes": {"models": [bad_notetype], "decks": [[], []], "tags": []}},
        ),
    ]
    for method, payload in attempts:
        if method == "applyChanges":
            # applyChanges comes once per sync, before the chunks.
            assert protocol.meta(backend.url, hkey).status == 200
            start = hostile_call(
                backend.url, hkey, "start", {"minUsn": 0, "lnewer": True, "graves": None}
            )
            assert start.status == 200, start
        else:
            open_hostile_sync(backend.url, hkey)
        refused = hostile_call(backend.url, hkey, method, payload)
        assert refused.status == 400, (method, refused)
        # The refusal rolled the whole sync back: nothing left to finish.
        assert hostile_call(backend.url, hkey, "finish").status == 409
        after = protocol.meta(backend.url, hkey).json()
        assert (after["mod"], after["usn"]) == (before["mod"], before["usn"]), method

    # Device B syncs normally and sees exactly A's data, nothing planted.
    assert b.sync() == NO_CHANGES
    assert b.col.get_card(card_id).ord == card.ord
    assert "planted-tag" not in b.col.tags.all()
    assert not b.col.find_cards(f"cid:{card.id + 12345}")
    assert comparable(a.col) == comparable(b.col)
    assert a.sync() == NO_CHANGES
    assert b.sync() == NO_CHANGES
    assert comparable(a.col) == comparable(b.col)
