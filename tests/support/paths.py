"""Where things are, independent of the directory pytest was started from."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DJANGO_APP = ROOT / "django_app"
MANAGE_PY = DJANGO_APP / "manage.py"
# Django runs in subprocesses with the interpreter of the test run, so that it sees the same
# pinned packages.
PYTHON = sys.executable


def sidecar_binary() -> Path:
    return Path(os.environ.get("SIDECAR_BIN") or ROOT / "target" / "release" / "anki-sidecar")


def loadgen_binary() -> Path:
    """The load benchmark's Rust driver (bench/loadgen), as `bench/load_bench.py` finds it."""
    return Path(os.environ.get("LOADGEN_BIN") or ROOT / "target" / "release" / "anki-loadgen")
