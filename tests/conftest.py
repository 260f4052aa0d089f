"""Fixtures of the end-to-end suite.

`backend` is parametrised over SQLite and PostgreSQL. Per backend and run there is one fresh
database, migrated by real Django; per test there is a fresh sidecar process (own data folder,
own internal token, kernel-chosen ports) on that database. Tests create their own users, with
unique names, so they share the database without sharing state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.client import AnkiClient
from support.django_db import DjangoDatabase, DjangoUser, postgres_database, sqlite_database
from support.sidecar import Sidecar, SidecarError
from support.web import DjangoServer


@pytest.fixture(scope="session")
def postgres_cluster_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL", "")
    if url:
        return url
    if os.environ.get("TEST_SKIP_POSTGRES") == "1":
        pytest.skip("PostgreSQL skipped on request (TEST_SKIP_POSTGRES=1)")
    pytest.fail(
        "TEST_POSTGRES_URL is not set. Run scripts/test.sh (it starts a throwaway cluster), "
        "or scripts/with-postgres.sh .venv/bin/pytest ..., or set TEST_SKIP_POSTGRES=1.",
        pytrace=False,
    )


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def django_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DjangoDatabase]:
    if request.param == "sqlite":
        database = sqlite_database(tmp_path_factory.mktemp("sqlite"))
    else:
        database = postgres_database(request.getfixturevalue("postgres_cluster_url"))
    try:
        database.migrate()
        yield database
    finally:
        database.drop()


@dataclass
class Backend:
    """A migrated Django database and the sidecars a test started on it."""

    database: DjangoDatabase
    work_dir: Path
    sidecars: list[Sidecar] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.database.kind

    @property
    def sidecar(self) -> Sidecar:
        return self.sidecars[0]

    @property
    def url(self) -> str:
        """The endpoint an Anki client is given, with its trailing slash."""
        return self.sidecar.url

    def start_sidecar(
        self, extra_env: dict[str, str] | None = None, wrapper: list[str] | None = None
    ) -> Sidecar:
        name = f"sidecar-{len(self.sidecars) + 1}"
        sidecar = Sidecar(
            self.database.url, self.work_dir / name, extra_env, name=name, wrapper=wrapper
        )
        self.sidecars.append(sidecar)
        return sidecar.start()

    def create_user(self, *, active: bool = True) -> DjangoUser:
        return self.database.create_user(active=active)

    def stop(self) -> None:
        for sidecar in self.sidecars:
            sidecar.stop()


# After this many sidecars in a row failed to start on one database, the remaining tests on it
# fail at once with the last error, instead of each waiting out the start timeout: a sidecar
# that cannot become healthy on a backend would otherwise cost the suite minutes per test.
STARTUP_FAILURES_BEFORE_FAST_FAIL = 2
_startup_failures: dict[str, list[str]] = {}


@pytest.fixture
def backend(
    request: pytest.FixtureRequest, django_database: DjangoDatabase, tmp_path: Path
) -> Iterator[Backend]:
    failures = _startup_failures.setdefault(django_database.url, [])
    if len(failures) >= STARTUP_FAILURES_BEFORE_FAST_FAIL:
        pytest.fail(
            f"not started: the last {len(failures)} sidecars on this {django_database.kind} "
            f"database failed to start; the last one said:\n{failures[-1]}",
            pytrace=False,
        )
    backend = Backend(django_database, tmp_path / "backend")
    # Read by pytest_runtest_makereport, which attaches the logs to a failing test's report.
    request.node.sidecars = backend.sidecars
    try:
        try:
            backend.start_sidecar()
        except SidecarError as error:
            failures.append(str(error))
            raise
        failures.clear()
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., AnkiClient]]:
    """Fresh client profiles, each in its own folder, closed at teardown."""
    clients: list[AnkiClient] = []

    def make(endpoint: str, name: str | None = None) -> AnkiClient:
        name = name or f"client-{len(clients) + 1}"
        client = AnkiClient(tmp_path / "clients" / name, endpoint, name=name)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def web(backend: Backend, tmp_path: Path) -> Iterator[DjangoServer]:
    """The Django web app as a real server process, on the backend's database and sidecar."""
    server = DjangoServer(backend.database.url, backend.sidecar, tmp_path / "web").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        for sidecar in getattr(item, "sidecars", []):
            report.sections.append((f"{sidecar.name} log ({report.when})", sidecar.log_excerpt()))
    return report
