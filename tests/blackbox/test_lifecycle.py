"""A buildset's lifecycle as a master sees it, from outside (httpx, websockets, plain
SQL): a buildset with no builders is complete at once with SUCCESS, as Buildbot's
own addBuildset leaves it; attached to a Buildbot database, completeBuildset does not
complete a buildset whose build requests the master has not finished."""

import asyncio
import sqlite3
import urllib.parse

import pytest

from conftest import database
from test_subscriptions import Inbox, buildbot, connect, init, subscribe

ADD = """mutation($in: AddBuildsetInput!) { addBuildset(input: $in) {
  bsid brids { builderid buildrequestid }
  buildset { complete results completeAt submittedAt buildrequests { buildrequestid } } } }"""
COMPLETE = """mutation($b: Int!, $r: Int!) { completeBuildset(bsid: $b, results: $r) {
  bsid complete results } }"""
READ = "query($b: Int!) { buildset(bsid: $b) { complete results completeAt } }"


def sql(url, statement):
    """Runs one statement on the server's database with a client of its own."""
    if url.startswith("sqlite"):
        path = url.split("://", 1)[1].split("?", 1)[0]
        with sqlite3.connect(path) as db:
            db.execute(statement)
        return
    if url.startswith("mysql"):
        with mysql(url) as conn, conn.cursor() as cur:
            cur.execute(statement)
            conn.commit()
        return
    import psycopg2

    conn = psycopg2.connect(url.split("?")[0])
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def mysql(url):
    import pymysql

    parts = urllib.parse.urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                           password=parts.password or "", database=parts.path.lstrip("/"))


def stamp(branch):
    return [{"stamp": {"repository": "https://example.org/r.git", "branch": branch}}]


def builder(srv, name, token=None):
    return srv.ok('mutation($n: String!) { ensureBuilder(name: $n) { builderid } }', {"n": name},
                  token=token)["ensureBuilder"]["builderid"]


def submit(srv, builderids, token=None):
    """A buildset on `builderids`: (bsid, its build request ids in order, the answer)."""
    got = srv.ok(ADD, {"in": {"reason": "r", "sourcestamps": stamp("m"), "builderids": builderids}},
                 token=token)["addBuildset"]
    return got["bsid"], sorted(r["buildrequestid"] for r in got["brids"]), got


