"""Subscriptions (buildsetAdded, buildsetCompleted) over graphql-transport-ws, read
with Python's `websockets` and `json`: events come from the database, so another
server, Buildbot's own connector and plain SQL all give them."""

import asyncio
import json
import signal
import socket
import statistics
import subprocess
import time
import urllib.parse

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import ROOT, database, required_env

PROTOCOL = "graphql-transport-ws"

NESTED = """
  bsid reason complete results externalIdstring
  sourcestamps { branch repository patch { level body author } }
  properties { name value source }
  buildrequests { builderid complete builder { name } buildset { bsid } }
"""


async def connect(srv, **kw):
    return await websockets.connect(
        srv.base.replace("http", "ws") + "/graphql/ws",
        subprotocols=[PROTOCOL],
        open_timeout=10,
        **kw,
    )


async def init(ws, payload=None):
    await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert msg["type"] == "connection_ack", msg
    return ws


async def subscribe(ws, op_id, query, variables=None):
    await ws.send(json.dumps({"id": op_id, "type": "subscribe",
                              "payload": {"query": query, "variables": variables or {}}}))


class Inbox:
    """Reads one socket in the background, sorting messages by operation id."""

    def __init__(self, ws):
        self.ws = ws
        self.by_id = {}
        self.arrived = {}
        self.closed = None
        self.task = asyncio.create_task(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                self.by_id.setdefault(msg.get("id"), []).append(msg)
                self.arrived.setdefault(msg.get("id"), []).append(time.monotonic())
        except ConnectionClosed:
            pass
        self.closed = (self.ws.close_code, self.ws.close_reason)

    def events(self, op_id):
        """The `next` payloads' data so far."""
        out = []
        for m in self.by_id.get(op_id, []):
            assert m["type"] in ("next", "complete"), m
            if m["type"] == "next":
                assert "errors" not in m["payload"], m
                out.append(m["payload"]["data"])
        return out

    async def first_error(self, op_id, timeout=5):
        """The first error of operation `op_id`, which must answer with one."""
        deadline = time.monotonic() + timeout
        while op_id not in self.by_id:
            assert time.monotonic() < deadline, f"{op_id}: no answer: {self.by_id}"
            await asyncio.sleep(0.05)
        return first_error(self.by_id[op_id][0])

    async def wait(self, op_id, n, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.events(op_id)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{op_id}: {len(self.events(op_id))} of {n} events: {self.by_id}")
            await asyncio.sleep(0.02)
        return self.events(op_id)


def first_error(msg):
    """The first GraphQL error of a message: an `error` message's, or a `next` one's."""
    assert msg["type"] == "error" or "errors" in msg["payload"], msg
    return (msg["payload"] if msg["type"] == "error" else msg["payload"]["errors"])[0]


async def in_thread(fn, *args, **kw):
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


def builder(srv, name="live"):
    return srv.ok(f'mutation {{ ensureBuilder(name: "{name}") {{ builderid }} }}')["ensureBuilder"]["builderid"]


def add(srv, branch="main", props=(), builderids=None, patch=None):
    stamp = {"repository": "r", "branch": branch}
    if patch:
        stamp["patch"] = patch
    inp = {
        "reason": f"live {branch}",
        "sourcestamps": [{"stamp": stamp}],
        "builderids": builderids if builderids is not None else [builder(srv)],
        "properties": list(props),
    }
    return srv.ok("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }",
                  {"in": inp})["addBuildset"]["bsid"]


def complete(srv, bsid, results=0):
    srv.ok(f"mutation {{ completeBuildset(bsid: {bsid}, results: {results}) {{ bsid }} }}")


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_added_event_carries_the_whole_nested_buildset(start, backend):
    srv = start(backend)
    b = builder(srv)

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "a", "subscription { buildsetAdded { " + NESTED + " } }")
        await asyncio.sleep(0.3)
        bsid = await in_thread(
            add, srv, "feat", [{"name": "n", "value": {"i": 3, "f": 1.0}, "source": "test"}],
            [b], {"body": "--- a\n+++ b\n", "level": 2},
        )
        [event] = await inbox.wait("a", 1)
        # The event is what a query for the same buildset answers, field for field.
        query = srv.ok("query($b: Int!) { buildset(bsid: $b) { " + NESTED + " } }", {"b": bsid})
        assert event["buildsetAdded"] == query["buildset"]
        ev = event["buildsetAdded"]
        assert ev["bsid"] == bsid and ev["complete"] is False and ev["results"] is None
        assert ev["properties"] == [{"name": "n", "value": {"i": 3, "f": 1.0}, "source": "test"}]
        assert ev["sourcestamps"][0]["patch"]["level"] == 2
        assert ev["buildrequests"][0]["builder"]["name"] == "live"
        await ws.close()

    asyncio.run(go())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_completed_by_bsid_unfiltered_and_filtered(start, backend):
    srv = start(backend)
    b = builder(srv)

    async def go():
        x = await in_thread(add, srv, "main", (), [b])
        y = await in_thread(add, srv, "rel", (), [b])
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "one", "subscription($b: Int) { buildsetCompleted(bsid: $b) { bsid results } }", {"b": x})
        await subscribe(ws, "all", "subscription { buildsetCompleted { bsid results complete } }")
        await subscribe(ws, "rel", 'subscription { buildsetCompleted(where: {branch: {eq: "rel"}}) { bsid } }')
        await subscribe(ws, "added-rel", 'subscription { buildsetAdded(where: {branch: {eq: "rel"}}) { bsid } }')
        await asyncio.sleep(0.3)
        await in_thread(complete, srv, y, 2)
        await in_thread(complete, srv, x, 0)
        z = await in_thread(add, srv, "rel", (), [b])
        assert await inbox.wait("one", 1) == [{"buildsetCompleted": {"bsid": x, "results": 0}}]
        # Order is kept per buildset; two completions in one poll come by id.
        got = await inbox.wait("all", 2)
        assert sorted(got, key=lambda e: e["buildsetCompleted"]["bsid"]) == [
            {"buildsetCompleted": {"bsid": x, "results": 0, "complete": True}},
            {"buildsetCompleted": {"bsid": y, "results": 2, "complete": True}},
        ]
        assert await inbox.wait("rel", 1) == [{"buildsetCompleted": {"bsid": y}}]
        assert await inbox.wait("added-rel", 1) == [{"buildsetAdded": {"bsid": z}}]
        # Nothing more comes: each change once.
        await asyncio.sleep(1.5)
        assert len(inbox.events("one")) == 1 and len(inbox.events("all")) == 2
        assert len(inbox.events("rel")) == 1 and len(inbox.events("added-rel")) == 1
        await ws.close()

    asyncio.run(go())


