"""Malformed and oversized requests get a 4xx, never a 5xx, and the server keeps serving."""

import concurrent.futures
import json
import os
import re
import resource
import socket
import time
from pathlib import Path

import pytest
import zstandard

from support import protocol
from support.client import FULL_DOWNLOAD, FULL_SYNC, FULL_UPLOAD, NO_CHANGES

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
        {
            "SIDECAR_MAX_BODY_MB": str(LIMIT_MB),
            "SIDECAR_MAX_UNCOMPRESSED_MB": str(LIMIT_MB),
            "SIDECAR_JSON_MAX_BODY_MB": str(LIMIT_MB),
        }
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


# --- Issue 11, defects 1, 2 and 5: bombs, hostile connections, and a memory limit ----------

MIB = 1024 * 1024
# The login bomb of the report: 9 KB that expand to a 299 MiB username.
LOGIN_BOMB_USERNAME_MIB = 299


def compressed_stream(prefix: bytes, filler: bytes, count: int, suffix: bytes) -> bytes:
    """zstd of prefix + filler * count + suffix, without holding the plain text whole."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    pieces = [compressor.compress(prefix)]
    step = max(1, MIB // len(filler))
    for start in range(0, count, step):
        pieces.append(compressor.compress(filler * min(step, count - start)))
    pieces.append(compressor.compress(suffix))
    pieces.append(compressor.flush())
    return b"".join(pieces)


def login_bomb(username_mib: int = LOGIN_BOMB_USERNAME_MIB) -> bytes:
    return compressed_stream(b'{"u": "', b"a", username_mib * MIB, b'", "p": "x"}')


def vm_hwm_kib(pid: int) -> int:
    """Peak resident memory of a process since it started, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))


def test_login_bomb_is_refused_at_the_login_cap(backend):
    user = backend.create_user()
    body = login_bomb()
    assert len(body) < 64 * 1024
    pid = backend.sidecar.process.pid
    before = vm_hwm_kib(pid)

    reply = protocol.post(backend.url, "sync/hostKey", body, headers={"anki-sync": VALID_HEADER()})

    after = vm_hwm_kib(pid)
    print(
        f"login bomb ({LOGIN_BOMB_USERNAME_MIB} MiB username, {len(body)} bytes sent): "
        f"peak RSS {before // 1024} MiB -> {after // 1024} MiB"
    )
    assert reply.status == 413, reply
    assert len(reply.raw) < 400
    # Bounded by the 64 KiB login cap; before, this request took 1.5 GB.
    assert after - before < 64 * 1024, (before, after)
    log = backend.sidecar.log()
    assert "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" not in log
    assert protocol.login(backend.url, user.username, user.password)


def open_idle_sockets(address: str, count: int) -> list[socket.socket]:
    """Non-blocking connects that never send a byte; the kernel queues what is not accepted."""
    host, port = address.rsplit(":", 1)
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((host, int(port)))
        sockets.append(sock)
    return sockets


def raise_own_open_files_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the test process may open only {hard} files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# Small enough that the server's accept queue really fills within the test.
IDLE_FILES_LIMIT = 256
IDLE_SOCKETS = 400


def test_idle_sockets_past_the_open_files_limit_do_not_lock_everyone_out(backend, make_client):
    """More idle sockets than the server may open files (400 against a limit of 256; in
    production 1,100 against the common 1,024): logins, syncs and /health keep working (new
    clients wait for a free slot, idle sockets are closed). Before the fix, accept failed with
    "Too many open files" and /health timed out for as long as the idle sockets stayed."""
    raise_own_open_files_limit(4096)
    sidecar = backend.start_sidecar(
        {"SIDECAR_HEADER_TIMEOUT_SECS": "3", "SIDECAR_IDLE_TIMEOUT_SECS": "3"},
        wrapper=["prlimit", f"--nofile={IDLE_FILES_LIMIT}:{IDLE_FILES_LIMIT}", "--"],
    )
    user = backend.create_user()
    idle = open_idle_sockets(sidecar.public_addr, IDLE_SOCKETS)
    try:
        # Lets the kernel finish the handshakes it retried, so the server really holds them.
        time.sleep(4)
        # Waits for a free slot: the idle sockets are closed by the 3 s header timeout, a batch
        # at a time (about 8 s here). Before the fix, accept failed for lack of descriptors and
        # /health waited behind the idle sockets until hyper's own 30 s default.
        assert sidecar.health_status(timeout=20) == 200
        client = make_client(sidecar.url)
        client.col.add_note(basic_note(client.col, "during the idle flood"), 1)
        client.login(user.username, user.password)
        assert client.sync() in (FULL_UPLOAD, FULL_SYNC)
        client.full_upload()
        assert sidecar.is_running()
    finally:
        for sock in idle:
            sock.close()
    assert sidecar.health_status() == 200
    assert "accept failed" not in sidecar.log()


def basic_note(col, front: str):
    note = col.new_note(col.models.by_name("Basic"))
    note["Front"] = front
    note["Back"] = "back"
    return note


# Kinds of hostile body sent at once by the memory-limit test, 20 of each.
HOSTILE_PER_KIND = 20
ADDRESS_SPACE_LIMIT = 512 * MIB


