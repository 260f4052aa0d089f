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
