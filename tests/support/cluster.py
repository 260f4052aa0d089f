"""Several sidecar nodes in cluster mode behind the project's nginx (docs/scaling.md).

`Cluster` starts N `anki-sidecar` processes with `SIDECAR_NODE_ID=node-<i>` on one PostgreSQL
database and one shared data folder, then the production nginx site (nginx/) with all of them
in its upstream, so requests are routed by the real `map` + `hash ... consistent` + failover
configuration. Which node served a request is read from the node's `X-Sidecar-Node` answer
header (raw calls) or from nginx's access log, which records `$upstream_addr` and that header
per request (real clients).
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from support import protocol
from support.nginx import Nginx, Tls, request
from support.processes import stop_process
from support.protocol import Reply
from support.sidecar import Sidecar

NODE_HEADER = "x-sidecar-node"
# The site's log format (nginx/templates): `... upstream=<addr>[, <addr>...] node=<name> rt=...`
ACCESS_LINE = re.compile(
    r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) .*? '
    r"upstream=(?P<upstream>.*?) node=(?P<node>\S*) rt="
)


@dataclass
class Served:
    """One request in nginx's access log."""

    method: str
    path: str
    status: int
    upstreams: list[str]
    node: str

    @property
    def last_upstream(self) -> str:
        return self.upstreams[-1] if self.upstreams else ""


@dataclass
class Cluster:
    database_url: str
    work_dir: Path
    tls: Tls
    nodes: int = 3
    extra_env: dict[str, str] = field(default_factory=dict)
    sidecars: list[Sidecar] = field(default_factory=list)
    nginx: Nginx | None = None

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "shared-data"

    @property
    def endpoint(self) -> str:
        assert self.nginx is not None
        return self.nginx.endpoint

    def start(self) -> Cluster:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for index in range(1, self.nodes + 1):
            name = f"node-{index}"
            env = {
                "SIDECAR_NODE_ID": name,
                # The one folder every node uses: the shared file system of a real cluster.
                "SIDECAR_DATA_DIR": str(self.data_dir),
                "SIDECAR_IP_HEADER": "x-real-ip",
                **self.extra_env,
            }
            sidecar = Sidecar(self.database_url, self.work_dir / name, env, name=name)
            sidecar.data_dir = self.data_dir
            self.sidecars.append(sidecar)
            sidecar.start()
        static = self.work_dir / "static"
        static.mkdir(exist_ok=True)
        self.nginx = Nginx(
            self.work_dir / "nginx",
            sidecar_upstream=",".join(s.public_addr for s in self.sidecars),
            # Nothing here goes to Django; nginx only needs an address for its upstream.
            django_upstream="127.0.0.1:9",
            static_root=static,
            tls=self.tls,
        )
        self.nginx.start()
        return self

    def stop(self) -> None:
        if self.nginx is not None:
            # SIGTERM, nginx's fast shutdown: its graceful one (SIGQUIT) waits up to the stop
            # timeout for the clients' idle keep-alive connections, for nothing here.
            stop_process(self.nginx.process, signal.SIGTERM)
        for sidecar in self.sidecars:
            sidecar.stop()

    def processes(self) -> list:
        """For the conftest report hook: every node's and nginx's log on failure."""
        return [*self.sidecars, *([self.nginx] if self.nginx else [])]

    def node(self, name: str) -> Sidecar:
        return next(s for s in self.sidecars if s.name == name)

    def node_at(self, address: str) -> Sidecar:
        return next(s for s in self.sidecars if s.public_addr == address)

    def kill(self, name: str) -> None:
        """kill -9: no shutdown, no flush, no unlock; PostgreSQL sees the connections drop."""
        sidecar = self.node(name)
        assert sidecar.process is not None
        sidecar.process.send_signal(signal.SIGKILL)
        sidecar.process.wait(timeout=30)

    def restart(self, name: str, extra_env: dict[str, str]) -> Sidecar:
        """kill -9 of node `name`, then the node again on the same public address (so nginx's
        upstream still names it), with `extra_env` added, e.g. an armed SIDECAR_FAULT_POINT."""
        old = self.node(name)
        self.kill(name)
        env = {
            "SIDECAR_NODE_ID": name,
            "SIDECAR_DATA_DIR": str(self.data_dir),
            "SIDECAR_IP_HEADER": "x-real-ip",
            "SIDECAR_PUBLIC_ADDR": old.public_addr,
            **self.extra_env,
            **extra_env,
        }
        new = Sidecar(self.database_url, self.work_dir / f"{name}-again", env, name=name)
        new.data_dir = self.data_dir
        self.sidecars[self.sidecars.index(old)] = new
        return new.start()

    # --- the raw protocol through nginx ------------------------------------------------------

    def call(
        self, method: str, payload: dict | bytes | None = None, *, hkey: str = "", session: str = ""
    ) -> Reply:
        """One v11 request through nginx (HTTPS), as the real client sends it."""
        if payload is None:
            payload = {"_pad": None}
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        reply = request(
            self.endpoint + method,
            "POST",
            body=protocol.compress(data),
            headers={
                "anki-sync": protocol.sync_header(hkey, session or "cluster-test"),
                "Content-Type": "application/octet-stream",
            },
            tls=self.tls,
        )
        return Reply(reply.status, reply.headers, reply.body)

    def node_of(self, hkey: str) -> str:
        """The node that serves `hkey`'s syncs now: a `meta` through nginx, which changes
        nothing on the server."""
        reply = self.call("sync/meta", protocol.meta_payload(), hkey=hkey, session="probe")
        assert reply.status == 200, reply
        return served_by(reply)

    # --- nginx's access log --------------------------------------------------------------------

    def log_mark(self) -> int:
        assert self.nginx is not None
        return len(self.nginx.access_log().splitlines())

    def served_since(self, mark: int) -> list[Served]:
        assert self.nginx is not None
        served = []
        for line in self.nginx.access_log().splitlines()[mark:]:
            match = ACCESS_LINE.search(line)
            if match is None:
                continue
            upstreams = [a.strip() for a in match["upstream"].split(",") if a.strip() != "-"]
            served.append(
                Served(
                    match["method"],
                    match["path"],
                    int(match["status"]),
                    upstreams,
                    "" if match["node"] == "-" else match["node"],
                )
            )
        return served

    def sync_nodes_since(self, mark: int) -> set[str]:
        """The nodes that answered the sync and media requests logged after `mark`."""
        return {
            s.node for s in self.served_since(mark) if "/sync/" in s.path or "/msync/" in s.path
        }

    def any_log_says(self, text: str) -> list[str]:
        return [s.name for s in self.sidecars if text in s.log()]


def served_by(reply: Reply) -> str:
    node = reply.headers.get(NODE_HEADER, "")
    assert node, f"no {NODE_HEADER} header in {reply.headers}"
    return node


def wait_until(predicate, what: str, timeout: float = 30, interval: float = 0.05):
    """Polls `predicate` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
