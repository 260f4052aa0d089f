"""Admin operations on a user's server-side sync data, each one recorded in the audit log.

The sidecar call comes first and the audit row records its outcome, success or failure: the
row is the record of what happened, so it is written after we know. (There is no earlier
database write whose commit the call would have to wait for, so no `on_commit` here.)
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from ankisync.models import SyncAdminAudit
from ankisync.sidecar_client import ResetReport, SidecarError, get_client


def _audit(
    *,
    action: str,
    via: str,
    actor: AbstractBaseUser | None,
    target: AbstractBaseUser,
    keep_media: bool,
    succeeded: bool,
    result: dict | None = None,
    error: str = "",
) -> SyncAdminAudit:
    return SyncAdminAudit.objects.create(
        action=action,
        via=via,
        actor=actor if actor is not None and actor.pk else None,
        actor_username=actor.get_username() if actor is not None else "",
        target=target,
        target_user_id=target.pk,
        target_username=target.get_username(),
        keep_media=keep_media,
        succeeded=succeeded,
        result=result or {},
        error=error,
    )


def sync_data_reset(
    *,
    user: AbstractBaseUser,
    actor: AbstractBaseUser | None,
    confirm: bool = False,
    keep_media: bool = False,
    media: str | None = None,
    via: str = SyncAdminAudit.Via.ADMIN,
) -> tuple[ResetReport, SyncAdminAudit]:
    """Deletes the user's collection (and media unless `keep_media`) on the server. `media`
    chooses among "delete", "keep" and "keep_files" (keep the files, delete media.db) and
    wins over `keep_media`.

    Without `confirm` it is a dry run: the sidecar only reports what would be deleted. Raises
    `SidecarError` after recording the failure."""
    action = SyncAdminAudit.Action.RESET if confirm else SyncAdminAudit.Action.RESET_DRY_RUN
    try:
        if media is not None:
            keep_media = media != "delete"
        report = get_client().reset(
            user.pk, dry_run=not confirm, keep_media=keep_media, media=media
        )
    except SidecarError as error:
        _audit(
            action=action,
            via=via,
            actor=actor,
            target=user,
            keep_media=keep_media,
            succeeded=False,
            error=str(error),
        )
        raise
    audit = _audit(
        action=action,
        via=via,
        actor=actor,
        target=user,
        keep_media=keep_media,
        succeeded=True,
        result={
            "dry_run": report.dry_run,
            "media": report.media,
            "leftovers": report.leftovers,
            "deleted": report.deleted.as_dict(),
        },
    )
    return report, audit


def devices_logout(
    *,
    user: AbstractBaseUser,
    actor: AbstractBaseUser | None,
    via: str = SyncAdminAudit.Via.ADMIN,
) -> int:
    """Revokes every host key of the user: each device must log in again. Returns how many
    keys were revoked. Raises `SidecarError` after recording the failure."""
    action = SyncAdminAudit.Action.LOGOUT_DEVICES
    try:
        revoked = get_client().revoke_host_keys(user.pk)
    except SidecarError as error:
        _audit(
            action=action,
            via=via,
            actor=actor,
            target=user,
            keep_media=False,
            succeeded=False,
            error=str(error),
        )
        raise
    _audit(
        action=action,
        via=via,
        actor=actor,
        target=user,
        keep_media=False,
        succeeded=True,
        result={"revoked": revoked},
    )
    return revoked
