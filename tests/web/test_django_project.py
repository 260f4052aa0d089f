"""The Django project: settings from the environment, the home page, the admin."""

import json
import os
import subprocess

import pytest
from django.conf import settings
from django.contrib.auth.hashers import get_hashers, make_password

from support.paths import DJANGO_APP, PYTHON

# Hash prefixes the sidecar verifies (docs/design.md#authentication); a hasher Django writes must be
# one of them.
SIDECAR_ALGORITHMS = {"pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt"}


def settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    """Imports the settings module fresh, with exactly this environment."""
    code = f"import json; from config import settings as s; print(json.dumps({expression}))"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [PYTHON, "-c", code],
        env={**clean, **env},
        cwd=DJANGO_APP,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_database_url_is_read_from_the_environment():
    url = "postgres://anki:s3cret@db.internal:6543/ankidb"
    done = settings_in_subprocess({"DATABASE_URL": url}, 's.DATABASES["default"]')

    assert done.returncode == 0, done.stderr
    database = json.loads(done.stdout)
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.internal", 6543, "ankidb")
    assert (database["USER"], database["PASSWORD"]) == ("anki", "s3cret")


def test_default_database_is_sqlite_beside_manage_py():
    done = settings_in_subprocess({}, 's.DATABASES["default"]')

    assert done.returncode == 0, done.stderr
    database = json.loads(done.stdout)
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(DJANGO_APP / "db.sqlite3")


def test_debug_off_refuses_the_public_development_key():
    done = settings_in_subprocess({"DJANGO_DEBUG": "0"}, "s.DEBUG")

    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY" in done.stderr


def test_production_settings_come_from_the_environment():
    env = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "a-real-secret-from-the-environment",
        "DJANGO_ALLOWED_HOSTS": "anki.example.org, www.anki.example.org",
        "ANKI_SYNC_PUBLIC_URL": "https://anki.example.org/sync-base/",
        "SIDECAR_INTERNAL_URL": "http://10.1.2.3:9000",
        "SIDECAR_INTERNAL_TOKEN": "token-from-env",
    }
    expression = (
        "[s.DEBUG, s.SECRET_KEY, s.ALLOWED_HOSTS, s.ANKI_SYNC_PUBLIC_URL,"
        " s.SIDECAR_INTERNAL_URL, s.SIDECAR_INTERNAL_TOKEN]"
    )
    done = settings_in_subprocess(env, expression)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        False,
        env["DJANGO_SECRET_KEY"],
        ["anki.example.org", "www.anki.example.org"],
        env["ANKI_SYNC_PUBLIC_URL"],
        env["SIDECAR_INTERNAL_URL"],
        env["SIDECAR_INTERNAL_TOKEN"],
    ]


def test_django_and_the_sidecar_accept_the_same_hash_formats():
    # A format only Django knows would let a user log in to the website but not sync; one only
    # the sidecar knows would let a hash that Django cannot check into the user table.
    configured = {hasher.algorithm for hasher in get_hashers()}

    assert len(configured) == len(settings.PASSWORD_HASHERS)
    assert configured == SIDECAR_ALGORITHMS


def test_new_passwords_use_pbkdf2_sha256():
    # The first hasher is the one Django writes (and upgrades to on login).
    assert make_password("correct horse").startswith("pbkdf2_sha256$")


def test_home_page_tells_users_the_sync_url(client, settings):
    settings.ANKI_SYNC_PUBLIC_URL = "https://sync.example.test/anki/"

    response = client.get("/")

    assert response.status_code == 200
    assert b"https://sync.example.test/anki/" in response.content


@pytest.mark.django_db
def test_admin_is_served_under_admin(client, django_user_model):
    django_user_model.objects.create_superuser("root", password="a-long-admin-password")

    assert client.get("/admin/").status_code == 302
    client.login(username="root", password="a-long-admin-password")
    assert client.get("/admin/").status_code == 200
