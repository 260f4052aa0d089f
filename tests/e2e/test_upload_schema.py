"""Issue 11, defect 8: a full upload carrying a trigger and a view. The server keeps only the
schema Anki creates, so neither fires on its writes nor reaches the user's other devices.

The upload is made by the real client from its own collection, into which the trigger and the
view were written with SQL; before the fix, the second device received the trigger and adding
one note there deleted every other card.
"""

from __future__ import annotations

import sqlite3

import pytest

from support.client import NO_CHANGES
from support.collection_data import fill_like_a_real_user

pytestmark = pytest.mark.timeout(600)

PLANTED = [
    "CREATE TRIGGER planted_wipe AFTER INSERT ON notes "
    "BEGIN DELETE FROM cards WHERE nid != new.id; END",
    "CREATE VIEW planted_view AS SELECT id, nid FROM cards",
]


def schema_extras(db) -> list[str]:
    rows = db.execute(
        "select type || ' ' || name from sqlite_master where type in ('trigger', 'view')"
    )
    return sorted(row[0] for row in rows)


def test_uploaded_triggers_and_views_are_dropped(backend, make_client):
    user = backend.create_user()
    a = make_client(backend.url, "A")
    fill_like_a_real_user(a.col, notes=30, reviews=5)
    for statement in PLANTED:
        a.col.db.execute(statement)
    assert len(a.col.db.all("select name from sqlite_master where type = 'trigger'")) == 1
    cards = a.col.card_count()
    a.first_upload(user)

    stored = backend.sidecar.data_dir / "users" / str(user.id) / "collection.anki2"
    with sqlite3.connect(stored) as db:
        assert schema_extras(db) == []
    assert "dropped objects Anki does not create" in backend.sidecar.log()

    b = make_client(backend.url, "B")
    b.first_download(user)
    assert schema_extras(_Db(b.col)) == []
    assert b.col.card_count() == cards
    basic = b.col.models.by_name("Basic")
    note = b.col.new_note(basic)
    note["Front"], note["Back"] = "added on B", "after the download"
    b.col.add_note(note, 1)
    assert b.col.card_count() == cards + 1, "a planted trigger deleted cards on B"
    b.sync()
    assert b.sync() == NO_CHANGES

    c = make_client(backend.url, "C")
    c.first_download(user)
    assert c.col.card_count() == cards + 1


class _Db:
    """`execute` over the client's own database handle, for `schema_extras`."""

    def __init__(self, col):
        self.col = col

    def execute(self, sql: str):
        return self.col.db.all(sql)
