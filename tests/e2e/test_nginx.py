"""The production shape (issue #7): the real Anki client through the real nginx configuration
in nginx/, over HTTPS, to the sidecar and Django under gunicorn on PostgreSQL.

One stack per module, because starting it (database, two sidecars, gunicorn, two nginx) costs
more than the tests: nginx with sync at the root, and a second nginx with sync under `/anki`.
Both run with a deliberately careless global gzip setup, as some distributions and guides ship,
to show that the sync locations stay uncompressed anyway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard
from anki.errors import NetworkError

from support import protocol
from support.client import (
    NO_CHANGES,
    AnkiClient,
    required_name,
    upload_then_download,
)
from support.collection_data import assert_same_collection, fill_like_a_real_user
from support.django_db import DjangoDatabase, DjangoUser, postgres_database
from support.media import media_files, sync_media
from support.nginx import (
    Gunicorn,
    Nginx,
    Tls,
    collect_static,
    make_certificates,
    nginx_binary,
    request,
)
from support.sidecar import Sidecar

pytestmark = pytest.mark.timeout(600)

PREFIX = "/anki"
CARELESS_GZIP = "gzip on; gzip_proxied any; gzip_types *; gzip_min_length 0;"
# Above 20 MiB *after* zstd, which is what nginx's client_max_body_size is compared with.
BIG_BODY_BYTES = 20 * 1024 * 1024


@dataclass
class Stack:
    database: DjangoDatabase
    tls: Tls
    sidecar: Sidecar
    gunicorn: Gunicorn
    nginx: Nginx
    prefix_sidecar: Sidecar
    prefix_nginx: Nginx

    def create_user(self) -> DjangoUser:
        return self.database.create_user()


@pytest.fixture(scope="module")
def stack(postgres_cluster_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if nginx_binary() is None:
        if os.environ.get("TEST_SKIP_NGINX") == "1":
            pytest.skip("nginx skipped on request (TEST_SKIP_NGINX=1)")
        pytest.fail(
            "nginx is not installed: apt-get install nginx (or set NGINX_BIN, or "
            "TEST_SKIP_NGINX=1 to skip these tests explicitly)",
            pytrace=False,
        )
    work = tmp_path_factory.mktemp("nginx-stack")
    database = postgres_database(postgres_cluster_url)
    started: list = []
    try:
        database.migrate()
        tls = make_certificates(work / "tls", "127.0.0.1", "localhost")
        static = collect_static(work / "static", database.url)

        sidecar = Sidecar(
            database.url,
            work / "sidecar",
            {"SIDECAR_IP_HEADER": "x-forwarded-for"},
            name="sidecar-root",
        ).start()
        started.append(sidecar)
        prefix_sidecar = Sidecar(
            database.url,
            work / "sidecar-prefix",
            {"SIDECAR_IP_HEADER": "x-real-ip", "SIDECAR_BASE_PATH": PREFIX},
            name="sidecar-prefix",
        ).start()
        started.append(prefix_sidecar)
        gunicorn = Gunicorn(
            work / "gunicorn",
            {
                "DATABASE_URL": database.url,
                "SIDECAR_INTERNAL_URL": sidecar.internal_url,
                "SIDECAR_INTERNAL_TOKEN": sidecar.internal_token,
            },
        ).start()
        started.append(gunicorn)

        def nginx(name: str, upstream: Sidecar, base_path: str) -> Nginx:
            server = Nginx(
                work / name,
                name=name,
                sidecar_upstream=upstream.public_addr,
                django_upstream=gunicorn.address,
                static_root=static,
                tls=tls,
                sync_base_path=base_path,
                extra_http=CARELESS_GZIP,
            )
            started.append(server)
            return server.start()

        root_nginx = nginx("nginx-root", sidecar, "")
        prefix_nginx = nginx("nginx-prefix", prefix_sidecar, PREFIX)
        yield Stack(database, tls, sidecar, gunicorn, root_nginx, prefix_sidecar, prefix_nginx)
    finally:
        for process in reversed(started):
            process.stop()
        database.drop()


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest, stack: Stack) -> None:
    # Read by the conftest report hook, which attaches each one's `log_excerpt()` (titled by
    # its `name`) to a failing test's report; nginx and gunicorn offer the same two.
    request.node.sidecars = [
        stack.sidecar,
        stack.prefix_sidecar,
        stack.nginx,
        stack.prefix_nginx,
        stack.gunicorn,
    ]


@pytest.fixture
def trusted_ca(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Anki client's TLS stack (rustls with the platform's roots) reads SSL_CERT_FILE when a
    collection's backend builds its HTTP client, so it must be set before the first sync."""
    monkeypatch.setenv("SSL_CERT_FILE", str(stack.tls.ca))


