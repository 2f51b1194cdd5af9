"""Reads from a PostgreSQL streaming replica (--read-database-url), against a real
primary and replica that .ci/run makes with initdb and pg_basebackup -R
(.ci/pg-pair; TEST_PG_PAIR=DIR:PRIMARY_PORT:REPLICA_PORT). Where each statement ran
is read from each server's own pg_stat_statements, not from this server's figures;
lag is injected with pg_wal_replay_pause(), failover by stopping the replica."""

import asyncio
import json
import os
import subprocess
import time
import uuid

import httpx
import pytest

from conftest import ROOT, required_env
from test_browser import browser, loopback_only, site  # noqa: F401 (a fixture)
from test_subscriptions import NESTED, Inbox, connect, init, subscribe

PAIR = ROOT / ".ci" / "pg-pair"


class Pair:
    """The primary and the replica, and one fresh database on them."""

    def __init__(self):
        folder, primary, replica = required_env("TEST_PG_PAIR").split(":")
        self.dir, self.pport, self.rport = folder, int(primary), int(replica)
        self.db = f"rep_{uuid.uuid4().hex[:10]}"
        self.sql(self.pport, f'CREATE DATABASE "{self.db}"', db="postgres")
        self.sql(self.pport, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self.sql(self.rport, "SELECT count(*) FROM pg_stat_statements")
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the new database did not reach the replica")

    def url(self, port):
        return f"postgres://postgres@127.0.0.1:{port}/{self.db}?sslmode=disable"

    def sql(self, port, statement, db=None):
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db or self.db,
             "-Atqc", statement],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def reads(self, port):
        """Statements that read the buildset tables on the server at `port`, so far
        (this server's statements open with its tag, a comment, or with SELECT; the
        replica checks, which read no table, are left out)."""
        return int(self.sql(
            port,
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid "
            f"WHERE d.datname = '{self.db}' AND s.query ~* '^(/\\*[^*]*\\*/ *)?SELECT' "
            "AND s.query ~* '\"(buildsets|sourcestamps|buildrequests|builders)\"'",
        ))

    def replica_rows(self, table):
        """Rows of `table` on the replica; -1 before the table itself is there."""
        try:
            return int(self.sql(self.rport, f"SELECT count(*) FROM {table}"))
        except subprocess.CalledProcessError:
            return -1

    def pause(self):
        self.sql(self.rport, "SELECT pg_wal_replay_pause()")

    def resume(self):
        self.sql(self.rport, "SELECT pg_wal_replay_resume()")

    def replica(self, verb):
        subprocess.run([str(PAIR), f"{verb}-replica", self.dir], check=True)

    def drop(self):
        try:
            self.resume()
        except subprocess.CalledProcessError:
            pass
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.pport), "-U", "postgres", "-qc",
             f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'],
            check=False, capture_output=True,
        )


@pytest.fixture
def pair():
    p = Pair()
    yield p
    # A test that stopped the replica starts it again for the next.
    if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(p.rport), "-q"]).returncode != 0:
        p.replica("start")
    p.drop()


def serve(start, pair, *flags, max_lag_ms=1000):
    return start(
        "postgres", "--read-database-url", pair.url(pair.rport),
        "--replica-max-lag-ms", str(max_lag_ms), *flags, db_url=pair.url(pair.pport),
    )


def builder(srv):
    return srv.ok('mutation { ensureBuilder(name: "rb") { builderid } }')["ensureBuilder"]["builderid"]


ADD = """mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }"""


def add(srv, bid, reason="replica", **extra):
    body = {"query": ADD, "variables": {"in": {
        "reason": reason,
        "sourcestamps": [{"stamp": {"repository": "r", "branch": "main", "revision": "abc"}}],
        "builderids": [bid],
        "properties": [{"name": "owner", "value": "alice", "source": "test"}],
        **extra,
    }}}
    r = srv.http.post("/graphql", json=body)
    data = r.json()
    assert "errors" not in data, data
    return data["data"]["addBuildset"]["bsid"], r.headers.get("x-write-position")


def one(srv, bsid, headers=None):
    r = srv.http.post(
        "/graphql", headers=headers or {},
        json={"query": "query($b: Int!) { buildset(bsid: $b) { bsid reason } }", "variables": {"b": bsid}},
    )
    body = r.json()
    assert "errors" not in body, body
    return body["data"]["buildset"]


def readyz(srv):
    r = srv.http.get("/readyz")
    assert r.status_code == 200, r.text
    return r.text


def wait_for(predicate, seconds=15, what="condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {seconds} s")


