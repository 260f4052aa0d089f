from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from decks import anki_ids
from decks.media import audio_upload_to, image_upload_to


class NoteType(models.TextChoices):
    BASIC = "basic", "Basic"
    BASIC_REVERSED = "basic_reversed", "Basic (and reversed card)"
    CLOZE = "cloze", "Cloze"


class Deck(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="decks"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    anki_id = models.BigIntegerField(default=anki_ids.new_deck_id, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints = (
            # Anki matches decks by name, case-insensitively, on import.
            models.UniqueConstraint(
                "owner", Lower("name"), name="decks_deck_unique_name_per_owner"
            ),
        )

    def __str__(self) -> str:
        return self.name


class Note(models.Model):
    deck = models.ForeignKey(Deck, on_delete=models.CASCADE, related_name="notes")
    # Fixed at creation: Anki skips an update whose notetype differs from the note's.
    note_type = models.CharField(max_length=20, choices=NoteType.choices, default=NoteType.BASIC)
    # Basic: Front/Back. Cloze: Text/Back Extra.
    front = models.TextField()
    back = models.TextField(blank=True)
    # Space-separated, normalised by the services.
    tags = models.CharField(max_length=500, blank=True)
    image = models.FileField(upload_to=image_upload_to, blank=True, max_length=200)
    audio = models.FileField(upload_to=audio_upload_to, blank=True, max_length=200)
    guid = models.CharField(max_length=64, default=anki_ids.new_guid, editable=False, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return self.front[:60]

    @property
    def tag_list(self) -> list[str]:
        return self.tags.split()


class DeckPush(models.Model):
    """One "Send to Anki" of a deck: a package delivered to the sidecar's import API."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    deck = models.ForeignKey(Deck, on_delete=models.CASCADE, related_name="pushes")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deck_pushes"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Sent as the Idempotency-Key header: a retry of the same push is applied once.
    idempotency_key = models.UUIDField(unique=True, editable=False)
    note_count = models.PositiveIntegerField(default=0)
    media_count = models.PositiveIntegerField(default=0)
    summary = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.deck} at {self.created_at:%Y-%m-%d %H:%M}: {self.status}"