def latency_report(name, samples):
    samples = sorted(samples)
    print(f"\n{name}: median {statistics.median(samples) * 1000:.1f} ms, "
          f"max {samples[-1] * 1000:.1f} ms over {len(samples)} events")


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_two_instances_on_one_database(start, backend):
    """Subscribe on one server, write through another: on PostgreSQL the subscriber
    polls once a minute, so only NOTIFY can bring the event in time; on MariaDB the
    poller does (default interval, 1 s)."""
    url = database(backend)
    poll = ["--poll-interval-ms", "60000"] if backend == "postgres" else []
    a = start(backend, *poll, db_url=url)
    b = start(backend, db_url=url)
    bid = builder(b)

    async def go():
        ws = await init(await connect(a))
        inbox = Inbox(ws)
        await subscribe(ws, "add", "subscription { buildsetAdded { bsid sourcestamps { branch } } }")
        await subscribe(ws, "done", "subscription { buildsetCompleted { bsid results } }")
        await asyncio.sleep(1.5)
        lat = []
        for i in range(5):
            sent = time.monotonic()
            bsid = await in_thread(add, b, f"x{i}", (), [bid])
            await inbox.wait("add", i + 1, timeout=2)
            lat.append(inbox.arrived["add"][i] - sent)
            assert inbox.events("add")[i] == {"buildsetAdded": {"bsid": bsid, "sourcestamps": [{"branch": f"x{i}"}]}}
            await in_thread(complete, b, bsid, 1)
            await inbox.wait("done", i + 1, timeout=2)
            assert inbox.events("done")[i] == {"buildsetCompleted": {"bsid": bsid, "results": 1}}
        latency_report(f"cross-instance {backend}", lat)
        assert max(lat) < 2
        await ws.close()

    asyncio.run(go())


