"""Reads of the deck builder. Every query is scoped to the user who asks."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from decks.models import Deck, DeckPush, Note


def deck_list(*, user) -> QuerySet[Deck]:
    return Deck.objects.filter(owner=user).annotate(note_count=Count("notes"))


def deck_queryset(*, user) -> QuerySet[Deck]:
    """For `get_object_or_404`: another user's deck is simply not found."""
    return Deck.objects.filter(owner=user)


def note_queryset(*, user) -> QuerySet[Note]:
    return Note.objects.filter(deck__owner=user).select_related("deck")


def deck_notes(*, deck: Deck) -> QuerySet[Note]:
    return deck.notes.all()


def deck_pushes(*, deck: Deck, limit: int = 20) -> list[DeckPush]:
    return list(deck.pushes.all()[:limit])


def summary_items(push: DeckPush) -> list[tuple[str, object]]:
    """The sidecar's import summary as (label, value) pairs for display, flattened one level."""
    items: list[tuple[str, object]] = []
    for key, value in (push.summary or {}).items():
        if isinstance(value, dict):
            items += [(f"{key} {inner}".replace("_", " "), v) for inner, v in value.items()]
        elif not isinstance(value, list):
            items.append((key.replace("_", " "), value))
    return items


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def summary_text(push: DeckPush) -> str:
    """One short line for the send history, e.g. "4 notes added, 1 updated; 1 media file".
    The full import summary stays available as `summary_items`."""
    if push.status == DeckPush.Status.FAILED:
        return "Not delivered"
    sent = _plural(push.note_count, "note")
    if push.media_count:
        sent += f" and {_plural(push.media_count, 'media file')}"
    if push.status == DeckPush.Status.PENDING or not isinstance(push.summary, dict):
        return f"Sending {sent}"
    summary = push.summary
    notes = summary.get("notes") if isinstance(summary.get("notes"), dict) else {}
    media = summary.get("media") if isinstance(summary.get("media"), dict) else {}
    added, updated = _count(notes.get("added")), _count(notes.get("updated"))
    skipped = _count(notes.get("skipped"))
    parts = []
    if added:
        parts.append(f"{_plural(added, 'note')} added")
    if updated:
        parts.append(f"{_plural(updated, 'note')} updated")
    if skipped:
        parts.append(f"{skipped} already up to date")
    text = ", ".join(parts) or "No notes changed"
    new_media = _count(media.get("added")) + _count(media.get("renamed"))
    if new_media:
        text += f"; {_plural(new_media, 'media file')}"
    if summary.get("replayed") is True:
        text += " (a repeat of an earlier send)"
    return text
