"""Management commands find the internal token that scripts/run.sh generated (issue 16, item 2).

Before: outside run.sh, `manage.py sync_stats alice` answered "403 ... missing or wrong bearer
token", because only run.sh's own environment carried the token kept in var/.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support.paths import DJANGO_APP, MANAGE_PY, PYTHON


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SIDECAR_")) and key != "DATABASE_URL"
    }
    env.update(extra)
    return env


def settings_value(env: dict[str, str], expression: str):
    code = f"import json; from config import settings as s; print(json.dumps({expression}))"
    done = subprocess.run(
        [PYTHON, "-c", code], env=env, cwd=DJANGO_APP, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_token_file_is_read_when_the_variable_is_unset(tmp_path: Path):
    token_file = tmp_path / "sidecar-internal-token"
    token_file.write_text("from-the-file\n")

    env = clean_env(SIDECAR_INTERNAL_TOKEN_FILE=str(token_file))
    assert settings_value(env, "s.SIDECAR_INTERNAL_TOKEN") == "from-the-file"

    env["SIDECAR_INTERNAL_TOKEN"] = "from-the-variable"
    assert settings_value(env, "s.SIDECAR_INTERNAL_TOKEN") == "from-the-variable"

    missing = clean_env(SIDECAR_INTERNAL_TOKEN_FILE=str(tmp_path / "absent"))
    assert settings_value(missing, "s.SIDECAR_INTERNAL_TOKEN") == ""


def test_the_default_token_file_is_the_one_run_sh_writes():
    run_sh = (DJANGO_APP.parent / "scripts" / "run.sh").read_text()
    default = settings_value(
        clean_env(), "str(s.BASE_DIR.parent / 'var' / 'sidecar-internal-token')"
    )

    assert default == str(DJANGO_APP.parent / "var" / "sidecar-internal-token")
    assert "persisted_secret sidecar-internal-token" in run_sh


def test_sync_stats_works_from_a_plain_shell(tmp_path: Path, fake_sidecar, stats_payload):
    # A shell without SIDECAR_INTERNAL_TOKEN, as an operator opens one beside run.sh.
    token_file = tmp_path / "sidecar-internal-token"
    token_file.write_text(fake_sidecar.token + "\n")
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        SIDECAR_INTERNAL_URL=fake_sidecar.url,
        SIDECAR_INTERNAL_TOKEN_FILE=str(token_file),
    )

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, str(MANAGE_PY), *args],
            env=env,
            cwd=DJANGO_APP,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "--noinput").returncode == 0
    created = manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model as g; "
        "print(g().objects.create_user('alice', password='x').pk)",
    )
    assert created.returncode == 0, created.stderr
    user_id = int(created.stdout.split()[-1])
    fake_sidecar.answer("GET", f"/internal/v1/users/{user_id}/stats", 200, stats_payload)

    done = manage("sync_stats", "alice", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cards"] == stats_payload["cards"]
    assert fake_sidecar.requests[-1].headers["authorization"] == f"Bearer {fake_sidecar.token}"
