"""/metrics in Prometheus' text format, read as a scraper reads it: operation counts
and latency by name and outcome, SQL statements per operation, the database pool,
WebSockets and subscriptions; behind the read token when one is set."""

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import add_buildset
from test_subscriptions import connect, init, subscribe


def scrape(srv, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = srv.http.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    samples = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)', line)
        assert m, line
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(3) or "")))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples, r.text


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_operations_statements_and_pool_are_counted(start, backend):
    srv = start(backend)
    for _ in range(3):
        add_buildset(srv)
    page = "query Page { buildsets(first: 10) { nodes { bsid sourcestamps { ssid } properties { name } } } }"
    for _ in range(4):
        srv.http.post("/graphql", json={"query": page, "operationName": "Page"})
    srv.post("{ nope }")
    samples, text = scrape(srv)
    assert "# TYPE bsgql_requests_total counter" in text
    assert "# TYPE bsgql_request_duration_seconds histogram" in text
    ok = dict(operation="Page", transport="post", outcome="OK")
    assert value(samples, "bsgql_requests_total", **ok) == 4
    assert value(samples, "bsgql_request_duration_seconds_count", **ok) == 4
    assert value(samples, "bsgql_request_duration_seconds_sum", **ok) > 0
    assert value(samples, "bsgql_requests_total", operation="-", transport="post", outcome="GRAPHQL_VALIDATION_FAILED") == 1
    # One statement per relation level, whatever the page size: a page of 1 costs what
    # a page of 3 does.
    assert value(samples, "bsgql_statements_per_request_count", operation="Page") == 4
    per_page = value(samples, "bsgql_statements_per_request_sum", operation="Page") / 4
    assert 3 <= per_page <= 5, per_page
    one = page.replace("first: 10", "first: 1").replace("query Page", "query One")
    srv.http.post("/graphql", json={"query": one, "operationName": "One"})
    samples, _ = scrape(srv)
    assert value(samples, "bsgql_statements_per_request_sum", operation="One") == per_page
    assert value(samples, "bsgql_db_pool_max_connections") >= 1
    opened = value(samples, "bsgql_db_pool_connections", state="open")
    idle = value(samples, "bsgql_db_pool_connections", state="idle")
    assert opened >= 1 and value(samples, "bsgql_db_pool_connections", state="in_use") == opened - idle


def test_sockets_and_subscriptions_are_gauged(start):
    srv = start("sqlite")

    async def go():
        ws = await init(await connect(srv))
        await subscribe(ws, "1", "subscription { buildsetAdded { bsid } }")
        await subscribe(ws, "2", "subscription { buildsetCompleted { bsid } }")
        await asyncio.sleep(0.5)
        samples, _ = scrape(srv)
        assert value(samples, "bsgql_websocket_connections") == 1
        assert value(samples, "bsgql_subscriptions") == 2
        await ws.close()
        for _ in range(50):
            samples, _ = scrape(srv)
            if value(samples, "bsgql_subscriptions") == 0:
                break
            await asyncio.sleep(0.1)
        assert value(samples, "bsgql_subscriptions") == 0
        assert value(samples, "bsgql_websocket_connections") == 0

    asyncio.run(go())


def test_metrics_need_the_read_token_when_one_is_set(start):
    srv = start("sqlite", "--read-token", "R")
    assert srv.http.get("/metrics").status_code == 401
    assert srv.http.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 403
    samples, _ = scrape(srv, token="R")
    assert value(samples, "bsgql_db_pool_max_connections") >= 1