def buildbot(command, url, *args):
    py = required_env("BUILDBOT_PYTHON")
    out = subprocess.run([py, str(ROOT / "tests" / "interop" / "bb.py"), command, url, *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_rows_buildbot_writes_give_events(start, backend):
    url = database(backend)
    buildbot("create", url)
    srv = start(backend, "--poll-interval-ms", "300", db_url=url)

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "add", "subscription { buildsetAdded { bsid reason properties { name value source } buildrequests { builder { name } } } }")
        await subscribe(ws, "done", "subscription { buildsetCompleted { bsid complete results } }")
        await asyncio.sleep(1)
        added = await in_thread(buildbot, "add", url, "bb-branch")
        bsid = added["bsid"]
        [ev] = await inbox.wait("add", 1)
        assert ev == {"buildsetAdded": {
            "bsid": bsid, "reason": "added by Buildbot",
            "properties": [{"name": "owner", "value": "buildbot", "source": "Scheduler"}],
            "buildrequests": [{"builder": {"name": "bb-live"}}],
        }}
        await in_thread(buildbot, "complete", url, str(bsid), "3")
        [ev] = await inbox.wait("done", 1)
        assert ev == {"buildsetCompleted": {"bsid": bsid, "complete": True, "results": 3}}
        await asyncio.sleep(1)
        assert len(inbox.events("add")) == 1 and len(inbox.events("done")) == 1
        await ws.close()

    asyncio.run(go())


def pg_connect(url):
    import psycopg2

    parts = urllib.parse.urlsplit(url)
    return psycopg2.connect(host=parts.hostname, port=parts.port or 5432,
                            user=parts.username or "postgres", dbname=parts.path.lstrip("/"))


INSERT = ("INSERT INTO buildsets (reason, submitted_at, complete, results) "
          "VALUES (%s, 1700000000, 0, -1) RETURNING id")


def test_out_of_order_commits_each_give_one_event(start):
    url = database("postgres")
    srv = start("postgres", "--poll-interval-ms", "200", db_url=url)
    # Plain SQL: no NOTIFY, so only the poller can see these.
    bare = url.split("?")[0]

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "add", "subscription { buildsetAdded { bsid reason } }")
        await asyncio.sleep(0.5)
        a, b = pg_connect(bare), pg_connect(bare)
        ca, cb = a.cursor(), b.cursor()
        ca.execute(INSERT, ("A",))
        n = ca.fetchone()[0]
        cb.execute(INSERT, ("B",))
        assert cb.fetchone()[0] == n + 1
        b.commit()
        assert await inbox.wait("add", 1) == [{"buildsetAdded": {"bsid": n + 1, "reason": "B"}}]
        # Several polls pass over the gap at n before A commits.
        await asyncio.sleep(1)
        a.commit()
        events = await inbox.wait("add", 2)
        assert events[1] == {"buildsetAdded": {"bsid": n, "reason": "A"}}
        await asyncio.sleep(1.5)
        assert len(inbox.events("add")) == 2
        a.close()
        b.close()
        await ws.close()

    asyncio.run(go())


