"""The load benchmark's Rust driver (`bench/loadgen`) against the sidecar: an answer that is not
what the device expects counts as a wrong answer, and the device resynchronises and goes on,
as with the Python driver; the devices' state comes back for the next phase.

One user of a small collection, seeded with the real client as `bench/load_bench.py` does.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from support.paths import ROOT, loadgen_binary, sidecar_binary

sys.path.insert(0, str(ROOT / "bench"))

import load_bench as lb

BUILD = "run `cargo build --release -p anki-sidecar -p anki-loadgen` first"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """The sidecar with one user whose collection was fully uploaded; a fresh device each time."""
    assert sidecar_binary().is_file(), BUILD
    assert loadgen_binary().is_file(), BUILD
    work = tmp_path_factory.mktemp("loadgen")
    server = lb.OursServer(work / "ours", ["bench0"])
    server.start()
    try:
        template = lb.make_template(work / "template.anki2", 30)
        lb.seed_user(server.url, template, work / "client", "bench0")

        def device() -> lb.Device:
            dev = lb.Device("bench0", template, next_revlog_id=int(time.time() * 1000))
            dev.revlog = template.counts["revlog"]
            asyncio.run(lb.login_all(server, {"bench0": dev}))
            return dev

        yield server, device
    finally:
        server.stop()


def drive(server, dev: lb.Device, max_ops: int) -> lb.Phase:
    return asyncio.run(lb.run_phase_rust(server, "review sync", [dev], 1, 120, max_ops))


@pytest.mark.timeout(300)
def test_a_wrong_usn_is_a_wrong_answer_then_the_device_resynchronises(seeded):
    server, device = seeded
    dev = device()
    dev.usn = 999_999  # not what the server will say

    phase = drive(server, dev, max_ops=3)

    assert len(phase.errors) == 1, phase.errors
    assert phase.errors[0].startswith("bench0: BenchError: meta: usn "), phase.errors
    assert phase.errors[0].endswith(", expected 999999"), phase.errors
    # After the error the device takes the server's usn; the third sync checks it moved by one.
    assert phase.ops == 2
    assert len(phase.latencies) == 2
    assert phase.driver == "rust"
    assert dev.syncs == 2
    assert dev.revlog == dev.template.counts["revlog"] + 2 * lb.REVIEWED_CARDS
    assert dev.next_card == 2 * lb.REVIEWED_CARDS
    usn = dev.usn

    # The state carried back is what the next phase (and the Python driver) expects.
    again = asyncio.run(lb.run_phase(server, "review sync", lb.review_sync, [dev], 1, 120, 1))
    assert again.errors == []
    assert dev.usn == usn + 1


@pytest.mark.timeout(300)
def test_a_failed_sanity_check_is_a_wrong_answer(seeded):
    server, device = seeded
    dev = device()
    dev.revlog += 1  # the device believes it has one review more than the server

    phase = drive(server, dev, max_ops=2)

    assert phase.ops == 0
    assert len(phase.errors) == 2, phase.errors
    assert all(e.startswith("bench0: BenchError: sanityCheck2: ") for e in phase.errors)
    assert dev.usn == -1
