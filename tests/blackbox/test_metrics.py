"""/metrics in Prometheus' text format, read as a scraper reads it: operation counts
and latency by name and outcome, SQL statements per operation, the database pool,
WebSockets and subscriptions; behind the read token when one is set."""

import asyncio
import re

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
    assert value(samples, "bsgql_requests_total", operation="-", transport="post", outcome="BAD_USER_INPUT") == 1
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
