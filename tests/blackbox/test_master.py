"""End to end with a real Buildbot 4.3 master and worker: a buildset submitted through
the GraphQL API, attached to the master's database, is announced by the bridge
(buildbot-plugin/), built by the worker, and completed by Buildbot; the API shows it.

The master and worker come from the interop venv (`BUILDBOT_PYTHON`'s folder), where
`.ci/run` installs buildbot, buildbot-worker and the bridge."""

import asyncio
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import websockets

from conftest import database, free_port, required_env

# The master.cfg an operator starts from (the README shows it): the tests run it as
# it is, with these test builders added.
EXAMPLE_CFG = (Path(__file__).resolve().parents[2] / "buildbot-plugin" / "master.cfg").read_text()
TEST_EXTRAS = """
# --- test additions ---
c['logCompressionMethod'] = 'raw'
# A builder whose builds run until stopped, and one whose worker never connects
# (its requests stay pending).
c['workers'].append(worker.Worker('w-absent', 'pass'))
slow = util.BuildFactory()
slow.addStep(steps.ShellCommand(name='wait', command=['sleep', '120']))
c['builders'] += [
    util.BuilderConfig(name='slow', workernames=['w1'], factory=slow),
    util.BuilderConfig(name='pending', workernames=['w-absent'], factory=slow),
]
c['schedulers'].append(schedulers.Triggerable(name='api-extra', builderNames=['slow', 'pending']))
"""


def venv_bin(name):
    path = Path(required_env("BUILDBOT_PYTHON")).parent / name
    if not path.exists():
        pytest.fail(f"{path} is missing: .ci/run installs buildbot-worker in the interop venv")
    return str(path)


def sqlalchemy_url(url):
    if url.startswith("sqlite://"):
        return "sqlite:///" + url[len("sqlite://"):].split("?")[0]
    bare = url.split("?")[0]
    if bare.startswith("mysql://"):
        return "mysql+pymysql://" + bare[len("mysql://"):]
    return "postgresql+psycopg2://" + bare[len("postgres://"):]


def run(*cmd, timeout=120, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, f"{cmd}: {out.stdout}\n{out.stderr}"
    return out.stdout


class Cluster:
    """A master (with the bridge) and a worker on loopback, over one database."""

    def __init__(self, url, extra="", upgrade=True):
        self.url = url
        self.dir = Path(tempfile.mkdtemp(prefix="bsgql-master-"))
        self.master = self.dir / "master"
        self.worker = self.dir / "worker"
        self.pb = free_port()
        self.www = free_port()
        # What the example master.cfg reads from its environment.
        self.env = {"BUILDBOT_DB_URL": sqlalchemy_url(url), "BUILDBOT_PB": f"tcp:{self.pb}:interface=127.0.0.1",
                    "BUILDBOT_WWW_PORT": str(self.www), "BUILDBOT_URL": f"http://127.0.0.1:{self.www}/"}
        run(venv_bin("buildbot"), "create-master", "--db", sqlalchemy_url(url), str(self.master))
        (self.master / "master.cfg").write_text(EXAMPLE_CFG + TEST_EXTRAS + extra)
        if upgrade:
            run(venv_bin("buildbot"), "upgrade-master", str(self.master), env=self.env)
        run(venv_bin("buildbot-worker"), "create-worker", str(self.worker), f"127.0.0.1:{self.pb}", "w1", "pass")

    def start_master(self):
        run(venv_bin("buildbot"), "start", str(self.master), timeout=180, env=self.env)

    def stop_master(self):
        subprocess.run([venv_bin("buildbot"), "stop", str(self.master)], capture_output=True, timeout=120)

    def start_worker(self):
        run(venv_bin("buildbot-worker"), "start", str(self.worker))

    def stop(self):
        subprocess.run([venv_bin("buildbot-worker"), "stop", str(self.worker)], capture_output=True, timeout=60)
        self.stop_master()

    def log(self):
        try:
            return (self.master / "twistd.log").read_text()
        except OSError:
            return ""

    # The master's tables, read with the database's own Python driver.
    def sql(self, query, *args):
        if self.url.startswith("sqlite://"):
            path = self.url[len("sqlite://"):].split("?")[0]
            with sqlite3.connect(path, timeout=10) as conn:
                return conn.execute(query.replace("%s", "?"), args).fetchall()
        parts = urllib.parse.urlsplit(self.url.split("?")[0])
        if self.url.startswith("mysql://"):
            import pymysql

            conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                                   password=parts.password or "", database=parts.path.lstrip("/"), autocommit=True)
        else:
            import psycopg2

            conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432,
                                    user=parts.username or "postgres", dbname=parts.path.lstrip("/"))
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall()
        finally:
            conn.close()

    def wait(self, what, check, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"{what} within {timeout}s; master log:\n{self.log()[-4000:]}")

    def builds_of(self, brid):
        return self.sql("SELECT id, results, complete_at FROM builds WHERE buildrequestid = %s", brid)

    def log_text(self, buildid):
        rows = self.sql(
            "SELECT logchunks.content FROM logchunks JOIN logs ON logs.id = logchunks.logid "
            "JOIN steps ON steps.id = logs.stepid WHERE steps.buildid = %s", buildid)
        return "".join(r[0] if isinstance(r[0], str) else bytes(r[0]).decode() for r in rows)


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def cluster(request):
    url = database(request.param)
    c = Cluster(url)
    c.backend = request.param
    yield c
    c.stop()


