"""Load run of cluster mode: 1 node against 3 nodes, behind nginx, on PostgreSQL.

    scripts/with-postgres.sh .venv/bin/python bench/cluster_bench.py            # ~3 minutes
    scripts/with-postgres.sh .venv/bin/python bench/cluster_bench.py --smoke    # seconds (CI)

The load generator is bench/load_bench.py's, unchanged: users seeded by a full upload with the
real client, then the raw v11 protocol with the real client's request shapes, every answer
checked (status, `anki-original-size`, the sanity check, the usn rising by one per sync). What
differs is the server under load: a cluster (tests/support/cluster.py) of N `anki-sidecar`
nodes in cluster mode (SIDECAR_NODE_ID) on one PostgreSQL database and one data folder, behind
the project's nginx (nginx/, HTTPS, the host-key hash routing). Both clusters run side by side
on their own data folders; their phases alternate, round by round, because this machine's
noise is large. CPU is the sum over the cluster's sidecar processes (nginx not included).

All the nodes share the one machine, so N nodes cannot do more work than its cores: this shows
that the cluster's coordination (PostgreSQL advisory locks, the routing) costs no throughput
and loses no request, not how far N machines would scale. See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import load_bench as lb  # noqa: E402

from support.cluster import Cluster  # noqa: E402
from support.django_db import postgres_database  # noqa: E402
from support.nginx import make_certificates  # noqa: E402


class ClusterStats:
    """load_bench's ProcStats over every node of a cluster, summed (peak RSS: the largest)."""

    def __init__(self, pids: list[int]):
        self.parts = [lb.ProcStats(pid) for pid in pids]
        self.pid = pids[0]

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.parts)

    def write_bytes(self) -> int:
        return sum(p.write_bytes() for p in self.parts)

    def rss_kb(self) -> int:
        return sum(p.rss_kb() for p in self.parts)

    def peak_rss_kb(self) -> int:
        return max(p.peak_rss_kb() for p in self.parts)

    def reset_peak(self) -> bool:
        return all(p.reset_peak() for p in self.parts)


class ClusterServer:
    """A cluster of `nodes` sidecars behind nginx, in the shape load_bench's phases expect."""

    def __init__(self, nodes: int, database_url: str, work: Path, tls):
        self.name = f"{nodes} node" + ("s" if nodes > 1 else "")
        self.nodes = nodes
        self.cluster = Cluster(database_url, work, tls, nodes=nodes)

    def start(self) -> None:
        self.cluster.start()
        self.stats = ClusterStats([s.process.pid for s in self.cluster.sidecars])

    @property
    def url(self) -> str:
        return self.cluster.endpoint

    def stop(self) -> None:
        self.cluster.stop()


def phase_report(phase: lb.Phase) -> dict:
    return {
        "phase": phase.name,
        "server": phase.server,
        "ops": phase.ops,
        "ops_per_s": round(phase.rate, 2),
        "p50_ms": round(phase.pct(0.5), 1),
        "p99_ms": round(phase.pct(0.99), 1),
        "cpu_ms_per_op": round(phase.cpu_per_op_ms, 2),
        "errors": len(phase.errors),
        "rates": [round(r, 2) for r in phase.extra.get("rates", [phase.rate])],
    }


