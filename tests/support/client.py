"""The real Anki client (the `anki` wheel's Rust core), driven with a deadline on every step.

Each blocking call runs in a worker thread that the test waits for with a timeout: a server
that hangs then fails the step with a message naming it, instead of hanging the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from anki.collection import Collection
from anki.sync import SyncAuth
from anki.sync_pb2 import SyncCollectionResponse

Required = SyncCollectionResponse.ChangesRequired
NO_CHANGES = Required.NO_CHANGES
NORMAL_SYNC = Required.NORMAL_SYNC
FULL_SYNC = Required.FULL_SYNC
FULL_DOWNLOAD = Required.FULL_DOWNLOAD
FULL_UPLOAD = Required.FULL_UPLOAD

# The client's own stall timeout (no bytes either way); login always uses 30 s internally.
IO_TIMEOUT_SECS = 30
STEP_TIMEOUT = 120

T = TypeVar("T")


class StepTimeout(AssertionError):
    pass


def required_name(value: int) -> str:
    return Required.Name(value)


class AnkiClient:
    """One device: a fresh collection in its own folder, talking to one endpoint."""

    def __init__(self, folder: Path, endpoint: str, name: str = "client"):
        folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.endpoint = endpoint
        self.path = folder / "collection.anki2"
        self.col = Collection(str(self.path))
        self.auth: SyncAuth | None = None

    def step(self, what: str, action: Callable[[], T], timeout: float = STEP_TIMEOUT) -> T:
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["value"] = action()
            except BaseException as error:
                outcome["error"] = error

        worker = threading.Thread(target=run, name=f"{self.name}: {what}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            # Ask the backend to give up, so the stuck thread does not outlive the test by much.
            self.col.abort_sync()
            raise StepTimeout(f"{self.name}: {what} did not finish within {timeout} s")
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome.get("value")  # type: ignore[return-value]

    def login(self, username: str, password: str) -> SyncAuth:
        answer = self.step(
            "login",
            lambda: self.col.sync_login(
                username=username, password=password, endpoint=self.endpoint
            ),
        )
        self.auth = SyncAuth(
            hkey=answer.hkey, endpoint=self.endpoint, io_timeout_secs=IO_TIMEOUT_SECS
        )
        return self.auth

    def use_key(self, hkey: str) -> None:
        self.auth = SyncAuth(hkey=hkey, endpoint=self.endpoint, io_timeout_secs=IO_TIMEOUT_SECS)

    def sync(self) -> int:
        """A collection sync without media; returns what the client says is still required."""
        assert self.auth is not None, "log in first"
        required = self.step(
            "sync_collection", lambda: self.col.sync_collection(self.auth, False)
        ).required
        # pylib's notetype cache does not notice what a sync changed in the backend.
        self.col.models._clear_cache()
        return required

    def full_upload(self) -> None:
        self._full_sync(upload=True)

    def full_download(self) -> None:
        self._full_sync(upload=False)

    def first_upload(self, user) -> None:
        """Logs in as `user` (a `DjangoUser`), is asked for a full upload and makes it."""
        self.login(user.username, user.password)
        assert required_name(self.sync()) == required_name(FULL_UPLOAD)
        self.full_upload()

    def first_download(self, user) -> None:
        """Logs in as `user`, is asked for a full download and makes it."""
        self.login(user.username, user.password)
        assert required_name(self.sync()) == required_name(FULL_DOWNLOAD)
        self.full_download()

    def _full_sync(self, upload: bool) -> None:
        assert self.auth is not None, "log in first"
        what = "full upload" if upload else "full download"
        self.col.close_for_full_sync()
        try:
            self.step(
                what,
                lambda: self.col.full_upload_or_download(
                    auth=self.auth, upload=upload, server_usn=None
                ),
            )
        finally:
            # The backend reopens the collection itself, also after a failed transfer.
            self.col.reopen(after_full_sync=True)

    def close(self) -> None:
        if self.col.db is not None:
            self.col.close(downgrade=False)


def upload_then_download(a: AnkiClient, b: AnkiClient, user) -> None:
    """A logs in and full-uploads its collection; then B logs in and full-downloads it."""
    a.first_upload(user)
    b.first_download(user)
