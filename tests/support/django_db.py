"""Fresh Django databases for the suite: SQLite files, or databases in a PostgreSQL cluster.

Everything Django does here runs in subprocesses with the backend's DATABASE_URL: `migrate`
through `manage.py`, users through `django_cli.py`. The sidecar then reads the very rows and
password hashes that Django wrote.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from support.paths import DJANGO_APP, MANAGE_PY, PYTHON

DJANGO_CLI = Path(__file__).resolve().parent / "django_cli.py"
DJANGO_TIMEOUT = 120


@dataclass
class DjangoUser:
    id: int
    username: str
    password: str
    # The encoded hash as Django stored it, e.g. "pbkdf2_sha256$1000000$...".
    encoded: str


@dataclass
class DjangoDatabase:
    kind: str
    url: str
    _drop: list = field(default_factory=list, repr=False)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DATABASE_URL"] = self.url
        env.pop("SIDECAR_DATABASE_URL", None)
        return env

    def run_django(self, *args: str, script: Path = MANAGE_PY) -> str:
        completed = subprocess.run(
            [PYTHON, str(script), *args],
            env=self.env(),
            cwd=DJANGO_APP,
            capture_output=True,
            text=True,
            timeout=DJANGO_TIMEOUT,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"django {' '.join(args)} failed ({completed.returncode}) on {self.kind}:\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        return completed.stdout

    def migrate(self) -> None:
        self.run_django("migrate", "--noinput")

    def _user_command(self, *args: str) -> dict:
        return json.loads(self.run_django(*args, script=DJANGO_CLI))

    def create_user(
        self, username: str | None = None, password: str | None = None, *, active: bool = True
    ) -> DjangoUser:
        username = username or f"user-{secrets.token_hex(4)}"
        password = password or f"pw-{secrets.token_urlsafe(12)}"
        args = ["create-user", "--username", username, "--password", password]
        if not active:
            args.append("--inactive")
        row = self._user_command(*args)
        return DjangoUser(row["id"], username, password, row["password"])

    def set_password(self, user: DjangoUser, password: str) -> None:
        row = self._user_command(
            "set-password", "--username", user.username, "--password", password
        )
        user.password = password
        user.encoded = row["password"]

    def set_active(self, user: DjangoUser, active: bool) -> None:
        self._user_command(
            "set-active", "--username", user.username, "--active", "yes" if active else "no"
        )

    def drop(self) -> None:
        for action in self._drop:
            action()


def sqlite_database(folder: Path) -> DjangoDatabase:
    path = (folder / "django.sqlite3").resolve()
    # dj-database-url form: "sqlite:///" followed by the absolute path, hence four slashes.
    return DjangoDatabase("sqlite", f"sqlite:///{path}")


def postgres_database(cluster_url: str) -> DjangoDatabase:
    """Creates an empty database in the cluster; `drop()` removes it again."""
    import psycopg

    name = f"anki_test_{secrets.token_hex(6)}"
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(cluster_url)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    database = DjangoDatabase("postgres", url)

    def drop() -> None:
        with psycopg.connect(cluster_url, autocommit=True) as conn:
            # FORCE: a sidecar killed a moment ago may still hold a connection.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    database._drop.append(drop)
    return database
