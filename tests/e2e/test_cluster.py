"""Cluster mode (issue #15, docs/scaling.md): three sidecar nodes on one PostgreSQL and one
shared data folder, behind the project's nginx with its real routing configuration.

Every test starts its own cluster (three `anki-sidecar` processes with SIDECAR_NODE_ID, then
nginx over them) on one migrated database per module. Which node served a request is read from
the node's `X-Sidecar-Node` header (raw protocol calls) and from nginx's access log, which
records `$upstream_addr` and that header per request (real clients). Clients of one user get
host keys that nginx routes to different nodes by logging in again until the keys differ.

A "kill" is SIGKILL of the node's process: no shutdown, no unlock; PostgreSQL itself sees the
node's connections drop and releases its advisory locks. Where the instant matters (inside a
full upload), the node is restarted with SIDECAR_FAULT_POINT armed and aborts there, which
leaves the same state as a kill -9 at that instant.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import genanki
import pytest
from anki.errors import NetworkError, SyncError

from support import protocol
from support.client import FULL_DOWNLOAD, NO_CHANGES, AnkiClient, required_name
from support.cluster import Cluster, served_by, wait_until
from support.collection_data import assert_in_sync, fill_like_a_real_user
from support.django_db import DjangoDatabase, DjangoUser, postgres_database
from support.internal_api import push_package
from support.media import media_files, sync_media
from support.nginx import Tls, make_certificates, nginx_binary, request
from support.web import tiny_png

pytestmark = pytest.mark.timeout(300)

# Messages no node may ever log: two processes in one SQLite file, or a crash.
FORBIDDEN_LOG_LINES = ("database is locked", "panicked")
IMPORT_NOTES = 12


@pytest.fixture(scope="module")
def database(postgres_cluster_url: str) -> Iterator[DjangoDatabase]:
    if nginx_binary() is None:
        if os.environ.get("TEST_SKIP_NGINX") == "1":
            pytest.skip("nginx skipped on request (TEST_SKIP_NGINX=1)")
        pytest.fail("nginx is not installed: apt-get install nginx (or set NGINX_BIN)")
    database = postgres_database(postgres_cluster_url)
    try:
        database.migrate()
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_certificates(tmp_path_factory.mktemp("cluster-tls"), "127.0.0.1", "localhost")


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    database: DjangoDatabase,
    tls: Tls,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cluster]:
    # The client's TLS stack reads SSL_CERT_FILE when a collection builds its HTTP client.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    cluster = Cluster(database.url, tmp_path / "cluster", tls)
    # Read by the conftest report hook: every node's and nginx's log on failure.
    request.node.sidecars = cluster.sidecars
    try:
        cluster.start()
        request.node.sidecars = cluster.processes()
        yield cluster
        for sidecar in cluster.sidecars:
            log = sidecar.log()
            for line in FORBIDDEN_LOG_LINES:
                assert line not in log, f"{sidecar.name} logged {line!r}"
    finally:
        cluster.stop()


# --- helpers ---------------------------------------------------------------------------------


def login_on_other_node(
    cluster: Cluster, client: AnkiClient, user: DjangoUser, avoid: str, attempts: int = 40
) -> str:
    """Logs `client` in until nginx routes its host key to a node other than `avoid` (every
    login makes a new key; the hash puts a key on a fixed node). Returns that node."""
    for _ in range(attempts):
        client.login(user.username, user.password)
        node = cluster.node_of(client.auth.hkey)
        if node != avoid:
            return node
    raise AssertionError(f"{attempts} host keys in a row all routed to {avoid}")


def uploaded_device(
    cluster: Cluster, make_client, user: DjangoUser, name: str = "A", notes: int = 40
) -> tuple[AnkiClient, str]:
    """A device with a real-looking collection, full-uploaded through nginx; its node."""
    client = make_client(cluster.endpoint, name)
    fill_like_a_real_user(client.col, notes=notes, reviews=10)
    client.first_upload(user)
    assert client.sync() == NO_CHANGES
    return client, cluster.node_of(client.auth.hkey)


def downloaded_device(cluster: Cluster, make_client, user: DjangoUser, name: str) -> AnkiClient:
    """A new device that full-downloads what the server holds now."""
    client = make_client(cluster.endpoint, name)
    client.login(user.username, user.password)
    assert required_name(client.sync()) == required_name(FULL_DOWNLOAD)
    client.full_download()
    return client


def sync_until_done(
    client: AnkiClient,
    failures: list[str],
    retries: threading.Lock | None = None,
    attempts: int = 10,
) -> None:
    """A sync that another device's sync may end on the server (a new `start` ends the open
    sync of the user, on whichever node: that device is told to try again), retried until it
    passes, as a user would press sync again. Retries take `retries`, so that two devices do
    not keep ending each other's syncs in lockstep. Every failure is recorded."""
    for attempt in range(attempts):
        try:
            if attempt == 0 or retries is None:
                required = client.sync()
            else:
                with retries:
                    required = client.sync()
        except (SyncError, NetworkError) as error:
            failures.append(f"{client.name}: {error}")
            continue
        assert required == NO_CHANGES, f"{client.name}: {required_name(required)}"
        return
    raise AssertionError(f"{client.name}: no sync passed in {attempts} attempts: {failures}")


