"""Child processes the tests start (sidecar, Django, gunicorn, nginx)."""

from __future__ import annotations

import signal
import subprocess


def stop_process(
    process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10
) -> None:
    """Asks a running `process` to stop with `sig`, and kills it if it is still there after
    `timeout` seconds. Nothing happens if it was never started or has ended."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
