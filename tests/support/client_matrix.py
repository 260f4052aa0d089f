"""Real Anki clients of several versions, each in its own venv, each device in its own process.

The client versions under test and their pinned requirements are in `tests/clients/`. A venv
per version is made under `.venv-clients/<version>/` (gitignored) the first time it is needed,
and remade when its requirements file changes; `scripts/test.sh` makes them all before pytest
(`python tests/support/client_matrix.py`), so CI needs nothing by hand.

A `RemoteClient` is one device: `tests/support/anki_adapter.py` running in that version's
venv, driven with one JSON line per step and a deadline on every step.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import venv
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from support.paths import ROOT

CLIENTS_DIR = ROOT / "tests" / "clients"
VENVS_DIR = ROOT / ".venv-clients"
ADAPTER = ROOT / "tests" / "support" / "anki_adapter.py"

# Oldest first. 2.1.50-2.1.56 speak the legacy protocol (sync v10); the rest speak v11.
CLIENT_VERSIONS = [
    "2.1.50",
    "2.1.54",
    "2.1.56",
    "2.1.66",
    "23.12.1",
    "24.11",
    "25.2.7",
    "25.9.5",
    "26.9.3",
]
LEGACY_VERSIONS = ("2.1.50", "2.1.54", "2.1.56")

STEP_TIMEOUT = 180
START_TIMEOUT = 60


def version_numbers(version: str) -> tuple[int, ...]:
    """`25.02.7` and `25.2.7` are the same version."""
    return tuple(int(part) for part in version.split("."))


def requirements_file(version: str) -> Path:
    return CLIENTS_DIR / f"anki-{version}.txt"


def client_python(version: str) -> Path:
    """The Python of this version's venv, made or remade if its requirements changed."""
    requirements = requirements_file(version)
    if not requirements.is_file():
        raise FileNotFoundError(f"no pinned requirements for anki {version}: {requirements}")
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    folder = VENVS_DIR / version
    marker = folder / ".requirements-sha256"
    python = folder / "bin" / "python"
    if python.exists() and marker.exists() and marker.read_text().strip() == wanted:
        return python
    print(f"==> client venv for anki {version}", file=sys.stderr, flush=True)
    # No pip inside: the test run's own pip installs into it (much faster than ensurepip).
    venv.EnvBuilder(clear=True, with_pip=False).create(folder)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
            str(requirements),
        ],
        check=True,
    )
    subprocess.run([str(python), "-c", "import anki.collection"], check=True)
    marker.write_text(wanted + "\n")
    return python


class StepTimeout(AssertionError):
    pass


class ClientError(Exception):
    """A step the client refused: `message` is what Anki would show the user."""

    def __init__(self, answer: dict):
        self.message = answer["error"]
        self.type = answer["type"]
        self.auth = answer["auth"]
        self.traceback = answer.get("traceback", "")
        super().__init__(f"{self.type}: {self.message}")


class RemoteClient:
    """One device on one client version, in its own process."""

    def __init__(self, version: str, folder: Path, endpoint: str, name: str = "client"):
        self.version = version
        self.name = f"{name} ({version})"
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "client.log"
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(client_python(version)), str(ADAPTER), endpoint, str(folder / "profile")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
            )
        self.answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        reported = self.call("version", timeout=START_TIMEOUT)
        assert version_numbers(reported) == version_numbers(version), reported

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(line)
        self.answers.put(None)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def call(self, op: str, timeout: float = STEP_TIMEOUT, **args):
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
            self.process.stdin.flush()
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            self.process.kill()
            raise StepTimeout(f"{self.name}: {op} did not finish within {timeout} s") from None
        except BrokenPipeError:
            line = None
        if line is None:
            raise AssertionError(f"{self.name} exited during {op}:\n{self.log()}")
        answer = json.loads(line)
        if "error" in answer:
            raise ClientError(answer)
        return answer["ok"]

    def __getattr__(self, op: str):
        if op.startswith("_"):
            raise AttributeError(op)
        return lambda **args: self.call(op, **args)

    def sync(self) -> str:
        """A collection sync; the name of what the client says is still required."""
        return self.call("sync")["required"]

    def full_upload(self) -> None:
        self.call("full_sync", upload=True)

    def full_download(self) -> None:
        self.call("full_sync", upload=False)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(AssertionError, ClientError):
                self.call("close", timeout=30)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


if __name__ == "__main__":
    # scripts/test.sh: make every client venv before the suite runs. Mostly downloads, so a
    # few at a time.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        for python in pool.map(client_python, sys.argv[1:] or CLIENT_VERSIONS):
            print(python)
