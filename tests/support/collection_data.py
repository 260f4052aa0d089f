"""Filling a client collection like a real user, and dumping one in full for comparison."""

from __future__ import annotations

from typing import Any

from anki.collection import Collection

CUSTOM_NOTETYPE = "Vocabulary (3 fields, 2 cards)"
CUSTOM_CSS = ".card { font-family: serif; font-size: 24px; }\n.example { color: #555; }\n"


def add_custom_notetype(col: Collection) -> dict:
    models = col.models
    notetype = models.new(CUSTOM_NOTETYPE)
    for name in ("Word", "Meaning", "Example"):
        models.add_field(notetype, models.new_field(name))
    recognise = models.new_template("Recognition")
    recognise["qfmt"] = "{{Word}}"
    recognise["afmt"] = (
        '{{FrontSide}}<hr id=answer>{{Meaning}}<div class="example">{{Example}}</div>'
    )
    produce = models.new_template("Production")
    produce["qfmt"] = "{{Meaning}}"
    produce["afmt"] = "{{FrontSide}}<hr id=answer>{{Word}}"
    models.add_template(notetype, recognise)
    models.add_template(notetype, produce)
    notetype["css"] = CUSTOM_CSS
    models.add(notetype)
    return models.by_name(CUSTOM_NOTETYPE)


def fill_like_a_real_user(col: Collection, notes: int = 300, reviews: int = 80) -> None:
    """Several decks (one nested), Basic, Cloze and a custom notetype, tagged notes, reviews,
    a changed default option group and a second option group, a flag and a suspended card."""
    languages = col.decks.id("Languages")
    spanish = col.decks.id("Languages::Spanish")
    geography = col.decks.id("Geography")
    history = col.decks.id("History")

    default_conf = col.decks.get_config(1)
    default_conf["new"]["perDay"] = 33
    default_conf["rev"]["perDay"] = 444
    col.decks.update_config(default_conf)
    intensive_id = col.decks.add_config_returning_id("Intensive")
    intensive = col.decks.get_config(intensive_id)
    intensive["new"]["perDay"] = 100
    intensive["new"]["delays"] = [1.0, 5.0, 20.0]
    intensive["lapse"]["leechAction"] = 1
    col.decks.update_config(intensive)
    spanish_deck = col.decks.get(spanish)
    col.decks.set_config_id_for_deck_dict(spanish_deck, intensive_id)
    col.decks.save(spanish_deck)
    geography_deck = col.decks.get(geography)
    geography_deck["desc"] = "Capitals, <b>rivers</b> and mountains"
    col.decks.save(geography_deck)

    basic = col.models.by_name("Basic")
    cloze = col.models.by_name("Cloze")
    vocabulary = add_custom_notetype(col)

    for index in range(notes):
        kind = index % 3
        if kind == 0:
            note = col.new_note(vocabulary)
            note["Word"] = f"palabra {index}"
            # Typographic punctuation, written as escapes so the source stays unambiguous.
            note["Meaning"] = f"word {index} \u2013 \u201cquoted\u201d & <i>styled</i>"
            note["Example"] = f"Ésta es la frase número {index}."
            note.tags = ["lang::es", f"batch{index % 7}"]
            deck = spanish
        elif kind == 1:
            note = col.new_note(cloze)
            note["Text"] = f"{{{{c1::Capital {index}}}}} lies on {{{{c2::river {index}}}}}"
            note["Back Extra"] = "日本語 and emoji 🦉"
            note.tags = ["geo", f"batch{index % 7}"]
            deck = geography
        else:
            note = col.new_note(basic)
            note["Front"] = f"In which year did event {index} happen?"
            note["Back"] = str(1000 + index)
            note.tags = ["history", "marked"] if index % 10 == 2 else ["history"]
            deck = history if index % 2 else languages
        col.add_note(note, deck)

    eases = (3, 1, 4, 2)
    answered = 0
    for deck_id in (spanish, geography, history):
        col.decks.select(deck_id)
        for _ in range(reviews // 3):
            card = col.sched.getCard()
            if card is None:
                break
            card.start_timer()
            col.sched.answerCard(card, eases[answered % len(eases)])
            answered += 1
    if answered == 0:
        raise AssertionError("no card could be reviewed, so the collection has no revlog")

    card_ids = col.find_cards("")
    col.set_user_flag_for_cards(3, card_ids[:5])
    col.sched.suspend_cards(card_ids[5:7])


def _rows(col: Collection, table: str, order: str = "id") -> dict[str, Any]:
    columns = [row[1] for row in col.db.all(f"pragma table_info({table})")]
    return {"columns": columns, "rows": col.db.all(f"select * from {table} order by {order}")}


def dump_collection(col: Collection) -> dict[str, Any]:
    """Everything a full sync must carry, in a form that compares with `==`.

    Nothing inside these sections is excluded or normalised, `usn` and `mod` included: the
    client zeroes its pending usns before it uploads (docs/sync-protocol.md#full-upload), so after a
    full upload and a full download both devices hold identical rows and objects (observed).
    Of the `col` row only `crt`, `scm` and `ver` are compared: a download bumps the server's
    `usn` and `mod` before it serves the file, and the client then sets `ls = mod`
    (docs/sync-protocol.md#full-download), so those three columns legitimately differ between the
    uploader and the downloader.
    """
    # pylib caches notetypes and nothing invalidates that cache when a sync changes them in
    # the backend; read them fresh.
    col.models._clear_cache()
    crt, scm, ver = col.db.first("select crt, scm, ver from col")
    return {
        "col": {"crt": crt, "scm": scm, "ver": ver},
        "notes": _rows(col, "notes"),
        "cards": _rows(col, "cards"),
        "revlog": _rows(col, "revlog"),
        "graves": _rows(col, "graves", order="oid, type"),
        "notetypes": sorted(col.models.all(), key=lambda notetype: notetype["id"]),
        "decks": sorted(col.decks.all(), key=lambda deck: deck["id"]),
        "deck_configs": sorted(col.decks.all_config(), key=lambda conf: conf["id"]),
        "config": col.all_config(),
        "tag_names": sorted(col.tags.all()),
        "tags": _rows(col, "tags", order="tag"),
    }


def assert_same_collection(left: Collection, right: Collection) -> None:
    """Compares two collections section by section, naming the first difference."""
    a, b = dump_collection(left), dump_collection(right)
    if not a["notes"]["rows"] or not a["cards"]["rows"]:
        raise AssertionError("compared two empty collections")
    for section in a:
        if a[section] != b[section]:
            raise AssertionError(
                f"collections differ in {section}:\n{_first_difference(a[section], b[section])}"
            )


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{where}.{key}: only in {'right' if key not in a else 'left'}"
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], f"{where}.{key}")
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items on the left, {len(b)} on the right"
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{index}]")
    return f"{where}: left {a!r}\n{' ' * len(where)}  right {b!r}"