@pytest.fixture
def client(trusted_ca: None, make_client) -> Callable[[str, str], AnkiClient]:
    """The suite's client profiles (`make_client`), made once the test CA is trusted."""
    return make_client


def test_real_client_full_normal_and_media_sync_through_nginx(stack, client):
    user = stack.create_user()
    a = client(stack.nginx.endpoint, "device-a")
    b = client(stack.nginx.endpoint, "device-b")
    fill_like_a_real_user(a.col, notes=150, reviews=30)

    upload_then_download(a, b, user)
    assert_same_collection(a.col, b.col)

    note = a.col.new_note(a.col.models.by_name("Basic"))
    note["Front"] = "added after the full sync"
    note["Back"] = "travels by normal sync"
    a.col.add_note(note, a.col.decks.id("Default"))
    assert required_name(a.sync()) == required_name(NO_CHANGES)
    assert required_name(b.sync()) == required_name(NO_CHANGES)
    assert b.col.find_notes('"Front:added after the full sync"')
    assert_same_collection(a.col, b.col)

    folder = Path(a.col.media.dir())
    (folder / "recording.mp3").write_bytes(os.urandom(2_000_000))
    (folder / "diagram café.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(4000))
    for index in range(30):
        (folder / f"small-{index:02}.bin").write_bytes(os.urandom(500 + index))
    sync_media(a)
    sync_media(b)
    assert len(media_files(b, "sha256")) == 32
    assert media_files(b, "sha256") == media_files(a, "sha256")


def test_collection_over_20_mb_goes_through_without_413(stack, client):
    user = stack.create_user()
    a = client(stack.nginx.endpoint, "big-a")
    b = client(stack.nginx.endpoint, "big-b")
    basic = a.col.models.by_name("Basic")
    deck = a.col.decks.id("Default")
    fields = []
    # Random bytes, base64: text Anki stores as is, and that zstd can shrink only to about 3/4.
    for index in range(120):
        note = a.col.new_note(basic)
        note["Front"] = f"big note {index}"
        note["Back"] = base64.b64encode(os.urandom(230_000)).decode()
        fields.append(note["Back"].encode())
        a.col.add_note(note, deck)
    # The fields alone are a lower bound for the compressed upload body.
    compressed = len(zstandard.ZstdCompressor().compress(b"".join(fields)))
    assert compressed > BIG_BODY_BYTES, f"the upload body would be only {compressed} bytes"

    upload_then_download(a, b, user)

    uploads = re.findall(r'"POST /sync/upload HTTP/1.1" 200 (\d+)', stack.nginx.access_log())
    assert uploads, "nginx logged no successful /sync/upload"
    assert max(int(size) for size in uploads) > BIG_BODY_BYTES
    assert b.col.note_count() == 120
    assert_same_collection(a.col, b.col)


def test_client_trusts_the_private_ca_only_through_ssl_cert_file(stack, client, monkeypatch):
    user = stack.create_user()
    trusting = client(stack.nginx.endpoint, "trusting")
    trusting.login(user.username, user.password)
    assert required_name(trusting.sync()) == required_name(NO_CHANGES)

    # Without it, the same server is refused: so it was SSL_CERT_FILE, not a lax client.
    monkeypatch.delenv("SSL_CERT_FILE")
    refusals_before = unknown_ca_alerts(stack.nginx)
    distrusting = client(stack.nginx.endpoint, "distrusting")
    with pytest.raises(NetworkError):
        distrusting.login(user.username, user.password)
    # nginx saw the client abort the handshake over the CA, not some other network failure. The
    # worker may log it a moment after the client has given up.
    deadline = time.monotonic() + 10
    while unknown_ca_alerts(stack.nginx) == refusals_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert unknown_ca_alerts(stack.nginx) > refusals_before, "nginx logged no 'unknown ca' alert"


def unknown_ca_alerts(server: Nginx) -> int:
    return server.log().count("alert unknown ca")


def test_plain_http_refuses_sync_with_426_and_redirects_browsers(stack, client):
    user = stack.create_user()
    device = client(stack.nginx.plain_endpoint, "plain-http")
    with pytest.raises(NetworkError) as excinfo:
        device.login(user.username, user.password)
    assert "426" in str(excinfo.value)

    for path in ("/sync/hostKey", "/msync/begin"):
        assert request(stack.nginx.http_root + path, "POST", b"").status == 426
    page = request(stack.nginx.http_root + "/admin/?next=/")
    assert page.status == 301
    assert page.headers["location"] == f"{stack.nginx.https_root}/admin/?next=/"
    assert request(stack.nginx.http_root + "/nginx-health").status == 200


def test_internal_api_and_metrics_are_not_reachable_through_nginx(stack):
    user = stack.create_user()
    token = {"Authorization": f"Bearer {stack.sidecar.internal_token}"}
    # The internal listener does serve these, with the token: a 404 through nginx below means
    # "not routed", not "does not exist".
    direct = stack.sidecar.internal_url
    metrics = request(f"{direct}/metrics", headers=token)
    assert metrics.status == 200
    assert b"# TYPE" in metrics.body
    assert request(f"{direct}/internal/v1/users/{user.id}/stats", headers=token).status == 200

    attempts = [
        ("GET", "/metrics"),
        ("GET", f"/internal/v1/users/{user.id}/stats"),
        ("POST", f"/internal/v1/users/{user.id}/reset"),
        ("DELETE", f"/internal/v1/users/{user.id}/host-keys"),
        ("GET", "/sync/../metrics"),
        ("GET", "/sync/%2e%2e/metrics"),
        ("GET", f"/msync/../internal/v1/users/{user.id}/stats"),
        ("GET", f"{PREFIX}/metrics"),
    ]
    for server in (stack.nginx, stack.prefix_nginx):
        for method, path in attempts:
            reply = request(
                server.https_root + path, method, b"" if method != "GET" else None, token, stack.tls
            )
            assert reply.status == 404, f"{method} {server.https_root}{path}: {reply.status}"
            assert b"# TYPE" not in reply.body


def test_sync_answers_keep_original_size_and_are_never_gzipped(stack):
    user = stack.create_user()
    headers = {
        "anki-sync": protocol.sync_header(),
        "Content-Type": "application/octet-stream",
        "Accept-Encoding": "gzip",
    }
    login = json.dumps({"u": user.username, "p": user.password}).encode()
    reply = request(
        stack.nginx.endpoint + "sync/hostKey",
        "POST",
        protocol.compress(login),
        headers,
        stack.tls,
    )
    assert reply.status == 200, reply
    assert "content-encoding" not in reply.headers
    size = int(reply.headers["anki-original-size"])
    body = zstandard.ZstdDecompressor().decompress(reply.body, max_output_size=size)
    assert len(body) == size
    assert json.loads(body)["key"]

    # The careless global gzip really is active: Django's answers through the same nginx are
    # compressed, so the sync location's `gzip off` is what kept the answer above plain.
    css = request(
        stack.nginx.https_root + "/static/admin/css/base.css",
        headers={"Accept-Encoding": "gzip"},
        tls=stack.tls,
    )
    assert css.status == 200
    assert css.headers.get("content-encoding") == "gzip"


def test_sidecar_sees_the_address_nginx_reports_not_one_the_client_claims(stack):
    spoofed = "203.0.113.77"
    for server, sidecar, header in (
        (stack.nginx, stack.sidecar, "X-Forwarded-For"),
        (stack.prefix_nginx, stack.prefix_sidecar, "X-Real-IP"),
    ):
        username = f"nobody-{os.urandom(4).hex()}"
        login = json.dumps({"u": username, "p": "wrong"}).encode()
        reply = request(
            server.endpoint + "sync/hostKey",
            "POST",
            protocol.compress(login),
            {"anki-sync": protocol.sync_header(), header: spoofed},
            stack.tls,
        )
        assert reply.status == 403, reply
        line = re.search(rf"login failed.*username={username}.*", sidecar.log())
        assert line, f"no 'login failed' line for {username} in the {sidecar.name} log"
        assert "ip=127.0.0.1" in line.group(0), line.group(0)
        assert spoofed not in line.group(0)


def test_django_and_its_static_files_are_served_through_nginx(stack):
    home = request(stack.nginx.https_root + "/", tls=stack.tls)
    assert home.status == 200
    assert home.headers["content-type"].startswith("text/html")
    assert request(stack.nginx.https_root + "/admin/login/", tls=stack.tls).status == 200

    css = request(stack.nginx.https_root + "/static/admin/css/base.css", tls=stack.tls)
    assert css.status == 200
    assert css.body == (stack.nginx.static_root / "admin" / "css" / "base.css").read_bytes()
    # Served by nginx from the collectstatic folder, not by Django (DEBUG is off there).
    assert request(f"http://{stack.gunicorn.address}/static/admin/css/base.css").status == 404


def test_sync_under_a_path_prefix(stack, client):
    user = stack.create_user()
    endpoint = stack.prefix_nginx.endpoint
    assert endpoint.endswith(f"{PREFIX}/")
    a = client(endpoint, "prefix-a")
    b = client(endpoint, "prefix-b")
    fill_like_a_real_user(a.col, notes=60, reviews=15)

    upload_then_download(a, b, user)
    assert_same_collection(a.col, b.col)
    (Path(a.col.media.dir()) / "prefixed.ogg").write_bytes(os.urandom(50_000))
    sync_media(a)
    sync_media(b)
    assert media_files(b, "sha256") == media_files(a, "sha256")

    # Outside the prefix, /sync/ is not the sidecar's on this server: Django answers 404.
    outside = request(stack.prefix_nginx.https_root + "/sync/hostKey", "POST", b"", tls=stack.tls)
    assert outside.status == 404


def test_django_form_posts_pass_csrf_checks_over_https_on_any_port(stack):
    """Django compares a POST's Origin with the scheme and host it believes it is serving. Both
    come from nginx (Host with the port, X-Forwarded-Proto through gunicorn), and the test's
    HTTPS port is never 443, so a Host without the port would fail here."""
    user = stack.create_user()
    root = stack.nginx.https_root
    page = request(f"{root}/admin/login/", tls=stack.tls)
    assert page.status == 200
    cookie = re.search(r"csrftoken=([^;]+)", page.headers["set-cookie"]).group(1)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)
    form = (
        f"csrfmiddlewaretoken={token.decode()}&username={user.username}"
        f"&password={user.password}&next=/admin/"
    )
    reply = request(
        f"{root}/admin/login/",
        "POST",
        form.encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie}",
            "Origin": root,
            "Referer": f"{root}/admin/login/",
        },
        stack.tls,
    )
    # 403 would be the CSRF failure. A user who is not staff gets the form back with an error.
    assert reply.status == 200, reply.body[:500]
    assert b"staff account" in reply.body


