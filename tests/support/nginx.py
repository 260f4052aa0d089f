"""The production nginx configuration (nginx/), rendered and run by a real nginx for the tests.

`render_site` fills the placeholders of `nginx/templates/anki-sidecar.conf.template` exactly
as envsubst does in the Docker image, so the tests exercise the file operators deploy. `Nginx`
wraps it in a throwaway main configuration (pid, logs and temp folders in its own folder,
loopback ports) and runs nginx in the foreground. `Gunicorn` runs Django the way production
does, since nginx needs an upstream for everything that is not sync.
"""

from __future__ import annotations

import http.client
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from support.paths import DJANGO_APP, MANAGE_PY, PYTHON, ROOT
from support.processes import stop_process

NGINX_DIR = ROOT / "nginx"
SITE_TEMPLATE = NGINX_DIR / "templates" / "anki-sidecar.conf.template"
SNIPPETS = NGINX_DIR / "snippets"
# The Docker image sources it to turn NGINX_SIDECAR_UPSTREAM into the upstream's server lines;
# the tests run the same file, so what they prove is what the image renders.
UPSTREAM_SCRIPT = ROOT / "docker" / "nginx" / "15-anki-sidecar-upstream.envsh"
CERT_SCRIPT = ROOT / "scripts" / "make-self-signed-cert.sh"

START_TIMEOUT = 30
REQUEST_TIMEOUT = 60
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
LISTENING = re.compile(r"Listening at: http://(\S+)")


class NginxError(RuntimeError):
    pass