def edit_delete_review(client: AnkiClient, label: str, first: int) -> None:
    """Edits the first field of four notes from the `first`-th on, deletes the next two, and
    answers five cards of the notes after those."""
    col = client.col
    ids = sorted(col.find_notes(""))
    for nid in ids[first : first + 4]:
        note = col.get_note(nid)
        note.fields[0] = f"{note.fields[0]} (edited on {label})"
        col.update_note(note)
    col.remove_notes(ids[first + 4 : first + 6])
    for cid in sorted(col.find_cards(f"nid:{','.join(map(str, ids[first + 6 : first + 11]))}")):
        card = col.get_card(cid)
        card.start_timer()
        col.sched.answerCard(card, 3)


def add_note_with_picture(client: AnkiClient, label: str, colour: tuple[int, int, int]) -> None:
    col = client.col
    name = col.media.write_data(f"from-{label.lower()}.png", tiny_png(*colour))
    note = col.new_note(col.models.by_name("Basic"))
    note["Front"] = f"picture from {label}"
    note["Back"] = f'<img src="{name}">'
    col.add_note(note, col.decks.id(f"From {label}"))


def labelled_notes(client: AnkiClient, prefix: str) -> list[str]:
    """The first fields that start with `prefix`, sorted."""
    fields = client.col.db.list("select flds from notes where flds like ?", f"{prefix}%")
    return sorted(f.split("\x1f")[0] for f in fields)


def package(tmp: Path, tag: str) -> bytes:
    """An .apkg as the web app builds it (genanki), with IMPORT_NOTES notes of `tag`."""
    model = genanki.Model(
        1_707_392_319,
        "Cluster import",
        fields=[{"name": "Front"}, {"name": "Back"}],
        templates=[{"name": "Card 1", "qfmt": "{{Front}}", "afmt": "{{Back}}"}],
    )
    deck = genanki.Deck(2_159_400_110, f"Imported::{tag}")
    for index in range(IMPORT_NOTES):
        deck.add_note(
            genanki.Note(
                model=model, fields=[f"{tag} {index:02}", "back"], guid=f"{tag}-{index:02}"
            )
        )
    path = tmp / f"{tag}.apkg"
    genanki.Package(deck).write_to_file(str(path))
    return path.read_bytes()


def imported(client: AnkiClient, tag: str) -> list[str]:
    return client.col.db.list("select guid from notes where guid like ? order by guid", f"{tag}-%")


def wait_spooled(cluster: Cluster, user: DjangoUser, package: bytes) -> None:
    """Waits until a node has spooled `package` into the user's folder: the import has
    arrived, and next waits for the user's lock."""
    folder = cluster.data_dir / "users" / str(user.id)
    wait_until(
        lambda: any(p.is_file() and p.stat().st_size == len(package) for p in folder.iterdir()),
        "the package spooled on its node",
    )


