"""The load benchmark's smoke run: every phase against both servers, every answer checked.

`bench/load_bench.py --smoke` seeds a few small users through both servers with the real
client, runs each phase for a second or two, and exits non-zero on any wrong answer (status,
`anki-original-size`, sanity check, usn steps, media contents). This test asserts that run
came out right and did real work on both servers; it asserts nothing about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.paths import ROOT, sidecar_binary

EXPECTED_PHASES = ("review sync", "full download", "media sync", "notes", "storm")


@pytest.mark.timeout(900)
def test_smoke_run_checks_every_answer_on_both_servers(tmp_path):
    assert sidecar_binary().is_file(), "run `cargo build --release -p anki-sidecar` first"
    results = tmp_path / "results.json"

    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load_bench.py"), "--smoke", "--json", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )

    assert completed.returncode == 0, f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    phases = json.loads(results.read_text())["phases"]
    assert {p["server"] for p in phases} == {"ours", "official"}
    for expected in EXPECTED_PHASES:
        assert any(expected in p["phase"] for p in phases), f"no {expected!r} phase ran"
    for phase in phases:
        assert phase["errors"] == [], phase
        assert phase["ops"] > 0, f"{phase['phase']} on {phase['server']} did no work"
    assert "0 wrong answers" in completed.stdout
