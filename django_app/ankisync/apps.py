from django.apps import AppConfig


class AnkisyncConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ankisync"
    verbose_name = "Anki sync"
