"""The audit trail of admin operations on a user's sync data.

One model for every operation an admin (or a management command) does through the sidecar's
admin API: a dry-run reset, a real reset, logging out every device. Usernames are copied into
the row, so the trail stays readable after either account is deleted.
"""

from django.conf import settings
from django.db import models


class SyncAdminAudit(models.Model):
    class Action(models.TextChoices):
        RESET_DRY_RUN = "reset_dry_run", "Reset (dry run)"
        RESET = "reset", "Reset"
        LOGOUT_DEVICES = "logout_devices", "Log out all devices"

    class Via(models.TextChoices):
        ADMIN = "admin", "Admin site"
        COMMAND = "command", "Management command"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    via = models.CharField(max_length=16, choices=Via.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    target_user_id = models.BigIntegerField()
    target_username = models.CharField(max_length=150)
    keep_media = models.BooleanField(default=False)
    succeeded = models.BooleanField()
    # The sidecar's answer: what was (or would be) deleted, or how many keys were revoked.
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "sync admin audit entry"
        verbose_name_plural = "sync admin audit log"

    def __str__(self) -> str:
        outcome = "ok" if self.succeeded else "failed"
        return f"{self.get_action_display()} of {self.target_username} ({outcome})"
