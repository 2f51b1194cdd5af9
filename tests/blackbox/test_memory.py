"""What a client can make the server hold: the parse cache weighs what it keeps (its
key's texts and the parsed document), and a document is bounded by its tokens before
it is parsed. Measured as the server's resident memory (/proc), from outside."""

import json
import threading

import httpx

# The parse cache's budget (src/door/mod.rs), plus what the allocator keeps around.
CACHE_BUDGET_MIB = 32
SLACK_MIB = 8


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def post(client, body):
    return client.post("/graphql", content=json.dumps(body), headers={"content-type": "application/json"})


def warm(srv):
    for _ in range(50):
        post(srv.http, {"query": "{ __typename }"})
    return rss_mib(srv.proc.pid)


def test_long_operation_names_are_not_kept(start):
    """300 requests with distinct 1 MB operation names added 324 MB: the name was part
    of the key but not of its weight."""
    srv = start("sqlite")
    before = warm(srv)
    for i in range(60):
        r = post(srv.http, {"query": "{ __typename }", "operationName": f"{i:04d}" + "N" * 1_000_000})
        assert r.status_code in (200, 400), r.status_code
    grown = rss_mib(srv.proc.pid) - before
    # Each request still carries its 1 MB body (and the allocator keeps some): 73 MiB before.
    assert grown < 32, f"RSS grew {grown:.1f} MiB for 60 distinct 1 MB operation names"


def test_a_dense_document_is_refused_before_it_is_parsed(start):
    """A list of 500,000 numbers in 1 MB of text took 150 MB while parsed, and was kept."""
    srv = start("sqlite")
    before = warm(srv)
    for i in range(3):
        q = "{ buildsets(where: {bsid: {in: [" + "1," * 500_000 + f"{i}]}}}}) {{ totalCount }} }}"
        body = json.loads(post(srv.http, {"query": q}).text)
        e = body["errors"][0]
        assert e["extensions"]["code"] == "QUERY_TOO_COMPLEX" and "--max-tokens" in e["message"], e
        assert e["extensions"]["limit"] == 50000 and e["extensions"]["found"] == 50001, e
    grown = rss_mib(srv.proc.pid) - before
    assert grown < SLACK_MIB, f"RSS grew {grown:.1f} MiB for three dense documents"
    # Long lists still work as variables, within their own bound.
    d = srv.ok("query($ids: [Int!]) { buildsets(where: {bsid: {in: $ids}}) { totalCount } }",
               {"ids": list(range(10_000))})
    assert d["buildsets"]["totalCount"] == 0


def test_distinct_small_queries_stay_within_the_cache_budget(start):
    """100,000 distinct `{ aN: __typename }` added 127 MB: each entry weighed its text
    times 8, a tenth of what it held."""
    srv = start("sqlite")
    before = warm(srv)
    n, threads = 50_000, 8

    def work(k):
        with httpx.Client(base_url=srv.base, timeout=60) as c:
            for i in range(k, n, threads):
                r = post(c, {"query": "{ a%d: __typename }" % i})
                assert r.status_code == 200

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    grown = rss_mib(srv.proc.pid) - before
    assert grown < CACHE_BUDGET_MIB + SLACK_MIB, f"RSS grew {grown:.1f} MiB for {n} distinct queries"
    # The cache still serves: a repeated query answers.
    assert srv.ok("{ a1: __typename }") == {"a1": "Query"}
