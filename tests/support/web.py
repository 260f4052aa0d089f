"""The web app in tests: a real Django server process, a headless Chromium, small media.

`DjangoServer` runs `manage.py runserver` (no autoreload) on a free loopback port, with the
backend's DATABASE_URL and the sidecar's internal URL and token, so that the browser, Django,
the sidecar and the Anki client all meet in one database. `open_browser` drives Debian's
Chromium through Playwright (no browser is downloaded).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest

from support.paths import DJANGO_APP, MANAGE_PY, PYTHON
from support.processes import stop_process

START_TIMEOUT = 60
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def tiny_png(red: int = 255, green: int = 0, blue: int = 0, size: int = 2) -> bytes:
    """A valid RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes([red, green, blue]) * size
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def chromium_path() -> str:
    """Debian's Chromium (`apt-get install chromium`), or CHROMIUM_BIN. With
    TEST_SKIP_BROWSER=1 the calling test is skipped instead (CI never sets it)."""
    if os.environ.get("TEST_SKIP_BROWSER") == "1":
        pytest.skip("browser tests skipped on request (TEST_SKIP_BROWSER=1)")
    path = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        raise RuntimeError(
            "Chromium not found: install Debian's chromium package (apt-get install chromium), "
            "set CHROMIUM_BIN, or set TEST_SKIP_BROWSER=1 to skip the browser tests"
        )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DjangoServer:
    def __init__(self, database_url: str, sidecar, work_dir: Path):
        work_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work_dir / "django.log"
        self.media_root = work_dir / "media"
        self.env = dict(os.environ)
        self.env.update(
            {
                "DATABASE_URL": database_url,
                "DJANGO_DEBUG": "1",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DJANGO_MEDIA_ROOT": str(self.media_root),
                "SIDECAR_INTERNAL_URL": sidecar.internal_url,
                "SIDECAR_INTERNAL_TOKEN": sidecar.internal_token,
                "ANKI_SYNC_PUBLIC_URL": sidecar.url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.pop("SIDECAR_DATABASE_URL", None)
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, str(MANAGE_PY), *args],
            env=self.env,
            cwd=DJANGO_APP,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> DjangoServer:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [PYTHON, str(MANAGE_PY), "runserver", "--noreload", f"127.0.0.1:{self.port}"],
                env=self.env,
                cwd=DJANGO_APP,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Django exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Django did not answer within {START_TIMEOUT} s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.process)


def open_browser(playwright):
    """Headless Debian Chromium with a phone-sized page."""
    browser = playwright.chromium.launch(
        executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True
    )
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    context.set_default_timeout(30_000)
    return browser, context.new_page()