def test_a_dropped_listener_catches_up(start):
    """The LISTEN connection is killed; events written meanwhile arrive once each, and
    notifications work again afterwards (the poll interval is a minute)."""
    url = database("postgres")
    a = start("postgres", "--poll-interval-ms", "60000", db_url=url)
    b = start("postgres", db_url=url)
    bid = builder(b)
    admin = pg_connect(url.split("?")[0])
    admin.autocommit = True

    def listeners():
        cur = admin.cursor()
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = "
                    "'buildsets-graphql-listen' AND datname = current_database()")
        return sorted(r[0] for r in cur.fetchall())

    async def go():
        ws = await init(await connect(a))
        inbox = Inbox(ws)
        await subscribe(ws, "add", "subscription { buildsetAdded { bsid } }")
        await asyncio.sleep(1)
        before = listeners()
        assert len(before) == 2, before  # one per server
        # Kill a's listener (the one b does not own: try each, check a still gets all).
        cur = admin.cursor()
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "application_name = 'buildsets-graphql-listen' AND datname = current_database()")
        written = [await in_thread(add, b, f"during{i}", (), [bid]) for i in range(3)]
        events = await inbox.wait("add", 3, timeout=5)
        assert [e["buildsetAdded"]["bsid"] for e in events] == written
        await asyncio.sleep(1)
        after = listeners()
        assert len(after) == 2 and not set(after) & set(before), (before, after)
        sent = time.monotonic()
        last = await in_thread(add, b, "after", (), [bid])
        events = await inbox.wait("add", 4, timeout=2)
        assert events[3] == {"buildsetAdded": {"bsid": last}}
        assert time.monotonic() - sent < 2
        await asyncio.sleep(1)
        assert len(inbox.events("add")) == 4
        await ws.close()

    asyncio.run(go())
    admin.close()


def test_idle_subscribers_do_not_change_the_poll_rate(start):
    url = database("postgres")
    srv = start("postgres", "--poll-interval-ms", "100", db_url=url)
    admin = pg_connect(url.split("?")[0])
    admin.autocommit = True
    dbname = urllib.parse.urlsplit(url).path.lstrip("/")

    def statements():
        cur = admin.cursor()
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (dbname,))
        return cur.fetchone()[0]

    def rate(seconds=4):
        # PostgreSQL flushes a backend's counts at most once a second: wait them out.
        time.sleep(1.5)
        first = statements()
        time.sleep(seconds)
        time.sleep(1.5)
        return statements() - first

    async def go():
        # With no subscriber the server does not poll at all.
        idle = await in_thread(rate)
        one = await init(await connect(srv))
        await subscribe(one, "s", "subscription { buildsetAdded { bsid } }")
        await asyncio.sleep(0.5)
        single = await in_thread(rate)
        sockets = [one]
        for c in range(2):
            ws = await init(await connect(srv))
            for i in range(100):
                await subscribe(ws, f"s{i}", "subscription { buildsetAdded { bsid properties { name } } }")
            sockets.append(ws)
        await asyncio.sleep(0.5)
        many = await in_thread(rate)
        print(f"\ncommitted statements in 7 s: {idle} with no subscriber, {single} with one, {many} with 201")
        # The admin connection's own statements are in every count.
        assert idle <= 8, idle
        assert single > 20  # the poller ran: ~70 polls in the window
        assert many <= single * 1.25 + 5, (single, many)
        for ws in sockets:
            await ws.close()

    asyncio.run(go())
    admin.close()


