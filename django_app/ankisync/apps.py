from django.apps import AppConfig


class AnkisyncConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ankisync"
    verbose_name = "Anki sync"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from ankisync.deactivation import revoke_devices_on_deactivation

        post_save.connect(
            revoke_devices_on_deactivation,
            sender=get_user_model(),
            dispatch_uid="ankisync.revoke_devices_on_deactivation",
        )

        # Deleting a user in Django removes their sync data (after the commit).
        from ankisync import user_deletion

        user_deletion.connect()
