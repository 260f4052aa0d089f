"""The sidecar's internal API (second listener, bearer token) as the tests call it."""

from __future__ import annotations

import urllib.error
import urllib.request

from support.sidecar import Sidecar

REQUEST_TIMEOUT = 120


def internal_call(
    url: str, *, token: str | None, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes]:
    """A POST (with `body`) or a GET to `url`, with the bearer `token` unless it is None;
    returns the status and the body, also of an error answer."""
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def push_package(
    sidecar: Sidecar, user_id: int, package: bytes, key: str | None = None
) -> tuple[int, bytes]:
    """Pushes an `.apkg` to the user's imports, under the `Idempotency-Key` `key` if given."""
    headers = {"Content-Type": "application/octet-stream"}
    if key:
        headers["Idempotency-Key"] = key
    return internal_call(
        f"{sidecar.internal_url}/internal/v1/users/{user_id}/imports",
        token=sidecar.internal_token,
        body=package,
        headers=headers,
    )
