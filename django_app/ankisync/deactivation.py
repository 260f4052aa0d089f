"""Deactivating a user logs out every Anki device at once.

The sidecar revokes an inactive user's host keys by itself (on the first request it sees, and
by a periodic sweep; see docs/operations.md, section 7b). This signal makes it immediate for
deactivations saved through Django's ORM: after the transaction commits, it asks the sidecar
to delete the user's keys, so reactivating the user right away cannot bring them back.
A sidecar that cannot be reached only costs a warning: the save itself has already succeeded,
and the sweep covers it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from ankisync.sidecar_client import SidecarError, get_client

logger = logging.getLogger(__name__)


def revoke_devices_on_deactivation(sender, instance, created=False, update_fields=None, **kwargs):
    """`post_save` receiver for the user model."""
    if created or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    if not settings.SIDECAR_INTERNAL_TOKEN:
        # The internal API refuses every call without a token; nothing to ask.
        return
    user_id = instance.pk
    transaction.on_commit(lambda: _revoke(user_id), using=kwargs.get("using"))


def _revoke(user_id: int) -> None:
    try:
        revoked = get_client().revoke_host_keys(user_id)
    except SidecarError as error:
        logger.warning("could not revoke the host keys of deactivated user %s: %s", user_id, error)
        return
    logger.info("deactivated user %s: %s host key(s) revoked", user_id, revoked)
