"""When a user is deleted in Django, their sync data goes too (docs/operations.md, "Deleting a
user").

A `post_delete` handler on the user model registers, with `transaction.on_commit`, a call to
the sidecar's `DELETE /internal/v1/deleted-users/<id>`: it runs only once the deletion is
committed (the sidecar refuses while the user still exists), whether the user was deleted in
the admin, in a shell or through the ORM (a queryset's `delete()` sends the signal per user).
If the sidecar cannot be reached, the failure is logged and `manage.py
remove_orphaned_sync_data` removes the leftovers later.

The deactivation of a user is handled elsewhere; this module is only about deletion.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete

from ankisync.sidecar_client import SidecarError, get_client

logger = logging.getLogger(__name__)


def remove_sync_data(user_id: int) -> None:
    try:
        removed = get_client().remove_deleted_user(user_id)
    except SidecarError as error:
        logger.warning(
            "sync data of deleted user %s not removed (%s); "
            "run manage.py remove_orphaned_sync_data later",
            user_id,
            error,
        )
        return
    logger.info("sync data of deleted user %s removed: %s", user_id, removed)


def user_deleted(sender, instance, using, **kwargs) -> None:
    user_id = instance.pk
    transaction.on_commit(lambda: remove_sync_data(user_id), using=using)


def connect() -> None:
    post_delete.connect(
        user_deleted, sender=get_user_model(), dispatch_uid="ankisync.user_deletion"
    )
