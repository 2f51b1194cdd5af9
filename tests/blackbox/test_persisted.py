"""Persisted queries and trusted documents, from outside: Apollo's own client
(@apollo/client 4 and its PersistedQueryLink, in Node) and raw HTTP (httpx, Python's
json), plus the error codes as Apollo documents them."""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

AUDIT = Path(__file__).resolve().parents[1] / "audit"
SCRIPT = AUDIT / "apollo.mjs"


def node_ready():
    if not (AUDIT / "node_modules" / "@apollo" / "client").is_dir() or not shutil.which("node"):
        if os.environ.get("CI"):
            pytest.fail("tests/audit has no node_modules: .ci/run installs them (npm ci)")
        pytest.skip("run `npm ci --prefix tests/audit` (or .ci/run) for @apollo/client")


def apollo(scenario, base, *extra):
    node_ready()
    done = subprocess.run(["node", str(SCRIPT), scenario, base, *extra], capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return {d["what"]: d for d in map(json.loads, filter(None, done.stdout.splitlines()))}


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def post(srv, body, **headers):
    r = srv.http.post("/graphql", content=json.dumps(body),
                      headers={"content-type": "application/json", **headers})
    return r.status_code, json.loads(r.text)


def codes(body):
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def test_apollo_persisted_query_link_registers_then_sends_hashes_alone(start):
    srv = start("sqlite")
    seen = apollo("apq", srv.base)
    first = seen["first"]
    assert first["result"]["data"] == {"builders": []}, first
    # The hash alone, refused as Apollo's clients expect, then the text with the hash.
    assert [(r["sentQuery"], r["codes"]) for r in first["requests"]] == [
        (False, ["PERSISTED_QUERY_NOT_FOUND"]), (True, [])], first
    # A new client: one request, no text.
    again = seen["again"]
    assert again["result"]["data"] == {"builders": []}
    assert [(r["method"], r["sentQuery"], r["status"]) for r in again["requests"]] == [("POST", False, 200)]
    # GET for hashed queries, what a CDN can cache: the second client sends one GET.
    assert seen["get-first"]["requests"][0]["method"] == "GET"
    get_again = seen["get-again"]
    assert get_again["result"]["data"]["buildsets"]["totalCount"] == 0
    assert [(r["method"], r["sentQuery"], r["status"]) for r in get_again["requests"]] == [("GET", False, 200)]


def test_persisted_queries_over_raw_http(start):
    srv = start("sqlite", "--write-token", "w")
    text = "{ builders { name } }"
    ext = {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}
    status, body = post(srv, {"extensions": ext})
    assert (status, codes(body), body["errors"][0]["message"]) == (
        200, ["PERSISTED_QUERY_NOT_FOUND"], "PersistedQueryNotFound")
    status, body = post(srv, {"extensions": ext}, accept="application/graphql-response+json")
    assert (status, codes(body)) == (400, ["PERSISTED_QUERY_NOT_FOUND"])
    # A hash that is not the text's: refused, and nothing is registered under it.
    status, body = post(srv, {"query": "{ __typename }", "extensions": ext})
    assert (status, codes(body)) == (400, ["BAD_REQUEST"]), body
    assert "provided sha does not match query" in body["errors"][0]["message"]
    assert codes(post(srv, {"extensions": ext})[1]) == ["PERSISTED_QUERY_NOT_FOUND"]
    # Registered with its text, then run by hash over POST and GET, upper-case too.
    assert post(srv, {"query": text, "extensions": ext}) == (200, {"data": {"builders": []}})
    assert post(srv, {"extensions": ext}) == (200, {"data": {"builders": []}})
    r = srv.http.get("/graphql", params={"extensions": json.dumps(ext)})
    assert (r.status_code, r.text) == (200, '{"data":{"builders":[]}}\n')
    upper = {"persistedQuery": {"version": 1, "sha256Hash": sha(text).upper()}}
    assert post(srv, {"extensions": upper}) == (200, {"data": {"builders": []}})
    # The GraphQL-over-HTTP spelling, `documentId` with its `sha256:` prefix.
    assert post(srv, {"documentId": "sha256:" + sha(text)}) == (200, {"data": {"builders": []}})
    # A mutation registered by hash still needs POST and a write token.
    mutation = 'mutation { ensureBuilder(name: "pq") { name } }'
    mext = {"persistedQuery": {"version": 1, "sha256Hash": sha(mutation)}}
    status, body = post(srv, {"query": mutation, "extensions": mext}, authorization="Bearer w")
    assert body == {"data": {"ensureBuilder": {"name": "pq"}}}
    status, body = post(srv, {"extensions": mext})
    assert (status, codes(body)) == (401, ["UNAUTHENTICATED"])
    r = srv.http.get("/graphql", params={"extensions": json.dumps(mext)})
    assert (r.status_code, codes(json.loads(r.text))) == (405, ["BAD_REQUEST"])
    # Malformed persisted-query extensions are the request's fault, coded.
    for bad in [{"persistedQuery": {"version": 2, "sha256Hash": sha(text)}},
                {"persistedQuery": {"version": 1}}, {"persistedQuery": "x"}]:
        status, body = post(srv, {"extensions": bad})
        assert (status, codes(body)) == (400, ["BAD_REQUEST"]), bad
    status, body = post(srv, {"variables": {}})
    assert (status, codes(body)) == (400, ["BAD_REQUEST"])


def test_persisted_queries_turned_off_say_so(start):
    srv = start("sqlite", "--persisted-queries-bytes", "0")
    ext = {"persistedQuery": {"version": 1, "sha256Hash": sha("{ __typename }")}}
    status, body = post(srv, {"extensions": ext})
    assert (status, codes(body)) == (200, ["PERSISTED_QUERY_NOT_SUPPORTED"])
    # The text with its hash still runs: the client stops sending hashes.
    assert post(srv, {"query": "{ __typename }", "extensions": ext}) == (200, {"data": {"__typename": "Query"}})


def test_the_registered_documents_are_bounded_in_bytes(start):
    srv = start("sqlite", "--persisted-queries-bytes", "16384")
    texts = [f"{{ a{i}: __typename }}" + " " * 580 for i in range(100)]
    for t in texts:
        ext = {"persistedQuery": {"version": 1, "sha256Hash": sha(t)}}
        assert post(srv, {"query": t, "extensions": ext})[0] == 200
    found = sum(
        1 for t in texts
        if "data" in post(srv, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(t)}}})[1])
    # 100 documents of ~600 bytes in 16 KiB: at most 27 fit, the rest were dropped.
    assert 1 <= found <= 16384 // 600, found