def hostile_bodies() -> dict[str, tuple[str, bytes, bool]]:
    """kind -> (method, body, needs an open sync). All are a few KiB or less on the wire."""
    zeros = 40_000_000
    return {
        "login bomb": ("sync/hostKey", login_bomb(), False),
        "sanityCheck2 zeros": (
            "sync/sanityCheck2",
            compressed_stream(b'{"client": [0', b",0", zeros, b"]}"),
            True,
        ),
        "applyGraves zeros": (
            "sync/applyGraves",
            compressed_stream(b'{"chunk": {"cards": [0', b",0", zeros, b"]}}"),
            True,
        ),
        "applyChunk long string": (
            "sync/applyChunk",
            compressed_stream(b'{"chunk": {"done": false, "cards": [["', b"a", 30 * MIB, b'"]]}}'),
            True,
        ),
        "downloadFiles names": (
            "msync/downloadFiles",
            compressed_stream(b'{"files": ["a"', b',"a"', 10_000_000, b"]}"),
            False,
        ),
        "media zip bomb": (
            "msync/uploadChanges",
            compressed_stream(b"", b"\0", 64 * MIB, b""),
            False,
        ),
        "full upload bomb": (
            "sync/upload",
            compressed_stream(b"", b"\0", 64 * MIB, b""),
            False,
        ),
    }


def send_hostile(url: str, method: str, body: bytes, hkey: str, session: str) -> int | str:
    try:
        reply = protocol.post(url, method, body, headers={"anki-sync": VALID_HEADER(hkey, session)})
        return reply.status
    except OSError as error:
        return f"{type(error).__name__}: {error}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@pytest.mark.timeout(900)
def test_memory_limit_survives_hostile_bodies(backend, make_client):
    """The server under a 512 MB address-space limit, while 20 hostile bodies of each kind
    arrive at once: it stays up, and other users' logins and real-client syncs keep working."""
    sidecar = backend.start_sidecar(
        {
            # What docs/operations.md advises next to an address-space limit.
            "MALLOC_ARENA_MAX": "2",
            "SIDECAR_BLOCKING_THREADS": "16",
            "SIDECAR_JSON_MEMORY_MB": "128",
            # The spooled families are capped low so that the test does not write gigabytes.
            "SIDECAR_MEDIA_MAX_BODY_MB": "16",
            "SIDECAR_MAX_UNCOMPRESSED_MB": "32",
        },
        wrapper=["prlimit", f"--as={ADDRESS_SPACE_LIMIT}", "--"],
    )
    url = sidecar.url
    bodies = hostile_bodies()

    attackers = {}
    for kind, (_method, _body, needs_sync) in bodies.items():
        attacker = backend.create_user()
        hkey = protocol.login(url, attacker.username, attacker.password)
        if needs_sync:
            start = protocol.call(
                url,
                "sync/start",
                {"minUsn": 0, "lnewer": False, "graves": None},
                hkey=hkey,
                session="evil",
            )
            assert start.status == 200, start
        attackers[kind] = hkey

    # Two devices of an ordinary user share a collection before the flood.
    user = backend.create_user()
    device_a, device_b = make_client(url, "A"), make_client(url, "B")
    device_a.col.add_note(basic_note(device_a.col, "before the flood"), 1)
    device_a.login(user.username, user.password)
    device_b.login(user.username, user.password)
    assert device_a.sync() in (FULL_UPLOAD, FULL_SYNC)
    device_a.full_upload()
    assert device_b.sync() in (FULL_DOWNLOAD, FULL_SYNC)
    device_b.full_download()
    bystander = backend.create_user()

    outcomes: dict[str, list] = {kind: [] for kind in bodies}
    latencies: list[float] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(bodies) * HOSTILE_PER_KIND) as pool:
        futures = {}
        for kind, (method, body, _needs_sync) in bodies.items():
            hkey = "" if method == "sync/hostKey" else attackers[kind]
            for _ in range(HOSTILE_PER_KIND):
                future = pool.submit(send_hostile, url, method, body, hkey, "evil")
                futures[future] = kind
        # Meanwhile: logins of another user, and normal syncs of the ordinary user's device,
        # a bounded number of rounds.
        for round_number in range(8):
            started = time.monotonic()
            assert protocol.login(url, bystander.username, bystander.password)
            latencies.append(time.monotonic() - started)
            device_a.col.add_note(basic_note(device_a.col, f"during the flood {round_number}"), 1)
            started = time.monotonic()
            assert device_a.sync() == NO_CHANGES
            latencies.append(time.monotonic() - started)
        for future in concurrent.futures.as_completed(futures, timeout=600):
            outcomes[futures[future]].append(future.result())

    assert sidecar.is_running(), sidecar.log_excerpt()
    assert sidecar.health_status() == 200
    status = Path(f"/proc/{sidecar.process.pid}/status").read_text()
    peaks = re.findall(r"^(VmPeak|VmHWM):\s+(\d+) kB", status, re.M)
    print("memory-limit test: " + ", ".join(f"{name} {int(kb) // 1024} MiB" for name, kb in peaks))
    p99 = percentile(latencies, 0.99)
    print(
        f"memory-limit test: {len(latencies)} logins and syncs during the flood, "
        f"p50 {percentile(latencies, 0.5):.3f} s, p99 {p99:.3f} s, max {max(latencies):.3f} s"
    )
    print(f"hostile outcomes: { {kind: sorted(set(map(str, v))) for kind, v in outcomes.items()} }")
    for kind, statuses in outcomes.items():
        for status in statuses:
            # 200 only for the full upload, whose refusal is a sentence the client shows.
            assert status in (200, 400, 408, 409, 413, 503), (kind, status)
    # The second device sees everything the first one synced during the flood.
    assert device_b.sync() == NO_CHANGES
    fronts = sorted(device_b.col.get_note(nid)["Front"] for nid in device_b.col.find_notes(""))
    assert fronts == sorted(["before the flood"] + [f"during the flood {i}" for i in range(8)])
