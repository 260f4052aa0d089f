from django.apps import AppConfig


class AnkisyncConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ankisync"
    verbose_name = "Anki sync"

    def ready(self) -> None:
        # Deleting a user in Django removes their sync data (after the commit).
        from ankisync import user_deletion

        user_deletion.connect()