def test_a_slow_consumer_is_dropped_and_the_others_keep_receiving(start):
    srv = start("sqlite", "--subscription-buffer", "2")
    b = builder(srv)
    # About 400 kB an event, in properties within the 64 KiB a stored property holds.
    big = [{"name": f"big{k}", "value": "x" * 60_000, "source": "t"} for k in range(7)]

    async def go():
        fast = await init(await connect(srv))
        inbox = Inbox(fast)
        await subscribe(fast, "add", "subscription { buildsetAdded { bsid } }")
        # The slow one reads nothing once subscribed, with a small receive buffer.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", srv.port))
        slow = await init(await connect(srv, sock=sock, max_queue=1, max_size=None))
        await subscribe(slow, "big", "subscription { buildsetAdded { bsid properties { value } } }")
        await asyncio.sleep(0.3)
        n = 30
        for i in range(n):
            await in_thread(add, srv, f"b{i}", big, [b])
        events = await inbox.wait("add", n, timeout=30)
        assert len(events) == n
        deadline = time.monotonic() + 10
        while "dropping a subscriber" not in srv.output() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "dropping a subscriber" in srv.output()
        # The slow socket, read at last: some events, then the close.
        got = 0
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(slow.recv(), 10)
                got += 1
        assert got < n + 1
        assert slow.close_code in (1008, 1006), slow.close_code
        # The fast one is still served.
        bsid = await in_thread(add, srv, "after", (), [b])
        events = await inbox.wait("add", n + 1)
        assert events[-1] == {"buildsetAdded": {"bsid": bsid}}
        await fast.close()

    asyncio.run(go())


def test_the_read_token_gates_subscriptions(start):
    srv = start("sqlite", "--read-token", "R", "--write-token", "W")

    async def go():
        ws = await connect(srv)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        # Subscribing anyway: nothing runs before the handshake.
        await subscribe(ws, "x", "subscription { buildsetAdded { bsid } }")
        with pytest.raises(ConnectionClosed):
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert msg.get("type") != "next", msg
        assert ws.close_code == 4401
        ok = await init(await connect(srv), {"Authorization": "Bearer R"})
        inbox = Inbox(ok)
        await subscribe(ok, "x", "subscription { buildsetAdded { bsid } }")
        await asyncio.sleep(0.3)
        srv_b = srv.ok('mutation { ensureBuilder(name: "t") { builderid } }', token="W")
        bsid = srv.ok("mutation($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid } }",
                      {"in": {"reason": "r", "sourcestamps": [{"stamp": {"branch": "m"}}],
                              "builderids": [srv_b["ensureBuilder"]["builderid"]]}},
                      token="W")["addBuildset"]["bsid"]
        assert await inbox.wait("x", 1) == [{"buildsetAdded": {"bsid": bsid}}]
        await ok.close()

    asyncio.run(go())


def test_caps_on_subscriptions_and_sockets(start):
    srv = start("sqlite", "--max-subscriptions-per-connection", "2", "--max-websockets", "1")

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        for i in range(2):
            await subscribe(ws, f"s{i}", "subscription { buildsetAdded { bsid } }")
        # Both are live once both see an event (operations start in no set order).
        await asyncio.sleep(0.3)
        await in_thread(add, srv, "m")
        await inbox.wait("s0", 1)
        await inbox.wait("s1", 1)
        await subscribe(ws, "s2", "subscription { buildsetAdded { bsid } }")
        err = await inbox.first_error("s2")
        assert err["extensions"]["code"] == "BAD_USER_INPUT"
        assert err["extensions"]["limit"] == 2
        with pytest.raises(InvalidStatus) as e:
            await connect(srv)
        assert e.value.response.status_code == 503
        body = json.loads(e.value.response.body)
        assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
        await ws.close()
        # The slot is free again.
        await asyncio.sleep(0.3)
        again = await init(await connect(srv))
        await again.close()

    asyncio.run(go())


