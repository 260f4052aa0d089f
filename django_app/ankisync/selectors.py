"""Reads about a user's Anki sync data. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from ankisync.models import SyncAdminAudit
from ankisync.sidecar_client import SidecarError, SyncStats, get_client


@dataclass(frozen=True)
class SyncStatus:
    """The sidecar's stats for a user, or why there are none (`error` is then set)."""

    stats: SyncStats | None
    error: str = ""

    @property
    def last_sync(self) -> datetime | None:
        if self.stats is None or not self.stats.last_sync_ms:
            return None
        return datetime.fromtimestamp(self.stats.last_sync_ms / 1000, tz=UTC)

    @property
    def last_seen(self) -> datetime | None:
        if self.stats is None or not self.stats.last_seen:
            return None
        return datetime.fromtimestamp(self.stats.last_seen, tz=UTC)


def sync_stats_get(*, user: AbstractBaseUser) -> SyncStats:
    """The stats, straight from the sidecar; raises `SidecarError`."""
    return get_client().stats(user.pk)


def sync_status_get(*, user: AbstractBaseUser) -> SyncStatus:
    """Like `sync_stats_get`, for pages: a sidecar that is down becomes a message."""
    try:
        return SyncStatus(stats=sync_stats_get(user=user))
    except SidecarError as error:
        if error.unreachable:
            message = "The sync server cannot be reached right now. Try again in a minute."
        else:
            message = "The sync server could not report your sync status right now."
        return SyncStatus(stats=None, error=message)


def user_get_by_username(*, username: str) -> AbstractBaseUser:
    """Raises the user model's DoesNotExist."""
    return get_user_model().objects.get(**{get_user_model().USERNAME_FIELD: username})


def audit_entries_for_user(*, user: AbstractBaseUser, limit: int = 20) -> list[SyncAdminAudit]:
    return list(SyncAdminAudit.objects.filter(target_user_id=user.pk)[:limit])