def test_trusted_documents_run_only_what_is_listed(start, tmp_path):
    node_ready()
    manifest = tmp_path / "manifest.json"
    apollo("manifest", "-", str(manifest))
    relay = tmp_path / "persisted_queries.json"
    relay.write_text(json.dumps({"relay-1": "query R { buildsets { totalCount } }"}))
    srv = start("sqlite", "--trusted-documents", str(manifest), "--trusted-documents", str(relay))
    seen = apollo("trusted", srv.base)
    # A listed operation runs by its hash alone, in one request.
    assert seen["listed"]["result"]["data"]["builders"] == []
    assert [(r["sentQuery"], r["status"]) for r in seen["listed"]["requests"]] == [(False, 200)]
    # An unlisted one: not found by hash, then refused with its text.
    unlisted = seen["unlisted"]
    assert unlisted["result"]["codes"] == ["PERSISTED_QUERY_NOT_IN_LIST"], unlisted
    assert [(r["status"], r["codes"]) for r in unlisted["requests"]] == [
        (404, ["PERSISTED_QUERY_NOT_FOUND"]), (403, ["PERSISTED_QUERY_NOT_IN_LIST"])]
    # Relay's format, by `doc_id` and by `documentId`, and by its exact text.
    for key in ("doc_id", "documentId"):
        assert post(srv, {key: "relay-1"}) == (200, {"data": {"buildsets": {"totalCount": 0}}})
        r = srv.http.get("/graphql", params={key: "relay-1"})
        assert (r.status_code, json.loads(r.text)) == (200, {"data": {"buildsets": {"totalCount": 0}}}), key
    assert post(srv, {"query": "query R { buildsets { totalCount } }"})[0] == 200
    # Text that is not listed is refused, however close; an unknown id is not found.
    status, body = post(srv, {"query": "query R { buildsets { totalCount }}"})
    assert (status, codes(body)) == (403, ["PERSISTED_QUERY_NOT_IN_LIST"])
    status, body = post(srv, {"documentId": "nope"})
    assert (status, codes(body)) == (404, ["PERSISTED_QUERY_NOT_FOUND"])
    # No registration on a trusted server: sending text with its hash runs nothing new.
    text = "{ buildsets { totalCount } }"
    ext = {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}
    assert codes(post(srv, {"query": text, "extensions": ext})[1]) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    assert codes(post(srv, {"extensions": ext})[1]) == ["PERSISTED_QUERY_NOT_FOUND"]
    # Introspection still answers (the playground's Docs, code generators).
    assert post(srv, {"query": "{ __schema { queryType { name } } }"}) == (
        200, {"data": {"__schema": {"queryType": {"name": "Query"}}}})


def test_trusted_documents_that_cannot_be_read_stop_the_start(tmp_path):
    from conftest import BIN
    bad = tmp_path / "m.json"
    bad.write_text('{"format": "apollo-persisted-query-manifest", "operations": [{"id": "a"}]}')
    done = subprocess.run([BIN, "--database-url", f"sqlite://{tmp_path}/x.db?mode=rwc",
                           "--listen", "127.0.0.1:0", "--trusted-documents", str(bad)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert f"--trusted-documents {bad}: operation 0 has no `id` and `body` strings" in done.stderr, done.stderr


def test_codes_are_apollos(start):
    srv = start("sqlite")
    cases = [
        ("{ builders { name }", None, "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", None, "GRAPHQL_VALIDATION_FAILED"),
        ('{ buildset(bsid: "x") { bsid } }', None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($b: Int!) { buildset(bsid: $b) { bsid } }", {"b": "x"}, "BAD_USER_INPUT"),
        ("query($b: Int!) { buildset(bsid: $b) { bsid } }", {}, "BAD_USER_INPUT"),
        ("mutation { completeBuildset(bsid: 999, results: 0) { bsid } }", None, "NOT_FOUND"),
    ]
    for query, variables, code in cases:
        body = {"query": query}
        if variables is not None:
            body["variables"] = variables
        assert codes(post(srv, body)[1]) == [code], query
    status, body = post(srv, {"query": "query A { __typename }", "operationName": "B"})
    assert codes(body) == ["OPERATION_RESOLUTION_FAILURE"], body
    status, body = post(srv, {"query": "query A { __typename } query B { __typename }"})
    assert codes(body) == ["OPERATION_RESOLUTION_FAILURE"], body
    r = srv.http.post("/graphql", content="{", headers={"content-type": "application/json"})
    assert (r.status_code, codes(json.loads(r.text))) == (400, ["BAD_REQUEST"])