def open_session(cluster: Cluster, hkey: str, session: str) -> tuple[str, int]:
    """`meta` and `start` of a normal sync, left open; the node holding it and the usn."""
    meta = cluster.call("sync/meta", protocol.meta_payload(), hkey=hkey, session=session)
    assert meta.status == 200, meta
    usn = meta.json()["usn"]
    start = cluster.call(
        "sync/start", {"minUsn": usn, "lnewer": False, "graves": None}, hkey=hkey, session=session
    )
    assert start.status == 200, start
    assert served_by(start) == served_by(meta), "one sync, two nodes"
    return served_by(start), usn


def sync_all(cluster: Cluster, device: AnkiClient) -> set[str]:
    """A sync of the collection, then of the media; the nodes that served them."""
    mark = cluster.log_mark()
    assert device.sync() == NO_CHANGES
    sync_media(device)
    return cluster.sync_nodes_since(mark)


def change_and_sync(
    cluster: Cluster, device: AnkiClient, label: str, first: int, colour: tuple[int, int, int]
) -> set[str]:
    """The device edits, deletes, reviews and adds a note with a picture, then syncs it all;
    the nodes that served the syncs."""
    edit_delete_review(device, label, first=first)
    add_note_with_picture(device, label, colour)
    return sync_all(cluster, device)


def acknowledged_device(cluster: Cluster, make_client, user: DjangoUser) -> AnkiClient:
    """An uploaded device with one more note that a sync has acknowledged."""
    a, _ = uploaded_device(cluster, make_client, user)
    note = a.col.new_note(a.col.models.by_name("Basic"))
    note["Front"] = "acknowledged before the upload"
    a.col.add_note(note, a.col.decks.id("Default"))
    assert a.sync() == NO_CHANGES
    return a


def next_sync_elsewhere_keeps_what_was_acknowledged(
    cluster: Cluster, make_client, user: DjangoUser, a: AnkiClient, dead: str
) -> None:
    """After node `dead` died in an upload: the device's next sync goes through another node,
    and a new device downloads exactly the acknowledged collection."""
    mark = cluster.log_mark()
    assert a.sync() == NO_CHANGES
    served = wait_until(
        lambda: [s for s in cluster.served_since(mark) if s.path.startswith("/sync/meta")],
        "the next sync in nginx's log",
    )
    assert all(s.node and s.node != dead for s in served), served
    c = downloaded_device(cluster, make_client, user, "C")
    assert_in_sync(a.col, c.col)
    assert labelled_notes(c, "acknowledged before") == ["acknowledged before the upload"]


# --- the tests -----------------------------------------------------------------------------------


def test_two_devices_on_two_nodes_sync_edits_deletions_reviews_and_media(
    cluster, database, make_client
):
    user = database.create_user()
    a, node_a = uploaded_device(cluster, make_client, user)
    b = make_client(cluster.endpoint, "B")
    node_b = login_on_other_node(cluster, b, user, avoid=node_a)
    assert required_name(b.sync()) == required_name(FULL_DOWNLOAD)
    b.full_download()

    served_a = change_and_sync(cluster, a, "A", first=0, colour=(255, 0, 0))
    served_b = sync_all(cluster, b)
    served_b |= change_and_sync(cluster, b, "B", first=12, colour=(0, 0, 255))
    served_a |= sync_all(cluster, a)

    # Every request of each device went to its own node, and the two nodes differ.
    assert node_a != node_b
    assert served_a == {node_a}, served_a
    assert served_b == {node_b}, served_b
    assert_in_sync(a.col, b.col)
    assert media_files(a) == media_files(b)
    assert len(media_files(a)) == 2, media_files(a)
    assert labelled_notes(a, "picture from") == ["picture from A", "picture from B"]
    # And a third device, wherever it lands, gets the same collection.
    c = downloaded_device(cluster, make_client, user, "C")
    assert_in_sync(a.col, c.col)