@pytest.mark.parametrize("attached", [False, True], ids=["standalone", "attached"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_a_buildset_with_no_builders_is_complete_at_once(start, backend, attached):
    url = database(backend)
    if attached:
        buildbot("create", url)
    srv = start(backend, "--poll-interval-ms", "200", db_url=url)

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "add", "subscription { buildsetAdded { bsid complete } }")
        await subscribe(ws, "done", "subscription { buildsetCompleted { bsid complete results } }")
        await asyncio.sleep(0.5)
        got = srv.ok(ADD, {"in": {"reason": "nothing to build", "sourcestamps": stamp("empty"),
                                  "builderids": []}})["addBuildset"]
        bs = got["buildset"]
        assert got["brids"] == [] and bs["buildrequests"] == []
        assert bs["complete"] is True and bs["results"] == 0, bs
        assert bs["completeAt"] is not None and bs["completeAt"] >= bs["submittedAt"]
        bsid = got["bsid"]
        # Stored that way: another reader sees it complete, and a completion now is late.
        assert srv.ok(READ, {"b": bsid})["buildset"] == {
            "complete": True, "results": 0, "completeAt": bs["completeAt"]}
        code, _, e = srv.err(COMPLETE, {"b": bsid, "r": 2})
        assert code == "ALREADY_COMPLETE", e
        # Subscribers hear it added, then completed.
        [added] = await inbox.wait("add", 1)
        [done] = await inbox.wait("done", 1)
        assert added == {"buildsetAdded": {"bsid": bsid, "complete": True}}
        assert done == {"buildsetCompleted": {"bsid": bsid, "complete": True, "results": 0}}
        await ws.close()

    asyncio.run(go())


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_attached_complete_buildset_waits_for_the_masters_requests(start, backend):
    url = database(backend)
    buildbot("create", url)
    srv = start(backend, db_url=url)
    b = builder(srv, "lin")
    c = builder(srv, "mac")
    bsid, brids, got = submit(srv, [b, c])
    assert got["buildset"]["complete"] is False

    # Both ways of answering (the buildset alone, and with relations) refuse alike.
    for q in (COMPLETE, COMPLETE.replace("complete results }", "complete results buildrequests { complete } }")):
        code, _, e = srv.err(q, {"b": bsid, "r": 2})
        assert code == "BUILD_REQUESTS_UNFINISHED", e
        assert e["extensions"]["buildrequestIds"] == brids
        assert "cancel" in e["message"] and str(bsid) in e["message"]
    assert srv.ok(READ, {"b": bsid})["buildset"] == {"complete": False, "results": None, "completeAt": None}

    # The master finishes one: still refused, naming the other.
    sql(url, f"UPDATE buildrequests SET complete = 1, results = 0, complete_at = 1 WHERE id = {brids[0]}")
    code, _, e = srv.err(COMPLETE, {"b": bsid, "r": 2})
    assert code == "BUILD_REQUESTS_UNFINISHED" and e["extensions"]["buildrequestIds"] == brids[1:], e
    # Both finished: the buildset may be completed (as Buildbot's maybeBuildsetComplete would).
    sql(url, f"UPDATE buildrequests SET complete = 1, results = 0, complete_at = 1 WHERE id = {brids[1]}")
    assert srv.ok(COMPLETE, {"b": bsid, "r": 0})["completeBuildset"] == {"bsid": bsid, "complete": True, "results": 0}
    # Unknown and complete buildsets keep their own codes.
    assert srv.err(COMPLETE, {"b": bsid, "r": 0})[0] == "ALREADY_COMPLETE"
    assert srv.err(COMPLETE, {"b": bsid + 100, "r": 0})[0] == "NOT_FOUND"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_standalone_complete_buildset_leaves_requests_alone(start, backend):
    """Standalone, there is no master: completing a buildset with unfinished requests
    is allowed, and leaves the requests as they are (Buildbot's completeBuildset does
    not touch them either)."""
    srv = start(backend)
    b = builder(srv, "lin")
    bsid, _, _ = submit(srv, [b])
    done = srv.ok(COMPLETE.replace("complete results }", "complete results buildrequests { complete } }"),
                  {"b": bsid, "r": 2})["completeBuildset"]
    assert done == {"bsid": bsid, "complete": True, "results": 2, "buildrequests": [{"complete": False}]}


def rows(url, query):
    """Rows of one query on the server's database, read with a client of its own."""
    if url.startswith("sqlite"):
        path = url.split("://", 1)[1].split("?", 1)[0]
        with sqlite3.connect(path) as db:
            return db.execute(query).fetchall()
    if url.startswith("mysql"):
        with mysql(url) as conn, conn.cursor() as cur:
            cur.execute(query)
            return [tuple(r) for r in cur.fetchall()]
    import psycopg2

    conn = psycopg2.connect(url.split("?")[0])
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


CANCEL_BS = """mutation($b: Int!) { cancelBuildset(bsid: $b) {
  bsid complete results buildrequests { buildrequestid complete results } } }"""
CANCEL_BR = """mutation($r: Int!) { cancelBuildRequest(buildrequestid: $r) {
  buildrequestid complete results buildset { complete results } } }"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_standalone_cancel(start, backend):
    """Standalone, cancelling completes the requests with CANCELLED (6), then the
    buildset with the worst of its requests' results; the write token is needed, and
    a subscriber hears the completion."""
    srv = start(backend, "--write-token", "w", "--poll-interval-ms", "200")
    ok = lambda q, v=None: srv.ok(q, v, token="w")  # noqa: E731
    a = builder(srv, "a", token="w")
    b = builder(srv, "b", token="w")
    bsid, brids, _ = submit(srv, [a, b], token="w")

    # Without the write token: refused, nothing changed.
    code, _, e = srv.err(CANCEL_BR, {"r": brids[0]})
    assert code == "UNAUTHENTICATED", e
    assert srv.ok(READ, {"b": bsid})["buildset"]["complete"] is False

    async def go():
        ws = await init(await connect(srv), {"Authorization": "Bearer w"})
        inbox = Inbox(ws)
        await subscribe(ws, "done", "subscription { buildsetCompleted { bsid complete results } }")
        await asyncio.sleep(0.5)
        one = ok(CANCEL_BR, {"r": brids[0]})["cancelBuildRequest"]
        assert one == {"buildrequestid": brids[0], "complete": True, "results": 6,
                       "buildset": {"complete": False, "results": None}}
        code, _, e = srv.err(CANCEL_BR, {"r": brids[0]}, token="w")
        assert code == "ALREADY_COMPLETE" and str(brids[0]) in e["message"], e
        whole = ok(CANCEL_BS, {"b": bsid})["cancelBuildset"]
        assert whole == {"bsid": bsid, "complete": True, "results": 6, "buildrequests": [
            {"buildrequestid": brids[0], "complete": True, "results": 6},
            {"buildrequestid": brids[1], "complete": True, "results": 6}]}
        [done] = await inbox.wait("done", 1)
        assert done == {"buildsetCompleted": {"bsid": bsid, "complete": True, "results": 6}}
        await ws.close()

    asyncio.run(go())
    assert srv.err(CANCEL_BS, {"b": bsid}, token="w")[0] == "ALREADY_COMPLETE"
    assert srv.err(CANCEL_BS, {"b": bsid + 100}, token="w")[0] == "NOT_FOUND"
    assert srv.err(CANCEL_BR, {"r": brids[1] + 100}, token="w")[0] == "NOT_FOUND"


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_attached_cancel_and_what_the_bridge_is_left(start, backend):
    """Attached to a Buildbot database: an unclaimed request is claimed (in the name
    of a master, as Buildbot's cancel claims it) and completed at once, and the
    bridge is left `cancelled:<brid>` to send Buildbot's messages; a request a master
    holds is left to its master (`cancel:<brid>`) and stays unfinished here. Every
    buildset added is left `announce:<bsid>` in the same transaction."""
    url = database(backend)
    buildbot("create", url)
    srv = start(backend, db_url=url)
    a = builder(srv, "a")
    b = builder(srv, "b")
    bsid, brids, got = submit(srv, [a, b])
    empty = srv.ok(ADD, {"in": {"reason": "e", "sourcestamps": stamp("m"), "builderids": []}})["addBuildset"]["bsid"]

    state = ("SELECT object_state.name, object_state.value_json FROM object_state JOIN objects "
             "ON objects.id = object_state.objectid WHERE objects.name = 'buildsets-graphql-bridge' "
             "AND objects.class_name = 'buildsets_graphql_bridge.Bridge' ORDER BY object_state.name")
    import json
    left = {n: json.loads(v) for n, v in rows(url, state)}
    assert left == {f"announce:{bsid}": {}, f"announce:{empty}": {"complete": True}}, left

    # A master exists and holds the second request (as its distributor claims them).
    sql(url, "INSERT INTO masters (id, name, name_hash, active, last_active) "
             "VALUES (7, 'm', 'da39a3ee5e6b4b0d3255bfef95601890afd80709', 1, 0)")
    sql(url, f"INSERT INTO buildrequest_claims (brid, masterid, claimed_at) VALUES ({brids[1]}, 7, 0)")

    whole = srv.ok(CANCEL_BS, {"b": bsid})["cancelBuildset"]
    assert whole == {"bsid": bsid, "complete": False, "results": None, "buildrequests": [
        {"buildrequestid": brids[0], "complete": True, "results": 6},
        {"buildrequestid": brids[1], "complete": False, "results": None}]}
    # The first is claimed in the master's name, so no master starts it now.
    assert rows(url, f"SELECT masterid FROM buildrequest_claims WHERE brid = {brids[0]}") == [(7,)]
    left = {n: json.loads(v) for n, v in rows(url, state)}
    assert left[f"cancelled:{brids[0]}"] == {"bsid": bsid, "buildset_complete": False}, left
    assert f"cancel:{brids[1]}" in left, left
    # The master stops the build and completes the request: then the buildset is its
    # to complete; until then completeBuildset is refused, naming the request.
    code, _, e = srv.err(COMPLETE, {"b": bsid, "r": 6})
    assert code == "BUILD_REQUESTS_UNFINISHED" and e["extensions"]["buildrequestIds"] == [brids[1]], e


def at_once(calls):
    """Runs the (query, variables) calls at the same moment; their bodies, in order."""
    import threading

    import httpx

    bodies = [None] * len(calls)
    go = threading.Barrier(len(calls))

    def one(i, srv, q, v):
        with httpx.Client(base_url=srv.base, timeout=60) as c:
            go.wait()
            bodies[i] = c.post("/graphql", json={"query": q, "variables": v}).json()

    threads = [threading.Thread(target=one, args=(i, *call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return bodies


@pytest.mark.parametrize("attached", [False, True], ids=["standalone", "attached"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_concurrent_cancels_and_completions_take_turns(start, backend, attached):
    """Cancels and completions of one buildset at the same moment end as one after
    the other would: two cancels of its two requests complete the buildset (each
    once saw the other's request unfinished, and the buildset stayed incomplete for
    ever); ten cancels of one request: one succeeds; a completion racing a cancel
    never leaves CANCELLED requests under another result."""
    url = database(backend)
    if attached:
        buildbot("create", url)
    srv = start(backend, db_url=url)
    a = builder(srv, "a")
    b = builder(srv, "b")
    for _ in range(6):
        bsid, (x, y), _ = submit(srv, [a, b])
        bodies = at_once([(srv, CANCEL_BR, {"r": x}), (srv, CANCEL_BR, {"r": y})])
        assert all("errors" not in body for body in bodies), bodies
        assert srv.ok(READ, {"b": bsid})["buildset"]["complete"] is True, (bsid, bodies)
        assert srv.ok(READ, {"b": bsid})["buildset"]["results"] == 6

        _, [brid], _ = submit(srv, [a])
        bodies = at_once([(srv, CANCEL_BR, {"r": brid})] * 10)
        codes = sorted(body["errors"][0]["extensions"]["code"] if "errors" in body else "OK" for body in bodies)
        assert codes == ["ALREADY_COMPLETE"] * 9 + ["OK"], bodies

    if attached:
        return  # completeBuildset waits for the requests there (test above)
    for _ in range(6):
        bsid, _, _ = submit(srv, [a, b])
        bodies = at_once([(srv, CANCEL_BS, {"b": bsid}), (srv, COMPLETE, {"b": bsid, "r": 2})])
        oks = [body for body in bodies if "errors" not in body]
        assert len(oks) == 1, bodies
        view = srv.ok("query($b: Int!) { buildset(bsid: $b) { results buildrequests { complete results } } }",
                      {"b": bsid})["buildset"]
        if "cancelBuildset" in oks[0]["data"]:
            assert view == {"results": 6, "buildrequests": [{"complete": True, "results": 6}] * 2}, view
        else:
            assert view == {"results": 2, "buildrequests": [{"complete": False, "results": None}] * 2}, view


def test_a_lock_wait_past_the_statement_timeout_is_unavailable(start):
    """A cancel blocked on a row another session holds, past --statement-timeout:
    UNAVAILABLE (the database did not answer in time), not INTERNAL; nothing written."""
    import threading

    import psycopg2

    url = database("postgres")
    srv = start("postgres", "--statement-timeout", "2", db_url=url)
    a = builder(srv, "a")
    bsid, _, _ = submit(srv, [a])
    holder = psycopg2.connect(url.split("?")[0])
    try:
        cur = holder.cursor()
        cur.execute("SELECT id FROM buildsets WHERE id = %s FOR UPDATE", (bsid,))
        code, _, e = srv.err(CANCEL_BS, {"b": bsid})
        assert code == "UNAVAILABLE", e
    finally:
        holder.rollback()
        holder.close()
    assert srv.ok(READ, {"b": bsid})["buildset"]["complete"] is False
    assert srv.ok(CANCEL_BS, {"b": bsid})["cancelBuildset"]["complete"] is True