def test_the_server_wide_subscription_cap(start):
    """Each subscription keeps its document and filter (a few hundred KB with a large
    `where`): the server holds at most --max-subscriptions, across all sockets."""
    srv = start("sqlite", "--max-subscriptions", "3")

    async def go():
        a, b = await init(await connect(srv)), await init(await connect(srv))
        inbox_b = Inbox(b)
        await subscribe(a, "a0", "subscription { buildsetAdded { bsid } }")
        await subscribe(a, "a1", "subscription { buildsetAdded { bsid } }")
        await subscribe(b, "b0", "subscription { buildsetCompleted { bsid } }")
        await asyncio.sleep(0.5)
        await subscribe(b, "b1", "subscription { buildsetAdded { bsid } }")
        err = await inbox_b.first_error("b1")
        assert err["extensions"]["code"] == "UNAVAILABLE", err
        assert err["extensions"]["limit"] == 3 and "--max-subscriptions" in err["message"]
        await a.close()
        await asyncio.sleep(0.5)
        await subscribe(b, "b2", "subscription { buildsetAdded { bsid } }")
        await asyncio.sleep(0.3)
        await in_thread(add, srv, "cap")
        [ev] = await inbox_b.wait("b2", 1)
        assert ev["buildsetAdded"]["bsid"] >= 1
        await b.close()

    asyncio.run(go())


def test_subscriptions_over_http_are_refused_with_a_code(start):
    srv = start("sqlite")
    r = srv.post_raw("subscription { buildsetAdded { bsid } }")
    assert r.status_code == 400
    body = r.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "/graphql/ws" in body["errors"][0]["message"]


def test_keepalive_pings_and_a_silent_peer_is_disconnected(start):
    """A raw socket: the server pings each second; a peer that never answers is
    closed after three intervals."""
    srv = start("sqlite", "--ws-keepalive", "1")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(("GET /graphql/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, rest = data.split(b"\r\n\r\n", 1)
    assert b" 101 " in head.split(b"\r\n")[0]
    started = time.monotonic()
    frames = []
    buf = rest
    while True:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 2:
            opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
            if len(buf) < 2 + length:
                break
            frames.append((opcode, buf[2:2 + length], time.monotonic() - started))
            buf = buf[2 + length:]
    pings = [f for f in frames if f[0] == 0x9]
    closes = [f for f in frames if f[0] == 0x8]
    assert len(pings) >= 2, frames
    assert pings[0][2] < 2
    assert closes and int.from_bytes(closes[0][1][:2], "big") == 1001, frames
    assert closes[0][2] < 8


def test_sigterm_sends_what_is_buffered_then_closes_with_1001(start):
    srv = start("sqlite")

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "add", "subscription { buildsetAdded { bsid } }")
        await asyncio.sleep(0.3)
        bsid = await in_thread(add, srv, "m")
        await inbox.wait("add", 1)
        srv.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(inbox.task, 10)
        assert inbox.closed[0] == 1001, inbox.closed
        assert [m["type"] for m in inbox.by_id["add"]] == ["next", "complete"]
        assert inbox.events("add") == [{"buildsetAdded": {"bsid": bsid}}]
        assert await in_thread(srv.proc.wait, 10) == 0

    asyncio.run(go())


def test_a_socket_that_never_initialises_is_closed_and_frees_its_slot(start):
    srv = start("sqlite", "--client-timeout", "1", "--max-websockets", "1")

    async def go():
        idle = await connect(srv)
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(idle.recv(), 10)
        assert idle.close_code == 4408, (idle.close_code, idle.close_reason)
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.2)
        ws = await init(await connect(srv))
        await ws.close()

    asyncio.run(go())


