"""GraphQL over HTTP, to the spec: the spec's own server audit (npm graphql-http's
auditServer, tests/audit/), and what it does not cover: statuses and headers that
HTTP asks for, request ids, and one readable sentence for a syntax error."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

AUDIT = Path(__file__).resolve().parents[1] / "audit"
SPEC = "application/graphql-response+json"


def audit(url):
    if not (AUDIT / "node_modules" / "graphql-http").is_dir() or not shutil.which("node"):
        if os.environ.get("CI"):
            pytest.fail("tests/audit has no node_modules: .ci/run installs them (npm ci)")
        pytest.skip("run `npm ci --prefix tests/audit` (or .ci/run) for the graphql-http audit")
    out = subprocess.run(["node", str(AUDIT / "audit.mjs"), url], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_the_graphql_over_http_audit_passes_every_audit(start):
    srv = start("sqlite")
    results = audit(srv.base + "/graphql")
    failed = [r for r in results if r["status"] != "ok"]
    assert not failed, json.dumps(failed, indent=1)
    # graphql-http 1.23.1 has 61 server audits; another count means another version.
    assert len(results) == 61, len(results)


def post(srv, body, accept=SPEC, **headers):
    return srv.http.post("/graphql", content=json.dumps(body),
                         headers={"content-type": "application/json", "accept": accept, **headers})


def test_request_errors_are_400_without_data_and_field_errors_200_with_it(start):
    srv = start("sqlite")
    for query, code in [("{ builders { ", "GRAPHQL_PARSE_FAILED"), ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
                        ("query($n: Int!) { buildset(bsid: $n) { bsid } }", "BAD_USER_INPUT")]:
        r = post(srv, {"query": query})
        assert r.status_code == 400, (query, r.text)
        assert r.headers["content-type"] == f"{SPEC}; charset=utf-8"
        body = r.json()
        assert "data" not in body and body["errors"][0]["extensions"]["code"] == code
        # The legacy media type keeps 200 for a well-formed request, still without data.
        r = post(srv, {"query": query}, accept="application/json")
        assert r.status_code == 200 and "data" not in r.json(), r.text
        assert r.headers["content-type"] == "application/json; charset=utf-8"
    # A field error: executed, so 200 with data under either media type.
    for accept in (SPEC, "application/json"):
        r = post(srv, {"query": 'mutation { completeBuildset(bsid: 9, results: 0) { bsid } }'}, accept=accept)
        assert r.status_code == 200 and r.json()["data"] is None and r.json()["errors"][0]["path"]
    # The preferred type wins whatever the order; neither accepted is 406.
    r = post(srv, {"query": "{ __typename }"}, accept=f"application/json, {SPEC}")
    assert r.headers["content-type"].startswith(SPEC)
    r = post(srv, {"query": "{ __typename }"}, accept="text/html")
    assert r.status_code == 406 and "application/graphql-response+json" in r.text
    r = post(srv, {"query": "{ __typename }"}, accept="*/*")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.text.endswith("}\n")
    # The plain-text answers end with a newline too, so that each is a line in a terminal.
    assert srv.http.get("/healthz").text == "ok\n"
    assert srv.http.get("/readyz").text == "ready\n"


def test_a_syntax_error_is_one_sentence_with_its_place(start):
    srv = start("sqlite")
    [err] = post(srv, {"query": "{ builders { "}).json()["errors"]
    assert err["message"] == "Syntax error at line 1, column 14: unexpected end of the document"
    assert err["locations"] == [{"line": 1, "column": 14}]
    [err] = post(srv, {"query": "{\n  builders(x: ) { name }\n}"}).json()["errors"]
    assert err["message"] == "Syntax error at line 2, column 15: unexpected `)`", err


def test_statuses_carry_the_headers_http_asks_for(start):
    srv = start("sqlite", "--read-token", "R", "--write-token", "W")
    r = post(srv, {"query": "{ __typename }"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="buildsets-graphql"'
    r = post(srv, {"query": "{ __typename }"}, authorization="Bearer nope")
    assert r.status_code == 403 and "www-authenticate" not in r.headers
    r = srv.http.put("/graphql", headers={"authorization": "Bearer R"})
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    r = srv.http.get("/graphql", params={"query": 'mutation { ensureBuilder(name: "x") { name } }'},
                     headers={"authorization": "Bearer W", "accept": SPEC})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = srv.http.post("/graphql/ws")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = srv.http.post("/graphql", content="{}", headers={"authorization": "Bearer R", "content-type": "text/plain"})
    assert r.status_code == 415


def test_a_request_id_comes_back_and_a_well_formed_one_is_kept(start):
    srv = start("sqlite")
    r = post(srv, {"query": "{ __typename }"}, **{"x-request-id": "trace-42.a_b:c"})
    assert r.headers["x-request-id"] == "trace-42.a_b:c"
    ours = post(srv, {"query": "{ __typename }"}).headers["x-request-id"]
    assert ours and ours != "trace-42.a_b:c"
    for bad in ["has space", "x" * 65, 'quote"d']:
        got = post(srv, {"query": "{ __typename }"}, **{"x-request-id": bad}).headers["x-request-id"]
        assert got != bad and " " not in got and len(got) <= 64
    # The request's id is the one its log line names.
    r = post(srv, {"query": "{ nope }"}, **{"x-request-id": "mine-1"})
    assert r.headers["x-request-id"] == "mine-1"
    assert "mine-1" in srv.output()