def test_concurrent_syncs_of_one_user_on_two_nodes_lose_nothing(cluster, database, make_client):
    user = database.create_user()
    a, node_a = uploaded_device(cluster, make_client, user, notes=20)
    b = make_client(cluster.endpoint, "B")
    login_on_other_node(cluster, b, user, avoid=node_a)
    assert required_name(b.sync()) == required_name(FULL_DOWNLOAD)
    b.full_download()

    rounds = 6
    failures: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    retries = threading.Lock()
    # Each device edits its own notes (new notes could collide: note ids are milliseconds).
    ids = sorted(a.col.find_notes(""))
    mine = {"A": ids[:rounds], "B": ids[rounds : 2 * rounds]}

    def device(client: AnkiClient, label: str) -> None:
        try:
            for index, nid in enumerate(mine[label]):
                note = client.col.get_note(nid)
                note.fields[0] = f"concurrent {label} {index}"
                client.col.update_note(note)
                # Both devices sync at the same moment, each through its own node.
                barrier.wait(timeout=120)
                sync_until_done(client, failures, retries)
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    threads = [
        threading.Thread(target=device, args=(a, "A")),
        threading.Thread(target=device, args=(b, "B")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=280)
    assert not errors, errors
    # Each side picks up what the other sent last.
    for client in (a, b, a):
        sync_until_done(client, failures)
    expected = sorted(f"concurrent {x} {i}" for x in "AB" for i in range(rounds))
    assert labelled_notes(a, "concurrent") == expected
    assert labelled_notes(b, "concurrent") == expected
    assert_in_sync(a.col, b.col)
    c = downloaded_device(cluster, make_client, user, "C")
    assert_in_sync(a.col, c.col)
    # Every sync that lost the race was told so in words the client shows, never a 500.
    for failure in failures:
        assert "Only one copy of Anki can sync" in failure, failure


def test_kill_9_of_the_node_holding_an_open_sync(cluster, database, make_client):
    user = database.create_user()
    a, _ = uploaded_device(cluster, make_client, user)
    # Acknowledged before the crash: must survive it.
    basic = a.col.models.by_name("Basic")
    for index in range(3):
        note = a.col.new_note(basic)
        note["Front"] = f"acknowledged {index}"
        a.col.add_note(note, a.col.decks.id("Default"))
    assert a.sync() == NO_CHANGES

    hkey = a.auth.hkey
    node, _ = open_session(cluster, hkey, "doomed")
    victim = sorted(a.col.find_notes(""))[0]
    graves = cluster.call(
        "sync/applyGraves",
        {"chunk": {"cards": [], "notes": [victim], "decks": []}},
        hkey=hkey,
        session="doomed",
    )
    assert graves.status == 200, graves
    assert served_by(graves) == node
    cluster.kill(node)

    mark = cluster.log_mark()
    started = time.monotonic()
    assert a.sync() == NO_CHANGES
    took = time.monotonic() - started
    # nginx writes a line just after the answer went out: wait for the sync's `meta`.
    served = wait_until(
        lambda: [s for s in cluster.served_since(mark) if "/sync/" in s.path],
        "the next sync in nginx's log",
    )
    assert all(s.status == 200 for s in served), served
    assert all(s.node and s.node != node for s in served), served
    print(f"next sync after kill -9 of {node}: {took:.2f} s, through {served[0].node}")

    c = downloaded_device(cluster, make_client, user, "C")
    assert_in_sync(a.col, c.col)
    assert victim in c.col.find_notes(""), "the killed session's deletion was committed"
    assert labelled_notes(c, "acknowledged") == [f"acknowledged {i}" for i in range(3)]


def test_kill_9_during_a_full_upload(cluster, database, make_client):
    user = database.create_user()
    a = acknowledged_device(cluster, make_client, user)
    hkey = a.auth.hkey
    node = cluster.node_of(hkey)

    # Another device's collection, streamed as the client streams a full upload, cut short
    # by the death of the node receiving it.
    other = make_client(cluster.endpoint, "other")
    fill_like_a_real_user(other.col, notes=100, reviews=20)
    # Incompressible bulk, so the body takes many chunks.
    note = other.col.new_note(other.col.models.by_name("Basic"))
    note["Front"] = os.urandom(400_000).hex()
    other.col.add_note(note, other.col.decks.id("Default"))
    other.close()
    body = protocol.compress(other.path.read_bytes())
    assert len(body) > 256 * 1024, len(body)
    mark = cluster.log_mark()
    connection = http.client.HTTPSConnection(
        "127.0.0.1", cluster.nginx.https_port, timeout=60, context=cluster.tls.context()
    )
    connection.putrequest("POST", "/sync/upload")
    connection.putheader("anki-sync", protocol.sync_header(hkey, "upload"))
    connection.putheader("Content-Type", "application/octet-stream")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    sent = 0
    while sent < len(body) * 3 // 4:
        piece = body[sent : sent + 16 * 1024]
        connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        sent += len(piece)
    cluster.kill(node)
    # The rest of the body never comes: the device lost its server mid-upload and gives up.
    connection.close()
    upload = wait_until(
        lambda: [s for s in cluster.served_since(mark) if s.path == "/sync/upload"],
        "nginx logging the cut upload",
    )[0]
    assert upload.status != 200, upload
    assert upload.upstreams[0] == cluster.node(node).public_addr, upload

    next_sync_elsewhere_keeps_what_was_acknowledged(cluster, make_client, user, a, node)


@pytest.mark.parametrize("point", ["upload:spooled", "upload:converted"])
def test_a_node_dying_inside_a_full_upload_leaves_the_collection_as_it_was(
    cluster, database, make_client, point
):
    """The same as a kill -9, at a chosen instant inside the node: the upload's body is on
    shared storage, and (converted) the new collection is ready beside the old one."""
    user = database.create_user()
    a = acknowledged_device(cluster, make_client, user)
    hkey = a.auth.hkey
    node = cluster.node_of(hkey)
    # SIDECAR_FAULT_POINT: the process aborts there, as kill -9 would leave it.
    cluster.restart(node, {"SIDECAR_FAULT_POINT": point})
    other = make_client(cluster.endpoint, "other")
    fill_like_a_real_user(other.col, notes=50, reviews=5)
    other.close()

    reply = cluster.call("sync/upload", other.path.read_bytes(), hkey=hkey, session="upload")
    assert reply.status == 502, reply
    wait_until(lambda: not cluster.node(node).is_running(), f"{node} aborting at {point}")

    next_sync_elsewhere_keeps_what_was_acknowledged(cluster, make_client, user, a, node)


def test_kill_9_during_an_import_then_the_retry_delivers_it_once(
    cluster, database, make_client, tmp_path
):
    user = database.create_user()
    a, _ = uploaded_device(cluster, make_client, user)
    hkey = a.auth.hkey
    # A sync holds the user's lock on `node`; the import pushed to that node waits for it.
    node, _ = open_session(cluster, hkey, "blocking")
    data = package(tmp_path, "crash")
    outcome: dict[str, object] = {}

    def push() -> None:
        try:
            outcome["answer"] = push_package(cluster.node(node), user.id, data, key="crash-1")
        except OSError as error:
            outcome["error"] = error

    pusher = threading.Thread(target=push)
    pusher.start()
    # The node spools the package into the user's folder, then waits for the user's lock:
    # the moment to kill it.
    wait_spooled(cluster, user, data)
    assert pusher.is_alive(), f"the import did not wait for the open sync: {outcome}"
    cluster.kill(node)
    pusher.join(timeout=60)
    assert "answer" not in outcome or outcome["answer"][0] != 200, outcome

    # The user's next sync goes to another node; nothing of the import is there.
    assert a.sync() == NO_CHANGES
    assert imported(a, "crash") == []
    c = downloaded_device(cluster, make_client, user, "C")
    assert_in_sync(a.col, c.col)

    # Django retries with the same key on any node: delivered once, and once only.
    alive = [s for s in cluster.sidecars if s.name != node]
    for sidecar in alive:
        status, body = push_package(sidecar, user.id, data, key="crash-1")
        assert status == 200, body
    assert a.sync() == NO_CHANGES
    assert imported(a, "crash") == [f"crash-{i:02}" for i in range(IMPORT_NOTES)]
    assert a.sync() == NO_CHANGES
    assert len(imported(a, "crash")) == IMPORT_NOTES


@pytest.mark.parametrize("point", ["import:merged", "import:recorded"])
def test_a_node_dying_inside_an_import_then_the_retry_delivers_it_once(
    cluster, database, make_client, tmp_path, point
):
    """A kill -9 at a chosen instant inside the import on shared storage: merged into the
    collection but not yet in the ledger, or recorded but not yet answered. Django's retry
    with the same key on another node delivers the notes once, and the devices agree."""
    user = database.create_user()
    a, _ = uploaded_device(cluster, make_client, user)
    node = cluster.node_of(a.auth.hkey)
    cluster.restart(node, {"SIDECAR_FAULT_POINT": point})
    data = package(tmp_path, "inside")
    # The node aborts before it answers: the connection drops (an OSError or urllib's wrapper).
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
        push_package(cluster.node(node), user.id, data, key="inside-1")
    wait_until(lambda: not cluster.node(node).is_running(), f"{node} aborting at {point}")

    alive = [s for s in cluster.sidecars if s.name != node]
    status, body = push_package(alive[0], user.id, data, key="inside-1")
    assert status == 200, body
    assert a.sync() == NO_CHANGES
    assert imported(a, "inside") == [f"inside-{i:02}" for i in range(IMPORT_NOTES)]
    assert a.sync() == NO_CHANGES
    c = downloaded_device(cluster, make_client, user, "C")
    assert_in_sync(a.col, c.col)


def test_an_import_through_one_node_while_syncing_through_another_lands_once(
    cluster, database, make_client, tmp_path
):
    user = database.create_user()
    a, node_a = uploaded_device(cluster, make_client, user)
    importer = next(s for s in cluster.sidecars if s.name != node_a)
    # A sync of the user is open on node_a while the import arrives on the other node.
    open_session(cluster, a.auth.hkey, "running")
    data = package(tmp_path, "busy")
    outcome: dict[str, tuple[int, bytes]] = {}
    pusher = threading.Thread(
        target=lambda: outcome.setdefault("answer", push_package(importer, user.id, data, "b-1"))
    )
    pusher.start()
    wait_spooled(cluster, user, data)
    assert pusher.is_alive(), f"the import did not wait for the sync on {node_a}: {outcome}"
    failures: list[str] = []
    # The device's own sync on node_a replaces the open session and runs to its end; the
    # import waits for it, whichever comes first.
    for _ in range(3):
        sync_until_done(a, failures)
    pusher.join(timeout=120)
    assert outcome["answer"][0] == 200, outcome
    assert json.loads(outcome["answer"][1]), outcome
    sync_until_done(a, failures)
    assert imported(a, "busy") == [f"busy-{i:02}" for i in range(IMPORT_NOTES)]
    # The same push again (Django's retry) on the device's node changes nothing.
    status, body = push_package(cluster.node(node_a), user.id, data, "b-1")
    assert status == 200, body
    sync_until_done(a, failures)
    assert len(imported(a, "busy")) == IMPORT_NOTES
    c = downloaded_device(cluster, make_client, user, "C")
    assert_in_sync(a.col, c.col)


def test_requests_without_a_host_key_are_routed_by_client_address(cluster, database):
    """Logins carry no key, and legacy clients (v8-10) keep theirs in the multipart body: nginx
    hashes the client address for both, so one device's keyless requests all reach one node,
    while keyed requests spread over the nodes by key."""
    user = database.create_user()
    logins = [
        cluster.call("sync/hostKey", {"u": user.username, "p": user.password}) for _ in range(6)
    ]
    assert all(reply.status == 200 for reply in logins), logins
    assert len({served_by(reply) for reply in logins}) == 1
    # A legacy-shaped request (no anki-sync header) from the same address, same node.
    legacy = request(
        cluster.endpoint + "sync/meta",
        "POST",
        body=b"",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        tls=cluster.tls,
    )
    assert legacy.headers.get("x-sidecar-node") == served_by(logins[0]), legacy
    # Keyed requests (here with made-up keys, which every node refuses alike) spread out.
    nodes = set()
    for index in range(30):
        reply = cluster.call("sync/meta", protocol.meta_payload(), hkey=f"made-up-key-{index}")
        assert reply.status == 403, reply
        nodes.add(served_by(reply))
    assert nodes == {s.name for s in cluster.sidecars}, nodes
