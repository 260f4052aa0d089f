"""Writes of the deck builder: decks, notes, CSV imports, and sending a deck to Anki.

Every function validates what it writes and raises `ValidationError` (keyed by field where
there is one). Files removed from storage are removed after the commit, never before.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from ankisync.sidecar_client import SidecarError, get_client
from decks.apkg import build_package
from decks.content import content_errors, normalize_tags
from decks.csv_import import RowError, parse_csv
from decks.media import validate_audio, validate_image
from decks.models import Deck, DeckPush, Note, NoteType

logger = logging.getLogger(__name__)

MAX_DECK_NAME = 100


# --- decks ------------------------------------------------------------------------------------


def _clean_deck_name(owner, name: str, exclude_pk: int | None = None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": "Give the deck a name."})
    if len(name) > MAX_DECK_NAME:
        raise ValidationError({"name": f"At most {MAX_DECK_NAME} characters."})
    if any(part.strip() == "" for part in name.split("::")):
        raise ValidationError({"name": "'::' separates sub-decks; a part may not be empty."})
    taken = Deck.objects.filter(owner=owner, name__iexact=name).exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"name": "You already have a deck with this name."})
    return name


def deck_create(*, owner, name: str, description: str = "") -> Deck:
    name = _clean_deck_name(owner, name)
    return Deck.objects.create(owner=owner, name=name, description=description.strip())


def deck_update(*, deck: Deck, name: str, description: str = "") -> Deck:
    deck.name = _clean_deck_name(deck.owner_id, name, exclude_pk=deck.pk)
    deck.description = description.strip()
    deck.save(update_fields=["name", "description", "updated_at"])
    return deck


def _delete_files_after_commit(names: list[str], storage) -> None:
    def delete() -> None:
        for name in names:
            try:
                storage.delete(name)
            except OSError:
                logger.warning("could not delete media file %s", name, exc_info=True)

    if names:
        transaction.on_commit(delete)


def deck_delete(*, deck: Deck) -> None:
    with transaction.atomic():
        names, storage = [], Note._meta.get_field("image").storage
        for note in deck.notes.all():
            names += [f.name for f in (note.image, note.audio) if f]
        deck.delete()
        _delete_files_after_commit(names, storage)


# --- notes ------------------------------------------------------------------------------------


def _check_content(note_type: str, front: str, back: str, tags: str) -> None:
    errors = content_errors(note_type, front, back, tags)
    if errors:
        raise ValidationError(errors)


def _check_media(image: UploadedFile | None, audio: UploadedFile | None) -> None:
    errors: dict[str, list[ValidationError]] = {}
    for name, upload, validate in (
        ("image", image, validate_image),
        ("audio", audio, validate_audio),
    ):
        if upload is not None:
            try:
                validate(upload)
            except ValidationError as error:
                errors[name] = error.error_list
    if errors:
        raise ValidationError(errors)


def note_create(
    *,
    deck: Deck,
    note_type: str,
    front: str,
    back: str = "",
    tags: str = "",
    image: UploadedFile | None = None,
    audio: UploadedFile | None = None,
) -> Note:
    if note_type not in NoteType.values:
        raise ValidationError({"note_type": "Unknown note type."})
    front, back = front.strip(), back.strip()
    _check_content(note_type, front, back, tags)
    _check_media(image, audio)
    note = Note(deck=deck, note_type=note_type, front=front, back=back, tags=normalize_tags(tags))
    with transaction.atomic():
        if image is not None:
            note.image.save(image.name, image, save=False)
        if audio is not None:
            note.audio.save(audio.name, audio, save=False)
        note.save()
    return note


def note_update(
    *,
    note: Note,
    front: str,
    back: str = "",
    tags: str = "",
    image: UploadedFile | None = None,
    audio: UploadedFile | None = None,
    remove_image: bool = False,
    remove_audio: bool = False,
) -> Note:
    """The note type cannot change: Anki would skip the update (notetype conflict)."""
    front, back = front.strip(), back.strip()
    _check_content(note.note_type, front, back, tags)
    _check_media(image, audio)
    storage = Note._meta.get_field("image").storage
    replaced: list[str] = []
    with transaction.atomic():
        for attribute, upload, remove in (
            ("image", image, remove_image),
            ("audio", audio, remove_audio),
        ):
            current = getattr(note, attribute)
            if (upload is not None or remove) and current:
                replaced.append(current.name)
                setattr(note, attribute, None)
            if upload is not None:
                getattr(note, attribute).save(upload.name, upload, save=False)
        note.front, note.back, note.tags = front, back, normalize_tags(tags)
        note.save()
        _delete_files_after_commit(replaced, storage)
    return note


def note_delete(*, note: Note) -> None:
    """Removes the note here. Anki keeps its copy: an import never deletes notes."""
    storage = Note._meta.get_field("image").storage
    with transaction.atomic():
        names = [f.name for f in (note.image, note.audio) if f]
        note.delete()
        _delete_files_after_commit(names, storage)


# --- CSV --------------------------------------------------------------------------------------


@dataclass
class CsvImportReport:
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)
    file_error: str = ""


def deck_csv_import(*, deck: Deck, data: bytes, note_type: str = NoteType.BASIC) -> CsvImportReport:
    """Imports every good row (front, back, tags) and reports every bad one with its line."""
    if note_type not in NoteType.values:
        raise ValidationError({"note_type": "Unknown note type."})
    parsed = parse_csv(data, note_type)
    report = CsvImportReport(errors=parsed.errors, file_error=parsed.file_error)
    if parsed.file_error or not parsed.rows:
        return report
    notes = [
        Note(deck=deck, note_type=note_type, front=row.front, back=row.back, tags=row.tags)
        for row in parsed.rows
    ]
    with transaction.atomic():
        Note.objects.bulk_create(notes)
        Deck.objects.filter(pk=deck.pk).update(updated_at=timezone.now())
    report.imported = len(notes)
    return report


# --- send to Anki -----------------------------------------------------------------------------


def deck_push_request(*, deck: Deck, user) -> DeckPush:
    """Records a push and delivers it once the record is committed.

    Delivery runs synchronously in `on_commit`, inside the request that asked for it: the
    user sees "delivered" or "failed" on the next page. See docs/web-app.md for the trade-off.
    """
    if not deck.notes.exists():
        raise ValidationError("This deck has no notes yet: add one before sending it to Anki.")
    with transaction.atomic():
        push = DeckPush.objects.create(
            deck=deck,
            requested_by=user,
            idempotency_key=uuid.uuid4(),
            note_count=deck.notes.count(),
        )
        # robust: an unexpected crash in the delivery is logged and leaves the push pending
        # (deliver_pending_pushes picks it up) instead of failing the committed request.
        transaction.on_commit(partial(deck_push_deliver, push_id=push.pk), robust=True)
    return push


def _finish(push: DeckPush, status: str, **changes) -> DeckPush:
    for name, value in changes.items():
        setattr(push, name, value)
    push.status = status
    push.finished_at = timezone.now()
    push.save()
    return push


def deck_push_deliver(*, push_id: int) -> DeckPush:
    """Builds the package from the deck as it is now and hands it to the sidecar's import API.

    Safe to call again for the same push (e.g. a pending one after a crash): the idempotency
    key makes the sidecar apply it at most once."""
    push = DeckPush.objects.select_related("deck").get(pk=push_id)
    if push.status == DeckPush.Status.DELIVERED:
        return push
    try:
        package = build_package(push.deck)
    except Exception as error:
        logger.exception("building the package for push %s failed", push.pk)
        return _finish(push, DeckPush.Status.FAILED, error=f"Could not build the package: {error}")
    try:
        summary = get_client().import_package(
            push.deck.owner_id, package.data, idempotency_key=str(push.idempotency_key)
        )
    except SidecarError as error:
        logger.warning("push %s failed: %s", push.pk, error)
        return _finish(
            push,
            DeckPush.Status.FAILED,
            error=str(error),
            note_count=package.note_count,
            media_count=package.media_count,
        )
    return _finish(
        push,
        DeckPush.Status.DELIVERED,
        error="",
        summary=summary,
        note_count=package.note_count,
        media_count=package.media_count,
    )


def pending_pushes_deliver(*, older_than_seconds: int = 60) -> list[DeckPush]:
    """Delivers pushes left pending (the web process died between commit and delivery)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    pending = DeckPush.objects.filter(status=DeckPush.Status.PENDING, created_at__lt=cutoff)
    return [deck_push_deliver(push_id=push_id) for push_id in pending.values_list("pk", flat=True)]
