"""Malformed and oversized requests get a 4xx, never a 5xx, and the server keeps serving."""

import json
import os

import pytest
import zstandard

from support import protocol

VALID_HEADER = protocol.sync_header
META = json.dumps(protocol.meta_payload()).encode()


def assert_still_serving(url: str, hkey: str) -> None:
    reply = protocol.meta(url, hkey)
    assert reply.status == 200, reply
    assert reply.json()["cont"] is True


def assert_refused(reply: protocol.Reply, allowed: range | tuple = range(400, 500)) -> None:
    assert reply.status in allowed, reply


def without_header(hkey: str) -> tuple[dict, bytes]:
    return {"Content-Type": "application/octet-stream"}, protocol.compress(META)


def malformed_header_json(hkey: str) -> tuple[dict, bytes]:
    header = '{"v":11,"k":"' + hkey + '","c":"test","s":'
    return {"anki-sync": header}, protocol.compress(META)


def header_missing_session(hkey: str) -> tuple[dict, bytes]:
    return {"anki-sync": json.dumps({"v": 11, "k": hkey, "c": "test"})}, protocol.compress(META)


def header_version_12(hkey: str) -> tuple[dict, bytes]:
    return {"anki-sync": VALID_HEADER(hkey, version=12)}, protocol.compress(META)


def header_version_7(hkey: str) -> tuple[dict, bytes]:
    return {"anki-sync": VALID_HEADER(hkey, version=7)}, protocol.compress(META)


def body_not_zstd(hkey: str) -> tuple[dict, bytes]:
    return {"anki-sync": VALID_HEADER(hkey)}, META


def zstd_of_invalid_json(hkey: str) -> tuple[dict, bytes]:
    return {"anki-sync": VALID_HEADER(hkey)}, protocol.compress(b'{"v": 11, "cv": ')


def truncated_zstd(hkey: str) -> tuple[dict, bytes]:
    whole = protocol.compress(META * 50)
    return {"anki-sync": VALID_HEADER(hkey)}, whole[: len(whole) // 2]


@pytest.mark.parametrize(
    "make_request",
    [
        without_header,
        malformed_header_json,
        header_missing_session,
        header_version_12,
        header_version_7,
        body_not_zstd,
        zstd_of_invalid_json,
        truncated_zstd,
    ],
)
def test_malformed_request_gets_4xx(backend, make_request):
    user = backend.create_user()
    hkey = protocol.login(backend.url, user.username, user.password)
    headers, body = make_request(hkey)

    reply = protocol.post(backend.url, "sync/meta", body, headers=headers)

    # A request of no known wire format or sync version gets 501, which Anki shows as "your
    # Anki version is too old"; the rest 4xx.
    assert_refused(reply, (*range(400, 500), 501))
    assert backend.sidecar.health_status() == 200
    assert_still_serving(backend.url, hkey)
    assert backend.sidecar.is_running()


def test_unknown_method_gets_4xx(backend):
    user = backend.create_user()
    hkey = protocol.login(backend.url, user.username, user.password)

    reply = protocol.call(backend.url, "sync/bogus", {}, hkey=hkey)

    assert_refused(reply)
    assert_still_serving(backend.url, hkey)


# With both caps at 1 MiB, each body below is over one of them.
LIMIT_MB = 1
OVER_LIMIT = LIMIT_MB * 1024 * 1024 + 512 * 1024


def incompressible_body() -> bytes:
    """Over the compressed cap: random bytes do not shrink under zstd."""
    return protocol.compress(os.urandom(OVER_LIMIT))


def json_bomb(prefix: bytes, suffix: bytes) -> bytes:
    """Valid JSON far over the uncompressed cap, but tiny compressed: a server without the cap
    would parse it and answer 200."""
    padding = b"a" * (8 * OVER_LIMIT)
    body = protocol.compress(prefix + padding + suffix)
    assert len(body) < LIMIT_MB * 1024 * 1024
    return body


@pytest.fixture
def small_limits_sidecar(backend):
    return backend.start_sidecar(
        {"SIDECAR_MAX_BODY_MB": str(LIMIT_MB), "SIDECAR_MAX_UNCOMPRESSED_MB": str(LIMIT_MB)}
    )


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize("method", ["sync/meta", "sync/hostKey"])
def test_body_over_the_compressed_cap_is_refused(small_limits_sidecar, backend, method, chunked):
    user = backend.create_user()
    hkey = protocol.login(small_limits_sidecar.url, user.username, user.password)
    key = "" if method == "sync/hostKey" else hkey

    reply = protocol.post(
        small_limits_sidecar.url,
        method,
        incompressible_body(),
        headers={"anki-sync": VALID_HEADER(key)},
        chunked=chunked,
    )

    assert_refused(reply, (400, 413))
    assert small_limits_sidecar.health_status() == 200
    assert_still_serving(small_limits_sidecar.url, hkey)


@pytest.mark.parametrize("method", ["sync/meta", "sync/hostKey"])
def test_body_over_the_uncompressed_cap_is_refused(small_limits_sidecar, backend, method):
    user = backend.create_user()
    hkey = protocol.login(small_limits_sidecar.url, user.username, user.password)
    if method == "sync/hostKey":
        key, body = "", json_bomb(b'{"u": "' + user.username.encode() + b'", "p": "', b'"}')
    else:
        key, body = hkey, json_bomb(b'{"v": 11, "cv": "', b'"}')

    reply = protocol.post(
        small_limits_sidecar.url, method, body, headers={"anki-sync": VALID_HEADER(key)}
    )

    assert_refused(reply, (400, 413))
    assert small_limits_sidecar.health_status() == 200
    assert_still_serving(small_limits_sidecar.url, hkey)


def test_full_upload_over_the_cap_is_refused(small_limits_sidecar, backend):
    user = backend.create_user()
    hkey = protocol.login(small_limits_sidecar.url, user.username, user.password)
    # Decompresses past the cap; the official server answers such an upload with 200 and a
    # message the client shows, and a 413 is as safe. Either way nothing is stored.
    body = zstandard.ZstdCompressor().compress(b"\0" * (8 * OVER_LIMIT))

    reply = protocol.post(
        small_limits_sidecar.url, "sync/upload", body, headers={"anki-sync": VALID_HEADER(hkey)}
    )

    if reply.status == 200:
        assert reply.text() == "collection exceeds size limit"
    else:
        assert_refused(reply, (400, 413))
    assert_still_serving(small_limits_sidecar.url, hkey)
    assert protocol.meta(small_limits_sidecar.url, hkey).json()["empty"] is True
