"""The load benchmark's smoke run: every phase against both servers, every answer checked.

`bench/load_bench.py --smoke` seeds a few small users through both servers with the real
client, runs each phase for a second or two, and exits non-zero on any wrong answer (status,
`anki-original-size`, sanity check, usn steps, media contents). The review syncs are made by
the Rust driver (`bench/loadgen`, built by `scripts/test.sh` beside the sidecar), the other
phases by the Python client. This test asserts that run came out right and did real work on
both servers with both drivers; it asserts nothing about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.paths import ROOT, loadgen_binary, sidecar_binary

EXPECTED_PHASES = ("review sync", "full download", "media sync", "notes", "storm")


@pytest.mark.timeout(900)
def test_smoke_run_checks_every_answer_on_both_servers(tmp_path):
    build = "run `cargo build --release -p anki-sidecar -p anki-loadgen` first"
    assert sidecar_binary().is_file(), build
    assert loadgen_binary().is_file(), build
    results = tmp_path / "results.json"

    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "load_bench.py"),
            "--smoke",
            "--driver",
            "rust",
            "--json",
            str(results),
        ],
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
        # Review syncs (the load levels, the sizes, the quiet and storm phases) by the Rust
        # driver, which reports its own CPU; uploads, downloads and media by Python.
        expected_driver = "rust" if "review sync" in phase["phase"] else "python"
        assert phase["driver"] == expected_driver, phase
        if expected_driver == "rust":
            assert phase["client_cpu_s"] > 0, phase
    assert "0 wrong answers" in completed.stdout