def test_a_subscription_has_one_root_field_and_limits_are_named(start):
    srv = start("sqlite", "--max-depth", "4")

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "two", "subscription { buildsetAdded { bsid } buildsetCompleted { bsid } }")
        await subscribe(ws, "deep", "subscription { buildsetAdded { buildrequests { buildset { buildrequests { buildset { bsid } } } } } }")
        await subscribe(ws, "typename", "subscription { __typename }")
        errs = {op: await inbox.first_error(op) for op in ("two", "deep", "typename")}
        # Request errors come as graphql-transport-ws's `error`, alone (no `complete`),
        # one error for one mistake (async-graphql's validation reported this one twice).
        for op in ("two", "deep", "typename"):
            assert [m["type"] for m in inbox.by_id[op]] == ["error"], inbox.by_id[op]
        [msg] = inbox.by_id["typename"]
        assert len(msg["payload"]) == 1, msg
        assert errs["typename"]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert errs["two"]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "exactly one root field" in errs["two"]["message"]
        deep = errs["deep"]
        assert deep["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert deep["extensions"]["limit"] == 4 and deep["extensions"]["found"] == 6, deep
        assert "--max-depth" in deep["message"]
        await ws.close()

    asyncio.run(go())


def test_a_repeated_operation_id_closes_with_4409_and_a_finished_one_can_be_reused(start):
    srv = start("sqlite")

    async def go():
        ws = await init(await connect(srv))
        # A query's id is free again once it completes.
        for _ in range(2):
            await subscribe(ws, "q", "{ builders { name } }")
            msgs = []
            while not msgs or msgs[-1]["type"] != "complete":
                msgs.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        await subscribe(ws, "d", "subscription { buildsetAdded { bsid } }")
        await subscribe(ws, "d", "subscription { buildsetCompleted { bsid } }")
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4409, (ws.close_code, ws.close_reason)
        assert ws.close_reason == "Subscriber for d already exists"

    asyncio.run(go())


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_many_distinct_filters_are_each_applied(start, backend):
    """Distinct `where` filters are matched together in as few statements as their
    values allow; each subscriber gets exactly what its filter matches."""
    srv = start(backend)
    b = builder(srv)
    far = list(range(10_000_000, 10_001_000))
    subs = {
        "a": {"branch": {"eq": "a"}},
        "b": {"branch": {"eq": "b"}},
        "a-or-b": {"or": [{"branch": {"eq": "a"}}, {"reason": {"contains": "b"}}]},
        "not-far": {"bsid": {"notIn": far}},
        "far": {"bsid": {"in": far}},
        "not-a": {"not": {"branch": {"eq": "a"}}},
        "builder": {"builderid": {"eq": b}},
    }

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        for name, where in subs.items():
            await subscribe(ws, name, "subscription($w: BuildsetFilter) { buildsetAdded(where: $w) { bsid } }", {"w": where})
        await asyncio.sleep(0.5)
        xa = await in_thread(add, srv, "a", (), [b])
        xb = await in_thread(add, srv, "b", (), [])
        want = {"a": [xa], "b": [xb], "a-or-b": [xa, xb], "not-far": [xa, xb], "far": [],
                "not-a": [xb], "builder": [xa]}
        for name, ids in want.items():
            if ids:
                await inbox.wait(name, len(ids))
        await asyncio.sleep(1.5)
        got = {name: [e["buildsetAdded"]["bsid"] for e in inbox.events(name)] for name in subs}
        assert got == want
        await ws.close()

    asyncio.run(go())


def test_a_subscription_filter_has_a_tighter_value_bound(start):
    srv = start("sqlite")

    async def go():
        ws = await init(await connect(srv))
        await subscribe(ws, "big", "subscription($w: BuildsetFilter) { buildsetAdded(where: $w) { bsid } }",
                        {"w": {"bsid": {"in": list(range(1001))}}})
        err = first_error(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert err["extensions"] == {"code": "BAD_USER_INPUT", "field": "where", "limit": 1000, "found": 1001}
        assert "at most 1000" in err["message"] and "--max-subscription-where-values" in err["message"]
        await ws.close()

    asyncio.run(go())


def metric(srv, name, **labels):
    """The value of one sample of the server's /metrics text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in srv.http.get("/metrics").text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_subscription_selection_is_bounded_by_its_own_limit(start):
    """9,000 aliases passed every bound and held 1.74 MB per subscription; each
    event was answered 9,000 times per subscriber."""
    srv = start("sqlite")
    wide = "subscription { buildsetAdded { %s } }" % " ".join(f"a{i}: bsid" for i in range(9000))

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        await subscribe(ws, "wide", wide)
        err = await inbox.first_error("wide")
        assert err["extensions"]["code"] == "QUERY_TOO_COMPLEX", err
        assert err["extensions"]["limit"] == 500 and "--max-subscription-selections" in err["message"], err
        await subscribe(ws, "ok", "subscription { buildsetAdded { %s } }" % " ".join(f"a{i}: bsid" for i in range(400)))
        await asyncio.sleep(0.3)
        bsid = await in_thread(add, srv, "bounded")
        [ev] = await inbox.wait("ok", 1)
        assert ev["buildsetAdded"]["a399"] == bsid
        await ws.close()

    asyncio.run(go())


def test_the_open_subscriptions_weight_is_bounded(start):
    srv = start("sqlite", "--max-subscription-bytes", "300000")
    heavy = "subscription { buildsetAdded { %s } }" % " ".join(f"a{i}: bsid" for i in range(450))

    async def go():
        ws = await init(await connect(srv))
        inbox = Inbox(ws)
        refused = None
        for i in range(50):
            await subscribe(ws, f"h{i}", heavy)
            await asyncio.sleep(0.05)
            msgs = inbox.by_id.get(f"h{i}")
            if msgs:
                refused = first_error(msgs[0])
                break
        assert refused, "fifty 450-field subscriptions fit in 300,000 bytes"
        assert refused["extensions"]["code"] == "UNAVAILABLE", refused
        assert refused["extensions"]["limit"] == 300000 and "--max-subscription-bytes" in refused["message"]
        assert i >= 1, "not even one subscription fit"
        # Ending one makes room for one more.
        await ws.send(json.dumps({"id": "h0", "type": "complete"}))
        await asyncio.sleep(0.3)
        await subscribe(ws, "again", heavy)
        await asyncio.sleep(0.3)
        bsid = await in_thread(add, srv, "room")
        [ev] = await inbox.wait("again", 1)
        assert ev["buildsetAdded"]["a0"] == bsid
        await ws.close()

    asyncio.run(go())


def test_an_event_is_answered_once_per_distinct_subscription(start):
    """Delivering one event cost aliases x subscribers: 7.3 s of CPU for 50
    subscribers. Subscribers with the same operation and variables share one answer."""
    srv = start("sqlite")
    same = "subscription($b: String) { buildsetAdded(where: {branch: {eq: $b}}) { bsid reason %s } }" % NESTED

    async def go():
        sockets = [await init(await connect(srv)) for _ in range(5)]
        inboxes = [Inbox(ws) for ws in sockets]
        for k, ws in enumerate(sockets):
            for j in range(10):
                await subscribe(ws, f"s{j}", same, {"b": "shared"})
            await subscribe(ws, "other", same, {"b": f"own{k}"})
        await asyncio.sleep(0.5)
        before = (metric(srv, "bsgql_subscription_answers_total", how="computed"),
                  metric(srv, "bsgql_subscription_answers_total", how="shared"))
        bsid = await in_thread(add, srv, "shared", [{"name": "p", "value": [1, 2.5, {"x": None}], "source": "t"}])
        answers = [ev for inbox in inboxes for j in range(10) for ev in await inbox.wait(f"s{j}", 1)]
        assert len(answers) == 50 and all(a == answers[0] for a in answers), answers[:2]
        assert answers[0]["buildsetAdded"]["bsid"] == bsid
        assert answers[0]["buildsetAdded"]["properties"] == [{"name": "p", "value": [1, 2.5, {"x": None}], "source": "t"}]
        await asyncio.sleep(0.3)
        assert all(not inbox.by_id.get("other") for inbox in inboxes), "another branch's event arrived"
        computed = metric(srv, "bsgql_subscription_answers_total", how="computed") - before[0]
        shared = metric(srv, "bsgql_subscription_answers_total", how="shared") - before[1]
        assert (computed, shared) == (1, 49), (computed, shared)
        for ws in sockets:
            await ws.close()

    asyncio.run(go())