def test_legacy_client_syncs_through_nginx(stack, trusted_ca, tmp_path):
    """Anki 2.1.50 (multipart, gzip, a chunked upload, the media `begin` GET) passes nginx
    unchanged, and a second 2.1.50 device gets everything back through it."""
    from support.client_matrix import RemoteClient

    user = stack.create_user()
    # Its TLS stack does not accept an IP address as the server name; the certificate also
    # names localhost.
    endpoint = stack.nginx.endpoint.replace("://127.0.0.1:", "://localhost:")
    devices = [
        RemoteClient("2.1.50", tmp_path / name, endpoint, name=name)
        for name in ("legacy-a", "legacy-b")
    ]
    a, b = devices
    try:
        a.add_notes(prefix="through nginx", count=40, tags=["nginx"])
        a.login(username=user.username, password=user.password)
        b.login(username=user.username, password=user.password)
        assert a.sync() == "FULL_UPLOAD"
        a.full_upload()
        assert b.sync() in {"FULL_DOWNLOAD", "FULL_SYNC"}
        b.full_download()
        a.add_notes(prefix="normal sync", count=3)
        assert a.sync() == "NO_CHANGES"
        assert b.sync() == "NO_CHANGES"
        assert a.content() == b.content()
        files = {"legacy picture.png": b"\x89PNG\r\n\x1a\n" + os.urandom(300_000)}
        a.write_media(files={n: base64.b64encode(d).decode() for n, d in files.items()})
        a.sync_media()
        b.sync_media()
        assert b.media_files() == {n: hashlib.sha1(d).hexdigest() for n, d in files.items()}
    finally:
        for device in devices:
            device.close()
    log = stack.nginx.access_log()
    assert re.search(r'"POST /sync/upload HTTP/1.1" 200 ', log), "no legacy upload through nginx"
    assert re.search(r'"GET /msync/begin\?k=\S+ HTTP/1.1" 200 ', log), "no legacy media begin"
