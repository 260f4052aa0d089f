"""One Anki device, driven over stdin/stdout, in the venv of one pinned `anki` wheel.

This is the ONE place where the Python APIs of the client versions under test differ:

- 2.1.50 to 2.1.56 (sync v10, the legacy multipart protocol): the endpoint comes from the
  environment (`SYNC_ENDPOINT`, `SYNC_ENDPOINT_MEDIA`, read by the Rust core), `sync_login`
  takes no endpoint, `sync_collection(auth)` has no media flag, full syncs are
  `full_upload(auth)` / `full_download(auth)`, and `sync_media(auth)` blocks until done.
- 2.1.66 and later (sync v11): the endpoint is passed to `sync_login` and carried in
  `SyncAuth`, `sync_collection(auth, sync_media)`, `full_upload_or_download(...)`, and
  `sync_media(auth)` runs in the background and is polled with `media_sync_status()`.

It is started as `<client venv>/bin/python tests/support/anki_adapter.py <endpoint> <folder>`
by `support.client_matrix.RemoteClient`, imports nothing from the test suite (the client's
venv has only its wheel), and answers one JSON line per JSON request line:
`{"op": ..., "args": {...}}` -> `{"ok": value}` or `{"error": ..., "type": ..., "auth": bool}`.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
import sys
import time
import traceback
import unicodedata
from pathlib import Path

ENDPOINT = sys.argv[1]
FOLDER = Path(sys.argv[2])
# Answers go to the original stdout; anything the client prints goes to stderr instead.
PROTOCOL = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
# Read by the legacy clients' Rust core when it builds its HTTP client; ignored by v11 ones.
os.environ["SYNC_ENDPOINT"] = ENDPOINT + "sync/"
os.environ["SYNC_ENDPOINT_MEDIA"] = ENDPOINT + "msync/"

from anki.buildinfo import version as ANKI_VERSION  # noqa: E402
from anki.collection import Collection  # noqa: E402
from anki.sync import SyncAuth  # noqa: E402

MEDIA_TIMEOUT = 180
IO_TIMEOUT_SECS = 30


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


LEGACY = version_tuple(ANKI_VERSION) < (2, 1, 57)


class Device:
    def __init__(self) -> None:
        FOLDER.mkdir(parents=True, exist_ok=True)
        self.path = FOLDER / "collection.anki2"
        self.col = Collection(str(self.path))
        self.auth = None

    # --- login and sync ------------------------------------------------------------------

    def _commit(self) -> bool:
        """Clients up to 2.1.66 keep a Python-side transaction open (`save(trx=True)`), and the
        backend's sync cannot start inside it: commit it first, as their GUI did."""
        if "trx" in inspect.signature(self.col.save).parameters:
            self.col.save(trx=False)
            return True
        return False

    def _reopen_transaction(self, committed: bool) -> None:
        if committed and self.col.db is not None:
            self.col.db.begin()

    def _make_auth(self, hkey: str):
        fields = SyncAuth.DESCRIPTOR.fields_by_name
        kwargs = {"hkey": hkey}
        if "endpoint" in fields:
            kwargs["endpoint"] = ENDPOINT
        if "io_timeout_secs" in fields:
            kwargs["io_timeout_secs"] = IO_TIMEOUT_SECS
        return SyncAuth(**kwargs)

    def login(self, username: str, password: str) -> str:
        if LEGACY:
            answer = self.col.sync_login(username, password)
        else:
            answer = self.col.sync_login(username=username, password=password, endpoint=ENDPOINT)
        self.auth = self._make_auth(answer.hkey)
        return answer.hkey

    def use_key(self, hkey: str) -> None:
        self.auth = self._make_auth(hkey)

    def sync(self) -> dict:
        """A collection sync without media: what the client says is still required."""
        committed = self._commit()
        try:
            if "sync_media" in inspect.signature(self.col.sync_collection).parameters:
                out = self.col.sync_collection(self.auth, False)
            else:
                out = self.col.sync_collection(self.auth)
        finally:
            self._reopen_transaction(committed)
        self.col.models._clear_cache()
        required = out.DESCRIPTOR.fields_by_name["required"].enum_type
        return {
            "required": required.values_by_number[out.required].name,
            "server_message": out.server_message,
        }

    def full_sync(self, upload: bool) -> None:
        self.col.close_for_full_sync()
        try:
            if hasattr(self.col, "full_upload_or_download"):
                params = inspect.signature(self.col.full_upload_or_download).parameters
                kwargs = {"auth": self.auth, "upload": upload}
                if "server_usn" in params:
                    kwargs["server_usn"] = None
                self.col.full_upload_or_download(**kwargs)
            elif upload:
                self.col.full_upload(self.auth)
            else:
                self.col.full_download(self.auth)
        finally:
            self.col.reopen(after_full_sync=True)
        self.col.models._clear_cache()

    def sync_media(self) -> None:
        committed = self._commit()
        try:
            self._sync_media()
        finally:
            self._reopen_transaction(committed)

    def _sync_media(self) -> None:
        self.col.sync_media(self.auth)
        if not hasattr(self.col, "media_sync_status"):
            return  # legacy: it returned when the media sync ended
        deadline = time.monotonic() + MEDIA_TIMEOUT
        while self.col.media_sync_status().active:
            if time.monotonic() > deadline:
                self.col.abort_media_sync()
                raise RuntimeError(f"media sync did not finish in {MEDIA_TIMEOUT} s")
            time.sleep(0.05)
        # One more poll after it ended raises the sync's error, if any.
        self.col.media_sync_status()

    # --- changes a user makes ------------------------------------------------------------

    def add_notes(self, prefix: str, count: int, tags: list[str] | None = None) -> list[int]:
        basic = self.col.models.by_name("Basic")
        ids = []
        for index in range(count):
            note = self.col.new_note(basic)
            note["Front"] = f"{prefix} {index}"
            note["Back"] = f"back of {prefix} {index}"
            note.tags = list(tags or [])
            self.col.add_note(note, 1)
            ids.append(int(note.id))
        return ids

    def edit_note(self, note_id: int, front: str) -> None:
        note = self.col.get_note(note_id)
        note["Front"] = front
        self.col.update_note(note)

    def remove_notes(self, note_ids: list[int]) -> None:
        self.col.remove_notes(note_ids)

    def review(self, count: int) -> int:
        """Answers up to `count` cards from the queue with Good; returns how many."""
        if version_tuple(ANKI_VERSION) >= (23, 10) and not self.col.v3_scheduler():
            # A collection from an older client may still be on the v2 scheduler; these
            # versions only review with v3, and their GUI switches it on the same way.
            self.col.set_v3_scheduler(True)
        if hasattr(self.col.sched, "reset"):
            self.col.sched.reset()
        done = 0
        for _ in range(count):
            card = self.col.sched.getCard()
            if card is None:
                break
            self.col.sched.answerCard(card, 3)
            done += 1
        return done

    def add_field(self, notetype: str, field: str) -> None:
        """A schema change: the next sync must be a full one."""
        models = self.col.models
        model = models.by_name(notetype)
        models.add_field(model, models.new_field(field))
        models.update_dict(model) if hasattr(models, "update_dict") else models.save(model)

    def field_names(self, notetype: str) -> list[str]:
        model = self.col.models.by_name(notetype)
        return [field["name"] for field in model["flds"]]

    # --- media ---------------------------------------------------------------------------

    def media_dir(self) -> Path:
        return Path(self.col.media.dir())

    def _before_media_change(self) -> None:
        """Clients skip the folder scan when the folder's mtime (whole seconds) is the one
        they recorded at their last media sync: a change made in that same second would go
        unnoticed, which no person at a keyboard ever manages."""
        time.sleep(1.1)

    def write_media(self, files: dict[str, str]) -> None:
        self._before_media_change()
        for name, data in files.items():
            (self.media_dir() / name).write_bytes(base64.b64decode(data))

    def delete_media(self, names: list[str]) -> None:
        self._before_media_change()
        for name in names:
            (self.media_dir() / name).unlink()

    def media_files(self) -> dict[str, str]:
        return {
            unicodedata.normalize("NFC", path.name): hashlib.sha1(path.read_bytes()).hexdigest()
            for path in self.media_dir().iterdir()
            if path.is_file()
        }

    # --- what the device holds -----------------------------------------------------------

    def query(self, sql: str) -> list:
        return [list(row) for row in self.col.db.all(sql)]

    def content(self) -> dict:
        """Everything a sync carries, in a form that is the same in every client version:
        rows of notes, cards and revlog (without usn and mod, which each side stamps), deck,
        notetype (with fields), deck-config and tag names."""
        db = self.col.db
        notes = db.all("select guid, mid, tags, flds, sfld, csum from notes order by guid")
        cards = db.all(
            "select n.guid, c.ord, c.did, c.type, c.queue, c.due, c.ivl, c.factor, c.reps,"
            " c.lapses, c.left, c.odue, c.odid, c.flags from cards c join notes n on n.id = c.nid"
            " order by n.guid, c.ord"
        )
        revlog = db.all(
            "select id, cid, ease, ivl, lastIvl, factor, time, type from revlog order by id"
        )
        models = {}
        for entry in self.col.models.all_names_and_ids():
            model = self.col.models.get(entry.id)
            models[entry.name] = [field["name"] for field in model["flds"]]
        return {
            "notes": [[g, m, t.strip(), f, str(s), c] for g, m, t, f, s, c in notes],
            "cards": [list(row) for row in cards],
            "revlog": [list(row) for row in revlog],
            "decks": sorted(entry.name for entry in self.col.decks.all_names_and_ids()),
            "notetypes": models,
            "deck_configs": sorted(conf["name"] for conf in self.col.decks.all_config()),
            "tags": sorted(self.col.tags.all()),
        }

    def version(self) -> str:
        return ANKI_VERSION

    def close(self) -> None:
        if self.col.db is not None:
            self.col.close(downgrade=False)


def main() -> None:
    device = Device()
    for line in sys.stdin:
        request = json.loads(line)
        op, args = request["op"], request.get("args", {})
        try:
            answer = {"ok": getattr(device, op)(**args)}
        except Exception as error:
            kind = getattr(error, "kind", None)
            answer = {
                "error": str(error),
                "type": type(error).__name__,
                "auth": kind is not None and getattr(kind, "name", str(kind)) == "AUTH",
                "traceback": traceback.format_exc(),
            }
        PROTOCOL.write(json.dumps(answer) + "\n")
        PROTOCOL.flush()
        if op == "close":
            break


if __name__ == "__main__":
    main()