ADD = """mutation($in: AddBuildsetInput!) {
  addBuildset(input: $in) { bsid brids { builderid buildrequestid } }
}"""


def submit(srv, builderid, mark, **extra):
    inp = {"reason": f"e2e {mark}", "sourcestamps": [{"stamp": {"repository": "r", "branch": "main"}}],
           "builderids": [builderid], "properties": [{"name": "owner", "value": mark, "source": "e2e"}],
           **extra}
    data = srv.ok(ADD, {"in": inp})["addBuildset"]
    return data["bsid"], data["brids"][0]["buildrequestid"], time.monotonic()


async def wait_completed(srv, reason, subscribed, timeout=60):
    """The buildsetCompleted event of the buildset with `reason` (subscribed before
    it is submitted, so that it cannot be missed)."""
    async with websockets.connect(srv.base.replace("http", "ws") + "/graphql/ws",
                                  subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "c", "type": "subscribe", "payload": {
            "query": "subscription($w: BuildsetFilter) { buildsetCompleted(where: $w) { bsid complete results } }",
            "variables": {"w": {"reason": {"eq": reason}}}}}))
        await asyncio.sleep(0.5)
        subscribed.set()
        return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def test_a_live_master_builds_what_is_submitted_here(cluster, start):
    cluster.start_master()
    cluster.start_worker()
    srv = start(cluster.backend, db_url=cluster.url)
    builders = cluster.wait("the master registers its builder", lambda: [
        b for b in srv.ok("{ builders { builderid name } }")["builders"] if b["name"] == "app"])
    gql = builders[0]["builderid"]
    cluster.wait("the worker connects", lambda: cluster.sql("SELECT COUNT(*) FROM connected_workers")[0][0])

    # One buildset: built within 10 s, SUCCESS, completed by Buildbot, seen by the API.
    completed = {}
    subscribed = threading.Event()
    t = threading.Thread(target=lambda: completed.update(
        asyncio.run(wait_completed(srv, "e2e first-mark", subscribed))), daemon=True)
    t.start()
    assert subscribed.wait(30)
    bsid, brid, sent = submit(srv, gql, "first-mark", scheduler="graphql-e2e")
    [(buildid, _, _)] = cluster.wait("the build starts", lambda: cluster.builds_of(brid), timeout=10)
    started = time.monotonic() - sent
    assert started < 10
    cluster.wait("the build finishes", lambda: [b for b in cluster.builds_of(brid) if b[2] is not None])
    t.join(60)
    assert completed.get("payload", {}).get("data") == {
        "buildsetCompleted": {"bsid": bsid, "complete": True, "results": 0}}, completed
    view = srv.ok("""query($b: Int!) { buildset(bsid: $b) { complete results
        buildrequests { complete results builds { id buildid number results stateString } } } }""", {"b": bsid})["buildset"]
    assert view["complete"] is True and view["results"] == 0
    [req] = view["buildrequests"]
    assert req["complete"] is True and req["results"] == 0
    assert [b["results"] for b in req["builds"]] == [0]
    # The master's build is a Relay node: its id finds it again.
    [build] = req["builds"]
    node = srv.ok("query($id: ID!) { node(id: $id) { __typename ... on Build { buildid number results } } }",
                  {"id": build["id"]})["node"]
    assert node == {"__typename": "Build", "buildid": build["buildid"], "number": build["number"], "results": 0}
    assert "building main for first-mark" in cluster.log_text(buildid)
    # The build carries the scheduler's name, as if a Buildbot scheduler had started it.
    [(value, source)] = cluster.sql(
        "SELECT value, source FROM build_properties WHERE buildid = %s AND name = 'scheduler'", buildid)
    assert (json.loads(value), source) == ("graphql-e2e", "Scheduler")

    # 20 at once: each built exactly once, none left pending.
    latencies = []
    subs = []
    lock = threading.Lock()

    def one(i):
        r = submit(srv, gql, f"many-{i}")
        with lock:
            subs.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    first_seen = {}
    deadline = time.monotonic() + 120
    while len(first_seen) < 20 and time.monotonic() < deadline:
        for _, brid_i, sent_i in subs:
            if brid_i not in first_seen and cluster.builds_of(brid_i):
                first_seen[brid_i] = time.monotonic() - sent_i
        time.sleep(0.05)
    assert len(first_seen) == 20, cluster.log()[-4000:]
    latencies = list(first_seen.values())
    for bsid_i, brid_i, _ in subs:
        cluster.wait("every buildset completes", lambda b=bsid_i: srv.ok(
            "query($b: Int!) { buildset(bsid: $b) { complete } }", {"b": b})["buildset"]["complete"])
        assert len(cluster.builds_of(brid_i)) == 1
    assert cluster.sql("SELECT COUNT(*) FROM buildrequests WHERE complete = 0")[0][0] == 0
    print(f"\n{cluster.backend}: one buildset, mutation response to build start: {started:.2f} s; "
          f"20 at once: median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s")
    # On two cores the 20 builds compete for the CPU; the bound is a sanity check.
    assert max(latencies) < 30

    # A restart: what was submitted while the master was down is built once it is back.
    cluster.stop_master()
    bsid, brid, _ = submit(srv, gql, "while-down")
    time.sleep(1)
    assert not cluster.builds_of(brid)
    cluster.start_master()
    cluster.wait("the build after a restart", lambda: [b for b in cluster.builds_of(brid) if b[1] == 0],
                 timeout=60)
    assert len(cluster.builds_of(brid)) == 1
    # The bridge announced each buildset once at most, and nothing failed in the master.
    log = cluster.log()
    announced = re.findall(r"bridge: announced buildset (\d+) ", log)
    assert len(announced) == len(set(announced)), announced
    assert "Traceback" not in log, log[-4000:]


