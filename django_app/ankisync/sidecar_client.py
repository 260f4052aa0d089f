"""The one way Django talks to the sidecar's internal API.

Every call to the sidecar goes through `SidecarClient`: a bearer token on every request, a
timeout on every request, typed answers, and a single error type, `SidecarError`, for every
way a call can fail (refused connection, timeout, an HTTP error status, an answer that is not
the JSON we expect). Callers catch that one type and decide what the user sees.

The client is stdlib only (urllib), so the Django image needs no HTTP library of its own.
The token is never put into an error message or a log line.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings

# Enough of an error body to explain a refusal, never a whole page.
ERROR_BODY_LIMIT = 300


class SidecarError(Exception):
    """Any failed call to the sidecar. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def unreachable(self) -> bool:
        """True when no HTTP answer came back at all (down, refused, timed out)."""
        return self.status is None


@dataclass(frozen=True)
class SyncStats:
    """What the sidecar holds for one user (`GET /internal/v1/users/{id}/stats`)."""

    has_collection: bool = False
    cards: int = 0
    notes: int = 0
    revlog: int = 0
    usn: int = 0
    modified_ms: int = 0
    last_sync_ms: int = 0
    collection_bytes: int = 0
    media_files: int = 0
    media_bytes: int = 0
    media_usn: int = 0
    # Only in the stats answer, not in a reset report.
    devices: int = 0
    last_seen: int | None = None
    sync_in_progress: bool = False

    @classmethod
    def from_json(cls, data: Any) -> SyncStats:
        if not isinstance(data, dict):
            raise SidecarError(f"unexpected stats answer from the sidecar: {data!r:.200}")
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def as_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True)
class ResetReport:
    """The answer of `POST /internal/v1/users/{id}/reset`: what was (or would be) deleted."""

    dry_run: bool
    keep_media: bool
    deleted: SyncStats
    # "delete", "keep" or "keep_files" (the files stay, media.db goes and is rebuilt).
    media: str = ""
    # Temp files and unneeded import packages removed.
    leftovers: int = 0

    @classmethod
    def from_json(cls, data: Any) -> ResetReport:
        if not isinstance(data, dict) or "deleted" not in data:
            raise SidecarError(f"unexpected reset answer from the sidecar: {data!r:.200}")
        return cls(
            dry_run=bool(data.get("dry_run")),
            keep_media=bool(data.get("keep_media")),
            deleted=SyncStats.from_json(data["deleted"]),
            media=str(data.get("media") or ""),
            leftovers=int(data.get("leftovers") or 0),
        )


class SidecarClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        import_timeout: float = 120.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.import_timeout = import_timeout

    def __repr__(self) -> str:
        # Never the token.
        return f"SidecarClient({self.base_url!r})"

    # --- the API ------------------------------------------------------------------------------

    def stats(self, user_id: int) -> SyncStats:
        return SyncStats.from_json(self._call("GET", f"/internal/v1/users/{int(user_id)}/stats"))

    def reset(
        self,
        user_id: int,
        *,
        dry_run: bool = True,
        keep_media: bool = False,
        media: str | None = None,
    ) -> ResetReport:
        """`media` is "delete", "keep" or "keep_files"; when None, `keep_media` picks "keep"
        or "delete"."""
        payload: dict[str, Any] = {"dry_run": bool(dry_run), "keep_media": bool(keep_media)}
        if media is not None:
            payload["media"] = media
        body = json.dumps(payload).encode()
        answer = self._call(
            "POST",
            f"/internal/v1/users/{int(user_id)}/reset",
            body=body,
            content_type="application/json",
        )
        return ResetReport.from_json(answer)

    def revoke_host_keys(self, user_id: int) -> int:
        answer = self._call("DELETE", f"/internal/v1/users/{int(user_id)}/host-keys")
        if not isinstance(answer, dict) or not isinstance(answer.get("revoked"), int):
            raise SidecarError(f"unexpected host-keys answer from the sidecar: {answer!r:.200}")
        return answer["revoked"]

    def deleted_users(self) -> list[dict]:
        """Users with sync data (a folder or host keys) but no row in Django's user table."""
        answer = self._call("GET", "/internal/v1/deleted-users")
        if not isinstance(answer, dict) or not isinstance(answer.get("users"), list):
            raise SidecarError(f"unexpected deleted-users answer from the sidecar: {answer!r:.200}")
        return answer["users"]

    def remove_deleted_user(self, user_id: int) -> dict:
        """Removes the folder and host keys of a user deleted in Django; the sidecar refuses
        (409) while the user still exists."""
        answer = self._call("DELETE", f"/internal/v1/deleted-users/{int(user_id)}")
        if not isinstance(answer, dict):
            raise SidecarError(f"unexpected deleted-users answer from the sidecar: {answer!r:.200}")
        return answer

    def import_package(self, user_id: int, package: bytes, *, idempotency_key: str) -> dict:
        """Merges an `.apkg` into the user's collection on the server. Retrying with the same
        key is safe: the sidecar applies one key once. Returns the sidecar's JSON summary."""
        answer = self._call(
            "POST",
            f"/internal/v1/users/{int(user_id)}/imports",
            body=package,
            content_type="application/octet-stream",
            headers={"Idempotency-Key": idempotency_key},
            timeout=self.import_timeout,
        )
        if not isinstance(answer, dict):
            raise SidecarError(f"unexpected import answer from the sidecar: {answer!r:.200}")
        return answer

    # --- transport ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if content_type:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        what = f"{method} {path}"
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = _short(error.read())
            raise SidecarError(
                f"sidecar answered {error.code} to {what}: {detail}", status=error.code
            ) from None
        except TimeoutError as error:
            raise SidecarError(f"sidecar did not answer {what} in time: {error}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise SidecarError(f"sidecar unreachable for {what}: {reason}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise SidecarError(f"sidecar sent no JSON for {what}: {_short(raw)}") from None


def _short(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text[:ERROR_BODY_LIMIT] or "(empty body)"


def get_client() -> SidecarClient:
    """The client configured from settings (environment variables)."""
    return SidecarClient(
        settings.SIDECAR_INTERNAL_URL,
        settings.SIDECAR_INTERNAL_TOKEN,
        timeout=settings.SIDECAR_TIMEOUT_SECONDS,
        import_timeout=settings.SIDECAR_IMPORT_TIMEOUT_SECONDS,
    )