def metric(srv, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in srv.http.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_queries_read_from_the_replica_and_mutations_write_the_primary(start, pair):
    srv = serve(start, pair)
    assert "replica 127.0.0.1" in readyz(srv) and ": in" in readyz(srv), readyz(srv)
    bid = builder(srv)
    bsids = [add(srv, bid)[0] for _ in range(3)]
    wait_for(lambda: pair.replica_rows("buildsets") == 3, what="replication")
    p0, r0 = pair.reads(pair.pport), pair.reads(pair.rport)
    page = "{ buildsets(first: 10) { edges { node { bsid sourcestamps { branch } buildrequests { builderid } } } } }"
    for _ in range(20):
        found = [e["node"]["bsid"] for e in srv.ok(page)["buildsets"]["edges"]]
        assert sorted(found) == sorted(bsids)
    p1, r1 = pair.reads(pair.pport), pair.reads(pair.rport)
    assert r1 - r0 >= 20, (r0, r1)
    assert p1 == p0, f"queries read the primary's buildsets: {p0} -> {p1}"
    # A client that asks for the primary gets it.
    r = srv.http.post("/graphql", headers={"X-Read-From": "primary"}, json={"query": page})
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    assert pair.reads(pair.pport) > p1
    assert pair.reads(pair.rport) == r1
    # The mutations' inserts are the primary's (a replica refuses writes anyway).
    inserts = int(pair.sql(
        pair.pport,
        "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database d "
        f"ON d.oid = s.dbid WHERE d.datname = '{pair.db}' AND s.query ~* 'INSERT INTO \"?buildsets\"? '",
    ))
    assert inserts >= 3
    reads = {k: metric(srv, "bsgql_reads_total", database=k) for k in ("primary", f"127.0.0.1:{pair.rport}/{pair.db}")}
    assert reads[f"127.0.0.1:{pair.rport}/{pair.db}"] >= 20 and reads["primary"] >= 1, reads
    assert metric(srv, "bsgql_replica_up", replica=f"127.0.0.1:{pair.rport}/{pair.db}") == 1


def test_read_your_writes_with_the_write_position(start, pair):
    srv = serve(start, pair, max_lag_ms=5000)
    bid = builder(srv)
    wait_for(lambda: pair.replica_rows("builders") == 1, what="replication")
    pair.pause()
    bsid, position = add(srv, bid, reason="mine")
    assert position and "/" in position, position
    # The replica has not replayed it: a plain read may not see it (the README says
    # so); one that names the write, or asks for the primary, does.
    assert one(srv, bsid) is None
    assert one(srv, bsid, {"X-Read-After": position}) == {"bsid": bsid, "reason": "mine"}
    assert one(srv, bsid, {"X-Read-From": "primary"}) == {"bsid": bsid, "reason": "mine"}
    pair.resume()
    # Once the replica has it, X-Read-After is served there again.
    wait_for(lambda: one(srv, bsid) is not None, what="the replica catching up")
    r0 = pair.reads(pair.rport)
    assert one(srv, bsid, {"X-Read-After": position}) == {"bsid": bsid, "reason": "mine"}
    assert pair.reads(pair.rport) > r0


def test_bad_read_headers_are_refused_with_a_code(start, pair):
    srv = serve(start, pair)
    for headers in ({"X-Read-From": "nearest"}, {"X-Read-After": "yesterday"}, {"X-Read-After": "1/2/3"}):
        r = srv.http.post("/graphql", headers=headers, json={"query": "{ __typename }"})
        assert r.status_code == 400, (headers, r.text)
        body = r.json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST", body
        assert list(headers)[0] in body["errors"][0]["message"], body


def test_events_carry_their_nested_rows_while_the_replica_lags(start, pair):
    srv = serve(start, pair, max_lag_ms=10000)
    bid = builder(srv)
    wait_for(lambda: pair.replica_rows("builders") == 1, what="replication")

    async def run():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "1", f"subscription {{ buildsetAdded {{ {NESTED} }} }}")
        await asyncio.sleep(0.5)
        pair.pause()
        try:
            bsids = [add(srv, bid, reason=f"lagging {k}")[0] for k in range(3)]
            deadline = time.time() + 15
            while len(inbox.events("1")) < 3 and time.time() < deadline:
                await asyncio.sleep(0.05)
        finally:
            pair.resume()
        events = [e["buildsetAdded"] for e in inbox.events("1")]
        assert [e["bsid"] for e in events] == bsids
        for e in events:
            assert e["sourcestamps"] == [{"branch": "main", "repository": "r", "patch": None}], e
            assert e["properties"] == [{"name": "owner", "value": "alice", "source": "test"}], e
            assert [r["builderid"] for r in e["buildrequests"]] == [bid], e
        # And with the replica replaying, events still come whole.
        more = [add(srv, bid, reason=f"live {k}")[0] for k in range(3)]
        deadline = time.time() + 15
        while len(inbox.events("1")) < 6 and time.time() < deadline:
            await asyncio.sleep(0.05)
        events = [e["buildsetAdded"] for e in inbox.events("1")][3:]
        assert [e["bsid"] for e in events] == more
        assert all(e["sourcestamps"] and e["properties"] and e["buildrequests"] for e in events), events
        await ws.close()

    asyncio.run(run())


