"""The cluster load run's smoke: `bench/cluster_bench.py --smoke` against 1 node and 3 nodes
behind nginx on PostgreSQL, every answer checked (docs/scaling.md).

It seeds a few small users through each cluster with the real client, runs the review and
media phases for a second or two, and exits non-zero on any wrong answer. This test asserts
that the run came out right and that both clusters did real work; nothing about speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support.nginx import nginx_binary
from support.paths import ROOT, sidecar_binary


@pytest.mark.timeout(600)
def test_smoke_run_on_one_node_and_on_three_checks_every_answer(postgres_cluster_url, tmp_path):
    assert sidecar_binary().is_file(), "run `cargo build --release -p anki-sidecar` first"
    if nginx_binary() is None:
        if os.environ.get("TEST_SKIP_NGINX") == "1":
            pytest.skip("nginx skipped on request (TEST_SKIP_NGINX=1)")
        pytest.fail("nginx is not installed: apt-get install nginx (or set NGINX_BIN)")
    results = tmp_path / "results.json"
    env = dict(os.environ, TEST_POSTGRES_URL=postgres_cluster_url)

    command = [sys.executable, str(ROOT / "bench" / "cluster_bench.py"), "--smoke"]
    command += ["--json", str(results), "--work-dir", str(tmp_path / "work")]
    completed = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )

    assert completed.returncode == 0, f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    phases = json.loads(results.read_text())["phases"]
    assert {p["server"] for p in phases} == {"1 node", "3 nodes"}
    for phase in phases:
        assert phase["errors"] == 0, phase
        assert phase["ops"] > 0, f"{phase['phase']} on {phase['server']} did no work"
    assert "0 wrong answers" in completed.stdout
