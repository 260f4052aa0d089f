"""scripts/run.sh: it reports success only when its own sidecar answers (issue 16, item 1),
and scripts/test.sh runs the Rust tests that need the real client (item 4).

run.sh normally builds the sidecar in release mode; here it runs the suite's binary through
RUN_SIDECAR_BIN, so a test costs a migration and a start, not a build.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support.paths import ROOT, sidecar_binary

RUN_SH = ROOT / "scripts" / "run.sh"
# A bound on every wait: run.sh migrates a fresh SQLite database before it starts anything.
RUN_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_env(tmp_path: Path, **addresses: str) -> dict[str, str]:
    binary = sidecar_binary()
    if not binary.is_file():
        pytest.fail(f"no sidecar binary at {binary}: cargo build --release -p anki-sidecar")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SIDECAR_", "ANKI_SYNC_")) and key != "DATABASE_URL"
    }
    env.update(
        {
            "RUN_SIDECAR_BIN": str(binary),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "SIDECAR_DATA_DIR": str(tmp_path / "data"),
            "DJANGO_SECRET_KEY": "test-only-secret",
            "SIDECAR_INTERNAL_TOKEN": "test-only-token",
            "SIDECAR_PUBLIC_ADDR": f"127.0.0.1:{free_port()}",
            "SIDECAR_INTERNAL_ADDR": f"127.0.0.1:{free_port()}",
            "DJANGO_ADDR": f"127.0.0.1:{free_port()}",
            "TMPDIR": str(tmp_path),
        }
    )
    env.update(addresses)
    return env


class OtherInstance:
    """Something already listening on a port and answering `GET /health` with 200, as a
    second copy of the product would."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    "variable", ["SIDECAR_PUBLIC_ADDR", "SIDECAR_INTERNAL_ADDR", "DJANGO_ADDR"]
)
def test_a_taken_address_fails_and_names_the_variable(tmp_path: Path, variable: str):
    other = OtherInstance()
    try:
        done = subprocess.run(
            ["bash", str(RUN_SH)],
            env=run_env(tmp_path, **{variable: other.address}),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
    finally:
        other.close()

    assert done.returncode != 0
    assert "is running" not in done.stdout
    assert f"{other.address} cannot be used" in done.stderr
    assert f"{variable}=" in done.stderr


def test_run_sh_starts_both_and_stops_on_ctrl_c(tmp_path: Path):
    env = run_env(tmp_path)
    process = subprocess.Popen(
        ["bash", str(RUN_SH)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # As in a terminal: a suite started in the background (`cmd &` in a script) would pass
        # SIGINT down ignored, and bash cannot trap a signal ignored at its start.
        preexec_fn=_default_sigint,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while "is running" not in "".join(output) and process.poll() is None:
            assert time.monotonic() < deadline, "".join(output)
            time.sleep(0.2)
        assert process.poll() is None, "".join(output)
        text = "".join(output)
        assert "listening public=" in text
        assert f"http://{env['SIDECAR_PUBLIC_ADDR']}/" in text
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=10)
    assert "stopped" in "".join(output)


def test_test_sh_runs_the_rust_tests_that_need_the_real_client():
    script = (ROOT / "scripts" / "test.sh").read_text()
    ignored = [
        path
        for path in (ROOT / "sidecar").rglob("*.rs")
        if "#[ignore" in path.read_text(errors="replace")
    ]

    assert ignored, "the real-client Rust tests moved; update this test"
    assert 'ANKI_PYTHON="$PY" cargo test' in script
    assert "--include-ignored" in script


def test_test_sh_gives_the_cluster_tests_their_postgresql():
    """The cluster-mode Rust tests (issue 15) skip without TEST_POSTGRES_URL, so the throwaway
    PostgreSQL must be up before cargo test runs."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    cluster_tests = (ROOT / "sidecar" / "tests" / "cluster_http.rs").read_text()

    assert "TEST_POSTGRES_URL" in cluster_tests
    assert script.index('step "start PostgreSQL"') < script.index('step "cargo test"')
