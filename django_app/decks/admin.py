from django.contrib import admin

from decks.models import Deck, DeckPush


@admin.register(Deck)
class DeckAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "created_at", "updated_at")
    search_fields = ("name", "owner__username")
    readonly_fields = ("anki_id",)


@admin.register(DeckPush)
class DeckPushAdmin(admin.ModelAdmin):
    list_display = ("deck", "requested_by", "status", "note_count", "media_count", "created_at")
    list_filter = ("status",)
    readonly_fields = tuple(f.name for f in DeckPush._meta.fields)

    def has_add_permission(self, request) -> bool:
        return False