def synced_collection(col) -> dict:
    """What a normal sync must make equal on both devices.

    Graves are left out: they are the sending device's own deletion log. The receiver deletes
    the objects without writing graves of its own (and after a full sync the client clears its
    graves), so the table legitimately differs while the data does not.

    A tag row's usn is also left out: the sender stamps a new tag with the usn its own `meta`
    reported, and the receiver registers it with the usn of *its* `meta`, one round later
    (docs/sync-protocol.md#changes), so the two devices hold the same tag with usns one apart.
    """
    dump = dump_collection(col)
    dump.pop("graves")
    columns = dump["tags"]["columns"]
    usn = columns.index("usn")
    dump["tags"]["rows"] = [row[:usn] + row[usn + 1 :] for row in dump["tags"]["rows"]]
    return dump


def assert_in_sync(left: Collection, right: Collection, names: str = "the two devices") -> None:
    """What a normal sync must make equal on two devices (`synced_collection`), section by
    section, naming the first difference."""
    a, b = synced_collection(left), synced_collection(right)
    if not a["notes"]["rows"] or not a["cards"]["rows"]:
        raise AssertionError("compared two empty collections")
    for section in a:
        if a[section] != b[section]:
            raise AssertionError(
                f"{names} differ in {section}:\n{_first_difference(a[section], b[section])}"
            )