def run(args: argparse.Namespace, work: Path) -> int:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        print("TEST_POSTGRES_URL is not set: run under scripts/with-postgres.sh", file=sys.stderr)
        return 2
    tls = make_certificates(work / "tls", "127.0.0.1", "localhost")
    # The real client (seeding) reads SSL_CERT_FILE; the load's aiohttp takes the context.
    os.environ["SSL_CERT_FILE"] = str(tls.ca)
    lb.SSL_CONTEXT = tls.context()
    users = [f"bench{i}" for i in range(args.users)]
    database = postgres_database(url)
    servers = [
        ClusterServer(n, database.url, work / f"cluster-{n}", tls)
        for n in (int(x) for x in args.nodes.split(","))
    ]
    results: dict[tuple[str, str], list[lb.Phase]] = {}
    log = print
    try:
        database.migrate()
        lb.create_django_users(database.env(), users, lb.PASSWORD)
        template = lb.make_template(work / "template.anki2", args.notes)
        devices = {}
        for server in servers:
            server.start()
            t0 = time.perf_counter()
            devices[server.name] = lb.seed(
                server, {u: template for u in users}, work / "clients", {}
            )
            asyncio.run(lb.login_all(server, devices[server.name]))
            log(
                f"{server.name}: {server.url}, {len(users)} users seeded in "
                f"{time.perf_counter() - t0:.1f} s"
            )

        phases = [(f"review sync x{level}", lb.review_sync, level) for level in args.levels]
        phases.append(
            (f"media sync x{args.media_concurrency}", lb.media_sync, args.media_concurrency)
        )
        for r in range(args.rounds):
            log(f"round {r + 1} of {args.rounds}")
            for index, (name, op, level) in enumerate(phases):
                order = servers if (r + index) % 2 == 0 else list(reversed(servers))
                for server in order:
                    phase = asyncio.run(
                        lb.run_phase(
                            server,
                            name,
                            op,
                            list(devices[server.name].values()),
                            level,
                            args.duration,
                            args.max_ops,
                        )
                    )
                    log(
                        f"  {name:20} {server.name:8} {phase.ops:5} ops {phase.rate:7.1f}/s "
                        f"p50 {phase.pct(0.5):7.1f} ms p99 {phase.pct(0.99):7.1f} ms "
                        f"errors {len(phase.errors)}"
                    )
                    for error in phase.errors[:5]:
                        log(f"    ! {error}")
                    results.setdefault((name, server.name), []).append(phase)
    finally:
        for server in servers:
            server.stop()
        database.drop()

    merged = {key: lb.merge(phases) for key, phases in results.items()}
    rows = [phase_report(p) for p in merged.values()]
    header = [
        "phase",
        "server",
        "ops",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/op",
        "errors",
        "ops/s per round",
    ]
    table = [
        [
            r["phase"],
            r["server"],
            str(r["ops"]),
            f"{r['ops_per_s']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['cpu_ms_per_op']:.2f}",
            str(r["errors"]),
            ", ".join(f"{x:.1f}" for x in r["rates"]),
        ]
        for r in rows
    ]
    text = "\n".join(
        [
            f"## Cluster load: {args.nodes.replace(',', ' vs ')} nodes behind nginx, PostgreSQL",
            "",
            f"{args.users} users of {args.notes} notes; {args.rounds} round(s) of "
            f"{args.duration:g} s per phase, alternating; machine: {lb.machine()}",
            "",
            lb.table(table, header),
        ]
    )
    print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps({"phases": rows, "report": text}, indent=1))
    errors = sum(r["errors"] for r in rows)
    total = sum(r["ops"] for r in rows)
    print(f"\nAnswers checked: {total} operations, {errors} wrong answers.")
    return 1 if errors or total == 0 else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,3", help="cluster sizes to compare")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--notes", type=int, default=2000, help="notes per user")
    parser.add_argument("--levels", default="8,32", help="concurrent review syncs")
    parser.add_argument("--media-concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--max-ops", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="CI: a few seconds in all")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.smoke:
        args.users, args.notes, args.levels, args.rounds, args.duration = 4, 60, "4", 1, 1.5
        args.media_concurrency = 2
    args.levels = [int(x) for x in str(args.levels).split(",")]
    binary = Path(os.environ.get("SIDECAR_BIN") or ROOT / "target/release/anki-sidecar")
    if not binary.is_file():
        print(f"{binary} is missing: run `cargo build --release -p anki-sidecar` first")
        return 2
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        return run(args, args.work_dir)
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as temp:
        return run(args, Path(temp))


if __name__ == "__main__":
    sys.exit(main())
