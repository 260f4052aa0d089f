"""Runs the real `anki-sidecar` binary as a subprocess on free loopback ports."""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.paths import ROOT, sidecar_binary
from support.processes import stop_process

# A healthy start takes well under a second; the margin is for a loaded CI machine.
START_TIMEOUT = 30
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
LISTENING = re.compile(r"listening public=(\S+) internal=(\S+)")

# Defaults for every test sidecar. The login throttle counts failures per client IP in the
# database, and every test connects from 127.0.0.1 to one shared database per backend, so the
# production default (10) would let one test's deliberate failures lock out the next test.
# A test of the throttle itself starts its own sidecar with a low limit.
HARNESS_ENV = {
    "SIDECAR_LOGIN_MAX_FAILURES": "100000",
    "RUST_LOG": "info",
    "NO_COLOR": "1",
}


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: if pytest is killed outright (a CI timeout, kill -9),
    no fixture teardown runs, and the sidecar would outlive the run holding its ports and
    database connections. The kernel sends it SIGTERM when its parent goes away."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class SidecarError(RuntimeError):
    pass


class Sidecar:
    """One running sidecar. `url` is the endpoint to give Anki (with its trailing slash)."""

    def __init__(
        self,
        database_url: str,
        work_dir: Path,
        extra_env: dict[str, str] | None = None,
        name: str = "sidecar",
        wrapper: list[str] | None = None,
    ):
        self.name = name
        # A command the binary runs under, e.g. ["prlimit", "--as=...", "--"].
        self.wrapper = list(wrapper or [])
        self.binary = sidecar_binary()
        if not self.binary.is_file():
            raise SidecarError(
                f"{self.binary} does not exist: run `cargo build --release -p anki-sidecar` "
                "(or set SIDECAR_BIN to a built binary)"
            )
        work_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = work_dir / "data"
        self.log_path = work_dir / f"{name}.log"
        self.internal_token = secrets.token_hex(16)
        self.base_path = (extra_env or {}).get("SIDECAR_BASE_PATH", "").strip("/")
        self.env = dict(os.environ)
        # Only the database under test must reach the sidecar; the test run's own environment
        # could carry a DATABASE_URL for something else.
        self.env.pop("DATABASE_URL", None)
        self.env.update(HARNESS_ENV)
        self.env.update(
            {
                "SIDECAR_DATABASE_URL": database_url,
                "SIDECAR_DATA_DIR": str(self.data_dir),
                "SIDECAR_PUBLIC_ADDR": "127.0.0.1:0",
                "SIDECAR_INTERNAL_ADDR": "127.0.0.1:0",
                "SIDECAR_INTERNAL_TOKEN": self.internal_token,
            }
        )
        self.env.update(extra_env or {})
        self.process: subprocess.Popen | None = None
        self.public_addr = ""
        self.internal_addr = ""

    @property
    def root_url(self) -> str:
        return f"http://{self.public_addr}"

    @property
    def url(self) -> str:
        prefix = f"/{self.base_path}" if self.base_path else ""
        return f"{self.root_url}{prefix}/"

    @property
    def internal_url(self) -> str:
        return f"http://{self.internal_addr}"

    def log(self) -> str:
        try:
            return ANSI_ESCAPE.sub("", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def start(self) -> Sidecar:
        with self.log_path.open("wb") as log:
            # Ports are chosen by the kernel (port 0) and read back from the log line, so there
            # is no window in which another process could take a port picked in advance.
            self.process = subprocess.Popen(
                [*self.wrapper, str(self.binary), "serve"],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.public_addr:
            if self.process.poll() is not None:
                raise SidecarError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise SidecarError(
                    f"{self.name} did not report its listeners:\n{self.log_excerpt()}"
                )
            match = LISTENING.search(self.log())
            if match:
                self.public_addr, self.internal_addr = match.group(1), match.group(2)
            else:
                time.sleep(0.05)
        self.wait_healthy(deadline)
        return self

    def health(self, timeout: float = 5) -> tuple[int, str]:
        request = urllib.request.Request(f"{self.url}health")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def health_status(self, timeout: float = 5) -> int:
        return self.health(timeout)[0]

    def wait_healthy(self, deadline: float) -> None:
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SidecarError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                status, body = self.health(timeout=2)
                if status == 200:
                    return
                last = f"HTTP {status}: {body.strip()}"
            except OSError as error:
                last = str(error)
            time.sleep(0.1)
        self.stop()
        raise SidecarError(
            f"{self.name} never became healthy (last /health: {last}):\n{self.log_excerpt()}"
        )

    def log_excerpt(self, head: int = 40, tail: int = 200) -> str:
        """The start (settings, migrations) and the end of the log, without the health polls."""
        lines = [line for line in self.log().splitlines() if "path=/health" not in line]
        if len(lines) <= head + tail:
            return "\n".join(lines)
        skipped = len(lines) - head - tail
        return "\n".join([*lines[:head], f"... {skipped} lines left out ...", *lines[-tail:]])

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process)