CROSSBAR_CONFIG = {
    "version": 2,
    "workers": [{
        "type": "router",
        "realms": [{"name": "buildbot", "roles": [{"name": "anonymous", "permissions": [{
            "uri": "", "match": "prefix",
            "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
            "disclose": {"caller": False, "publisher": False}, "cache": True}]}]}],
        "transports": [{"type": "websocket",
                        "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"}}],
    }],
}


@pytest.fixture
def router():
    """A crossbar WAMP router on loopback (the venv .ci/run makes from tests/wamp)."""
    exe = required_env("CROSSBAR")
    port = free_port()
    cbdir = Path(tempfile.mkdtemp(prefix="bsgql-crossbar-")) / ".crossbar"
    cbdir.mkdir()
    cfg = json.loads(json.dumps(CROSSBAR_CONFIG))
    cfg["workers"][0]["transports"][0]["endpoint"]["port"] = port
    (cbdir / "config.json").write_text(json.dumps(cfg))
    log = open(cbdir / "crossbar.log", "w+")
    proc = subprocess.Popen([exe, "start", "--cbdir", str(cbdir)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, (cbdir / "crossbar.log").read_text()
            time.sleep(0.2)
    else:
        raise AssertionError("crossbar did not start: " + (cbdir / "crossbar.log").read_text())
    yield f"ws://127.0.0.1:{port}/"
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_a_wamp_cluster_announces_each_request_once(router, start):
    """Two masters share one PostgreSQL database and a WAMP message queue, each with
    the bridge: only the leader (the active master with the lowest id) announces,
    and every request is built once."""
    url = database("postgres")
    mq = f"c['mq'] = {{'type': 'wamp', 'router_url': {router!r}, 'realm': 'buildbot'}}\nc['multiMaster'] = True\n"
    first, second = Cluster(url, extra=mq), Cluster(url, extra=mq, upgrade=False)
    try:
        first.start_master()
        first.start_worker()
        second.start_master()
        srv = start("postgres", db_url=url)
        gql = first.wait("the builder", lambda: [
            b["builderid"] for b in srv.ok("{ builders { builderid name } }")["builders"] if b["name"] == "app"])[0]
        first.wait("the worker connects", lambda: first.sql("SELECT COUNT(*) FROM connected_workers")[0][0])
        first.wait("both masters are active",
                   lambda: first.sql("SELECT COUNT(*) FROM masters WHERE active != 0")[0][0] == 2)
        submitted = [submit(srv, gql, f"cluster-{i}") for i in range(5)]
        for bsid, brid, _ in submitted:
            first.wait("every buildset completes", lambda b=bsid: srv.ok(
                "query($b: Int!) { buildset(bsid: $b) { complete } }", {"b": b})["buildset"]["complete"])
            assert len(first.builds_of(brid)) == 1
        time.sleep(2)  # anything announced late would show now
        pattern = r"bridge: announced buildset (\d+) "
        by_first = re.findall(pattern, first.log())
        by_second = re.findall(pattern, second.log())
        assert sorted(int(b) for b in by_first) == sorted(b for b, _, _ in submitted), by_first
        assert by_second == [], by_second
    finally:
        second.stop_master()
        first.stop()


class MasterEvents:
    """The messages the master's message queue delivers, read as Buildbot's own web
    UI reads them: its WebSocket (`/ws`, startConsuming)."""

    def __init__(self, cluster, paths=("buildsets/*/*", "buildrequests/*/*")):
        from websockets.sync.client import connect

        self.messages = []
        self.lock = threading.Lock()
        self._opened = connect(f"ws://127.0.0.1:{cluster.www}/ws", open_timeout=30)
        self.ws = self._opened.__enter__()
        for i, path in enumerate(paths):
            self.ws.send(json.dumps({"cmd": "startConsuming", "path": path, "_id": i}))
            ack = json.loads(self.ws.recv(30))
            assert ack.get("code") == 200, ack
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for raw in self.ws:
                msg = json.loads(raw)
                if "k" in msg:
                    with self.lock:
                        self.messages.append(msg["k"])
        except Exception:  # closed
            pass

    def count(self, key):
        with self.lock:
            return self.messages.count(key)

    def close(self):
        self._opened.__exit__(None, None, None)


def force_build(cluster, builderid, owner):
    """A force build through Buildbot's REST API (JSON-RPC), as its web UI starts one."""
    import httpx

    r = httpx.post(f"http://127.0.0.1:{cluster.www}/api/v2/forceschedulers/force", timeout=60, json={
        "jsonrpc": "2.0", "method": "force", "id": 1,
        "params": {"builderid": str(builderid), "owner": owner, "reason": f"forced {owner}"}})
    assert r.status_code == 200 and "result" in r.json(), r.text
    bsid, _ = r.json()["result"]
    return bsid


def live(cluster, start):
    """The master and its worker started, a server attached, and the builders' ids."""
    cluster.start_master()
    cluster.start_worker()
    srv = start(cluster.backend, db_url=cluster.url)
    ids = cluster.wait("the master registers its builders", lambda: (lambda got: got if len(got) == 3 else None)({
        b["name"]: b["builderid"] for b in srv.ok("{ builders { builderid name } }")["builders"]
        if b["name"] in ("app", "slow", "pending")}))
    cluster.wait("the worker connects", lambda: cluster.sql("SELECT COUNT(*) FROM connected_workers")[0][0])
    # An operator can see the bridge is loaded before submitting anything.
    assert "buildsets-graphql bridge: started" in cluster.log()
    return srv, ids


def test_the_bridge_refuses_arguments_it_does_not_take():
    out = subprocess.run([required_env("BUILDBOT_PYTHON"), "-c",
                          "from buildsets_graphql_bridge import Bridge; Bridge(pol_interval=1)"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "unknown argument(s) pol_interval" in out.stderr, out.stderr


def test_a_schedulers_lifecycle_on_a_live_master(cluster, start):
    """Submit, build at once, watch, cancel: mutation to build start; a buildset with
    no builders; cancelling a pending and a running request; completeBuildset
    refused while the master builds; each message counted in the master's queue."""
    srv, ids = live(cluster, start)
    events = MasterEvents(cluster)
    try:
        # Latency, one at a time: mutation answered -> build started.
        latencies = []
        for i in range(8):
            bsid, brid, sent = submit(srv, ids["app"], f"latency-{i}")
            cluster.wait("the build starts", lambda b=brid: cluster.builds_of(b), timeout=10)
            latencies.append(time.monotonic() - sent)
            cluster.wait("it completes", lambda b=bsid: srv.ok(
                "query($b: Int!) { buildset(bsid: $b) { complete } }", {"b": b})["buildset"]["complete"])
        print(f"\n{cluster.backend}: mutation to build start, 8 in turn: median "
              f"{statistics.median(latencies):.2f} s, max {max(latencies):.2f} s")
        assert statistics.median(latencies) <= 2, latencies

        # No builders: complete at once, and the master hears it added and completed.
        got = srv.ok("""mutation { addBuildset(input: {reason: "nothing", builderids: [],
            sourcestamps: [{stamp: {repository: "r", branch: "main"}}]}) { bsid buildset { complete results } } }""")
        empty = got["addBuildset"]["bsid"]
        assert got["addBuildset"]["buildset"] == {"complete": True, "results": 0}
        cluster.wait("its messages", lambda: events.count(f"buildsets/{empty}/complete") == 1, timeout=10)
        assert events.count(f"buildsets/{empty}/new") == 1

        # Cancel a pending request (its worker never comes): CANCELLED at once, and
        # the master's queue carries the completion, as Buildbot's own cancel sends it.
        bsid, brid, _ = submit(srv, ids["pending"], "to-cancel-pending")
        cluster.wait("it is announced", lambda: events.count(f"buildrequests/{brid}/new") == 1, timeout=10)
        got = srv.ok("""mutation($r: Int!) { cancelBuildRequest(buildrequestid: $r) {
            complete results buildset { complete results } } }""", {"r": brid})["cancelBuildRequest"]
        assert got == {"complete": True, "results": 6, "buildset": {"complete": True, "results": 6}}
        cluster.wait("the completion messages", lambda: events.count(f"buildrequests/{brid}/complete") == 1
                     and events.count(f"buildsets/{bsid}/complete") == 1, timeout=10)
        assert not cluster.builds_of(brid)

        # A running build: completeBuildset is refused; cancelling stops it on the master.
        bsid, brid, _ = submit(srv, ids["slow"], "to-cancel-running")
        cluster.wait("the build starts", lambda: cluster.builds_of(brid), timeout=10)
        code, _, e = srv.err("mutation($b: Int!) { completeBuildset(bsid: $b, results: 2) { bsid } }", {"b": bsid})
        assert code == "BUILD_REQUESTS_UNFINISHED" and e["extensions"]["buildrequestIds"] == [brid], e
        got = srv.ok("""mutation($b: Int!) { cancelBuildset(bsid: $b) { complete
            buildrequests { complete } } }""", {"b": bsid})["cancelBuildset"]
        assert got == {"complete": False, "buildrequests": [{"complete": False}]}  # the master stops it
        cluster.wait("the master stops the build and completes it", lambda: srv.ok(
            "query($b: Int!) { buildset(bsid: $b) { complete results } }", {"b": bsid})["buildset"]
            == {"complete": True, "results": 6}, timeout=30)
        [(_, build_results, _)] = cluster.builds_of(brid)
        assert build_results == 6
        view = srv.ok("query($b: Int!) { buildset(bsid: $b) { buildrequests { complete results } } }",
                      {"b": bsid})["buildset"]
        assert view["buildrequests"] == [{"complete": True, "results": 6}]
        assert events.count(f"buildsets/{bsid}/complete") == 1

        assert "Traceback" not in cluster.log(), cluster.log()[-4000:]
    finally:
        events.close()


def test_a_burst_of_force_builds_and_submissions_is_announced_once_each(cluster, start):
    """50 force builds through Buildbot's REST API alongside 50 submissions here,
    all at once: every buildset's `new` message is delivered by the master's queue
    exactly once (the master announces its own, the bridge only what was written
    here), and every one is built and completed."""
    srv, ids = live(cluster, start)
    events = MasterEvents(cluster)
    try:
        ours, theirs, lock = [], [], threading.Lock()

        def one_here(i):
            r = submit(srv, ids["app"], f"burst-{i}")
            with lock:
                ours.append(r[0])

        def one_forced(i):
            b = force_build(cluster, ids["app"], f"forced-{i}")
            with lock:
                theirs.append(b)

        threads = [threading.Thread(target=fn, args=(i,)) for i in range(50) for fn in (one_here, one_forced)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert len(ours) == 50 and len(theirs) == 50
        for b in ours + theirs:
            cluster.wait("every buildset completes", lambda b=b: srv.ok(
                "query($b: Int!) { buildset(bsid: $b) { complete } }", {"b": b})["buildset"]["complete"], timeout=180)
        time.sleep(2)  # anything announced late would show now
        twice = [b for b in ours + theirs if events.count(f"buildsets/{b}/new") > 1]
        never = [b for b in ours + theirs if events.count(f"buildsets/{b}/new") == 0]
        print(f"{cluster.backend}: burst of 50 + 50: announced twice {len(twice)}, never {len(never)}")
        assert twice == [] and never == [], (twice, never)
        for b in ours + theirs:
            assert events.count(f"buildsets/{b}/complete") == 1, b
        assert cluster.sql("SELECT COUNT(*) FROM buildrequests WHERE complete = 0")[0][0] == 0
        log = cluster.log()
        assert "Traceback" not in log, log[-4000:]
    finally:
        events.close()


def test_the_readme_shows_the_master_cfg_the_tests_run():
    """The operator copies the README's master.cfg: it is the file this suite runs."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = readme.split("<!-- master.cfg -->\n```python\n", 1)[1].split("```\n<!-- /master.cfg -->", 1)[0]
    assert shown == EXAMPLE_CFG