def test_a_replica_past_the_lag_bound_is_taken_out_and_back(start, pair):
    srv = serve(start, pair, max_lag_ms=500)
    name = f"127.0.0.1:{pair.rport}/{pair.db}"
    bid = builder(srv)
    wait_for(lambda: metric(srv, "bsgql_replica_up", replica=name) == 1, what="the replica in")
    pair.pause()
    try:
        # The primary moves on; the replica does not.
        stop = time.time() + 1.5
        while time.time() < stop:
            add(srv, bid)
            time.sleep(0.1)
        wait_for(lambda: metric(srv, "bsgql_replica_up", replica=name) == 0, what="the replica out")
        assert metric(srv, "bsgql_replica_lag_seconds", replica=name) > 0.5
        text = readyz(srv)
        assert f"replica {name}: out" in text and "behind the primary" in text, text
        assert "reads: the primary" in text, text
        # Reads now see every write at once: they are the primary's.
        bsid, _ = add(srv, bid, reason="fresh")
        assert one(srv, bsid) == {"bsid": bsid, "reason": "fresh"}
    finally:
        pair.resume()
    wait_for(lambda: metric(srv, "bsgql_replica_up", replica=name) == 1, what="the replica back in")
    assert f"replica {name}: in" in readyz(srv)


def test_reads_fail_over_to_the_primary_when_the_replica_stops(start, pair):
    srv = serve(start, pair)
    name = f"127.0.0.1:{pair.rport}/{pair.db}"
    bid = builder(srv)
    bsid, _ = add(srv, bid, reason="before")
    wait_for(lambda: one(srv, bsid) is not None, what="replication")
    pair.replica("stop")
    # Not one read fails, the first after the stop included.
    for _ in range(20):
        assert one(srv, bsid) == {"bsid": bsid, "reason": "before"}
    text = wait_for(lambda: (t := readyz(srv)) and f"replica {name}: out" in t and t, what="out in /readyz")
    assert text.startswith("ready\n"), text
    assert metric(srv, "bsgql_replica_up", replica=name) == 0
    after, _ = add(srv, bid, reason="during")
    assert one(srv, after) == {"bsid": after, "reason": "during"}
    pair.replica("start")
    wait_for(lambda: metric(srv, "bsgql_replica_up", replica=name) == 1, seconds=30, what="back in")
    # In is within --replica-max-lag-ms, not caught up: a plain read may miss the
    # write until the replica has replayed it (the README says so).
    wait_for(lambda: pair.replica_rows("buildsets") >= 2, what="the replica replaying the write")
    r0 = pair.reads(pair.rport)
    assert one(srv, after) == {"bsid": after, "reason": "during"}
    assert pair.reads(pair.rport) > r0


def test_a_replica_that_is_not_a_standby_or_not_there_is_out_from_the_start(start, pair):
    # The primary itself named as a replica, and a port nothing listens on.
    srv = start(
        "postgres", "--read-database-url", pair.url(pair.pport),
        "--read-database-url", f"postgres://postgres@127.0.0.1:9/{pair.db}",
        db_url=pair.url(pair.pport),
    )
    text = readyz(srv)
    assert "not in recovery" in text and "127.0.0.1:9/" in text, text
    assert "reads: the primary" in text, text
    assert srv.ok("{ buildsets(first: 1) { totalCount } }")["buildsets"]["totalCount"] == 0


@pytest.mark.parametrize("primary", ["sqlite", "mysql"])
def test_replicas_need_a_postgresql_primary(primary, tmp_path):
    from conftest import BIN, database
    url = f"sqlite://{tmp_path}/b.db?mode=rwc" if primary == "sqlite" else database("mysql")
    out = subprocess.run(
        [BIN, "--database-url", url, "--read-database-url", "postgres://postgres@127.0.0.1:9/x",
         "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert "--read-database-url needs a PostgreSQL primary" in out.stderr + out.stdout, out


WRITE_THEN_READ = """async ([url, bid]) => {
  const post = (body, headers) => fetch(url, {method: 'POST',
    headers: {'content-type': 'application/json', ...headers}, body: JSON.stringify(body)});
  const w = await post({query: `mutation { addBuildset(input: {reason: "from a page",
    sourcestamps: [{stamp: {repository: "r", branch: "main"}}], builderids: [${bid}]}) { bsid } }`});
  const position = w.headers.get('X-Write-Position');
  const bsid = (await w.json()).data.addBuildset.bsid;
  const r = await post({query: `{ buildset(bsid: ${bsid}) { bsid reason } }`},
                       {'X-Read-After': position});
  return {position, bsid, read: await r.json()};
}"""


def test_a_page_reads_its_write_across_origins(start, pair, browser):
    """CORS lets a page of an allowed origin read X-Write-Position and send
    X-Read-After (a preflighted header) back, in a real Chromium."""
    page_site, origin = site()
    try:
        srv = serve(start, pair, "--cors-origin", origin)
        bid = builder(srv)
        wait_for(lambda: pair.replica_rows("builders") == 1, what="replication")
        pair.pause()
        page = browser.new_page()
        loopback_only(page)
        page.goto(origin)
        out = page.evaluate(WRITE_THEN_READ, [srv.base + "/graphql", bid])
        assert out["position"] and "/" in out["position"], out
        assert out["read"] == {"data": {"buildset": {"bsid": out["bsid"], "reason": "from a page"}}}, out
    finally:
        page_site.shutdown()