def nginx_binary() -> str | None:
    configured = os.environ.get("NGINX_BIN")
    if configured:
        return configured
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
        None,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sidecar_servers(upstream: str, extra_env: dict[str, str] | None = None) -> str:
    """The `server` lines for NGINX_SIDECAR_UPSTREAM (one host:port, or a comma-separated
    list), rendered by the image's own script."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NGINX_SIDECAR_UPSTREAM": upstream}
    env.update(extra_env or {})
    completed = subprocess.run(
        ["sh", "-c", '. "$0" && printf %s "$NGINX_SIDECAR_SERVERS"', str(UPSTREAM_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if completed.returncode != 0:
        raise NginxError(f"{UPSTREAM_SCRIPT.name} failed:\n{completed.stderr}")
    return completed.stdout


def render_site(values: dict[str, str], template: Path = SITE_TEMPLATE) -> str:
    """Substitutes every `${NAME}`; a placeholder without a value is an error, not an empty
    string, so a template change that adds one cannot go unnoticed here."""
    text = template.read_text()
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise NginxError(f"no value for placeholders {missing} of {template.name}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


@dataclass
class Tls:
    """A private CA and a server certificate made by scripts/make-self-signed-cert.sh."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def chain(self) -> Path:
        return self.folder / "fullchain.pem"

    @property
    def key(self) -> Path:
        return self.folder / "server.key"

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_certificates(folder: Path, *names: str) -> Tls:
    completed = subprocess.run(
        ["bash", str(CERT_SCRIPT), "-o", str(folder), *names],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if completed.returncode != 0:
        raise NginxError(f"{CERT_SCRIPT.name} failed:\n{completed.stdout}\n{completed.stderr}")
    return Tls(folder)


def _main_config(work_dir: Path, site: Path, extra_http: str) -> str:
    temp = work_dir / "temp"
    # As root, nginx's workers drop to `nobody`, who cannot enter pytest's private temp folders
    # (static files, temp paths); run them as the user that owns those folders instead.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    mime_types = Path("/etc/nginx/mime.types")
    return f"""
{user}
worker_processes 1;
pid {work_dir / "nginx.pid"};
error_log {work_dir / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    {f"include {mime_types};" if mime_types.is_file() else ""}
    default_type application/octet-stream;
    # Request sizes in the access log let tests see what really passed through nginx.
    log_format sizes '$remote_addr "$request" $status $request_length $bytes_sent '
                     '"$http_accept_encoding"';
    access_log {work_dir / "access.log"} sizes;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    {extra_http}
    include {site};
}}
"""


@dataclass
class Nginx:
    """One nginx running the production site template on free loopback ports."""

    work_dir: Path
    # host:port of the sidecar, or of several cluster nodes, comma-separated.
    sidecar_upstream: str
    django_upstream: str
    static_root: Path
    tls: Tls
    name: str = "nginx"
    sync_base_path: str = ""
    max_body_mb: int = 100
    # Extra directives for the http block, e.g. a careless global gzip setup to defend against.
    extra_http: str = ""
    # NGINX_SIDECAR_MAX_FAILS / NGINX_SIDECAR_FAIL_TIMEOUT for the upstream script.
    upstream_env: dict[str, str] = field(default_factory=dict)
    http_port: int = 0
    https_port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def https_root(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_root(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def endpoint(self) -> str:
        """What a user types into Anki: the HTTPS base URL, prefix included, trailing slash."""
        return f"{self.https_root}{self.sync_base_path}/"

    @property
    def plain_endpoint(self) -> str:
        return f"{self.http_root}{self.sync_base_path}/"

    def log_excerpt(self, tail: int = 150) -> str:
        """For the conftest report hook, which attaches this to a failing test's report."""
        return "\n".join(self.log().splitlines()[-tail:])

    def access_log(self) -> str:
        return (self.work_dir / "access.log").read_text(errors="replace")

    def log(self) -> str:
        parts = []
        for name in ("error.log", "access.log", "stderr.log"):
            path = self.work_dir / name
            if path.exists():
                parts.append(f"--- nginx {name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def site_values(self) -> dict[str, str]:
        return {
            "NGINX_SERVER_NAME": "_",
            "NGINX_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "NGINX_HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
            "NGINX_PUBLIC_HTTPS_PORT": str(self.https_port),
            "NGINX_TLS_CERTIFICATE": str(self.tls.chain),
            "NGINX_TLS_CERTIFICATE_KEY": str(self.tls.key),
            "NGINX_SIDECAR_SERVERS": sidecar_servers(self.sidecar_upstream, self.upstream_env),
            "NGINX_DJANGO_UPSTREAM": self.django_upstream,
            "NGINX_STATIC_ROOT": str(self.static_root),
            "NGINX_ACME_ROOT": str(self.work_dir / "acme"),
            "NGINX_SYNC_BASE_PATH": self.sync_base_path,
            "NGINX_MAX_BODY_MB": str(self.max_body_mb),
            # The site's own format (upstream and node per request) into the same file as the
            # harness's, which starts with the same fields.
            "NGINX_ACCESS_LOG": str(self.work_dir / "access.log"),
        }

    def start(self, attempts: int = 3) -> Nginx:
        binary = nginx_binary()
        if binary is None:
            raise NginxError("nginx is not installed (apt-get install nginx), or set NGINX_BIN")
        for name in ("temp", "acme", "snippets"):
            (self.work_dir / name).mkdir(parents=True, exist_ok=True)
        # `include snippets/...` resolves against the main file's folder, as /etc/nginx does.
        shutil.copytree(SNIPPETS, self.work_dir / "snippets", dirs_exist_ok=True)
        for attempt in range(attempts):
            # Ports picked in advance can be taken before nginx binds them; retry with new ones.
            self.http_port, self.https_port = free_port(), free_port()
            site = self.work_dir / "anki-sidecar.conf"
            site.write_text(render_site(self.site_values()))
            conf = self.work_dir / "nginx.conf"
            conf.write_text(_main_config(self.work_dir, site, self.extra_http))
            command = [binary, "-p", str(self.work_dir), "-c", str(conf)]
            # -e: the startup error log, opened before the configuration is read (nginx 1.19.5+);
            # without it nginx tries /var/log/nginx/error.log first.
            command += ["-e", str(self.work_dir / "error.log")]
            checked = subprocess.run(
                [*command, "-t"], capture_output=True, text=True, timeout=START_TIMEOUT
            )
            if checked.returncode != 0:
                raise NginxError(f"nginx -t rejected the rendered configuration:\n{checked.stderr}")
            with (self.work_dir / "stderr.log").open("ab") as stderr:
                self.process = subprocess.Popen(
                    [*command, "-g", "daemon off;"],
                    stdout=stderr,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_listening():
                return self
            if attempt == attempts - 1 or "Address already in use" not in self.log():
                break
        self.stop()
        raise NginxError(f"nginx did not start:\n{self.log()}")

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                for port in (self.http_port, self.https_port):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        # SIGQUIT is nginx's graceful shutdown; it lets in-flight requests finish.
        stop_process(self.process, signal.SIGQUIT)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    tls: Tls | None = None,
) -> Reply:
    """One request without following redirects (http.client never does), over TLS for
    https URLs with the test CA as the only trusted root."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        if tls is None:
            raise ValueError("an https request needs the test CA")
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=REQUEST_TIMEOUT, context=tls.context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return Reply(
            response.status, {name.lower(): value for name, value in response.getheaders()}, data
        )
    finally:
        conn.close()


def collect_static(folder: Path, database_url: str) -> Path:
    """Runs Django's collectstatic into `folder` instead of the repository's STATIC_ROOT, via
    a settings module that only overrides STATIC_ROOT."""
    settings_dir = folder.parent / "settings_override"
    settings_dir.mkdir(parents=True, exist_ok=True)
    (settings_dir / "nginx_test_settings.py").write_text(
        f"from config.settings import *  # noqa: F403\n\nSTATIC_ROOT = {str(folder)!r}\n"
    )
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join([str(settings_dir), str(DJANGO_APP)])
    completed = subprocess.run(
        [PYTHON, str(MANAGE_PY), "collectstatic", "--noinput", "--settings=nginx_test_settings"],
        cwd=DJANGO_APP,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if completed.returncode != 0:
        raise NginxError(f"collectstatic failed:\n{completed.stdout}\n{completed.stderr}")
    return folder


class Gunicorn:
    """Django under gunicorn, as in production (DEBUG off), on a kernel-chosen loopback port."""

    def __init__(self, work_dir: Path, env: dict[str, str], workers: int = 2):
        work_dir.mkdir(parents=True, exist_ok=True)
        self.name = "gunicorn"
        self.log_path = work_dir / "gunicorn.log"
        self.env = dict(os.environ)
        self.env.update(
            {
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            }
        )
        self.env.update(env)
        self.workers = workers
        self.address = ""
        self.process: subprocess.Popen | None = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_excerpt(self, tail: int = 150) -> str:
        """For the conftest report hook, which attaches this to a failing test's report."""
        return "\n".join(self.log().splitlines()[-tail:])

    def start(self) -> Gunicorn:
        command = [
            PYTHON,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            str(self.workers),
            "--access-logfile",
            "-",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=DJANGO_APP,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.address:
            if self.process.poll() is not None:
                raise NginxError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise NginxError(f"gunicorn did not report its address:\n{self.log()}")
            match = LISTENING.search(self.log())
            if match:
                self.address = match.group(1)
            else:
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        stop_process(self.process, timeout=20)
