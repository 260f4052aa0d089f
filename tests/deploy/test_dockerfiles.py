"""Every file a Dockerfile copies from the build context is let in by its `.dockerignore`.

There is no Docker engine on CI machines, so the images are never built there. A `COPY` of a
path the ignore file keeps out only fails at `docker build` time, on the operator's machine.
This reads each `docker/<name>.Dockerfile`, finds its `COPY` sources, and applies the rules of
`docker/<name>.Dockerfile.dockerignore` to the tracked files under each source, as Docker does:
the rules in order, the last one that matches a path or one of its parent folders decides, and
`!` lets a path back in.
"""

from __future__ import annotations

import fnmatch
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.splitlines()


def ignore_file(dockerfile: Path) -> Path:
    """`docker/<name>.Dockerfile.dockerignore`, which Docker reads instead of a shared one."""
    return dockerfile.with_name(dockerfile.name + ".dockerignore")


def ignore_rules(dockerfile: Path) -> list[tuple[bool, str]]:
    """(lets in, pattern) per line of the Dockerfile's own ignore file."""
    rules = []
    for line in ignore_file(dockerfile).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        lets_in = line.startswith("!")
        rules.append((lets_in, line.lstrip("!").strip("/")))
    return rules


def admitted(path: str, rules: list[tuple[bool, str]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = True
    for lets_in, pattern in rules:
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            verdict = lets_in
    return verdict


def copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths of every `COPY` that does not copy from another stage."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        if not line.upper().startswith("COPY "):
            continue
        words = shlex.split(line, comments=True)
        if any(word.startswith("--from") for word in words[1:]):
            continue
        arguments = [word for word in words[1:] if not word.startswith("--")]
        sources.extend(source.strip("/").removeprefix("./") for source in arguments[:-1])
    return sources


def test_there_are_dockerfiles_with_their_own_ignore_files():
    assert DOCKERFILES, "docker/*.Dockerfile"
    for dockerfile in DOCKERFILES:
        assert ignore_file(dockerfile).exists(), dockerfile


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_every_copied_file_is_in_the_build_context(dockerfile: Path):
    rules = ignore_rules(dockerfile)
    files = tracked_files()
    sources = copy_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing from the build context"
    for source in sources:
        if source in files:
            assert admitted(source, rules), f"{dockerfile.name}: the ignore file keeps out {source}"
            continue
        # A folder: the ignore file may keep some of it out (tests, caches), not all of it.
        under = [path for path in files if path.startswith(source + "/")]
        assert under, f"{dockerfile.name}: COPY {source}: no such file or folder"
        assert any(admitted(path, rules) for path in under), (
            f"{dockerfile.name}: the ignore file keeps out all of {source}/"
        )


def test_the_sidecar_build_reads_the_cargo_configuration():
    """`.cargo/config.toml` sets how SQLite is compiled; the image must be built with it."""
    assert ".cargo" in copy_sources(ROOT / "docker" / "sidecar.Dockerfile")


def test_the_rules_follow_docker_s_order():
    rules = [(False, "*"), (True, "sidecar"), (False, "sidecar/tests")]
    assert admitted("sidecar/src/main.rs", rules)
    assert not admitted("sidecar/tests/limits_http.rs", rules)
    assert not admitted("bench/loadgen/Cargo.toml", rules)
    assert admitted("bench/loadgen/Cargo.toml", [*rules, (True, "bench/loadgen")])
