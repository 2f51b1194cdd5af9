"""Black-box tests: the built binary, driven by clients that share no code with it
(httpx, websockets, Python's json, a real Chromium).

`.ci/run` runs them after `cargo test`, with:
- BSGQL_BIN: the binary (default: target/debug/buildsets-graphql);
- TEST_POSTGRES_URL: a PostgreSQL database whose name prefixes the databases made
  here (without it the PostgreSQL cases are skipped, or fail under CI=true).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("BSGQL_BIN", str(ROOT / "target" / "debug" / "buildsets-graphql"))
BACKENDS = ["sqlite", "postgres"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def required_env(name):
    """The value of environment variable `name`, which .ci/run sets: a missing one
    fails the test under CI and skips it elsewhere."""
    value = os.environ.get(name)
    if not value:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not set: .ci/run sets it")
        pytest.skip(f"{name} is not set (run .ci/run)")
    return value


def fresh_name(base_url):
    """The URL's parts, and a new database name prefixed with the run's."""
    parts = urllib.parse.urlsplit(base_url)
    return parts, f"{parts.path.lstrip('/')}_bb_{uuid.uuid4().hex[:8]}"


def postgres_database():
    """A fresh PostgreSQL database, named after the run's."""
    base = required_env("TEST_POSTGRES_URL")
    parts, name = fresh_name(base)
    subprocess.run(["psql", base, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    # sslmode=disable: the server's PostgreSQL is on loopback.
    return urllib.parse.urlunsplit(parts._replace(path="/" + name)) + "?sslmode=disable"


def mysql_database():
    """A fresh MariaDB database, named after the run's."""
    parts, name = fresh_name(required_env("TEST_MYSQL_URL"))
    subprocess.run(
        ["mysql", "-uroot", "-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306),
         "-e", f"CREATE DATABASE `{name}`"],
        check=True,
    )
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def database(backend, folder=None):
    """A fresh database URL of `backend` (sqlite in `folder`, or a new temporary one)."""
    if backend == "sqlite":
        folder = folder or tempfile.mkdtemp(prefix="bsgql-db-")
        return f"sqlite://{os.path.join(folder, 'buildsets.db')}?mode=rwc"
    if backend == "mysql":
        return mysql_database()
    return postgres_database()


def terminate(proc, wait=10):
    """Stops a child process: SIGTERM, then SIGKILL if it is still there after `wait` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()


class Server:
    """One running server process and a client for it."""

    def __init__(self, backend, flags=(), env=None, db_url=None):
        self.backend = backend
        self.dir = tempfile.mkdtemp(prefix="bsgql-bb-")
        if db_url:
            self.db_url = db_url
        elif backend == "sqlite":
            self.db_path = os.path.join(self.dir, "buildsets.db")
            self.db_url = f"sqlite://{self.db_path}?mode=rwc"
        else:
            self.db_url = database(backend)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        cmd = [BIN, "--database-url", self.db_url, "--listen", f"127.0.0.1:{self.port}", *flags]
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"server did not start: {self.output()}")
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def post_raw(self, query, variables=None, token=None, **kw):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        body = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return self.http.post("/graphql", content=json.dumps(body), headers=headers, **kw)

    def post(self, query, variables=None, token=None):
        """The parsed body (Python's json; object order kept)."""
        return json.loads(self.post_raw(query, variables, token).text)

    def ok(self, query, variables=None, token=None):
        body = self.post(query, variables, token)
        assert "errors" not in body, body
        return body["data"]

    def err(self, query, variables=None, token=None):
        body = self.post(query, variables, token)
        assert body.get("errors"), body
        e = body["errors"][0]
        return e["extensions"].get("code"), e["extensions"].get("field"), e

    def stop(self):
        self.http.close()
        terminate(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start():
    """start(backend, *flags) -> Server; every server is stopped afterwards."""
    servers = []

    def make(backend="sqlite", *flags, env=None, db_url=None):
        s = Server(backend, flags, env, db_url)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(params=BACKENDS)
def server(request, start):
    return start(request.param)


ADD = """mutation($in: AddBuildsetInput!) {
  addBuildset(input: $in) { bsid buildset { bsid properties { name value source } } }
}"""


def add_buildset(srv, properties=(), **extra):
    builder = srv.ok('mutation { ensureBuilder(name: "bb") { builderid } }')["ensureBuilder"]["builderid"]
    inp = {
        "reason": "black box",
        "sourcestamps": [{"stamp": {"repository": "r", "branch": "main"}}],
        "builderids": [builder],
        "properties": list(properties),
        **extra,
    }
    return srv.ok(ADD, {"in": inp})["addBuildset"]