def test_client_chosen_operation_names_do_not_grow_the_metrics(start):
    srv = start("sqlite")
    for i in range(130):
        srv.http.post("/graphql", json={"query": f"query Op{i} {{ __typename }}", "operationName": f"Op{i}"})
    srv.http.post("/graphql", json={"query": 'query a {__typename}', "operationName": 'bad"name\n'})
    samples, _ = scrape(srv)
    names = {dict(labels).get("operation") for (name, labels) in samples if name == "bsgql_requests_total"}
    assert len(names) <= 102, len(names)
    assert value(samples, "bsgql_requests_total", operation="other", transport="post", outcome="OK") >= 30


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_add_buildset_sends_a_constant_number_of_statements(start, backend):
    """Multi-row inserts: the statements of an addBuildset do not grow with its
    sourcestamps, builders and properties."""
    srv = start(backend)
    builders = [srv.ok('mutation($n: String!) { ensureBuilder(name: $n) { builderid } }', {"n": f"b{i}"})
                ["ensureBuilder"]["builderid"] for i in range(4)]
    add = "mutation Add%s($in: AddBuildsetInput!) { addBuildset(input: $in) { bsid brids { builderid buildrequestid } } }"

    def inp(n_stamps, n_builders, n_props, tag):
        return {"reason": "r",
                "sourcestamps": [{"stamp": {"branch": f"{tag}-{i}", "repository": "r"}} for i in range(n_stamps)],
                "builderids": builders[:n_builders],
                "properties": [{"name": f"p{i}", "value": i, "source": "s"} for i in range(n_props)]}

    def run(name, variables):
        r = srv.http.post("/graphql", json={"query": add % name, "operationName": f"Add{name}", "variables": variables})
        body = r.json()
        assert "errors" not in body, body
        return body["data"]["addBuildset"]

    run("Warm", {"in": inp(1, 1, 1, "warm")})  # first-use reads (e.g. MySQL's charsets)
    small = run("Small", {"in": inp(1, 1, 1, "small")})
    big = run("Big", {"in": inp(6, 4, 8, "big")})
    assert [b["builderid"] for b in big["brids"]] == builders
    assert len({b["buildrequestid"] for b in big["brids"]}) == 4
    samples, _ = scrape(srv)
    n_small = value(samples, "bsgql_statements_per_request_sum", operation="AddSmall")
    n_big = value(samples, "bsgql_statements_per_request_sum", operation="AddBig")
    assert n_small > 0 and n_big == n_small, (n_small, n_big)
    # One statement on PostgreSQL and MariaDB, as seen from outside (SQLite, in
    # process, keeps its transaction of statements); a patch costs PostgreSQL one
    # more (its id is reserved first: it is part of the stamp's hash).
    patched = inp(2, 2, 2, "patched")
    patched["sourcestamps"][0]["stamp"]["patch"] = {"body": "--- a\n+++ b\n", "level": 1}
    run("Patch", {"in": patched})
    samples, _ = scrape(srv)
    n_patch = value(samples, "bsgql_statements_per_request_sum", operation="AddPatch")
    if backend != "sqlite":
        assert n_small == 1, n_small
        assert n_patch == (2 if backend == "postgres" else 1), n_patch
    # The stamps keep the order given.
    got = srv.ok("query($b: Int!) { buildset(bsid: $b) { sourcestamps { branch } } }", {"b": big["bsid"]})
    assert [s["branch"] for s in got["buildset"]["sourcestamps"]] == [f"big-{i}" for i in range(6)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_complete_buildset_answering_only_the_buildset_is_one_statement(start, backend):
    """`UPDATE … RETURNING` (with PostgreSQL's NOTIFY in the same statement) where the
    database has it; the answer, the refusals and the stored row are those of the
    transaction it replaces, which still serves answers with relations (and MySQL)."""
    srv = start(backend)

    def named(query, name, variables):
        r = srv.http.post("/graphql", json={"query": query, "operationName": name, "variables": variables})
        return r.json()

    x, y = add_buildset(srv)["bsid"], add_buildset(srv)["bsid"]
    alone = ("mutation Alone($b: Int!) { completeBuildset(bsid: $b, results: 3, "
             'completeAt: "2026-03-04T05:06:07Z") { bsid complete results completeAt } }')
    got = named(alone, "Alone", {"b": x})["data"]["completeBuildset"]
    assert got == {"bsid": x, "complete": True, "results": 3, "completeAt": "2026-03-04T05:06:07+00:00"}
    nested = ("mutation Nested($b: Int!) { completeBuildset(bsid: $b, results: 1) "
              "{ bsid results sourcestamps { branch } buildrequests { complete } } }")
    got = named(nested, "Nested", {"b": y})["data"]["completeBuildset"]
    assert got == {"bsid": y, "results": 1, "sourcestamps": [{"branch": "main"}],
                   "buildrequests": [{"complete": False}]}

    again = alone.replace("Alone", "Again")
    body = named(again, "Again", {"b": x})
    ext = body["errors"][0]["extensions"]
    assert ext == {"code": "ALREADY_COMPLETE", "results": 3, "completeAt": "2026-03-04T05:06:07+00:00"}, body
    body = named(again, "Again", {"b": 999999})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
    body = srv.post("mutation { completeBuildset(bsid: 1, results: 9) { bsid } }")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    # Nothing changed by the refusals.
    rows = srv.ok("query { buildsets(orderBy: [{field: BSID}]) { nodes { bsid results completeAt } } }")
    assert rows["buildsets"]["nodes"] == [
        {"bsid": x, "results": 3, "completeAt": "2026-03-04T05:06:07+00:00"},
        {"bsid": y, "results": 1, "completeAt": rows["buildsets"]["nodes"][1]["completeAt"]},
    ]
    assert rows["buildsets"]["nodes"][1]["completeAt"] is not None

    samples, _ = scrape(srv)
    n_alone = value(samples, "bsgql_statements_per_request_sum", operation="Alone")
    n_nested = value(samples, "bsgql_statements_per_request_sum", operation="Nested")
    assert value(samples, "bsgql_statements_per_request_count", operation="Alone") == 1
    assert n_alone == 1, n_alone
    assert n_nested > 2, n_nested


def test_the_server_takes_no_transparent_huge_pages(start):
    """A 2 MiB huge page is resident once one byte of it is touched: with them the
    allocator's arenas doubled the peak RSS at 32 concurrent pages. The process turns
    them off for itself, and after concurrent pages it holds none."""
    srv = start("sqlite")
    for _ in range(30):
        add_buildset(srv)
    status = open(f"/proc/{srv.proc.pid}/status").read()
    assert re.search(r"^THP_enabled:\s+0$", status, re.M), status
    page = "{ buildsets(first: 100) { nodes { bsid reason sourcestamps { ssid branch } properties { name value } } } }"

    def one(_):
        return srv.post(page)

    with ThreadPoolExecutor(32) as pool:
        for body in pool.map(one, range(64)):
            assert len(body["data"]["buildsets"]["nodes"]) == 30, body
    rollup = open(f"/proc/{srv.proc.pid}/smaps_rollup").read()
    huge = re.search(r"^AnonHugePages:\s+(\d+) kB$", rollup, re.M)
    assert huge and huge.group(1) == "0", rollup


def test_the_exposition_is_read_by_prometheus_own_parsers(start):
    """prometheus_client's parser, and promtool's lint where Prometheus is installed
    (.ci/run installs Debian's prometheus for it): the process, build-info and
    subscription metrics are there, each family typed once."""
    import json
    import os
    import shutil
    import subprocess

    from prometheus_client.parser import text_string_to_metric_families

    srv = start("postgres" if os.environ.get("TEST_POSTGRES_URL") else "sqlite", "--poll-interval-ms", "50")

    async def two_events():
        ws = await init(await connect(srv))
        await subscribe(ws, "1", "subscription { buildsetAdded { bsid } }")
        await asyncio.sleep(0.3)
        add_buildset(srv)
        add_buildset(srv)
        got = 0
        while got < 2:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            got += msg["type"] == "next"
        await ws.close()

    asyncio.run(two_events())
    srv.post("{ nope }")
    _, text = scrape(srv)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    def sample(name, **labels):
        return [s for f in families.values() for s in f.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    # The process, as every Prometheus client library names it.
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds"):
        assert sample(name), name
    [rss] = sample("process_resident_memory_bytes")
    assert 1 << 20 < rss.value < 1 << 32, rss
    [info] = sample("bsgql_build_info")
    assert info.value == 1 and info.labels["version"] and info.labels["backend"] == srv.backend, info
    [started] = sample("bsgql_subscriptions_started_total")
    [events] = sample("bsgql_subscription_events_total")
    assert started.value == 1 and events.value == 2, (started, events)
    assert families["bsgql_subscriptions_started"].type == "counter"
    [refused] = sample("bsgql_requests_total", outcome="GRAPHQL_VALIDATION_FAILED")
    assert refused.value == 1
    promtool = shutil.which("promtool")
    if not promtool:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus for it")
        pytest.skip("promtool is not installed (Debian's prometheus package); prometheus_client parsed it above")
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
